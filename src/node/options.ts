/**
 * Node options: every default in one place, merged in one place.
 *
 * Precedence, lowest to highest: DEFAULTS → `<data-dir>/config.json` → `NEUROSHARD_*` environment variables →
 * command-line flags. Each layer is validated before it is merged; a bad value fails with a ConfigError (file,
 * environment) or an InvalidArgumentError (flag) that names the option and where it came from.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir, availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { DEFAULT_DATA_DIR_NAME, ENV_PREFIX } from '../params/index.js';
import { ConfigError, InvalidArgumentError } from '../util/errors.js';
import { LOG_LEVELS, type LogLevel } from '../util/logger.js';

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
  /** Inference (issue 8): dtype of activations between hops, a hop's decode-step deadline before failover (ms), the KV-cache budget for peers' sessions (MiB). */
  wire: 'f32' | 'f16';
  hopTimeoutMs: number;
  inferenceMemoryMb: number;
}

export type SpanOption = 'auto' | 'none' | { start: number; end: number };

export const DEFAULTS: NodeOptions = {
  dataDir: join(homedir(), DEFAULT_DATA_DIR_NAME),
  logLevel: 'info',
  threads: Math.max(1, availableParallelism()),
  trackers: [],
  apiPort: 8000,
  listen: ['/ip4/0.0.0.0/tcp/9000', '/ip4/0.0.0.0/tcp/9001/ws'],
  announce: [],
  bootstrap: [],
  genesis: false,
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
  peerStaleMs: 15_000,
  peerDeadMs: 60_000,
  train: true,
  corpus: undefined,
  trainSteps: 100_000,
  evalEvery: 500,
  checkpointEvery: 500,
  wire: 'f32',
  hopTimeoutMs: 200,
  inferenceMemoryMb: 512,
};

/** Where an option value came from; used in error messages. */
export type OptionSource = 'default' | 'config' | 'env' | 'flag';

type Parser<T> = (raw: unknown, source: OptionSource) => T;

function fail(key: string, source: OptionSource, why: string): never {
  const msg = `option ${key} (from ${source}): ${why}`;
  if (source === 'flag') throw new InvalidArgumentError(msg, { option: key });
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
  threads: (raw, src) => {
    const n = typeof raw === 'string' ? Number(raw) : raw;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 256) fail('threads', src, 'must be an integer in 1..256');
    return n;
  },
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
  listen: (raw, src) => multiaddrList('listen', raw, src, 1),
  announce: (raw, src) => multiaddrList('announce', raw, src, 0),
  bootstrap: (raw, src) => {
    const list = multiaddrList('bootstrap', raw, src, 0);
    for (const a of list) if (!/\/p2p\/[^/]+$/.test(a)) fail('bootstrap', src, `${a} must end in /p2p/<peerId>`);
    return list;
  },
  genesis: (raw, src) => bool('genesis', raw, src),
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
  wire: (raw, src) => {
    if (raw !== 'f32' && raw !== 'f16') fail('wire', src, 'must be f32 or f16');
    return raw;
  },
  hopTimeoutMs: (raw, src) => intIn('hopTimeoutMs', raw, src, 10, 600_000),
  inferenceMemoryMb: (raw, src) => intIn('inferenceMemoryMb', raw, src, 1, 1 << 24),
};

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

/** Merges defaults, config file, environment and flags into validated NodeOptions. */
export function loadOptions(input: LoadOptionsInput = {}): NodeOptions {
  const env = input.env ?? process.env;
  const flags = input.flags ?? {};
  const keys = Object.keys(parsers) as (keyof NodeOptions)[];

  // The data dir decides where config.json lives, so resolve it first (flag > env > default).
  let dataDir = DEFAULTS.dataDir;
  if (env[envName('dataDir')] !== undefined) dataDir = parsers.dataDir(env[envName('dataDir')], 'env');
  if (flags.dataDir !== undefined) dataDir = parsers.dataDir(flags.dataDir, 'flag');

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
      if (!(k in parsers)) throw new ConfigError(`${configPath}: unknown option "${k}"`, { file: configPath, option: k });
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
