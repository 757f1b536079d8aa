/**
 * A pipeline stage: one hop of a chain of layer holders, seen from the pipeline driver. The interface is
 * asynchronous and carries only plain arrays, so the in-process `LocalStage` here and a network stage (the same
 * calls as RPCs to the holder of the span) are interchangeable.
 *
 * Per training step the driver calls: beginStep → forward/backward per micro-batch in the schedule's order →
 * gradSumSquares (every stage) → applyStep with the global clip factor (every stage), or abortStep on all stages if
 * anything failed (weights change only in applyStep, so an abandoned step leaves no half-applied update).
 *
 * Micro-batch m's loss on the last stage is scaled by gradScale = count_m / count_total, so the gradients summed
 * over micro-batches are exactly those of the whole batch's mean loss (what SoloTrainer computes).
 */
import { adamwParamSpecs } from '../../model/optimizer.js';
import { LlamaShard } from '../../model/shard.js';
import type { LlamaConfig } from '../../model/config.js';
import type { Span } from '../../model/layout.js';
import type { Backend } from '../../tensor/index.js';
import { InvalidArgumentError } from '../../util/errors.js';
import { TrainingModelError } from '../errors.js';
import { trainerOptions, type TrainerOptions } from '../options.js';
import { spanText } from '../../util/span-text.js';

export interface StageForwardResult {
  /** Hidden states [B, T, C] for the next stage (a copy the caller owns); null on the last stage. */
  output: Float32Array | null;
  /** Last stage: mean loss of the micro-batch and its counted positions. */
  loss?: number;
  count?: number;
}

export interface StepApply {
  lr: number;
  /** Global-norm clip factor (the same on every stage). */
  clipScale: number;
}

export interface PipelineStage {
  readonly span: Span;
  readonly isFirst: boolean;
  readonly isLast: boolean;
  /** Starts training step `step`: clears gradients and micro-batch state. */
  beginStep(step: number): Promise<void>;
  /** Input: token ids [B·T] on the first stage, hidden states [B·T·C] otherwise; the last stage needs targets. */
  forward(step: number, mb: number, input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array, gradScale?: number): Promise<StageForwardResult>;
  /** dOut: gradient of this stage's output [B·T·C] (null on the last stage, which has it from the loss). Returns
   * the gradient of the input (a copy), or null on the first stage. */
  backward(step: number, mb: number, dOut: Float32Array | null): Promise<Float32Array | null>;
  /** Σ g² over this stage's gradients (float64); NaN/Infinity when any is not finite. */
  gradSumSquares(step: number): Promise<number>;
  /** AdamW with the given lr and clip factor; the optimizer's step count advances. */
  applyStep(step: number, a: StepApply): Promise<void>;
  /** Drops the step's gradients and activations (weights and moments untouched). */
  abortStep(step: number): Promise<void>;
  /** Forward without gradients (evaluation); the last stage returns the loss. */
  evalForward(input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array): Promise<StageForwardResult>;
}

/**
 * A stage in this process over a LlamaShard span. Micro-batches in flight each need their own activations, so the
 * stage keeps a small pool of LlamaShards that all adopt the same parameter buffer (one per micro-batch alive:
 * M for GPipe, at most S − s for 1F1B), each with its own gradient buffer; gradients are summed into the stage's
 * buffer once per step. Its AdamW is SoloTrainer's (same defaults, decay runs, kernel), with the clip factor
 * supplied by the driver instead of computed from this stage's norm alone.
 */
export class LocalStage implements PipelineStage {
  readonly span: Span;
  readonly params: Float32Array;
  /** The step's summed gradients (valid after gradSumSquares). */
  readonly grads: Float32Array;
  readonly options: TrainerOptions;
  private readonly pool: LlamaShard[] = [];
  private readonly inFlight = new Map<number, LlamaShard>();
  private readonly idle: LlamaShard[] = [];
  private readonly dlogits = new Map<number, Float32Array>();
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private t = 0;
  private step = -1;
  private collected = false;
  /** saveState's copy of the trainable state (moments null: they were zero, a fresh stage's); undefined: none. */
  private saved: { params: Float32Array; m: Float32Array | null; v: Float32Array | null; t: number } | undefined;

  constructor(
    readonly config: LlamaConfig,
    readonly backend: Backend,
    span: Span,
    opts: { params?: Float32Array; seed?: number; trainer?: Partial<TrainerOptions> } = {},
  ) {
    const first = new LlamaShard({ config, backend, span, params: opts.params, seed: opts.seed });
    this.span = first.span;
    this.params = first.params;
    this.grads = new Float32Array(first.layout.size);
    this.m = new Float32Array(first.layout.size);
    this.v = new Float32Array(first.layout.size);
    this.pool.push(first);
    this.idle.push(first);
    this.options = trainerOptions(opts.trainer);
  }

  get isFirst(): boolean {
    return this.pool[0]!.hasEmbed;
  }

  get isLast(): boolean {
    return this.pool[0]!.hasHead;
  }

  get layout(): LlamaShard['layout'] {
    return this.pool[0]!.layout;
  }

  /** AdamW steps applied. */
  get appliedSteps(): number {
    return this.t;
  }

  /** Shards allocated for micro-batches in flight (the stage's activation memory in units of one micro-batch). */
  get activationSlots(): number {
    return this.pool.length;
  }

  private checkStep(step: number): void {
    if (step !== this.step) throw new TrainingModelError(`stage ${spanText(this.span)}: call for step ${step} during step ${this.step}`);
  }

  private take(mb: number): LlamaShard {
    if (this.inFlight.has(mb)) throw new TrainingModelError(`stage: micro-batch ${mb} is already in flight`);
    let s = this.idle.pop();
    if (s === undefined) {
      s = new LlamaShard({ config: this.config, backend: this.backend, span: this.span, params: this.params });
      this.pool.push(s);
    }
    this.inFlight.set(mb, s);
    return s;
  }

