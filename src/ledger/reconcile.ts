/**
 * Reconciliation policy, as pure functions: when a node may consider itself caught up with the network (and so
 * sign proofs with nonces it knows are unused), which sync drops are a serving peer's fault, and how node/ledger.ts
 * queues, retries and decides its reconciliations with peers.
 */
import { orderKey } from './events.js';
import { STATE_REASONS } from './reasons.js';

/** What a peer's ledger-status says, and ours. */
export interface StatusSummary {
  stateHash: string;
  events: number;
}

/**
 * The events a ledger holds that every peer holding the same history holds too: applied and void ones (what sync
 * serves). Rejected events are not: a node keeps its own event that a rewind rejected (an earlier conflicting one
 * arrived later: two validators slashing the same fraud a few ms apart), while its peers dropped that event at
 * admission and never stored it (issue 11 attack 5). So `applied + rejected + void` depends on arrival order and
 * differs between ledgers with equal state hashes (which leave the rejected counter out, state.ts); counts compared
 * across nodes (the ledger-status RPC, "does the peer know more than we do") must be this one. Equal state hashes
 * imply equal served counts (both counters are in the hashed totals row).
 */
export function servedEvents(t: { applied: number; void: number }): number {
  return t.applied + t.void;
}

/**
 * True when an equal state hash with this peer means we hold what the network holds: equal hashes and no replay
 * pending on our side (a hash with a replay pending is not final).
 *
 * The empty ledger's hash is public, so on an empty peer this proves little: a node restored from its mnemonic
 * with a lost ledger.db, meeting only empty peers, may sign nonces its key used before. That is no longer harmful:
 * equivocation is first-wins (apply.ts), so such a proof is void at its own place and its key's past proofs and
 * the payments they funded stand; the node learns its used nonces at its first sync with a peer that holds them
 * (its hash differs, so it syncs). Refusing the empty hash outright would keep every node of a brand-new network
 * from proving until the founder did, and the founder, with peers, from proving at all.
 */
export function caughtUpWith(ours: StatusSummary & { replayPending: boolean }, theirs: StatusSummary): boolean {
  return !ours.replayPending && ours.stateHash === theirs.stateHash;
}

/**
 * Drops that only mean "not now" (admission filters) or "not on our state" (state rules at the event's place, which
 * the peer's ledger may pass: it may hold events ours lacks), not garbage from the serving peer.
 */
export const NOT_GARBAGE: ReadonlySet<string> = new Set(['STALE', 'FUTURE', 'QUOTA', 'FINALIZED', ...STATE_REASONS]);

/** The reasons among `reasons` that are the serving peer's fault. */
export function garbageReasons(reasons: readonly (string | undefined)[]): string[] {
  return reasons.filter((r): r is string => r !== undefined && !NOT_GARBAGE.has(r));
}

/**
 * Issue 11 item 6: the nonce of our next proof. Proofs are one per 60 s window, so a nonce at least the window's
 * epoch is one this key never signed before, even when the node lost its ledger.db and met only peers that know
 * nothing of it (the empty ledger's hash is public, so an equal hash proves nothing): its past proofs carry their
 * own, earlier epochs (or, from older software, small sequential nonces). The local ledger and what peers report
 * (ledger-account) only ever raise it.
 */
export function proofNonce(localNext: bigint, reportedNext: bigint, epoch: number): bigint {
  let n = BigInt(Math.max(0, epoch));
  if (localNext > n) n = localNext;
  if (reportedNext > n) n = reportedNext;
  return n;
}

/**
 * The last window we may not prove in: the latest proof epoch of our key that we or a peer know of, and at least
 * the window the node started in (a node restored within a minute of its last proof, which no peer reported yet,
 * would otherwise sign a second proof in that window with its nonce).
 */
export function provenThrough(localLastEpoch: number, reportedLastEpoch: number, startEpoch: number): number {
  return Math.max(localLastEpoch, reportedLastEpoch, startEpoch);
}

/**
 * The epoch of the latest proof `address` signed among history entries (Ledger.history's, newest first), or -1:
 * what a restarted node reads before it proves again (issue 11 item 6).
 */
