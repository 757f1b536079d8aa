/**
 * Node options: every default in one place, merged in one place.
 *
 * Precedence, lowest to highest: DEFAULTS → `<data-dir>/config.json` → `NEUROSHARD_*` environment variables →
 * command-line flags. Each layer is validated before it is merged; a bad value fails with a ConfigError (file,
 * environment) or an InvalidArgumentError (flag) that names the option and where it came from.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir, availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { DEFAULT_DATA_DIR_NAME, ENV_PREFIX } from '../params/index.js';
import { ConfigError, InvalidArgumentError } from '../util/errors.js';
import { LOG_LEVELS, type LogLevel } from '../util/logger.js';
import { nearest, orList } from '../util/nearest.js';

export interface NodeOptions {
  /** Where the node keeps its state: keys, checkpoints, ledger. */
  dataDir: string;
  logLevel: LogLevel;
  /** Threads of the native compute pool (the one level of threading inside the compute worker). */
  threads: number;
  /** Bootstrap trackers (http/https base URLs): announced to every 20 s and asked for peers. */
  trackers: string[];
  /** Port of the local status endpoint, served on 127.0.0.1 only; 0 picks a free port. */
  apiPort: number;
  /** Address the HTTP API binds: 127.0.0.1 (default) or ::1; another address exposes /v1 behind API keys. */
  apiHost: string;
  /** Origins allowed to call /v1 from a browser (CORS); empty = none. */
  apiCorsOrigins: string[];
  /** /v1 requests per minute per API key (local callers share one budget when keys are off); 0 = unlimited. */
  apiRateLimit: number;
  /** P2P listen multiaddrs (port 0 picks one); an address ending in /p2p-circuit listens through that relay. */
  listen: string[];
  /** Multiaddrs to announce instead of the listen addresses (e.g. a forwarded public port). */
  announce: string[];
  /** Peers to join through (multiaddrs ending in /p2p/<peerId>). */
  bootstrap: string[];
  /** Found a new network even when peers or trackers are given. */
  genesis: boolean;
  /** LAN discovery through mDNS. */
  mdns: boolean;
  /** Ask the router for a port mapping (UPnP). */
  upnp: boolean;
  /** Offer a circuit relay to peers that cannot be dialled directly. */
  relay: boolean;
  /** Bytes one relayed connection may carry (MiB) and how long it may last (s): raised for tensor traffic. */
  relayDataLimitMb: number;
  relayDurationS: number;
  /** Most open connections before libp2p prunes. */
  maxConnections: number;
  /**
   * Which layers this node holds (`--span`): 'auto' lets the layer pool choose (src/pool/), a:b pins [a, b),
   * 'none' holds no layers (a client / entry node).
   */
  span: SpanOption;
  /** Cap on the memory offered for layers, MiB (`--memory-mb`); undefined = free memory minus a reserve. */
  memoryMb: number | undefined;
  /**
   * A checkpoint directory (ours or a Hugging Face Llama one) that the genesis node makes the network's model
   * (`--checkpoint DIR`); undefined = the seeded nano initialisation. A node started from a checkpoint serves it
   * and does not train.
   */
  checkpoint: string | undefined;
  /** Heartbeat period, and silence after which a peer is stale / dead (ms). */
  heartbeatIntervalMs: number;
  /** How often the node gives free C-heap pages back to the OS (ms; 0 = never): node/heap-trim.ts. */
  heapTrimIntervalMs: number;
  peerStaleMs: number;
  peerDeadMs: number;
  /** Train the model on the genesis corpus when this node holds all of it (the genesis node's job). */
  train: boolean;
  /** Genesis manifest to train on: a folder, manifest file or http(s) URL; undefined = the bundled corpus. */
  corpus: string | undefined;
  /** The training run's target step (its cosine schedule spans this many steps); a node trains until stopped or here. */
  trainSteps: number;
  /** Validation loss every K steps, checkpoint every K steps (0 = only when stopped). */
  evalEvery: number;
  checkpointEvery: number;
  /**
   * A replica's checkpoints moved aside (`<data-dir>/checkpoints/other-shape/` and `unsupported-version/`, node/train.ts):
   * each of the two folders keeps the newest `checkpointsAsideKeep` (by when they were moved), and at most
   * `checkpointsAsideMaxMb` MiB of them together (0: no cap on bytes; the newest one stays whatever its size); older
   * ones are removed at the run's start, with a warning naming each (training/resume.ts `asideToRemove`). Before
   * session 29 nothing there was ever removed: each change of the network's shape added keep-last whole checkpoints.
   */
  checkpointsAsideKeep: number;
  checkpointsAsideMaxMb: number;
  // ---- pipeline training across a chain of holders (src/training/chain.ts, protocols/train-stage.ts) ----
  /** Micro-batches per chain step (must divide the batch size) and their schedule (gpipe, 1f1b). */
  microBatches: number;
  pipelineSchedule: 'gpipe' | '1f1b';
  /** Deadline of one stage op on a peer before the step is abandoned and the chain re-formed (ms). */
  stageTimeoutMs: number;
  // ---- DiLoCo between replicas (src/training/: outer.ts, rounds.ts, aggregation/, compression/) ----
  /** H: inner AdamW steps per outer round. */
  innerSteps: number;
  /** Outer Nesterov step: learning rate η and momentum μ (DiLoCo's 0.7 / 0.9). */
  outerLr: number;
  outerMomentum: number;
  /** Robust aggregator of the pseudo-gradients (training/aggregation: mean, trimmed-mean, median, krum, multi-krum,
   * geometric-median, centered-clip, gauntlet). */
  aggregator: string;
  /** Compression of Δ on the wire: none, fp16, int8, sparse (top 1/64 per 4096-chunk, 2-bit, error feedback). */
  compress: string;
  /** Fraction of a layer's holders whose Δ closes a round at its deadline, and that deadline after the H-th step (ms). */
  outerQuorum: number;
  outerSyncTimeoutMs: number;
  /** Inference (issue 8): dtype of activations between hops, a hop's decode-step deadline before failover (ms), the KV-cache budget for peers' sessions (MiB). */
  wire: 'f32' | 'f16' | 'bf16';
  hopTimeoutMs: number;
  inferenceMemoryMb: number;
  /**
   * Session 29 (`--hop-push`): generations this entry drives send decode steps hop to hop (router/driver.ts
   * `DriverOptions.push`; hops answer and push only when asked, so this is the entry's choice alone). Off by default
   * until measured on a real network (docs/LIMITS.md "Session 29: hop-to-hop pushes"). `'auto'` (session 30,
   * `--hop-push auto`): only across boundaries whose two hops this entry measured at router/driver.ts
   * PUSH_AUTO_MIN_RTT_MS or more.
   */
  hopPush: boolean | 'auto';
  /**
   * Share of fresh generations this entry node routes through one unproven holder (`--route-explore`, router/route.ts
   * `exploreRoute`: newcomers get measured and then compete on their figures); 0 turns exploration off, so that the
   * route is always the usual near-best chain (tests and experiments that compare tokens across routes).
   */
  routeExplore: number;
  /**
   * Issue 11 §2 validators (`--validation-rate`, src/node/validator.ts): the share of other hops' sessions on this
   * node's span it re-executes, drawn per hop from the requester's receipt signature (protocols/hop-validator.ts
   * isSampled). 0 turns the validator role off (no sampling, no co-checks). Default 0.05 (1 in 20).
   */
  validationRate: number;
  /**
   * Issue 11 §2 (`--pay-inference`, src/node/market.ts nodeInferencePayer): 'auto' pays for every generation this
   * node drives through other nodes, from its wallet (a market request for the tokens used, settled on the route's
   * signed commitments), when the wallet covers it; 'off' pays nothing (the hops serve unpaid). Default 'auto'.
   */
  payInference: 'auto' | 'off';
  /**
   * How the node holds its span's weights (`--weights`): f32, or int8 (inference only: the projection matrices as
   * int8 blocks of 32 with a scale each, about 3.5× less memory per layer; model/shard.ts WeightFormat). An int8 node
   * does not train and serves no weights to joiners (it keeps no float32 copy).
   */
  weights: 'f32' | 'int8';
  /**
   * Unary RPCs reuse one stream per (peer, method) instead of opening one per call (issue 8 §5; protocol
   * `<method id>/mux/2.0.0`, falling back to a stream per call with peers that do not speak it). The node serves
   * both protocols either way. Default on.
   */
  rpcStreamReuse: boolean;
  /**
   * RPC streams to a peer with a direct TCP connection go over a direct data lane (src/p2p/lane/: a plain TCP
   * socket sealed with AES-256-GCM, keys agreed over the authenticated libp2p connection) instead of libp2p's
   * noise + yamux; libp2p stays the fallback for everything a lane cannot carry. The lane's limits and quotas are
   * LANE_DEFAULTS in src/p2p/lane/manager.ts. Default on since session 20: warmed and timed in alternating blocks
   * (session 19) the lane's serving hop is cheaper (p50 0.159 vs 0.257 ms, ~250 µs less CPU per step) and its 1 MiB
   * calls faster than noise + yamux. It opens a second listening port (`lanePort`). `rpcLane: false` turns it off.
   */
  rpcLane: boolean;
  /** TCP port of the lane listener (0: any free port; peers learn it when they set a lane up). */
  lanePort: number;
  /**
   * The network's genesis public key (66 hex characters, `--genesis-key`): the only key whose Genesis event mints
   * the initial allocation (issue 11 §2), and whose holder alone signs the first checkpoint (finality, §3). Unset:
   * the key kept in `<dataDir>/network.json`, else a founding node's own key, else the first one a peer names
   * (trust on first use; node/genesis-key.ts). `checkpointPeriodMs`: ledger time between cuts.
   */
  genesisKey: string | undefined;
  checkpointPeriodMs: number;
  /**
   * Issue 10: the network to join (`--network-id ns1-…`, printed by its genesis node) when it was founded from a
   * checkpoint that this node does not have; undefined = the id of our own `--checkpoint`, else the bundled genesis.
   * Such a node fetches the config and tokenizer files from peers, verified against the id (pool/model-files.ts),
   * waiting at most `modelFetchTimeoutMs` for a peer that serves them.
   */
  networkId: string | undefined;
  modelFetchTimeoutMs: number;
}

