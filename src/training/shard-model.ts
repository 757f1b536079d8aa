/**
 * Adapts a NeuroLLM shard holding the whole model (embedding through LM head) to the trainer's TrainableModel:
 * forward → cross-entropy (which writes d loss/d logits) → backward. Parameters go to AdamW as the model's decay
 * runs (model/optimizer.ts: views of the flat buffers, weight decay on matrices only), so the optimizer's moments
 * concatenate to flat buffers in the parameters' layout, which is what checkpoints store.
 */
import { adamwParamSpecs } from '../model/optimizer.js';
import { type LlamaShard } from '../model/shard.js';
import { ShapeError, type Backend, type IntTensor, type ParamSpec } from '../tensor/index.js';
import { TrainingModelError } from './errors.js';
import type { TrainableModel } from './types.js';
import { spanText } from '../util/span-text.js';

function batchShape(op: string, inputs: IntTensor, targets: IntTensor): { B: number; T: number } {
  if (inputs.shape.length !== 2) throw new ShapeError(op, 'inputs must be [B, T]', { inputs: inputs.shape, targets: targets.shape });
  if (targets.shape.length !== 2 || targets.shape[0] !== inputs.shape[0] || targets.shape[1] !== inputs.shape[1]) {
    throw new ShapeError(op, 'targets must have the shape of inputs', { inputs: inputs.shape, targets: targets.shape });
  }
  return { B: inputs.shape[0], T: inputs.shape[1] };
}

export class ShardTrainable implements TrainableModel {
  private dlogits: Float32Array | null = null;

  constructor(readonly shard: LlamaShard) {
    if (!shard.hasEmbed || !shard.hasHead) {
      throw new TrainingModelError(`solo training needs the whole model; this shard holds layers ${spanText(shard.span)}`);
    }
  }

  parameters(): ParamSpec[] {
    return adamwParamSpecs(this.shard);
  }

  describeNonFinite(): string[] {
    const be: Backend = this.shard.backend;
    return this.shard.entries.filter((e) => !be.allFinite(this.shard.grads.subarray(e.offset, e.offset + e.size), e.size)).map((e) => e.name);
  }

  forwardLoss(inputs: IntTensor, targets: IntTensor): { loss: number; count: number } {
    const { B, T } = batchShape('train.forward', inputs, targets);
    this.shard.forward(inputs.data, B, T);
    const r = this.shard.loss(targets.data, { grad: true });
    this.dlogits = r.dlogits;
    return { loss: r.loss, count: r.count };
  }

  backward(): void {
    const d = this.dlogits;
    if (d === null) throw new TrainingModelError('train.backward: no forwardLoss waits for a backward');
    this.dlogits = null;
    this.shard.backward(d);
  }

  evalLoss(inputs: IntTensor, targets: IntTensor): { loss: number; count: number } {
    const { B, T } = batchShape('train.eval', inputs, targets);
    this.dlogits = null;
    this.shard.forward(inputs.data, B, T);
    const r = this.shard.loss(targets.data, { grad: false });
    return { loss: r.loss, count: r.count };
  }
}