export function lastProofEpochIn(history: readonly Record<string, unknown>[], address: string): number {
  for (const h of history) {
    if (h.kind === 'proof' && h.from === address && typeof h.epoch === 'number') return h.epoch;
  }
  return -1;
}

/** How a node reconciles with a peer: `full` syncs from our cursor (or the start), `tail` only recent events. */
export type ReconcileMode = 'full' | 'tail';

/** A queued reconciliation: its mode and how many times it failed on an unavailable peer. */
export interface ReconcileJob {
  mode: ReconcileMode;
  attempt: number;
}

/** Times a reconciliation with a peer whose ledger is not serving yet is tried (it connected before its ledger started). */
export const MAX_RECONCILE_ATTEMPTS = 3;

/**
 * The job queued for a peer once `next` is asked for, given the one queued already (`prev`): a full reconciliation
 * covers a tail one, so a tail request never replaces a queued job and a full one replaces a queued tail. Undefined:
 * keep `prev` as it is.
 */
export function mergeReconcileJob(prev: ReconcileJob | undefined, next: ReconcileJob): ReconcileJob | undefined {
  if (prev === undefined || (prev.mode === 'tail' && next.mode === 'full')) return next;
  return undefined;
}

/**
 * Milliseconds before a failed reconciliation is tried again, or undefined for none: only a peer that is not
 * serving yet (`unavailable`) is asked again, with a doubling delay from 500 ms, MAX_RECONCILE_ATTEMPTS times in all.
 */
export function reconcileRetryMs(unavailable: boolean, attempt: number): number | undefined {
  return unavailable && attempt + 1 < MAX_RECONCILE_ATTEMPTS ? 500 * 2 ** attempt : undefined;
}

/**
 * What to do once a peer's ledger-status is in: `caught-up` (equal and final), `wait` (equal hashes, but a replay is
 * pending here: ask again at the next round, the hash is not final yet), or `sync`.
 */
export function reconcileAction(ours: StatusSummary & { replayPending: boolean }, theirs: StatusSummary): 'caught-up' | 'wait' | 'sync' {
  if (caughtUpWith(ours, theirs)) return 'caught-up';
  if (theirs.stateHash === ours.stateHash) return 'wait';
  return 'sync';
}

/**
 * After a tail sync, the peer's status again: `caught-up` when equal, or when the peer holds no more served events
 * than we do (the difference is on its side, and it syncs from us); else `full`: the peer knows more and the
 * difference is older than the tail.
 */
export function afterTailSync(ours: StatusSummary & { replayPending: boolean }, theirs: StatusSummary): 'caught-up' | 'full' {
  return caughtUpWith(ours, theirs) || theirs.events <= ours.events ? 'caught-up' : 'full';
}

/** Where a tail sync starts: the order key of the first possible event `tailMs` (ledger time) before `nowMs`. */
export function tailSyncStart(nowMs: number, tailMs: number): Uint8Array {
  return orderKey(Math.max(0, nowMs - tailMs), ZERO_ID);
}

const ZERO_ID = new Uint8Array(32);

/** A founding node that has nobody to sync from yet: it may prove (and mint the genesis allocation) alone. */
export function aloneFounder(genesis: boolean, syncPeers: number, connectedPeers: number): boolean {
  return genesis && syncPeers === 0 && connectedPeers === 0;
}

/**
 * Whether our own proofs may start (issue 11 item 6): once caught up with a peer, after asking peers what they know
 * of our key (`ask` first: an equal hash proves little, the empty ledger's is public), or as a founder alone.
 */
export function proofGate(s: { caughtUp: boolean; asked: boolean; alone: boolean }): 'prove' | 'ask' | 'wait' {
  if (s.caughtUp && !s.asked && !s.alone) return 'ask';
  return s.caughtUp || s.alone ? 'prove' : 'wait';
}

/** What peers reported of our key (ledger-account), raised by one more answer: the highest of each. */
export function raiseReported(r: { nextNonce: bigint; lastEpoch: number }, answer: { nextProofNonce: bigint; lastEpoch: number }): { nextNonce: bigint; lastEpoch: number } {
  return { nextNonce: answer.nextProofNonce > r.nextNonce ? answer.nextProofNonce : r.nextNonce, lastEpoch: Math.max(r.lastEpoch, answer.lastEpoch) };
}