export type SpanOption = 'auto' | 'none' | { start: number; end: number };

export const DEFAULTS: NodeOptions = {
  dataDir: join(homedir(), DEFAULT_DATA_DIR_NAME),
  logLevel: 'info',
  threads: Math.max(1, availableParallelism()),
  trackers: [],
  apiPort: 8000,
  apiHost: '127.0.0.1',
  apiCorsOrigins: [],
  apiRateLimit: 60,
  listen: ['/ip4/0.0.0.0/tcp/9000', '/ip4/0.0.0.0/tcp/9001/ws'],
  announce: [],
  bootstrap: [],
  genesis: false,
  genesisKey: undefined,
  checkpointPeriodMs: 5 * 60_000,
  networkId: undefined,
  modelFetchTimeoutMs: 600_000,
  mdns: true,
  upnp: true,
  relay: false,
  relayDataLimitMb: 1024,
  relayDurationS: 1800,
  maxConnections: 300,
  span: 'auto',
  memoryMb: undefined,
  checkpoint: undefined,
  heartbeatIntervalMs: 5000,
  heapTrimIntervalMs: 10_000,
  peerStaleMs: 15_000,
  peerDeadMs: 60_000,
  train: true,
  corpus: undefined,
  trainSteps: 100_000,
  evalEvery: 500,
  checkpointEvery: 500,
  checkpointsAsideKeep: 3, // one run's worth at the default keep-last (model/checkpoint.ts DEFAULT_KEEP_LAST)
  checkpointsAsideMaxMb: 0,
  microBatches: 4,
  pipelineSchedule: '1f1b',
  stageTimeoutMs: 120_000,
  innerSteps: 500,
  outerLr: 0.7,
  outerMomentum: 0.9,
  aggregator: 'trimmed-mean',
  compress: 'int8',
  outerQuorum: 2 / 3,
  outerSyncTimeoutMs: 120_000,
  wire: 'f32',
  hopTimeoutMs: 200,
  inferenceMemoryMb: 512,
  hopPush: false,
  routeExplore: 0.05, // ROUTE_DEFAULTS.explore (router/route.ts): 1 fresh generation in 20
  validationRate: 0.05, // VALIDATION_RATE_DEFAULT (protocols/hop-validator.ts)
  payInference: 'auto',
  weights: 'f32',
  // unary calls share one stream per (peer, method) (src/protocols/rpc/mux.ts; issue 8 §5): ~4x less CPU per call
  // than a stream per call (docs/SCALE.md); nodes serve both protocol ids either way, so mixed networks work
  rpcStreamReuse: true,
  // RPC streams over a direct sealed TCP lane where a direct connection exists (issue 8 §5): on by default since
  // session 20 (docs/LIMITS.md "Session 19" and "Session 20": cheaper hop and faster bulk calls than noise + yamux)
  rpcLane: true,
  lanePort: 0,
};

