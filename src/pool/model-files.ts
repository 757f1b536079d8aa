/**
 * The network's model files from peers: its config and the tokenizer files that go with it (a Hugging Face
 * `tokenizer.json` with `tokenizer_config.json`, the chat template, and `generation_config.json`; or our own
 * tokenizer file), over the `checkpoint` server stream (docs/PROTOCOL.md "## Model files").
 *
 * A node without the checkpoint (a `--span none` entry, a joiner that takes its span from peers) needs them to encode
 * prompts and render chats exactly as the genesis node does. It trusts no peer for them: the network id commits to
 * the config and to the tokenizer files (node/genesis.ts `networkIdOf` over `tokenizerCommitment` below), so a set of
 * files is used only when the id recomputed from the bytes received equals the network's own id. A peer that sends
 * another set is penalised and the next one is asked.
 *
 * Requests (the `checkpoint` method's `model_hash` field):
 *   - "model-files": one chunk, a JSON manifest `{ v: 1, config, files: [{ name, size, sha256 }] }` (≤ 64 KiB);
 *   - "file:NAME": the named file in chunks of at most 1 MiB from `offset`, each naming the total size and the file's
 *     SHA-256 (as span chunks do).
 * Limits: only the names in MODEL_FILE_LIMITS, each with its own size cap; each stream has the method's idle timeout
 * and the whole fetch from one peer a deadline (`perPeerMs`).
 */
import { parseHfConfig, type LlamaConfig } from '../model/config.js';
import * as methods from '../protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../protocols/pb/node.js';
import type { RpcNode } from '../protocols/rpc/service.js';
import { linkSignals } from '../util/abort.js';
import { sha256Hex } from '../util/bytes.js';
import { errorMessage, NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { PenaltySink } from './transfer.js';
import { sha256 } from './weights.js';

/** The request model_hash that asks for the manifest. */
export const MODEL_FILES_REQUEST = 'model-files';
/** The prefix of a request for one file. */
export const MODEL_FILE_PREFIX = 'file:';
/** Largest manifest served or accepted. */
export const MAX_MODEL_MANIFEST_BYTES = 64 * 1024;
/** Bytes of data in one file chunk (under the method's 4 MiB frame limit). */
export const MODEL_FILE_CHUNK_BYTES = 1 << 20;
/** Our own tokenizer file's name (model/tokenizer/constants.ts TOKENIZER_FILE_NAME). */
export const OWN_TOKENIZER_FILE = 'neuroshard-tokenizer.json';

/** The files that travel, with the largest size accepted for each (the loaders' own caps). */
export const MODEL_FILE_LIMITS: Readonly<Record<string, number>> = {
  'tokenizer.json': 64 << 20,
  'tokenizer_config.json': 4 << 20,
  'generation_config.json': 64 * 1024,
  [OWN_TOKENIZER_FILE]: 64 << 20,
};

/** Points taken from a peer that serves files other than the network's (p2p/peer-score.ts PENALTY.forged). */
export const BAD_MODEL_FILES_PENALTY = 50;

export interface ModelFile {
  name: string;
  bytes: Uint8Array;
}

/** A network's model: its config and its tokenizer files. */
export interface ModelFileSet {
  config: LlamaConfig;
  files: ModelFile[];
}

/** A peer's files do not hash to the network id: another tokenizer, template or config. */
export class ModelFilesMismatchError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('MODEL_FILES_MISMATCH', message, { fault: 'peer', meta });
  }
}

/** No peer served the network's model files (none has them yet, or all that answered were refused). */
export class ModelFilesUnavailableError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('MODEL_FILES_UNAVAILABLE', message, { fault: 'local', meta });
  }
}

/**
 * The bytes the network id hashes for the tokenizer. Our own tokenizer alone: its file's bytes (so the bundled
 * genesis keeps its id). Otherwise a listing of every file by name and SHA-256, sorted by name, so that the chat
 * template (tokenizer_config.json) and the generation config are committed to as well as tokenizer.json.
 */
export function tokenizerCommitment(files: readonly ModelFile[]): Uint8Array {
  if (files.length === 1 && files[0]!.name === OWN_TOKENIZER_FILE) return files[0]!.bytes;
  const lines = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((f) => `${f.name} ${sha256Hex(f.bytes)}\n`);
  return new TextEncoder().encode(`neuroshard-tokenizer-files-v1\n${lines.join('')}`);
}

interface ManifestEntry {
  name: string;
  size: number;
  sha256: string;
}

/** SHA-256 of each served file, computed once (a tokenizer.json is megabytes, and every request names its hash). */
const shaOf = new WeakMap<ModelFile, Uint8Array<ArrayBuffer>>();
function fileSha(f: ModelFile): Uint8Array<ArrayBuffer> {
  let h = shaOf.get(f);
  if (h === undefined) shaOf.set(f, (h = sha256(f.bytes)));
  return h;
}

