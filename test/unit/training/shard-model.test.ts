import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeConfig } from '../../../src/model/config.js';
import { createModel, LlamaShard } from '../../../src/model/shard.js';
import { createReferenceBackend, IntTensor } from '../../../src/tensor/index.js';
import { ShardTrainable, SoloTrainer } from '../../../src/training/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { Rng } from '../../../src/util/rng.js';

const config = makeConfig({
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  intermediate_size: 32,
  vocab_size: 32,
  max_position_embeddings: 16,
});

function batch(seed: number): { inputs: IntTensor; targets: IntTensor } {
  const rng = new Rng(seed);
  const x = new Int32Array(2 * 6).map(() => rng.int(32));
  return { inputs: new IntTensor(x, [2, 6]), targets: new IntTensor(x.map((v) => (v + 1) % 32), [2, 6]) };
}

describe('training/ShardTrainable', () => {
  it('trains a whole NeuroLLM shard: the loss on a repeated batch falls', () => {
    const backend = createReferenceBackend();
    const trainer = new SoloTrainer(backend, new ShardTrainable(createModel(config, backend, { seed: 1 })), { lr: 3e-2, warmupSteps: 0 });
    const b = batch(1);
    const first = trainer.trainStep(b).loss;
    let last = first;
    for (let i = 0; i < 12; i++) last = trainer.trainStep(b).loss;
    assert.ok(last < first * 0.7, `${first} → ${last}`);
  });

  it('names the tensors whose gradients are not finite', () => {
    const backend = createReferenceBackend();
    const shard = createModel(config, backend, { seed: 1 });
    const t = new ShardTrainable(shard);
    const b = batch(2);
    t.forwardLoss(b.inputs, b.targets);
    t.backward();
    assert.deepEqual(t.describeNonFinite(), []);
    const e = shard.entries.find((x) => x.name.endsWith('layers.1.mlp.up_proj.weight'))!;
    shard.grads[e.offset + 5] = Infinity;
    assert.deepEqual(t.describeNonFinite(), [e.name]);
  });

  it('refuses a shard without the embedding or the head, and backward without forward', () => {
    const backend = createReferenceBackend();
    const part = new LlamaShard({ config, backend, span: { start: 1, end: 2 } });
    // the span as the CLI writes it (--span 1:2), as every other span in messages since session 27
    assert.throws(() => new ShardTrainable(part), (e) => isNeuroShardError(e, 'TRAINING_MODEL') && e.message.endsWith('holds layers 1:2'));
    const t = new ShardTrainable(createModel(config, backend));
    assert.throws(() => t.backward(), (e) => isNeuroShardError(e, 'TRAINING_MODEL'));
    const b = batch(3);
    assert.throws(() => t.forwardLoss(b.inputs, new IntTensor(new Int32Array(6), [1, 6])), (e) => isNeuroShardError(e, 'SHAPE_MISMATCH'));
  });
});
