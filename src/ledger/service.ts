/**
 * The ledger on the network: receives gossip (with the live freshness filter), serves and runs sync, publishes
 * our own events, and drains the outbox. node/ composes it: `new LedgerService({ ledger, network, key, dataDir })`,
 * `start()` when the node starts (it syncs from the peers and publishes the outbox), `stop()` on shutdown.
 */
import type { RewardRules } from './witness.js';
import { systemClock, type Clock } from '../util/clock.js';
import { deadlineLink, deadlineSignal, throwIfAborted, type AbortOptions } from '../util/abort.js';
import { errorMessage, PeerMisbehaviourError } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { fromHex, toHex } from '../util/bytes.js';
import { compareBytes, decodeEvent, orderKey, type LedgerEvent } from './events.js';
import { LEDGER_SYNC_LIMITS, type HolderRecordVerifier, type LedgerNetwork } from './interfaces.js';
import { Ledger, ledgerPath, type IngestResult } from './ledger.js';
import { listOutbox, pruneOutcomes, removeOutboxFile, writeOutcome } from './outbox.js';
import { defaultVerifyThreads, SignatureVerifyPool, VERIFY_POOL_MIN_PAGE } from './verify-pool.js';

export interface LedgerServiceEvents {
  /** An event arrived (gossip, sync or local) and was looked at. */
  /**
   * `kind`: the event's kind byte (its wire byte 1; undefined for fewer bytes), so that a listener interested in one
   * kind reads no event back for the others (review2, session 28: a node's transcript index and its validator each
   * read every ingested event back by id, ~8–11 µs an event on the main thread, a sync's whole history included).
   */
  'ledger:ingested': { result: IngestResult; source: 'gossip' | 'sync' | 'local' | 'fetch'; kind?: number };
  /** A sync with a peer finished. */
  'ledger:synced': { peer: string; received: number; added: number };
}

export interface LedgerServiceOptions {
  ledger: Ledger;
  network: LedgerNetwork;
  /** Data dir whose outbox the service drains; omit to disable the outbox. */
  dataDir?: string;
  clock?: Clock;
  logger?: Logger;
  /** How often the outbox folder is polled. */
  outboxPollMs?: number;
  /** Budget of one syncFrom: pages and wall time (defaults LEDGER_SYNC_LIMITS.maxPagesPerSync and maxSyncMs). */
  syncBudget?: { maxPages?: number; maxMs?: number };
  /** Deadline of one sync call (default LEDGER_SYNC_LIMITS.callTimeoutMs). */
  callTimeoutMs?: number;
  /**
   * Worker threads that check sync pages' signatures ahead of ingest (verify-pool.ts). Default
   * defaultVerifyThreads() (the cores beside the event loop, at most 4); 0 verifies on the event loop.
   */
  verifyThreads?: number;
  /** A verify pool no sync used for this long is closed (default 30 s); the next sync starts it again. */
  verifyIdleMs?: number;
  /**
   * Sync pages stored per SQLite transaction (default LEDGER_SYNC_LIMITS.commitPages), fewer when they hold more than
   * LEDGER_SYNC_LIMITS.maxHeldBytes. 1: a transaction per page (tests that count commits).
   */
  syncCommitPages?: number;
  /** Held sync bytes at which the held pages are stored (default LEDGER_SYNC_LIMITS.maxHeldBytes; tests lower it). */
  syncMaxHeldBytes?: number;
  /** Sync pages fetched ahead of the store (default LEDGER_SYNC_LIMITS.aheadPages; 1 = one page ahead). */
  syncAheadPages?: number;
}

/** Peers whose interrupted sync position is remembered (the rest start again from the beginning). */
const MAX_RESUME_PEERS = 256;
/**
 * A sync stores pages that reach back before our tip without replaying (one replay per page would let a peer with
 * a backdated event in every page cost us a replay of the whole ledger per page), and replays once at its end and
 * after this many pages, so gossip that arrives during a long sync waits for its verdict at most this long.
 */
const SYNC_FLUSH_PAGES = 64;
/**
 * Gossip that sorts before the tip (up to 5 minutes late is admitted) is stored without replaying and replayed
 * after this delay, or after 4 × the last replay's duration when that is longer, so replays take at most a fifth
 * of the time: otherwise anyone could make every event they send, signed by a free key, cost a replay of the last
 * minutes of the ledger. In-order gossip is applied at once while no replay is pending.
 */
