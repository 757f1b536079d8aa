/**
 * The ledger on the network: receives gossip (with the live freshness filter), serves and runs sync, publishes
 * our own events, and drains the outbox. node/ composes it: `new LedgerService({ ledger, network, key, dataDir })`,
 * `start()` when the node starts (it syncs from the peers and publishes the outbox), `stop()` on shutdown.
 */
import type { NodeKey } from '../identity/index.js';
import { bytesEqual } from '../util/bytes.js';
import { systemClock, type Clock } from '../util/clock.js';
import { deadlineSignal, type AbortOptions } from '../util/abort.js';
import { errorMessage, PeerMisbehaviourError } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { toHex } from '../util/bytes.js';
import { compareBytes, decodeEvent, EventKind, orderKey, signEvent, type LedgerEvent } from './events.js';
import { LEDGER_SYNC_LIMITS, type HolderRecordVerifier, type LedgerNetwork } from './interfaces.js';
import { Ledger, ledgerPath, MAX_LIVE_AGE_MS, MAX_LIVE_SKEW_MS, type IngestResult } from './ledger.js';
import { listOutbox, pruneOutcomes, removeOutboxFile, writeOutcome } from './outbox.js';

export interface LedgerServiceEvents {
  /** An event arrived (gossip, sync or local) and was looked at. */
  'ledger:ingested': { result: IngestResult; source: 'gossip' | 'sync' | 'local' };
  /** A sync with a peer finished. */
  'ledger:synced': { peer: string; received: number; added: number };
}

export interface LedgerServiceOptions {
  ledger: Ledger;
  network: LedgerNetwork;
  /** The node key: to re-sign stale outbox events (they were signed by the same key). */
  key?: NodeKey;
  /** Data dir whose outbox the service drains; omit to disable the outbox. */
  dataDir?: string;
  clock?: Clock;
  logger?: Logger;
  /** How often the outbox folder is polled. */
  outboxPollMs?: number;
}

