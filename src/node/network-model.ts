/**
 * The network's model as this node knows it: its config and tokenizer files, and the network id they hash to.
 *
 *   - A `--checkpoint DIR` node takes them from DIR: a Hugging Face tokenizer.json with tokenizer_config.json (the
 *     chat template) and generation_config.json when present; else our own tokenizer file; else the bundled one. The
 *     network id commits to them (node/genesis.ts networkIdOf over pool/model-files.ts tokenizerCommitment), so a
 *     network founded from an HF checkpoint has its own id. An own-format checkpoint of the bundled shape with the
 *     bundled tokenizer keeps the bundled id.
 *   - A node given `--network-id` of a network it has no checkpoint for fetches them from peers (verified against the
 *     id) and keeps them in `<data-dir>/network-model/<id>/`, where a restart finds (and re-verifies) them.
 *   - Any other node is on the bundled genesis.
 * Every node serves the files it knows to the others (the `checkpoint` stream's model-files requests).
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHfConfig } from '../model/config.js';
import { fetchModelFiles, MODEL_FILE_LIMITS, OWN_TOKENIZER_FILE, tokenizerCommitment, type ModelFile, type ModelFileSet } from '../pool/model-files.js';
import type { PenaltySink } from '../pool/transfer.js';
import type { RpcNode } from '../protocols/rpc/service.js';
import { ConfigError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { networkIdOf, type Genesis } from './genesis.js';
import { genesisModelConfig } from './pool.js';

/** The HF files that go with a tokenizer.json, in the order they are listed. */
const HF_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];
/** The file a fetched model's config is kept in, beside its tokenizer files. */
const FETCHED_CONFIG_FILE = 'network-config.json';

function readCapped(path: string, name: string): Uint8Array {
  const cap = MODEL_FILE_LIMITS[name]!;
  const size = statSync(path).size;
  if (size > cap) throw new ConfigError(`${path}: ${size} bytes, more than the ${cap} a model file may have`, { file: path });
  return readFileSync(path);
}

/** The tokenizer files a checkpoint directory brings (the bundled tokenizer when it has none). */
export function checkpointModelFiles(dir: string, genesis: Genesis): ModelFile[] {
  if (existsSync(join(dir, 'tokenizer.json'))) {
    return HF_FILES.filter((n) => existsSync(join(dir, n))).map((name) => ({ name, bytes: readCapped(join(dir, name), name) }));
  }
  const own = join(dir, OWN_TOKENIZER_FILE);
  return [{ name: OWN_TOKENIZER_FILE, bytes: readCapped(existsSync(own) ? own : genesis.tokenizerPath, OWN_TOKENIZER_FILE) }];
}

/** The network id of a config and its tokenizer files over the genesis corpus manifest. */
export function networkIdOfModel(set: ModelFileSet, genesis: Genesis): string {
  return networkIdOf(set.config, tokenizerCommitment(set.files), readFileSync(genesis.manifestPath));
}

export interface NetworkModel {
  networkId: string;
  /** The files this node knows now; undefined until fetched from peers. */
  files: ModelFileSet | undefined;
  /** True when they must come from peers (`--network-id` without a checkpoint of that network). */
  fetch: boolean;
}

/** Which network this node is on and what it knows of its model at start (see the file comment). */
export function resolveNetworkModel(opts: { checkpoint: string | undefined; networkId: string | undefined }, bundled: Genesis): NetworkModel {
  if (opts.checkpoint !== undefined) {
    const files = { config: genesisModelConfig(opts.checkpoint, bundled.config), files: checkpointModelFiles(opts.checkpoint, bundled) };
    const networkId = networkIdOfModel(files, bundled);
    if (opts.networkId !== undefined && opts.networkId !== networkId) {
      throw new ConfigError(`--network-id ${opts.networkId} is not the network of --checkpoint ${opts.checkpoint} (${networkId}): another config or tokenizer`, { networkId, given: opts.networkId });
    }
    return { networkId, files, fetch: false };
  }
  const own = { config: bundled.config, files: [{ name: OWN_TOKENIZER_FILE, bytes: readFileSync(bundled.tokenizerPath) }] };
  if (opts.networkId === undefined || opts.networkId === bundled.networkId) return { networkId: bundled.networkId, files: own, fetch: false };
  return { networkId: opts.networkId, files: undefined, fetch: true };
}

