/**
 * Which closed outer rounds a holder keeps, and which round a joiner takes (pure functions over plain data; the
 * outer sync (./sync.ts) and the weights download (pool/transfer.ts) call them).
 *
 * A holder keeps the state after its last KEPT_ROUNDS closed rounds: the hash exchange and joiners need them. With
 * short rounds (H = 2 on loopback closed a round every 2-3 s) a round left that window before a joiner's download of
 * it finished, and the joiner retried forever ("holders of layer 0 do not agree on its hash after round N"). So a
 * joiner **pins** the round it downloads on each holder it takes it from (a checkpoint request naming a round pins
 * it for the requester): the holder keeps a pinned round past the window until the pin expires.
 *
 * Pins are attacker-reachable state (each kept round is a snapshot of the held span's weights), so they have quotas:
 * at most PIN_LIMITS.perPeer live pins per peer (a new one replaces the peer's oldest), each lives PIN_LIMITS.ms after
 * its last renewal and at most PIN_LIMITS.capMs after it was made, only a round still inside the window can be
 * newly pinned (a pin cannot be handed on to keep a round forever), at most PIN_LIMITS.maxPins pins are held in all
 * (a new one replaces the oldest pin that does not alone keep a round), and of the pinned rounds that have left the window only the newest
 * PIN_LIMITS.maxRounds are kept. A holder therefore keeps at most KEPT_ROUNDS + maxRounds snapshots.
 *
 * Why the distinct-rounds quota applies when a round leaves the window and not when it is pinned (session 22): a pin
 * on a round inside the window costs nothing then (the round is kept anyway). Refusing new pins once maxRounds
 * distinct rounds were pinned let two fresh keys that pinned the window's four rounds and renewed them refuse every
 * joiner's pin on the newest round for the pins' 5-minute cap (test/attacks/round-pins). Now every pin inside the
 * window is granted, and a squatter's older rounds are the ones dropped when newer pinned rounds leave the window.
 */

import { KEPT_ROUNDS } from '../params/index.js';

export { KEPT_ROUNDS };

export interface PinLimits {
  /** Live pins one peer may hold; a new one replaces its oldest. */
  perPeer: number;
  /** How long a pin lives after it was made or last renewed (ms). */
  ms: number;
  /** Longest a pin lives after it was made, however often renewed (ms). */
  capMs: number;
  /** Pinned rounds kept past the window (the newest of them), across all peers. */
  maxRounds: number;
  /** Live pins held in all, across all peers (a new one replaces the oldest): a million fresh keys cost this many entries. */
  maxPins: number;
}

export const PIN_LIMITS: PinLimits = { perPeer: 2, ms: 60_000, capMs: 300_000, maxRounds: 4, maxPins: 256 };

/** A peer's pin on a closed round. */
export interface RoundPin {
  peer: string;
  round: number;
  /** When it was made (ms). */
  since: number;
  /** When it expires (ms). */
  until: number;
}

/** The pins still alive at `now`. */
export function livePins(pins: readonly RoundPin[], now: number): RoundPin[] {
  return pins.filter((p) => p.until > now);
}

/**
 * The closed rounds to keep (ascending): the newest `window` of `closed`, and the newest `maxRounds` of the older ones
 * that a live pin names.
 */
export function roundsToKeep(closed: readonly number[], pins: readonly RoundPin[], now: number, window = KEPT_ROUNDS, maxRounds = PIN_LIMITS.maxRounds): number[] {
  const sorted = [...new Set(closed)].sort((a, b) => a - b);
  const newest = new Set(sorted.slice(-window));
  const pinned = new Set(livePins(pins, now).map((p) => p.round));
  const older = new Set(sorted.filter((r) => !newest.has(r) && pinned.has(r)).slice(-maxRounds));
  return sorted.filter((r) => newest.has(r) || older.has(r));
}

/**
 * `peer` pins `round` (it is downloading its weights). `closed`: the rounds the holder keeps now (ascending or not).
 * An existing pin of that peer on that round is renewed (up to its cap); a new pin needs the round inside the window,
 * replaces the peer's oldest pin when it has PIN_LIMITS.perPeer, and, when maxPins are held, the oldest pin that
 * does not alone keep a round (refused when every pin does).
 * Returns the new pin list (expired pins dropped) and whether the round is pinned for the peer now. A pinned round is
 * kept past the window while it is among the newest maxRounds pinned rounds there (roundsToKeep).
 */
