/**
 * Do stopped nodes' ledgers converge? An offline check over copies of their ledger files (scripts/chaos.mjs stage
 * 8, session 25).
 *
 * Why: the chaos run stops every node with SIGTERM while the network still makes events (payments for
 * generations, market escrow, uptime rewards, transfers), so an event in flight may be stored on some nodes and not
 * on others, and their final state hashes differ. That alone cannot tell a harmless in-flight event from a real
 * divergence (an order-dependent apply, a conflicting history, an event one node refuses and another accepts).
 * This check finishes the exchange the network was cut off in: every event one copy serves and another lacks is
 * delivered to the latter through the path gossip takes (`ingest` with ingress 'gossip', the deferred replay, then
 * `flushReplay`, as LedgerService does), and one too old for the live window (STALE) through the path the periodic
 * tail sync takes (`ingestMany` with ingress 'sync'), repeated until no copy lacks anything or a round stores nothing
 * new; then the state hashes are compared. The ledgers must agree then; anything else is a ledger bug, or an
 * admission rule (a refusal with its reason) that keeps a node from ever taking an event the others applied.
 *
 * "Serves" means what a node's sync handler serves: applied and void events. A rejected event is neither relayed
 * nor served (issue 11 attack 5) and is left out of the state hash (state.ts), so it is never "missing".
 *
 * Works on copies only (the caller copies each node's ledger.db with its -wal and -shm files): the exchange writes.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { compareBytes, decodeEvent, KIND_NAMES, orderKey, type EventKind, type LedgerEvent } from '../ledger/events.js';
import { LEDGER_SYNC_LIMITS } from '../ledger/interfaces.js';
import { Ledger, type IngestResult } from '../ledger/ledger.js';
import { REASONS, type ReasonCode } from '../ledger/reasons.js';
import { LEDGER_DB_FILE } from '../ledger/store.js';
import type { RewardRules } from '../ledger/witness.js';
import { toHex } from '../util/bytes.js';

/** One node's ledger file (a copy: the exchange writes to it). */
export interface LedgerCopy {
  name: string;
  path: string;
}

export interface ConvergeOptions {
  networkId: string;
  modelLayers: number;
  /** The network's reward rules, as the nodes ran them (node/ledger.ts rewardRules): applying depends on them. */
  rewards?: RewardRules;
  /** The nodes' sync horizon (admission.ts; default DEFAULT_SYNC_HORIZON_MS). */
  syncHorizonMs?: number;
  /**
   * When the nodes were stopped (wall clock): the exchange's clock and the reference of the reported ages. Default:
   * the latest event date in any copy.
   */
  stopMs?: number;
  /** Exchange rounds at most (default 8). */
  maxRounds?: number;
  /** Missing events listed in the report at most (default 20; the counts cover all). */
  listLimit?: number;
}

/** An event some copy serves and another lacks. */
export interface MissingEvent {
  id: string;
  kind: string;
  timestampMs: number;
  /** stopMs − its date: how long before the stop it was made. */
  ageMs: number;
  heldBy: string[];
  lackedBy: string[];
}

/** An event a copy did not take although another copy holds it applied or void. */
export interface Refusal {
  id: string;
  kind: string;
  timestampMs: number;
  ageMs: number;
  /** The copy that refused it. */
  node: string;
  /** The reason code (reasons.ts), or 'rejected' when it was stored with a rejected verdict. */
  reason: string;
  /** What the reason means (reasons.ts), so an admission rule reads as one. */
  explanation: string;
  /** The path it was last offered on. */
  path: 'gossip' | 'sync' | 'held';
  /** Copies that hold it, with their verdicts. */
  heldBy: Record<string, string>;
}

/** The same event with different verdicts on two copies after the exchange. */
export interface VerdictDiff {
  id: string;
  kind: string;
  timestampMs: number;
  verdicts: Record<string, string>;
}

export interface ConvergeReport {
  /** State hash of each copy as the node left it (read-only open), and whether all are equal. */
  rawHashes: Record<string, string>;
  rawEqual: boolean;
  /** Copies whose file had a deferred replay pending when it was stopped (their raw hash is not final). */
  replayPending: string[];
  /** (event, copy) pairs missing before the exchange; `events` lists up to listLimit of them, oldest first. */
  missing: { pairs: number; events: number; kinds: Record<string, number>; oldestAgeMs: number | null; list: MissingEvent[] };
  rounds: number;
  /** Events stored by the exchange, by the path that took them. */
  delivered: { gossip: number; sync: number };
  convergedHashes: Record<string, string>;
  convergedEqual: boolean;
  /** Events still lacked (or held rejected) by a copy while another holds them applied or void. */
  refusals: Refusal[];
  verdictDiffs: VerdictDiff[];
}

interface Held {
  e: LedgerEvent;
  ord: Uint8Array;
}

