/**
 * Continuous batching through a real compute worker: eight sessions whose decode steps are sent together run as
 * batched forwards (the results say so) and every session gets the tokens it gets when the sessions run one after
 * another; a step that fails (an unknown session) fails alone; with the batch window a straggler's step still
 * joins a batch.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { Rng } from '../../../src/util/rng.js';

const config = bundledGenesis().config;
const SESSIONS = 8;
const STEPS = 12;

function prompt(i: number): Int32Array {
  const rng = new Rng(900 + i);
  return Int32Array.from({ length: 3 + i }, () => rng.int(config.vocab_size));
}

/** Greedy tokens of every session: all decode steps of a round sent at once (concurrent) or one by one. */
async function run(client: ComputeClient, tag: string, concurrent: boolean): Promise<{ tokens: number[][]; batches: number[] }> {
  const ids = Array.from({ length: SESSIONS }, (_, i) => `${tag}-${i}`);
  const tokens: number[][] = ids.map(() => []);
  const batches: number[] = [];
  const next: number[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    await client.run({ type: 'sessionOpen', id: ids[i], maxLen: 64, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } });
    const p = prompt(i);
    const r = await client.run({ type: 'sessionStep', id: ids[i], ids: p, chunks: [p.length] });
    next.push(r.tokens![0]);
  }
  for (let t = 0; t < STEPS; t++) {
    next.forEach((tok, i) => tokens[i].push(tok));
    const step = (i: number): ReturnType<ComputeClient['run']> => client.run({ type: 'sessionStep', id: ids[i], ids: Int32Array.of(next[i]), chunks: [1] });
    const rs = concurrent ? await Promise.all(ids.map((_, i) => step(i))) : await ids.reduce<Promise<Awaited<ReturnType<typeof step>>[]>>(async (acc, _, i) => [...(await acc), await step(i)], Promise.resolve([]));
    rs.forEach((r, i) => {
      const res = r as { tokens: Int32Array; batch: number };
      next[i] = res.tokens[0];
      batches.push(res.batch);
    });
  }
  for (const id of ids) await client.run({ type: 'sessionClose', id });
  return { tokens, batches };
}

describe('compute worker: continuous batching', () => {
  let client: ComputeClient;
  before(async () => {
    client = await ComputeClient.start({ threads: 2 });
    await client.run({ type: 'initModel', config, seed: 0 });
  });
  after(async () => {
    await client.close();
  });

  it('runs concurrent decode steps as batches and gives every session its solo tokens', async () => {
    const solo = await run(client, 'solo', false);
    assert.ok(solo.batches.every((b) => b === 1), 'one at a time: no batches');
    const together = await run(client, 'together', true);
    assert.deepEqual(together.tokens, solo.tokens);
    const batched = together.batches.filter((b) => b > 1).length;
    assert.ok(batched >= (SESSIONS * STEPS) / 2, `most steps ran batched (batch sizes: ${together.batches.join(',')})`);
    assert.ok(Math.max(...together.batches) <= 8);
  });

  it('fails a bad step alone', async () => {
    for (const id of ['x', 'y']) {
      await client.run({ type: 'sessionOpen', id, maxLen: 16 });
      await client.run({ type: 'sessionStep', id, ids: Int32Array.of(5), chunks: [1] });
    }
    const [a, bad, b] = await Promise.allSettled([
      client.run({ type: 'sessionStep', id: 'x', ids: Int32Array.of(6), chunks: [1] }),
      client.run({ type: 'sessionStep', id: 'nope', ids: Int32Array.of(6), chunks: [1] }),
      client.run({ type: 'sessionStep', id: 'y', ids: Int32Array.of(6), chunks: [1] }),
    ]);
    assert.equal(a.status, 'fulfilled');
    assert.equal(b.status, 'fulfilled');
    assert.equal(bad.status, 'rejected');
    assert.equal((bad as PromiseRejectedResult).reason.code, 'SESSION_UNKNOWN');
    for (const id of ['x', 'y']) await client.run({ type: 'sessionClose', id });
  });

  it('waits up to the batch window for a straggler when several sessions are decoding', async () => {
    // a wide window so that a loaded machine cannot make the test miss it; the default is 2 ms
    const w = await ComputeClient.start({ threads: 1, batchWindowMs: 500 });
    try {
      await w.run({ type: 'initModel', config, seed: 0 });
      for (const id of ['x', 'y']) {
        await w.run({ type: 'sessionOpen', id, maxLen: 16 });
        await w.run({ type: 'sessionStep', id, ids: Int32Array.of(5), chunks: [1] });
      }
      // x's step goes first and y's a macrotask later: with two sessions decoding, the worker waits for y's step
      const px = w.run({ type: 'sessionStep', id: 'x', ids: Int32Array.of(7), chunks: [1] });
      await new Promise((r) => setImmediate(r));
      const py = w.run({ type: 'sessionStep', id: 'y', ids: Int32Array.of(7), chunks: [1] });
      const [rx, ry] = await Promise.all([px, py]);
      assert.equal(rx.batch, 2);
      assert.equal(ry.batch, 2);
      // a lone session never waits: once y is closed, x's steps run at once (well under the 500 ms window)
      await w.run({ type: 'sessionClose', id: 'y' });
      const t0 = performance.now();
      const r = await w.run({ type: 'sessionStep', id: 'x', ids: Int32Array.of(8), chunks: [1] });
      assert.equal(r.batch, 1);
      assert.ok(performance.now() - t0 < 400, 'no window wait with one session');
    } finally {
      await w.close();
    }
  });
});
