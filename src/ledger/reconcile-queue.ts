/**
 * The node's queue of ledger reconciliations: at most one job per peer, run one at a time in the order peers were
 * first asked for, a full job replacing a queued tail one (mergeReconcileJob), and a failed job against a peer whose
 * ledger is not serving yet retried a few times with a doubling delay (reconcileRetryMs). Nothing here knows the
 * network: `run` does the reconciliation, so the queue's rules are unit-tested with a fake scheduler
 * (test/unit/ledger/reconcile-queue.test.ts) and node/ledger.ts only wires it.
 *
 * Bounds: one entry per peer id (a peer asked for a million times holds one entry), and one pending retry timer per
 * failed job, at most MAX_RECONCILE_ATTEMPTS − 1 per peer in a row; `stop()` clears both.
 */
import { mergeReconcileJob, reconcileRetryMs, type ReconcileJob, type ReconcileMode } from './reconcile.js';

/** A timer the queue can cancel; the default is Node's setTimeout, unref'ed (a retry never keeps the process up). */
export interface RetryScheduler {
  schedule(fn: () => void, ms: number): unknown;
  cancel(handle: unknown): void;
}

const nodeScheduler: RetryScheduler = {
  schedule(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  cancel(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

export interface ReconcileQueueOptions {
  /** Our own peer id: never queued. */
  readonly self: string;
  /** Reconciles with `peer`; a rejection counts as a failure. */
  run(peer: string, mode: ReconcileMode): Promise<void>;
  /** Whether a failure means the peer's ledger is not up yet (the only failure retried). */
  unavailable(error: unknown): boolean;
  /** Told of every failure while the queue runs (counting, logging); not called for failures after stop(). */
  onFailure?(peer: string, error: unknown, job: ReconcileJob): void;
  readonly scheduler?: RetryScheduler;
}

export class ReconcileQueue {
  private readonly jobs = new Map<string, ReconcileJob>();
  private readonly retries = new Set<unknown>();
  private readonly scheduler: RetryScheduler;
  private pumping: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly o: ReconcileQueueOptions) {
    this.scheduler = o.scheduler ?? nodeScheduler;
  }

  /** Jobs waiting (not counting the one running). */
  get size(): number {
    return this.jobs.size;
  }

  /** Retry timers pending. */
  get pendingRetries(): number {
    return this.retries.size;
  }

  /** Whether a job is running now. */
  get running(): boolean {
    return this.pumping !== undefined;
  }

  /** Asks for a reconciliation with `peer` (merged with one already queued for it) and starts the pump if idle. */
  enqueue(peer: string, mode: ReconcileMode, attempt = 0): void {
    if (this.stopped || peer === this.o.self) return;
    const job = mergeReconcileJob(this.jobs.get(peer), { mode, attempt });
    if (job !== undefined) this.jobs.set(peer, job);
    this.kick();
  }

  /** Resolves once the queue is empty and nothing runs (for tests and orderly stops). */
  async drained(): Promise<void> {
    while (this.pumping !== undefined) await this.pumping.catch(() => {});
  }

  /** Drops every queued job and retry; waits for the running job to end (the caller aborts it through its signal). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.jobs.clear();
    for (const h of this.retries) this.scheduler.cancel(h);
    this.retries.clear();
    await this.pumping?.catch(() => {});
  }

  private kick(): void {
    if (this.pumping !== undefined || this.stopped) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      if (this.jobs.size > 0) this.kick();
    });
  }

  private async pump(): Promise<void> {
    while (this.jobs.size > 0 && !this.stopped) {
      const [peer, job] = this.jobs.entries().next().value!;
      this.jobs.delete(peer);
      try {
        await this.o.run(peer, job.mode);
      } catch (e) {
        if (this.stopped) return;
        this.o.onFailure?.(peer, e, job);
        // A peer whose ledger is not up yet (it connected first): ask again shortly, a few times.
        const retryMs = reconcileRetryMs(this.o.unavailable(e), job.attempt);
        if (retryMs !== undefined) {
          const h = this.scheduler.schedule(() => {
            this.retries.delete(h);
            this.enqueue(peer, job.mode, job.attempt + 1);
          }, retryMs);
          this.retries.add(h);
        }
      }
    }
  }
}
