/**
 * The shape every `neuroshard` subcommand shares: a folder under src/cli/ whose index.ts exports a Command.
 * Flags are declared once (name, type, help), parsed with node:util parseArgs in strict mode, and a bad flag is a
 * UsageError (exit code 2). A command returns its exit code; thrown NeuroShardErrors become exit code 1 with the
 * message on stderr.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidArgumentError } from '../util/errors.js';
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
  constructor(message: string) {
    super(message, undefined, 'USAGE');
  }
}

export function parseFlags(cmd: Command, argv: string[]): { values: FlagValues; positionals: string[] } {
  const specs = { ...GLOBAL_FLAGS, ...cmd.flags };
  const options: ParseArgsConfig['options'] = {};
  for (const [name, s] of Object.entries(specs)) {
    const o: { type: 'string' | 'boolean'; multiple?: boolean; short?: string } = { type: s.type };
    if (s.multiple === true) o.multiple = true;
    if (s.short !== undefined) o.short = s.short;
    options[name] = o;
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true, allowNegative: true } as ParseArgsConfig);
    return { values: values as FlagValues, positionals };
  } catch (e) {
    throw new UsageError(flagErrorMessage((e as Error).message, Object.keys(specs)));
  }
}

/**
 * node:util's parse errors, shortened for people: "Unknown option '--x'. To specify a positional argument starting
 * with a '-', place it at the end of the command after '--', as in '-- \"--x\"" becomes "unknown flag --x", with
 * the nearest real flag when one is close.
 */
export function flagErrorMessage(message: string, flags: readonly string[]): string {
  const unknown = /^Unknown option '(-{1,2})([^']*)'/.exec(message);
  if (unknown === null) return message;
  const [, dashes, name] = unknown;
  const hints = dashes === '--' ? nearest(name!, flags) : [];
  return `unknown flag ${dashes}${name}${hints.length === 0 ? '' : ` (did you mean ${orList(hints.map((h) => `--${h}`))}?)`}`;
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

/** Reads an integer flag with bounds, as a UsageError when it is not one. */
export function intFlag(values: FlagValues, name: string, def: number, min: number, max: number): number {
  const v = values[name];
  if (v === undefined) return def;
  if (typeof v !== 'string' || !/^-?\d+$/.test(v)) throw new UsageError(`--${name} must be an integer`);
  const n = Number(v);
  if (n < min || n > max) throw new UsageError(`--${name} must be in ${min}..${max}`);
  return n;
}

/** Reads a number flag with bounds. */
export function numberFlag(values: FlagValues, name: string, def: number, min: number, max: number): number {
  const v = values[name];
  if (v === undefined) return def;
  const n = typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number in ${min}..${max}`);
  return n;
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
