/**
 * The ledger: verifies events, stores them idempotently, and keeps the balance sheet as a deterministic function
 * of the set of stored events in canonical order (timestampMs, id).
 *
 * Ingest: decode → duplicate check by id (a replayed or malleated copy costs one index lookup) → live freshness
 * filter (gossip only) → stateless verification (signature, fields; failures are dropped, never stored) → one
 * SQLite transaction that stores the event and applies it. An event that sorts after everything applied is applied
 * directly. One that sorts earlier, or that conflicts with an applied event (same signer, kind and nonce), rewinds
 * the state to the last in-memory snapshot before it and re-applies the stored events from there, so the result
 * never depends on arrival order. Verdicts of re-applied events are updated in the same transaction.
 *
 * Sync may bring events dated long before the tip (a peer's history, or an attacker's backdated events), and gossip
 * events up to 5 minutes late: each such batch would cost a replay of everything after it. With `deferReplay` the
 * ledger only stores them (status pending) and remembers the earliest place to replay from; `flushReplay()` then
 * replays once for all of them (the service calls it at the end of a sync, every 64 pages, and shortly after late
 * gossip). While a replay is pending every ingest only stores. The place is kept in the database, so a crash in
 * between replays at the next open.
 */
import type Database from 'better-sqlite3';
import { join } from 'node:path';
import { accountIdFromPublicKey, addressFromAccountId } from '../identity/index.js';
import { bytesEqual, fromHex, toHex } from '../util/bytes.js';
import { ConfigError, InvalidArgumentError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { admissionVerdict, DEFAULT_SYNC_HORIZON_MS, markWatched, parseWatched, type Ingress, type WatchInterval } from './admission.js';
import type { RewardRules } from './witness.js';
import { applyEvent, precheckEvent, type ApplyContext, type ApplyResult, type EventStatus } from './apply.js';
import { MARKET_BASE_PRICE } from './economics.js';
import { formatAmount } from './amount.js';
import {
  compareBytes,
  decodeEvent,
  decodeEvents,
  describeEvent,
  EventKind,
  MAX_SLASH_BYTES,
  orderKey,
  replayKey,
  type LedgerEvent,
} from './events.js';
import { localHolderRecordVerifier } from './holder.js';
import type { HolderRecordVerifier, LedgerSyncHandler } from './interfaces.js';
import { LEDGER_SYNC_LIMITS } from './interfaces.js';
import type { ReasonCode } from './reasons.js';
import { LedgerState, type StateSnapshot } from './state.js';
import { checkpointFromJson, checkpointHash, checkpointToJson, committeeOf, nextEventsRoot, sameCommittee, ZERO_HASH, type CheckpointBody, type SignedCheckpoint } from './checkpoint.js';
import { DecodeError } from './codec.js';
import { LEDGER_DB_FILE, openDatabase, STATUS_CODE, STATUS_NAME, type StoredStatus } from './store.js';
import { evidenceKey, verifyEvent, type VerifyConfig } from './verify.js';

export { MAX_LIVE_AGE_MS, MAX_LIVE_SKEW_MS } from './admission.js';
const SNAPSHOT_EVERY = 1024;
const MAX_SNAPSHOTS = 32;
const REPLAY_PAGE = 1024;
/** nextNonce answers kept (signer and kind pairs; first in, first out). */
const MAX_CACHED_NONCES = 4096;

/**
 * What storing an event of `n` wire bytes adds to the database file, erring high: its row (the bytes, order and
 * replay keys, id, verdict), its id and replay-key index entries, its event_accounts rows and their index, at the
 * B-trees' fill. Used only to stop a batch at the disk quota before its commit (ingestMany).
 */
function storedBytesEstimate(n: number): number {
  return 2 * n + 1024;
}

/** The nonce cache's key: signer ‖ kind. */
function nonceKey(signer: Uint8Array, kind: EventKind): string {
  return toHex(signer) + kind.toString(16).padStart(2, '0');
}

export interface LedgerOptions {
  /** SQLite file; `ledgerPath(dataDir)` for a node. */
  path: string;
  /** The network id (issue #4): events and HolderRecords of other networks are dropped. */
  networkId: string;
  /** Layers of the model: the LM-head holder is the one whose span ends here. */
  modelLayers: number;
  holderVerifier?: HolderRecordVerifier;
  readonly?: boolean;
  synchronous?: 'NORMAL' | 'FULL';
  logger?: Logger;
  /** Tests: check the supply invariant after every applied event, re-applied ones included (throws if broken). */
  checkInvariant?: boolean;
  /** Horizon of the sync admission rule (admission.ts); default DEFAULT_SYNC_HORIZON_MS (30 min). */
  syncHorizonMs?: number;
  /**
   * Disk quota of the database file in bytes: past it, events arriving by any network path are dropped (QUOTA)
   * instead of stored, so a peer cannot fill the disk. Default: no quota (node/options.ts sets one).
   */
  maxBytes?: number;
  /** Reward rules of the network (issue 11 §2, witness.ts); default SELF_CLAIMED_REWARDS (node/options.ts: witnessed). */
  rewards?: RewardRules;
}

export interface IngestOptions {
  /**
   * How the event arrived (admission.ts): 'gossip' and 'submit' admit only the live window around `nowMs`; 'sync'
   * and 'fetch' admit history except from periods this node watched; all refuse events dated more than 60 s after
   * `nowMs`, and all count against the disk quota. Omitted: a trusted local caller (tests, tools) and no
   * admission rule at all; `nowMs` alone means 'gossip'.
   */
  ingress?: Ingress;
  /** This node's clock, required with `ingress`. */
  nowMs?: number;
  /** Store events that sort before the tip without replaying; `flushReplay()` replays once for all (sync, gossip). */
  deferReplay?: boolean;
  /**
   * events.ts decodeEvents of the list, when the caller has it (a sync page the network decoded to check it:
   * LedgerService.syncFrom), so that the events are not decoded and hashed again. An entry is used only when it is
   * a decoded event whose bytes equal the list's entry; any other is decoded here, as without this option.
   */
  decoded?: readonly (LedgerEvent | Error)[];
}

export interface IngestResult {
  /** Hex event id; empty when the bytes did not decode. */
  id: string;
  /**
   * applied / rejected / void: stored, with its verdict at its place in canonical order. pending: stored, verdict
   * after the deferred replay (flushReplay). dropped: not stored.
   */
  status: EventStatus | 'pending' | 'dropped';
  reason?: ReasonCode;
  /** True when the event was already stored before this call (a replay; nothing changed). */
  duplicate: boolean;
}

export interface AccountView {
  address: string;
  balance: bigint;
  /** Locked stake plus stake cooling down. */
  staked: bigint;
  locked: bigint;
  unlocksAt: number;
  unbonding: { amount: bigint; releaseAt: number }[];
  /** Rewards earned and not minted yet: each is minted at its releaseAt (issue 11 §3, checkpoint minting). */
  unminted: bigint;
  unmintedRewards: { amount: bigint; releaseAt: number }[];
}

/** Work figures of the ledger (not state: they differ between nodes). */
export interface LedgerWorkStats {
  /** Events re-applied by rewinds since the ledger opened (the cost an out-of-order event imposes). */
  replayedEvents: number;
  /** Events refused at admission (STALE, FUTURE, QUOTA) since the ledger opened. */
  refused: number;
}

export interface LedgerStatus {
  stateHash: string;
  /**
   * True while stored events wait for a deferred replay: `stateHash` and the counts do not include them yet, so
   * they are not final. Compare two ledgers' hashes only when neither has a replay pending.
   */
  replayPending: boolean;
  events: number;
  applied: number;
  rejected: number;
  void: number;
  minted: bigint;
  burned: bigint;
  staked: bigint;
  escrowed: bigint;
  marketPricePerMillion: bigint;
  /** The latest signed checkpoint this ledger holds (issue 11 §3), or null: nothing is final yet. */
  finalized: FinalizedView | null;
}

/** What status shows of the latest checkpoint. */
export interface FinalizedView {
  seq: number;
  /** Applied + void events up to the cut. */
  height: number;
  cutMs: number;
  stateHash: string;
  /** checkpointHash of its body. */
  hash: string;
  signers: number;
}

/** Outcome of Ledger.finalize. */
export type FinalizeOutcome = 'finalized' | 'known' | 'diverged' | 'not-ready' | 'stale';

export interface HistoryEntry extends Record<string, unknown> {
  status: StoredStatus;
  reason?: string;
}

export function ledgerPath(dataDir: string): string {
  return join(dataDir, LEDGER_DB_FILE);
}

interface Snapshot {
  /** Order key of the last event included; null = genesis (nothing). */
  key: Uint8Array | null;
  state: StateSnapshot;
}

/** What the duplicate check reads of a stored event. */
interface StatusRow {
  status: number;
  reason: string | null;
}

interface Row {
  id: Uint8Array;
  ord: Uint8Array;
  bytes: Uint8Array;
  status: number;
  reason: string | null;
  /** 1: arrived from the network (events.net); judged at its place, removed instead of stored when rejected. */
  net?: number;
}

export class Ledger {
  readonly networkId: string;
  readonly modelLayers: number;
  private readonly db: Database.Database;
  private readonly cfg: VerifyConfig;
  private readonly log: Logger;
  private readonly readonly: boolean;
  private state = new LedgerState();
  private tip: Uint8Array | null = null;
  /** Earliest order key of a stored event not yet applied (deferred replay); null when the state is current. */
  private pendingFrom: Uint8Array | null = null;
  private snapshots: Snapshot[] = [];
  private sinceSnapshot = 0;
  private closed = false;
  private readonly stmts: ReturnType<Ledger['prepare']>;
  private readonly ctx: ApplyContext;
  private readonly checkInvariant: boolean;
  private readonly syncHorizonMs: number;
  private readonly maxBytes: number | undefined;
  private watch: WatchInterval[] = [];
  private pageSize = 4096;
  /** The latest checkpoint (issue 11 §3): nothing dated before its cut is admitted; replays start at its state. */
  private finalCp: SignedCheckpoint | undefined;
  /** Order key of the cut (all events dated before cutMs sort before it); empty before any checkpoint. */
  private floor: Uint8Array = new Uint8Array(0);
  readonly work: LedgerWorkStats = { replayedEvents: 0, refused: 0 };
  /**
   * The conflict answer for the event being judged: a network event is prechecked (which asks hasConflict) and then
   * applied (which asks again) with no write in between, so the second answer is the first; one index query saved
   * per event. Set by conflictOnce, cleared after the apply.
   */
  private conflictMemo: { e: LedgerEvent; v: boolean } | undefined;
  /**
   * nextNonce's answers (issue 11 §4): the proof emitter asks every second, wallets and every peer's ledger-account
   * call ask too, and each answer was a B-tree probe. Keyed by signer ‖ kind (hex); an insert raises a cached
   * entry, and anything that removes events (a rejected network event dropped at replay, history cut at a
   * checkpoint, a reload after a failed transaction) empties the cache, since the highest nonce may go down then.
   */
  private readonly nonces = new Map<string, bigint>();
  /**
   * At least the largest stored order key (null: no event stored), for ingest's duplicate check (session 16): raised
   * by every insert, kept by removals (it stays an upper bound), read from the table when the state is loaded.
   */
  private maxOrd: Uint8Array | null = null;

  constructor(opts: LedgerOptions) {
    if (!Number.isInteger(opts.modelLayers) || opts.modelLayers < 1 || opts.modelLayers > 65_536) {
      throw new InvalidArgumentError('modelLayers must be an integer in 1..65536');
    }
    this.networkId = opts.networkId;
    this.modelLayers = opts.modelLayers;
    this.readonly = opts.readonly === true;
    this.log = opts.logger ?? silentLogger;
    this.cfg = { networkId: opts.networkId, modelLayers: opts.modelLayers, holderVerifier: opts.holderVerifier ?? localHolderRecordVerifier };
    this.db = openDatabase(opts.path, { readonly: this.readonly, synchronous: opts.synchronous });
    this.checkInvariant = opts.checkInvariant === true;
    this.syncHorizonMs = opts.syncHorizonMs ?? DEFAULT_SYNC_HORIZON_MS;
    this.maxBytes = opts.maxBytes;
    this.ctx = {
      modelLayers: opts.modelLayers,
      rewards: opts.rewards,
      // Conflicts count only among events after the latest checkpoint's cut: a node started from the snapshot holds
      // no older events, and both must judge alike (a reuse of a finalized nonce is slashable by evidence instead).
      hasConflict: (e: LedgerEvent): boolean => {
        const m = this.conflictMemo;
        if (m !== undefined && m.e === e) return m.v;
        // No stored event has this (signer, kind, nonce) when the nonce is above all of theirs (nextNonce, cached: an
        // in-order sync or gossip event, the common case, costs no index probe; session 16)
        if (e.nonce >= this.nextNonce(e.signer, e.body.kind)) return false;
        return this.stmts.hasEarlier.get(replayKey(e), orderKey(e.timestampMs, e.id), this.floor) !== undefined;
      },
    };
    try {
      this.stmts = this.prepare();
      this.checkMeta(opts.path);
      this.loadState();
      this.watch = parseWatched((this.stmts.meta.get('watched') as { v: string } | undefined)?.v);
      this.pageSize = Number(this.db.pragma('page_size', { simple: true }));
      if (!this.readonly) this.flushReplay(); // a deferred replay interrupted by a crash
    } catch (e) {
      this.db.close();
      throw e;
    }
  }

  private prepare() {
    const db = this.db;
    const ro = this.readonly;
    const w = <T>(f: () => T): T | undefined => (ro ? undefined : f());
    return {
      byId: db.prepare('SELECT id, ord, bytes, status, reason FROM events WHERE id = ?'),
      /**
       * Ingest's duplicate check (issue 11 §4): by the order key, the table's own clustered key, instead of the id
       * index. The order key is a function of the id (u64 timestampMs ‖ id, and the id hashes the payload that holds
       * the timestamp), so a stored copy of an event has exactly this key; a sync page's keys are near the table's
       * last pages (a point lookup in cache), where the id index sends each lookup to a random leaf.
       */
      statusByOrd: db.prepare('SELECT status, reason FROM events WHERE ord = ?'),
      maxOrd: db.prepare('SELECT max(ord) AS ord FROM events'),
      // INDEXED BY: with two bounds on ord the planner would otherwise scan the ord index (O(events) per event).
      // Only served events (applied, void) conflict (session 25): a rejected one is neither relayed nor served, so
      // whether a node holds it depends on the order events reached it (one that was valid at the tip when it came
      // and rejected after an earlier event arrived is kept; one rejected at the tip is dropped); had it taken its
      // nonce, a later event reusing the nonce would be void on the nodes that kept it and applied on the others,
      // for good. When an event is judged, every earlier row holds its current verdict (replays go in order).
      hasEarlier: db.prepare('SELECT 1 FROM events INDEXED BY events_rkey WHERE rkey = ? AND ord < ? AND ord >= ? AND status IN (1, 3) LIMIT 1'),
      between: db.prepare('SELECT id, ord, bytes, status, reason, net FROM events WHERE ord > ? AND ord < ? ORDER BY ord LIMIT ?'),
      idsBetween: db.prepare('SELECT id, ord FROM events WHERE ord >= ? AND ord < ? AND status IN (1, 3) ORDER BY ord LIMIT ?'),
      ordOf: db.prepare('SELECT ord FROM events WHERE id = ?'),
      cpLatest: db.prepare('SELECT body FROM checkpoints ORDER BY seq DESC LIMIT 1'),
      cpAfter: db.prepare('SELECT body FROM checkpoints WHERE seq > ? ORDER BY seq LIMIT ?'),
      cpRows: db.prepare('SELECT k, v FROM cp_state WHERE k > ? ORDER BY k LIMIT ?'),
      cpRowsAll: db.prepare('SELECT k, v FROM cp_state'),
      insertCp: w(() => db.prepare('INSERT OR REPLACE INTO checkpoints (seq, body) VALUES (?, ?)')),
      clearCpState: w(() => db.prepare('DELETE FROM cp_state')),
      insertCpState: w(() => db.prepare('INSERT INTO cp_state (k, v) VALUES (?, ?)')),
      clearState: w(() => db.prepare('DELETE FROM state')),
      copyCpState: w(() => db.prepare('INSERT INTO state (k, v) SELECT k, v FROM cp_state')),
      removeBefore: w(() => db.prepare('DELETE FROM events WHERE ord < ?')),
      removeAccountsBefore: w(() => db.prepare('DELETE FROM event_accounts WHERE ord < ?')),
      after: db.prepare('SELECT id, ord, bytes, status, reason, net FROM events WHERE ord > ? ORDER BY ord LIMIT ?'),
      /** What sync serves: events with a verdict other than rejected (issue 11 attack 5: no spam is passed on). */
      serveAfter: db.prepare('SELECT bytes FROM events WHERE ord > ? AND status IN (1, 3) ORDER BY ord LIMIT ?'),
      maxNonce: db.prepare('SELECT max(rkey) AS rkey FROM events WHERE rkey >= ? AND rkey <= ?'),
      history: db.prepare(
        'SELECT e.bytes AS bytes, e.status AS status, e.reason AS reason, e.amount AS amount, e.ord AS ord FROM event_accounts a JOIN events e ON e.ord = a.ord WHERE a.account = ? ORDER BY a.ord DESC LIMIT ?',
      ),
      stateRows: db.prepare('SELECT k, v FROM state'),
      meta: db.prepare('SELECT v FROM meta WHERE k = ?'),
      insert: w(() => db.prepare('INSERT INTO events (id, ord, rkey, kind, ts, bytes, status, reason, amount, net) VALUES (?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?)')),
      /** An event stored with its verdict at once (applied at the tip): one B-tree write instead of insert + update. */
      insertJudged: w(() => db.prepare('INSERT INTO events (id, ord, rkey, kind, ts, bytes, status, reason, amount, net) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')),
      remove: w(() => db.prepare('DELETE FROM events WHERE id = ?')),
      removeAccounts: w(() => db.prepare('DELETE FROM event_accounts WHERE ord = ?')),
      insertAccount: w(() => db.prepare('INSERT OR IGNORE INTO event_accounts (account, ord) VALUES (?, ?)')),
      /** A transfer's two account rows in one statement (one bind, step and reset instead of two). */
      insertAccount2: w(() => db.prepare('INSERT OR IGNORE INTO event_accounts (account, ord) VALUES (?, ?), (?, ?)')),
      verdict: w(() => db.prepare('UPDATE events SET status = ?, reason = ?, amount = ? WHERE id = ?')),
      upsertState: w(() => db.prepare('INSERT INTO state (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v')),
      deleteState: w(() => db.prepare('DELETE FROM state WHERE k = ?')),
      setMeta: w(() => db.prepare('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v')),
      deleteMeta: w(() => db.prepare('DELETE FROM meta WHERE k = ?')),
    };
  }

  private checkMeta(path: string): void {
    const get = (k: string): string | undefined => (this.stmts.meta.get(k) as { v: string } | undefined)?.v;
    const net = get('networkId');
    const layers = get('modelLayers');
    if (net !== undefined && net !== this.networkId) {
      throw new ConfigError(`ledger ${path} belongs to network ${net}, not ${this.networkId}`, { file: path }, 'LEDGER_NETWORK_MISMATCH');
    }
    if (layers !== undefined && Number(layers) !== this.modelLayers) {
      throw new ConfigError(`ledger ${path} was built for ${layers} model layers, not ${this.modelLayers}`, { file: path }, 'LEDGER_NETWORK_MISMATCH');
    }
    if (!this.readonly && net === undefined) {
      this.db.transaction(() => {
        this.stmts.setMeta!.run('networkId', this.networkId);
        this.stmts.setMeta!.run('modelLayers', String(this.modelLayers));
      })();
    }
  }

  /** (Re)loads the in-memory state from the database: at open, and after a failed transaction. */
  private loadState(): void {
    this.state = new LedgerState();
    this.nonces.clear();
    // One read transaction: a node committing meanwhile cannot split the rows from the tip.
    const { rows, tip, pending } = this.db.transaction(() => ({
      rows: this.stmts.stateRows.all() as { k: string; v: string }[],
      tip: (this.stmts.meta.get('tip') as { v: string } | undefined)?.v,
      pending: (this.stmts.meta.get('replayFrom') as { v: string } | undefined)?.v,
    }))();
    this.state.loadRows(rows);
    this.state.takeDirty();
    this.maxOrd = (this.stmts.maxOrd.get() as { ord: Uint8Array | null } | undefined)?.ord ?? null;
    this.tip = tip === undefined ? null : fromHex(tip);
    this.pendingFrom = pending === undefined ? null : fromHex(pending);
    this.finalCp = undefined;
    this.floor = new Uint8Array(0);
    const cp = this.stmts.cpLatest.get() as { body: string } | undefined;
    if (cp !== undefined) {
      this.finalCp = checkpointFromJson(JSON.parse(cp.body));
      this.floor = cutKey(this.finalCp.body.cutMs);
      const base = new LedgerState();
      base.loadRows(this.stmts.cpRowsAll.all() as { k: string; v: string }[]);
      this.snapshots = [{ key: this.floor, state: base.snapshot() }];
    } else {
      this.snapshots = [{ key: null, state: new LedgerState().snapshot() }];
    }
    if (this.tip !== null) this.snapshots.push({ key: this.tip, state: this.state.snapshot() });
    this.sinceSnapshot = 0;
  }

  private assertWritable(): void {
    if (this.closed) throw new InvalidArgumentError('ledger is closed', undefined, 'LEDGER_CLOSED');
    if (this.readonly) throw new InvalidArgumentError('ledger is open read-only', undefined, 'LEDGER_READONLY');
  }

  // ------------------------------------------------------------------------------------------------------------
  // ingest

  /** Verifies, stores and applies one event (idempotent). */
  ingest(bytes: Uint8Array, opts: IngestOptions = {}): IngestResult {
    return this.ingestMany([bytes], opts)[0]!;
  }

  /**
   * Verifies, stores and applies a batch (sync pages) in one transaction; at most one rewind for the batch. The
   * results are in input order; a verdict is the event's verdict once the whole batch is in.
   */
  ingestMany(list: Uint8Array[], opts: IngestOptions = {}): IngestResult[] {
    this.assertWritable();
    const results: IngestResult[] = new Array<IngestResult>(list.length);
    const ingress = opts.ingress ?? (opts.nowMs !== undefined ? 'gossip' : undefined);
    if (ingress !== undefined && opts.nowMs === undefined) throw new InvalidArgumentError('ingest: nowMs is required with an ingress path');
    const admission = ingress === undefined ? undefined : { ingress, nowMs: opts.nowMs!, watched: this.watch, horizonMs: this.syncHorizonMs };
    // bytes left under the disk quota: measured once per batch, then each admitted event's rows estimated against it
    let room: number | undefined;
    const fresh: LedgerEvent[] = [];
    const freshIdx = new Map<string, number[]>();
    // each fresh event's hex id, computed once (issue 11 §4: it was computed up to three times per event)
    const hexOf = new Map<LedgerEvent, string>();
    // and its order key, computed once for the duplicate check and the store
    const ords = new Map<LedgerEvent, Uint8Array>();
    // one copy of the whole batch, the events' byte fields views of it (events.ts decodeEvents); dropped with them
    const decoded = opts.decoded !== undefined && opts.decoded.length === list.length ? reuseDecoded(list, opts.decoded) : decodeEvents(list);
    for (let i = 0; i < list.length; i++) {
      const bytes = list[i]!;
      if (!(bytes instanceof Uint8Array)) {
        results[i] = { id: '', status: 'dropped', reason: 'MALFORMED', duplicate: false };
        continue;
      }
      if (bytes.byteLength > MAX_SLASH_BYTES) {
        results[i] = { id: '', status: 'dropped', reason: 'TOO_LARGE', duplicate: false };
        continue;
      }
      const e = decoded[i]!;
      if (e instanceof Error) {
        results[i] = { id: '', status: 'dropped', reason: 'MALFORMED', duplicate: false };
        continue;
      }
      const id = toHex(e.id);
      const same = freshIdx.get(id);
      if (same !== undefined) {
        same.push(i);
        continue;
      }
      const ord = orderKey(e.timestampMs, e.id);
      // an event after every stored one is not stored (maxOrd): a sync page's events cost no lookup
      const stored = this.maxOrd !== null && compareBytes(ord, this.maxOrd) <= 0 ? (this.stmts.statusByOrd.get(ord) as StatusRow | undefined) : undefined;
      if (stored !== undefined) {
        results[i] = this.storedResult(id, stored, true);
        continue;
      }
      if (this.finalCp !== undefined && e.timestampMs < this.finalCp.body.cutMs) {
        // issue 11 §3: finalized history takes nothing new, whichever path it comes by (a conflict behind the
        // checkpoint is answered by a slash carrying both events, never by re-judging what is final)
        this.work.refused++;
        results[i] = { id, status: 'dropped', reason: 'FINALIZED', duplicate: false };
        continue;
      }
      if (admission !== undefined) {
        const no = admissionVerdict(e.timestampMs, admission);
        if (no !== null) {
          this.work.refused++;
          results[i] = { id, status: 'dropped', reason: no, duplicate: false };
          continue;
        }
        room ??= this.quotaRoom();
        if (room <= 0) {
          this.work.refused++;
          results[i] = { id, status: 'dropped', reason: 'QUOTA', duplicate: false };
          continue;
        }
        room -= storedBytesEstimate(bytes.byteLength);
      }
      const why = verifyEvent(e, this.cfg);
      if (why !== null) {
        results[i] = { id, status: 'dropped', reason: why, duplicate: false };
        continue;
      }
      fresh.push(e);
      freshIdx.set(id, [i]);
      hexOf.set(e, id);
      ords.set(e, ord);
    }
    if (fresh.length > 0) {
      const verdicts = this.storeAndApply(fresh, opts.deferReplay === true, ingress !== undefined, hexOf, ords);
      for (const e of fresh) {
        const id = hexOf.get(e)!;
        const v = verdicts.get(id);
        const r: IngestResult =
          v === undefined
            ? this.storedResult(id, this.stmts.statusByOrd.get(ords.get(e)!) as StatusRow, false)
            : typeof v === 'string'
              ? { id, status: 'dropped', reason: v, duplicate: false }
              : toResult(id, v, false);
        const idx = freshIdx.get(id)!;
        results[idx[0]!] = r;
        for (const j of idx.slice(1)) results[j] = { ...r, duplicate: true };
      }
    }
    return results;
  }

  private storedResult(id: string, row: StatusRow, duplicate: boolean): IngestResult {
    const status = STATUS_NAME[row.status] as IngestResult['status'];
    const r: IngestResult = { id, status, duplicate };
    if (row.reason !== null) r.reason = row.reason as ReasonCode;
    return r;
  }

  private storeAndApply(fresh: LedgerEvent[], defer: boolean, net: boolean, hexOf: Map<LedgerEvent, string>, ords: Map<LedgerEvent, Uint8Array>): Map<string, ApplyResult | ReasonCode> {
    const s = this.stmts;
    const verdicts = new Map<string, ApplyResult | ReasonCode>();
    this.transaction(() => {
      let from: Uint8Array | null = null;
      // First wins: a conflicting event (same signer, kind, nonce) only ever voids the one that sorts after it, so
      // an event that reuses an old nonce is void at its own place and rewinds nothing; only an event that sorts
      // before the tip (bounded by admission, src/ledger/admission.ts) costs a replay.
      for (const e of fresh) {
        const ord = ords.get(e)!;
        if (this.tip !== null && compareBytes(ord, this.tip) < 0 && (from === null || compareBytes(ord, from) < 0)) from = ord;
      }
      const insert = (e: LedgerEvent): void => {
        const ord = ords.get(e)!;
        s.insert!.run(e.id, ord, replayKey(e), e.body.kind, e.timestampMs, e.bytes, net ? 1 : 0);
        this.noteOrd(ord);
        this.noteNonce(e);
        this.insertAccounts(e, ord);
      };
      if (this.pendingFrom !== null || (defer && from !== null)) {
        // Store only: a replay is (now) pending, and it covers these events too, whichever side of the tip they are;
        // it judges the network's ones at their place (replayFrom).
        for (const e of fresh) insert(e);
        if (from !== null && (this.pendingFrom === null || compareBytes(from, this.pendingFrom) < 0)) {
          this.pendingFrom = from;
          s.setMeta!.run('replayFrom', toHex(from));
        }
        return;
      }
      if (from === null) {
        fresh.sort((a, b) => compareBytes(ords.get(a)!, ords.get(b)!));
        for (const e of fresh) {
          // Issue 11 attack 5: what the network sends and the state rules reject at its place is not kept.
          const no = net && !this.conflictOnce(e) ? precheckEvent(this.state, e, this.ctx) : null;
          if (no !== null) {
            this.conflictMemo = undefined;
            verdicts.set(hexOf.get(e)!, no);
            continue;
          }
          // Applied before it is stored: the rules look only at events that sort before it (hasConflict), and the
          // row then goes in with its verdict in one write (the same row an insert and an update would leave).
          const ord = ords.get(e)!;
          const r = this.apply(e);
          s.insertJudged!.run(e.id, ord, replayKey(e), e.body.kind, e.timestampMs, e.bytes, STATUS_CODE[r.status], r.reason ?? null, r.amount?.toString() ?? null, net ? 1 : 0);
          this.noteOrd(ord);
          this.noteNonce(e);
          this.insertAccounts(e, ord);
          verdicts.set(hexOf.get(e)!, r);
          this.tip = ord;
          this.maybeSnapshot(ord);
        }
      } else {
        for (const e of fresh) insert(e);
        this.replayFrom(from, verdicts);
      }
      this.persistState();
    });
    return verdicts;
  }

  /** The event's rows in event_accounts (the history index): the accounts it names. */
  private insertAccounts(e: LedgerEvent, ord: Uint8Array): void {
    const accts = accountsOf(e);
    if (accts.length === 2) this.stmts.insertAccount2!.run(accts[0], ord, accts[1], ord);
    else for (const acct of accts) this.stmts.insertAccount!.run(acct, ord);
  }

  /** Runs `fn` in one SQLite transaction; on failure reloads the state from the disk and rethrows. */
  private transaction(fn: () => void): void {
    try {
      this.db.transaction(fn)();
    } catch (e) {
      // The transaction rolled back; the in-memory state may hold half an event. Start again from the disk.
      this.log.error('ledger transaction failed; reloading state', { error: (e as Error).message });
      this.loadState();
      throw e;
    }
  }

  /**
   * Bytes the database file may still grow by under the disk quota (Infinity without one). Measured once per ingest
   * batch: a batch is one transaction, so its own rows are not in the file until it commits, and a sync batch is up
   * to LEDGER_SYNC_LIMITS.commitPages pages; ingestMany counts each admitted event's storedBytesEstimate against it.
   */
  private quotaRoom(): number {
    if (this.maxBytes === undefined) return Number.POSITIVE_INFINITY;
    const pages = Number(this.db.pragma('page_count', { simple: true }));
    return this.maxBytes - pages * this.pageSize;
  }

  /**
   * Records that this node watched the network at `nowMs` (caught up, with a peer): sync then refuses events
   * dated in watched time that did not reach us within the horizon (admission.ts). The node calls it on a timer.
   */
  markWatched(nowMs: number): void {
    this.assertWritable();
    const next = markWatched(this.watch, nowMs);
    this.watch = next;
    this.stmts.setMeta!.run('watched', JSON.stringify(next));
  }

  /** The watch record (ascending intervals). */
  watched(): readonly WatchInterval[] {
    return this.watch.map((w) => ({ ...w }));
  }

  /**
   * Runs the replay that `deferReplay` ingests left pending, once, from the earliest of their places; returns the
   * verdicts it reached (empty when nothing was pending).
   */
  flushReplay(): Map<string, ApplyResult | ReasonCode> {
    const verdicts = new Map<string, ApplyResult | ReasonCode>();
    const from = this.pendingFrom;
    if (from === null) return verdicts;
    this.assertWritable();
    this.transaction(() => {
      this.replayFrom(from, verdicts);
      this.pendingFrom = null;
      this.stmts.deleteMeta!.run('replayFrom');
      this.persistState();
    });
    return verdicts;
  }

  /** The network's genesis key under which events are judged (undefined: none named yet). */
  genesisKey(): Uint8Array | undefined {
    return this.ctx.rewards?.genesisKey;
  }

  /**
   * Names the network's genesis key once this node learns it (node/genesis-key.ts: a joiner asks its first peers).
   * Every stored event after the latest cut is judged again under it (a Genesis event, and what spent its
   * allocation, change verdict). A ledger never changes networks: a different key than the one set is a ConfigError
   * (GENESIS_KEY_MISMATCH).
   */
  setGenesisKey(key: Uint8Array): void {
    const cur = this.ctx.rewards?.genesisKey;
    if (cur !== undefined) {
      if (bytesEqual(cur, key)) return;
      throw new ConfigError(`the ledger's genesis key is ${toHex(cur)}, not ${toHex(key)}`, { genesisKey: toHex(cur) }, 'GENESIS_KEY_MISMATCH');
    }
    this.assertWritable();
    this.ctx.rewards = { ...this.ctx.rewards, witnessed: this.ctx.rewards?.witnessed === true, genesisKey: key };
    this.transaction(() => {
      this.replayFrom(this.floor, new Map());
      this.persistState();
    });
  }

  /** hasConflict for `e`, remembered until `e` is applied (see conflictMemo). */
  private conflictOnce(e: LedgerEvent): boolean {
    this.conflictMemo = undefined;
    const v = this.ctx.hasConflict(e);
    this.conflictMemo = { e, v };
    return v;
  }

  private apply(e: LedgerEvent): ApplyResult {
    let r: ApplyResult;
    try {
      r = applyEvent(this.state, e, this.ctx);
    } finally {
      this.conflictMemo = undefined;
    }
    if (this.checkInvariant) {
      const gap = this.state.supplyGap();
      if (gap !== 0n) throw new Error(`supply invariant broken by event ${toHex(e.id)}: gap ${gap}`);
    }
    return r;
  }

  /** Rewinds to the last snapshot before `from` and re-applies every stored event after it. */
  private replayFrom(from: Uint8Array, verdicts: Map<string, ApplyResult | ReasonCode>): void {
    // Snapshots at or after `from` include events whose verdict may change: drop them.
    this.snapshots = this.snapshots.filter((sn, i) => i === 0 || (sn.key !== null && compareBytes(sn.key, from) < 0));
    const snap = this.snapshots[this.snapshots.length - 1]!;
    this.state.restore(snap.state);
    this.sinceSnapshot = 0;
    let cursor: Uint8Array = snap.key ?? new Uint8Array(0);
    let kept: Uint8Array | null = snap.key;
    let replayed = 0;
    for (;;) {
      const rows = this.stmts.after.all(cursor, REPLAY_PAGE) as Row[];
      for (const row of rows) {
        const e = decodeEvent(row.bytes);
        cursor = row.ord;
        if (row.net === 1 && row.status === STATUS_CODE.pending && !this.conflictOnce(e)) {
          // From the network and never judged: at its place now, so the state rules decide whether it is kept.
          const no = precheckEvent(this.state, e, this.ctx);
          if (no !== null) {
            this.conflictMemo = undefined;
            this.stmts.remove!.run(row.id);
            this.nonces.clear();
            this.stmts.removeAccounts!.run(row.ord);
            verdicts.set(toHex(row.id), no);
            continue;
          }
        }
        const r = this.apply(e);
        const code = STATUS_CODE[r.status];
        if (code !== row.status || (r.reason ?? null) !== row.reason || r.amount !== undefined) {
          this.stmts.verdict!.run(code, r.reason ?? null, r.amount?.toString() ?? null, row.id);
        }
        verdicts.set(toHex(row.id), r);
        this.maybeSnapshot(row.ord);
        kept = row.ord;
        replayed++;
      }
      this.work.replayedEvents += rows.length;
      if (rows.length < REPLAY_PAGE) break;
    }
    this.tip = kept;
    this.log.debug('ledger rewound', { replayed });
  }

  private maybeSnapshot(ord: Uint8Array): void {
    if (++this.sinceSnapshot < SNAPSHOT_EVERY) return;
    this.sinceSnapshot = 0;
    this.snapshots.push({ key: ord, state: this.state.snapshot() });
    if (this.snapshots.length > MAX_SNAPSHOTS) this.snapshots.splice(1, 1); // keep genesis
  }

  private persistState(): void {
    const s = this.stmts;
    for (const [k, v] of this.state.takeDirty()) {
      if (v === undefined) s.deleteState!.run(k);
      else s.upsertState!.run(k, v);
    }
    if (this.tip !== null) s.setMeta!.run('tip', toHex(this.tip));
  }

  // ------------------------------------------------------------------------------------------------------------
  // queries

  /**
   * The state rule that rejects `e` at the end of the current state, or null (issue 11 attack 5: the gossip
   * validator does not relay such an event). Null too when it cannot tell: a replay is pending, or `e` sorts
   * before the tip (it is then judged at its place when stored).
   */
  stateVerdict(e: LedgerEvent): ReasonCode | null {
    if (this.pendingFrom !== null) return null;
    if (this.tip !== null && compareBytes(orderKey(e.timestampMs, e.id), this.tip) < 0) return null;
    if (this.ctx.hasConflict(e)) return null;
    return precheckEvent(this.state, e, this.ctx);
  }

  /** The stateless rules (signature, fields) for an event, as ingest applies them: a reason, or null when valid. */
  verify(e: LedgerEvent): ReasonCode | null {
    return verifyEvent(e, this.cfg);
  }

  /** The state hash: equal on two ledgers holding the same events, whatever order they arrived in. */
  stateHash(): string {
    return this.state.hash();
  }

  status(): LedgerStatus {
    const t = this.state.totals();
    return {
      stateHash: this.state.hash(),
      replayPending: this.replayPending(),
      events: t.applied + t.rejected + t.void,
      applied: t.applied,
      rejected: t.rejected,
      void: t.void,
      minted: t.minted,
      burned: t.burned,
      staked: t.staked,
      escrowed: t.escrowed,
      marketPricePerMillion: this.state.market()?.price ?? MARKET_BASE_PRICE,
      finalized: this.finalizedView(),
    };
  }

  /** An account's balances (the 20-byte account id; parse an address with identity's parseAddress). */
  account(accountId: Uint8Array): AccountView {
    const a = this.state.account(toHex(accountId));
    let cooling = 0n;
    for (const u of a.unbonding) cooling += u.amount;
    return {
      address: addressFromAccountId(accountId),
      balance: a.balance,
      staked: a.staked + cooling,
      locked: a.staked,
      unlocksAt: a.unlocksAt,
      unbonding: a.unbonding.map((u) => ({ ...u })),
      unminted: (a.unminted ?? []).reduce((n, u) => n + u.amount, 0n),
      unmintedRewards: (a.unminted ?? []).map((u) => ({ ...u })),
    };
  }

  /** Events naming the account, newest first. */
  history(accountId: Uint8Array, limit = 100): HistoryEntry[] {
    const rows = this.stmts.history.all(accountId, Math.max(1, Math.min(10_000, limit))) as { bytes: Uint8Array; status: number; reason: string | null; amount: string | null; ord: Uint8Array }[];
    return rows.map((r) => {
      const h: HistoryEntry = { ...describeEvent(decodeEvent(r.bytes)), status: STATUS_NAME[r.status]! };
      if (r.reason !== null) h.reason = r.reason;
      // the amount the verdict moved (a proof's reward, a transfer's amount), as decimal NEURO
      if (r.amount !== null && h.status === 'applied') h.moved = formatAmount(BigInt(r.amount));
      // issue 11 §3: a signed checkpoint covers it, so its verdict (a payment's, say) can no longer change
      h.final = this.finalCp !== undefined && compareBytes(r.ord, this.floor) < 0;
      return h;
    });
  }

  /** One past the largest nonce this signer has used for this kind (0 for none). */
  nextNonce(signer: Uint8Array, kind: EventKind): bigint {
    const ck = nonceKey(signer, kind);
    const cached = this.nonces.get(ck);
    if (cached !== undefined) return cached;
    const lo = replayKey({ signer, body: { kind } as LedgerEvent['body'], nonce: 0n });
    const hi = replayKey({ signer, body: { kind } as LedgerEvent['body'], nonce: 0xffffffffffffffffn });
    const row = this.stmts.maxNonce.get(lo, hi) as { rkey: Uint8Array | null } | undefined;
    const next = row?.rkey == null ? 0n : new DataView(row.rkey.buffer, row.rkey.byteOffset, row.rkey.byteLength).getBigUint64(34) + 1n;
    if (this.nonces.size >= MAX_CACHED_NONCES) this.nonces.delete(this.nonces.keys().next().value!);
    this.nonces.set(ck, next);
    return next;
  }

  /** Raises a cached nextNonce answer past a stored event (entries not cached are asked of the database later). */
  /** Keeps maxOrd at least the largest stored order key after an insert of `ord`. */
  private noteOrd(ord: Uint8Array): void {
    if (this.maxOrd === null || compareBytes(ord, this.maxOrd) > 0) this.maxOrd = ord;
  }

  private noteNonce(e: LedgerEvent): void {
    if (this.nonces.size === 0) return;
    const ck = nonceKey(e.signer, e.body.kind);
    const cached = this.nonces.get(ck);
    if (cached !== undefined && e.nonce >= cached) this.nonces.set(ck, e.nonce + 1n);
  }

  /** Whether the market request with this event id is escrowed and not completed yet (a pending `r:` row). */
  requestPending(requestId: Uint8Array): boolean {
    return this.state.request(toHex(requestId)) !== undefined;
  }

  /** The epoch of the account's latest applied proof (-1 for none): the state's, so a snapshot holds it too. */
  lastProofEpoch(accountId: Uint8Array): number {
    return this.state.account(toHex(accountId)).lastEpoch;
  }

  /** The stored status of an event, or undefined. */
  eventStatus(id: Uint8Array): { status: StoredStatus; reason?: string } | undefined {
    const row = this.stmts.byId.get(id) as Row | undefined;
    if (row === undefined) return undefined;
    return row.reason === null ? { status: STATUS_NAME[row.status]! } : { status: STATUS_NAME[row.status]!, reason: row.reason };
  }

  /** True when a signed checkpoint covers the stored event `id` (its verdict can no longer change). */
  isFinal(id: Uint8Array): boolean {
    if (this.finalCp === undefined) return false;
    const row = this.stmts.ordOf.get(id) as { ord: Uint8Array } | undefined;
    return row !== undefined && compareBytes(row.ord, this.floor) < 0;
  }

  /** Wire bytes of a stored event. */
  eventBytes(id: Uint8Array): Uint8Array | undefined {
    return (this.stmts.byId.get(id) as Row | undefined)?.bytes;
  }

  /** What this ledger serves to syncing peers. */
  syncHandler(): LedgerSyncHandler {
    return {
      range: (after, limit) => {
        const n = Math.max(1, Math.min(LEDGER_SYNC_LIMITS.maxRange, Math.floor(limit)));
        return (this.stmts.serveAfter.all(after ?? new Uint8Array(0), n) as { bytes: Uint8Array }[]).map((r) => r.bytes);
      },
      byIds: (ids) => {
        const out: Uint8Array[] = [];
        for (const id of ids.slice(0, LEDGER_SYNC_LIMITS.maxIds)) {
          const row = this.stmts.byId.get(id) as Row | undefined;
          if (row !== undefined && (row.status === STATUS_CODE.applied || row.status === STATUS_CODE.void)) out.push(row.bytes); // never spam (attack 5)
        }
        return out;
      },
    };
  }

  /** Balances + stakes + escrow + burned − minted (0 when the supply invariant holds; throws on a broken total). */
  supplyGap(): bigint {
    return this.state.supplyGap();
  }

  /** True while stored events wait for a deferred replay (the state does not include them yet). */
  replayPending(): boolean {
    if (this.readonly) return this.stmts.meta.get('replayFrom') !== undefined; // the writer may have set it since we opened
    return this.pendingFrom !== null;
  }

  /**
   * Re-derives the state from the stored events alone, from genesis, without touching the database, and returns
   * its hash: equal to stateHash() when the persisted state is consistent with the events and no replay is pending.
   */
  replayHash(): string {
    const fresh = new LedgerState();
    if (this.finalCp !== undefined) fresh.loadRows(this.stmts.cpRowsAll.all() as { k: string; v: string }[]);
    let cursor: Uint8Array = this.floor;
    for (;;) {
      const rows = this.stmts.after.all(cursor, REPLAY_PAGE) as Row[];
      for (const row of rows) {
        applyEvent(fresh, decodeEvent(row.bytes), this.ctx);
        cursor = row.ord;
      }
      if (rows.length < REPLAY_PAGE) break;
    }
    return fresh.hash();
  }

  // ------------------------------------------------------------------------------------------------------------
  // finality (issue 11 §3; the rules are in checkpoint.ts)

  /** The latest signed checkpoint this ledger holds. */
  latestCheckpoint(): SignedCheckpoint | undefined {
    return this.finalCp;
  }

  /** Where a sync starts when it has no cursor: the latest checkpoint's cut (nothing before it is admitted). */
  syncStart(): Uint8Array | null {
    return this.finalCp === undefined ? null : this.floor;
  }

  /** Checkpoints after `seq`, in order (what ledger-checkpoints serves). */
  checkpointsAfter(seq: number, limit: number): SignedCheckpoint[] {
    const rows = this.stmts.cpAfter.all(Math.max(0, Math.floor(seq)), Math.max(1, Math.min(256, Math.floor(limit)))) as { body: string }[];
    return rows.map((r) => checkpointFromJson(JSON.parse(r.body)));
  }

  /** A page of the state rows at the latest checkpoint's cut, after row key `after` (what a snapshot sync reads). */
  snapshotPage(seq: number, after: string, limit: number): [string, string][] | undefined {
    if (this.finalCp === undefined || this.finalCp.body.seq !== seq) return undefined;
    return (this.stmts.cpRows.all(after, Math.max(1, Math.min(4096, Math.floor(limit)))) as { k: string; v: string }[]).map((r) => [r.k, r.v]);
  }

  private finalizedView(): FinalizedView | null {
    const cp = this.finalCp;
    if (cp === undefined) return null;
    return { seq: cp.body.seq, height: cp.body.height, cutMs: cp.body.cutMs, stateHash: cp.body.stateHash, hash: checkpointHash(cp.body), signers: cp.sigs.length };
  }

  /**
   * The state after every stored event dated before `cutMs`, and the ids of the applied and void ones since the
   * latest checkpoint (canonical order). Undefined while a replay is pending (the verdicts are not final) or when
   * the cut is not after the latest checkpoint's. The live state is not touched.
   */
  private stateAtCut(cutMs: number): { state: LedgerState; ids: Uint8Array[] } | undefined {
    if (this.pendingFrom !== null) return undefined;
    if (this.finalCp !== undefined && cutMs <= this.finalCp.body.cutMs) return undefined;
    const ck = cutKey(cutMs);
    let snap = this.snapshots[0]!;
    for (const sn of this.snapshots) if (sn.key !== null && compareBytes(sn.key, ck) < 0 && (snap.key === null || compareBytes(sn.key, snap.key) > 0)) snap = sn;
    const state = new LedgerState();
    state.restore(snap.state);
    let cursor: Uint8Array = snap.key ?? new Uint8Array(0);
    for (;;) {
      const rows = this.stmts.between.all(cursor, ck, REPLAY_PAGE) as Row[];
      for (const row of rows) {
        applyEvent(state, decodeEvent(row.bytes), this.ctx);
        cursor = row.ord;
      }
      if (rows.length < REPLAY_PAGE) break;
    }
    state.takeDirty();
    const ids: Uint8Array[] = [];
    let from: Uint8Array = this.floor;
    for (;;) {
      const rows = this.stmts.idsBetween.all(from, ck, 65_536) as { id: Uint8Array; ord: Uint8Array }[];
      for (const r of rows) ids.push(r.id);
      if (rows.length < 65_536) break;
      from = concatKey(rows[rows.length - 1]!.ord);
    }
    return { state, ids };
  }

  /**
   * The checkpoint body this ledger would sign for the cut `cutMs` (checkpoint.ts), following its latest one;
   * undefined when it cannot say yet (a replay pending, or the cut is not after the latest checkpoint's).
   */
  proposeCheckpoint(cutMs: number): CheckpointBody | undefined {
    const prev = this.finalCp?.body;
    const at = this.stateAtCut(cutMs);
    if (at === undefined) return undefined;
    const t = at.state.totals();
    return {
      networkId: this.networkId,
      seq: (prev?.seq ?? 0) + 1,
      cutMs,
      height: t.applied + t.void,
      stateHash: at.state.hash(),
      eventsRoot: nextEventsRoot(prev?.eventsRoot ?? ZERO_HASH, at.ids),
      prev: prev === undefined ? ZERO_HASH : checkpointHash(prev),
      committee: committeeOf(at.state),
    };
  }

  /**
   * Makes a verified checkpoint (the caller checked its signatures and chain: checkpoint.ts verifyChain) final
   * here, when this ledger's own state at its cut is the one it names: from then on nothing dated before the cut
   * is admitted and replays start at its state. 'diverged': our state at the cut differs (take the snapshot:
   * installSnapshot); 'not-ready': a replay is pending, ask again; 'known'/'stale': we hold it or a later one.
   */
  finalize(cp: SignedCheckpoint, earlier: readonly SignedCheckpoint[] = []): FinalizeOutcome {
    this.assertWritable();
    const cur = this.finalCp?.body;
    if (cur !== undefined && cp.body.seq <= cur.seq) return cp.body.seq === cur.seq && checkpointHash(cp.body) === checkpointHash(cur) ? 'known' : 'stale';
    const at = this.stateAtCut(cp.body.cutMs);
    if (at === undefined) return 'not-ready';
    const t = at.state.totals();
    if (at.state.hash() !== cp.body.stateHash || t.applied + t.void !== cp.body.height || !sameCommittee(committeeOf(at.state), cp.body.committee)) return 'diverged';
    this.transaction(() => this.setBase(cp, at.state, earlier));
    return 'finalized';
  }

  /**
   * Starts this ledger from a verified checkpoint's snapshot (a new node, or one whose history diverged): the rows
   * must hash to the checkpoint's state hash and imply its height and committee, else nothing changes and a
   * reason is returned. Events dated before the cut are deleted (the snapshot replaces them); later ones are
   * re-applied on top of it.
   */
  installSnapshot(cp: SignedCheckpoint, rows: readonly [string, string][], earlier: readonly SignedCheckpoint[] = []): 'installed' | 'stale' | 'SNAPSHOT_HASH' | 'SNAPSHOT_ROWS' | 'SNAPSHOT_COMMITTEE' {
    this.assertWritable();
    const cur = this.finalCp?.body;
    if (cur !== undefined && cp.body.seq <= cur.seq) return 'stale';
    const state = new LedgerState();
    const canonical: [string, string][] = [];
    try {
      state.loadRows(
        (function* () {
          for (const [k, v] of rows) yield { k, v };
        })(),
        canonical,
      );
    } catch {
      return 'SNAPSHOT_ROWS';
    }
    // the hash of the rows' canonical form (loadRows hashes what it decoded, so odd spacing cannot pass for another
    // text), recomputed here, never taken from the peer
    if (state.hash() !== cp.body.stateHash) return 'SNAPSHOT_HASH';
    // a row given twice would be counted once by the maps but twice by a hash over the list: refuse it
    if (state.rowCount() !== rows.length) return 'SNAPSHOT_ROWS';
    const t = state.totals();
    if (t.applied + t.void !== cp.body.height) return 'SNAPSHOT_ROWS';
    if (!sameCommittee(committeeOf(state), cp.body.committee)) return 'SNAPSHOT_COMMITTEE';
    state.takeDirty();
    this.transaction(() => {
      const ck = cutKey(cp.body.cutMs);
      this.stmts.removeBefore!.run(ck);
      this.nonces.clear();
      this.stmts.removeAccountsBefore!.run(ck);
      this.pendingFrom = null;
      this.stmts.deleteMeta!.run('replayFrom');
      this.setBase(cp, state, earlier, canonical);
    });
    return 'installed';
  }

  /**
   * Records `cp` with the state at its cut as the base, and re-judges the events after the cut from it.
   * `canonical`: the base's rows as canonical text (installSnapshot has them from hashing): stored as they are, and
   * the live state rows copied from them inside SQLite, instead of serialising every row twice more (snapshot_sync_s).
   */
  private setBase(cp: SignedCheckpoint, base: LedgerState, earlier: readonly SignedCheckpoint[], canonical?: readonly [string, string][]): void {
    const s = this.stmts;
    // the verified chain before it, so that this node can serve the whole chain to a new one
    for (const e of earlier) s.insertCp!.run(e.body.seq, JSON.stringify(checkpointToJson(e)));
    s.insertCp!.run(cp.body.seq, JSON.stringify(checkpointToJson(cp)));
    s.clearCpState!.run();
    for (const [k, v] of canonical ?? base.rows()) s.insertCpState!.run(k, v);
    this.finalCp = cp;
    this.floor = cutKey(cp.body.cutMs);
    const snap = base.snapshot();
    this.snapshots = [{ key: this.floor, state: snap }];
    if (canonical !== undefined) {
      // The live rows become the base's rows (the replay below then marks only what the events after the cut change).
      s.clearState!.run();
      s.copyCpState!.run();
      this.state.restore(snap);
      this.state.clearDirty();
    }
    // Conflicts now count from the cut on (ctx.hasConflict): verdicts after it may change, so they are re-judged.
    this.replayFrom(this.floor, new Map());
    this.persistState();
  }

  /** A consistent copy of the database at `file`, safe while the node writes (SQLite online backup). */
  async backup(file: string): Promise<void> {
    await this.db.backup(file);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

/** The order key of a cut: every event dated before `cutMs` sorts before it, every later one after. */
export function cutKey(cutMs: number): Uint8Array {
  return orderKey(cutMs, new Uint8Array(32));
}

/** The smallest order key after `ord` (for paging with >=). */
function concatKey(ord: Uint8Array): Uint8Array {
  const k = new Uint8Array(ord.byteLength + 1);
  k.set(ord);
  return k;
}

function toResult(id: string, r: ApplyResult, duplicate: boolean): IngestResult {
  const out: IngestResult = { id, status: r.status, duplicate };
  if (r.reason !== undefined) out.reason = r.reason;
  return out;
}

/** Accounts an event names, for history. */
function accountsOf(e: LedgerEvent): Uint8Array[] {
  const out = [e.account];
  const b = e.body;
  if (b.kind === EventKind.Transfer) out.push(b.to);
  if (b.kind === EventKind.MarketComplete) {
    for (const h of b.hops.slice(1)) out.push(accountIdFromPublicKey(h.key));
    out.push(accountIdFromPublicKey(b.requesterKey));
  }
  if (b.kind === EventKind.Slash) {
    try {
      out.push(evidenceKey(e).offender);
    } catch {
      // evidence was verified before storing; unreachable
    }
  }
  return out;
}

/**
 * IngestOptions.decoded checked against the list: an entry decoded from exactly these bytes is taken as is, any other
 * (an error, or bytes changed since) is decoded again. A byte comparison costs a fraction of a decode and its hash.
 */
function reuseDecoded(list: readonly Uint8Array[], given: readonly (LedgerEvent | Error)[]): (LedgerEvent | Error)[] {
  const out = new Array<LedgerEvent | Error>(list.length);
  for (let i = 0; i < list.length; i++) {
    const e = given[i];
    const b = list[i];
    if (e !== undefined && !(e instanceof Error) && b instanceof Uint8Array && e.bytes instanceof Uint8Array && Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength).equals(b)) {
      out[i] = e;
      continue;
    }
    try {
      out[i] = decodeEvent(b as Uint8Array);
    } catch (err) {
      if (!(err instanceof DecodeError || err instanceof RangeError)) throw err;
      out[i] = err;
    }
  }
  return out;
}
