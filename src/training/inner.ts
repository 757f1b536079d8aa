/**
 * The inner loop as DiLoCo's outer sync sees it (issue 9 §2 calls it; §1 implements it with the chain trainer).
 *
 * A node trains the span it holds inside a chain of holders covering 0..L−1 (src/training/chain.ts): the chain's
 * driver (the holder of layer 0) runs the steps; every hop, driver or not, applies each step's AdamW update to its
 * own span. So "inner steps" are counted per node as the AdamW steps its span applied (`appliedSteps`), and on a
 * hop that does not drive, `innerSteps(n)` waits for the chain's driver to apply n more.
 *
 * The outer sync works only between steps: `pause()` resolves once no step is in flight on this node and holds new
 * ones off (a driver stops issuing steps; a passive hop answers `STAGE_PAUSED` to the next begin, which aborts that
 * step on the whole chain with no half-applied update) until `resume()`. Inside a pause the held span's weights are
 * read per layer and replaced per layer (the outer Nesterov step's result); replacing keeps AdamW's moments.
 *
 * Layers are the model hash's layers (model/hash.ts, training/diloco.ts `layerRanges`): 'embed', 'layers.<i>',
 * 'head', each one contiguous range of the span's flat parameter buffer.
 */
import type { Span } from '../model/layout.js';

/** One held layer's parameters (a copy: the caller owns it). */
export interface LayerParams {
  /** 'embed', 'layers.<i>' or 'head'. */
  id: string;
  params: Float32Array;
}

export interface InnerStepsResult {
  /** AdamW steps applied by this node's span during the call. */
  applied: number;
  /** Steps abandoned during the call (a hop died, a pause): nothing of them was applied anywhere. */
  abandoned: number;
  /** Mean training loss over the applied steps (NaN when this node does not see the loss, or none applied). */
  meanLoss: number;
  /** Tokens of the applied steps (0 on a node that does not drive). */
  tokens: number;
}

/**
 * Where a chain stage stands after its last applied step (./rounds.ts ChainBoundary): the step's id (its driver's step
 * counter, carried by every op of the step) and the chain's other stages that applied it with us (a driver: its hops;
 * a hop: its driver). Chain partners close their outer rounds after the same step and begin the same round number.
 */
export interface ChainPosition {
  step: number;
  partners: string[];
  drives: boolean;
  /**
   * A hop: whether `peer` (a driver) asked us for a step since we paused at this boundary (protocols/train-stage.ts
   * refuses it, STAGE_PAUSED). A driver that closes a round at this step asks for none before it closed it.
   */
  asked?: (peer: string) => boolean;
  /**
   * The chain steps this node applied with an id after `id`, under the ids of its `step` (./applied-steps.ts);
   * undefined when it does not know. Absent: ids are read as steps (rounds.ts partnerAt).
   */
  appliedAfter?: (id: number) => number | undefined;
}

export interface InnerLoop {
  /** The span this node holds and trains (undefined while it holds none). */
  span(): Span | undefined;
  /** AdamW steps this node's span has applied since the loop started. */
  appliedSteps(): number;
  /**
   * Resolves once this node's span has applied `n` more AdamW steps (a driver runs them, re-forming its chain when a
   * hop dies; a passive hop waits for its driver). Rejects with AbortedError when `signal` fires.
   */
  innerSteps(n: number, signal?: AbortSignal): Promise<InnerStepsResult>;
  /** Holds further steps off and resolves when none is in flight on this node. */
  pause(): Promise<void>;
  /**
   * A driver: the steps issued from now on are discarded (true: their update to our span will be replaced, so they do
   * not count as our training) or count again (false). runOuterRounds marks the drive while it waits to enter. Resolves
   * once the span's optimizer state is kept (true) or put back (false: the discarded steps leave no trace in its
   * weights, AdamW moments and step count); call between steps.
   * A hop (HopInnerLoop): the same for the steps its driver applies while it waits to enter (its rounds do not count
   * them); runOuterRounds keeps the state when its entry hold ends and puts it back inside the install's pause.
   */
  discardSteps?(on: boolean): void | Promise<void>;
  resume(): void;
  /** The held span's parameters per layer, in layout order (call inside a pause). */
  readLayers(): Promise<LayerParams[]>;
  /** Replaces the named layers' parameters (same sizes; AdamW's moments are kept). Call inside a pause. */
  writeLayers(layers: LayerParams[]): Promise<void>;
  /** The chain step this node applied last and its partners in it; undefined for a node that trains alone. */
  chainPosition?(): ChainPosition | undefined;
}
