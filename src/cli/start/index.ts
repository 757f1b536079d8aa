/**
 * `neuroshard start`: runs a node until Ctrl-C or SIGTERM, then leaves gracefully (training checkpointed, records
 * withdrawn, connections closed). The node's parts are composed in src/node/node.ts.
 */
import { readFileSync } from 'node:fs';
import { addressFromPublicKey } from '../../identity/index.js';
import { NodeLog } from '../../node/logs.js';
import { NeuroShardNode } from '../../node/node.js';
import { loadOptions } from '../../node/options.js';
import { createLogger } from '../../util/logger.js';
import { stringFlag, stringListFlag, UsageError, type Command } from '../command.js';
import { detachStart } from './detach.js';

/**
 * `--hop-push`, `--no-hop-push` or `--hop-push auto` (session 30): the flag is a boolean (a bare --hop-push stays
 * "on"), so `auto` arrives as the command's one positional argument; any other positional is a usage error.
 */
export function hopPushFlag(flag: unknown, positionals: readonly string[]): boolean | 'auto' | undefined {
  const auto = flag === true && positionals.length === 1 && positionals[0] === 'auto';
  if (positionals.length > 0 && !auto) throw new UsageError(`unexpected argument ${positionals[0]}`);
  return auto ? 'auto' : typeof flag === 'boolean' ? flag : undefined;
}

