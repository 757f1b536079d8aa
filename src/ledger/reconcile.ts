/**
 * Reconciliation policy, as pure functions: when a node may consider itself caught up with the network (and so
 * sign proofs with nonces it knows are unused), and which sync drops are a serving peer's fault.
 */

/** What a peer's ledger-status says, and ours. */
export interface StatusSummary {
  stateHash: string;
  events: number;
}

/**
 * True when an equal state hash with this peer means we hold the network's history. The empty ledger's hash is
 * public: equality on it proves nothing (a node restored from its mnemonic with a lost ledger.db would believe
 * it had used no nonce yet and re-sign used ones), unless this node founded the network, where empty is the truth.
 */
export function caughtUpWith(ours: StatusSummary & { replayPending: boolean }, theirs: StatusSummary, founder: boolean): boolean {
  if (ours.replayPending || ours.stateHash !== theirs.stateHash) return false;
  return theirs.events > 0 || founder;
}

/** Drops that only mean "not now" (admission filters), not garbage from the serving peer. */
export const NOT_GARBAGE: ReadonlySet<string> = new Set(['STALE', 'FUTURE', 'QUOTA']);

/** The reasons among `reasons` that are the serving peer's fault. */
export function garbageReasons(reasons: readonly (string | undefined)[]): string[] {
  return reasons.filter((r): r is string => r !== undefined && !NOT_GARBAGE.has(r));
}
