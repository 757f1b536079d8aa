/**
 * A tiny TrainableModel for trainer tests, built from the engine's own ops: a bigram language model whose logits
 * are one row of a [V, V] table per input token (embedding lookup → cross-entropy). Real kernels, real AdamW, no
 * dependency on the full NeuroLLM.
 */
import { CrossEntropy, Embedding, Tensor, type Backend, type IntTensor, type ParamSpec } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';
import type { TrainableModel } from '../../../src/training/index.js';

export class BigramModel implements TrainableModel {
  readonly table: Tensor;
  readonly grad: Tensor;
  /** When set, backward() writes NaN into the gradient (to test the skip path). */
  poisonNextBackward = false;
  private readonly emb: Embedding;
  private readonly ce: CrossEntropy;

  constructor(
    private readonly backend: Backend,
    readonly V: number,
    seed = 1,
  ) {
    this.table = Tensor.randn([V, V], new Rng(seed), 0.02);
    this.grad = Tensor.zeros([V, V]);
    this.emb = new Embedding(backend);
    this.ce = new CrossEntropy(backend);
  }

  parameters(): ParamSpec[] {
    return [{ name: 'table', param: this.table, grad: this.grad }];
  }

  forwardLoss(inputs: IntTensor, targets: IntTensor): { loss: number; count: number } {
    const logits = this.emb.forward(this.table, inputs); // [B, T, V]
    return this.ce.forward(logits, targets);
  }

  backward(): void {
    const dlogits = this.ce.backward();
    this.emb.backward(dlogits, this.grad);
    if (this.poisonNextBackward) {
      this.grad.data[3] = NaN;
      this.poisonNextBackward = false;
    }
  }

  evalLoss(inputs: IntTensor, targets: IntTensor): { loss: number; count: number } {
    const logits = this.emb.forward(this.table, inputs);
    return this.ce.forward(logits, targets, { computeGrad: false });
  }
}