/** Where a fetched model's files are kept. */
export function fetchedModelDir(dataDir: string, networkId: string): string {
  return join(dataDir, 'network-model', networkId);
}

/** The files kept by an earlier fetch, when they are there and still hash to the id. */
function cachedModel(dir: string, networkId: string, genesis: Genesis): ModelFileSet | undefined {
  try {
    const cfg = join(dir, FETCHED_CONFIG_FILE);
    if (!existsSync(cfg)) return undefined;
    const config = parseHfConfig(readFileSync(cfg, 'utf8'), cfg);
    const files = Object.keys(MODEL_FILE_LIMITS)
      .filter((n) => existsSync(join(dir, n)))
      .map((name) => ({ name, bytes: readCapped(join(dir, name), name) }));
    const set = { config, files };
    return files.length > 0 && networkIdOfModel(set, genesis) === networkId ? set : undefined;
  } catch {
    return undefined;
  }
}

export interface FetchNetworkModelInit {
  rpc: Pick<RpcNode, 'serverStream'>;
  scores: PenaltySink;
  /** Peers to ask (connected ones), read again on every round. */
  peers: () => string[];
  dataDir: string;
  networkId: string;
  genesis: Genesis;
  timeoutMs: number;
  signal?: AbortSignal;
  log: Logger;
}

/**
 * The network's model files from peers (or from an earlier fetch): rounds over the connected peers every second
 * until one serves files that hash to the network id, or `timeoutMs` has passed (the last error is thrown then).
 * Returns the set and the directory it was written to (the tokenizer loads from there).
 */
export async function fetchNetworkModel(i: FetchNetworkModelInit): Promise<{ set: ModelFileSet; dir: string }> {
  const dir = fetchedModelDir(i.dataDir, i.networkId);
  const cached = cachedModel(dir, i.networkId, i.genesis);
  if (cached !== undefined) {
    i.log.info('model files of the network from an earlier fetch', { dir, files: cached.files.map((f) => f.name).join(',') });
    return { set: cached, dir };
  }
  const manifest = readFileSync(i.genesis.manifestPath);
  const deadline = Date.now() + i.timeoutMs;
  let last: unknown;
  let waitLogged = false;
  for (;;) {
    i.signal?.throwIfAborted();
    const peers = i.peers();
    if (peers.length > 0) {
      try {
        const got = await fetchModelFiles({ rpc: i.rpc, scores: i.scores, log: i.log }, peers, {
          networkId: i.networkId,
          idOf: (config, commitment) => networkIdOf(config, commitment, manifest),
          ...(i.signal === undefined ? {} : { signal: i.signal }),
        });
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        for (const f of got.files) writeFileSync(join(dir, f.name), f.bytes);
        writeFileSync(join(dir, FETCHED_CONFIG_FILE), JSON.stringify(got.config));
        i.log.info('model files of the network fetched and verified', { peer: got.peer, files: got.files.map((f) => f.name).join(','), layers: got.config.num_hidden_layers });
        return { set: { config: got.config, files: got.files }, dir };
      } catch (e) {
        if (i.signal?.aborted === true) throw e;
        last = e;
        i.log.debug('model files not fetched yet', { peers: peers.length, error: errorMessage(e) });
      }
    }
    if (Date.now() >= deadline) {
      throw last ?? new ConfigError(`no peer connected within ${i.timeoutMs} ms to fetch the model files of network ${i.networkId} from`, { networkId: i.networkId });
    }
    if (!waitLogged) {
      waitLogged = true;
      i.log.info('waiting for a peer that serves the model files of the network', { networkId: i.networkId });
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      i.signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
}
