/**
 * A small structured logger. Lines go to stderr (stdout is reserved for command output such as `--json`), as
 * `time level module: message key=value …`. Never log secrets: mnemonics, private keys and passphrases are not
 * passed to a logger anywhere in the code base.
 */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug', 'trace'];

export interface Logger {
  error(msg: string, ctx?: Record<string, unknown>): void;
  warn(msg: string, ctx?: Record<string, unknown>): void;
  info(msg: string, ctx?: Record<string, unknown>): void;
  debug(msg: string, ctx?: Record<string, unknown>): void;
  trace(msg: string, ctx?: Record<string, unknown>): void;
  child(module: string): Logger;
  readonly level: LogLevel;
}

export interface LoggerOptions {
  level?: LogLevel;
  module?: string;
  write?: (line: string) => void;
}

function fmt(v: unknown): string {
  if (typeof v === 'string') return /\s/.test(v) ? JSON.stringify(v) : v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Error) return JSON.stringify(v.message);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const max = LOG_LEVELS.indexOf(level);
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const mod = opts.module ?? 'neuroshard';
  const log = (l: LogLevel) => (msg: string, ctx?: Record<string, unknown>) => {
    if (LOG_LEVELS.indexOf(l) > max) return;
    let line = `${new Date().toISOString()} ${l.padEnd(5)} ${mod}: ${msg}`;
    if (ctx !== undefined) for (const [k, v] of Object.entries(ctx)) line += ` ${k}=${fmt(v)}`;
    write(line);
  };
  return {
    level,
    error: log('error'),
    warn: log('warn'),
    info: log('info'),
    debug: log('debug'),
    trace: log('trace'),
    child: (module: string) => createLogger({ level, write, module: `${mod}/${module}` }),
  };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = createLogger({ level: 'error', write: () => {} });
