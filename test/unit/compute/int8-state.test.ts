/**
 * A compute worker configured with `weights: 'int8'` (what `--weights int8` starts), driven in-process through its
 * handler table: every model it builds is quantized on install; its hash is the float32 weights' span hash; it
 * decodes through sessions; it refuses, with typed errors, what needs float32 weights (training, getParams,
 * setParams, checkpoints).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NULL_CONTEXT } from '../../../src/compute/context.js';
import { createHandlers, runHandler } from '../../../src/compute/handlers.js';
import { ComputeState } from '../../../src/compute/state.js';
import { LlamaShard, makeConfig, spanHash } from '../../../src/model/index.js';
import { createReferenceBackend } from '../../../src/tensor/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const config = makeConfig({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, vocab_size: 64, max_position_embeddings: 32 });

describe('compute worker with int8 weights', () => {
  it('quantizes on install, keeps the f32 hash, decodes, refuses float32-only jobs', async () => {
    const state = await ComputeState.create({ backend: 'reference', weights: 'int8' });
    assert.equal(state.weights, 'int8');
    const h = createHandlers(state);
    const run = <T extends Parameters<typeof runHandler>[1]>(job: T): unknown => runHandler(h, job, NULL_CONTEXT);

    const init = (await run({ type: 'initModel', config, seed: 3 })) as { hash: string; paramCount: number };
    const f32 = new LlamaShard({ config, backend: createReferenceBackend(), seed: 3 });
    const want = spanHash(f32.layout, f32.params);
    assert.equal(init.hash, want);
    assert.equal(init.paramCount, f32.params.length);
    assert.equal(((await run({ type: 'modelHash' })) as { hash: string }).hash, want);
    assert.equal(state.model().shard.weights, 'int8');
    assert.equal(state.model().trainer, undefined); // the whole model, but no trainer

    // a session decodes: the prompt, then one token at a time
    await run({ type: 'sessionOpen', id: 's1', maxLen: 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } });
    const first = (await run({ type: 'sessionStep', id: 's1', ids: Int32Array.from([1, 5, 9]), chunks: [3] })) as { tokens: Int32Array };
    assert.equal(first.tokens.length, 1);
    const next = (await run({ type: 'sessionStep', id: 's1', ids: first.tokens, chunks: [1] })) as { tokens: Int32Array; length: number };
    assert.equal(next.length, 4);

    const refused = async (job: Parameters<typeof runHandler>[1]): Promise<void> => {
      await assert.rejects(async () => run(job), (e: unknown) => isNeuroShardError(e) && /int8/.test((e as Error).message));
    };
    await refused({ type: 'getParams' });
    await refused({ type: 'setParams', params: new Float32Array(f32.params.length) });
    await refused({ type: 'trainStep', inputs: new Int32Array(4), targets: new Int32Array(4), B: 1, T: 4 });
    await refused({ type: 'saveCheckpoint', root: '/nonexistent-int8-test' });
  });

  it('refuses an unknown weights format', async () => {
    await assert.rejects(ComputeState.create({ backend: 'reference', weights: 'int4' as 'int8' }), /weights must be f32 or int8/);
  });
});
