/**
 * A serving hop's running commitments (hop-commitment.ts, ledger/commitment.ts) computed on a worker thread, off the
 * event loop that carries the hop's round trips (session 22, docs/LIMITS.md "Session 22: hop round trip").
 *
 * Until session 21 the hop took each step's records (top-k of [T, C] hidden states rounded to half, SHA-256 of all
 * half bits, the chain hash) on its event loop after writing the answer: ~17 µs of a [1, 768] step, which delayed
 * the next request whenever it arrived before they were done (always with both nodes in one process: hop p50 0.074 →
 * 0.057 ms without them). Here a step only queues its values; batches go to one worker thread per process, which
 * keeps each commitment's chain value and answers the new values in order. The values are the same bytes: the worker
 * runs the same ledger/commitment.ts functions on the same inputs in the same order.
 *
 * Since session 25 the entry's driver queues its own commitments over each hop's inputs and outputs here too
 * (router/driver.ts `entryCommits`): between one hop's answer and the next hop's request they cost the chain's
 * critical path ~30–50 µs a hop step on the event loop.
 *
 * Guarantee (was inference.ts `flushCommits`): every step queued before `settled()` is in the commitment's `value`
 * when it resolves, in queue order. A worker that fails or does not answer within `SETTLE_TIMEOUT_MS` is dropped:
 * the steps not yet answered are taken on the event loop from the values kept for that, and later steps too (the
 * answer stays the same, only slower).
 */
import { Worker } from 'node:worker_threads';
import { extendCommitmentTopK, extendTokenCommitment, initialCommitment, topKRows } from '../ledger/commitment.js';

/** One running commitment (a hop session's input or output side). `value` holds every step applied so far. */
export interface QueuedCommitment {
  readonly id: number;
  value: Uint8Array;
  steps: number;
  /** A step of it was queued for the worker: only then does the worker hold a chain value to forget on drop. */
  sent?: boolean;
}

interface Job {
  target: QueuedCommitment;
  /** Hidden states [T, cols] (cols ≥ 1) or token ids (cols 0), with the chunk lengths (positions per step). */
  values: Float32Array | Uint32Array;
  cols: number;
  chunks: number[];
  seq: number;
}

/**
 * A batch is posted at 256 jobs, 1 MiB of values, or 20 ms after its first job, whichever comes first. Each post
 * wakes the worker thread, which on a loaded 2-core machine can take the CPU from the event loop for a time slice:
 * 64 jobs / 2 ms gave a one-process hop p90 of 113–196 µs, 256 / 20 ms 66–69 (p50 56–59 either way, load 18–20).
 */
const BATCH_JOBS = 256;
const BATCH_BYTES = 1 << 20;
const BATCH_MS = 20;
/** How long settled() waits for the worker before it takes the steps on the event loop itself. */
export const SETTLE_TIMEOUT_MS = 5000;

