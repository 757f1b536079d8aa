/**
 * The interfaces the training loop works through. training/ never builds a data loader or a model itself: the
 * caller passes a model that can run forward/backward and a stream of batches, so the same loop drives NeuroLLM,
 * a shard of it, or a tiny test model.
 */
import type { IntTensor, ParamSpec } from '../tensor/index.js';

/** One training batch: inputs[B, T] and targets[B, T] (next tokens; −100 = ignored position). */
export interface Batch {
  inputs: IntTensor;
  targets: IntTensor;
}

/** A model the trainer can optimise. */
export interface TrainableModel {
  /** Every trainable tensor with its gradient buffer, in a fixed order (optimizer state follows this order). */
  parameters(): ParamSpec[];
  /** Forward pass over inputs[B, T] and the mean cross-entropy against targets[B, T]; keeps what backward needs. */
  forwardLoss(inputs: IntTensor, targets: IntTensor): { loss: number; count: number };
  /** Backward pass of the last forwardLoss: accumulates into the gradients of parameters(). */
  backward(): void;
  /** Mean loss without gradients or saved activations (evaluation). */
  evalLoss(inputs: IntTensor, targets: IntTensor): { loss: number; count: number };
  /**
   * Optional: names of the tensors whose gradients are not finite, for skip reports finer than parameters()'s
   * groups (a flat model hands the optimizer a few large groups).
   */
  describeNonFinite?(): string[];
}

/**
 * Where batches come from. `position()` is a JSON-serialisable cursor saved in checkpoints; a source rebuilt at
 * that position yields the same batches an uninterrupted source would have (that is what exact resume needs).
 */
export interface BatchSource {
  next(signal?: AbortSignal): Batch | Promise<Batch>;
  position(): unknown;
}
