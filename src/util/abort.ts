import { AbortedError, TimeoutError } from './errors.js';

/** Options every async API in NeuroShard accepts (the js-libp2p convention). */
export interface AbortOptions {
  signal?: AbortSignal;
}

/** Throws AbortedError when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'operation'): void {
  if (signal?.aborted === true) throw new AbortedError(`${what} aborted`);
}

/** A signal that fires after `ms` or when any of the given signals fires, whichever is first. */
export function deadlineSignal(ms: number, ...signals: (AbortSignal | undefined)[]): AbortSignal {
  const all = [AbortSignal.timeout(ms), ...signals.filter((s): s is AbortSignal => s !== undefined)];
  return AbortSignal.any(all);
}

/**
 * Races a promise against a deadline and an optional abort signal. The loser's result is ignored; the caller is
 * responsible for cleaning up the work itself when it cares (pass the same signal down).
 */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  throwIfAborted(signal, what);
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`, { ms })), ms);
        if (signal !== undefined) {
          onAbort = () => reject(new AbortedError(`${what} aborted`));
          signal.addEventListener('abort', onAbort, { once: true });
        }
      }),
    ]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}

/** Resolves when `cond()` is true, checking every `intervalMs`; rejects with TimeoutError after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; what?: string; signal?: AbortSignal },
): Promise<void> {
  const start = Date.now();
  const interval = opts.intervalMs ?? 20;
  for (;;) {
    throwIfAborted(opts.signal, opts.what);
    if (await cond()) return;
    if (Date.now() - start > opts.timeoutMs) {
      throw new TimeoutError(`condition not met within ${opts.timeoutMs} ms: ${opts.what ?? 'waitFor'}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Exponential backoff delays: base, 2·base, 4·base … capped at max, with ±20 % jitter from `rand`. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, rand: () => number = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(raw * (0.8 + 0.4 * rand()));
}