const GOSSIP_REPLAY_MS = 250;
const GOSSIP_REPLAY_DUTY = 4;
/**
 * How long a sync waits, before storing its held pages, for the pages it fetched ahead to land (and go to the verify
 * pool, which then checks them during the store). In process and on a LAN they land in well under this; a page that
 * takes longer (a slow or stalled peer) is not waited for: the store goes first.
 */
const SYNC_AHEAD_WAIT_MS = 50;
/** A verify pool no sync used for this long is closed (its workers hold memory; the next sync starts it again). */
const POOL_IDLE_MS = 30_000;

export class LedgerService extends TypedEmitter<LedgerServiceEvents> {
  private readonly ledger: Ledger;
  private readonly net: LedgerNetwork;
  private readonly clock: Clock;
  private readonly log: Logger;
  private stops: (() => void)[] = [];
  private outboxTimer: NodeJS.Timeout | undefined;
  private replayTimer: NodeJS.Timeout | undefined;
  private lastReplayMs = 0;
  private draining = false;
  private outboxStopped = false;
  /** Where a sync that stopped on its budget continues with that peer (order key of the last page's end). */
  private readonly resume = new Map<string, Uint8Array>();
  /** Worker threads for sync pages' signatures (0: on the event loop); the pool starts with the first sync page. */
  private verifyThreads: number;
  private pool: SignatureVerifyPool | undefined;
  private poolIdle: NodeJS.Timeout | undefined;
  private readonly closing = new Set<Promise<unknown>>();
  /** Sync pages whose signatures went to the pool (the others are checked at ingest). */
  pooledPages = 0;
  private syncing = 0;
  private stopped = false;

  constructor(private readonly opts: LedgerServiceOptions) {
    super();
    this.ledger = opts.ledger;
    this.net = opts.network;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger ?? silentLogger;
    this.verifyThreads = Math.max(0, Math.floor(opts.verifyThreads ?? defaultVerifyThreads()));
  }

  /** Subscribes to gossip, serves sync, and starts draining the outbox. Call syncAll() after to catch up. */
  start(): void {
    this.stops.push(this.net.serve(this.ledger.syncHandler()));
    this.stops.push(
      this.net.subscribe((bytes, from) => {
        let result: IngestResult;
        try {
          result = this.ledger.ingest(bytes, { ingress: 'gossip', nowMs: this.clock.now(), deferReplay: true });
        } catch (e) {
          this.log.error('ledger ingest failed', { from, error: errorMessage(e) });
          return;
        }
        if (result.status === 'pending') this.scheduleReplay();
        if (result.status === 'dropped' && result.reason !== 'STALE' && result.reason !== 'FUTURE') {
          this.log.debug('dropped gossip event', { from, reason: result.reason });
        }
        this.emit('ledger:ingested', { result, source: 'gossip', kind: bytes[1] });
      }),
    );
    if (this.opts.dataDir !== undefined) {
      pruneOutcomes(this.opts.dataDir, this.clock.now());
      const tick = (): void => {
        this.drainOutbox().catch((e: unknown) => this.log.warn('outbox drain failed', { error: errorMessage(e) }));
      };
      tick();
      this.outboxTimer = setInterval(tick, this.opts.outboxPollMs ?? 500);
      this.outboxTimer.unref();
    }
  }

  /** Stops draining the outbox (its files stay for the next start); gossip and sync go on until stop(). */
  stopOutbox(): void {
    if (this.outboxTimer !== undefined) clearInterval(this.outboxTimer);
    this.outboxTimer = undefined;
    this.outboxStopped = true;
  }

  /** Stops gossip, serving, the outbox and the verify pool (its workers exit: await closed()). */
  stop(): void {
    this.stopped = true;
    if (this.poolIdle !== undefined) clearTimeout(this.poolIdle);
    this.poolIdle = undefined;
    this.closePool();
    this.stopOutbox();
    for (const s of this.stops.splice(0)) s();
    if (this.replayTimer !== undefined) {
      clearTimeout(this.replayTimer);
      this.replayTimer = undefined;
      this.flushReplay('stop');
    }
  }

  /** Runs the replay pending in the ledger within GOSSIP_REPLAY_MS (one timer for any number of late events). */
  private scheduleReplay(): void {
    if (this.replayTimer !== undefined) return;
    this.replayTimer = setTimeout(
      () => {
        this.replayTimer = undefined;
        this.flushReplay('gossip');
      },
      Math.max(GOSSIP_REPLAY_MS, GOSSIP_REPLAY_DUTY * this.lastReplayMs),
    );
    this.replayTimer.unref();
  }

