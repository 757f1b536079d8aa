/**
 * The outer round of DiLoCo as a pure state machine over plain data (no timers, no I/O: the caller passes the
 * clock's reading in, so tests drive it step by step and the network side only feeds it events).
 *
 *   inner       θ_start is fixed (its hash recorded); the node runs H inner steps (innerStepDone × H)
 *   collecting  Δ is sent; contributions from the layer's holders are received until either every holder has
 *               contributed or the deadline (startCollecting time + syncTimeoutMs) has passed
 *   closed      at the deadline with at least the quorum ⌈q·holders⌉ (≥ 1): the contributions received in time are
 *               aggregated; later ones are answered 'late' and left out, missing holders are listed
 *   abandoned   at the deadline below the quorum: no outer step, every holder goes back to θ_start
 *
 * A holder set is fixed when the round starts (the layer's holders at that boundary); a node that joins or
 * restarts enters at the next boundary (nextRound), so rounds never change membership midway.
 *
 * Holders still entering the rounds at the boundary (a joiner downloading its entry state, a restarted node) are
 * `waived` members: they listen to the round (the others send them their Δ) but do not contribute, the round does
 * not wait for them, and the quorum counts the others only. Every holder leaves a waived holder's Δ out (it is never
 * counted, whenever it arrives), so the holders' aggregates stay identical; the joiner aggregates the others' Δ as
 * they do and leaves its entry round with their state (training/sync.ts). A join then costs the members nothing.
 */
import { InvalidArgumentError } from '../util/errors.js';

export interface RoundConfig {
  /** H: inner steps per round. */
  innerSteps: number;
  /** Fraction of the holders whose contributions close a round at its deadline, in (0, 1]. */
  quorum: number;
  /** How long collecting may last before the round closes with what it has. */
  syncTimeoutMs: number;
}

export type RoundPhase = 'inner' | 'collecting' | 'closed' | 'abandoned';

export interface RoundState {
  round: number;
  phase: RoundPhase;
  innerStep: number;
  /** Hash of θ_start the holders agree on (hex), fixed at the start. */
  startHash: string;
  /** Holders of the layer for this round, sorted. */
  holders: string[];
  /** Holders that only listen this round (still entering at the boundary), sorted; a subset of holders. */
  waived: string[];
  /** When collecting started and when it ends (ms; null while inner). */
  collectStartMs: number | null;
  deadlineMs: number | null;
  /** Contributions received in time: holder id → arrival time (ms). */
  received: Record<string, number>;
  /** Holders that contributed late (after the close), recorded for the receipts. */
  late: string[];
}

export type ReceiveVerdict = 'accepted' | 'wrong_round' | 'not_holder' | 'duplicate' | 'late' | 'too_early';

export type CloseOutcome = { kind: 'open' } | { kind: 'closed'; included: string[]; missing: string[] } | { kind: 'abandoned'; included: string[]; missing: string[] };

export function checkRoundConfig(c: RoundConfig): void {
  if (!Number.isInteger(c.innerSteps) || c.innerSteps < 1) throw new InvalidArgumentError(`inner steps ${c.innerSteps} must be an integer ≥ 1`);
  if (!(c.quorum > 0 && c.quorum <= 1)) throw new InvalidArgumentError(`quorum ${c.quorum} must be in (0, 1]`);
  if (!Number.isFinite(c.syncTimeoutMs) || c.syncTimeoutMs < 0) throw new InvalidArgumentError(`sync timeout ${c.syncTimeoutMs} must be a finite number ≥ 0`);
}

/** Contributions needed to close at the deadline: ⌈q·holders⌉, at least 1. */
export function quorumSize(c: RoundConfig, holders: number): number {
  return Math.max(1, Math.ceil(c.quorum * holders - 1e-9));
}

