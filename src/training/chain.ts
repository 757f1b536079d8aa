/**
 * Chain training (issue 9 §1): the driver of a chain of holders covering layers 0..L−1 runs pipeline steps
 * (pipeline/trainer.ts, GPipe or 1F1B) over stages that are its own span (the compute worker) and its peers' spans
 * (the train-stage RPC); when a hop fails mid-step the step is abandoned on every hop (no stage applies anything
 * before all gradients and the global norm exist), the failed hop is left out for a while, the chain is re-formed
 * with another replica of its layers, and the same batch is tried again. The transport is injected: this file
 * knows stages, peers and spans only.
 *
 *   ChainTrainer   the driver's InnerLoop (training/inner.ts): runs inner steps on batches from its data source.
 *   HopInnerLoop   a passive hop's InnerLoop: its span is stepped by some driver; it counts the steps applied.
 */
import { pause } from '../util/abort.js';
import { AbortedError, NeuroShardError, errorMessage } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import type { Span } from '../model/layout.js';
import { AppliedSteps } from './applied-steps.js';
import type { ChainPosition, InnerLoop, InnerStepsResult, LayerParams } from './inner.js';
import { PipelineTrainer, type PipelineOptions } from './pipeline/trainer.js';
import type { PipelineStage, StageForwardResult, StepApply } from './pipeline/stage.js';
import type { TrainStepResult } from './trainer.js';
import type { Batch, BatchSource } from './types.js';
import { spanText } from '../util/span-text.js';

/** One hop of a chain: who holds the span, and the stage that reaches it. */
export interface ChainHop {
  peer: string;
  span: Span;
  stage: PipelineStage;
  /**
   * Gives the hop's lease back (a remote hop: train-stage RELEASE), so that another driver's chain can take it at
   * once instead of after the lease lapses. Best effort: rejects on any failure, which the trainer ignores.
   */
  release?(): Promise<void>;
}

/** The driver's own span: a stage plus what the inner loop needs of it. */
export interface LocalSpanStage extends PipelineStage {
  readLayers(): Promise<LayerParams[]>;
  writeLayers(layers: LayerParams[]): Promise<void>;
  info(): Promise<{ appliedSteps: number }>;
  /**
   * Keeps a copy of the span's weights, AdamW moments and step count, which restoreState puts back (ops.ts
   * saveState / restoreState): a driver's discarded steps leave no trace in its optimizer. Absent: not kept.
   */
  saveState?(): Promise<void>;
  restoreState?(): Promise<boolean>;
}

/** A hop's call failed: the step is abandoned and this hop is left out of the next chain. */
export class HopFailedError extends NeuroShardError {
  constructor(
    readonly peer: string,
    readonly span: Span,
    cause: unknown,
  ) {
    super('HOP_FAILED', `hop ${peer.slice(-8)}[${spanText(span)}]: ${errorMessage(cause)}`, { fault: 'peer', cause, meta: { peer, span } });
  }
}

/** No chain covering every layer could be formed (no live holder for some layers, every one excluded or busy). */
export class NoChainError extends NeuroShardError {
  constructor(message: string) {
    super('NO_CHAIN', message, { fault: 'local' });
  }
}

/**
 * The driver has run its `stepLimit` steps (`--train-steps`): no further step is issued. Every step counts, applied or
 * skipped (NaN), inside the outer rounds; the steps driven while it waited to enter them, whose update to its span the
 * entry replaced, have a budget of their own of the same size (ChainTrainer.discardSteps).
 */
export class TrainStepsReachedError extends NeuroShardError {
  constructor(limit: number) {
    super('TRAIN_STEPS_REACHED', `the driver has run its ${limit} training steps (--train-steps)`, { fault: 'local', meta: { limit } });
  }
}