  private flushReplay(why: string): void {
    const start = performance.now();
    try {
      if (this.ledger.flushReplay().size > 0) this.lastReplayMs = performance.now() - start;
    } catch (e) {
      // e.g. the ledger was closed under us: the pending replay is on disk and runs when it is opened again
      this.log.warn('ledger replay failed', { why, error: errorMessage(e) });
    } finally {
      for (const w of this.replayWaiters.splice(0)) w();
    }
  }

  /** Submitters waiting for the pending replay's verdicts (verdictAfterReplay); woken by every flushReplay. */
  private readonly replayWaiters: (() => void)[] = [];

  /**
   * The verdict of our own event `r` that ingest stored as pending: after the next replay (scheduled within
   * GOSSIP_REPLAY_MS; a sync's own flush or stop() may run it sooner). Still 'pending' if `signal` aborts first.
   */
  private async verdictAfterReplay(r: IngestResult, signal?: AbortSignal): Promise<IngestResult> {
    if (signal?.aborted !== true) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.replayWaiters.push(done);
        signal?.addEventListener('abort', done, { once: true });
        this.scheduleReplay();
        // the timer is unref'd for the node's sake; a submitter waiting on it keeps the process up (a CLI's own)
        this.replayTimer?.ref();
      });
    }
    let s: ReturnType<Ledger['eventStatus']>;
    try {
      s = r.id === '' ? undefined : this.ledger.eventStatus(fromHex(r.id));
    } catch {
      return r; // the ledger closed meanwhile (stop): stored, its verdict comes when it opens again
    }
    if (s === undefined) return r;
    const out: IngestResult = { id: r.id, status: s.status, duplicate: r.duplicate };
    if (s.reason !== undefined) out.reason = s.reason as IngestResult['reason'];
    return out;
  }

  /**
   * Stores and applies one of our own events (or a wallet's), then publishes it (when it was stored). It is
   * admitted as live gossip would be: dated more than MAX_LIVE_SKEW_MS ahead of our clock it is FUTURE, more than
   * MAX_LIVE_AGE_MS behind it STALE (peers would drop it; a wallet signs again with a fresh date).
   */
  async submit(bytes: Uint8Array, opts: AbortOptions = {}): Promise<IngestResult> {
    let result = this.ledger.ingest(bytes, { ingress: 'submit', nowMs: this.clock.now() });
    // stored only, because a replay of late gossip or a sync is pending: the submitter (a wallet command, the API,
    // the node's own market events) gets the verdict that replay reaches, within GOSSIP_REPLAY_MS, not 'pending'
    // (session 29: a chaos run's `wallet stake` answered pending and the operator's bootstrap stopped on it)
    if (result.status === 'pending') result = await this.verdictAfterReplay(result, opts.signal);
    this.emit('ledger:ingested', { result, source: 'local', kind: bytes[1] });
    if (result.status !== 'dropped') {
      try {
        await this.net.publish(bytes, opts);
      } catch (e) {
        // Stored locally; peers get it by sync if the publish is lost.
        this.log.warn('publish failed', { id: result.id, error: errorMessage(e) });
      }
    }
    return result;
  }

  /**
   * Pulls the events a peer has, page by page, in canonical order, admitted as sync (admission.ts: no future
   * events, no history from periods this node watched). One call takes at most LEDGER_SYNC_LIMITS.maxPagesPerSync
   * pages and maxSyncMs; a sync stopped by either resumes at the same place the next time (`complete: false`). A
   * peer whose cursor does not move forward is a PeerMisbehaviourError.
   *
   * Pipelined up to LEDGER_SYNC_LIMITS.aheadPages pages ahead (issue 11 §4, ledger_events_per_s): the pages after
   * the held ones are fetched and their signatures handed to this service's verify pool (verify-pool.ts) before the
   * held pages are stored, so the workers check the next batch while the event loop stores this one. Verdicts do
   * not change: ingest judges every event as before.
   *
   * Batched commits: pages are held and stored `syncCommitPages` at a time (LEDGER_SYNC_LIMITS.commitPages) in one
   * SQLite transaction (one ingestMany), since a commit's fixed cost (WAL frames of the pages every commit touches,
   * the state rows) was paid per page; fewer when the held pages reach LEDGER_SYNC_LIMITS.maxHeldBytes (each event
   * counted as its wire bytes plus heldEventBytes, the objects decoding makes of it; the pages fetched ahead count
   * too, and no further page is asked for while they reach it), so what a sync holds is bounded by that plus a page. The held pages are also stored when the sync ends (complete,
   * budget, garbage); a sync that fails or is aborted drops them, and the next one fetches them again from the
   * last stored page's end: a crash or kill loses at most the held pages, never half of a transaction (the resume
   * cursor, and a deferred replay's place, only move with a commit).
   *
   * `from` (with `maxPages`): a one-off pull from that order key (node/ledger.ts's tail sync), neither resumed from
   * nor remembered.
   */
  async syncFrom(peer: string, opts: AbortOptions & { fromStart?: boolean; from?: Uint8Array; maxPages?: number } = {}): Promise<{ received: number; added: number; complete: boolean }> {
    const resumable = opts.from === undefined;
    // without a cursor a sync starts at the latest checkpoint's cut: what is before it is final here (issue 11 §3)
    // `after`: the end of the last stored page (where a later sync resumes); `fetched`: of the last page fetched
    let after: Uint8Array | null = opts.from ?? (opts.fromStart === true ? null : (this.resume.get(peer) ?? this.ledger.syncStart()));
    let fetched = after;
    if (resumable) this.resume.delete(peer);
    let received = 0;
    let added = 0;
    let pages = 0;
    let sinceFlush = 0;
    let complete = false;
    const maxPages = opts.maxPages ?? this.opts.syncBudget?.maxPages ?? LEDGER_SYNC_LIMITS.maxPagesPerSync;
    const deadline = performance.now() + (this.opts.syncBudget?.maxMs ?? LEDGER_SYNC_LIMITS.maxSyncMs);
    const maxRange = LEDGER_SYNC_LIMITS.maxRange;
    const commitPages = Math.max(1, Math.floor(this.opts.syncCommitPages ?? LEDGER_SYNC_LIMITS.commitPages));
    const maxHeldBytes = this.opts.syncMaxHeldBytes ?? LEDGER_SYNC_LIMITS.maxHeldBytes;
    const callMs = this.opts.callTimeoutMs ?? LEDGER_SYNC_LIMITS.callTimeoutMs;
    const remember = (): void => {
      if (resumable && after !== null) this.remember(peer, after);
    };
    // pages fetched and not yet stored, with the cursor after each
    // (`decoded`: the network's decode of the page, when it gives one: fetchRangeDecoded)
    let held: { page: Uint8Array[]; decoded: (LedgerEvent | Error)[] | undefined; next: Uint8Array | undefined }[] = [];
    let heldBytes = 0;
    const commit = (): void => {
      if (held.length === 0) return;
      const batch = held;
      held = [];
      heldBytes = 0;
      const events = batch.length === 1 ? batch[0]!.page : batch.flatMap((h) => h.page);
      const decoded = batch.every((h) => h.decoded !== undefined) ? (batch.length === 1 ? batch[0]!.decoded : batch.flatMap((h) => h.decoded!)) : undefined;
      const results = this.ledger.ingestMany(events, { ingress: 'sync', nowMs: this.clock.now(), deferReplay: true, decoded });
      const end = batch[batch.length - 1]!.next;
      if (end !== undefined) after = end;
      sinceFlush += batch.length;
      if (sinceFlush >= SYNC_FLUSH_PAGES) {
        sinceFlush = 0;
        this.ledger.flushReplay();
      }
      for (let i = 0; i < results.length; i++) {
        const r = results[i]!;
        if (r.status !== 'dropped' && !r.duplicate) added++;
        this.emit('ledger:ingested', { result: r, source: 'sync', kind: events[i]?.[1] });
      }
    };
    // a page: fetched, then its signatures posted to the pool as soon as it lands
    const fetchPage = (from: Uint8Array | null, taken: () => boolean): Promise<{ page: Uint8Array[]; decoded: (LedgerEvent | Error)[] | undefined; verified: () => Promise<void> }> => {
      // not deadlineSignal: opts.signal may live as long as the node (util/abort.ts)
      const call = deadlineLink(callMs, opts.signal);
      const got: Promise<{ events: Uint8Array[]; decoded?: (LedgerEvent | Error)[] }> =
        this.net.fetchRangeDecoded !== undefined
          ? this.net.fetchRangeDecoded(peer, from, maxRange, { signal: call.signal })
          : this.net.fetchRange(peer, from, maxRange, { signal: call.signal }).then((events) => ({ events }));
      return got.then(
        ({ events: page, decoded }) => {
          call.dispose();
          // a decode that does not match the page entry for entry is not used (ingest decodes the page itself)
          const d = Array.isArray(decoded) && decoded.length === page.length ? decoded : undefined;
          return { page, decoded: d, verified: this.verifyAhead(page, taken) };
        },
        (e: unknown) => {
          call.dispose();
          throw e;
        },
      );
    };
    // Pages fetched ahead of the store, oldest first (issue 11 §4, session 16): up to LEDGER_SYNC_LIMITS.aheadPages
    // land and go to the verify pool while the pages before them are stored, so the workers check the next commit's
    // pages during this commit's synchronous ingest. With one page ahead they checked one page per commit of four and
    // the event loop then waited for the other three. Fetches are chained (each starts at the cursor of the page
    // before it); pages ahead count toward maxHeldBytes with the held ones, and none is asked for past the budget.
    type Ahead = { page: Uint8Array[]; decoded: (LedgerEvent | Error)[] | undefined; verified: () => Promise<void>; next: Uint8Array | undefined; advances: boolean; bytes: number };
    const aheadPages = Math.max(1, Math.floor(this.opts.syncAheadPages ?? LEDGER_SYNC_LIMITS.aheadPages));
    const ahead: { landed: Promise<Ahead>; take: () => void }[] = [];
    let aheadBytes = 0; // of pages that landed and were not taken yet
    // where the next page ahead starts and its number in this sync; undefined while one is in flight or the chain ended
    let chain: { from: Uint8Array | null; index: number } | undefined = { from: fetched, index: 0 };
    const pump = (): void => {
      if (chain === undefined || ahead.length >= aheadPages || heldBytes + aheadBytes >= maxHeldBytes) return;
      if (chain.index >= maxPages || performance.now() > deadline || opts.signal?.aborted === true) return;
      const { from, index } = chain;
      chain = undefined;
      let taken = false;
      const p = fetchPage(from, () => taken).then(({ page, decoded, verified }) => {
        // The cursor is the order key of the page's last event, as the peer sorted it (undefined: garbage, and a
        // peer that sends garbage gets no further pages). A page must end after the previous one: a peer that
        // repeats itself would keep us asking forever.
        const next = page.length === 0 ? undefined : pageCursor(page, decoded);
        const advances = next !== undefined && (from === null || compareBytes(next, from) > 0);
        // a decoded page is held twice: its wire bytes and the decode's private copy of them
        const copies = decoded === undefined ? 1 : 2;
        let bytes = 0;
        for (const b of page) bytes += copies * (b instanceof Uint8Array ? b.byteLength : 0) + LEDGER_SYNC_LIMITS.heldEventBytes;
        aheadBytes += bytes;
        if (advances && page.length === maxRange) {
          chain = { from: next, index: index + 1 };
          pump();
        }
        return { page, decoded, verified, next, advances, bytes };
      });
      p.catch(noop); // a page fetched ahead may never be taken (budget, abort, an earlier failure): not unhandled
      ahead.push({ landed: p, take: () => void (taken = true) });
    };
    this.syncing++;
    try {
      for (;;) {
        if (opts.signal?.aborted === true) {
          remember();
          throwIfAborted(opts.signal, `ledger sync from ${peer}`);
        }
        if (pages >= maxPages || performance.now() > deadline) {
          commit();
          remember();
          this.log.info('ledger sync paused on its budget; resumes next time', { peer, pages, received });
          break;
        }
        pump();
        if (ahead.length === 0) {
          commit(); // the held pages fill the byte bound: stored, they make room for the next
          pump();
          if (ahead.length === 0) {
            // the chain stopped on the budget between the check above and here
            remember();
            this.log.info('ledger sync paused on its budget; resumes next time', { peer, pages, received });
            break;
          }
        }
        const first = ahead.shift()!;
        first.take();
        const { page, decoded, verified, next, advances, bytes } = await first.landed;
        aheadBytes -= bytes;
        if (page.length === 0) {
          commit();
          complete = true;
          break;
        }
        if (page.length > maxRange) throw new PeerMisbehaviourError('LEDGER_SYNC_PAGE', `peer ${peer} sent ${page.length} events for a page of ${maxRange}`);
        const more = advances && page.length === maxRange && pages + 1 < maxPages && performance.now() <= deadline && opts.signal?.aborted !== true;
        pump();
        await verified();
        received += page.length;
        pages++;
        held.push({ page, decoded, next: advances ? next : undefined });
        heldBytes += bytes;
        if (!more || held.length >= commitPages || heldBytes >= maxHeldBytes) {
          // the pages ahead land and go to the workers before the synchronous store takes the event loop; a page
          // that does not come within SYNC_AHEAD_WAIT_MS is not waited for (the store goes first, as with none ahead)
          if (more) await landedOrLate(ahead, SYNC_AHEAD_WAIT_MS);
          // and workers still starting get a turn of the event loop to say they are up (their message is a task, which
          // the awaits above, on pages already landed, never leave room for): the pages ahead then go to them
          if (this.pool !== undefined && !this.pool.isReady) await new Promise<void>((resolve) => setImmediate(resolve));
          commit();
        }
        if (next === undefined) break;
        if (!advances) throw new PeerMisbehaviourError('LEDGER_SYNC_CURSOR', `peer ${peer} sent a page that did not advance the cursor`, { peer });
        fetched = next;
        if (page.length < maxRange) {
          complete = true;
          break;
        }
      }
    } finally {
      this.syncing--;
      this.idlePool();
      this.flushReplay(`sync from ${peer}`);
    }
    this.emit('ledger:synced', { peer, received, added });
    return { received, added, complete };
  }

  /**
   * Posts a page's signatures to the verify pool (started by the first full page); the answer, asked when the page
   * is taken, resolves once their verdicts are cached, never rejects: a pool that fails is dropped and ingest
   * verifies on the event loop. A page that lands while the workers start is checked at ingest, unless it is still
   * waiting (`taken` false: a page fetched ahead) when they are up; it is then posted at that moment.
   */
  private verifyAhead(page: Uint8Array[], taken: () => boolean = () => true): () => Promise<void> {
    const none = (): Promise<void> => Promise.resolve();
    if (page.length < VERIFY_POOL_MIN_PAGE) return none;
    // Only a full page (more are coming) starts the workers: their start costs about as much CPU as checking a page,
    // so a short sync (a tail sync's few events, every minute) is checked at ingest and never starts them.
    if (this.pool === undefined && page.length < LEDGER_SYNC_LIMITS.maxRange) return none;
    const pool = this.openPool();
    if (pool === undefined) return none;
    // a page never waits for the workers to start (tens of ms, more under load): it is checked at ingest while they do
    if (!pool.isReady) {
      let posted: Promise<void> | undefined;
      pool.started().then(
        () => {
          if (!taken() && this.pool === pool) posted = this.prefill(pool, page);
        },
        (e: unknown) => this.dropPool(pool, e),
      );
      return () => posted ?? Promise.resolve();
    }
    const p = this.prefill(pool, page);
    return () => p;
  }

  private prefill(pool: SignatureVerifyPool, page: Uint8Array[]): Promise<void> {
    this.pooledPages++;
    return pool.prefill(page).then(noop, (e: unknown) => this.dropPool(pool, e));
  }

  /** The verify pool, created when there is none (undefined: no threads, stopped, or the workers cannot start). */
  private openPool(): SignatureVerifyPool | undefined {
    if (this.verifyThreads <= 0 || this.stopped) return undefined;
    if (this.pool === undefined) {
      try {
        this.pool = new SignatureVerifyPool(this.verifyThreads);
      } catch (e) {
        this.log.warn('signature verify pool did not start; verifying on the event loop', { error: errorMessage(e) });
        this.verifyThreads = 0;
      }
    }
    return this.pool;
  }

  /**
   * Starts the verify pool now and resolves once its workers are up (tests and benches that want every page on the
   * pool); a sync otherwise starts it with its first page and checks pages at ingest until the workers are up.
   */
  async startVerifyPool(): Promise<void> {
    await this.openPool()?.started();
  }

  private dropPool(used: SignatureVerifyPool, e: unknown): void {
    if (this.pool === used) this.pool = undefined;
    if (!this.stopped) this.log.warn('signature verify pool failed; the next sync starts a new one', { error: errorMessage(e) });
    this.track(used.close());
  }

  /** Keeps a closing pool's promise until it settles (closed() waits for them). */
  private track(p: Promise<void>): void {
    const settled: Promise<unknown> = p.then(noop, noop).then(() => this.closing.delete(settled));
    this.closing.add(settled);
  }

  /** Closes the pool once no sync has used it for verifyIdleMs (POOL_IDLE_MS). */
  private idlePool(): void {
    if (this.poolIdle !== undefined) clearTimeout(this.poolIdle);
    this.poolIdle = undefined;
    if (this.pool === undefined || this.syncing > 0) return;
    this.poolIdle = setTimeout(() => {
      this.poolIdle = undefined;
      if (this.syncing > 0) return;
      this.closePool();
    }, this.opts.verifyIdleMs ?? POOL_IDLE_MS);
    this.poolIdle.unref();
  }

  private closePool(): void {
    const pool = this.pool;
    this.pool = undefined;
    if (pool !== undefined) this.track(pool.close());
  }

  /** Worker threads of this service's verify pool now (0 until a sync starts it, and after stop or idle). */
  get verifyWorkers(): number {
    return this.pool?.threads ?? 0;
  }

  /** Resolves once the verify pool's workers closed by stop() (or idle) have exited. */
  async closed(): Promise<void> {
    while (this.closing.size > 0) await Promise.all([...this.closing]);
  }

  private remember(peer: string, after: Uint8Array): void {
    if (this.resume.size >= MAX_RESUME_PEERS) this.resume.delete(this.resume.keys().next().value!);
    this.resume.set(peer, after);
  }

  /** Syncs from every sync peer in turn; a failing peer is logged and skipped. */
  async syncAll(opts: AbortOptions = {}): Promise<number> {
    let added = 0;
    for (const p of this.net.syncPeers()) {
      try {
        added += (await this.syncFrom(p, opts)).added;
      } catch (e) {
        this.log.warn('ledger sync failed', { peer: p, error: errorMessage(e) });
      }
    }
    return added;
  }

  /**
   * Stores and applies one event a peer handed us outside gossip and sync (session 29: the completion a validator's
   * hop-transcript/3.0.0 request carries), admitted as a by-id fetch is (`fetch`: the sync horizon, not the 5-minute
   * live window, since such an event is minutes old by then) and judged by every ledger rule (a rejected one is
   * dropped, not kept: gossip or sync may still bring it once its request is here). Not published: live
   * peers would drop it as STALE, and ours has it now for its own sync peers.
   *
   * With `before` (session 30: the market request a hop-transcript/4.0.0 request carries beside its completion), that
   * event is ingested first, the same way (a stored one is a duplicate: one index lookup); when the ledger drops it,
   * its result is answered and `bytes` is not ingested (it would only be REQUEST_NOT_PENDING).
   */
  ingestCarried(bytes: Uint8Array, before?: Uint8Array): IngestResult {
    if (before !== undefined) {
      const first = this.ingestFetched(before);
      if (first.status === 'dropped') return first;
    }
    return this.ingestFetched(bytes);
  }

  private ingestFetched(bytes: Uint8Array): IngestResult {
    // deferred as gossip's are: such a completion is minutes old, so it sorts before the tip, and replaying from its
    // place at once for each request would cost a replay of those minutes per carried event; coalesced, it is one
    // replay within GOSSIP_REPLAY_MS (the hop's fetch waits for it while the request is open or its replay pending).
    // A request and its completion both before the tip are stored together and judged in their order by that replay
    const result = this.ledger.ingest(bytes, { ingress: 'fetch', nowMs: this.clock.now(), deferReplay: true });
    if (result.status === 'pending') this.scheduleReplay();
    this.emit('ledger:ingested', { result, source: 'fetch', kind: bytes[1] });
    return result;
  }

  /** Fetches events by id from a peer (e.g. ids named in a slash or a proof we lack). */
  async fetchByIds(peer: string, ids: Uint8Array[], opts: AbortOptions = {}): Promise<IngestResult[]> {
    const signal = deadlineSignal(LEDGER_SYNC_LIMITS.callTimeoutMs, opts.signal);
    const got = await this.net.fetchByIds(peer, ids.slice(0, LEDGER_SYNC_LIMITS.maxIds), { signal });
    return this.ledger.ingestMany(got.slice(0, LEDGER_SYNC_LIMITS.maxIds), { ingress: 'fetch', nowMs: this.clock.now() });
  }

  /**
   * Submits every event waiting in the outbox once (the poll timer calls this; tests may call it directly). The
   * outbox is a folder anyone with write access to the data dir can drop files into, so each entry is only ever
   * what its bytes are: verified (signature and fields) before anything else, submitted as is, and never signed
   * again by this node; an entry that waited past the live window is reported STALE (the wallet signs anew).
   */
  async drainOutbox(): Promise<number> {
    const dataDir = this.opts.dataDir;
    if (dataDir === undefined || this.draining || this.outboxStopped) return 0;
    this.draining = true;
    let n = 0;
    try {
      for (const { file, event } of listOutbox(dataDir, (f, why) => this.log.warn('unreadable outbox entry', { file: f, why }))) {
        if (this.outboxStopped) break; // stopping: the rest waits for the next start
        const id = toHex(event.id);
        const stored = this.ledger.eventStatus(event.id);
        if (stored !== undefined) {
          // taken before a crash left its file behind: report what became of it (a wallet told "dropped" would
          // send the money again)
          writeOutcome(dataDir, { id, status: stored.status, ...(stored.reason !== undefined ? { reason: stored.reason } : {}) });
          removeOutboxFile(file);
          continue;
        }
        const why = this.ledger.verify(event);
        if (why !== null) {
          this.log.warn('outbox entry failed verification; removed', { file, reason: why });
          writeOutcome(dataDir, { id, status: 'dropped', reason: why });
          removeOutboxFile(file);
          continue;
        }
        const r = await this.submit(event.bytes);
        writeOutcome(dataDir, { id, status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}) });
        removeOutboxFile(file);
        n++;
      }
    } finally {
      this.draining = false;
    }
    return n;
  }
}

