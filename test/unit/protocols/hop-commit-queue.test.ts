/**
 * The hop's commitments on a worker thread (protocols/hop-commit-queue.ts): after settled(), every commitment holds
 * exactly what ledger/commitment.ts RunningCommitment computes over the same steps in the same order, whether the
 * worker took them, the event loop took them, or the worker died with batches in flight.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RunningCommitment } from '../../../src/ledger/commitment.js';
import { HopCommitQueue } from '../../../src/protocols/hop-commit-queue.js';

type Step = { kind: 'hidden'; values: Float32Array; cols: number; chunks: number[] } | { kind: 'tokens'; ids: number[]; chunks: number[] };

/** A deterministic mix of steps over `n` commitments: decode steps, prefill chunks, token ids, NaN / ±∞ / ±0. */
function steps(n: number, count: number): { target: number; step: Step }[] {
  let seed = 12345;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const out: { target: number; step: Step }[] = [];
  for (let i = 0; i < count; i++) {
    const target = Math.floor(rnd() * n);
    if (target % 3 === 2) {
      const T = 1 + Math.floor(rnd() * 3);
      out.push({ target, step: { kind: 'tokens', ids: Array.from({ length: T }, () => Math.floor(rnd() * 50_000)), chunks: [T] } });
      continue;
    }
    const cols = 24;
    const chunks = rnd() < 0.3 ? [3, 2] : [1];
    const T = chunks.reduce((a, b) => a + b, 0);
    const values = Float32Array.from({ length: T * cols }, () => (rnd() - 0.5) * 1000);
    if (i % 7 === 0) values.set([NaN, Infinity, -Infinity, -0, 0, 1e-8, 65504, 70000], 0);
    out.push({ target, step: { kind: 'hidden', values, cols, chunks } });
  }
  return out;
}

function expected(n: number, all: { target: number; step: Step }[]): Uint8Array[] {
  const want = Array.from({ length: n }, () => new RunningCommitment());
  for (const { target, step } of all) {
    if (step.kind === 'hidden') want[target]!.hidden(step.values, step.cols, step.chunks);
    else want[target]!.tokens(step.ids, step.chunks);
  }
  return want.map((w) => w.value);
}

function queueAll(q: HopCommitQueue, n: number, all: { target: number; step: Step }[]): ReturnType<HopCommitQueue['open']>[] {
  const cs = Array.from({ length: n }, () => q.open());
  for (const { target, step } of all) {
    if (step.kind === 'hidden') q.hidden(cs[target]!, step.values, step.cols, step.chunks);
    else q.tokens(cs[target]!, step.ids, step.chunks);
  }
  return cs;
}

describe('HopCommitQueue', () => {
  const n = 5;
  const all = steps(n, 300);
  const want = expected(n, all);

  it('the worker gives the same values as RunningCommitment, in order, across batches', async () => {
    const q = new HopCommitQueue({ batchJobs: 16 });
    try {
      const cs = queueAll(q, n, all);
      await q.settled();
      assert.deepEqual(cs.map((c) => c.value), want);
      assert.equal(q.pending, 0);
      assert.equal(q.stats.worker, all.length);
      assert.ok(q.stats.batches >= all.length / 16);
    } finally {
      await q.close();
    }
  });

  it('settled() holds the steps queued before it, also with later steps still arriving', async () => {
    const q = new HopCommitQueue({ batchJobs: 1000, batchMs: 1000 });
    try {
      const half = all.slice(0, 150);
      const cs = Array.from({ length: n }, () => q.open());
      const push = (xs: typeof all): void => {
        for (const { target, step } of xs) {
          if (step.kind === 'hidden') q.hidden(cs[target]!, step.values, step.cols, step.chunks);
          else q.tokens(cs[target]!, step.ids, step.chunks);
        }
      };
      push(half);
      const s = q.settled(); // posts at once (the batch timer is far away)
      push(all.slice(150));
      await s;
      assert.deepEqual(cs.map((c) => c.value), expected(n, half));
      await q.settled();
      assert.deepEqual(cs.map((c) => c.value), want);
    } finally {
      await q.close();
    }
  });

  it('without a worker the event loop takes the steps (same values)', async () => {
    const q = new HopCommitQueue({ useWorker: false });
    const cs = queueAll(q, n, all);
    await q.settled();
    assert.deepEqual(cs.map((c) => c.value), want);
    assert.equal(q.stats.local, all.length);
  });

  it('a worker that dies with batches in flight: the rest is taken on the event loop, same values', async () => {
    const q = new HopCommitQueue({ batchJobs: 8 });
    const cs = queueAll(q, n, all.slice(0, 100));
    // kill the worker under the queue while its batches are in flight
    const w = (q as unknown as { worker: { terminate(): Promise<number> } | undefined }).worker;
    assert.ok(w !== undefined, 'batches were posted');
    await w.terminate();
    queueAll2(q, cs, all.slice(100));
    await q.settled();
    assert.deepEqual(cs.map((c) => c.value), want);
    assert.ok(q.stats.local > 0);
  });

  it('a worker that does not answer in time: settled() takes the steps itself', async () => {
    const q = new HopCommitQueue({ batchJobs: 1000, settleTimeoutMs: 1 });
    const cs = queueAll(q, n, all);
    // block the worker's answers from arriving before the timeout: the settle times out at once on this busy loop
    await q.settled();
    assert.deepEqual(cs.map((c) => c.value), want);
    await q.close();
  });

  it('a worker that cannot start: settled() resolves with the steps taken on the event loop', async () => {
    const q = new HopCommitQueue({ batchJobs: 1000, batchMs: 1000 });
    (q as unknown as { startWorker: () => never }).startWorker = () => {
      throw new Error('no threads here');
    };
    const cs = queueAll(q, n, all);
    await q.settled();
    assert.deepEqual(cs.map((c) => c.value), want);
    assert.equal(q.stats.local, all.length);
  });

  it('refuses steps whose chunks do not cover the values', () => {
    const q = new HopCommitQueue({ useWorker: false });
    const c = q.open();
    assert.throws(() => q.hidden(c, new Float32Array(48), 24, [1]), RangeError);
    assert.throws(() => q.tokens(c, [1, 2], [1]), RangeError);
    assert.throws(() => q.tokens(c, [-1], [1]), RangeError);
  });
});

function queueAll2(q: HopCommitQueue, cs: ReturnType<HopCommitQueue['open']>[], xs: { target: number; step: Step }[]): void {
  for (const { target, step } of xs) {
    if (step.kind === 'hidden') q.hidden(cs[target]!, step.values, step.cols, step.chunks);
    else q.tokens(cs[target]!, step.ids, step.chunks);
  }
}
