/**
 * Glue between a shard's flat buffers and the tensor engine's AdamW: one parameter group per run of consecutive
 * tensors with the same weight-decay flag (ParamLayout.decayRuns), each a view into the flat parameter and gradient
 * buffers. The runs tile the layout in order, so the optimizer's moments, concatenated, ARE the flat moment buffers
 * in the parameters' layout (what checkpoints store).
 */
import { AdamW, type AdamWConfig, type AdamWState, type Backend, type ParamSpec, Tensor } from '../tensor/index.js';
import { ModelConfigError } from './errors.js';
import { type ParamLayout } from './layout.js';
import { NEUROLLM_ADAMW } from './training-defaults.js';
import { type OptimizerState } from './checkpoint.js';

export interface OptimizableModel {
  layout: ParamLayout;
  params: Float32Array;
  grads: Float32Array;
}

/** AdamW parameter specs over the flat buffers: one per decay run, named `run<i>`. */
export function adamwParamSpecs(model: OptimizableModel): ParamSpec[] {
  return model.layout.decayRuns().map((r, i) => ({
    name: `run${i}`,
    param: new Tensor(model.params.subarray(r.offset, r.offset + r.size), [r.size]),
    grad: new Tensor(model.grads.subarray(r.offset, r.offset + r.size), [r.size]),
    weightDecay: r.decay,
  }));
}

/** An AdamW over the model with NeuroLLM's defaults (training-defaults.ts) unless overridden. */
export function createAdamW(backend: Backend, model: OptimizableModel, config: Partial<AdamWConfig> = {}): AdamW {
  return new AdamW(backend, adamwParamSpecs(model), { ...NEUROLLM_ADAMW, ...config });
}

/** The optimizer's state as flat moment buffers in the parameters' layout (for saveCheckpoint). */
export function flatOptimizerState(layout: ParamLayout, s: AdamWState): OptimizerState {
  const m = new Float32Array(layout.size);
  const v = new Float32Array(layout.size);
  const runs = layout.decayRuns();
  if (s.m.length !== runs.length || s.v.length !== runs.length) {
    throw new ModelConfigError(`optimizer state has ${s.m.length} groups, the layout has ${runs.length} decay runs`);
  }
  runs.forEach((r, i) => {
    if (s.m[i].length !== r.size || s.v[i].length !== r.size) throw new ModelConfigError(`optimizer group ${i} has ${s.m[i].length} elements, run needs ${r.size}`);
    m.set(s.m[i], r.offset);
    v.set(s.v[i], r.offset);
  });
  return { step: s.step, m, v };
}

/** The inverse of flatOptimizerState (for AdamW.loadState after loadCheckpoint). */
export function adamwStateFromFlat(layout: ParamLayout, o: OptimizerState): AdamWState {
  if (o.m.length !== layout.size || o.v.length !== layout.size) throw new ModelConfigError(`optimizer state has ${o.m.length} elements, layout needs ${layout.size}`);
  const runs = layout.decayRuns();
  return {
    step: o.step,
    m: runs.map((r) => o.m.slice(r.offset, r.offset + r.size)),
    v: runs.map((r) => o.v.slice(r.offset, r.offset + r.size)),
  };
}
