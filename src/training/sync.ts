/**
 * DiLoCo between the holders of each layer, over an injected transport (the network side lives in
 * protocols/training-sync.ts and node/diloco.ts; this file decides, it moves no bytes itself):
 *
 *   enter()        before the first inner step: a node that finds holders already past a round boundary (a joiner,
 *                  a restarted node) waits for a boundary whose round counts it as a member, downloads every held
 *                  layer's state (θ and the outer momentum) from holders (per layer the newest closed round before
 *                  that its holders keep: layer groups may stand at different numbers), verifies it against the
 *                  state hash most of them report, installs it and starts that round
 *   innerStep()    one inner step taken (the caller's trainer: SoloTrainer in the worker, or a pipeline stage)
 *   closeRound()   after H inner steps: per layer Δ = θ_start − θ, compressed with error feedback, signed by the
 *                  transport, sent to the layer's other holders (retried while they are still in their inner steps);
 *                  contributions are collected (rounds.ts) until every holder has contributed or the deadline, the
 *                  round closes with the quorum ⌈q·holders⌉ (else it is abandoned: θ_start), the contributions
 *                  received in time are aggregated (--aggregator) and the outer Nesterov step is applied from
 *                  θ_start; then the holders exchange per-layer state hashes, and a holder whose hash is not the
 *                  one most holders report (a late contribution it counted and they did not) downloads the
 *                  majority's state and verifies it: every holder of a layer leaves the round with bit-identical
 *                  weights and momentum; the next round's number is one more, or a holder's of our layers that
 *                  stands further on (rounds.ts nextRoundNumber: numbers are labels, tied across layer groups)
 *   receive()      a decoded, signature-checked contribution from a peer (the transport validated the envelope)
 *
 * Layers held alone (no other live holder) keep θ_local at the boundary: a lone node trains as a solo trainer
 * does (a one-node chain needs no outer step), and its state is what a joiner downloads.
 *
 * The hash vote (./vote.ts): the hash most of the layer's voters hold wins; a tie among holders that began the round
 * from one state sends the layer back to it on every holder; other ties go to the smallest tied hash. Voters are the
 * round's holders in our view and the holders that most of those name as their round's members (views that exclude
 * each other decide on one voter set); a holder that cannot take the winner's state reports the layer `diverged`.
 */
import { createHash } from 'node:crypto';
import type { ParamLayout } from '../model/layout.js';
import { deadlineLink, linkSignals } from '../util/abort.js';
import { setMaxListeners } from 'node:events';
import type { Clock } from '../util/clock.js';
import { AbortedError, errorMessage, InvalidArgumentError, NeuroShardError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { aggregate, type AggregationRecord, type AggregatorName } from './aggregation/index.js';
import type { CompressionKind } from './compression/index.js';
import { DiLoCoNode, type LayerRange } from './diloco.js';
import { KEPT_ROUNDS, layerEntryState, pinRound, roundsToKeep, sequenceToJoin, type ClosedView, type RoundPin } from './keep.js';
import { entryPeers, layerMembers, missingMembers, notTrainedFromStatus } from './membership.js';
import type { TrainStepper } from './loop.js';
import type { TrainStepResult } from './trainer.js';
import type { Batch } from './types.js';
import type { ChainPosition } from './inner.js';
import { voteOutcome, type VoteOutcome } from './vote.js';
import { admit, innerStepDone, MAX_ROUND, nextRoundNumber, partnerAt, receive as roundReceive, release, startRound, stepsToAlign, tryClose, type ChainBoundary, type RoundConfig, type RoundState } from './rounds.js';

/** What the inner loop must offer the outer sync: its held parameters as one flat buffer (ParamLayout order). */
export interface InnerParams {
  getParams(): Promise<Float32Array>;
  setParams(params: Float32Array): Promise<void>;
}

/** What a peer answers about its training (the status RPC). */
export interface PeerTrainingStatus {
  /** The round it is in (−1 before it entered). */
  round: number;
  phase: 'entering' | 'inner' | 'collecting';
  /** Holders counted in its current round (any layer). */
  members: string[];
  /** State hashes of its last closed rounds (newest last, at most STATUS_HISTORY). */
  closed: { round: number; hashes: Record<string, string> }[];
  /** The round it entered the outer rounds at (0: it started them); absent before it entered, and from older nodes. */
  entered?: number;
  /**
   * The layers it trains in the rounds (its span's layer ids); absent from older nodes. A holder the pool moved says
   * here that it left our layers before the view knows (./membership.ts).
   */
  layers?: string[];
  /**
   * A chain stage's last round boundary (./rounds.ts ChainBoundary): the chain step it closed after and the number
   * it begins next (a hop's proposal, a driver's decision). Absent on a node that trains alone, and from older nodes.
   */
  chain?: ChainBoundary;
  /**
   * Inner steps it counted since it started (every step of every round): a member whose Δ we wait for shows here
   * whether it still steps (OuterSync.askMissing). Absent from older nodes.
   */
  steps?: number;
}

export interface LayerState {
  theta: Float32Array;
  /** Outer momentum buffer; null before the first outer step that used it. */
  buf: Float32Array | null;
}

/** `not_held`: the receiver does not train that layer (it moved away, or never held it): the sender stops waiting for it. */
export type SendVerdict = 'accepted' | 'duplicate' | 'too_early' | 'late' | 'wrong_round' | 'not_holder' | 'not_held' | 'rejected';

export interface SyncTransport {
  /** Signs and sends our contribution for (round, layer) to `peer`; the peer's verdict (throws on transport errors). */
  send(peer: string, c: { round: number; layer: string; compression: CompressionKind; n: number; payload: Uint8Array }, signal: AbortSignal): Promise<SendVerdict>;
  status(peer: string, signal: AbortSignal): Promise<PeerTrainingStatus>;
  /** The state of `layer` after round `round` as `peer` holds it (verified by the caller). */
  fetchLayer(peer: string, round: number, layer: string, signal: AbortSignal): Promise<LayerState>;
}

export interface OuterSyncOptions {
  self: string;
  layout: ParamLayout;
  inner: InnerParams;
  round: RoundConfig;
  aggregator: AggregatorName;
  compress: CompressionKind;
  outerLr: number;
  outerMomentum: number;
  /** Live holders of a layer id ('embed', 'layers.<i>', 'head'), ourselves included (the layer pool's view). */
  holders: (layer: string) => string[];
  transport: SyncTransport;
  clock: Clock;
  log?: Logger;
  /** Polling period while waiting for peers (ms). Default 250. */
  pollMs?: number;
  /**
   * Called once per closed round, after the hash vote and before the next round begins (status() then lists the
   * round's agreed hashes): the node builds and co-signs the round's training record here (node/training-receipts.ts).
   */
  onClosed?: (r: LastRoundReport) => void;
  /**
   * Gauntlet over the network (`--aggregator gauntlet`): the loss of our layout's flat parameters on the held-out
   * batch of `round`. Each holder scores every contribution to a layer itself: the held-out loss with only that
   * layer moved to θ_start − Δ_i, against the loss at θ_start. Holders agree without talking because the inputs are
   * the same on every holder: θ_start (bit-identical after the last round), the contributions (the ones the round
   * included) and the batch (the caller fixes it by the round number, not by the node). A holder whose scores tip the
   * other way (another engine's rounding, a borderline Δ) ends with another hash and takes the majority's state in
   * the hash vote. Undefined: this node cannot score (a partial holder: the loss needs the whole model), and
   * 'gauntlet' aggregates as the default trimmed mean.
   */
  heldOutLoss?: (round: number, params: Float32Array, signal: AbortSignal) => Promise<number>;
  /**
   * How long a member whose Δ we wait for may show no new inner step before it is not waited for (ms; askMissing).
   * Default max(STALLED_MIN_MS, round.syncTimeoutMs / 4).
   */
  stalledMs?: number;
  /**
   * The number of the first round when nobody is ahead (a fresh start). Default 0. Round numbers are labels (./rounds.ts
   * nextRoundNumber): tests start two groups of layers at different numbers to drift them apart.
   */
  firstRound?: number;
}

/** A joiner waits this many sync deadlines for every holder to count it before a quorum of them is enough. */
export const ENTRY_PATIENCE = 1.5;

/**
 * How long the status call that settles a doubtful waiver may take at the start of a close (ms; OuterSync.confirm):
 * one that fails or does not answer in time stays waived, as before.
 */
export const DOUBT_STATUS_MIN_MS = 2_000;

/** While collecting, the statuses of members whose Δ is missing are asked at most this often (ms; 8 polls at least). */
export const MISSING_STATUS_MIN_MS = 2_000;

/**
 * A member whose Δ we wait for and whose status shows it in its inner steps, without one more step for this long, is
 * not waited for: max(STALLED_MIN_MS, sync deadline / 4) (OuterSync.askMissing).
 */
export const STALLED_MIN_MS = 10_000;

/**
 * The most holders a hash vote asks besides the ones its view lists (named as round members by the voters it sees:
 * OuterSync.agree): views that miss a few holders, not a flood of ids from one status.
 */
export const MAX_NAMED_VOTERS = 16;

/** Closed rounds whose hashes a node keeps for the hash exchange (and lists in its status). */
export const STATUS_HISTORY = KEPT_ROUNDS;

export interface LastRoundReport {
  round: number;
  outcome: Record<string, 'closed' | 'abandoned' | 'alone'>;
  accepted: number;
  rejected: number;
  /** Per layer: the aggregation record (which contributions were used, which rejected and why). */
  records: Record<string, AggregationRecord>;
  /** Contributions refused at the door this round (bad signature, wrong layer, non-finite, …), by sender. */
  refused: { from: string; code: string }[];
  late: string[];
  /** Layers whose hash disagreed with the holders' majority and were replaced by the majority's state. */
  repaired: string[];
  /** Layers whose hash vote tied among holders that began from one state: back to that state (./vote.ts). */
  split: string[];
  /**
   * Layers that stand apart from the vote's winner after this round: the winners' state could not be downloaded and
   * verified before the vote's bound. Typed and visible (GET /api/training), not silent; the next round's vote repairs
   * it (this holder's hash is then not the majority's, and it takes the majority's verified state).
   */
  diverged: string[];
  /** The round's members (any layer, ourselves included): holders counted for the quorum and the hash vote. */
  members: string[];
  /** Members the round did not wait for: still entering the rounds at its start (a joiner, a restarted node). */
  waived: string[];
  syncMs: number;
}

export interface SyncStats {
  round: number;
  innerStep: number;
  phase: PeerTrainingStatus['phase'];
  bytesSent: number;
  bytesReceived: number;
  lastRound: LastRoundReport | null;
  /** Per-layer model hashes (θ), of the last boundary. */
  hashes: Record<string, string>;
  /**
   * The closed rounds this holder keeps (ascending: the window of KEPT_ROUNDS plus pinned ones, ./keep.ts) and the
   * bytes their snapshots hold (θ and the outer momentum of the held layers, per round): bounded state that moves
   * with joiners' pins, which memory checks set apart from growth.
   */
  kept: { rounds: number[]; bytes: number };
}

/** Hash of a layer's whole outer state: SHA-256 over θ's bytes, then the momentum's (or one 0 byte when none). */
export function layerStateHash(theta: Float32Array, buf: Float32Array | null): string {
  const h = createHash('sha256');
  h.update(new Uint8Array(theta.buffer, theta.byteOffset, theta.byteLength));
  if (buf === null) h.update(new Uint8Array([0]));
  else {
    h.update(new Uint8Array([1]));
    h.update(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  }
  return h.digest('hex');
}

/** The hash most reports name; ties go to the smallest hash. Undefined when there are no reports. */
export function majorityHash(reports: readonly string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const r of reports) counts.set(r, (counts.get(r) ?? 0) + 1);
  let best: string | undefined;
  let bestN = 0;
  for (const [h, n] of counts) if (n > bestN || (n === bestN && best !== undefined && h < best)) [best, bestN] = [h, n];
  return best;
}

export class SyncError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('TRAINING_SYNC', message, { fault: 'peer', meta });
  }
}

