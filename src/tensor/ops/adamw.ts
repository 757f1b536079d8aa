/**
 * AdamW (decoupled weight decay, bias correction; PyTorch's formulation) with global-norm gradient clipping.
 *
 * One step:
 *   norm = sqrt(Σ over every gradient of g²)                (float64 accumulation)
 *   non-finite norm → the step is SKIPPED: parameters, moments and the step count stay as they were, `step()`
 *                     returns { applied: false, nonFinite: [names of the offending gradients] } and the
 *                     `step:skipped` event carries the same report, so the caller can log it and go on
 *                     (zeroing the gradients as usual).
 *   clip = maxGradNorm / (norm + 1e-6) when that is < 1, else 1   (torch.nn.utils.clip_grad_norm_)
 *   per parameter: p ·= 1 − lr·wd;  m = β1·m + (1 − β1)·g·clip;  v = β2·v + (1 − β2)·(g·clip)²;
 *                  p −= lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps)
 * Clipping never rewrites the gradients: the factor is folded into the kernel's gradScale.
 */
import type { Backend } from '../backend.js';
import { TypedEmitter } from '../../util/events.js';
import { InvalidArgumentError } from '../../util/errors.js';
import { type Tensor } from '../tensor.js';
import { expectSameShape } from './check.js';

export interface AdamWConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay factor (applied to parameters whose spec does not opt out). */
  weightDecay: number;
  /** Global gradient-norm bound; 0 or Infinity disables clipping (non-finite detection still runs). */
  maxGradNorm: number;
}

/** Engine defaults (PyTorch's AdamW defaults, plus clipping at 1.0 as is usual for LLM training). */
export const ADAMW_DEFAULTS: Readonly<AdamWConfig> = Object.freeze({
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
  maxGradNorm: 1.0,
});

export interface ParamSpec {
  /** Reported in skip events and used as the state key (default `param<i>`). */
  name?: string;
  param: Tensor;
  grad: Tensor;
  /** false exempts this parameter from weight decay (default true, as PyTorch). */
  weightDecay?: boolean;
}

export interface StepResult {
  applied: boolean;
  /** Steps applied so far, this one included when applied. */
  step: number;
  lr: number;
  /** Global gradient norm before clipping (NaN or Infinity when the step was skipped). */
  gradNorm: number;
  /** Factor the gradients were multiplied by (1 when not clipped). */
  clipScale: number;
  /** Names of the gradients holding NaN or ±Infinity (empty when applied). */
  nonFinite: string[];
}

export interface AdamWEvents {
  /** A step was skipped because a gradient held NaN or ±Infinity. */
  'step:skipped': StepResult;
}

export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

const CLIP_EPS = 1e-6;

/** sqrt(Σ g²) over all tensors, float64 accumulation; NaN/Infinity when any element is not finite. */
export function globalGradNorm(backend: Backend, grads: readonly Tensor[]): number {
  let ss = 0;
  for (const g of grads) ss += backend.sumSquares(g.data, g.numel);
  return Math.sqrt(ss);
}

export class AdamW {
  readonly events = new TypedEmitter<AdamWEvents>();
  readonly config: Readonly<AdamWConfig>;
  private readonly params: { name: string; param: Tensor; grad: Tensor; decay: boolean; m: Float32Array; v: Float32Array }[];
  private t = 0;

  constructor(
    private readonly backend: Backend,
    params: readonly ParamSpec[],
    config: Partial<AdamWConfig> = {},
  ) {
    const c = { ...ADAMW_DEFAULTS, ...config };
    checkConfig(c);
    this.config = Object.freeze(c);
    const names = new Set<string>();
    this.params = params.map((p, i) => {
      const name = p.name ?? `param${i}`;
      if (names.has(name)) throw new InvalidArgumentError(`AdamW: duplicate parameter name ${name}`);
      names.add(name);
      expectSameShape(`AdamW(${name})`, ['param', 'grad'], p.param, p.grad);
      return { name, param: p.param, grad: p.grad, decay: p.weightDecay !== false, m: new Float32Array(p.param.numel), v: new Float32Array(p.param.numel) };
    });
  }

