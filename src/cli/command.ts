/**
 * The shape every `neuroshard` subcommand shares: a folder under src/cli/ whose index.ts exports a Command.
 * Flags are declared once (name, type, help), parsed with node:util parseArgs in strict mode, and a bad flag is a
 * UsageError (exit code 2). A command returns its exit code; thrown NeuroShardErrors become exit code 1 with the
 * message on stderr.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseOption } from '../node/options.js';
import { InvalidArgumentError, isNeuroShardError } from '../util/errors.js';
import { nearest, orList } from '../util/nearest.js';

// the "did you mean" helpers live in util/ (node/options.ts uses them for config.json's keys); re-exported here
export { closest, nearest, orList } from '../util/nearest.js';

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** Repeatable flags collect every value into an array. */
  multiple?: boolean;
  short?: string;
  description: string;
  /** Shown in help as the value placeholder, e.g. DIR. */
  value?: string;
  default?: string | boolean;
}

/** Flags every command accepts. */
export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  'data-dir': { type: 'string', value: 'DIR', description: 'node state: keys, checkpoints, ledger (default ~/.neuroshard)' },
  'log-level': { type: 'string', value: 'LEVEL', description: 'error | warn | info | debug | trace (default info)' },
  threads: { type: 'string', value: 'N', description: 'compute threads (default: the number of cores)' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export type FlagValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface CommandIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Aborted on SIGINT/SIGTERM. Long-running commands stop cleanly when it fires. */
  signal: AbortSignal;
}

export interface Command {
  name: string;
  summary: string;
  /** Positional arguments, for the usage line, e.g. "<address> <amount>". */
  args?: string;
  flags: Record<string, FlagSpec>;
  run(flags: FlagValues, positionals: string[], io: CommandIO): Promise<number>;
}

/** Bad usage: exit code 2. */
export class UsageError extends InvalidArgumentError {
  /** `meta.flag` / `meta.arg`: the flag or argument at fault, where there is one. */
  constructor(message: string, meta?: Record<string, unknown>) {
    super(message, meta, 'USAGE');
  }
}

/** A value the user typed, quoted for a message: at most 40 characters of it (a value can be a pasted megabyte). */
export function shown(v: string): string {
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
}

/**
 * A token that reads as a negative number (`-5`, `-0.5`, `-.5`, `-1e3`, `-Infinity`, `-NaN`): a value, never a short
 * flag, since no flag is a digit. node:util would read it as the flags -5 (or -I, -n, …) and say "unknown flag -5"
 * where the user gave an amount (session 29's walkthrough); read as a value, it is refused for what it is.
 */
const NEGATIVE_NUMBER = /^-(\d|\.\d|inf(inity)?$|nan$)/i;

/** Stands in for a negative-number token while node:util parses, so it is taken as a value; starts with no `-`. */
const PLACEHOLDER = '\u0000neuroshard-value-';

export function parseFlags(cmd: Command, argv: string[]): { values: FlagValues; positionals: string[] } {
  const specs = { ...GLOBAL_FLAGS, ...cmd.flags };
  const options: ParseArgsConfig['options'] = {};
  for (const [name, s] of Object.entries(specs)) {
    const o: { type: 'string' | 'boolean'; multiple?: boolean; short?: string } = { type: s.type };
    if (s.multiple === true) o.multiple = true;
    if (s.short !== undefined) o.short = s.short;
    options[name] = o;
  }
  const held: string[] = [];
  const args = argv.map((a) => {
    if (!NEGATIVE_NUMBER.test(a)) return a;
    held.push(a);
    return PLACEHOLDER + String(held.length - 1);
  });
  const restore = (v: string): string => (v.startsWith(PLACEHOLDER) ? (held[Number(v.slice(PLACEHOLDER.length))] ?? v) : v);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true, allowNegative: true, tokens: true } as ParseArgsConfig);
  } catch (e) {
    throw new UsageError(flagErrorMessage((e as Error).message, Object.keys(specs)));
  }
  refuseRepeats(specs, parsed.tokens ?? [], restore);
  const values: FlagValues = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    values[k] = typeof v === 'string' ? restore(v) : Array.isArray(v) && typeof v[0] === 'string' ? (v as string[]).map(restore) : (v as FlagValues[string]);
  }
  return { values, positionals: parsed.positionals.map(restore) };
}

/**
 * A flag that takes one value given twice (`--limit 5 --limit 6`), or a switch given both ways (`--train
 * --no-train`): node:util keeps the last silently, which hides a mistake in a long command line or a script that
 * adds a flag the user already gave.
 */
function refuseRepeats(
  specs: Record<string, FlagSpec>,
  tokens: readonly { kind: string; name?: string; rawName?: string; value?: string | undefined }[],
  restore: (v: string) => string,
): void {
  const seen = new Map<string, { rawName: string; value: string | undefined }>();
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined) continue;
    const spec = specs[t.name];
    if (spec === undefined || spec.multiple === true) continue;
    const rawName = t.rawName ?? `--${t.name}`;
    const before = seen.get(t.name);
    seen.set(t.name, { rawName, value: t.value });
    if (before === undefined) continue;
    if (spec.type === 'string') {
      throw new UsageError(`--${t.name} is given twice (${shown(restore(before.value ?? ''))}, then ${shown(restore(t.value ?? ''))}); give it once`, { flag: t.name });
    }
    if (before.rawName !== rawName && t.name !== 'help') throw new UsageError(`${before.rawName} and ${rawName} are both given; give one`, { flag: t.name });
  }
}

/**
 * node:util's parse errors, shortened for people: "Unknown option '--x'. To specify a positional argument starting
 * with a '-', place it at the end of the command after '--', as in '-- \"--x\"" becomes "unknown flag --x", with
 * the nearest real flag when one is close; "Option '--prompt <value>' argument missing" becomes "--prompt needs a
 * value", and so on.
 */