/** Tags every failure of a stage call with its hop, so the driver knows whom to leave out. */
class TaggedStage implements PipelineStage {
  constructor(
    private readonly hop: ChainHop,
    private readonly local: boolean,
  ) {}
  get span(): Span {
    return this.hop.stage.span;
  }
  get isFirst(): boolean {
    return this.hop.stage.isFirst;
  }
  get isLast(): boolean {
    return this.hop.stage.isLast;
  }
  private async tag<T>(p: () => Promise<T>): Promise<T> {
    try {
      return await p();
    } catch (e) {
      if (this.local || e instanceof HopFailedError) throw e;
      throw new HopFailedError(this.hop.peer, this.hop.span, e);
    }
  }
  beginStep(step: number): Promise<void> {
    return this.tag(() => this.hop.stage.beginStep(step));
  }
  forward(step: number, mb: number, input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array, gradScale?: number): Promise<StageForwardResult> {
    return this.tag(() => this.hop.stage.forward(step, mb, input, B, T, targets, gradScale));
  }
  backward(step: number, mb: number, dOut: Float32Array | null): Promise<Float32Array | null> {
    return this.tag(() => this.hop.stage.backward(step, mb, dOut));
  }
  gradSumSquares(step: number): Promise<number> {
    return this.tag(() => this.hop.stage.gradSumSquares(step));
  }
  applyStep(step: number, a: StepApply): Promise<void> {
    return this.tag(() => this.hop.stage.applyStep(step, a));
  }
  abortStep(step: number): Promise<void> {
    return this.tag(() => this.hop.stage.abortStep(step));
  }
  evalForward(input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array): Promise<StageForwardResult> {
    return this.tag(() => this.hop.stage.evalForward(input, B, T, targets));
  }
}

export interface ChainTrainerOptions {
  /** This node's peer id (its own hop is never left out). */
  self: string;
  /** The driver's own span (starts at layer 0). */
  local: LocalSpanStage;
  /**
   * Forms a chain that starts with our own span and covers every layer, leaving out the peers in `exclude`; rejects
   * with NoChainError when none exists now.
   */
  formChain(exclude: ReadonlySet<string>, signal?: AbortSignal): Promise<ChainHop[]>;
  data: BatchSource;
  pipeline: PipelineOptions;
  /** How long a failed hop is left out of new chains (ms). */
  excludeMs?: number;
  /**
   * How long a hop that answered RPC_BUSY (another driver's chain holds its lease) is left out (ms): it is healthy and
   * may be free in a moment, so seconds, not `excludeMs` (60 s made every driver but the first skip the busiest
   * replica for a minute at start-up, or wait on it when it was the only one).
   */
  busyExcludeMs?: number;
  /** Wait before forming a chain again after a failure, doubled per consecutive failure up to 16× (ms). */
  retryMs?: number;
  /** Consecutive failed steps after which innerSteps gives up (rethrows). */
  maxConsecutiveFailures?: number;
  /**
   * `--train-steps`: the driver's step counter (`step`: applied and skipped steps) never passes this; innerSteps
   * rejects with TrainStepsReachedError instead of issuing one more. Unset: no limit.
   */
  stepLimit?: number;
  now?: () => number;
}

export interface ChainTrainerEvents {
  /**
   * `discarded`: a step run while the driver waited to enter the outer rounds (discardSteps): its update to our span
   * is replaced by the entry's verified state, so it is no step of ours (not counted, nor its tokens); `counted`: the
   * driver's steps that count (toward --train-steps) so far.
   */
  step: TrainStepResult & { hops: string[]; discarded: boolean; counted: number };
  /** A step abandoned on every hop (nothing applied); the chain is re-formed. */
  abandoned: { step: number; peer: string | null; error: string };
  chain: { hops: { peer: string; span: Span }[] };
}

/** Default ChainTrainerOptions.busyExcludeMs: a busy hop is tried again after this long. */
export const CHAIN_BUSY_EXCLUDE_MS = 5_000;