  /** Steps applied so far. */
  get stepCount(): number {
    return this.t;
  }

  /** One optimizer step over every parameter; `lr` overrides the configured rate (for schedules). */
  step(opts: { lr?: number } = {}): StepResult {
    const lr = opts.lr ?? this.config.lr;
    if (!Number.isFinite(lr) || lr < 0) throw new InvalidArgumentError(`AdamW.step: lr ${lr} must be a finite number ≥ 0`);
    const gradNorm = globalGradNorm(
      this.backend,
      this.params.map((p) => p.grad),
    );
    if (!Number.isFinite(gradNorm)) {
      const nonFinite = this.params.filter((p) => !this.backend.allFinite(p.grad.data, p.grad.numel)).map((p) => p.name);
      const r: StepResult = { applied: false, step: this.t, lr, gradNorm, clipScale: 1, nonFinite };
      this.events.emit('step:skipped', r);
      return r;
    }
    const max = this.config.maxGradNorm;
    const clipScale = max > 0 && Number.isFinite(max) ? Math.min(1, max / (gradNorm + CLIP_EPS)) : 1;
    this.t++;
    const { beta1, beta2, eps, weightDecay } = this.config;
    for (const p of this.params) {
      this.backend.adamw(p.param.data, p.grad.data, p.m, p.v, p.param.numel, {
        lr,
        beta1,
        beta2,
        eps,
        weightDecay: p.decay ? weightDecay : 0,
        step: this.t,
        gradScale: clipScale,
      });
    }
    return { applied: true, step: this.t, lr, gradNorm, clipScale, nonFinite: [] };
  }

  /** Sets every gradient to zero (llm.c's zero_grad: backward passes accumulate). */
  zeroGrad(): void {
    for (const p of this.params) p.grad.data.fill(0);
  }

  /** Copies of the moments and the step count, in parameter order (for checkpoints). */
  state(): AdamWState {
    return { step: this.t, m: this.params.map((p) => new Float32Array(p.m)), v: this.params.map((p) => new Float32Array(p.v)) };
  }

  /** Restores a state() of an optimizer over parameters of the same sizes. */
  loadState(s: AdamWState): void {
    if (!Number.isInteger(s.step) || s.step < 0) throw new InvalidArgumentError(`AdamW.loadState: step ${s.step} must be an integer ≥ 0`);
    if (s.m.length !== this.params.length || s.v.length !== this.params.length) {
      throw new InvalidArgumentError(`AdamW.loadState: state holds ${s.m.length}/${s.v.length} moments for ${this.params.length} parameters`);
    }
    this.params.forEach((p, i) => {
      if (s.m[i].length !== p.m.length || s.v[i].length !== p.v.length) {
        throw new InvalidArgumentError(`AdamW.loadState: moments of ${p.name} have ${s.m[i].length}/${s.v[i].length} elements, expected ${p.m.length}`);
      }
    });
    this.params.forEach((p, i) => {
      p.m.set(s.m[i]);
      p.v.set(s.v[i]);
    });
    this.t = s.step;
  }
}

function checkConfig(c: AdamWConfig): void {
  const bad = (msg: string): never => {
    throw new InvalidArgumentError(`AdamW: ${msg}`, { config: { ...c } });
  };
  if (!Number.isFinite(c.lr) || c.lr < 0) bad(`lr ${c.lr} must be a finite number ≥ 0`);
  if (!(c.beta1 >= 0 && c.beta1 < 1)) bad(`beta1 ${c.beta1} must be in [0, 1)`);
  if (!(c.beta2 >= 0 && c.beta2 < 1)) bad(`beta2 ${c.beta2} must be in [0, 1)`);
  if (!(c.eps > 0) || !Number.isFinite(c.eps)) bad(`eps ${c.eps} must be a finite number > 0`);
  if (!Number.isFinite(c.weightDecay) || c.weightDecay < 0) bad(`weightDecay ${c.weightDecay} must be a finite number ≥ 0`);
  if (!(c.maxGradNorm >= 0)) bad(`maxGradNorm ${c.maxGradNorm} must be ≥ 0 (0 or Infinity disables clipping)`);
}