export function flagErrorMessage(message: string, flags: readonly string[]): string {
  const unknown = /^Unknown option '(-{1,2})([^']*)'/.exec(message);
  if (unknown !== null) {
    const [, dashes, name] = unknown;
    const hints = dashes === '--' ? nearest(name!, flags) : [];
    return `unknown flag ${dashes}${name}${hints.length === 0 ? '' : ` (did you mean ${orList(hints.map((h) => `--${h}`))}?)`}`;
  }
  // "-n, --lines" when the flag has a short form
  const flag = /^Option '(?:-\w, )?(--[^ ']+)/.exec(message)?.[1];
  if (flag === undefined) return message;
  if (/argument missing/.test(message)) return `${flag} needs a value`;
  if (/argument is ambiguous/.test(message)) return `${flag} needs a value; the next argument starts with "-" and reads as a flag (write ${flag}=VALUE for a value that starts with "-")`;
  if (/does not take an argument/.test(message)) return `${flag} takes no value`;
  return message;
}

export function helpText(cmd: Command): string {
  const specs = { ...cmd.flags, ...GLOBAL_FLAGS };
  const lines = [`usage: neuroshard ${cmd.name}${cmd.args ? ' ' + cmd.args : ''} [flags]`, '', cmd.summary, '', 'flags:'];
  const rows = Object.entries(specs).map(([n, s]) => {
    const left = `  ${s.short ? `-${s.short}, ` : ''}--${n}${s.value ? ' ' + s.value : ''}${s.multiple ? ' (repeatable)' : ''}`;
    return [left, s.description] as const;
  });
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  for (const [l, d] of rows) lines.push(l.padEnd(w) + d);
  return lines.join('\n');
}

/** Integers as people type them: digits, a sign. Not hex, exponents, spaces or an empty string (Number() takes all four). */
const INTEGER = /^[-+]?\d+$/;
/** Decimals as people type them: 0.5, .5, 5, 1e-3. Not hex, Infinity, NaN, spaces or an empty string. */
const DECIMAL = /^[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$/i;

/**
 * Reads an integer flag with bounds. Anything else, out of range or not an integer (-5, 1e3, 0x10, "", " 5"), is a
 * UsageError naming the flag, the range and the value: never clamped.
 */
export function intFlag(values: FlagValues, name: string, def: number, min: number, max: number): number {
  const v = values[name];
  if (v === undefined) return def;
  const n = typeof v === 'string' && INTEGER.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name}: must be an integer in ${min}..${max}${gotText(v)}`, { flag: name });
  return n === 0 ? 0 : n; // not -0
}

/**
 * Reads a number flag with bounds, [min, max] or with `minOpen` (min, max]. NaN, Infinity, 1e309 (which is
 * Infinity), hex and empty or spaced values are a UsageError naming the flag, the range and the value.
 */
export function numberFlag(values: FlagValues, name: string, def: number, min: number, max: number, opts: { minOpen?: boolean } = {}): number {
  const v = values[name];
  if (v === undefined) return def;
  const n = typeof v === 'string' && DECIMAL.test(v) ? Number(v) : NaN;
  const low = opts.minOpen === true ? n > min : n >= min;
  if (!Number.isFinite(n) || !low || n > max) throw new UsageError(`--${name}: must be a number in ${opts.minOpen === true ? '(' : '['}${min}, ${max}]${gotText(v)}`, { flag: name });
  return n === 0 ? 0 : n;
}

/** ", not \"-5\"" for a message about a value: the value as typed, or nothing when there was none. */
function gotText(v: FlagValues[string]): string {
  return typeof v === 'string' ? `, not ${shown(v)}` : '';
}

export function stringFlag(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`--${name} takes a value`);
  return v;
}

export function stringListFlag(values: FlagValues, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  if (!Array.isArray(v)) return [String(v)];
  return v.map(String);
}

/** The flags whose node option key is not the flag in camel case. */
const FLAG_OF_OPTION: Record<string, string> = { trackers: 'tracker', apiCorsOrigins: 'api-cors' };

/** The flag that sets a node option: `memoryMb` → `memory-mb`, `trackers` → `tracker`. */
export function flagOfOption(option: string): string {
  return FLAG_OF_OPTION[option] ?? option.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/**
 * A node option's refusal of a flag value (src/node/options.ts: `option memoryMb (from flag): must be …`, with
 * `meta.option` and `meta.why`) as the user typed the flag: `--memory-mb: must be an integer in 1..1073741824`.
 * Undefined for any other error. Every command that reads options from flags (--data-dir, --threads, `start`'s)
 * goes through main.ts, which says it this way (session 29's walkthrough).
 */
export function optionFlagError(e: unknown): UsageError | undefined {
  if (e instanceof UsageError || !isNeuroShardError(e, 'INVALID_ARGUMENT')) return undefined;
  const option = e.meta?.option;
  const why = e.meta?.why;
  if (typeof option !== 'string' || typeof why !== 'string') return undefined;
  const flag = flagOfOption(option);
  return new UsageError(`--${flag}: ${why}`, { flag });
}

/**
 * The global flags that take a value, checked for every command: `status --log-level loud` or `wallet show --threads
 * 0x10` were taken silently by the commands that do not use them. Refused as the options refuse them (main.ts names
 * the flag).
 */
export function checkGlobalFlags(values: FlagValues): void {
  for (const [flag, option] of [['log-level', 'logLevel'], ['threads', 'threads']] as const) {
    const v = values[flag];
    if (typeof v === 'string') parseOption(option, v, 'flag');
  }
}
