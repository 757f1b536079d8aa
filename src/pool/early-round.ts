/**
 * When the layer pool runs a planning round before its tick (pure; pool/service.ts acts on it). A holder's death (the
 * liveness `peer:dead` event: a signed leaving heartbeat, or `peerDeadMs` of silence) asks for a round soon, so that
 * its layers are re-covered without waiting out the tick. Asks are coalesced: a round runs `gapMs` after the first
 * ask of a burst (the leave has spread by gossip to the other nodes by then, and every death of the burst is in the
 * one view), a burst asks for one round however many deaths it holds, and two early rounds are at least `gapMs`
 * apart. A flood of deaths (many peers leaving at once, churn) so costs at most one early round per `gapMs`.
 */

/** Default gap (ms) between a death and the early round it asks for, and between two early rounds. */
export const EARLY_ROUND_MS = 2_000;

export interface EarlyRoundState {
  /** When the last early round ran (clock ms); undefined: none yet. */
  lastMs: number | undefined;
  /** When the early round already asked for will run; undefined: none is due. */
  dueMs: number | undefined;
}

/**
 * When an ask at `nowMs` should run a round: `gapMs` from now and from the last early round, or undefined when a round
 * already asked for is due (the ask joins it).
 */
export function earlyRoundAt(state: EarlyRoundState, nowMs: number, gapMs: number): number | undefined {
  if (state.dueMs !== undefined) return undefined;
  return Math.max(nowMs + gapMs, state.lastMs === undefined ? -Infinity : state.lastMs + gapMs);
}