/** The order key of a page's last event (where the next page starts), or undefined when it does not decode. */
function pageCursor(page: Uint8Array[], decoded?: (LedgerEvent | Error)[]): Uint8Array | undefined {
  let last: LedgerEvent | Error;
  if (decoded !== undefined) last = decoded[decoded.length - 1]!;
  else {
    try {
      last = decodeEvent(page[page.length - 1]!);
    } catch {
      return undefined;
    }
  }
  return last instanceof Error ? undefined : orderKey(last.timestampMs, last.id);
}

function noop(): void {}

/**
 * Waits for the pages in `ahead` (syncFrom's fetches ahead, a live list: pages the pump chains on while this waits
 * are waited for too) to land, in order, for at most `ms` in all; never rejects (a failed page is the caller's to see
 * when it takes it).
 */
async function landedOrLate(ahead: readonly { landed: Promise<unknown> }[], ms: number): Promise<void> {
  const until = performance.now() + ms;
  for (let i = 0; i < ahead.length; i++) {
    const left = until - performance.now();
    if (left <= 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, left)));
    await Promise.race([ahead[i]!.landed.then(noop, noop), late]);
    clearTimeout(timer);
  }
}

export interface NodeLedgerOptions {
  dataDir: string;
  networkId: string;
  modelLayers: number;
  network: LedgerNetwork;
  holderVerifier?: HolderRecordVerifier;
  clock?: Clock;
  logger?: Logger;
  signal?: AbortSignal;
  /** Horizon of the sync admission rule (LedgerOptions.syncHorizonMs). */
  syncHorizonMs?: number;
  /** Disk quota of ledger.db (LedgerOptions.maxBytes). */
  maxBytes?: number;
  /**
   * How long the sync at start may take in all (default 30 s); what is left continues in the background (the
   * node reconciles with every peer), so a peer that streams pages forever cannot keep the node from starting.
   */
  startSyncMs?: number;
  /** Runs after the ledger opened and before the sync at start (finality: start from a checkpoint's snapshot). */
  beforeSync?: (ledger: Ledger) => Promise<void>;
  /** Reward rules of the network (issue 11 §2, LedgerOptions.rewards). */
  rewards?: RewardRules;
  /** Deadline of one sync call (LedgerServiceOptions.callTimeoutMs). */
  syncCallTimeoutMs?: number;
  /** Worker threads checking sync pages' signatures (LedgerServiceOptions.verifyThreads). */
  verifyThreads?: number;
}