function manifestBytes(set: ModelFileSet): Uint8Array<ArrayBuffer> {
  const files: ManifestEntry[] = set.files.map((f) => ({ name: f.name, size: f.bytes.byteLength, sha256: Buffer.from(fileSha(f)).toString('hex') }));
  return new TextEncoder().encode(JSON.stringify({ v: 1, config: set.config, files }));
}

function malformed(msg: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('MODEL_FILES_MALFORMED', msg);
}

/** Validates a manifest received from a peer (sizes, names, hashes); throws PeerMisbehaviourError. */
export function parseModelManifest(bytes: Uint8Array): { config: LlamaConfig; files: ManifestEntry[] } {
  if (bytes.byteLength > MAX_MODEL_MANIFEST_BYTES) throw malformed(`manifest larger than ${MAX_MODEL_MANIFEST_BYTES} bytes`);
  let o: unknown;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw malformed(`manifest is not JSON: ${errorMessage(e)}`);
  }
  if (o === null || typeof o !== 'object' || (o as { v?: unknown }).v !== 1) throw malformed('manifest: not version 1');
  const m = o as { config?: unknown; files?: unknown };
  let config: LlamaConfig;
  try {
    config = parseHfConfig(m.config, 'model-files manifest');
  } catch (e) {
    throw malformed(`manifest config: ${errorMessage(e)}`);
  }
  if (!Array.isArray(m.files) || m.files.length === 0 || m.files.length > Object.keys(MODEL_FILE_LIMITS).length) throw malformed('manifest: bad file list');
  const seen = new Set<string>();
  const files: ManifestEntry[] = [];
  for (const f of m.files as unknown[]) {
    const e = f as Partial<ManifestEntry> | null;
    if (e === null || typeof e !== 'object' || typeof e.name !== 'string' || typeof e.size !== 'number' || typeof e.sha256 !== 'string') throw malformed('manifest: bad file entry');
    const cap = Object.hasOwn(MODEL_FILE_LIMITS, e.name) ? MODEL_FILE_LIMITS[e.name] : undefined;
    if (cap === undefined) throw malformed(`manifest: file ${JSON.stringify(e.name.slice(0, 64))} is not a model file`);
    if (seen.has(e.name)) throw malformed(`manifest: ${e.name} twice`);
    if (!Number.isInteger(e.size) || e.size < 0 || e.size > cap) throw malformed(`manifest: ${e.name} size ${e.size} out of 0..${cap}`);
    if (!/^[0-9a-f]{64}$/.test(e.sha256)) throw malformed(`manifest: ${e.name} sha256 is not 64 hex characters`);
    seen.add(e.name);
    files.push({ name: e.name, size: e.size, sha256: e.sha256 });
  }
  return { config, files };
}

/**
 * Answers the model-files requests of the `checkpoint` stream, or returns undefined for any other request (the
 * span handler takes it). `set` is undefined while this node does not know the network's files.
 */
export function modelFilesReply(set: ModelFileSet | undefined, req: CheckpointRequest): CheckpointChunk[] | undefined {
  const want = req.modelHash;
  if (want !== MODEL_FILES_REQUEST && !want.startsWith(MODEL_FILE_PREFIX)) return undefined;
  if (set === undefined) throw new NeuroShardError('MODEL_FILES_UNKNOWN', 'this node does not have the model files', { fault: 'caller' });
  if (want === MODEL_FILES_REQUEST) {
    const data = manifestBytes(set);
    return [{ name: MODEL_FILES_REQUEST, offset: 0n, totalSize: BigInt(data.byteLength), data, modelHash: '', sha256: sha256(data) }];
  }
  const name = want.slice(MODEL_FILE_PREFIX.length);
  const f = set.files.find((x) => x.name === name);
  if (f === undefined) throw new NeuroShardError('MODEL_FILE_UNKNOWN', `no model file ${JSON.stringify(name.slice(0, 64))}`, { fault: 'caller' });
  const total = BigInt(f.bytes.byteLength);
  const sha = fileSha(f);
  // file bytes are never shared memory (read from disk or received): the chunk type wants a plain ArrayBuffer view
  const bytes = f.bytes as Uint8Array<ArrayBuffer>;
  if (req.offset >= total) return [{ name, offset: total, totalSize: total, data: new Uint8Array(0), modelHash: '', sha256: sha }];
  const out: CheckpointChunk[] = [];
  for (let o = Number(req.offset); o < f.bytes.byteLength; o += MODEL_FILE_CHUNK_BYTES) {
    out.push({ name, offset: BigInt(o), totalSize: total, data: bytes.subarray(o, Math.min(bytes.byteLength, o + MODEL_FILE_CHUNK_BYTES)), modelHash: '', sha256: sha });
  }
  return out;
}