export function startRound(c: RoundConfig, round: number, holders: readonly string[], startHash: string, waived: readonly string[] = []): RoundState {
  checkRoundConfig(c);
  if (!Number.isSafeInteger(round) || round < 0) throw new InvalidArgumentError(`round ${round} must be an integer ≥ 0`);
  const set = [...new Set(holders)].sort();
  if (set.length === 0) throw new InvalidArgumentError('a round needs at least one holder');
  const w = [...new Set(waived)].filter((h) => set.includes(h)).sort();
  return { round, phase: 'inner', innerStep: 0, startHash, holders: set, waived: w, collectStartMs: null, deadlineMs: null, received: {}, late: [] };
}

/** One inner step taken; after the H-th the round starts collecting at `nowMs`. */
export function innerStepDone(c: RoundConfig, s: RoundState, nowMs: number): RoundState {
  if (s.phase !== 'inner') throw new InvalidArgumentError(`round ${s.round}: inner step in phase ${s.phase}`);
  const innerStep = s.innerStep + 1;
  if (innerStep < c.innerSteps) return { ...s, innerStep };
  return { ...s, innerStep, phase: 'collecting', collectStartMs: nowMs, deadlineMs: nowMs + c.syncTimeoutMs };
}

/**
 * A contribution for `round` from `from` arrived at `nowMs`. Contributions may arrive while this node is still in
 * its inner steps (a faster holder): they are accepted then, counted when collecting.
 */
export function receive(s: RoundState, round: number, from: string, nowMs: number): { state: RoundState; verdict: ReceiveVerdict } {
  if (round !== s.round) return { state: s, verdict: round > s.round ? 'too_early' : 'wrong_round' };
  if (!s.holders.includes(from) || (s.waived ?? []).includes(from)) return { state: s, verdict: 'not_holder' };
  if (s.phase === 'closed' || s.phase === 'abandoned') {
    if (s.late.includes(from) || from in s.received) return { state: s, verdict: from in s.received ? 'duplicate' : 'late' };
    return { state: { ...s, late: [...s.late, from].sort() }, verdict: 'late' };
  }
  if (from in s.received) return { state: s, verdict: 'duplicate' };
  return { state: { ...s, received: { ...s.received, [from]: nowMs } }, verdict: 'accepted' };
}

/** Closes the round when everyone has contributed, or at the deadline (quorum or not). */
export function tryClose(c: RoundConfig, s: RoundState, nowMs: number): { state: RoundState; outcome: CloseOutcome } {
  if (s.phase !== 'collecting') return { state: s, outcome: { kind: 'open' } };
  const waived = s.waived ?? [];
  const waited = s.holders.filter((h) => !waived.includes(h));
  const included = waited.filter((h) => h in s.received);
  const missing = waited.filter((h) => !(h in s.received));
  if (missing.length > 0 && nowMs < s.deadlineMs!) return { state: s, outcome: { kind: 'open' } };
  if (included.length >= quorumSize(c, waited.length)) return { state: { ...s, phase: 'closed' }, outcome: { kind: 'closed', included, missing } };
  return { state: { ...s, phase: 'abandoned' }, outcome: { kind: 'abandoned', included, missing } };
}

/**
 * A member says it no longer trains this layer (the pool moved its span: its `not_held` answer to our Δ, or its status
 * listing other layers): the round stops waiting for it, as for a waived member, unless its Δ is already in (then it
 * counts, as on the holders that received it before it left). Its later Δ is refused like a waived member's.
 */
export function release(s: RoundState, member: string): RoundState {
  if (!s.holders.includes(member) || s.waived.includes(member) || member in s.received) return s;
  if (s.phase === 'closed' || s.phase === 'abandoned') return s;
  return { ...s, waived: [...s.waived, member].sort() };
}

/**
 * A holder the round waived at its start from what was known then (last seen entering the rounds, or not heard from)
 * shows that it is a member of this round in its own view: its status says it entered at an earlier round, or its Δ
 * for this round came (a holder sends one only for a round it is a member of). The round waits for it and counts its
 * Δ, as it counts itself (sync.ts OuterSync.admit). Only while the round is open; a released member is not admitted
 * (the caller admits only holders it waived at the start).
 */