/**
 * For node/: opens `<data-dir>/ledger.db`, starts the service (gossip, sync serving, outbox publishing) and syncs
 * from the peers the network knows now. `stop()` stops the service and closes the ledger.
 */
export async function startNodeLedger(o: NodeLedgerOptions): Promise<{ ledger: Ledger; service: LedgerService; stop: () => void }> {
  const ledger = new Ledger({
    path: ledgerPath(o.dataDir),
    networkId: o.networkId,
    modelLayers: o.modelLayers,
    holderVerifier: o.holderVerifier,
    logger: o.logger,
    syncHorizonMs: o.syncHorizonMs,
    maxBytes: o.maxBytes,
    rewards: o.rewards,
  });
  const service = new LedgerService({ ledger, network: o.network, dataDir: o.dataDir, clock: o.clock, logger: o.logger, callTimeoutMs: o.syncCallTimeoutMs, verifyThreads: o.verifyThreads });
  service.start();
  try {
    await o.beforeSync?.(ledger);
    // not AbortSignal.any: o.signal may live as long as the node (util/abort.ts)
    await service.syncAll({ signal: deadlineSignal(o.startSyncMs ?? 30_000, o.signal) });
    throwIfAborted(o.signal, 'ledger start');
  } catch (e) {
    service.stop();
    ledger.close();
    throw e;
  }
  return {
    ledger,
    service,
    stop: () => {
      service.stop();
      ledger.close();
    },
  };
}