export function pinRound(
  pins: readonly RoundPin[],
  peer: string,
  round: number,
  closed: readonly number[],
  now: number,
  limits: PinLimits = PIN_LIMITS,
  window = KEPT_ROUNDS,
): { pins: RoundPin[]; pinned: boolean } {
  const live = livePins(pins, now);
  const i = live.findIndex((p) => p.peer === peer && p.round === round);
  if (i >= 0) {
    const p = live[i]!;
    const until = Math.min(now + limits.ms, p.since + limits.capMs);
    if (until <= now) return { pins: live.filter((_, k) => k !== i), pinned: false };
    live[i] = { ...p, until };
    return { pins: live, pinned: true };
  }
  const inWindow = [...new Set(closed)].sort((a, b) => a - b).slice(-window);
  if (!inWindow.includes(round)) return { pins: live, pinned: false };
  let out = live;
  const own = live.filter((p) => p.peer === peer).sort((a, b) => a.since - b.since);
  if (own.length >= limits.perPeer) {
    const drop = new Set(own.slice(0, own.length - limits.perPeer + 1));
    out = live.filter((p) => !drop.has(p));
  }
  if (out.length >= limits.maxPins) {
    // Replace the oldest pin that protects nothing alone: its round is named by another live pin too, or is not kept
    // anyway. Replacing the oldest pin outright let maxPins fresh keys a round (one request each) push out a slow
    // joiner's pin, whose round had left the window and could not be pinned again (review, session 23:
    // test/attacks/round-pins-flood, 26 of 30 joiners lost their round). Only rounds in the window can be newly
    // pinned, so at most KEPT_ROUNDS + maxRounds pins protect a round alone and a replaceable pin nearly always exists;
    // when none does, the new pin is refused.
    const kept = new Set(roundsToKeep(closed, out, now, window, limits.maxRounds));
    const named = new Map<number, number>();
    for (const p of out) named.set(p.round, (named.get(p.round) ?? 0) + 1);
    const byAge = [...out].sort((a, b) => a.since - b.since);
    const gone = new Set<RoundPin>();
    for (const p of byAge) {
      if (out.length - gone.size < limits.maxPins) break;
      if ((named.get(p.round) ?? 0) > 1 || !kept.has(p.round)) {
        gone.add(p);
        named.set(p.round, (named.get(p.round) ?? 0) - 1);
      }
    }
    if (out.length - gone.size >= limits.maxPins) return { pins: live, pinned: false };
    out = out.filter((p) => !gone.has(p));
  }
  return { pins: [...out, { peer, round, since: now, until: now + Math.min(limits.ms, limits.capMs) }], pinned: true };
}

/** A holder's answer to the training-status RPC, as far as a joiner's choice of entry round uses it. */
export interface EntryView {
  /** The round it is in (−1: not in the rounds yet). */
  round: number;
  /** Still entering the rounds itself (a joiner too: it cannot say whom the rounds count). */
  entering: boolean;
  /** Holders counted in its current round. */
  members: readonly string[];
  /** The closed rounds whose state it keeps. */
  closed: readonly number[];
}

/**
 * The round a joiner (`self`) enters (round r: with the state after round r − 1), from the holders' statuses; undefined:
 * not yet (ask again at the next boundary).
 *
 * It enters only at a round that **every** holder in the rounds counts it in: a holder that began its round before
 * it saw the joiner neither sends it its Δ nor waits for it, so a joiner entering there would aggregate without that
 * Δ and leave its entry round with another state. It takes the newest round a holder is in (the others are a round
 * behind and will count it in that one too: every holder names the joiner `entered` there and waives it), and needs a
 * holder that keeps the state after the round before (to download it).
 */
export function sequenceToJoin(self: string, holders: readonly EntryView[], fallback?: { quorum: number }): number | undefined {
  const inRounds = holders.filter((h) => h.round >= 0 && !h.entering);
  if (inRounds.length === 0) return undefined;
  let counting = inRounds;
  if (!inRounds.every((h) => h.members.includes(self))) {
    // a holder that never counts the joiner (its view does not list it) would stall the entry until its deadline.
    // After waiting (the caller's `fallback`), enter with the holders that count it when they are a quorum of the
    // holders in the rounds: the entry round's state comes from the members' hash vote (a listener takes theirs), and
    // later rounds' differences from that holder's aggregate (it neither sends us its Δ nor counts ours) are settled
    // by the same vote, which the quorum lets the counting holders win
    if (fallback === undefined) return undefined;
    counting = inRounds.filter((h) => h.members.includes(self));
    if (counting.length === 0 || counting.length < Math.ceil(fallback.quorum * inRounds.length - 1e-9)) return undefined;
  }
  const target = Math.max(...counting.map((h) => h.round));
  if (!inRounds.some((h) => h.closed.includes(target - 1))) return undefined;
  return target;
}

/** A holder's closed rounds, as a joiner's per-layer choice of entry state reads them (its status's `closed`). */
export interface ClosedView {
  round: number;
  /** Layer id → state hash after the round. */
  hashes: Readonly<Record<string, string>>;
}

/**
 * The state a joiner takes for `layer` when it enters round `before + 1`: the newest closed round ≤ `before` of which
 * the layer's holders (`holders`: their kept closed rounds) report a state hash, and the hash most of those holders
 * report for it (ties: the smallest), with the holders that report it (download sources). Undefined: no holder of the
 * layer keeps a closed round ≤ `before`.
 *
 * Per layer, not one round for all: the holders of different layers may stand at different round numbers (groups of
 * layers that share no holder number their rounds apart until a node in both ties them; ./rounds.ts nextRoundNumber).
 * A joiner that needed one round every layer's holders had closed found none once two groups had drifted apart, and
 * retried for good (the chaos run's restarted whole-model trainer). A layer whose group is behind the entry round
 * gets that group's newest agreed state; the group skips forward to the joiner's number at its next boundary, and
 * the joiner, which only listens to its entry round, takes the group's state in that round's hash vote.
 */
export function layerEntryState(layer: string, before: number, holders: ReadonlyMap<string, readonly ClosedView[]>): { round: number; hash: string; sources: string[] } | undefined {
  let newest: number | undefined;
  for (const closed of holders.values()) for (const c of closed) if (c.round <= before && c.hashes[layer] !== undefined && (newest === undefined || c.round > newest)) newest = c.round;
  if (newest === undefined) return undefined;
  const byHash = new Map<string, string[]>();
  for (const [p, closed] of holders) {
    const h = closed.find((c) => c.round === newest)?.hashes[layer];
    if (h !== undefined) byHash.set(h, [...(byHash.get(h) ?? []), p]);
  }
  let best: string | undefined;
  for (const [h, ps] of byHash) if (best === undefined || ps.length > byHash.get(best)!.length || (ps.length === byHash.get(best)!.length && h < best)) best = h;
  return { round: newest, hash: best!, sources: byHash.get(best!)! };
}