export function admit(s: RoundState, member: string): RoundState {
  if (!s.holders.includes(member) || !s.waived.includes(member)) return s;
  if (s.phase === 'closed' || s.phase === 'abandoned') return s;
  return { ...s, waived: s.waived.filter((h) => h !== member) };
}

/** The next round, from a closed or abandoned one, with the holders and θ_start hash at the boundary. */
export function nextRound(c: RoundConfig, s: RoundState, holders: readonly string[], startHash: string, waived: readonly string[] = []): RoundState {
  if (s.phase !== 'closed' && s.phase !== 'abandoned') throw new InvalidArgumentError(`round ${s.round} is still ${s.phase}`);
  return startRound(c, s.round + 1, holders, startHash, waived);
}

/** Round labels past this are ignored when skipping forward (a peer's status cannot push a holder to unsafe integers). */
export const MAX_ROUND = 2 ** 48;

/**
 * The number of the round a holder begins after closing round `closed`, given the rounds that the holders of its
 * layers (members in the rounds, heard from at this boundary) stand at: `closed + 1`, or, when one stands two or more
 * further on (round R), R. Round numbers are labels that every check compares alike; nothing but this ties the
 * numbers of two groups of layers that share no holder, so they drift apart while no node holds layers of both (a
 * whole-model trainer killed or cut off between two half holders). A holder that sees a holder of one of its layers
 * further on skips forward at the next boundary; numbers only move forward, and a node that holds layers of several
 * groups carries the newest number from one group to the next (docs/TRAINING.md "Round numbers are tied across
 * layer groups").
 *
 * R, not R + 1 (the eleventh session's rule, twelfth session): a skip to R + 1 put the skipper one ahead of the
 * holder it followed, so a third holder still closing R − 1 saw it two ahead and skipped to R + 2, and so on: with
 * three 2-stage chains after a pool move every holder skipped three numbers at every boundary (integration
 * outer-move). Skipping to a number some holder already stands at never raises the largest number, so skips cannot
 * chase each other. R + 1 had been chosen for two stages of one chain, which skipped at the same boundary from
 * reads of a third holder on either side of its boundary (R and R + 1) and stayed one apart; the stages of a chain
 * now begin one number by a handshake of their own (sync.ts chainNext). The holder at R may already be collecting it
 * and waits for our Δ of R (a round's steps, within its deadline); the round R − 1 we skip is not waited for by
 * anyone: a member whose status stands past a round is released from it (sync.ts askMissing).
 */
export function nextRoundNumber(closed: number, peerRounds: readonly number[]): number {
  let next = closed + 1;
  for (const r of peerRounds) if (Number.isSafeInteger(r) && r > closed + 1 && r < MAX_ROUND && r > next) next = r;
  return next;
}

/**
 * What a holder in round `current` (−1: still entering) does with a contribution for `round` before decoding it:
 * the round before (a slow holder), this one and the next (a fast one) are taken; a round further ahead is answered
 * too_early (the sender retries until its deadline; nothing is kept), and so is everything while entering; any past
 * round is answered wrong_round. Neither costs the sender anything:
 *   - a holder keeps sending its Δ to a joiner that is still entering (answered too_early) until its deadline, and
 *     the joiner may enter rounds later (an honest race; penalising it got the holders banned by the joiner);
 *   - a holder of the layer (`fromHolder`: the receiver's view lists it) may stand any number of rounds ahead
 *     honestly: round numbers skip forward (nextRoundNumber), and after a partition the side that went on is ahead
 *     until the other's next boundary. A round more than `kept` ahead from a holder was refused with 20 points per
 *     layer: a whole-model holder ahead of a half holder lost 60 per round and could be banned before the half holder
 *     skipped forward to its number.
 * Only a round further ahead than `kept` from a sender that holds no such layer in our view is refused (its sender
 * penalised): nobody's numbers justify it.
 */
