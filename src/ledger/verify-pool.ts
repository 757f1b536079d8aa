/**
 * Parallel event-signature checks for sync pages (issue 11 §4, ledger_events_per_s). Taking a synced event cost
 * one ECDSA verification (about 78 µs, libsecp256k1) plus its SQLite write and state transition (about 76 µs),
 * all on the event loop. This pool verifies a page's event signatures on worker threads before the page is
 * ingested; each acceptance goes into verify.ts's verdict cache, so the ledger's own check (verifyEvent, unchanged)
 * hits the cache instead of verifying again. The verdicts cannot change: the workers run the same verifyDomain on
 * the same (signer, payload, signature), only acceptances are recorded, under the cache key recomputed here from the
 * payload (rememberSignatureVerdict), and a rejection is simply verified again at ingest, giving the same answer.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { rememberSignatureKey } from './verify.js';

/** Worker threads by default: the cores left beside the event loop, at most 4 (a page is 512 events). */
export function defaultVerifyThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

/** Below this many events a page is verified inline (a worker round trip costs more than a few checks). */
export const VERIFY_POOL_MIN_PAGE = 32;
const MIN_PARALLEL = VERIFY_POOL_MIN_PAGE;

/** Verifier threads alive in this process, all pools together (tests check that a stopped node leaves none). */
let liveWorkers = 0;
export function liveVerifyWorkers(): number {
  return liveWorkers;
}

// The worker: reads each event's header and runs verify.ts's own check key and signature check on it
// (signed-parts.ts acceptedSignatureKeyOfBytes, whose module imports little: a worker starts in a third of the time); answers, per accepted event, the verdict-cache key (the payload's digest, computed
// by the decode, + the signature), so the event loop only inserts.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.verify).then(({ acceptedSignatureKeyOfBytes }) => {
  parentPort.on('message', ({ id, items }) => {
    const keys = [];
    for (const bytes of items) {
      try { const k = acceptedSignatureKeyOfBytes(bytes); if (k !== null) keys.push(k); } catch {}
    }
    parentPort.postMessage({ id, keys });
  });
  parentPort.postMessage({ ready: true });
});
`;

interface Job {
  resolve: (keys: string[]) => void;
  reject: (e: Error) => void;
}

export class SignatureVerifyPool {
  private readonly workers: Worker[] = [];
  private readonly ready: Promise<void>[] = [];
  private readonly jobs = new Map<number, Job>();
  private next = 0;
  private closed = false;
  /** Every worker has loaded the verifier: prefill then posts the page before it returns (see prefill). */
  private allReady = false;
  /**
   * Settles once the latest prefill's acceptances are recorded (or it failed): each prefill records its page's after
   * the previous page's, so the verdict cache (first in, first out) fills in page order whatever order the workers
   * answer in, and the oldest entries it evicts are those of pages taken first.
   */
  private applied: Promise<void> = Promise.resolve();

  constructor(readonly threads = defaultVerifyThreads()) {
    const verify = new URL('./signed-parts.js', import.meta.url).href;
    for (let i = 0; i < Math.max(1, threads); i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { verify } });
      w.unref(); // never keeps the process alive; close() ends them
      liveWorkers++;
      w.once('exit', () => liveWorkers--);
      this.ready.push(
        new Promise<void>((resolve, reject) => {
          w.once('error', reject);
          w.on('message', (m: { ready?: true; id?: number; keys?: string[] }) => {
            if (m.ready === true) return resolve();
            const job = this.jobs.get(m.id!);
            if (job === undefined) return;
            this.jobs.delete(m.id!);
            job.resolve(m.keys!);
          });
        }),
      );
      w.on('error', (e) => this.failAll(e));
      this.workers.push(w);
    }
    Promise.all(this.ready).then(
      () => void (this.allReady = true),
      () => {},
    );
  }

  /** True once every worker has loaded the verifier (prefill then posts at once). */
  get isReady(): boolean {
    return this.allReady;
  }

  /** Pages posted to the workers whose verdicts have not come back. */
  get pendingJobs(): number {
    return this.jobs.size;
  }

  /** Resolves once every worker has loaded the verifier. */
  async started(): Promise<void> {
    await Promise.all(this.ready);
  }

  /**
   * Verifies the signatures of `page` (wire bytes, as a sync page holds them) on the workers and records the
   * acceptances in the verdict cache. Undecodable events are skipped (ingest drops them). Returns how many were
   * accepted. Never changes a verdict: ingest judges every event as before, with fewer ECDSA checks to do.
   */
  async prefill(page: readonly Uint8Array[]): Promise<number> {
    if (this.closed || page.length < MIN_PARALLEL) return 0;
    // Once the workers are up, post without an await first: an await here would defer the postMessage to a
    // microtask, i.e. until the caller's synchronous ingest of the previous page had finished, and the "pipeline"
    // ran verification and ingest one after the other (the pooled bench was no faster than the plain one).
    const before = this.applied;
    let done!: () => void;
    this.applied = new Promise<void>((resolve) => (done = resolve));
    try {
      return await this.verifyInOrder(page, before);
    } finally {
      // a failed page frees the next one only once the pages before it are recorded (order holds past a failure)
      void before.then(done);
    }
  }

  private async verifyInOrder(page: readonly Uint8Array[], before: Promise<void>): Promise<number> {
    if (!this.allReady) await Promise.all(this.ready);
    const n = this.workers.length;
    const per = Math.ceil(page.length / n);
    const parts = await Promise.all(
      this.workers.map((w, i) => {
        const chunk = page.slice(i * per, (i + 1) * per);
        if (chunk.length === 0) return Promise.resolve([] as string[]);
        const id = this.next++;
        return new Promise<string[]>((resolve, reject) => {
          this.jobs.set(id, { resolve, reject });
          // copies: a view would clone its whole underlying buffer (a page's RPC message)
          w.postMessage({ id, items: chunk.map((b) => (b instanceof Uint8Array ? b.slice() : new Uint8Array(0))) });
        });
      }),
    );
    await before;
    let accepted = 0;
    for (const keys of parts) {
      for (const k of keys) rememberSignatureKey(k);
      accepted += keys.length;
    }
    return accepted;
  }

  private failAll(e: Error): void {
    for (const job of this.jobs.values()) job.reject(e);
    this.jobs.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new Error('signature verify pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