/** Serving limits of the OpenAI-compatible routes (src/node/openai.ts) that are not options. */
export const OPENAI_SERVING = {
  /** Generations waiting or running at once; more get 503. */
  maxPending: 8,
  /** New tokens when a request names no max_tokens (the context bounds it further). */
  defaultMaxTokens: 256,
} as const;

/** Where an option value came from; used in error messages. */
export type OptionSource = 'default' | 'config' | 'env' | 'flag';

type Parser<T> = (raw: unknown, source: OptionSource) => T;

function fail(key: string, source: OptionSource, why: string): never {
  const msg = `option ${key} (from ${source}): ${why}`;
  // `why` alone in meta: `neuroshard start` names the flag the user typed instead of the key (cli/start)
  if (source === 'flag') throw new InvalidArgumentError(msg, { option: key, why });
  throw new ConfigError(msg, { option: key, source });
}

const parsers: { [K in keyof NodeOptions]: Parser<NodeOptions[K]> } = {
  dataDir: (raw, src) => {
    if (typeof raw !== 'string' || raw.length === 0 || raw.length > 4096) fail('dataDir', src, 'must be a non-empty path');
    return resolve(raw.startsWith('~/') ? join(homedir(), raw.slice(2)) : raw);
  },
  logLevel: (raw, src) => {
    if (typeof raw !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw)) {
      fail('logLevel', src, `must be one of ${LOG_LEVELS.join(', ')}`);
    }
    return raw as LogLevel;
  },
  // digits only, as every integer option: Number() would take "0x10", "1e1" and " 4 " too
  threads: (raw, src) => intIn('threads', raw, src, 1, 256),
  trackers: (raw, src) => {
    // a list (config file, repeated flag) or one comma-separated string (environment)
    const list = typeof raw === 'string' ? raw.split(',').map((x) => x.trim()).filter((x) => x !== '') : raw;
    if (!Array.isArray(list) || list.length > 16) fail('trackers', src, 'must be a list of at most 16 URLs');
    return list.map((u: unknown) => {
      let url: URL | undefined;
      try {
        url = typeof u === 'string' && u.length <= 2048 ? new URL(u) : undefined;
      } catch {
        url = undefined;
      }
      if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) fail('trackers', src, `${JSON.stringify(String(u).slice(0, 100))} is not an http(s) URL`);
      if (url.username !== '' || url.password !== '') fail('trackers', src, 'a tracker URL must not carry a user name or password');
      return u as string;
    });
  },
  apiPort: (raw, src) => {
    const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) fail('apiPort', src, 'must be an integer in 0..65535');
    return n;
  },
  apiHost: (raw, src) => {
    if (typeof raw !== 'string' || isIP(raw) === 0) fail('apiHost', src, 'must be an IP address (127.0.0.1, ::1, 0.0.0.0, :: or one of this machine)');
    return raw;
  },
  apiCorsOrigins: (raw, src) => {
    const list = typeof raw === 'string' ? raw.split(',').map((x) => x.trim()).filter((x) => x !== '') : raw;
    if (!Array.isArray(list) || list.length > 32) fail('apiCorsOrigins', src, 'must be a list of at most 32 origins');
    return list.map((o: unknown) => {
      let u: URL | undefined;
      try {
        u = typeof o === 'string' && o.length <= 256 ? new URL(o) : undefined;
      } catch {
        u = undefined;
      }
      if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.origin !== o) fail('apiCorsOrigins', src, `${JSON.stringify(String(o).slice(0, 100))} is not an origin like https://example.com`);
      return o as string;
    });
  },
  apiRateLimit: (raw, src) => intIn('apiRateLimit', raw, src, 0, 1_000_000),
  listen: (raw, src) => multiaddrList('listen', raw, src, 1),
  announce: (raw, src) => multiaddrList('announce', raw, src, 0),
  bootstrap: (raw, src) => {
    const list = multiaddrList('bootstrap', raw, src, 0);
    for (const a of list) if (!/\/p2p\/[^/]+$/.test(a)) fail('bootstrap', src, `${a} must end in /p2p/<peerId>`);
    return list;
  },
  genesis: (raw, src) => bool('genesis', raw, src),
  genesisKey: (raw, src) => {
    if (raw === undefined || raw === '') return undefined;
    if (typeof raw === 'string' && raw.length <= 66) raw = raw.toLowerCase();
    if (typeof raw !== 'string' || !/^0[23][0-9a-f]{64}$/.test(raw)) fail('genesisKey', src, 'must be a compressed public key: 66 hex characters starting 02 or 03');
    return raw;
  },
  checkpointPeriodMs: (raw, src) => intIn('checkpointPeriodMs', raw, src, 1000, 86_400_000),
  networkId: (raw, src) => {
    if (raw === undefined) return undefined;
    if (typeof raw !== 'string' || !/^ns1-[0-9a-f]{32}$/.test(raw)) fail('networkId', src, 'must be a network id: ns1- and 32 hex characters');
    return raw;
  },
  modelFetchTimeoutMs: (raw, src) => intIn('modelFetchTimeoutMs', raw, src, 1000, 86_400_000),
  mdns: (raw, src) => bool('mdns', raw, src),
  upnp: (raw, src) => bool('upnp', raw, src),
  relay: (raw, src) => bool('relay', raw, src),
  relayDataLimitMb: (raw, src) => intIn('relayDataLimitMb', raw, src, 1, 1 << 20),
  relayDurationS: (raw, src) => intIn('relayDurationS', raw, src, 1, 7 * 86400),
  maxConnections: (raw, src) => intIn('maxConnections', raw, src, 1, 100_000),
  span: (raw, src) => {
    if (raw === undefined || raw === 'auto') return 'auto';
    if (raw === 'none') return 'none';
    const m = typeof raw === 'string' ? /^(\d{1,5}):(\d{1,5})$/.exec(raw) : null;
    const o = m !== null ? { start: Number(m[1]), end: Number(m[2]) } : raw;
    if (typeof o !== 'object' || o === null || !Number.isInteger((o as { start?: unknown }).start) || !Number.isInteger((o as { end?: unknown }).end)) {
      fail('span', src, 'must be auto, none or a:b (first layer : one past the last)');
    }
    const { start, end } = o as { start: number; end: number };
    if (start < 0 || end <= start || end > 65536) fail('span', src, 'must satisfy 0 <= a < b <= 65536');
    return { start, end };
  },
  memoryMb: (raw, src) => (raw === undefined ? undefined : intIn('memoryMb', raw, src, 1, 1 << 30)),
  checkpoint: (raw, src) => {
    if (raw === undefined) return undefined;
    if (typeof raw !== 'string' || raw.length === 0 || raw.length > 4096) fail('checkpoint', src, 'must be a checkpoint directory');
    return resolve(raw.startsWith('~/') ? join(homedir(), raw.slice(2)) : raw);
  },
  heartbeatIntervalMs: (raw, src) => intIn('heartbeatIntervalMs', raw, src, 100, 3_600_000),
  heapTrimIntervalMs: (raw, src) => intIn('heapTrimIntervalMs', raw, src, 0, 86_400_000),
  peerStaleMs: (raw, src) => intIn('peerStaleMs', raw, src, 100, 86_400_000),
  peerDeadMs: (raw, src) => intIn('peerDeadMs', raw, src, 100, 86_400_000),
  train: (raw, src) => bool('train', raw, src),
  corpus: (raw, src) => {
    if (raw === undefined) return undefined;
    if (typeof raw !== 'string' || raw.length === 0 || raw.length > 4096) fail('corpus', src, 'must be a folder, manifest file or http(s) URL');
    return raw;
  },
  trainSteps: (raw, src) => intIn('trainSteps', raw, src, 0, 1_000_000_000),
  evalEvery: (raw, src) => intIn('evalEvery', raw, src, 0, 1_000_000_000),
  checkpointEvery: (raw, src) => intIn('checkpointEvery', raw, src, 0, 1_000_000_000),
  // at least 1: the checkpoint just moved aside stays (removing it at once would make the move a deletion)
  checkpointsAsideKeep: (raw, src) => intIn('checkpointsAsideKeep', raw, src, 1, 10_000),
  checkpointsAsideMaxMb: (raw, src) => intIn('checkpointsAsideMaxMb', raw, src, 0, 1 << 30),
  microBatches: (raw, src) => intIn('microBatches', raw, src, 1, 256),
  pipelineSchedule: (raw, src) => {
    if (raw !== 'gpipe' && raw !== '1f1b') fail('pipelineSchedule', src, 'must be gpipe or 1f1b');
    return raw;
  },
  stageTimeoutMs: (raw, src) => intIn('stageTimeoutMs', raw, src, 1000, 3_600_000),
  innerSteps: (raw, src) => intIn('innerSteps', raw, src, 1, 1_000_000_000),
  outerLr: (raw, src) => numIn('outerLr', raw, src, 0, 10, true),
  outerMomentum: (raw, src) => numIn('outerMomentum', raw, src, 0, 1, false),
  aggregator: (raw, src) => oneOf('aggregator', raw, src, ['mean', 'trimmed-mean', 'median', 'krum', 'multi-krum', 'geometric-median', 'centered-clip', 'gauntlet']),
  compress: (raw, src) => oneOf('compress', raw, src, ['none', 'fp16', 'int8', 'sparse']),
  outerQuorum: (raw, src) => {
    const q = numIn('outerQuorum', raw, src, 0, 1, true);
    if (q === 0) fail('outerQuorum', src, 'must be > 0');
    return q;
  },
  outerSyncTimeoutMs: (raw, src) => intIn('outerSyncTimeoutMs', raw, src, 1000, 86_400_000),
  wire: (raw, src) => {
    if (raw !== 'f32' && raw !== 'f16' && raw !== 'bf16') fail('wire', src, 'must be f32, f16 or bf16');
    return raw;
  },
  weights: (raw, src) => oneOf('weights', raw, src, ['f32', 'int8']) as 'f32' | 'int8',
  rpcStreamReuse: (raw, src) => bool('rpcStreamReuse', raw, src),
  rpcLane: (raw, src) => bool('rpcLane', raw, src),
  lanePort: (raw, src) => intIn('lanePort', raw, src, 0, 65535),
  hopTimeoutMs: (raw, src) => intIn('hopTimeoutMs', raw, src, 10, 600_000),
  hopPush: (raw, src) => (raw === 'auto' ? 'auto' : bool('hopPush', raw, src)),
  inferenceMemoryMb: (raw, src) => intIn('inferenceMemoryMb', raw, src, 1, 1 << 24),
  routeExplore: (raw, src) => numIn('routeExplore', raw, src, 0, 1, true),
  validationRate: (raw, src) => numIn('validationRate', raw, src, 0, 1, true),
  payInference: (raw, src) => oneOf('payInference', raw, src, ['auto', 'off']) as 'auto' | 'off',
};