/**
 * The state RPC (training-layer) asked for a round this holder closed or passed but no longer keeps: it left the
 * window of KEPT_ROUNDS closed rounds and no pin kept it (./keep.ts). What an honest caller that is late gets (a
 * joiner slower than the rounds, a status read before a close): no misbehaviour, never a penalty; the caller asks
 * again with a newer round. Before (session 22, finding 8), the handler answered it as TRAINING_LAYER_UNKNOWN with
 * fault 'peer', the caller's misbehaviour.
 */
export class TrainingRoundGoneError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('TRAINING_ROUND_GONE', message, { fault: 'caller', meta });
  }
}

/**
 * The transport's answer for a holder that does not speak the outer sync at all (a `--no-train` node serves the
 * layers but does not train them): it is no round member, its hash is no vote.
 */
export class PeerNotTrainingError extends NeuroShardError {
  constructor(peer: string) {
    super('PEER_NOT_TRAINING', `${peer.slice(-8)} does not train (no outer sync)`, { fault: 'peer', meta: { peer } });
  }
}

/**
 * Whether a peer's status says it listens to `round` (still entering, or entered at it or later): it sends no Δ and
 * has no vote. Round 0 is no listener's: a node still entering when the others are in round 0 enters round 0 itself
 * and contributes (enterOnce), so the others wait for it there.
 */
export function listensTo(s: PeerTrainingStatus | undefined, round: number): boolean {
  if (s === undefined || round <= 0) return false;
  return s.phase === 'entering' || (s.entered !== undefined && s.entered >= round);
}

/** Whether a peer's status says it stands past `round` (in the rounds, at a later one). */
function passed(s: PeerTrainingStatus | undefined, round: number): boolean {
  return s !== undefined && s.phase !== 'entering' && s.round > round;
}

/** How an entry runs besides its own logic: the install's pause, and what the node does while it waits for a boundary. */
interface Entry {
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
  /** One wait for holders ahead (ms): starts the caller's `waiting` (once) and sleeps. */
  wait(ms: number, signal: AbortSignal): Promise<void>;
  /** Stops `waiting` and resolves once it ended (idempotent). */
  end(): Promise<void>;
}

/**
 * OuterSync.enter's `waiting` over its `exclusive`: started at the first wait for a boundary, stopped inside the
 * install's exclusive section (after its pause: no step of ours is in flight then, none begins after) and when the
 * entry ends either way. Its failures are its own (a driver that cannot form a chain just does not step).
 */
