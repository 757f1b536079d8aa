/**
 * Typed errors. Every error NeuroShard raises on purpose is a NeuroShardError with a stable string `code`
 * (tests and callers match on it, never on message text) and a `fault` that says whose mistake it was:
 *
 * - `caller`: bad input from the local user or caller (a bad flag, a bad API body, a wrong-shaped tensor)
 * - `peer`:   a remote peer sent something malformed, forged or oversized (lower its score, never crash)
 * - `local`:  our own failure (a bug, a crashed worker, a full disk): never punish a peer for it
 * - `config`: the node's configuration or files on disk are wrong or inconsistent
 *
 * `toObject()` gives a plain object that crosses worker boundaries and goes into logs and HTTP error bodies.
 */
export type Fault = 'caller' | 'peer' | 'local' | 'config';

export interface ErrorObject {
  name: string;
  code: string;
  message: string;
  fault: Fault;
  meta?: Record<string, unknown>;
}

export class NeuroShardError extends Error {
  readonly code: string;
  readonly fault: Fault;
  readonly meta: Record<string, unknown> | undefined;

  constructor(code: string, message: string, opts: { fault?: Fault; meta?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.fault = opts.fault ?? 'local';
    this.meta = opts.meta;
  }

  toObject(): ErrorObject {
    const o: ErrorObject = { name: this.name, code: this.code, message: this.message, fault: this.fault };
    if (this.meta !== undefined) o.meta = this.meta;
    return o;
  }

  /** Rebuilds an error that crossed a thread or process boundary as a plain object. */
  static fromObject(o: ErrorObject): NeuroShardError {
    const e = new NeuroShardError(o.code, o.message, { fault: o.fault, meta: o.meta });
    e.name = o.name;
    return e;
  }
}

/** Bad input from whoever called us: a flag, a request body, an argument of the wrong shape. */
export class InvalidArgumentError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>, code = 'INVALID_ARGUMENT') {
    super(code, message, { fault: 'caller', meta });
  }
}

/** A configuration value or a file on disk is wrong. */
export class ConfigError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>, code = 'CONFIG_INVALID') {
    super(code, message, { fault: 'config', meta });
  }
}

/** A remote peer broke the protocol: malformed, oversized, forged. */
export class PeerMisbehaviourError extends NeuroShardError {
  constructor(code: string, message: string, meta?: Record<string, unknown>) {
    super(code, message, { fault: 'peer', meta });
  }
}

/** An operation ran past its deadline. */
export class TimeoutError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('TIMEOUT', message, { fault: 'local', meta });
  }
}

/** An operation was aborted by its caller. */
export class AbortedError extends NeuroShardError {
  constructor(message = 'operation aborted', meta?: Record<string, unknown>) {
    super('ABORTED', message, { fault: 'caller', meta });
  }
}

export function isNeuroShardError(e: unknown, code?: string): e is NeuroShardError {
  return e instanceof NeuroShardError && (code === undefined || e.code === code);
}

/** A readable one-line description of anything thrown. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