/** A finite number in [min, max] (max excluded unless `maxIncluded`), from a number or a decimal string. */
function numIn(key: string, raw: unknown, src: OptionSource, min: number, max: number, maxIncluded: boolean): number {
  const n = typeof raw === 'string' && /^\d+(\.\d+)?(e-?\d+)?$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max || (!maxIncluded && n === max)) {
    fail(key, src, `must be a number in [${min}, ${max}${maxIncluded ? ']' : ')'}`);
  }
  return n;
}

function oneOf(key: string, raw: unknown, src: OptionSource, allowed: readonly string[]): string {
  if (typeof raw !== 'string' || !allowed.includes(raw)) fail(key, src, `must be one of ${allowed.join(', ')}`);
  return raw;
}

function bool(key: string, raw: unknown, src: OptionSource): boolean {
  if (raw === true || raw === 'true' || raw === '1') return true;
  if (raw === false || raw === 'false' || raw === '0') return false;
  fail(key, src, 'must be true or false');
}

function intIn(key: string, raw: unknown, src: OptionSource, min: number, max: number): number {
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) fail(key, src, `must be an integer in ${min}..${max}`);
  return n;
}

/** A list of multiaddrs: an array (config file, repeated flag) or one comma-separated string (environment). */
function multiaddrList(key: string, raw: unknown, src: OptionSource, min: number): string[] {
  const list = typeof raw === 'string' ? raw.split(',').map((x) => x.trim()).filter((x) => x !== '') : raw;
  if (!Array.isArray(list) || list.length < min || list.length > 32) fail(key, src, `must be a list of ${min} to 32 multiaddrs`);
  return list.map((a: unknown) => {
    if (typeof a !== 'string' || a.length > 512) fail(key, src, 'each entry must be a multiaddr string of at most 512 characters');
    try {
      return multiaddr(a).toString();
    } catch (e) {
      fail(key, src, `${JSON.stringify(a.slice(0, 100))} is not a multiaddr: ${(e as Error).message}`);
    }
  });
}