  beginStep(step: number): Promise<void> {
    this.reset();
    this.step = step;
    return Promise.resolve();
  }

  private reset(): void {
    for (const s of this.pool) s.zeroGrad();
    this.grads.fill(0);
    this.inFlight.clear();
    this.idle.length = 0;
    this.idle.push(...this.pool);
    this.dlogits.clear();
    this.collected = false;
  }

  forward(step: number, mb: number, input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array, gradScale = 1): Promise<StageForwardResult> {
    this.checkStep(step);
    const s = this.take(mb);
    const out = s.forward(input, B, T);
    if (!s.hasHead) return Promise.resolve({ output: out.slice() });
    if (targets === undefined) throw new InvalidArgumentError('the last stage needs the targets');
    const r = s.loss(targets, { grad: true, gradScale });
    this.dlogits.set(mb, r.dlogits!.slice());
    return Promise.resolve({ output: null, loss: r.loss, count: r.count });
  }

  backward(step: number, mb: number, dOut: Float32Array | null): Promise<Float32Array | null> {
    this.checkStep(step);
    const s = this.inFlight.get(mb);
    if (s === undefined) throw new TrainingModelError(`stage: backward of micro-batch ${mb}, which has no forward`);
    let d = dOut;
    if (s.hasHead) {
      d = this.dlogits.get(mb)!;
      this.dlogits.delete(mb);
    }
    if (d === null) throw new InvalidArgumentError('stage.backward: a stage without the head needs the output gradient');
    const dIn = s.backward(d);
    this.inFlight.delete(mb);
    this.idle.push(s);
    return Promise.resolve(dIn === null ? null : dIn.slice());
  }

  gradSumSquares(step: number): Promise<number> {
    this.checkStep(step);
    if (!this.collected) {
      // sum the pool's gradients in pool order (deterministic)
      this.grads.set(this.pool[0]!.grads);
      for (let i = 1; i < this.pool.length; i++) {
        const g = this.pool[i]!.grads;
        for (let j = 0; j < g.length; j++) this.grads[j] += g[j]!;
      }
      this.collected = true;
    }
    return Promise.resolve(this.backend.sumSquares(this.grads, this.grads.length));
  }

  applyStep(step: number, a: StepApply): Promise<void> {
    this.checkStep(step);
    if (!this.collected) throw new TrainingModelError('stage.applyStep before gradSumSquares');
    if (!Number.isFinite(a.lr) || a.lr < 0 || !(a.clipScale > 0 && a.clipScale <= 1)) throw new InvalidArgumentError(`stage.applyStep: lr ${a.lr}, clipScale ${a.clipScale}`);
    this.t++;
    const o = this.options;
    // one kernel call per decay run, as AdamW does over adamwParamSpecs
    for (const p of adamwParamSpecs({ layout: this.layout, params: this.params, grads: this.grads })) {
      const off = p.param.data.byteOffset / 4 - this.params.byteOffset / 4;
      const n = p.param.numel;
      this.backend.adamw(p.param.data, p.grad.data, this.m.subarray(off, off + n), this.v.subarray(off, off + n), n, {
        lr: a.lr,
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weightDecay: p.weightDecay === false ? 0 : o.weightDecay,
        step: this.t,
        gradScale: a.clipScale,
      });
    }
    this.reset();
    return Promise.resolve();
  }

  abortStep(step: number): Promise<void> {
    if (step === this.step) this.reset();
    return Promise.resolve();
  }

  /**
   * Keeps a copy of the span's trainable state: its weights, AdamW's moments and step count (the bias correction).
   * restoreState puts it back, so that the steps applied in between leave no trace in the optimizer: a driver's steps
   * run while it waits to enter the outer rounds, whose update the entry replaces (training/chain.ts discardSteps).
   * A save while a copy is kept keeps that copy (the older state): a hop whose entry stopped or failed after its
   * driver stepped it enters again later, and every step since the first save is one its rounds never counted
   * (training/chain-outer.ts). Costs one copy of the span's weights, and two more of its moments once it has stepped
   * (a fresh stage's zero moments are not copied). Call between steps (weights change only in applyStep: a copy
   * taken while a step's gradients are being computed is the state before it).
   */
  saveState(): Promise<void> {
    if (this.saved !== undefined) return Promise.resolve();
    const fresh = this.t === 0;
    this.saved = { params: this.params.slice(), m: fresh ? null : this.m.slice(), v: fresh ? null : this.v.slice(), t: this.t };
    return Promise.resolve();
  }

  /**
   * Puts back the state saveState kept (weights, moments, step count) and forgets it; false (nothing changed) when
   * there is none. A step in flight is dropped (its gradients were of the weights now replaced).
   */
  restoreState(): Promise<boolean> {
    const s = this.saved;
    if (s === undefined) return Promise.resolve(false);
    this.saved = undefined;
    this.params.set(s.params);
    if (s.m === null) this.m.fill(0);
    else this.m.set(s.m);
    if (s.v === null) this.v.fill(0);
    else this.v.set(s.v);
    this.t = s.t;
    this.reset();
    return Promise.resolve(true);
  }

  evalForward(input: Int32Array | Float32Array, B: number, T: number, targets?: Int32Array): Promise<StageForwardResult> {
    const s = this.idle[0] ?? this.pool[0]!;
    const out = s.forward(input, B, T);
    if (!s.hasHead) return Promise.resolve({ output: out.slice() });
    if (targets === undefined) throw new InvalidArgumentError('the last stage needs the targets');
    const r = s.loss(targets, { grad: false });
    return Promise.resolve({ output: null, loss: r.loss, count: r.count });
  }
}