/** Outbox events older than this are re-signed with a fresh timestamp, so peers' freshness filter admits them. */
const RESIGN_AFTER_MS = MAX_LIVE_AGE_MS - 60_000;
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

  constructor(private readonly opts: LedgerServiceOptions) {
    super();
    this.ledger = opts.ledger;
    this.net = opts.network;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger ?? silentLogger;
  }

  /** Subscribes to gossip, serves sync, and starts draining the outbox. Call syncAll() after to catch up. */
  start(): void {
    this.stops.push(this.net.serve(this.ledger.syncHandler()));
    this.stops.push(
      this.net.subscribe((bytes, from) => {
        let result: IngestResult;
        try {
          result = this.ledger.ingest(bytes, { nowMs: this.clock.now(), deferReplay: true });
        } catch (e) {
          this.log.error('ledger ingest failed', { from, error: errorMessage(e) });
          return;
        }
        if (result.status === 'pending') this.scheduleReplay();
        if (result.status === 'dropped' && result.reason !== 'STALE' && result.reason !== 'FUTURE') {
          this.log.debug('dropped gossip event', { from, reason: result.reason });
        }
        this.emit('ledger:ingested', { result, source: 'gossip' });
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

  stop(): void {
    if (this.outboxTimer !== undefined) clearInterval(this.outboxTimer);
    this.outboxTimer = undefined;
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
    }
  }

  /**
   * Stores and applies one of our own events, then publishes it (when it was stored). An event dated more than
   * MAX_LIVE_SKEW_MS ahead of our clock (a wallet on a wrong clock) is dropped as FUTURE, as peers would drop it.
   */
  async submit(bytes: Uint8Array, opts: AbortOptions = {}): Promise<IngestResult> {
    const result = this.ledger.ingest(bytes, { notAfterMs: this.clock.now() + MAX_LIVE_SKEW_MS });
    this.emit('ledger:ingested', { result, source: 'local' });
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
   * Pulls every event a peer has, page by page, in canonical order. Events dated more than MAX_LIVE_SKEW_MS after
   * our clock are not admitted (FUTURE); a peer whose cursor does not move forward is a PeerMisbehaviourError.
   */
  async syncFrom(peer: string, opts: AbortOptions = {}): Promise<{ received: number; added: number }> {
    let after: Uint8Array | null = null;
    let received = 0;
    let added = 0;
    let pages = 0;
    try {
      for (;;) {
        const signal = deadlineSignal(LEDGER_SYNC_LIMITS.callTimeoutMs, opts.signal);
        const page = await this.net.fetchRange(peer, after, LEDGER_SYNC_LIMITS.maxRange, { signal });
        if (page.length === 0) break;
        if (page.length > LEDGER_SYNC_LIMITS.maxRange) throw new PeerMisbehaviourError('LEDGER_SYNC_PAGE', `peer ${peer} sent ${page.length} events for a page of ${LEDGER_SYNC_LIMITS.maxRange}`);
        received += page.length;
        const results = this.ledger.ingestMany(page, { notAfterMs: this.clock.now() + MAX_LIVE_SKEW_MS, deferReplay: true });
        if (++pages % SYNC_FLUSH_PAGES === 0) this.ledger.flushReplay();
        let last: LedgerEvent | undefined;
        for (const r of results) {
          if (r.status !== 'dropped' && !r.duplicate) added++;
          this.emit('ledger:ingested', { result: r, source: 'sync' });
        }
        // The cursor is the order key of the page's last event, as the peer sorted it.
        try {
          last = decodeLast(page);
        } catch {
          break; // a peer that sends garbage gets no further pages
        }
        const next = orderKeyOf(last);
        // A page must end after the previous one: a peer that repeats itself would keep us asking forever.
        if (after !== null && compareBytes(next, after) <= 0) {
          throw new PeerMisbehaviourError('LEDGER_SYNC_CURSOR', `peer ${peer} sent a page that did not advance the cursor`, { peer });
        }
        after = next;
        if (page.length < LEDGER_SYNC_LIMITS.maxRange) break;
      }
    } finally {
      this.flushReplay(`sync from ${peer}`);
    }
    this.emit('ledger:synced', { peer, received, added });
    return { received, added };
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

  /** Fetches events by id from a peer (e.g. ids named in a slash or a proof we lack). */
  async fetchByIds(peer: string, ids: Uint8Array[], opts: AbortOptions = {}): Promise<IngestResult[]> {
    const signal = deadlineSignal(LEDGER_SYNC_LIMITS.callTimeoutMs, opts.signal);
    const got = await this.net.fetchByIds(peer, ids.slice(0, LEDGER_SYNC_LIMITS.maxIds), { signal });
    return this.ledger.ingestMany(got.slice(0, LEDGER_SYNC_LIMITS.maxIds));
  }

  /** Submits every event waiting in the outbox once (the poll timer calls this; tests may call it directly). */
  async drainOutbox(): Promise<number> {
    const dataDir = this.opts.dataDir;
    if (dataDir === undefined || this.draining) return 0;
    this.draining = true;
    let n = 0;
    try {
      for (const { file, event } of listOutbox(dataDir, (f, why) => this.log.warn('unreadable outbox entry', { file: f, why }))) {
        const id = toHex(event.id);
        let bytes = event.bytes;
        let publishedId: string | undefined;
        const stored = this.ledger.eventStatus(event.id);
        if (stored !== undefined) {
          // taken before a crash left its file behind: report what became of it (a wallet told "dropped" would
          // send the money again)
          writeOutcome(dataDir, { id, status: stored.status, ...(stored.reason !== undefined ? { reason: stored.reason } : {}) });
          removeOutboxFile(file);
          continue;
        }
        if (event.timestampMs < this.clock.now() - RESIGN_AFTER_MS) {
          const fresh = this.resign(event);
          if (fresh === undefined) {
            writeOutcome(dataDir, { id, status: 'dropped', reason: 'STALE' });
            removeOutboxFile(file);
            continue;
          }
          bytes = fresh.bytes;
          publishedId = toHex(fresh.id);
        }
        const r = await this.submit(bytes);
        const outcome = { id, status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}), ...(publishedId !== undefined ? { publishedId } : {}) };
        writeOutcome(dataDir, outcome);
        removeOutboxFile(file);
        n++;
      }
    } finally {
      this.draining = false;
    }
    return n;
  }

  /**
   * A copy of a stale wallet event with a fresh timestamp and the same nonce. Safe because the stale copy was
   * never published (it waited in the outbox) and the ledger holds nothing under its replay key; refused for
   * proofs (their epoch is their time) and for events not signed by this node.
   */
  private resign(e: LedgerEvent): LedgerEvent | undefined {
    const key = this.opts.key;
    if (key === undefined || !bytesEqual(key.publicKey, e.signer)) return undefined;
    const k = e.body.kind;
    if (k !== EventKind.Transfer && k !== EventKind.Stake && k !== EventKind.Unstake) return undefined;
    if (this.ledger.nextNonce(e.signer, k) > e.nonce) return undefined; // something with this nonce or later exists
    return signEvent(key, { networkId: e.networkId, nonce: e.nonce, timestampMs: this.clock.now(), body: e.body });
  }
}


function decodeLast(page: Uint8Array[]): LedgerEvent {
  return decodeEvent(page[page.length - 1]!);
}

function orderKeyOf(e: LedgerEvent): Uint8Array {
  return orderKey(e.timestampMs, e.id);
}

export interface NodeLedgerOptions {
  dataDir: string;
  networkId: string;
  modelLayers: number;
  network: LedgerNetwork;
  key: NodeKey;
  holderVerifier?: HolderRecordVerifier;
  clock?: Clock;
  logger?: Logger;
  signal?: AbortSignal;
}

/**
 * For node/: opens `<data-dir>/ledger.db`, starts the service (gossip, sync serving, outbox publishing) and syncs
 * from the peers the network knows now. `stop()` stops the service and closes the ledger.
 */
export async function startNodeLedger(o: NodeLedgerOptions): Promise<{ ledger: Ledger; service: LedgerService; stop: () => void }> {
  const ledger = new Ledger({ path: ledgerPath(o.dataDir), networkId: o.networkId, modelLayers: o.modelLayers, holderVerifier: o.holderVerifier, logger: o.logger });
  const service = new LedgerService({ ledger, network: o.network, key: o.key, dataDir: o.dataDir, clock: o.clock, logger: o.logger });
  service.start();
  try {
    await service.syncAll({ signal: o.signal });
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