/** camelCase option name → NEUROSHARD_SNAKE_CASE. */
export function envName(key: string): string {
  return ENV_PREFIX + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

export interface LoadOptionsInput {
  /** Flags already parsed by the CLI, camelCase keys; undefined values are ignored. */
  flags?: Partial<Record<keyof NodeOptions, unknown>>;
  env?: NodeJS.ProcessEnv;
}

/**
 * The data dir alone (flag > env > default), without reading its config.json: `loadOptions` starts here, and
 * `neuroshard config set|unset` use it to mend a config.json that does not load.
 */
export function dataDirOf(input: LoadOptionsInput = {}): string {
  const env = input.env ?? process.env;
  const flags = input.flags ?? {};
  let dataDir = DEFAULTS.dataDir;
  if (env[envName('dataDir')] !== undefined) dataDir = parsers.dataDir(env[envName('dataDir')], 'env');
  if (flags.dataDir !== undefined) dataDir = parsers.dataDir(flags.dataDir, 'flag');
  // a file where the folder should be: said here, before a command fails on mkdir '<file>/logs' (ENOTDIR)
  if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) {
    fail('dataDir', flags.dataDir !== undefined ? 'flag' : env[envName('dataDir')] !== undefined ? 'env' : 'default', `${dataDir} is a file, not a folder (pass a folder, e.g. --data-dir ${dataDir}.d)`);
  }
  return dataDir;
}

