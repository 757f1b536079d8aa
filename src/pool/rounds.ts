/**
 * Which closed outer round a joiner's weights download takes, from the rounds its holders name (pure functions; the
 * holders' side of the rounds, what they keep and pin, is training/keep.ts).
 */
import { KEPT_ROUNDS } from '../params/index.js';

/**
 * The newest round that every holder asked keeps, from the rounds each keeps (one list per holder that answered);
 * undefined when there is none (no answer, or two holders keep no round in common: a joiner asks again).
 */
export function newestSharedRound(kept: readonly (readonly number[])[]): number | undefined {
  if (kept.length === 0) return undefined;
  let shared = new Set(kept[0]);
  for (const k of kept.slice(1)) {
    const s = new Set(k);
    shared = new Set([...shared].filter((r) => s.has(r)));
  }
  return shared.size === 0 ? undefined : Math.max(...shared);
}

/**
 * The rounds a holder keeps for certain, from the newest closed round it names (a checkpoint head names only that):
 * the window of KEPT_ROUNDS rounds ending at it (it may keep older, pinned rounds too).
 */
export function windowEndingAt(newest: number, window = KEPT_ROUNDS): number[] {
  return Array.from({ length: window }, (_, k) => newest - window + 1 + k);
}