export interface ModelFilesDeps {
  rpc: Pick<RpcNode, 'serverStream'>;
  scores?: PenaltySink;
  log?: Logger;
}

export interface FetchModelFilesOptions {
  /** The network id the files must hash to. */
  networkId: string;
  /** The network id of a config and tokenizer commitment (node/genesis.ts networkIdOf with the genesis manifest). */
  idOf: (config: LlamaConfig, tokenizerCommitment: Uint8Array) => string;
  signal?: AbortSignal;
  /** Deadline of everything taken from one peer (ms). Default 120 s. */
  perPeerMs?: number;
}

async function fetchBlob(deps: ModelFilesDeps, peer: string, modelHash: string, size: number, signal: AbortSignal): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let have = 0;
  for await (const c of deps.rpc.serverStream(peer, methods.checkpoint, { modelHash, offset: 0n }, { signal })) {
    if (c.totalSize !== BigInt(size) || c.offset !== BigInt(have) || have + c.data.byteLength > size) throw malformed(`${modelHash}: chunk at ${c.offset} of ${c.totalSize} where ${have} of ${size} were expected`);
    out.set(c.data, have);
    have += c.data.byteLength;
    if (have === size) break;
  }
  if (have !== size) throw malformed(`${modelHash}: stream ended at ${have} of ${size} bytes`);
  return out;
}

async function fetchFrom(deps: ModelFilesDeps, peer: string, o: FetchModelFilesOptions, signal: AbortSignal): Promise<ModelFileSet> {
  // the manifest: one chunk, its size named by itself (capped)
  let manifest: Uint8Array | undefined;
  for await (const c of deps.rpc.serverStream(peer, methods.checkpoint, { modelHash: MODEL_FILES_REQUEST, offset: 0n }, { signal })) {
    if (c.data.byteLength > MAX_MODEL_MANIFEST_BYTES || BigInt(c.data.byteLength) !== c.totalSize) throw malformed('manifest chunk of a bad size');
    manifest = c.data;
    break;
  }
  if (manifest === undefined) throw malformed('model-files: empty stream');
  const m = parseModelManifest(manifest);
  const files: ModelFile[] = [];
  for (const e of m.files) {
    const bytes = await fetchBlob(deps, peer, MODEL_FILE_PREFIX + e.name, e.size, signal);
    if (sha256Hex(bytes) !== e.sha256) throw malformed(`${e.name}: bytes do not match the manifest's SHA-256`);
    files.push({ name: e.name, bytes });
  }
  const id = o.idOf(m.config, tokenizerCommitment(files));
  if (id !== o.networkId) {
    throw new ModelFilesMismatchError(`the model files of ${peer} hash to network ${id}, not ${o.networkId}: another tokenizer, chat template or config`, { peer, got: id, want: o.networkId });
  }
  return { config: m.config, files };
}

/**
 * Asks `peers` in turn for the network's model files and returns the first set whose config and tokenizer files hash
 * to `o.networkId`. A peer whose files hash to another id, or that breaks the protocol, is penalised; one that does
 * not have the files (or fails in transport) is skipped. Throws ModelFilesMismatchError when every peer that answered
 * sent other files, ModelFilesUnavailableError when none had them.
 */
export async function fetchModelFiles(deps: ModelFilesDeps, peers: readonly string[], o: FetchModelFilesOptions): Promise<ModelFileSet & { peer: string }> {
  let refused: ModelFilesMismatchError | undefined;
  for (const peer of peers) {
    o.signal?.throwIfAborted();
    const link = linkSignals(AbortSignal.timeout(o.perPeerMs ?? 120_000), o.signal);
    try {
      return { ...(await fetchFrom(deps, peer, o, link.signal)), peer };
    } catch (e) {
      if (o.signal?.aborted === true) throw e;
      if (e instanceof ModelFilesMismatchError) {
        refused = e;
        deps.scores?.penalise(peer, BAD_MODEL_FILES_PENALTY, 'model-files: files of another network');
        deps.log?.warn('model files refused', { peer, error: e.message });
      } else if (e instanceof PeerMisbehaviourError && e.code === 'MODEL_FILES_MALFORMED') {
        deps.scores?.penalise(peer, BAD_MODEL_FILES_PENALTY, `model-files: ${e.message}`);
        deps.log?.warn('model files refused', { peer, error: e.message });
      } else {
        deps.log?.debug('model files not taken', { peer, error: errorMessage(e) });
      }
    } finally {
      link.dispose();
    }
  }
  if (refused !== undefined) throw refused;
  throw new ModelFilesUnavailableError(`none of ${peers.length} peers served the model files of network ${o.networkId}`, { peers: peers.length });
}
