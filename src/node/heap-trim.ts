/**
 * Gives the C heap's free pages back to the OS once a minute (issue 12 §2: the chaos run's memory growth).
 *
 * What grew: not the JavaScript heap (heap snapshots two minutes apart on a chaos survivor differed by +1 MiB, all
 * of it compiled code) but glibc malloc's main arena. A serving node's main thread allocates and frees native
 * buffers of many sizes (socket reads, yamux and noise frames, tensors in RPC messages); glibc returns a freed
 * chunk's pages to the OS only when it sits at the top of the heap, so the arena kept the high-water mark of every
 * burst (a partition healing, a failover) as free but resident memory, and RSS crept up: 246 → 414 MiB in
 * 7 minutes with a 60 MiB JS heap, [heap] mapping 197 MiB. `malloc_trim(0)` through gdb took that node to 193 MiB
 * ([heap] 18 MiB). The trim runs in the small `neuroshard_heap` addon (src/tensor/native/heap.cc); where the addon
 * did not build or the C library has no such call, this does nothing.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findPackageRoot } from '../util/package-root.js';
import { MALLOC_POLICY, setMallocPolicy } from '../util/malloc-policy.js';
import { errorMessage } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';

/**
 * Releases free C-heap pages, off the event loop (libuv's thread pool): true when some were released, false when
 * none, null when the platform has no trim.
 */
export type HeapTrim = () => Promise<boolean | null>;

let loaded: HeapTrim | undefined | null;

/** The addon's trim, or undefined (with why) when it is not there. Loaded once. */
export function loadHeapTrim(): { trim: HeapTrim } | { reason: string } {
  if (loaded === null) return { reason: 'not available' };
  if (loaded !== undefined) return { trim: loaded };
  const root = findPackageRoot();
  const path = root === undefined ? undefined : join(root, 'build', 'Release', 'neuroshard_heap.node');
  if (path === undefined || !existsSync(path)) {
    loaded = null;
    return { reason: `${path ?? 'build/Release/neuroshard_heap.node'} does not exist (run \`node scripts/build-native.mjs --force\`)` };
  }
  try {
    const mod = createRequire(import.meta.url)(path) as { trimHeap?: unknown };
    if (typeof mod.trimHeap !== 'function') throw new Error('no trimHeap export');
    const fn = mod.trimHeap as () => Promise<unknown>;
    loaded = async () => {
      const r = await fn();
      return r === null ? null : r === true;
    };
    return { trim: loaded };
  } catch (e) {
    loaded = null;
    return { reason: `${path} failed to load: ${errorMessage(e)}` };
  }
}

export interface HeapTrimmer {
  /** Trims completed so far, and how many released memory. */
  readonly runs: number;
  readonly released: number;
  stop(): void;
}

/**
 * Calls `trim` every `everyMs` (0: never) until stopped, one at a time. With the addon's trim (no `trim` given) it
 * also sets the C heap's policy for large buffers (util/malloc-policy.ts; `mallocPolicy: false` leaves it): freed
 * buffers are kept for reuse between two trims, only while the trims give them back. Often (10 s by default,
 * `heapTrimIntervalMs`) so that each trim has little to release: the first trim of a heap fragmented over minutes
 * (~200 MiB in 50,000 pieces) took 0.9 s at load 17, the next one 2 ms; it runs on the thread pool either way.
 */
export function startHeapTrimmer(o: { everyMs: number; trim?: HeapTrim; log?: Logger; mallocPolicy?: boolean }): HeapTrimmer {
  const log = o.log ?? silentLogger;
  const state = { runs: 0, released: 0 };
  let trim = o.trim;
  if (trim === undefined && o.everyMs > 0) {
    const got = loadHeapTrim();
    if ('reason' in got) log.debug('no C-heap trim', { reason: got.reason });
    else {
      trim = got.trim;
      // freed buffers are kept for reuse between trims (MALLOC_POLICY), only while the trim runs to give them back
      if (o.mallocPolicy !== false) log.debug('C-heap policy', { ...MALLOC_POLICY, set: setMallocPolicy() });
    }
  }
  let timer: NodeJS.Timeout | undefined;
  let busy = false;
  let stopped = false;
  if (trim !== undefined && o.everyMs > 0) {
    const run = trim;
    timer = setInterval(() => {
      if (busy) return;
      busy = true;
      run()
        .then((r) => {
          if (r === null) {
            clearInterval(timer); // no trim on this platform: stop asking
            return;
          }
          if (stopped) return;
          state.runs++;
          if (r) state.released++;
        })
        .catch((e: unknown) => log.warn('C-heap trim failed', { error: errorMessage(e) }))
        .finally(() => {
          busy = false;
        });
    }, o.everyMs);
    timer.unref();
  }
  return {
    get runs() {
      return state.runs;
    },
    get released() {
      return state.released;
    },
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
