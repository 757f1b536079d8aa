/**
 * Reconciliation of our ledger with peers: compare ledger-status summaries, and pull what differs.
 *
 *   const r = new Reconciler({ self, ours, theirs, prepare, syncFrom, onSyncDropped, penalise, unavailable, … });
 *   r.enqueue(peer, 'full');    // on connect; 'tail' for the periodic check and when finality says we are behind
 *   r.stats.caughtUp;           // reconciled with at least one peer: proofs and the watch mark wait for it
 *   await r.stop();
 *
 * One job per peer, run one at a time (ReconcileQueue). A job first lets `prepare` learn the network's genesis key
 * and pull the peer's checkpoints, then compares summaries (reconcileAction): equal means caught up; the same hash
 * with fewer events served means wait; anything else syncs. A tail job pulls only the last `tailSyncMs` of ledger
 * time (gossip lost in a partition), and falls back to a full sync when the peer still knows more. A full sync that
 * paused on its page budget is queued again behind the others. A peer that served events failing stateless
 * verification during a sync is penalised once per sync, whatever the sync's outcome.
 *
 * Nothing here knows libp2p or SQLite: node/ledger.ts passes the LedgerService, the ledger's status and the
 * network's ledger-status call, and the rules run in unit tests with callbacks (test/unit/ledger/reconciler.test.ts).
 */
import { ReconcileQueue, type RetryScheduler } from './reconcile-queue.js';
import { afterTailSync, garbageReasons, reconcileAction, tailSyncStart, type ReconcileMode, type StatusSummary } from './reconcile.js';
import type { Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/** Pages a tail sync may pull before it gives way to a full sync (LedgerService.syncFrom's maxPages). */
export const TAIL_SYNC_MAX_PAGES = 64;
/** Ledger time a tail sync covers by default. */
export const DEFAULT_TAIL_SYNC_MS = 15 * 60_000;

export interface ReconcilerOptions {
  /** Our own peer id: never reconciled with. */
  readonly self: string;
  /** Our ledger's summary now (served events only, and whether a replay is pending). */
  ours(): StatusSummary & { replayPending: boolean };
  /** The peer's ledger-status. */
  theirs(peer: string, signal: AbortSignal): Promise<StatusSummary>;
  /** Runs before the comparison: learn the genesis key from the peer if we have none, pull its checkpoints. */
  prepare(peer: string, signal: AbortSignal): Promise<void>;
  /** LedgerService.syncFrom: `complete` false when it paused on its page budget. */
  syncFrom(peer: string, opts: { signal: AbortSignal; from?: Uint8Array; maxPages?: number }): Promise<{ complete: boolean }>;
  /** Subscribes to the drop reasons of events a sync fetched (LedgerService 'ledger:ingested', source 'sync'). */
  onSyncDropped(fn: (reason: string | undefined) => void): () => void;
  /** Penalises a peer that served `count` invalid events (the first reason given). */
  penalise(peer: string, count: number, firstReason: string): void;
  /** Whether a failure means the peer's ledger is not serving yet (retried with a doubling delay). */
  unavailable(error: unknown): boolean;
  /** Ledger time a tail sync covers (DEFAULT_TAIL_SYNC_MS). */
  readonly tailSyncMs?: number;
  /** Aborted on the node's stop: a running job ends with it. */
  readonly signal: AbortSignal;
  readonly clock: Clock;
  readonly log: Logger;
  readonly scheduler?: RetryScheduler;
}

export interface ReconcileStats {
  caughtUp: boolean;
  runs: number;
  failures: number;
  lastPeer?: string;
}

export class Reconciler {
  readonly stats: ReconcileStats = { caughtUp: false, runs: 0, failures: 0 };
  private readonly queue: ReconcileQueue;
  private stopped = false;

  constructor(private readonly o: ReconcilerOptions) {
    this.queue = new ReconcileQueue({
      self: o.self,
      run: (peer, mode) => this.reconcile(peer, mode),
      unavailable: (e) => o.unavailable(e),
      onFailure: (peer, e) => {
        this.stats.failures++;
        o.log.debug('ledger reconciliation failed', { peer, error: errorMessage(e) });
      },
      ...(o.scheduler !== undefined ? { scheduler: o.scheduler } : {}),
    });
  }

  /** Queues a job with `peer` (one per peer; a full job replaces a queued tail one). Nothing after stop(). */
  enqueue(peer: string, mode: ReconcileMode): void {
    if (!this.stopped) this.queue.enqueue(peer, mode);
  }

  /** Jobs waiting (not counting the one running). */
  get queued(): number {
    return this.queue.size;
  }

  /** Resolves once no job is queued or running. */
  drained(): Promise<void> {
    return this.queue.drained();
  }

  /** One reconciliation with `peer` now, outside the queue (the queue calls this too). */
  async reconcile(peer: string, mode: ReconcileMode): Promise<void> {
    const { signal } = this.o;
    await this.o.prepare(peer, signal);
    const action = reconcileAction(this.o.ours(), await this.o.theirs(peer, signal));
    if (action === 'caught-up') this.stats.caughtUp = true;
    if (action !== 'sync') return;
    this.stats.runs++;
    this.stats.lastPeer = peer;
    if (mode === 'tail') {
      const from = tailSyncStart(this.o.clock.now(), this.o.tailSyncMs ?? DEFAULT_TAIL_SYNC_MS);
      await this.collecting(peer, () => this.o.syncFrom(peer, { signal, from, maxPages: TAIL_SYNC_MAX_PAGES }));
      if (this.stopped) return;
      // still apart, and the peer knows more than we do: the difference is older than the tail
      if (afterTailSync(this.o.ours(), await this.o.theirs(peer, signal)) === 'caught-up') {
        this.stats.caughtUp = true;
        return;
      }
    }
    const { complete } = await this.collecting(peer, () => this.o.syncFrom(peer, { signal }));
    // we hold everything this peer had (our own used nonces among it)
    if (complete) this.stats.caughtUp = true;
    else this.enqueue(peer, 'full'); // paused on its budget: continue after the others
  }

  /** Queued jobs and retries dropped; the running one ends on the node's abort signal. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.queue.stop();
  }

  /** Runs a sync with `peer` and penalises the peer once for the invalid events it served (even when it fails). */
  private async collecting<T>(peer: string, run: () => Promise<T>): Promise<T> {
    const dropped: (string | undefined)[] = [];
    const off = this.o.onSyncDropped((reason) => dropped.push(reason));
    try {
      return await run();
    } finally {
      off();
      const bad = garbageReasons(dropped);
      if (bad.length > 0) {
        this.o.log.warn('peer served invalid ledger events', { peer, count: bad.length, reason: bad[0] });
        this.o.penalise(peer, bad.length, bad[0]!);
      }
    }
  }
}
