/**
 * Learning, measured (issue 3 §9): a tiny NeuroLLM (2 layers × 64, 4/2 heads, the genesis vocabulary of 4,096)
 * trained for 200 steps in the compute worker on a fixed genesis slice (the first 8,192 tokens of training shard 1,
 * batches of 8 × 64) brings its loss on that slice far below what token frequencies alone can give.
 *
 * The threshold: H, the entropy of the slice's own next-token frequencies, is the lowest mean loss that any model
 * ignoring context can score on this slice (its best context-free predictor is exactly those frequencies); it is
 * about 6.43 nats here, against ln 4096 = 8.32 for the untrained model. The test asks for a loss below H − 1 nat
 * (a perplexity e times lower than the best context-free model): only a model that predicts from the preceding
 * tokens gets there. Measured when the test was written: 8.33 → 3.73 in about 2 s on one thread, so the margin
 * (1.7 nats) absorbs kernel-level numeric changes. The slice is what it trains on: this shows the optimiser, the
 * model's gradients and the data path working together, not generalisation (scripts/learning-run.mjs and
 * docs/learning-curve.svg measure the held-out loss of nano).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ComputeClient, WorkerTrainStepper, batchSource, toTrainBatch } from '../../../src/compute/index.js';
import { BatchStream, openCorpus, sequentialBatches } from '../../../src/data/index.js';
import { makeConfig } from '../../../src/model/index.js';
import { trainLoop } from '../../../src/training/index.js';

const SLICE_TOKENS = 8192;
const STEPS = 200;
const B = 8;
const T = 64;

/** Entropy (nats) of the next-token frequencies of `tokens` (each token after the first is a target). */
function targetEntropy(tokens: Uint16Array): number {
  const counts = new Map<number, number>();
  for (let i = 1; i < tokens.length; i++) counts.set(tokens[i], (counts.get(tokens[i]) ?? 0) + 1);
  const n = tokens.length - 1;
  let h = 0;
  for (const c of counts.values()) h -= (c / n) * Math.log(c / n);
  return h;
}

describe('learning: a tiny model on a fixed genesis slice', () => {
  it(`loss on the slice falls below its unigram entropy minus 1 nat within ${STEPS} steps`, async (t) => {
    const corpus = await openCorpus(undefined);
    const slice = (await corpus.loadShard(corpus.trainShardIds()[0])).slice(0, SLICE_TOKENS);
    assert.equal(slice.length, SLICE_TOKENS);
    const H = targetEntropy(slice);
    const threshold = H - 1;
    const config = makeConfig({
      hidden_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      vocab_size: corpus.tokenizer.vocabSize,
      max_position_embeddings: T,
    });
    // every window of the slice, in order: the same batches at every evaluation
    const evalSet = sequentialBatches(slice, { batchSize: B, seqLen: T }).map(toTrainBatch);
    const client = await ComputeClient.start({ threads: 1 });
    try {
      await client.run({ type: 'initModel', config, seed: 1, trainer: { lr: 3e-3, warmupSteps: 10, decaySteps: STEPS } });
      const stepper = new WorkerTrainStepper(client);
      const curve: { step: number; loss: number }[] = [{ step: 0, ...(await stepper.evaluate(evalSet)) }];
      const r = await trainLoop({
        stepper,
        data: batchSource(new BatchStream([{ id: 1, tokens: slice }], { batchSize: B, seqLen: T, seed: 5 })),
        targetStep: STEPS,
        evalEvery: STEPS / 2,
        evalBatches: () => evalSet,
        onEval: (e) => curve.push(e),
      });
      assert.equal(r.step, STEPS);
      const [start, mid, end] = curve.map((c) => c.loss);
      const report = `slice entropy ${H.toFixed(3)}, threshold ${threshold.toFixed(3)}; loss ${curve.map((c) => `${c.step}: ${c.loss.toFixed(3)}`).join(', ')}`;
      t.diagnostic(report);
      assert.ok(Math.abs(start - Math.log(config.vocab_size)) < 0.1, `an untrained model scores about ln V: ${report}`);
      assert.ok(mid < start && end < mid, `the loss keeps falling: ${report}`);
      assert.ok(end < threshold, `the model learned from context: ${report}`);
    } finally {
      await client.close();
    }
  });
});