function waitingExclusive(signal: AbortSignal, exclusive: <T>(fn: () => Promise<T>) => Promise<T>, waiting: ((signal: AbortSignal) => Promise<void>) | undefined): Entry {
  let run: { stop: AbortController; link: ReturnType<typeof linkSignals>; done: Promise<void> } | undefined;
  const end = async (): Promise<void> => {
    const r = run;
    run = undefined;
    if (r === undefined) return;
    r.stop.abort();
    await r.done;
    r.link.dispose();
  };
  return {
    exclusive: (fn) =>
      exclusive(async () => {
        await end();
        return fn();
      }),
    wait: (ms, sig) => {
      if (waiting !== undefined && run === undefined && !signal.aborted) {
        const stop = new AbortController();
        const link = linkSignals(signal, stop.signal);
        run = { stop, link, done: waiting(link.signal).catch(() => {}) };
      }
      return sleep(ms, sig);
    },
    end,
  };
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

interface Closed {
  round: number;
  modelHashes: Record<string, string>;
  params: Float32Array;
  bufs: Map<string, Float32Array | null>;
  stateHashes: Record<string, string>;
}

export class OuterSync {
  readonly layers: LayerRange[];
  private readonly byId: Map<string, LayerRange>;
  private readonly diloco: DiLoCoNode;
  private readonly params: Float32Array;
  private readonly log: Logger;
  private readonly pollMs: number;
  private phase: PeerTrainingStatus['phase'] = 'entering';
  private roundNo = -1;
  private states = new Map<string, RoundState>();
  /** Contributions of the current round: layer → sender → Δ (decoded). */
  private inbox = new Map<string, Map<string, Float32Array>>();
  /** Contributions for the next round from faster holders (one per sender and layer). */
  private early = new Map<string, Map<string, Float32Array>>();
  /** Closed rounds kept (ascending): the last STATUS_HISTORY, and older ones a joiner pinned (./keep.ts). */
  private closed: Closed[] = [];
  /** Joiners' pins on closed rounds they are downloading (./keep.ts: quotas per peer and in all). */
  private pins: RoundPin[] = [];
  private wake: (() => void) | undefined;
  private innerSteps = 0;
  private refusedThisRound: { from: string; code: string }[] = [];
  private entering: Promise<void> | undefined;
  /** The round this node entered the outer rounds at (−1 before). */
  private enteredAt = -1;
  private last: LastRoundReport | null = null;
  /**
   * Round membership: holders that answered the status RPC train; holders that do not speak it (`--no-train`) are
   * left out of the rounds (quorum, contributions, hash votes) until they answer; holders not heard from either way
   * (unreachable, starting) count, and the quorum decides without them.
   */
  private readonly trainers = new Set<string>();
  private readonly nonTrainers = new Set<string>();
  /** Each peer's last status answer and when (the boundary's waived holders: those last seen entering). */
  private readonly lastStatus = new Map<string, { at: number; status: PeerTrainingStatus }>();
  /**
   * Our layers each peer said it does not train (its status's `layers`, or a `not_held` answer): a holder the pool
   * moved away is no member of their rounds even while the view still lists it (./membership.ts).
   */
  private readonly notTrained = new Map<string, Set<string>>();
  /**
   * The newest round each peer accepted our Δ for: a peer that took it is in the rounds (one still entering answers
   * too_early) and alive in that round, whatever its last status said (notWaited).
   */
  private readonly tookOurs = new Map<string, number>();
  /**
   * Members whose Δ this round waits for, by the inner steps their status showed last and since when (this round's
   * askMissing; cleared at each round's begin).
   */
  private progress = new Map<string, { round: number; phase: string; steps: number; since: number }>();
  /**
   * Holders the current round waived at its begin from what we knew then (last seen entering, or not heard from since
   * the boundary): one of them may have entered at the round before after all and be a member of this one in its own
   * view (a joiner whose entry our boundary's status call missed). Its status at our close, or its Δ for this round,
   * settles it (admit); cleared at each begin.
   */
  private doubtful = new Set<string>();
  /** Our last chain boundary as published in the status (a chain stage only). */
  private chainPub: ChainBoundary | undefined;
  /** Inner steps of the current round: H, or fewer once to end with our driver's rounds (chainNext). */
  private stepsNow: number;
  bytesSent = 0;
  bytesReceived = 0;

  constructor(private readonly o: OuterSyncOptions) {
    this.params = new Float32Array(o.layout.size);
    this.diloco = new DiLoCoNode(o.layout, this.params, { outer: { lr: o.outerLr, momentum: o.outerMomentum }, compress: o.compress });
    this.layers = this.diloco.layers;
    this.byId = new Map(this.layers.map((l) => [l.id, l]));
    this.log = o.log ?? silentLogger;
    this.pollMs = o.pollMs ?? 250;
    this.stepsNow = o.round.innerSteps;
    if (o.aggregator === 'gauntlet' && o.heldOutLoss === undefined) this.log.warn('--aggregator gauntlet needs the whole model to score contributions; this node\'s layers aggregate with trimmed-mean');
  }

  get round(): number {
    return this.roundNo;
  }

  /**
   * The inner steps of the current round: H, except once for a chain hop whose rounds ended after other steps than
   * its driver's (then fewer, so that the next boundary is the driver's: chainNext).
   */
  roundSteps(): number {
    return this.stepsNow;
  }

  /** Whether the view lists `peer` as a holder of `layer`. */
  holds(peer: string, layer: string): boolean {
    return this.o.holders(layer).includes(peer);
  }

  layerSize(layer: string): number | undefined {
    return this.byId.get(layer)?.size;
  }

  /** The status RPC's answer. */
  status(): PeerTrainingStatus {
    const members = new Set<string>();
    for (const s of this.states.values()) for (const h of s.holders) members.add(h);
    return {
      round: this.roundNo,
      phase: this.phase,
      members: [...members].sort(),
      closed: this.closed.slice(-STATUS_HISTORY).map((c) => ({ round: c.round, hashes: { ...c.stateHashes } })),
      ...(this.enteredAt < 0 ? {} : { entered: this.enteredAt }),
      layers: this.layers.map((l) => l.id),
      ...(this.chainPub === undefined ? {} : { chain: { ...this.chainPub } }),
      steps: this.innerSteps,
    };
  }

  stats(): SyncStats {
    const hashes = this.closed.at(-1)?.modelHashes ?? {};
    let bytes = 0;
    for (const c of this.closed) {
      bytes += c.params.byteLength;
      for (const b of c.bufs.values()) bytes += b?.byteLength ?? 0;
    }
    const kept = { rounds: this.closed.map((c) => c.round), bytes };
    return { round: this.roundNo, innerStep: this.innerSteps, phase: this.phase, bytesSent: this.bytesSent, bytesReceived: this.bytesReceived, lastRound: this.last, hashes, kept };
  }

  /**
   * θ after each closed round we keep (oldest first; round −1 is the state this node entered round 0 with), as the
   * flat buffer of our layout: what the layer pool serves joiners (pool/transfer.ts). Holders of a layer leave a
   * round with bit-identical θ, so these are figures they agree on while their live weights move every step.
   */
  closedWeights(): { round: number; params: Float32Array }[] {
    return this.closed.map((c) => ({ round: c.round, params: c.params }));
  }

  /**
   * `peer` downloads the weights after `round` from us (a checkpoint request naming the round): keep that round past
   * the window until the pin expires (./keep.ts, with its quotas). True when the round is pinned for the peer now.
   */
  pin(peer: string, round: number): boolean {
    const now = this.o.clock.now();
    const renewal = this.pins.some((p) => p.peer === peer && p.round === round && p.until > now);
    const r = pinRound(this.pins, peer, round, this.closed.map((c) => c.round), now);
    this.pins = r.pins;
    if (r.pinned && !renewal) this.log.info('a joiner pinned a closed round', { peer, round, pins: r.pins.length });
    else if (!r.pinned) this.log.debug('round pin refused', { peer, round, pins: r.pins.length });
    return r.pinned;
  }

  /**
   * The state RPC (training-layer): `peer` downloads `layer` after `round` to enter the rounds (adopt). The round is
   * pinned for it (./keep.ts, with its quotas), as the pool's checkpoint download pins it: a joiner downloads its
   * layers one by one, and once its download took longer than KEPT_ROUNDS rounds of ours the round it began with was
   * gone before its last layer ("no such state"), it tried again with a newer round, and never entered (session 21).
   * Undefined for a layer not held here or a round not closed yet; a round closed or passed here but no longer kept
   * throws TrainingRoundGoneError (typed, no fault of the caller's conduct: it was late).
   */
  serveLayer(peer: string, round: number, layer: string): LayerState | undefined {
    const s = this.layerState(round, layer);
    if (s !== undefined) this.pin(peer, round);
    else if (this.byId.has(layer) && this.passed(round)) {
      const kept = this.closed.map((c) => c.round);
      throw new TrainingRoundGoneError(`the state of ${layer} after round ${round} is no longer kept here (kept: ${kept.join(', ') || 'none'})`, { round, layer, kept });
    }
    return s;
  }

  /** Whether `round` is one this holder closed or moved past (not one it has yet to close). */
  private passed(round: number): boolean {
    return round < this.roundNo || round <= (this.closed.at(-1)?.round ?? -Infinity);
  }

  /** The state of a layer after a closed round we keep (the state RPC), or undefined. */
  layerState(round: number, layer: string): LayerState | undefined {
    const c = this.closed.find((x) => x.round === round);
    const l = this.byId.get(layer);
    if (c === undefined || l === undefined) return undefined;
    return { theta: c.params.subarray(l.offset, l.offset + l.size), buf: c.bufs.get(layer) ?? null };
  }

  /** Records a contribution refused at the door (the transport penalised its sender). */
  refused(from: string, code: string): void {
    if (this.refusedThisRound.length < 1024) this.refusedThisRound.push({ from, code });
  }

  /**
   * A validated contribution (envelope, signature, round, layer and size checked by the transport; Δ decoded and
   * finite). Contributions for the next round are kept for it; anything else out of round is answered, not kept.
   */
  receive(from: string, round: number, layer: string, delta: Float32Array, bytes: number): SendVerdict {
    const l = this.byId.get(layer);
    if (l === undefined) return 'not_held';
    if (delta.length !== l.size) return 'rejected';
    this.bytesReceived += bytes;
    if (round === this.roundNo + 1) {
      // kept for the next round only from a live holder of the layer (a quota: one per holder and layer)
      if (!this.o.holders(layer).includes(from)) return 'not_holder';
      const m = this.early.get(layer) ?? new Map<string, Float32Array>();
      if (m.has(from)) return 'duplicate';
      m.set(from, delta);
      this.early.set(layer, m);
      return 'accepted';
    }
    // a Δ for this round from a holder we waived at the begin as still entering: it is a member in its own view
    if (round === this.roundNo && this.doubtful.has(from)) this.admit(from, 'its Δ for this round came');
    const s = this.states.get(layer);
    if (s === undefined) return round > this.roundNo ? 'too_early' : 'wrong_round';
    const r = roundReceive(s, round, from, this.o.clock.now());
    this.states.set(layer, r.state);
    if (r.verdict === 'accepted') {
      const m = this.inbox.get(layer) ?? new Map<string, Float32Array>();
      m.set(from, delta);
      this.inbox.set(layer, m);
      this.wake?.();
    }
    return r.verdict;
  }

  /** Before the first inner step: join the holders at a round boundary (or start round 0 when nobody is ahead). */
  /**
   * `exclusive` runs the install of the entry state (writing the weights, starting the round) with the inner loop's
   * steps held off (a pause); the wait for a boundary and the downloads run without it, so a hop that enters keeps
   * serving the steps of the holders whose boundary it waits for (holding its pause through the wait stalled them).
   *
   * `waiting`: a driver's chain steps, run while the entry waits for a boundary and stopped (its signal aborted, its
   * promise awaited) inside the install's pause, so that no step of ours passes between the install and the round's
   * start. A driver's hops are in their own layers' rounds and only its steps advance them: a driver that stopped
   * driving while it waited (a pool move made it the driver of a span whose holders were mid-round) left its hop
   * short of its boundary, and that hop's layers' rounds waited for its Δ to their deadline and were abandoned.
   */
  enter(signal: AbortSignal, exclusive: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(), waiting?: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.phase !== 'entering') return Promise.resolve();
    this.entering ??= this.enterOnce(signal, waitingExclusive(signal, exclusive, waiting)).finally(() => {
      this.entering = undefined;
    });
    return this.entering;
  }

  private async enterOnce(signal: AbortSignal, entry: Entry): Promise<void> {
    try {
      await this.enterWith(signal, entry);
    } finally {
      await entry.end();
    }
  }

  private async enterWith(signal: AbortSignal, { exclusive, wait }: Entry): Promise<void> {
    this.params.set(await this.o.inner.getParams());
    const since = this.o.clock.now();
    const until = since + 4 * this.o.round.syncTimeoutMs + 60_000;
    // after this long, a quorum of the holders counting us is enough (keep.ts sequenceToJoin): a holder whose view
    // never lists us no longer stalls the entry until its deadline; every holder counts a joiner at its next boundary
    // normally, which comes within a round (H inner steps and at most one sync deadline)
    const patience = ENTRY_PATIENCE * this.o.round.syncTimeoutMs;
    for (;;) {
      if (signal.aborted) throw new AbortedError('stopped while entering the outer rounds');
      const peers = this.peers();
      // holders the view still lists for our layers but that train others (the pool moved them) count nobody in
      // our layers' rounds: they do not decide the entry
      const statuses = entryPeers(this.layers.map((l) => l.id), await this.statuses(peers, signal));
      const ahead = [...statuses.values()].filter((s) => s.round >= 0);
      // holders that do not answer yet (just connected, still starting) may be ahead: ask again, within bounds
      // (holders that do not train answered, in their way)
      const answered = statuses.size + peers.filter((p) => this.nonTrainers.has(p)).length;
      const unanswered = peers.length > 0 && answered < peers.length && this.o.clock.now() < until - 4 * this.o.round.syncTimeoutMs;
      if (ahead.length === 0 && !unanswered) {
        // nobody is ahead: the holders start round 0 together, and wait for each other (θ_start: the weights now)
        await exclusive(async () => {
          this.params.set(await this.o.inner.getParams());
          // entered 0: it started the rounds (whatever the first number; ./rounds.ts listensTo reads 0 so)
          this.enteredAt = 0;
          this.begin(this.o.firstRound ?? 0);
        });
        return;
      }
      // a round that every holder in the rounds counts us in (keep.ts sequenceToJoin): the newest one a holder is in,
      // entered with the state of the round before (round −1: the state a node entered round 0 with). A holder that
      // began its round before it saw us neither sends us its Δ nor waits for us: we wait for its next boundary
      const target = sequenceToJoin(
        this.o.self,
        [...statuses.values()].map((s) => ({ round: s.round, entering: s.phase === 'entering', members: s.members, closed: s.closed.map((c) => c.round) })),
        this.o.clock.now() - since >= patience ? { quorum: this.o.round.quorum } : undefined,
      );
      if (target !== undefined && (await this.adopt(target, statuses, signal, exclusive))) {
        this.enteredAt = target;
        // the holders do not wait for us in the round we enter (nor count our Δ): we listen to it. Except round 0:
        // every holder starts it from the initial state, and one that began it fresh (no one ahead) waits for all
        // of us, so we contribute (listening there left a network that started a few seconds apart with no quorum)
        this.begin(target, target === 0 ? new Set() : new Set([this.o.self, ...this.notWaited(target, -Infinity, new Set())]));
        return;
      }
      if (this.o.clock.now() > until) throw new SyncError('no holder counted this node in a round before the entry deadline');
      // holders are ahead and we wait for their boundary: a driver drives its chain meanwhile (enter's `waiting`)
      await (ahead.length > 0 ? wait : sleep)(this.pollMs * 2, signal);
    }
  }

  /** Counts one inner step (the round machine's bookkeeping). */
  innerStep(): void {
    this.innerSteps++;
    for (const [id, s] of this.states) if (s.phase === 'inner' && s.innerStep + 1 < this.o.round.innerSteps) this.states.set(id, { ...s, innerStep: s.innerStep + 1 });
  }

  /**
   * After the round's inner steps: the outer sync of every held layer; returns when the next round has started.
   * `chain`: where this node stands in a pipeline chain (InnerLoop.chainPosition): its partners there begin the same
   * round number as we do (chainNext).
   */
  async closeRound(signal: AbortSignal, chain?: ChainPosition): Promise<LastRoundReport> {
    if (this.phase !== 'inner') throw new InvalidArgumentError(`closeRound in phase ${this.phase}`);
    const t0 = this.o.clock.now();
    const round = this.roundNo;
    this.params.set(await this.o.inner.getParams());
    const contributions = this.diloco.contributions();
    this.phase = 'collecting';
    const now = this.o.clock.now();
    for (const [id, s] of this.states) {
      let st: RoundState = { ...s, innerStep: this.o.round.innerSteps - 1 };
      st = innerStepDone(this.o.round, st, now);
      this.states.set(id, st);
    }
    // holders this round waived at its begin from an old fact: one that entered since is a member, waited for and counted
    await this.confirm(round, signal);
    const sends: Promise<void>[] = [];
    const listenerSends: Promise<void>[] = [];
    const all: Promise<void>[] = [];
    const deadline = now + this.o.round.syncTimeoutMs;
    // one listener on `signal` (the node's lifetime) for all of this round's sends, not one per send and retry:
    // layers × holders sends wait at once (Node's "11 abort listeners added to [AbortSignal]" in the chaos trainers)
    const sending = linkSignals(signal);
    setMaxListeners(0, sending.signal);
    for (const c of contributions) {
      const s = this.states.get(c.layer)!;
      // the round we entered at we only listen to: our Δ is neither counted nor sent
      if (s.waived.includes(this.o.self)) continue;
      // our own Δ counts as received
      const r = roundReceive(s, round, this.o.self, now);
      this.states.set(c.layer, r.state);
      const m = this.inbox.get(c.layer) ?? new Map<string, Float32Array>();
      m.set(this.o.self, c.sent);
      this.inbox.set(c.layer, m);
      for (const peer of s.holders) {
        if (peer === this.o.self) continue;
        const sent = this.sendUntil(peer, round, c.layer, c.n, c.payload, deadline, sending.signal);
        all.push(sent);
        // a listener (waived: still entering) gets our Δ when it is ready, up to the deadline; the round does not
        // wait for its delivery either
        if (!s.waived.includes(peer)) sends.push(sent);
        else {
          listenerSends.push(sent);
          void sent.catch(() => {});
        }
      }
    }
    void Promise.allSettled(all).then(() => sending.dispose());
    // collect until every layer closed (all holders in, or the deadline)
    const outcomes: Record<string, 'closed' | 'abandoned' | 'alone'> = {};
    const included = new Map<string, string[]>();
    // members whose Δ is missing are asked for their status now and then: one that took our Δ and then left these
    // layers (the pool moved it before it closed the round) sends none and no later send of ours reaches its old
    // rounds, so only its status (listing other layers) says it left; waiting for it held the round to its deadline
    const askEvery = Math.max(MISSING_STATUS_MIN_MS, 8 * this.pollMs);
    let askedAt = this.o.clock.now();
    let asking: Promise<void> | undefined;
    for (;;) {
      for (const [id, s] of this.states) {
        if (id in outcomes) continue;
        const r = tryClose(this.o.round, s, this.o.clock.now());
        this.states.set(id, r.state);
        if (r.outcome.kind === 'open') continue;
        outcomes[id] = s.holders.length === 1 ? 'alone' : r.outcome.kind;
        included.set(id, r.outcome.included);
      }
      if (Object.keys(outcomes).length === this.states.size || signal.aborted) break;
      if (asking === undefined && this.o.clock.now() - askedAt >= askEvery) {
        askedAt = this.o.clock.now();
        asking = this.askMissing(signal).finally(() => {
          asking = undefined;
        });
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
    if (signal.aborted) throw new AbortedError('stopped during the outer sync');
    // aggregate and apply
    const aggregated = new Map<string, Float32Array | null>();
    const keepLocal = new Set<string>();
    const records: Record<string, AggregationRecord> = {};
    let accepted = 0;
    let rejected = 0;
    for (const l of this.layers) {
      const outcome = outcomes[l.id]!;
      if (outcome === 'alone') {
        keepLocal.add(l.id);
        continue;
      }
      if (outcome === 'abandoned') {
        aggregated.set(l.id, null);
        continue;
      }
      const box = this.inbox.get(l.id)!;
      const contribs = included.get(l.id)!.map((id) => ({ id, delta: box.get(id)! }));
      const a = await this.aggregateLayer(round, l, contribs, signal);
      records[l.id] = a.record;
      accepted += a.record.used;
      rejected += a.record.rejected;
      aggregated.set(l.id, a.delta);
    }
    this.diloco.finishRound(aggregated, keepLocal);
    const late = [...new Set([...this.states.values()].flatMap((s) => s.late))].sort();
    const members = [...new Set([...this.states.values()].flatMap((s) => s.holders))].sort();
    const waived = [...new Set([...this.states.values()].flatMap((s) => s.waived))].sort();
    const closed = this.snapshot(round);
    // hash exchange: the majority's state wins
    const { repaired, split, diverged } = await this.agree(round, closed, signal);
    await this.o.inner.setParams(this.params);
    await Promise.allSettled(sends);
    // a listener that enters right now takes our Δ at the next retry (a poll away), and that acceptance makes it a
    // member of our next round (notWaited's `tookOurs`) when its status calls fail: give it those two polls. The vote
    // used to end a poll after its last answer and gave it them by chance; it now ends at once (listener-member test)
    if (listenerSends.length > 0) await Promise.race([Promise.allSettled(listenerSends), sleep(2 * this.pollMs, signal)]);
    // holders not known to train yet (new in the view, or `--no-train` so far), and holders not heard from during
    // this close (a joiner, a restarted node: are they still entering? begin() waives them): asked once per boundary
    const unknown = this.peers().filter((p) => !this.trainers.has(p) || (this.lastStatus.get(p)?.at ?? -Infinity) < t0);
    if (unknown.length > 0) await this.statuses(unknown, signal, 5_000);
    this.last = {
      round,
      outcome: outcomes,
      accepted,
      rejected: rejected + this.refusedThisRound.length,
      records,
      refused: this.refusedThisRound,
      late,
      repaired,
      split,
      diverged,
      members,
      waived,
      syncMs: this.o.clock.now() - t0,
    };
    try {
      this.o.onClosed?.(this.last);
    } catch (e) {
      this.log.warn('round close hook failed', { round, error: errorMessage(e) });
    }
    // the next round's number: round + 1, or a holder's of our layers that stands further on (a group whose number
    // drifted ahead while nothing tied it to ours: ./rounds.ts nextRoundNumber)
    let next = nextRoundNumber(round, this.memberRounds(t0));
    if (next > round + 1) this.log.info('round numbers skip forward to a holder\'s', { closed: round, next });
    this.stepsNow = this.o.round.innerSteps;
    if (chain !== undefined && chain.partners.some((p) => p !== this.o.self)) next = await this.chainNext(round, next, chain, signal);
    this.begin(next, this.notWaited(next, t0, new Set([...this.states.values()].flatMap((s) => Object.keys(s.received))), round));
    for (const [p, r] of this.tookOurs) if (r < round) this.tookOurs.delete(p);
    return this.last;
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  /**
   * The stages of one pipeline chain are one training process: they close their rounds after the same chain step
   * (each counts the steps its span applied) and must begin the same number, or they stay one apart for good (the
   * pull-forward of nextRoundNumber moves a number only when a member stands two or more ahead, and two stages of a
   * chain share no layer: only a third node holding layers of both, the whole-model trainer, tied them, and only
   * while it stood in their rounds). Each stage computed its own next number from its own layers' members, at its own
   * moment of the close (a chaos run: the driver and its hop skipped forward to a whole-model trainer's number,
   * read one of them before and one after that trainer's boundary, and stood at 16 and 17 for good). So at a
   * boundary:
   *   - a hop publishes its proposal (status `chain`) and waits for its driver's decision for the same step;
   *   - the driver waits for each hop's proposal for that step, begins the largest of them and its own, and
   *     publishes that as its decision; the hop begins it (or its own proposal, if larger: the driver did not hear
   *     it in time; the next boundary ties them again).
   * A partner is waited for only while its last published boundary says it closes after this step too (rounds.ts
   * partnerAt 'coming'); while one waits no chain step can pass (both are paused), so it comes or fails. A hop whose
   * rounds end after other steps than its driver's (`apart`: it entered mid-round of its driver, or applied a step
   * whose acknowledgement its driver lost) waits for nothing, begins its driver's current number, and runs as many
   * steps as end that round with the driver's (rounds.ts stepsToAlign); from then on they close together. A driver
   * that asks a waiting hop for a step (ChainPosition `asked`) is `apart` too: it lost the acknowledgement of a step
   * the hop applied, so its boundary is a step later than its last one says, and it cannot get there while we wait.
   * Bounded: a partner that fails twice or does not come within two sync deadlines is not waited for.
   */
  private async chainNext(round: number, proposal: number, pos: ChainPosition, signal: AbortSignal): Promise<number> {
    const h = this.o.round.innerSteps;
    // whose counter our step counts (a driver's own; a hop's, its driver's), and the steps we applied since a
    // partner's boundary (not the ids: a NaN-skipped id is no step; rounds.ts partnerAt)
    const ids = pos.drives ? this.o.self : pos.partners[0];
    const reader = { ...(ids === undefined ? {} : { ids }), ...(pos.appliedAfter === undefined ? {} : { appliedAfter: pos.appliedAfter }) };
    const by = ids === undefined ? {} : { driver: ids };
    if (!pos.drives) this.chainPub = { step: pos.step, next: proposal, drives: false, ...by };
    const heard: number[] = [];
    const failures = new Map<string, number>();
    const until = this.o.clock.now() + 2 * this.o.round.syncTimeoutMs + 5_000;
    let waiting = [...new Set(pos.partners)].filter((p) => p !== this.o.self);
    let apart = false;
    while (waiting.length > 0 && !signal.aborted) {
      // asks recorded before the status call: a driver publishes its boundary before it asks for the next step, so
      // a status answered after its ask shows that boundary ('at'); one read before it would still say 'coming'
      const asked = new Set(waiting.filter((p) => pos.asked?.(p) === true));
      const st = await this.statuses(waiting, signal);
      const still: string[] = [];
      for (const p of waiting) {
        const s = st.get(p);
        if (s === undefined) {
          const f = (failures.get(p) ?? 0) + 1;
          failures.set(p, f);
          if (f < 2) still.push(p);
          continue;
        }
        // a driver hears its hops' proposals, a hop its driver's decision; a partner in our own role is no partner
        const b = s.chain !== undefined && s.chain.drives !== pos.drives ? s.chain : undefined;
        // a driver that asked us (a paused hop) for a step since our boundary is in its round's steps: it does not
        // close after this one whatever its last boundary says (it lost the acknowledgement of a step we applied),
        // and waiting for it held both of us to the bound below, the holders of its layers to their deadline for its
        // Δ (CI's outer-move: a round of 245 s)
        const seen = partnerAt(pos.step, h, b, reader);
        const where = seen === 'coming' && asked.has(p) ? 'apart' : seen;
        if (where === 'at') heard.push(b!.next);
        else if (where === 'coming') still.push(p);
        else if (!pos.drives && b !== undefined && b.step < pos.step && (b.driver === undefined || ids === undefined || b.driver === ids)) {
          // our driver's rounds end after other steps: end our next round with its current one, at its number
          apart = true;
          this.stepsNow = stepsToAlign(pos.step, h, b.step, reader);
          heard.push(b.next);
        }
      }
      waiting = still;
      if (waiting.length === 0 || this.o.clock.now() > until) break;
      await sleep(this.pollMs, signal);
    }
    let next = proposal;
    for (const r of heard) if (Number.isSafeInteger(r) && r > next && r < MAX_ROUND) next = r;
    if (pos.drives) this.chainPub = { step: pos.step, next, drives: true, ...by };
    if (next !== proposal || apart) this.log.info('chain partners begin one round number', { closed: round, step: pos.step, proposal, next, ...(apart ? { alignSteps: this.stepsNow } : {}) });
    return next;
  }

  /**
   * One layer's aggregate. Gauntlet scores each contribution on the round's held-out batch first (heldOutLoss):
   * loss(θ_start with this layer at θ_start − Δ_i) against loss(θ_start); contributions that do not lower it are
   * rejected as 'harmful'. The scratch parameters pass through the inner model (a whole-model replica's worker); the
   * caller of closeRound writes the round's result back after.
   */
  private async aggregateLayer(round: number, l: LayerRange, contribs: { id: string; delta: Float32Array }[], signal: AbortSignal): Promise<ReturnType<typeof aggregate>> {
    if (this.o.aggregator !== 'gauntlet') return aggregate(this.o.aggregator, contribs, l.size);
    const score = this.o.heldOutLoss;
    if (score === undefined) return aggregate('trimmed-mean', contribs, l.size);
    // [layout.size]: θ_start of every held layer; this layer's range is overwritten per candidate
    const scratch = this.params.slice();
    for (const x of this.layers) scratch.set(this.diloco.startOf(x), x.offset);
    const start = this.diloco.startOf(l);
    const view = scratch.subarray(l.offset, l.offset + l.size);
    const losses = new Map<Float32Array, number>();
    let baseLoss: number;
    try {
      baseLoss = await score(round, scratch, signal);
      for (const c of contribs) {
        if (c.delta.length !== l.size) continue; // the aggregator rejects it as wrong_size
        for (let i = 0; i < l.size; i++) view[i] = start[i]! - c.delta[i]!;
        losses.set(c.delta, await score(round, scratch, signal));
        view.set(start);
      }
    } catch (e) {
      if (signal.aborted) throw new AbortedError('stopped during the outer sync');
      // no held-out batch here (corpus unavailable): this round's layer as the default; the hash vote settles it
      this.log.warn('gauntlet could not score; this layer aggregates with trimmed-mean this round', { round, layer: l.id, error: errorMessage(e) });
      return aggregate('trimmed-mean', contribs, l.size);
    }
    this.log.debug('gauntlet scores', { round, layer: l.id, baseLoss, losses: contribs.map((c) => `${c.id.slice(-6)}:${losses.get(c.delta)?.toFixed(5) ?? 'n/a'}`) });
    return aggregate('gauntlet', contribs, l.size, { baseLoss, lossAfter: (d) => losses.get(d) ?? Number.NaN });
  }

  /**
   * The rounds the members of our layers' rounds stand at, from their statuses heard since `since` (this boundary):
   * those in the rounds (a holder still entering has no number yet).
   */
  private memberRounds(since: number): number[] {
    const out: number[] = [];
    const members = new Set(this.layers.flatMap((l) => this.members(l.id)));
    for (const p of members) {
      if (p === this.o.self) continue;
      const st = this.lastStatus.get(p);
      if (st !== undefined && st.at >= since && st.status.phase !== 'entering' && st.status.round >= 0) out.push(st.status.round);
    }
    return out;
  }

  private peers(): string[] {
    const s = new Set<string>();
    for (const l of this.layers) for (const h of this.o.holders(l.id)) if (h !== this.o.self) s.add(h);
    return [...s].sort();
  }

  private async statuses(peers: string[], signal: AbortSignal, timeoutMs = Math.max(5000, this.o.round.syncTimeoutMs / 2)): Promise<Map<string, PeerTrainingStatus>> {
    const out = new Map<string, PeerTrainingStatus>();
    // not AbortSignal.any: `signal` lives as long as the node and the rounds poll statuses (util/abort.ts)
    const link = linkSignals(signal, AbortSignal.timeout(timeoutMs));
    const sig = link.signal;
    try {
      await Promise.all(
        peers.map(async (p) => {
          try {
            const st = await this.o.transport.status(p, sig);
            out.set(p, st);
            this.lastStatus.set(p, { at: this.o.clock.now(), status: st });
            this.trainers.add(p);
            this.nonTrainers.delete(p);
            const not = notTrainedFromStatus(this.layers.map((l) => l.id), st.layers);
            if (not === undefined || not.size === 0) this.notTrained.delete(p);
            else this.notTrained.set(p, not);
          } catch (e) {
            if (e instanceof PeerNotTrainingError) {
              if (!this.nonTrainers.has(p)) this.log.info('a holder does not train: not a round member', { peer: p });
              this.nonTrainers.add(p);
              this.trainers.delete(p);
            }
            this.log.debug('training status failed', { peer: p, error: errorMessage(e) });
          }
        }),
      );
    } finally {
      link.dispose();
    }
    return out;
  }

  /**
   * The statuses of the members whose Δ this round still waits for (./membership.ts missingMembers): one whose
   * status lists other layers (it moved) is released from them. Failures are ignored (the deadline decides).
   */
  private async askMissing(signal: AbortSignal): Promise<void> {
    const layersOf = new Map<string, string[]>();
    for (const [id, s] of this.states) for (const p of missingMembers(s, this.o.self)) layersOf.set(p, [...(layersOf.get(p) ?? []), id]);
    if (layersOf.size === 0) return;
    const st = await this.statuses([...layersOf.keys()], signal, MISSING_STATUS_MIN_MS * 2);
    const stalled = this.stalledMembers(st);
    for (const [p, layers] of layersOf) {
      for (const l of layers) {
        if (this.notTrained.get(p)?.has(l) === true) this.released(p, l, true);
        // a member that restarted (same peer id) after this round began: the round counts its old incarnation, but the
        // new one is entering or entered at this round, so it only listens and never sends its Δ. Waiting for it held
        // the round to its deadline and, with two holders of a layer, below the quorum (abandoned) while the listener
        // applied the others' Δ: two states and a tied hash vote (a chaos run's restarted whole-model trainer)
        else if (listensTo(st.get(p), this.roundNo)) this.released(p, l, false);
        // a member past this round (its numbers skipped over it: rounds.ts nextRoundNumber; or it closed it without us
        // at its deadline, and its hash vote gave up on ours) sends no Δ for it any more
        else if (passed(st.get(p), this.roundNo)) this.released(p, l, false, 'a holder stands past this round: not waited for');
        else if (stalled.has(p)) this.released(p, l, false, 'a member shows no progress in its rounds: not waited for');
      }
    }
  }

  /**
   * Members whose Δ this round waits for and whose status has not moved for the stall bound (same round, phase and
   * step count): one in its inner steps of this round, or one still in an earlier round (its steps or its close of
   * that round). Chains tie layer groups into one wait: a hop paused in its close waits for a member's Δ, that
   * member's steps come from a driver paused in its own close, which waits for the Δ of a driver whose hop is the
   * first one (outer-move after the swap, caught on Node 24: four nodes in a cycle, each round held to its deadline
   * and then its hash vote to its bound, 245 s); or every node of the cycle is in a close (caught on Node 22: A in
   * round 4 waited for N's Δ, N closing round 3 waited for its hop D's proposal, D in round 4 waited for M's Δ, M
   * closing round 3 waited for its driver A's decision). Releasing one member breaks the cycle; its Δ is not counted
   * by us, it closes the round later with ours and takes the majority's state in the hash vote. A member that steps
   * slowly but steps, or that collects this very round (its Δ is on its way), is waited for as before.
   */
  private stalledMembers(statuses: Map<string, PeerTrainingStatus>): Set<string> {
    const out = new Set<string>();
    const now = this.o.clock.now();
    const bound = this.o.stalledMs ?? Math.max(STALLED_MIN_MS, this.o.round.syncTimeoutMs / 4);
    for (const [p, st] of statuses) {
      if (st.phase === 'entering' || st.steps === undefined || st.round > this.roundNo) continue;
      if (st.round === this.roundNo && st.phase !== 'inner') continue;
      const seen = this.progress.get(p);
      if (seen === undefined || seen.round !== st.round || seen.phase !== st.phase || seen.steps !== st.steps) {
        this.progress.set(p, { round: st.round, phase: st.phase, steps: st.steps, since: now });
        continue;
      }
      if (now - seen.since >= bound) out.add(p);
    }
    return out;
  }

  /** Holders of `layer` that are round members: ourselves and every holder not known to stay out of training. */
  private members(layer: string): string[] {
    return layerMembers(this.o.self, layer, this.o.holders(layer), this.nonTrainers, this.notTrained);
  }

  /**
   * At the start of our close of `round`: the statuses of the holders it waived at its begin (`doubtful`). One that
   * says it entered at an earlier round and stands at this round or the one before is a member of this round in its own
   * view (it counts its Δ and waits for ours): we admit it, so that both aggregate the same Δ. A joiner enters at the
   * round a holder is in (keep.ts sequenceToJoin) and our boundary's status call may miss it by a moment (it failed
   * under load, or came just before the joiner's install; the acceptance of our Δ that would also tell arrived after
   * our begin): we waived it while it took part as a member, our aggregates differed and so did our states
   * (driver-entry under load: "d3 and d2 agree after round 4"). Asked here, a round of inner steps later, its entry is
   * long done. One that does not answer in time stays waived, as before; its Δ for this round still admits it (receive).
   */
  private async confirm(round: number, signal: AbortSignal): Promise<void> {
    const waived = new Set([...this.states.values()].flatMap((s) => s.waived));
    const doubt = [...this.doubtful].filter((p) => waived.has(p));
    if (doubt.length === 0) return;
    const st = await this.statuses(doubt, signal, Math.max(DOUBT_STATUS_MIN_MS, 8 * this.pollMs));
    for (const [p, s] of st) if (s.phase !== 'entering' && s.entered !== undefined && s.entered < round && s.round >= round - 1 && s.round <= round) this.admit(p, 'it entered at an earlier round');
  }

  /** A holder this round waived at its begin is a member in its own view (confirm): the round waits for its Δ. */
  private admit(peer: string, why: string): void {
    this.doubtful.delete(peer);
    let changed = false;
    for (const [id, s] of this.states) {
      const r = admit(s, peer);
      if (r !== s) {
        this.states.set(id, r);
        changed = true;
      }
    }
    if (changed) this.log.info('a holder waived at the round\'s begin is a member: waited for', { peer, round: this.roundNo, why });
  }

  /**
   * `peer` answered that it does not train `layer` (the pool moved it): the current round stops waiting for it
   * (unless its Δ is in) and the next rounds leave it out until its status lists the layer again.
   */
  private released(peer: string, layer: string, left: boolean, why?: string): void {
    if (left) {
      const not = this.notTrained.get(peer) ?? new Set<string>();
      not.add(layer);
      this.notTrained.set(peer, not);
    }
    const s = this.states.get(layer);
    if (s === undefined) return;
    const r = release(s, peer);
    if (r !== s) {
      this.log.info(why ?? (left ? 'a holder left this layer\'s rounds (moved): not waited for' : 'a holder does not count us in its round: not waited for'), { peer, layer, round: s.round });
      this.states.set(layer, r);
      this.wake?.();
    }
  }

  /** Starts round `r` from the params in `this.params` (θ_start), with the holders of each layer at this boundary. */
  /**
   * Holders round `round` does not wait for (rounds.ts `waived`): those last seen entering the rounds or that entered
   * at this round (a joiner: every holder names it alike, whether it asked before or after the joiner's entry), and
   * those not heard from since `since` that did not contribute to the round before (`contributed`; a node that died
   * and may be restarting, a holder new in the view). A busy holder that contributed last round is still waited for,
   * and so is one that took our Δ of the round before (`took`, rounds ≥ it) and was not heard from since: a listener
   * (it sends no Δ in its entry round, and no close asks a waived member's status but the one at the boundary) whose
   * one status call at our boundary failed under load kept its last status, from before its entry ('entering'), and
   * was waived again in its first round as a member: its Δ refused there, 2 of 3 counted (outer-move's "a full
   * member … three contributions per layer").
   */
  private notWaited(round: number, since: number, contributed: ReadonlySet<string>, took = Infinity): Set<string> {
    const out = new Set<string>();
    for (const p of this.peers()) {
      const st = this.lastStatus.get(p);
      // heard from in this round by its acceptance of our Δ, after its last status: it is in the rounds, at or before
      // `took` < round (a status since then decides: a restarted peer is entering again)
      if ((st?.at ?? -Infinity) < since && (this.tookOurs.get(p) ?? -Infinity) >= took) continue;
      const entering = st?.status.phase === 'entering' || (st?.status.entered ?? -1) >= round;
      if (entering || ((st?.at ?? -Infinity) < since && !contributed.has(p))) out.add(p);
    }
    return out;
  }

  private begin(r: number, notWaited: ReadonlySet<string> = new Set()): void {
    this.log.debug('round begins', { round: r });
    this.roundNo = r;
    this.progress.clear();
    this.diloco.startRound();
    this.states.clear();
    this.inbox.clear();
    this.refusedThisRound = [];
    // a Δ for this round that came early from a holder we would waive: it is a member in its own view (admit)
    const sentEarly = new Set([...this.early.values()].flatMap((m) => [...m.keys()]));
    this.doubtful = new Set([...notWaited].filter((p) => p !== this.o.self && !sentEarly.has(p)));
    for (const l of this.layers) {
      const holders = this.members(l.id);
      // holders last seen entering the rounds are members the round does not wait for (rounds.ts): a join does not
      // stall the members
      const waived = holders.filter((h) => notWaited.has(h) && (h === this.o.self || !sentEarly.has(h)));
      const s = startRound(this.o.round, r, holders, '', waived);
      this.states.set(l.id, s);
      // contributions that arrived early, from this round's holders
      const early = this.early.get(l.id);
      if (early !== undefined) {
        for (const [from, d] of early) {
          const x = roundReceive(this.states.get(l.id)!, r, from, this.o.clock.now());
          this.states.set(l.id, x.state);
          if (x.verdict === 'accepted') {
            const m = this.inbox.get(l.id) ?? new Map<string, Float32Array>();
            m.set(from, d);
            this.inbox.set(l.id, m);
          }
        }
      }
    }
    this.early.clear();
    if (this.closed.length === 0) this.snapshotInitial(r);
    this.phase = 'inner';
  }

  /** The state a joiner can download before any round closed here: θ_start of round r as "round r − 1". */
  private snapshotInitial(r: number): void {
    this.snapshotAs(r - 1);
  }

  private snapshot(round: number): Closed {
    return this.snapshotAs(round);
  }

  private snapshotAs(round: number): Closed {
    const bufs = new Map<string, Float32Array | null>();
    const stateHashes: Record<string, string> = {};
    for (const l of this.layers) {
      const b = this.diloco.outer.buffer(l.id) ?? null;
      bufs.set(l.id, b === null ? null : b.slice());
      stateHashes[l.id] = layerStateHash(this.params.subarray(l.offset, l.offset + l.size), b);
    }
    const c: Closed = { round, modelHashes: this.diloco.hashes(), params: this.params.slice(), bufs, stateHashes };
    const all = [...this.closed.filter((x) => x.round !== round), c].sort((a, b) => a.round - b.round);
    const now = this.o.clock.now();
    this.pins = this.pins.filter((p) => p.until > now);
    const keep = new Set(roundsToKeep(all.map((x) => x.round), this.pins, now, STATUS_HISTORY));
    this.closed = all.filter((x) => keep.has(x.round));
    return c;
  }

  private async sendUntil(peer: string, round: number, layer: string, n: number, payload: Uint8Array, deadline: number, signal: AbortSignal): Promise<void> {
    // a listener still entering answers too_early until it is in: give up once we are two rounds on (it enters at
    // a newer round and would answer wrong_round; a member that far behind is repaired by the hash vote)
    while (this.o.clock.now() < deadline && !signal.aborted && this.roundNo <= round + 1) {
      try {
        // deadlineLink, disposed after the call: a deadlineSignal left one listener per try on `signal` (the node's
        // lifetime) until its deadline fired; with a listener retrying every poll that was dozens at once
        const link = deadlineLink(Math.max(1000, deadline - this.o.clock.now()), signal);
        let v: SendVerdict;
        try {
          v = await this.o.transport.send(peer, { round, layer, compression: this.o.compress, n, payload }, link.signal);
        } finally {
          link.dispose();
        }
        this.log.debug('contribution sent', { peer: peer.slice(-6), layer, round, verdict: v });
        this.bytesSent += payload.byteLength;
        if (v === 'accepted' || v === 'duplicate') this.tookOurs.set(peer, Math.max(round, this.tookOurs.get(peer) ?? -1));
        // it left the layer (moved), or it does not count us in its round (its view does not list us yet): either way
        // its Δ will not come to us, so this round stops waiting for it
        if ((v === 'not_held' || v === 'not_holder') && this.roundNo === round) this.released(peer, layer, v === 'not_held');
        if (v !== 'too_early') return;
      } catch (e) {
        this.log.debug('contribution not delivered', { peer, layer, round, error: errorMessage(e) });
      }
      await sleep(this.pollMs, signal);
    }
  }

  /**
   * The hash vote after `round` (docs/TRAINING.md "The hash vote", ./vote.ts): every holder of a layer that closed the
   * round as a member reports its state hash; the hash most voters hold wins (ours is kept, or the winners' state is
   * downloaded and verified). A tie at the top among holders that all began the round from our state sends the layer
   * back to that state on every holder; other ties go to the smallest tied hash. Returns the layers repaired (another
   * state downloaded) and the layers sent back to the round's start (`split`).
   *
   * Voters of a layer are the holders our round counted, whether or not it waited for them: a holder our round waived
   * or released (it answered `not_holder`: its round did not count us) closed the round with its own state; leaving it
   * out of our vote while the holders that counted it did not gave holders different winners (session 14's leftover "a hash vote without a majority when holders exclude each
   * other"). Listeners (a joiner's entry round), holders past the round or of other layers, and holders that do not
   * answer have no vote. Holders our view lacks but most voters we see name as round members vote too (agree's
   * `discover`; docs/TRAINING.md "Views that exclude each other").
   *
   * The wait ends as soon as every layer's outcome is decided (the missing votes cannot change it), not when every
   * voter has answered: each voter is asked on its own, so a holder still closing the round, or a status call that
   * hangs, no longer holds a decided vote to the bound (every holder waited up to syncTimeout + 5 s for a holder
   * still waiting out its own deadline). The bound stays syncTimeout + 5 s; voters not in by then are left out (they
   * vote when they close, and see ours).
   */
  private async agree(round: number, mine: Closed, signal: AbortSignal): Promise<{ repaired: string[]; split: string[]; diverged: string[] }> {
    const waived = new Set([...this.states.values()].flatMap((s) => s.waived));
    // a waived holder last seen listening to this round (a joiner) has no vote: not asked (a poll of it here replaced
    // the status from before its entry with a newer 'entering' one, which then waived it again in its first round as
    // a member: notWaited's `tookOurs`)
    const listening = (p: string): boolean => waived.has(p) && listensTo(this.lastStatus.get(p)?.status, round);
    const voters = new Map<string, string[]>();
    for (const l of this.layers) {
      // the round's holders, waived ones included (not holders new in the view since its start: one whose numbers
      // stand behind ours would never report this round, and held an undecided vote to the bound)
      voters.set(l.id, this.states.get(l.id)!.holders.filter((p) => p !== this.o.self && !listening(p)).sort());
    }
    const others = [...new Set([...voters.values()].flat())].sort();
    if (others.length === 0) return { repaired: [], split: [], diverged: [] };
    // a holder our round waived (not heard from: maybe dead or restarting), or one named by other voters, gets one
    // try, a member two
    const reports = new Map<string, Record<string, string>>();
    // each voter's state at the start of the round (its newest closed state before it), for ties
    const starts = new Map<string, Record<string, string>>();
    const gone = new Set<string>();
    const until = this.o.clock.now() + this.o.round.syncTimeoutMs + 5_000;
    const listenerOf = (id: string): boolean => this.states.get(id)!.waived.includes(this.o.self);
    // Views that exclude each other (a partition of the pool's view: b's never lists a, c's lists both): b counted only
    // the voters it sees, so it could decide a vote on another voter set than a and c, and end the round with another
    // state (a tie among holders that began alike sent all back to their start, but one that a began elsewhere went to
    // the smallest hash on a and c, and back to the start on b). So the voters we see name others: each reporting
    // voter's status lists its round's members, and a holder named there that our view lacks is asked too. Its vote
    // counts when a majority of the seen voters that voted name it: one holder naming made-up ids (Sybils answering
    // the status call) cannot bring in votes of its own, and a holder that no voter we see counts stays out.
    const seen = new Set(others);
    const named = new Map<string, Set<string>>();
    const discover = (from: string, st: PeerTrainingStatus): string[] => {
      if (!seen.has(from)) return [];
      const fresh: string[] = [];
      for (const m of st.members) {
        if (m === this.o.self || seen.has(m) || listening(m)) continue;
        let by = named.get(m);
        if (by === undefined) {
          if (named.size >= MAX_NAMED_VOTERS) continue;
          by = new Set();
          named.set(m, by);
          fresh.push(m);
        }
        by.add(from);
      }
      return fresh;
    };
    const voted = (p: string): boolean => Object.keys(reports.get(p) ?? {}).length > 0;
    const endorsed = (p: string): boolean => 2 * [...(named.get(p) ?? [])].filter(voted).length > others.filter(voted).length;
    // one layer's votes (a listener has no vote while the members have) and how many voters may still report
    const tally = (l: LayerRange, final: boolean): { outcome: VoteOutcome; byHash: Map<string, string[]> } => {
      const votes: string[] = [];
      const byHash = new Map<string, string[]>();
      let pending = 0;
      for (const p of [...voters.get(l.id)!, ...named.keys()]) {
        const r = reports.get(p);
        if (r === undefined) {
          // a named holder not in yet is waited for like a seen one (while the others decide whether it counts)
          if (!final && !gone.has(p)) pending++;
          continue;
        }
        const h = r[l.id];
        if (h === undefined || (named.has(p) && !endorsed(p))) continue;
        votes.push(h);
        byHash.set(h, [...(byHash.get(h) ?? []), p]);
      }
      if (!listenerOf(l.id) || (votes.length === 0 && pending === 0)) votes.push(mine.stateHashes[l.id]!);
      return { outcome: voteOutcome(votes, pending), byHash };
    };
    await this.collectVotes(round, others, (p) => waived.has(p) || named.has(p), discover, reports, starts, gone, until, () => this.layers.every((l) => tally(l, false).outcome.kind !== 'pending'), signal);
    const heard = [...named.keys()].filter((p) => voted(p) && endorsed(p));
    if (heard.length > 0) this.log.info('hash vote: holders our view does not list voted (named by the holders we see)', { round, voters: heard });
    const myStart = this.closed.filter((c) => c.round < round).at(-1)?.stateHashes;
    const repaired: string[] = [];
    const split: string[] = [];
    const diverged: string[] = [];
    for (const l of this.layers) {
      let { outcome, byHash } = tally(l, true);
      if (outcome.kind === 'tie') {
        const tied = outcome.hashes.flatMap((h) => byHash.get(h) ?? []);
        const start = myStart?.[l.id];
        const votes = outcome.hashes.map((h) => `${h.slice(0, 8)}×${(byHash.get(h) ?? []).length + (h === mine.stateHashes[l.id] && !listenerOf(l.id) ? 1 : 0)}`).join(' ');
        if (start !== undefined && tied.every((p) => starts.get(p)?.[l.id] === start)) {
          // every tied holder began from our state: all go back to it, whatever subset of the votes each one saw
          if (this.revert(round, l)) split.push(l.id);
          this.log.warn('hash vote tied: this layer goes back to its state at the round\'s start', { round, layer: l.id, votes });
          continue;
        }
        this.log.info('hash vote tied between holders that began from different states: the smallest hash wins', { round, layer: l.id, votes });
      }
      const winner = (o: VoteOutcome): string => (o.kind === 'win' ? o.hash : o.kind === 'tie' ? o.hashes[0]! : mine.stateHashes[l.id]!);
      let win = winner(outcome);
      if (win === mine.stateHashes[l.id]) continue;
      // a busy holder may not answer at once: try its sources again until the deadline
      for (let attempt = 0; !signal.aborted; attempt++) {
        if (await this.download(round, l, win, byHash.get(win) ?? [], signal)) {
          repaired.push(l.id);
          break;
        }
        if (this.o.clock.now() > until + this.o.round.syncTimeoutMs) {
          this.log.warn('could not take the holders\' majority state; this layer stays diverged until the next vote', { round, layer: l.id });
          diverged.push(l.id);
          break;
        }
        await sleep(this.pollMs * (attempt + 1), signal);
        // a source may have replaced its state of this round since it reported its hash (its own vote repaired it):
        // ask the voters again rather than retry a hash nobody serves any more (a re-entered trainer failed 8 times
        // on `embed` and layers 0-1 against the pre-repair hash of a half holder, until the next round)
        const asked = [...voters.get(l.id)!, ...named.keys()].filter((p) => reports.get(p)?.[l.id] !== undefined);
        const fresh = await this.statuses(asked, signal);
        for (const [p, st] of fresh) {
          const c = st.closed.find((x) => x.round === round);
          if (c !== undefined && !listensTo(st, round)) reports.set(p, { ...reports.get(p), ...c.hashes });
        }
        ({ outcome, byHash } = tally(l, true));
        win = winner(outcome);
        if (win === mine.stateHashes[l.id]) break;
      }
    }
    if (repaired.length > 0) this.log.info('outer round: layers replaced by the holders\' majority state', { round, layers: repaired });
    if (repaired.length > 0 || split.length > 0) this.snapshot(round);
    return { repaired, split, diverged };
  }

  /**
   * Asks every voter for its vote of `round` (each on its own, until it reports, fails out, or the deadline), until
   * `decided()` or everyone is in. Returns without waiting for calls still in flight (they are aborted).
   */
  private async collectVotes(round: number, others: string[], oneTry: (p: string) => boolean, discover: (from: string, st: PeerTrainingStatus) => string[], reports: Map<string, Record<string, string>>, starts: Map<string, Record<string, string>>, gone: Set<string>, until: number, decided: () => boolean, signal: AbortSignal): Promise<void> {
    const stop = new AbortController();
    const link = linkSignals(signal, stop.signal);
    setMaxListeners(0, link.signal);
    let wake: (() => void) | undefined;
    let open = 0;
    const ask = async (p: string): Promise<void> => {
      let failures = 0;
      try {
        while (!link.signal.aborted) {
          const st = (await this.statuses([p], link.signal)).get(p);
          if (link.signal.aborted) return;
          if (st === undefined) {
            if (++failures >= (oneTry(p) ? 1 : 2)) {
              gone.add(p);
              return;
            }
          } else {
            const v = this.voteOf(st, round);
            if (v !== undefined) {
              reports.set(p, v);
              const before = st.closed.filter((c) => c.round < round).at(-1);
              if (before !== undefined) starts.set(p, before.hashes);
              // holders it names that we do not see are asked too (agree's `discover`)
              if (Object.keys(v).length > 0) for (const q of discover(p, st)) start(q);
              return;
            }
          }
          if (this.o.clock.now() > until) return;
          await sleep(this.pollMs, link.signal);
        }
      } finally {
        open--;
        wake?.();
      }
    };
    const asking: Promise<void>[] = [];
    function start(p: string): void {
      open++;
      asking.push(ask(p));
    }
    for (const p of others) start(p);
    try {
      while (!signal.aborted && open > 0 && !decided() && this.o.clock.now() <= until) {
        await new Promise<void>((res) => {
          const t = setTimeout(res, Math.max(1, Math.min(1_000, until - this.o.clock.now() + 1)));
          wake = () => {
            clearTimeout(t);
            res();
          };
        });
        wake = undefined;
      }
    } finally {
      stop.abort();
      void Promise.allSettled(asking).then(() => link.dispose());
    }
  }

  /**
   * A voter's vote of `round` from its status: its closed round's hashes; {} for no vote (it listened to the round,
   * stands past it without its state, is entering, or trains none of our layers now); undefined while it has not
   * closed it yet.
   */
  private voteOf(s: PeerTrainingStatus, round: number): Record<string, string> | undefined {
    // a holder that entered at this round (or after) only listened to it: it took our state, it has no vote (a
    // restarted holder that this round still counted as a member: its vote tied with ours, and the tie moved our
    // state to the listener's while the listener was downloading ours)
    if (listensTo(s, round)) return {};
    const c = s.closed.find((x) => x.round === round);
    if (c !== undefined) return c.hashes;
    if (s.round > round || s.phase === 'entering') return {}; // no state of this round to vote with
    // it trains none of our layers now (the pool moved it): no vote, not waited for
    if (s.layers !== undefined && !this.layers.some((l) => s.layers!.includes(l.id))) return {};
    return undefined;
  }

  /**
   * Sends layer `l` back to its state at the start of `round` (the newest closed state before it: the last vote's, or
   * an entry's download), θ and momentum. Returns whether the state changed.
   */
  private revert(round: number, l: LayerRange): boolean {
    const prev = this.closed.filter((c) => c.round < round).at(-1);
    if (prev === undefined) {
      this.log.warn('no state of the round\'s start kept: this layer keeps its own', { round, layer: l.id });
      return false;
    }
    const cur = layerStateHash(this.params.subarray(l.offset, l.offset + l.size), this.diloco.outer.buffer(l.id) ?? null);
    if (cur === prev.stateHashes[l.id]) return false;
    this.params.set(prev.params.subarray(l.offset, l.offset + l.size), l.offset);
    const b = prev.bufs.get(l.id) ?? null;
    this.diloco.setLayerMomentum(l.id, b === null ? null : b.slice());
    return true;
  }

  /** Downloads `layer`'s state after `round` from one of `sources`, verifies it against `hash` and installs it. */
  private async download(round: number, l: LayerRange, hash: string, sources: string[], signal: AbortSignal): Promise<boolean> {
    for (const p of sources) {
      try {
        const link = deadlineLink(Math.max(10_000, this.o.round.syncTimeoutMs), signal);
        let st: LayerState;
        try {
          st = await this.o.transport.fetchLayer(p, round, l.id, link.signal);
        } finally {
          link.dispose();
        }
        if (st.theta.length !== l.size || (st.buf !== null && st.buf.length !== l.size)) throw new SyncError(`layer ${l.id} from ${p} has the wrong size`);
        if (layerStateHash(st.theta, st.buf) !== hash) throw new SyncError(`layer ${l.id} from ${p} does not match the agreed hash`);
        this.params.set(st.theta, l.offset);
        this.diloco.setLayerMomentum(l.id, st.buf);
        return true;
      } catch (e) {
        this.log.warn('layer state download failed', { peer: p, layer: l.id, round, error: errorMessage(e) });
      }
    }
    return false;
  }

  /**
   * A joiner entering round `target`: for every held layer, the newest closed state (round ≤ target − 1) that the
   * layer's holders agree on (./keep.ts layerEntryState), downloaded and verified. Per layer: groups of layers that
   * share no holder may stand at different round numbers (one group's newest closed round is not the other's).
   */
  private async adopt(target: number, statuses: Map<string, PeerTrainingStatus>, signal: AbortSignal, exclusive: <T>(fn: () => Promise<T>) => Promise<T>): Promise<boolean> {
    const took: Record<string, number> = {};
    for (const l of this.layers) {
      const holders = new Set(this.o.holders(l.id));
      const closed = new Map<string, readonly ClosedView[]>();
      for (const [p, s] of statuses) if (holders.has(p)) closed.set(p, s.closed);
      const e = layerEntryState(l.id, target - 1, closed);
      if (e === undefined) {
        this.log.debug('entry: no holder of a layer keeps a closed round yet', { layer: l.id, target });
        return false;
      }
      if (!(await this.download(e.round, l, e.hash, e.sources, signal))) return false;
      took[l.id] = e.round;
    }
    await exclusive(() => this.o.inner.setParams(this.params));
    const behind = Object.entries(took).filter(([, r]) => r !== target - 1);
    this.log.info('entered the outer rounds with verified weights', { round: target, ...(behind.length === 0 ? {} : { behind: Object.fromEntries(behind) }) });
    // the downloaded state is what we hold "after target − 1" (per layer, the newest its holders agreed on): keep it for
    // later joiners
    this.snapshotAs(target - 1);
    return true;
  }
}

/**
 * A TrainStepper that is one replica's inner loop inside DiLoCo: the first step enters the outer rounds, every
 * H-th step closes the round (the outer sync runs before the step's result is returned, so the training loop's
 * evaluations and checkpoints after it see the round's outcome).
 */
export class DiLoCoStepper implements TrainStepper {
  private count = 0;
  constructor(
    private readonly inner: TrainStepper,
    readonly sync: OuterSync,
    private readonly innerSteps: number,
    private readonly signal: AbortSignal,
    private readonly onRound?: (r: LastRoundReport) => void,
    /** Pause before entering again after an entry that failed (`SyncError`). */
    private readonly entryRetryMs = 5000,
  ) {}

  currentStep(): number | Promise<number> {
    return this.inner.currentStep();
  }

  async trainStep(batch: Batch): Promise<TrainStepResult> {
    await this.enter();
    const r = await this.inner.trainStep(batch);
    this.sync.innerStep();
    if (++this.count % this.innerSteps === 0) this.onRound?.(await this.sync.closeRound(this.signal));
    return r;
  }

  evaluate(batches: Batch[]): { loss: number; tokens: number } | Promise<{ loss: number; tokens: number }> {
    return this.inner.evaluate(batches);
  }

  /**
   * Enters the outer rounds; an entry that failed (no holder counted us before the entry deadline, the holders'
   * state not verified) is tried again after a pause, as the chain holders' rounds do (node/chain.ts). Before, it
   * ended the node's training for good: in a chaos run (scripts/chaos.mjs) the genesis trainer, killed and
   * restarted while the faults went on, was not counted in a round within its deadline, logged "training failed"
   * and never trained again while its peers went on.
   */
  private async enter(): Promise<void> {
    for (;;) {
      try {
        await this.sync.enter(this.signal);
        return;
      } catch (e) {
        if (!(e instanceof SyncError) || this.signal.aborted) throw e;
        await sleep(this.entryRetryMs, this.signal);
      }
    }
  }
}

