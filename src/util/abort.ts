import { AbortedError, TimeoutError } from './errors.js';

/** Options every async API in NeuroShard accepts (the js-libp2p convention). */
export interface AbortOptions {
  signal?: AbortSignal;
}

/** Throws AbortedError when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'operation'): void {
  if (signal?.aborted === true) throw new AbortedError(`${what} aborted`);
}

/**
 * A signal that fires after `ms` or when any of the given signals fires, whichever is first. Built on linkSignals
 * rather than AbortSignal.any (see there): the listeners it puts on long-lived signals go when it fires, so at most
 * `ms` worth of calls hold one.
 */
export function deadlineSignal(ms: number, ...signals: (AbortSignal | undefined)[]): AbortSignal {
  return linkSignals(AbortSignal.timeout(ms), ...signals).signal;
}

/**
 * deadlineSignal for one call, with `dispose()` to detach it from `signals` as soon as the call ends. Use it where a
 * source lives as long as the node: deadlineSignal's listeners stay on the sources until its deadline fires, so a
 * loop that makes many short calls (a bootstrap round's dials, a pool tick's lookups) left one listener per call on
 * the long-lived signal for the whole deadline (Node's "11 abort listeners added to [AbortSignal]" warning).
 */
export function deadlineLink(ms: number, ...signals: (AbortSignal | undefined)[]): { signal: AbortSignal; dispose: () => void } {
  return linkSignals(AbortSignal.timeout(ms), ...signals);
}

/**
 * A signal that fires when any of `signals` has fired or fires (with that one's reason), and `dispose()` to detach
 * it from them once the operation ends. Use it instead of AbortSignal.any wherever a source outlives the operation
 * (a node-lifetime signal): Node's AbortSignal.any (v20 at least) adds an entry to every source's set of dependants
 * that is never removed, even after the composed signal is collected, so composing each RPC with the RPC layer's
 * lifetime signal grew the heap by one entry per served frame for as long as the node ran (issue 12 §2, chaos
 * memory growth). Worse, Node keeps a composite signal that has not fired alive for as long as an abort listener
 * is left on it (whatever its sources), with everything that listener holds: a stream call that ended without
 * aborting its composite, and a consumer that did not take its listener off, pinned the stream for good. This one
 * is a plain AbortController signal (collected with its listeners) and leaves nothing behind on the sources after
 * dispose() (idempotent; called by itself when it fires).
 */
export function linkSignals(...signals: (AbortSignal | undefined)[]): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const sources = signals.filter((s): s is AbortSignal => s !== undefined);
  const fired = sources.find((s) => s.aborted);
  if (fired !== undefined) {
    ac.abort(fired.reason);
    return { signal: ac.signal, dispose: () => {} };
  }
  const listeners: [AbortSignal, () => void][] = [];
  const dispose = (): void => {
    for (const [s, f] of listeners) s.removeEventListener('abort', f);
    listeners.length = 0;
  };
  for (const s of sources) {
    const f = (): void => {
      dispose();
      ac.abort(s.reason);
    };
    s.addEventListener('abort', f, { once: true });
    listeners.push([s, f]);
  }
  return { signal: ac.signal, dispose };
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

/**
 * Waits `ms`, or less when `signal` fires (resolves either way: the caller checks the signal). Its abort listener
 * goes when it resolves, so a long-lived signal does not collect one per pause. `unref` lets the process exit
 * during the pause.
 */
export function pause(ms: number, signal?: AbortSignal, opts: { unref?: boolean } = {}): Promise<void> {
  return new Promise((res) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      res();
    };
    const t = setTimeout(done, ms);
    if (opts.unref === true) t.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Exponential backoff delays: base, 2·base, 4·base … capped at max, with ±20 % jitter from `rand`. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, rand: () => number = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(raw * (0.8 + 0.4 * rand()));
}