export const startCommand: Command = {
  name: 'start',
  summary: 'run a node (the genesis node when given no peers) until Ctrl-C',
  flags: {
    tracker: { type: 'string', multiple: true, value: 'URL', description: 'bootstrap tracker to announce to and find peers through' },
    'api-port': { type: 'string', value: 'PORT', description: "port of the node's HTTP API: status, dashboard, /v1 (default 8000; 0 picks one; --api-host sets the address)" },
    'api-host': { type: 'string', value: 'ADDR', description: 'address the HTTP API binds (default 127.0.0.1); another (e.g. 0.0.0.0) exposes /v1 behind API keys (neuroshard apikey)' },
    'api-cors': { type: 'string', multiple: true, value: 'ORIGIN', description: 'origin allowed to call /v1 from a browser (default none)' },
    'api-rate-limit': { type: 'string', value: 'N', description: '/v1 requests per minute per API key (default 60; 0 = unlimited)' },
    listen: { type: 'string', multiple: true, value: 'MULTIADDR', description: 'P2P listen address (default /ip4/0.0.0.0/tcp/9000 and /ip4/0.0.0.0/tcp/9001/ws; port 0 picks one); the direct data lane for RPCs listens on one more TCP port of the same host (config `lanePort`, default any free one; `rpcLane: false` turns lanes off)' },
    announce: { type: 'string', multiple: true, value: 'MULTIADDR', description: 'address to announce instead of the listen addresses' },
    bootstrap: { type: 'string', multiple: true, value: 'MULTIADDR', description: 'peer to join through (ends in /p2p/<peerId>)' },
    genesis: { type: 'boolean', description: 'found a new network even when peers or trackers are given (its key becomes the genesis key)' },
    'genesis-key': { type: 'string', value: 'HEX', description: "the network's genesis public key (66 hex); default: the founder's own, a joiner learns it from its first peers" },
    mdns: { type: 'boolean', description: 'LAN discovery through mDNS (default on; --no-mdns turns it off)' },
    upnp: { type: 'boolean', description: 'UPnP port mapping on the router (default on; --no-upnp turns it off)' },
    relay: { type: 'boolean', description: 'offer a circuit relay to peers that cannot be dialled directly' },
    span: { type: 'string', value: 'auto|A:B|none', description: 'layers to hold: auto (default) lets the layer pool choose, A:B pins layers A to B-1 (half-open, as status and the dashboard print spans), none holds no layers' },
    'memory-mb': { type: 'string', value: 'N', description: 'cap on the memory offered for layers, MiB (default: free memory minus a reserve)' },
    checkpoint: { type: 'string', value: 'DIR', description: "genesis node: make this checkpoint (ours or a Hugging Face Llama one) the network's model" },
    'network-id': { type: 'string', value: 'ID', description: "join the network of this id (printed by its genesis node) when it was founded from a checkpoint you do not have: its config and tokenizer come from peers, verified against the id" },
    wire: { type: 'string', value: 'f32|f16|bf16', description: 'dtype of activations sent to other hops (default f32)' },
    weights: { type: 'string', value: 'f32|int8', description: 'hold the span as f32 (default) or int8 blocks (inference only, ~3.5x more layers per MiB)' },
    'hop-timeout-ms': { type: 'string', value: 'MS', description: 'a hop that does not answer a decode step within this is replaced (default 200)' },
    'hop-push': { type: 'boolean', description: "decode steps of this node's generations go hop to hop: each hop pushes its output to the next as well as answering (default off; --hop-push; --hop-push auto: only across hops whose round-trip floor this node measures at 1.5 ms or more)" },
    'pay-inference': { type: 'string', value: 'auto|off', description: 'pay for the generations this node drives through other nodes, from its wallet, when it covers them (default auto)' },
    'route-explore': { type: 'string', value: 'R', description: 'share of fresh generations this entry node routes through one not yet measured holder, 0..1; 0 = off, always the usual near-best route (default 0.05)' },
    'validation-rate': { type: 'string', value: 'R', description: "share of other hops' sessions on this node's span it re-executes as a validator, 0..1, run at most at 0.25 (the network's ceiling); 0 = off (default 0.05; needs 100 NEURO staked)" },
    train: { type: 'boolean', description: 'train the model on the genesis corpus: a whole-model holder in DiLoCo outer rounds, a holder of part of it in a pipeline chain (default on; --no-train turns it off)' },
    corpus: { type: 'string', value: 'DIR|URL', description: 'genesis manifest to train on: folder, manifest file or http(s) URL (default: the bundled corpus)' },
    'train-steps': { type: 'string', value: 'N', description: 'target step of the training run (default 100000)' },
    'eval-every': { type: 'string', value: 'K', description: 'validation loss every K steps (default 500)' },
    'checkpoint-every': { type: 'string', value: 'K', description: 'checkpoint every K steps (default 500; always on stop)' },
    // DiLoCo between replicas (issue 9): defaults in src/node/options.ts
    'inner-steps': { type: 'string', value: 'H', description: 'inner steps per outer round (default 500)' },
    'outer-lr': { type: 'string', value: 'LR', description: 'outer Nesterov learning rate (default 0.7)' },
    'outer-momentum': { type: 'string', value: 'M', description: 'outer Nesterov momentum (default 0.9)' },
    aggregator: { type: 'string', value: 'NAME', description: 'robust aggregator: mean, trimmed-mean (default), median, krum, multi-krum, geometric-median, centered-clip' },
    compress: { type: 'string', value: 'none|fp16|int8|sparse', description: 'compression of the pseudo-gradients on the wire (default int8)' },
    'outer-quorum': { type: 'string', value: 'Q', description: "fraction of a layer's holders that closes a round at its deadline (default 0.667)" },
    'outer-sync-timeout-ms': { type: 'string', value: 'MS', description: 'deadline of the outer sync after the inner steps (default 120000)' },
    // pipeline training across a chain (issue 9 §1): defaults in src/node/options.ts
    'micro-batches': { type: 'string', value: 'M', description: 'micro-batches per pipeline step of a chain this node drives, 1-256, dividing the batch size (default 4)' },
    'pipeline-schedule': { type: 'string', value: 'gpipe|1f1b', description: 'order of the micro-batches through the stages (default 1f1b)' },
    'stage-timeout-ms': { type: 'string', value: 'MS', description: 'deadline of one stage call on a hop; past it the step is abandoned and the chain re-formed (default 120000)' },
    'passphrase-file': { type: 'string', value: 'FILE', description: 'passphrase of an encrypted keystore (or NEUROSHARD_PASSPHRASE)' },
    detach: { type: 'boolean', description: 'run the node in the background (output in <data-dir>/logs/); `neuroshard stop` stops it' },
    'wait-s': { type: 'string', value: 'S', description: '--detach: how long to wait for the node to come up (default 300)' },
    json: { type: 'boolean', description: 'print {"peerId", "address", "api", "dashboard", "pid", "dataDir"} once the node is up' },
  },
  async run(flags, positionals, io) {
    const hopPush = hopPushFlag(flags['hop-push'], positionals);
    // a refused value is named by its flag (--memory-mb: …) in main.ts (optionFlagError)
    const opts = loadOptions({
      flags: {
        dataDir: stringFlag(flags, 'data-dir'),
        logLevel: stringFlag(flags, 'log-level'),
        threads: stringFlag(flags, 'threads'),
        trackers: stringListFlag(flags, 'tracker').length > 0 ? stringListFlag(flags, 'tracker') : undefined,
        apiPort: stringFlag(flags, 'api-port'),
        apiHost: stringFlag(flags, 'api-host'),
        apiCorsOrigins: stringListFlag(flags, 'api-cors').length > 0 ? stringListFlag(flags, 'api-cors') : undefined,
        apiRateLimit: stringFlag(flags, 'api-rate-limit'),
        listen: stringListFlag(flags, 'listen').length > 0 ? stringListFlag(flags, 'listen') : undefined,
        announce: stringListFlag(flags, 'announce').length > 0 ? stringListFlag(flags, 'announce') : undefined,
        bootstrap: stringListFlag(flags, 'bootstrap').length > 0 ? stringListFlag(flags, 'bootstrap') : undefined,
        genesis: flags.genesis,
        genesisKey: stringFlag(flags, 'genesis-key'),
        mdns: flags.mdns,
        upnp: flags.upnp,
        relay: flags.relay,
        span: stringFlag(flags, 'span'),
        memoryMb: stringFlag(flags, 'memory-mb'),
        checkpoint: stringFlag(flags, 'checkpoint'),
        networkId: stringFlag(flags, 'network-id'),
        train: flags.train,
        corpus: stringFlag(flags, 'corpus'),
        trainSteps: stringFlag(flags, 'train-steps'),
        evalEvery: stringFlag(flags, 'eval-every'),
        checkpointEvery: stringFlag(flags, 'checkpoint-every'),
        wire: stringFlag(flags, 'wire'),
        weights: stringFlag(flags, 'weights'),
        hopTimeoutMs: stringFlag(flags, 'hop-timeout-ms'),
        hopPush,
        validationRate: stringFlag(flags, 'validation-rate'),
        routeExplore: stringFlag(flags, 'route-explore'),
        payInference: stringFlag(flags, 'pay-inference'),
        innerSteps: stringFlag(flags, 'inner-steps'),
        outerLr: stringFlag(flags, 'outer-lr'),
        outerMomentum: stringFlag(flags, 'outer-momentum'),
        aggregator: stringFlag(flags, 'aggregator'),
        compress: stringFlag(flags, 'compress'),
        outerQuorum: stringFlag(flags, 'outer-quorum'),
        outerSyncTimeoutMs: stringFlag(flags, 'outer-sync-timeout-ms'),
        microBatches: stringFlag(flags, 'micro-batches'),
        pipelineSchedule: stringFlag(flags, 'pipeline-schedule'),
        stageTimeoutMs: stringFlag(flags, 'stage-timeout-ms'),
      },
    });
    if (flags.detach === true) return detachStart(flags, opts.dataDir, io, positionals);
    const nodeLog = new NodeLog(opts.dataDir);
    const log = createLogger({
      level: opts.logLevel,
      module: 'node',
      write: (line) => {
        process.stderr.write(line + '\n');
        nodeLog.write(line);
      },
    });
    const passphraseFile = stringFlag(flags, 'passphrase-file');
    const passphrase = passphraseFile === undefined ? undefined : readPassphrase(passphraseFile);
    let node: NeuroShardNode;
    try {
      node = await NeuroShardNode.init(opts, { log, nodeLog, ...(passphrase === undefined ? {} : { passphrase }) });
    } catch (e) {
      nodeLog.close();
      throw e;
    }
    io.stderr(`node ${node.network.peerId} up; dashboard at ${node.apiUrl}/; status at ${node.apiUrl}/api/status; OpenAI-compatible API at ${node.apiUrl}/v1; Ctrl-C to stop\n`);
    if (flags.json === true) {
      io.stdout(
        JSON.stringify({
          peerId: node.network.peerId,
          address: addressFromPublicKey(node.key.publicKey),
          api: node.apiUrl,
          dashboard: `${node.apiUrl}/`,
          pid: process.pid,
          dataDir: opts.dataDir,
        }) + '\n',
      );
    }
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    io.stderr('stopping: saving a checkpoint, withdrawing records, closing connections\n');
    await node.close();
    log.info('node stopped');
    nodeLog.close();
    return 0;
  },
};

function readPassphrase(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --passphrase-file ${file}: ${(e as Error).message}`);
  }
  if (text.length > 4096) throw new UsageError('--passphrase-file is larger than 4 KiB');
  return text.split(/\r?\n/)[0] ?? '';
}