/** Merges defaults, config file, environment and flags into validated NodeOptions. */
export function loadOptions(input: LoadOptionsInput = {}): NodeOptions {
  const env = input.env ?? process.env;
  const flags = input.flags ?? {};
  const keys = Object.keys(parsers) as (keyof NodeOptions)[];

  // The data dir decides where config.json lives, so resolve it first (flag > env > default).
  const dataDir = dataDirOf(input);

  const out: Record<string, unknown> = { ...DEFAULTS, dataDir };
  const configPath = join(dataDir, 'config.json');
  if (existsSync(configPath)) {
    let cfg: unknown;
    try {
      const text = readFileSync(configPath, 'utf8');
      if (text.length > 1 << 20) throw new Error('larger than 1 MiB');
      cfg = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`cannot read ${configPath}: ${(e as Error).message}`, { file: configPath });
    }
    if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) {
      throw new ConfigError(`${configPath} must hold a JSON object`, { file: configPath });
    }
    for (const [k, v] of Object.entries(cfg)) {
      if (k === 'dataDir') continue; // a config file cannot move the directory it lives in
      if (!(k in parsers)) {
        const hints = nearest(k, OPTION_KEYS);
        const hint = hints.length === 0 ? '' : ` (did you mean ${orList(hints.map((h) => `"${h}"`))}?)`;
        throw new ConfigError(`${configPath}: unknown option "${k.slice(0, 100)}"${hint}; \`neuroshard config unset ${k.slice(0, 100)}\` removes it`, { file: configPath, option: k.slice(0, 100) });
      }
      out[k] = (parsers[k as keyof NodeOptions] as Parser<unknown>)(v, 'config');
    }
  }
  for (const k of keys) {
    if (k === 'dataDir') continue;
    const v = env[envName(k)];
    if (v !== undefined && v !== '') out[k] = (parsers[k] as Parser<unknown>)(v, 'env');
  }
  for (const k of keys) {
    if (k === 'dataDir') continue;
    const v = flags[k];
    if (v !== undefined) out[k] = (parsers[k] as Parser<unknown>)(v, 'flag');
  }
  return out as unknown as NodeOptions;
}

