/**
 * `neuroshard config list|get KEY|set KEY VALUE|unset KEY`: the node options kept in `<data-dir>/config.json`
 * (src/node/options.ts: defaults → config.json → NEUROSHARD_* environment → flags). `set` validates the value
 * with the option's own parser before writing, and writes atomically (temp file + rename, 0600), so a bad value
 * never reaches the file a node reads at start. `list`/`get` show the effective value and where it came from.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dataDirOf, DEFAULTS, envName, loadOptions, OPTION_KEYS, parseOption, type NodeOptions, type OptionSource } from '../../node/options.js';
import { ConfigError, isNeuroShardError } from '../../util/errors.js';
import { nearest, orList, shown, stringFlag, UsageError, type Command, type CommandIO, type FlagValues } from '../command.js';
import { mkdirSync } from 'node:fs';

const MAX_CONFIG_BYTES = 1 << 20;

function readConfig(path: string): Record<string, unknown> {
  if (!existsSync(path)) return {};
  const text = readFileSync(path, 'utf8');
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(`${path} is larger than 1 MiB`, { file: path });
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`cannot parse ${path}: ${(e as Error).message}`, { file: path });
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ConfigError(`${path} must hold a JSON object`, { file: path });
  return o as Record<string, unknown>;
}

function writeConfig(dataDir: string, path: string, cfg: Record<string, unknown>): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
}

/**
 * A CLI string as the option wants it: lists as JSON arrays or comma-separated, the rest as the parsers read strings.
 * A refused value is named by the key as typed (`span: must satisfy 0 <= a < b <= 65536`), not as the options
 * say it for a flag (`option span (from flag): …`), which is not where it came from.
 */
function valueFromCli(key: string, raw: string): unknown {
  let value: unknown = raw;
  if (raw.startsWith('[') || raw.startsWith('{')) {
    try {
      value = JSON.parse(raw) as unknown;
    } catch (e) {
      throw new UsageError(`${key}: ${shown(raw)} starts as JSON but does not parse: ${(e as Error).message}`, { arg: key });
    }
  }
  try {
    return parseOption(key, value, 'flag');
  } catch (e) {
    const why = isNeuroShardError(e) ? e.meta?.why : undefined;
    throw new UsageError(`${key}: ${typeof why === 'string' ? why : (e as Error).message}`, { arg: key });
  }
}

function sourceOf(key: keyof NodeOptions, cfg: Record<string, unknown>): OptionSource {
  const env = process.env[envName(key)];
  if (key !== 'dataDir' && env !== undefined && env !== '') return 'env';
  if (key !== 'dataDir' && key in cfg) return 'config';
  return 'default';
}

/** " (did you mean "span"?)" for a misspelt option name, or "". */
function didYouMean(key: string): string {
  const hints = nearest(key, OPTION_KEYS);
  return hints.length === 0 ? '' : ` (did you mean ${orList(hints.map((h) => `"${h}"`))}?)`;
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v ?? null);
}

export const configCommand: Command = {
  name: 'config',
  summary: 'node options in <data-dir>/config.json: list, get KEY, set KEY VALUE, unset KEY',
  args: '<list|get KEY|set KEY VALUE|unset KEY>',
  flags: {
    json: { type: 'boolean', description: 'print the answer as one JSON document' },
  },
  async run(flags, positionals, io) {
    const [sub, key, value, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`);
    // set and unset need only the folder: they are how a config.json that does not load (a key with a typo, a bad
    // value) is mended, so they must not load it first; get and list show the validated options
    const dataDir = dataDirOf({ flags: { dataDir: stringFlag(flags, 'data-dir') } });
    const path = join(dataDir, 'config.json');
    const cfg = readConfig(path);
    const loaded = (): NodeOptions => loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir') } });
    switch (sub) {
      case undefined:
      case 'list':
        if (key !== undefined) throw new UsageError('config list takes no argument');
        return list(loaded(), cfg, path, flags, io);
      case 'get': {
        if (key === undefined || value !== undefined) throw new UsageError('usage: neuroshard config get KEY');
        if (!OPTION_KEYS.includes(key as keyof NodeOptions)) throw new UsageError(`unknown option ${shown(key)}${didYouMean(key)}; \`neuroshard config list\` lists them`, { arg: key });
        const k = key as keyof NodeOptions;
        const opts = loaded();
        if (flags.json === true) io.stdout(JSON.stringify({ key: k, value: opts[k] ?? null, source: sourceOf(k, cfg) }) + '\n');
        else io.stdout(show(opts[k]) + '\n');
        return 0;
      }
      case 'set': {
        if (key === undefined || value === undefined) throw new UsageError('usage: neuroshard config set KEY VALUE');
        if (key === 'dataDir') throw new UsageError('dataDir cannot be set in the config file it lives in; use --data-dir or NEUROSHARD_DATA_DIR');
        if (!OPTION_KEYS.includes(key as keyof NodeOptions)) throw new UsageError(`unknown option ${shown(key)}${didYouMean(key)}; \`neuroshard config list\` lists them`, { arg: key });
        const parsed = valueFromCli(key, value);
        cfg[key] = parsed;
        writeConfig(dataDir, path, cfg);
        if (flags.json === true) io.stdout(JSON.stringify({ key, value: parsed ?? null, file: path }) + '\n');
        else io.stdout(`${key} = ${show(parsed)} (in ${path}; a running node reads it at its next start)\n`);
        return 0;
      }
      case 'unset': {
        if (key === undefined || value !== undefined) throw new UsageError('usage: neuroshard config unset KEY');
        // a key the file holds is removed even when it is no option (a typo is what this mends)
        const had = Object.hasOwn(cfg, key);
        if (!had && !OPTION_KEYS.includes(key as keyof NodeOptions)) throw new UsageError(`unknown option ${shown(key)}${didYouMean(key)}`, { arg: key });
        delete cfg[key];
        if (had) writeConfig(dataDir, path, cfg);
        const k = key as keyof NodeOptions;
        if (flags.json === true) io.stdout(JSON.stringify({ key, removed: had, value: DEFAULTS[k] ?? null, file: path }) + '\n');
        else io.stdout(had ? `${key} removed from ${path}\n` : `${key} was not set in ${path}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand "${sub}": list, get, set or unset`);
    }
  },
};

function list(opts: NodeOptions, cfg: Record<string, unknown>, path: string, flags: FlagValues, io: CommandIO): number {
  const rows = OPTION_KEYS.map((k) => ({ key: k, value: opts[k] ?? null, source: sourceOf(k, cfg) }));
  if (flags.json === true) {
    io.stdout(JSON.stringify({ file: path, options: rows }) + '\n');
    return 0;
  }
  const w = Math.max(...rows.map((r) => r.key.length)) + 2;
  for (const r of rows) io.stdout(`${r.key.padEnd(w)}${show(r.value)}${r.source === 'default' ? '' : `  (${r.source})`}\n`);
  return 0;
}