export class ChainTrainer implements InnerLoop {
  readonly events = new TypedEmitter<ChainTrainerEvents>();
  private pipe: PipelineTrainer | undefined;
  private hops: ChainHop[] | undefined;
  private pending: Batch | undefined;
  private readonly excluded = new Map<string, number>();
  /** Hops left out because they answered RPC_BUSY (a subset of `excluded`). */
  private readonly busy = new Set<string>();
  private lastBusy = false;
  private applied = 0;
  private abandonedCount = 0;
  private paused = false;
  private running = 0;
  private waiters: (() => void)[] = [];
  private readonly now: () => number;
  /** The last abandoned step failed on a hop that is between inner steps (its outer sync), not a broken one. */
  private lastPaused = false;
  private lastApplied: ChainPosition | undefined;
  /** Steps issued now are discarded (discardSteps), and how many were so far. */
  private discarding = false;
  private discarded = 0;
  /** `discarded` when the current discarding began (scheduleStep: a discarded step's place in the schedule). */
  private discardedAtStart = 0;
  /** The step ids our chain applied (a skipped one takes an id nobody applies): ChainPosition.appliedAfter. */
  private readonly appliedIds = new AppliedSteps();

  constructor(private readonly o: ChainTrainerOptions) {
    this.now = o.now ?? Date.now;
  }

  span(): Span {
    return this.o.local.span;
  }

  appliedSteps(): number {
    return this.applied;
  }

  chainPosition(): ChainPosition | undefined {
    return this.lastApplied;
  }

  /** Steps abandoned so far (a hop failed mid-step). */
  abandonedSteps(): number {
    return this.abandonedCount;
  }

  /**
   * Gives the leases of the chain in use back (every remote hop's, at once, each bounded by its own deadline) and
   * forgets the chain: the driver stops (a pool move, a stop), so its hops are free for other drivers' chains at once.
   * A step after this forms a new chain.
   */
  async release(): Promise<void> {
    const hops = this.hops;
    this.hops = undefined;
    if (hops !== undefined) await releaseHops(hops);
  }

  /** The chain in use (undefined until the first step, and after a failure until the next). */
  chain(): { peer: string; span: Span }[] | undefined {
    return this.hops?.map((h) => ({ peer: h.peer, span: { ...h.span } }));
  }

  /** The pipeline step counter (batches consumed by applied or skipped steps). */
  get step(): number {
    return this.pipe?.step ?? 0;
  }

  /**
   * Steps this driver may still run (Infinity without a limit): `stepLimit` − the steps that count; while discarding,
   * `stepLimit` − the steps discarded (their own budget: a driver that never enters stops too).
   */
  stepsLeft(): number {
    if (this.o.stepLimit === undefined) return Infinity;
    return Math.max(0, this.o.stepLimit - (this.discarding ? this.discarded : this.countedSteps()));
  }

  /** Steps issued (applied or skipped) that count: every step but the discarded ones. */
  countedSteps(): number {
    return this.step - this.discarded;
  }

  /** Steps issued while discarding (runOuterRounds' drive while the driver waits to enter the outer rounds). */
  discardedSteps(): number {
    return this.discarded;
  }

  /**
   * The steps issued from now on are discarded (true) or count (false). A driver that waits to enter the outer rounds
   * drives its chain meanwhile (its hops' rounds need the steps), but the entry installs the holders' verified state
   * over its span, so those steps' updates to it are gone: they do not count toward `stepLimit` (--train-steps) and
   * their tokens are not reported as trained (the 'step' event's `discarded`); they have a budget of their own, the
   * same `stepLimit`, so that a driver that never enters stops too.
   */
  async discardSteps(on: boolean): Promise<void> {
    const was = this.discarding;
    if (on && !was) this.discardedAtStart = this.discarded;
    this.discarding = on;
    if (on === was) return;
    // AdamW on our span: the discarded steps move its step count (the bias correction) and its moments as well as
    // the weights, and the entry replaces only the weights. Our span's state before the first discarded step is kept
    // and put back after the last one (the caller awaits this before the next step: runOuterRounds), so the counted
    // steps run on a fresh driver's optimizer (its moments and bias correction), or on the state it had when it fell
    // out of the rounds. An entry that finds nobody ahead after all begins round 0 from the weights it had before
    // the wait, too (the other holders' initial ones), not from its discarded steps' updates.
    if (on) await this.o.local.saveState?.();
    else await this.o.local.restoreState?.();
  }