// The worker: one chain value per commitment id; per batch, every job in order, then the new values in order.
// Posts `ready` once the module is loaded. Drops are applied after the batch's jobs.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.commitment).then(({ extendCommitmentTopK, extendTokenCommitment, initialCommitment, topKRows }) => {
  const chains = new Map();
  parentPort.on('message', ({ batch, count, desc, hidden, tokens, drops }) => {
    const out = new Uint8Array(32 * count);
    let h = 0, t = 0, d = 0;
    for (let j = 0; j < count; j++) {
      const id = desc[d], cols = desc[d + 1], n = desc[d + 2], m = desc[d + 3];
      d += 4;
      let c = chains.get(id) ?? initialCommitment();
      let at = 0;
      for (let i = 0; i < m; i++, d++) {
        const k = desc[d];
        if (cols > 0) c = extendCommitmentTopK(c, topKRows(hidden.subarray(h + at * cols, h + (at + k) * cols), k, cols));
        else c = extendTokenCommitment(c, tokens.subarray(t + at, t + at + k));
        at += k;
      }
      if (cols > 0) h += n; else t += n;
      chains.set(id, c);
      out.set(c, 32 * j);
    }
    for (const id of drops) chains.delete(id);
    parentPort.postMessage({ batch, out }, [out.buffer]);
  });
  parentPort.postMessage({ ready: true });
});
`;

/** Applies one job on this thread (the fallback, and tests' reference). */
function applyLocally(job: Job): void {
  const { target, values, cols, chunks } = job;
  let at = 0;
  for (const n of chunks) {
    if (cols > 0) target.value = extendCommitmentTopK(target.value, topKRows((values as Float32Array).subarray(at * cols, (at + n) * cols), n, cols));
    else target.value = extendTokenCommitment(target.value, (values as Uint32Array).subarray(at, at + n));
    target.steps++;
    at += n;
  }
}

/**
 * The queue of commitment steps of this process's hops, in order, and the worker that takes them. One per process
 * (`hopCommitQueue()`): the worker is started at the first step and never keeps the process alive.
 */
export class HopCommitQueue {
  private worker: Worker | undefined;
  /** The worker failed or hung: everything is taken on the event loop from now on. */
  private local = false;
  private unsent: Job[] = [];
  private unsentBytes = 0;
  private drops: number[] = [];
  /** Posted batches not answered yet, oldest first (the worker answers in order). */
  private readonly inflight = new Map<number, Job[]>();
  private nextBatch = 0;
  private nextId = 0;
  private seq = 0;
  /** Every job with seq ≤ applied is in its commitment's value. */
  private applied = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private waiters: { seq: number; resolve: () => void }[] = [];
  /** Jobs taken by the worker and on this thread (tests, the bench's notes). */
  readonly stats = { worker: 0, local: 0, batches: 0 };

  constructor(private readonly opts: { useWorker?: boolean; batchJobs?: number; batchMs?: number; settleTimeoutMs?: number } = {}) {
    if (opts.useWorker === false) this.local = true;
  }

  /** A new commitment at its initial value (ledger/commitment.ts initialCommitment). */
  open(): QueuedCommitment {
    return { id: ++this.nextId, value: initialCommitment(), steps: 0 };
  }

  /** Hidden states [T, cols] cut into `chunks` (one commitment step each); `values` must not change afterwards. */
  hidden(target: QueuedCommitment, values: Float32Array, cols: number, chunks: readonly number[]): void {
    let T = 0;
    for (const n of chunks) T += n;
    if (cols < 1 || T * cols !== values.length) throw new RangeError('HopCommitQueue.hidden: chunks do not cover the values');
    this.push({ target, values, cols, chunks: [...chunks], seq: 0 });
  }

  /** Token ids cut into `chunks` (one step each), or one id per chunk (the validator's sampled tokens). */
  tokens(target: QueuedCommitment, ids: ArrayLike<number>, chunks: readonly number[]): void {
    let T = 0;
    for (const n of chunks) T += n;
    if (T !== ids.length) throw new RangeError('HopCommitQueue.tokens: chunks do not cover the ids');
    const u = new Uint32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]!;
      if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw new RangeError('extendTokenCommitment: ids must be u32');
      u[i] = t;
    }
    this.push({ target, values: u, cols: 0, chunks: [...chunks], seq: 0 });
  }

  /** The commitment is no longer used (its session ended): the worker forgets its chain value. */
  drop(target: QueuedCommitment): void {
    // Only ids the worker was sent steps for: a session opened and ended without a step (anyone may) would otherwise
    // grow this list by two ids with nothing to flush it (review, session 23: 2M ids for 1M step-less sessions).
    if (!this.local && target.sent === true) this.drops.push(target.id);
  }

  /** Resolves once every step queued so far is in its commitment's value (in order). */
  settled(): Promise<void> {
    const seq = this.seq;
    if (this.applied >= seq) return Promise.resolve();
    if (this.local) {
      this.takeAllLocally();
      return Promise.resolve();
    }
    this.post();
    // a worker that could not take the batch: post() fell back and took every step here
    if (this.applied >= seq) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        if (this.applied < seq) this.fallBack(new Error(`no answer within ${this.opts.settleTimeoutMs ?? SETTLE_TIMEOUT_MS} ms`));
      }, this.opts.settleTimeoutMs ?? SETTLE_TIMEOUT_MS);
      timer.unref();
      this.waiters.push({
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Steps queued and not yet applied. */
  get pending(): number {
    return this.seq - this.applied;
  }

  private push(job: Job): void {
    job.seq = ++this.seq;
    if (this.local) {
      // no worker: taken at once after the current turn's work (the answer is written first), in order
      this.unsent.push(job);
      this.immediate ??= setImmediate(() => {
        this.immediate = undefined;
        this.takeAllLocally();
      });
      return;
    }
    job.target.sent = true;
    this.unsent.push(job);
    this.unsentBytes += job.values.byteLength;
    if (this.unsent.length >= (this.opts.batchJobs ?? BATCH_JOBS) || this.unsentBytes >= BATCH_BYTES) this.post();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.post();
      }, this.opts.batchMs ?? BATCH_MS);
      this.timer.unref();
    }
  }

  private startWorker(): Worker {
    const commitment = new URL('../ledger/commitment.js', import.meta.url).href;
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { commitment } });
    w.on('message', (m: { ready?: true; batch?: number; out?: Uint8Array }) => {
      if (m.ready === true || this.worker !== w) return;
      this.answered(m.batch!, m.out!);
    });
    w.on('error', (e) => {
      if (this.worker === w) this.fallBack(e);
    });
    w.on('exit', (code) => {
      if (this.worker === w) this.fallBack(new Error(`commitment worker exited (${code})`));
    });
    // never keeps the process alive; after the listeners (a 'message' listener added later refs the worker again)
    w.unref();
    return w;
  }

  private post(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.local) return this.takeAllLocally();
    if (this.unsent.length === 0) return;
    const jobs = this.unsent;
    this.unsent = [];
    this.unsentBytes = 0;
    let nh = 0;
    let nt = 0;
    let nd = 0;
    for (const j of jobs) {
      if (j.cols > 0) nh += j.values.length;
      else nt += j.values.length;
      nd += 4 + j.chunks.length;
    }
    // typed arrays only, transferred (a view's whole ArrayBuffer would be cloned, and nested arrays cost more to
    // clone than the records they describe): per job id, cols (0: token ids), values, chunk count, chunk lengths
    const hidden = new Float32Array(nh);
    const tokens = new Uint32Array(nt);
    const desc = new Float64Array(nd);
    nh = 0;
    nt = 0;
    nd = 0;
    for (const j of jobs) {
      if (j.cols > 0) {
        hidden.set(j.values, nh);
        nh += j.values.length;
      } else {
        tokens.set(j.values, nt);
        nt += j.values.length;
      }
      desc[nd] = j.target.id;
      desc[nd + 1] = j.cols;
      desc[nd + 2] = j.values.length;
      desc[nd + 3] = j.chunks.length;
      nd += 4;
      for (const k of j.chunks) desc[nd++] = k;
    }
    const batch = ++this.nextBatch;
    this.inflight.set(batch, jobs);
    this.stats.batches++;
    try {
      this.worker ??= this.startWorker();
      // held while an answer is due (settled() may be waiting on it), let go once none is
      if (this.inflight.size === 1) this.worker.ref();
      this.worker.postMessage({ batch, count: jobs.length, desc, hidden, tokens, drops: this.drops }, [hidden.buffer, tokens.buffer, desc.buffer]);
      this.drops = [];
    } catch (e) {
      this.fallBack(e);
    }
  }

  private answered(batch: number, out: Uint8Array): void {
    const jobs = this.inflight.get(batch);
    if (jobs === undefined) return;
    this.inflight.delete(batch);
    if (this.inflight.size === 0) this.worker?.unref();
    for (let i = 0; i < jobs.length; i++) {
      const j = jobs[i]!;
      j.target.value = out.slice(32 * i, 32 * i + 32);
      j.target.steps += j.chunks.length;
      this.applied = j.seq;
    }
    this.stats.worker += jobs.length;
    this.wake();
  }

  /** The worker is gone or hung: every job not yet answered is taken here, in order, and so are later ones. */
  private fallBack(_why: unknown): void {
    if (this.local) return;
    this.local = true;
    const w = this.worker;
    this.worker = undefined;
    void w?.terminate().catch(() => {});
    this.drops = [];
    this.takeAllLocally();
  }

  private takeAllLocally(): void {
    const batches = [...this.inflight.keys()].sort((a, b) => a - b);
    const jobs: Job[] = [];
    for (const b of batches) jobs.push(...this.inflight.get(b)!);
    this.inflight.clear();
    jobs.push(...this.unsent);
    this.unsent = [];
    this.unsentBytes = 0;
    for (const j of jobs) {
      applyLocally(j);
      this.applied = j.seq;
    }
    this.stats.local += jobs.length;
    this.wake();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.seq <= this.applied) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** Stops the worker (tests); later steps are taken on the event loop. */
  async close(): Promise<void> {
    this.takeAllLocally();
    this.local = true;
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}

let shared: HopCommitQueue | undefined;

/** This process's queue (one worker for every hop server in it). NEUROSHARD_HOP_COMMIT_WORKER=0 keeps them on the event loop. */
export function hopCommitQueue(): HopCommitQueue {
  shared ??= new HopCommitQueue({ useWorker: process.env.NEUROSHARD_HOP_COMMIT_WORKER !== '0' });
  return shared;
}
