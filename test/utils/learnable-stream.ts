/**
 * The token stream the multi-node training tests learn on, and the seeded generator that draws it. Every replica of
 * a test seeds its own generator, so each draws its own batches, and a rerun draws the same ones.
 */
import { IntTensor } from '../../src/tensor/index.js';
import type { Batch } from '../../src/training/index.js';

/** xorshift32: uniform in [0, 1); seed 0 counts as 1 (xorshift has no zero state). */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/**
 * A learnable stream: next = (5·t + 3) mod 64, from a random start per sequence. inputs and targets are [b, T]
 * row-major; targets are the inputs shifted by one step of the rule.
 */
export function learnableTokens(rand: () => number, b: number, T: number): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(b * T);
  const targets = new Int32Array(b * T);
  for (let s = 0; s < b; s++) {
    let t = Math.floor(rand() * 64);
    for (let i = 0; i < T; i++) {
      inputs[s * T + i] = t;
      t = (5 * t + 3) % 64;
      targets[s * T + i] = t;
    }
  }
  return { inputs, targets };
}

/** learnableTokens as a training Batch (inputs and targets [b, T]). */
export function learnableBatch(rand: () => number, b: number, T: number): Batch {
  const t = learnableTokens(rand, b, T);
  return { inputs: new IntTensor(t.inputs, [b, T]), targets: new IntTensor(t.targets, [b, T]) };
}