  /**
   * The lr schedule's position for the next step: the steps that count. Discarded steps do not move it on: a driver
   * that waited 500 steps to enter trains its counted steps at the rates of one that never waited (they moved the
   * default --train-steps cosine by ~0.5 % per 500-step wait). A discarded step itself runs at the position it would
   * have had without the fix (counted + its index in this wait): its update stands on our hops, whose rounds count it.
   * AdamW's own step count on our span (bias correction) and its moments are put back by discardSteps(false).
   */
  scheduleStep(): number {
    return this.countedSteps() + (this.discarding ? this.discarded - this.discardedAtStart : 0);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async pause(): Promise<void> {
    this.paused = true;
    while (this.running > 0) await new Promise<void>((res) => this.waiters.push(res));
  }

  resume(): void {
    this.paused = false;
    this.wake();
  }

  readLayers(): Promise<LayerParams[]> {
    return this.o.local.readLayers();
  }

  writeLayers(layers: LayerParams[]): Promise<void> {
    return this.o.local.writeLayers(layers);
  }

  private async ensureChain(signal?: AbortSignal): Promise<PipelineTrainer> {
    if (this.hops !== undefined && this.pipe !== undefined) return this.pipe;
    const t = this.now();
    for (const [p, until] of this.excluded) {
      if (until > t) continue;
      this.excluded.delete(p);
      this.busy.delete(p);
    }
    let hops: ChainHop[];
    try {
      hops = await this.o.formChain(new Set(this.excluded.keys()), signal);
    } catch (e) {
      // leaving failed hops out is a preference: when they are the only holders of some layers, try them again
      if (!(e instanceof NoChainError) || this.excluded.size === 0) throw e;
      hops = await this.o.formChain(new Set(), signal);
    }
    if (hops.length === 0 || hops[0]!.peer !== this.o.self) throw new NoChainError('a chain must start with our own span');
    const stages = hops.map((h) => new TaggedStage(h, h.peer === this.o.self));
    if (this.pipe === undefined) this.pipe = new PipelineTrainer(stages, this.o.pipeline);
    else this.pipe.setStages(stages);
    this.hops = hops;
    this.events.emit('chain', { hops: hops.map((h) => ({ peer: h.peer, span: { ...h.span } })) });
    return this.pipe;
  }

  /** One step on the current chain (forming one first); a failed hop's step is abandoned and retried later. */
  async trainStep(signal?: AbortSignal): Promise<TrainStepResult | null> {
    this.running++;
    try {
      const pipe = await this.ensureChain(signal);
      const batch = this.pending ?? (await this.o.data.next(signal));
      this.pending = batch;
      const stepId = pipe.step;
      const discarded = this.discarding;
      try {
        const r = await pipe.trainStep(batch, this.scheduleStep());
        this.pending = undefined;
        // the step counter moved (applied or skipped): a step issued while discarding is no step of ours
        if (discarded) this.discarded += pipe.step - stepId;
        if (r.applied) {
          this.applied++;
          this.appliedIds.add(stepId);
          const ids = this.appliedIds;
          this.lastApplied = { step: stepId, partners: (this.hops ?? []).filter((h) => h.peer !== this.o.self).map((h) => h.peer), drives: true, appliedAfter: (id) => ids.after(id) };
        }
        this.events.emit('step', { ...r, hops: this.hops!.map((h) => h.peer), discarded, counted: this.countedSteps() });
        return r;
      } catch (e) {
        this.abandonedCount++;
        const peer = e instanceof HopFailedError ? e.peer : null;
        // a hop in its outer round (STAGE_PAUSED) is not at fault: keep the chain and try it again shortly
        this.lastPaused = peer !== null && hasCode(e, 'STAGE_PAUSED');
        if (!this.lastPaused) {
          this.lastBusy = peer !== null && hasCode(e, 'RPC_BUSY');
          if (peer !== null && this.lastBusy) {
            // every busy hop stays out as long as the newest one: the set grows until a free replica is found (busy
            // hops whose exclusions lapsed one by one while a loaded driver tried the next one were tried again in
            // turn, and the free one never: outer-move's warm-up took 445 s once)
            const until = this.now() + (this.o.busyExcludeMs ?? CHAIN_BUSY_EXCLUDE_MS);
            this.busy.add(peer);
            for (const p of this.busy) this.excluded.set(p, Math.max(this.excluded.get(p) ?? 0, until));
          } else if (peer !== null) this.excluded.set(peer, this.now() + (this.o.excludeMs ?? 60_000));
          // the chain is re-formed, maybe with other hops: the ones left must not stay leased to us until their
          // leases lapse (another driver's chain would find them busy for minutes); a hop of the next chain takes
          // our lease again at its begin (a release of this older chain arriving late leaves that one alone)
          const old = this.hops;
          this.hops = undefined;
          if (old !== undefined) void releaseHops(old);
        }
        this.events.emit('abandoned', { step: stepId, peer, error: errorMessage(e) });
        if (peer === null) throw e;
        return null;
      }
    } finally {
      this.running--;
      this.wake();
    }
  }

  async innerSteps(n: number, signal?: AbortSignal): Promise<InnerStepsResult> {
    let applied = 0;
    let abandoned = 0;
    let lossSum = 0;
    let tokens = 0;
    let failures = 0;
    const maxFail = this.o.maxConsecutiveFailures ?? 50;
    const retry = this.o.retryMs ?? 500;
    while (applied < n) {
      if (signal?.aborted === true) throw new AbortedError('inner steps stopped');
      if (this.paused) {
        await waitOrAbort((res) => this.waiters.push(res), signal);
        continue;
      }
      // checked before every step, not per call: innerSteps(n) counts applied steps, so a skipped (NaN) step would
      // otherwise run one past the limit
      if (this.stepsLeft() <= 0) throw new TrainStepsReachedError(this.o.stepLimit!);
      let r: TrainStepResult | null;
      try {
        r = await this.trainStep(signal);
      } catch (e) {
        if (!(e instanceof NoChainError) && !(e instanceof HopFailedError)) throw e;
        r = null;
      }
      if (r === null) {
        abandoned++;
        // waiting for a hop's outer round is bounded by that round's deadline, not by the failure count
        if (this.lastPaused) {
          await pause(retry * 2, signal);
          continue;
        }
        if (++failures > maxFail) throw new NoChainError(`${failures} steps in a row failed to complete on any chain`);
        // a busy hop is healthy: try the next replica at once (the backoff is for broken ones)
        if (this.lastBusy) {
          await pause(retry, signal);
          continue;
        }
        await pause(retry * Math.min(16, 2 ** Math.min(4, failures - 1)), signal);
        continue;
      }
      failures = 0;
      if (r.applied) {
        applied++;
        lossSum += r.loss;
        tokens += r.tokens;
      }
    }
    return { applied, abandoned, meanLoss: applied === 0 ? NaN : lossSum / applied, tokens };
  }

  /** Validation loss over the chain (forms one when needed). */
  async evaluate(batches: Batch[], signal?: AbortSignal): Promise<{ loss: number; tokens: number }> {
    const pipe = await this.ensureChain(signal);
    return pipe.evaluate(batches);
  }
}

/** Every hop's release, together; failures are ignored (each hop's lease lapses anyway). */
async function releaseHops(hops: readonly ChainHop[]): Promise<void> {
  await Promise.allSettled(hops.map((h) => h.release?.() ?? Promise.resolve()));
}

/** Whether an error or one in its cause chain carries `code`. */
function hasCode(e: unknown, code: string): boolean {
  for (let x: unknown = e, i = 0; x instanceof Error && i < 8; x = x.cause, i++) if (x instanceof NeuroShardError && x.code === code) return true;
  return false;
}

/** Waits for `register`'s callback or the signal; the abort listener is removed either way (long-lived signals). */
function waitOrAbort(register: (wake: () => void) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((res) => {
    const done = (): void => {
      signal?.removeEventListener('abort', done);
      res();
    };
    register(done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface HopInnerLoopOptions {
  local: LocalSpanStage;
  /** Subscribes to the steps this hop applies (for any driver: its id and the driver's peer id); returns the unsubscribe. */
  onApplied(fn: (e: { step: number; peer: string }) => void): () => void;
  pause(): Promise<void>;
  resume(): void;
  /** Whether a driver asked this hop for a step since its pause began (the server refused it: STAGE_PAUSED). */
  askedWhilePaused?(peer: string): boolean;
}

/** A hop that does not drive: its span is stepped by a chain's driver; innerSteps(n) waits for n more. */
export class HopInnerLoop implements InnerLoop {
  private applied = 0;
  private lastApplied: ChainPosition | undefined;
  private readonly unsubscribe: () => void;
  private waiters: (() => void)[] = [];
  /** The step ids applied here under the current driver's ids: ChainPosition.appliedAfter. */
  private readonly appliedIds = new AppliedSteps();

  constructor(private readonly o: HopInnerLoopOptions) {
    this.unsubscribe = o.onApplied((e) => {
      this.applied++;
      this.appliedIds.add(e.step, e.peer);
      const ids = this.appliedIds;
      this.lastApplied = { step: e.step, partners: [e.peer], drives: false, appliedAfter: (id) => ids.after(id) };
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  span(): Span {
    return this.o.local.span;
  }

  appliedSteps(): number {
    return this.applied;
  }

  chainPosition(): ChainPosition | undefined {
    const asked = this.o.askedWhilePaused;
    return this.lastApplied === undefined || asked === undefined ? this.lastApplied : { ...this.lastApplied, asked: (p) => asked(p) };
  }

  async innerSteps(n: number, signal?: AbortSignal): Promise<InnerStepsResult> {
    const target = this.applied + n;
    const start = this.applied;
    while (this.applied < target) {
      if (signal?.aborted === true) throw new AbortedError('inner steps stopped');
      await waitOrAbort((res) => this.waiters.push(res), signal);
    }
    return { applied: this.applied - start, abandoned: 0, meanLoss: NaN, tokens: 0 };
  }

  pause(): Promise<void> {
    return this.o.pause();
  }

  resume(): void {
    this.o.resume();
  }

  /**
   * While this hop waits to enter the outer rounds its driver steps it (the rounds of the driver's layers count
   * those steps), but ours do not, and the entry installs the holders' weights over their update: true keeps our
   * span's weights, AdamW moments and step count (runOuterRounds calls it when it lets the steps through), false puts
   * them back (inside the install's pause, before the holders' weights are written: a restore drops a step in
   * flight). So a joining hop's first counted step runs on the optimizer it had before the wait, as a waiting
   * driver's does (ChainTrainer.discardSteps): zero moments and step count 0 for a fresh joiner. Absent `saveState`
   * on the span (a stage that cannot keep it): nothing is kept.
   */
  async discardSteps(on: boolean): Promise<void> {
    if (on) await this.o.local.saveState?.();
    else await this.o.local.restoreState?.();
  }

  readLayers(): Promise<LayerParams[]> {
    return this.o.local.readLayers();
  }

  writeLayers(layers: LayerParams[]): Promise<void> {
    return this.o.local.writeLayers(layers);
  }

  close(): void {
    this.unsubscribe();
  }
}

/** A holder as the layer pool's view shows it. */
export interface ChainCandidate {
  peer: string;
  span: Span;
  /**
   * Lower is preferred among hops of the same span (measured RTT, load); ties go by a per-driver order (chainTieKey),
   * so that drivers that know nothing yet spread over the replicas rather than all asking the lowest peer id first.
   */
  cost?: number;
}

/**
 * A driver's order among equally good hops: FNV-1a of (driver, hop). Every driver orders the replicas of a span
 * differently but always the same way (a re-formed chain keeps its hops), with nothing shared or random.
 */
export function chainTieKey(driver: string, hop: string): number {
  let h = 0x811c9dc5;
  const s = `${driver}\u0000${hop}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * A chain from our own span to layer L: hops whose spans line up exactly (a hop's start is the previous hop's
 * end), fewest hops first (each hop costs two transfers per micro-batch), then lowest summed cost, then the driver's
 * own order of the hops (chainTieKey: drivers spread over equal replicas).
 * Excluded peers are left out. Returns null when no such chain exists.
 */
export function planChain(self: ChainCandidate, candidates: readonly ChainCandidate[], numLayers: number, exclude: ReadonlySet<string> = new Set()): ChainCandidate[] | null {
  if (self.span.start !== 0) return null;
  const byStart = new Map<number, ChainCandidate[]>();
  for (const c of candidates) {
    if (c.peer === self.peer || exclude.has(c.peer) || !(c.span.start < c.span.end) || c.span.end > numLayers) continue;
    const l = byStart.get(c.span.start) ?? [];
    l.push(c);
    byStart.set(c.span.start, l);
  }
  // shortest path over layer boundaries: best[layer] = (hops, cost, path)
  type Best = { hops: number; cost: number; path: ChainCandidate[] };
  const best = new Map<number, Best>([[self.span.end, { hops: 1, cost: 0, path: [self] }]]);
  // ties: the driver's own order of the hops (chainTieKey), then peer ids
  const order = (x: Best, y: Best): number => {
    for (let i = 0; i < Math.min(x.path.length, y.path.length); i++) {
      const [p, q] = [x.path[i]!.peer, y.path[i]!.peer];
      if (p === q) continue;
      const d = chainTieKey(self.peer, p) - chainTieKey(self.peer, q);
      return d !== 0 ? d : p < q ? -1 : 1;
    }
    return x.path.length - y.path.length;
  };
  const better = (a: Best, b: Best | undefined): boolean => b === undefined || a.hops < b.hops || (a.hops === b.hops && (a.cost < b.cost || (a.cost === b.cost && order(a, b) < 0)));
  for (let layer = self.span.end; layer < numLayers; layer++) {
    const at = best.get(layer);
    if (at === undefined) continue;
    for (const c of byStart.get(layer) ?? []) {
      const next: Best = { hops: at.hops + 1, cost: at.cost + (c.cost ?? 0), path: [...at.path, c] };
      if (better(next, best.get(c.span.end))) best.set(c.span.end, next);
    }
  }
  return best.get(numLayers)?.path ?? null;
}

/**
 * Whether a view's entry for a chain's driver says it no longer drives one (a hop then ends the lease it holds:
 * protocols/train-stage.ts `driverGone`): it is dead, or its heartbeat names no span that starts at layer 0 short of
 * the whole model (the pool moved it to other layers, or it holds the whole model and trains solo). A peer the view
 * does not know (undefined) may still drive: its lease ends by its release or when it lapses.
 */
export function driverGone(p: { state: 'alive' | 'stale' | 'dead'; span: Span | undefined } | undefined, numLayers: number): boolean {
  if (p === undefined) return false;
  if (p.state === 'dead') return true;
  return p.span === undefined || p.span.start !== 0 || p.span.end >= numLayers;
}