/** Copies `<dataDir>/ledger.db` and its -wal and -shm files (those present) into `destDir`; returns the copy's path. */
export function copyLedgerFiles(dataDir: string, destDir: string): string {
  mkdirSync(destDir, { recursive: true });
  for (const suffix of ['', '-wal', '-shm']) {
    const from = join(dataDir, LEDGER_DB_FILE + suffix);
    if (existsSync(from)) copyFileSync(from, join(destDir, LEDGER_DB_FILE + suffix));
  }
  return join(destDir, LEDGER_DB_FILE);
}

/** Every event a ledger serves (applied and void), paged through its sync handler as a peer would read it. */
export function servedEvents(l: Ledger): Held[] {
  const h = l.syncHandler();
  const out: Held[] = [];
  let after: Uint8Array | null = null;
  for (;;) {
    const page = h.range(after, LEDGER_SYNC_LIMITS.maxRange);
    for (const b of page) {
      const e = decodeEvent(b);
      const ord = orderKey(e.timestampMs, e.id);
      out.push({ e, ord });
      after = ord;
    }
    if (page.length < LEDGER_SYNC_LIMITS.maxRange) return out;
  }
}

/**
 * The latest event date among `held` (0 for none): the default stop time. A loop, not Math.max over a spread: that
 * threw RangeError (call stack) from ~150,000 events on Node 20, so the check failed on a long-lived network's
 * ledgers unless given --stop-ms (review, session 26).
 */
export function latestDate(held: Iterable<{ e: { timestampMs: number } }>): number {
  let latest = 0;
  for (const h of held) if (h.e.timestampMs > latest) latest = h.e.timestampMs;
  return latest;
}

function kindName(e: LedgerEvent): string {
  return KIND_NAMES[e.body.kind as EventKind] ?? `kind ${e.body.kind}`;
}

function explain(reason: string): string {
  return (REASONS as Record<string, string>)[reason] ?? reason;
}

/**
 * Delivers `events` (canonical order) to `l` as the network would: live gossip first (ingest, deferred replay,
 * flushReplay: LedgerService's gossip handler), then what the live window refused as STALE by the tail sync's path
 * (ingestMany 'sync', flushReplay: LedgerService.syncFrom). Returns, per event id, the path and the reason it was
 * dropped, if it was.
 */
export function deliver(l: Ledger, events: readonly LedgerEvent[], nowMs: number): Map<string, { path: 'gossip' | 'sync'; dropped?: string }> {
  const out = new Map<string, { path: 'gossip' | 'sync'; dropped?: string }>();
  const late: LedgerEvent[] = [];
  const note = (id: string, path: 'gossip' | 'sync', r: IngestResult | ReasonCode | undefined): void => {
    if (r === undefined) return;
    if (typeof r === 'string') out.set(id, { path, dropped: r });
    else if (r.status === 'dropped') out.set(id, { path, dropped: r.reason ?? 'dropped' });
    else out.set(id, { path });
  };
  for (const e of events) {
    const r = l.ingest(e.bytes, { ingress: 'gossip', nowMs, deferReplay: true });
    if (r.status === 'dropped' && r.reason === 'STALE') late.push(e);
    else note(r.id, 'gossip', r);
  }
  for (const [id, v] of l.flushReplay()) if (typeof v === 'string') note(id, 'gossip', v);
  if (late.length > 0) {
    const rs = l.ingestMany(
      late.map((e) => e.bytes),
      { ingress: 'sync', nowMs, deferReplay: true },
    );
    for (const r of rs) note(r.id, 'sync', r);
    for (const [id, v] of l.flushReplay()) if (typeof v === 'string') note(id, 'sync', v);
  }
  return out;
}

/**
 * The check (file comment). Opens each copy read-only for its raw hash, then writable for the exchange; closes all.
 * Pure over the ledger API: the copies are the only thing it changes.
 */