/** The option names (`neuroshard config list|get|set`). */
export const OPTION_KEYS = Object.keys(DEFAULTS) as (keyof NodeOptions)[];

/** Validates one option value as `source` would give it (a string from the CLI, a JSON value from a file). */
export function parseOption(key: string, raw: unknown, source: OptionSource): unknown {
  if (!(key in parsers)) throw new InvalidArgumentError(`unknown option "${key}" (known: ${OPTION_KEYS.join(', ')})`, { option: key });
  return (parsers[key as keyof NodeOptions] as Parser<unknown>)(raw, source);
}
/**
 * Defaults of the node's ledger that are not command-line options (issue 11): the disk quota of ledger.db (events
 * from the network are dropped past it), the horizon of the sync admission rule, and how long the sync at start may
 * hold the start. See docs/LIMITS.md "Ledger under attack".
 */
export const LEDGER_DEFAULTS = {
  maxLedgerBytes: 8 * 1024 ** 3,
  syncHorizonMs: 30 * 60_000,
  startSyncMs: 30_000,
  /** Finality: how old a cut must be before the committee signs it: the live window plus the clock skew allowed. */
  checkpointSettleMs: 6 * 60_000,
  /**
   * Finality: how long a node that holds most of the history retries a checkpoint its state differs from (it asks a
   * peer for recent events meanwhile) before it takes the snapshot, which deletes its events before the cut. Two
   * minutes: a tail sync takes seconds; a node really apart from the committee loses little by waiting.
   */
  checkpointDivergeGraceMs: 2 * 60_000,
  /**
   * Issue 11 §2: rewards only for witnessed work (src/ledger/witness.ts): nothing minted without a bond, uptime only
   * with a quorum of bonded witnesses, and rewards minted at checkpoints (§3). A network-wide rule: every node of a
   * network must run the same. The first bonds come from the genesis allocation (node/genesis-key.ts; the operator
   * funds them with `wallet send`, they `wallet stake >= 100`; docs/ECONOMICS.md "Genesis bootstrap").
   */
  witnessedRewards: true,
  /**
   * Issue 11 §4: worker threads that verify sync pages' event signatures ahead of ingest (up to 4 pages ahead)
   * (ledger/verify-pool.ts; about 45 % of an event's CPU otherwise on the event loop). Undefined: the cores beside
   * the event loop, at most 4 (defaultVerifyThreads); 0: on the event loop. Started by the first full sync page
   * (512 events), closed after 30 s without a sync and on stop.
   */
  verifyThreads: undefined as number | undefined,
} as const;
