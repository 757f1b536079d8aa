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
import { DEFAULT_DATA_DIR_NAME, ENV_PREFIX } from '../params/index.js';
import { ConfigError, InvalidArgumentError } from '../util/errors.js';
import { LOG_LEVELS, type LogLevel } from '../util/logger.js';

export interface NodeOptions {
  /** Where the node keeps its state: keys, checkpoints, ledger. */
  dataDir: string;
  logLevel: LogLevel;
  /** Threads of the native compute pool (the one level of threading inside the compute worker). */
  threads: number;
}

export const DEFAULTS: NodeOptions = {
  dataDir: join(homedir(), DEFAULT_DATA_DIR_NAME),
  logLevel: 'info',
  threads: Math.max(1, availableParallelism()),
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
};

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