export function contributionRoundCheck(round: number, current: number, kept: number, fromHolder: boolean): 'take' | 'too_early' | 'wrong_round' | 'refuse' {
  if (current < 0) return 'too_early';
  if (round > current + kept && !fromHolder) return 'refuse';
  if (round > current + 1) return 'too_early';
  if (round < current - 1) return 'wrong_round';
  return 'take';
}

/**
 * What a stage of a pipeline chain publishes at each of its round boundaries (its status's `chain`): the id of the
 * chain step it closed its round after (the driver's step counter, which every hop sees in the step's ops), and the
 * number of the round it begins next: a hop's proposal (nextRoundNumber over its own layers' members), a driver's
 * decision (the largest of its own proposal and its hops' for the same step).
 */
export interface ChainBoundary {
  step: number;
  next: number;
  drives: boolean;
  /**
   * Whose step counter `step` counts: a driver's own id; a hop's, the driver of the step it closed after (absent from
   * older nodes). A hop that another driver took over published its last boundary under its previous driver's ids,
   * which say nothing of the new driver's: read as if they did, a coincidence of numbers made the new driver wait
   * for a hop that was not closing (partnerAt).
   */
  driver?: string;
}

/**
 * What a reader at its boundary knows of its own chain steps (sync.ts chainNext): `ids`, whose counter its step
 * counts (a driver: itself; a hop: the driver of its last step); `appliedAfter(id)`, how many steps it applied with
 * an id after `id` (./applied-steps.ts; undefined when it does not know). Without them, ids are read as steps.
 */
export interface ChainReader {
  ids?: string;
  appliedAfter?(id: number): number | undefined;
}

/**
 * Where a chain partner stands, from its last published boundary, when we are at our boundary after chain step
 * `step` (`h`: inner steps per round):
 *   at       it published this very step: its proposal (from a hop) or its decision (from our driver) is in
 *   coming   we applied exactly one round of steps (h) since its last boundary: its rounds end with ours, it is still
 *            closing this one (no chain step can pass while we are paused, so it reaches this step's boundary,
 *            nothing later)
 *   apart    anything else: its rounds end after other steps (a hop that entered the rounds while its driver was
 *            mid-round, a step a hop applied but whose acknowledgement its driver lost), its boundary counts another
 *            driver's ids, or it published nothing yet
 * The steps since its boundary are the steps we applied (`r.appliedAfter`), not the ids: a NaN-skipped step takes an
 * id that nobody applies, and the partner, which counts applied steps, closes one id later per skip. Read as ids
 * (before session 21), a partner whose boundary was h ids back but one skip short was 'coming': we waited for it to
 * chainNext's bound while it waited for our next step.
 */
export function partnerAt(step: number, h: number, theirs: ChainBoundary | undefined, r: ChainReader = {}): 'at' | 'coming' | 'apart' {
  if (theirs === undefined) return 'apart';
  if (r.ids !== undefined && theirs.driver !== undefined && theirs.driver !== r.ids) return 'apart';
  if (theirs.step === step) return 'at';
  if (theirs.step > step) return 'apart';
  const k = r.appliedAfter?.(theirs.step) ?? step - theirs.step;
  return k === h ? 'coming' : 'apart';
}

/**
 * A hop whose rounds end `apart` from its driver's (whose last boundary was after step `driverStep` < `step`, its
 * next after h more applied steps): the steps of the hop's next round, so that it ends after the driver's next
 * boundary step (1..h), or h when the driver's boundary is not in reach (its last one is older than a round: it is
 * not closing rounds in this chain, or it published a step past ours). The steps since the driver's boundary are the
 * ones we applied (`r.appliedAfter`: a skipped id is no step), else the ids.
 */
export function stepsToAlign(step: number, h: number, driverStep: number, r: ChainReader = {}): number {
  const k = h - (r.appliedAfter?.(driverStep) ?? step - driverStep);
  return k >= 1 && k <= h ? k : h;
}
