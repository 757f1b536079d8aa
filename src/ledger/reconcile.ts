/**
 * Reconciliation policy, as pure functions: when a node may consider itself caught up with the network (and so
 * sign proofs with nonces it knows are unused), and which sync drops are a serving peer's fault.
 */
import { STATE_REASONS } from './reasons.js';

/** What a peer's ledger-status says, and ours. */
export interface StatusSummary {
  stateHash: string;
  events: number;
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
