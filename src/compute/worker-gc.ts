/**
 * Garbage collection of the compute worker's isolate when its array buffers grew (issue 12: chaos memory growth).
 *
 * Why: the worker allocates almost no JavaScript objects, only typed arrays (KV caches of hop sessions, activations,
 * weight copies for peers). Its JS heap stays at a few MB, so V8 starts a collection only when the memory held by
 * array buffers has grown by its external-memory limit (tens of MB) since the last one. Until then the buffers of
 * closed sessions and of replaced weights stay allocated in the worker thread's malloc arena. In the 30-minute chaos
 * run a serving joiner's RSS grew 13.5 %; gdb showed the growth in the worker thread's own arena, and the worker's
 * own report (jobs.ts WorkerMemory) showed its array buffers at twice its weights with a JS heap of 7 MB. A full
 * collection of such a small heap takes a few milliseconds, so the worker asks for one itself whenever its array
 * buffers grew by `growthBytes` since the last one, at most every `minIntervalMs`, and only between jobs.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface WorkerGcPolicy {
  /** Growth of array-buffer bytes since the last collection that triggers one. */
  growthBytes: number;
  /** Least time between two collections (ms). */
  minIntervalMs: number;
}

export const WORKER_GC_DEFAULTS: Readonly<WorkerGcPolicy> = Object.freeze({ growthBytes: 8 * 1024 * 1024, minIntervalMs: 5_000 });

/** Whether to collect now (pure): the buffers grew by the policy's amount and the last collection is old enough. */
export function shouldCollect(p: WorkerGcPolicy, s: { arrayBuffersBytes: number; baselineBytes: number; nowMs: number; lastMs: number }): boolean {
  return s.arrayBuffersBytes - s.baselineBytes >= p.growthBytes && s.nowMs - s.lastMs >= p.minIntervalMs;
}

/**
 * V8's collector as a function, or undefined where it cannot be had. `--expose-gc` only installs `gc` in contexts
 * created while the flag is set: a fresh context gets it, and the flag is cleared again at once.
 */
export function exposeGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? () => void (gc as () => unknown)() : undefined;
  } catch {
    return undefined;
  } finally {
    try {
      setFlagsFromString('--no-expose-gc');
    } catch {
      /* the flag stays; harmless */
    }
  }
}

/** The worker's collector: `maybeCollect()` between jobs; counts what it did (for the memory report). */
export class WorkerGc {
  private baseline: number;
  private last = -Infinity;
  collections = 0;

  constructor(
    private readonly gc: (() => void) | undefined,
    private readonly arrayBuffers: () => number,
    private readonly now: () => number,
    readonly policy: WorkerGcPolicy = WORKER_GC_DEFAULTS,
  ) {
    this.baseline = arrayBuffers();
  }

  /** Collects when the buffers grew enough (returns whether it did). */
  maybeCollect(): boolean {
    if (this.gc === undefined) return false;
    const nowMs = this.now();
    const ab = this.arrayBuffers();
    // shrinking (a model released, buffers transferred away) lowers the mark, so growth is counted from there
    if (ab < this.baseline) this.baseline = ab;
    if (!shouldCollect(this.policy, { arrayBuffersBytes: ab, baselineBytes: this.baseline, nowMs, lastMs: this.last })) return false;
    this.gc();
    this.collections++;
    this.last = nowMs;
    this.baseline = this.arrayBuffers();
    return true;
  }
}
