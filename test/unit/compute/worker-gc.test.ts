import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { WorkerGc, WORKER_GC_DEFAULTS, shouldCollect } from '../../../src/compute/worker-gc.js';
import { ComputeClient } from '../../../src/compute/client.js';
import { makeConfig } from '../../../src/model/config.js';

const MiB = 1024 * 1024;

describe('compute worker: collection when its array buffers grew (issue 12)', () => {
  it('shouldCollect: growth since the last collection and the least interval both needed', () => {
    const p = { growthBytes: 8 * MiB, minIntervalMs: 5_000 };
    assert.equal(shouldCollect(p, { arrayBuffersBytes: 20 * MiB, baselineBytes: 12 * MiB, nowMs: 10_000, lastMs: 0 }), true);
    assert.equal(shouldCollect(p, { arrayBuffersBytes: 20 * MiB - 1, baselineBytes: 12 * MiB, nowMs: 10_000, lastMs: 0 }), false, 'grew less than 8 MiB');
    assert.equal(shouldCollect(p, { arrayBuffersBytes: 40 * MiB, baselineBytes: 12 * MiB, nowMs: 4_999, lastMs: 0 }), false, 'too soon after the last');
  });

  it('WorkerGc collects once per growth, lowers its mark when buffers shrink, and does nothing without a collector', () => {
    let ab = 10 * MiB;
    let now = 0;
    let runs = 0;
    const g = new WorkerGc(() => void runs++, () => ab, () => now, { growthBytes: 8 * MiB, minIntervalMs: 1_000 });
    assert.equal(g.maybeCollect(), false);
    ab = 19 * MiB;
    assert.equal(g.maybeCollect(), true);
    assert.equal(runs, 1);
    now = 500;
    ab = 40 * MiB;
    assert.equal(g.maybeCollect(), false, 'within the least interval');
    now = 2_000;
    assert.equal(g.maybeCollect(), true, 'grew 21 MiB since the last collection');
    assert.equal(runs, 2);
    ab = 5 * MiB; // a model released: the mark follows it down
    now = 4_000;
    assert.equal(g.maybeCollect(), false);
    ab = 14 * MiB;
    assert.equal(g.maybeCollect(), true, 'growth counted from the lower mark (5 MiB)');
    const none = new WorkerGc(undefined, () => 1e12, () => 1e12);
    assert.equal(none.maybeCollect(), false);
    assert.equal(none.policy, WORKER_GC_DEFAULTS);
  });

  it('a real worker frees the KV caches of closed sessions without V8 pressure, and reports its own memory', async () => {
    const c = await ComputeClient.start({ threads: 1 });
    try {
      // 12 sessions × 2 MiB of KV cache (1,024 positions × 2 layers × K and V × 128 floats × 4 B)
      const config = makeConfig({ hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 4, intermediate_size: 256, vocab_size: 64, max_position_embeddings: 1024 });
      await c.run({ type: 'initModel', config, seed: 1 });
      let kv = 0;
      for (let i = 0; i < 12; i++) {
        const r = await c.run({ type: 'sessionOpen', id: `s${i}`, maxLen: 1024 });
        kv += r.kvBytes;
        await c.run({ type: 'sessionStep', id: `s${i}`, ids: Int32Array.of(1, 2, 3), chunks: [3] });
      }
      for (let i = 0; i < 12; i++) await c.run({ type: 'sessionClose', id: `s${i}` });
      assert.ok(kv >= 20 * MiB, `the sessions held ${kv} bytes of KV cache`);
      // the worker reports every 10 s; its buffers must come back under the closed sessions' total (V8 alone would
      // wait for its external-memory limit, about 64 MiB of growth, before collecting)
      const deadline = Date.now() + 60_000;
      let last: number | undefined;
      while (Date.now() < deadline) {
        last = c.workerMemory?.arrayBuffersBytes;
        if (last !== undefined && last < kv / 4) break;
        await new Promise<void>((resolve) => {
          const off = c.on('worker:memory', () => {
            off();
            resolve();
          });
        });
      }
      assert.ok(last !== undefined && last < kv / 4, `the worker's array buffers stayed at ${last} bytes after closing ${kv} bytes of sessions`);
    } finally {
      await c.close();
    }
  });
});