export function convergeLedgers(copies: readonly LedgerCopy[], o: ConvergeOptions): ConvergeReport {
  const base = { networkId: o.networkId, modelLayers: o.modelLayers };
  const rawHashes: Record<string, string> = {};
  const replayPending: string[] = [];
  for (const c of copies) {
    const r = new Ledger({ ...base, path: c.path, readonly: true });
    try {
      rawHashes[c.name] = r.stateHash();
      if (r.replayPending()) replayPending.push(c.name);
    } finally {
      r.close();
    }
  }
  const ledgers = copies.map((c) => new Ledger({ ...base, path: c.path, rewards: o.rewards, syncHorizonMs: o.syncHorizonMs }));
  try {
    const listLimit = o.listLimit ?? 20;
    const union = (): Map<string, Held> => {
      const u = new Map<string, Held>();
      for (const l of ledgers) for (const h of servedEvents(l)) u.set(toHex(h.e.id), h);
      return u;
    };
    let all = union();
    const stopMs = o.stopMs ?? latestDate(all.values());
    const lacks = (i: number, all: Map<string, Held>): Held[] =>
      [...all.values()].filter((h) => ledgers[i]!.eventStatus(h.e.id) === undefined).sort((a, b) => compareBytes(a.ord, b.ord));

    // before: who lacks what
    const missingBy = ledgers.map((_, i) => lacks(i, all));
    const byId = new Map<string, MissingEvent>();
    for (const [i, list] of missingBy.entries()) {
      for (const h of list) {
        const id = toHex(h.e.id);
        let m = byId.get(id);
        if (m === undefined) {
          const heldBy = copies.filter((_, j) => ledgers[j]!.eventStatus(h.e.id) !== undefined).map((c) => c.name);
          m = { id, kind: kindName(h.e), timestampMs: h.e.timestampMs, ageMs: stopMs - h.e.timestampMs, heldBy, lackedBy: [] };
          byId.set(id, m);
        }
        m.lackedBy.push(copies[i]!.name);
      }
    }
    const missingList = [...byId.values()].sort((a, b) => a.timestampMs - b.timestampMs);
    const kinds: Record<string, number> = {};
    for (const m of missingList) kinds[m.kind] = (kinds[m.kind] ?? 0) + m.lackedBy.length;
    const missing = {
      pairs: missingBy.reduce((n, l) => n + l.length, 0),
      events: missingList.length,
      kinds,
      oldestAgeMs: missingList.length > 0 ? missingList[0]!.ageMs : null,
      list: missingList.slice(0, listLimit),
    };

    // the exchange
    const delivered = { gossip: 0, sync: 0 };
    const last = new Map<string, { path: 'gossip' | 'sync'; dropped?: string }>(); // `${copy}:${id}` → last offer
    let rounds = 0;
    const maxRounds = o.maxRounds ?? 8;
    for (; rounds < maxRounds; ) {
      const todo = ledgers.map((_, i) => lacks(i, all));
      if (todo.every((t) => t.length === 0)) break;
      rounds++;
      let stored = 0;
      for (const [i, l] of ledgers.entries()) {
        if (todo[i]!.length === 0) continue;
        const got = deliver(
          l,
          todo[i]!.map((h) => h.e),
          stopMs,
        );
        for (const h of todo[i]!) {
          const id = toHex(h.e.id);
          const g = got.get(id) ?? { path: 'gossip' as const };
          last.set(`${i}:${id}`, g);
          if (l.eventStatus(h.e.id) !== undefined) {
            stored++;
            delivered[g.path]++;
          }
        }
      }
      all = union(); // a delivered void or applied event is served now too (it was already in the union)
      if (stored === 0) break;
    }

    // after: refusals (lacked, or held rejected, while another copy holds it applied or void) and verdict diffs
    const refusals: Refusal[] = [];
    const verdictDiffs: VerdictDiff[] = [];
    for (const [id, h] of all) {
      const st = ledgers.map((l) => l.eventStatus(h.e.id));
      const heldBy: Record<string, string> = {};
      st.forEach((s, j) => {
        if (s !== undefined) heldBy[copies[j]!.name] = s.status;
      });
      const served = st.some((s) => s?.status === 'applied' || s?.status === 'void');
      for (const [i, s] of st.entries()) {
        if (s !== undefined && s.status !== 'rejected') continue;
        if (!served) continue;
        const offer = last.get(`${i}:${id}`);
        const reason = s === undefined ? (offer?.dropped ?? 'not delivered') : (s.reason ?? 'rejected');
        refusals.push({
          id,
          kind: kindName(h.e),
          timestampMs: h.e.timestampMs,
          ageMs: stopMs - h.e.timestampMs,
          node: copies[i]!.name,
          reason,
          explanation: explain(reason),
          path: s === undefined ? (offer?.path ?? 'gossip') : 'held',
          heldBy,
        });
      }
      const kept = st.filter((s) => s !== undefined).map((s) => s!.status);
      if (new Set(kept).size > 1) verdictDiffs.push({ id, kind: kindName(h.e), timestampMs: h.e.timestampMs, verdicts: heldBy });
    }
    const convergedHashes: Record<string, string> = {};
    for (const [i, l] of ledgers.entries()) convergedHashes[copies[i]!.name] = l.stateHash();
    const hs = Object.values(convergedHashes);
    const raw = Object.values(rawHashes);
    return {
      rawHashes,
      rawEqual: raw.every((x) => x === raw[0]),
      replayPending,
      missing,
      rounds,
      delivered,
      convergedHashes,
      convergedEqual: hs.every((x) => x === hs[0]),
      refusals,
      verdictDiffs,
    };
  } finally {
    for (const l of ledgers) l.close();
  }
}
