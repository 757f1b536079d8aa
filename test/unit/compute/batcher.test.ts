/**
 * Continuous batching in the compute worker, without a worker: the queue rule (batcher.ts: which queued jobs run
 * together) and SessionTable.stepBatch (decode steps of several sessions in one forward give each session the
 * tokens and hidden states it gets alone, greedy and seeded; a bad step fails alone).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchWindow, isBatchable, MAX_BATCH_WINDOW_MS, pickBatch, shouldWait } from '../../../src/compute/batcher.js';
import type { Job, JobOf } from '../../../src/compute/jobs.js';
import { SessionTable } from '../../../src/compute/sessions.js';
import { LlamaShard, MAX_DECODE_BATCH } from '../../../src/model/index.js';
import { randomIds, reference, tinyConfig } from '../model/helpers.js';

const dec = (id: string): Job => ({ type: 'sessionStep', id, ids: new Int32Array(1), chunks: [1] });
const pre = (id: string, n = 3): Job => ({ type: 'sessionStep', id, ids: new Int32Array(n), chunks: [n] });

describe('pickBatch', () => {
  it('stacks decode steps of distinct sessions behind a decode head, in queue order', () => {
    assert.deepEqual(pickBatch([dec('a'), dec('b'), dec('c')]), [0, 1, 2]);
    assert.deepEqual(pickBatch([dec('a'), pre('b'), dec('c')]), [0, 2], 'passes over a prefill of another session');
    assert.deepEqual(pickBatch([dec('a'), dec('a'), dec('b')]), [0, 2], 'a session once per batch');
    assert.deepEqual(pickBatch([dec('a'), pre('b'), dec('b'), dec('c')]), [0, 3], 'a session whose earlier job waits keeps its order');
    assert.deepEqual(pickBatch([dec('a'), { type: 'sessionClose', id: 'b' }, dec('b'), dec('c')]), [0, 3]);
    assert.deepEqual(pickBatch([dec('a'), { type: 'sessionOpen', id: 'd', maxLen: 4 }, dec('c')]), [0, 2]);
  });

  it('never moves a job across a non-session job (model load, training)', () => {
    assert.deepEqual(pickBatch([dec('a'), { type: 'releaseModel' }, dec('b')]), [0]);
    assert.deepEqual(pickBatch([dec('a'), dec('b'), { type: 'ping' }, dec('c')]), [0, 1]);
  });

  it('runs a non-decode head alone, caps at MAX_DECODE_BATCH, and leaves out skipped (cancelled) jobs', () => {
    assert.deepEqual(pickBatch([pre('a'), dec('b')]), [0]);
    assert.deepEqual(pickBatch([{ type: 'ping' }, dec('b')]), [0]);
    assert.deepEqual(pickBatch([]), []);
    const many = Array.from({ length: 20 }, (_, i) => dec(`s${i}`));
    assert.deepEqual(pickBatch(many), Array.from({ length: MAX_DECODE_BATCH }, (_, i) => i));
    assert.deepEqual(pickBatch([dec('a'), dec('b'), dec('c')], MAX_DECODE_BATCH, (i) => i === 1), [0, 2]);
    assert.equal(isBatchable(dec('a')), true);
    assert.equal(isBatchable(pre('a', 1)), true, 'a one-position prefill is a decode step');
    assert.equal(isBatchable({ type: 'sessionStep', id: 'a', ids: new Int32Array(2), chunks: [1, 1] }), false);
  });

  it('waits only when fewer rows than recently active sessions, and not with a zero window', () => {
    assert.equal(shouldWait(3, 8, 2), true);
    assert.equal(shouldWait(8, 8, 2), false);
    assert.equal(shouldWait(8, 20, 2), false, 'a full batch never waits');
    assert.equal(shouldWait(1, 1, 2), false, 'a lone session never waits');
    assert.equal(shouldWait(1, 8, 0), false);
  });

  it('sizes the window by the last batched forward: at least the base, else half the forward up to 50 ms', () => {
    assert.equal(batchWindow(2, 0), 2);
    assert.equal(batchWindow(2, 3), 2);
    assert.equal(batchWindow(2, 11), 5.5, "half the 12x768 preset's 8-row forward on a quiet 2-core machine");
    assert.equal(batchWindow(2, 60), 30);
    assert.equal(batchWindow(2, 5000), MAX_BATCH_WINDOW_MS);
    assert.equal(batchWindow(0, 150), 0, 'a zero base turns waiting off');
    assert.equal(batchWindow(500, 10), 500, 'an explicit base is not capped');
    assert.equal(batchWindow(2, NaN), 2);
  });
});

describe('SessionTable.stepBatch', () => {
  const config = tinyConfig({ max_position_embeddings: 64 });
  const L = config.num_hidden_layers;

  /** Greedy/seeded decode of `prompts` through `shards` (a chain of spans), solo or batched; the tokens per session. */
  function decode(shards: LlamaShard[], prompts: Int32Array[], steps: number, batched: boolean, sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 }): number[][] {
    const tables = shards.map(() => new SessionTable());
    const ids = prompts.map((_, i) => `s${i}`);
    const out: number[][] = prompts.map(() => []);
    shards.forEach((sh, k) => ids.forEach((id, i) => tables[k].open(sh, { type: 'sessionOpen', id, maxLen: 32, sampling: { ...sampling, seed: sampling.seed + i } })));
    // prefill each alone
    const next: number[] = prompts.map((p, i) => {
      let x: { ids?: Int32Array; hidden?: Float32Array } = { ids: p };
      for (let k = 0; k < shards.length; k++) {
        const r = tables[k].step(shards[k], { type: 'sessionStep', id: ids[i], chunks: [p.length], ...x }, () => {});
        assert.equal(r.batch, 1);
        if (r.tokens !== undefined) return r.tokens[0];
        x = { hidden: r.hidden! };
      }
      throw new Error('no validator');
    });
    for (let t = 0; t < steps; t++) {
      next.forEach((tok, i) => out[i].push(tok));
      let xs: { ids?: Int32Array; hidden?: Float32Array }[] = next.map((tok) => ({ ids: Int32Array.of(tok) }));
      for (let k = 0; k < shards.length; k++) {
        const jobs: JobOf<'sessionStep'>[] = xs.map((x, i) => ({ type: 'sessionStep', id: ids[i], chunks: [1], ...x }));
        const rs = batched
          ? tables[k].stepBatch(shards[k], jobs).map((r, i) => {
              if (!r.ok) throw r.error;
              // rows go in groups of MAX_DECODE_BATCH: 10 sessions run as 8 + 2
              assert.equal(r.result.batch, i < MAX_DECODE_BATCH ? Math.min(jobs.length, MAX_DECODE_BATCH) : jobs.length - MAX_DECODE_BATCH);
              return r.result;
            })
          : jobs.map((j) => tables[k].step(shards[k], j, () => {}));
        if (rs[0].tokens !== undefined) rs.forEach((r, i) => (next[i] = r.tokens![0]));
        else xs = rs.map((r) => ({ hidden: r.hidden! }));
      }
    }
    return out;
  }

  const whole = [new LlamaShard({ config, backend: reference, seed: 5 })];
  const chain = [
    new LlamaShard({ config, backend: reference, seed: 5, span: { start: 0, end: 1 } }),
    new LlamaShard({ config, backend: reference, seed: 5, span: { start: 1, end: L } }),
  ];
  const prompts = Array.from({ length: 10 }, (_, i) => randomIds(2 + (i % 5), config.vocab_size, 40 + i));

  it('gives every session the tokens it gets alone (greedy and seeded; one shard and a chain; 10 sessions = 8 + 2)', () => {
    for (const shards of [whole, chain]) {
      assert.deepEqual(decode(shards, prompts, 6, true), decode(shards, prompts, 6, false));
      const seeded = { temperature: 0.9, topK: 20, topP: 0.95, seed: 7 };
      assert.deepEqual(decode(shards, prompts, 6, true, seeded), decode(shards, prompts, 6, false, seeded));
    }
  });

  it('fails a bad step alone: unknown session, wrong size, a session twice, a full cache', () => {
    const sh = whole[0];
    const t = new SessionTable();
    t.open(sh, { type: 'sessionOpen', id: 'a', maxLen: 4 });
    t.open(sh, { type: 'sessionOpen', id: 'b', maxLen: 4 });
    t.open(sh, { type: 'sessionOpen', id: 'full', maxLen: 1 });
    t.step(sh, { type: 'sessionStep', id: 'full', ids: Int32Array.of(1), chunks: [1] }, () => {});
    const rs = t.stepBatch(sh, [
      { type: 'sessionStep', id: 'a', ids: Int32Array.of(1), chunks: [1] },
      { type: 'sessionStep', id: 'nope', ids: Int32Array.of(1), chunks: [1] },
      { type: 'sessionStep', id: 'b', ids: Int32Array.of(1, 2), chunks: [1] },
      { type: 'sessionStep', id: 'a', ids: Int32Array.of(1), chunks: [1] },
      { type: 'sessionStep', id: 'full', ids: Int32Array.of(1), chunks: [1] },
      { type: 'sessionStep', id: 'b', ids: Int32Array.of(3), chunks: [1] },
    ]);
    assert.deepEqual(rs.map((r) => r.ok), [true, false, false, false, false, true]);
    const codes = rs.map((r) => (r.ok ? 'ok' : (r.error as { code: string }).code));
    assert.deepEqual(codes, ['ok', 'SESSION_UNKNOWN', 'SHAPE_MISMATCH', 'INVALID_ARGUMENT', 'SESSION_FULL', 'ok']);
    assert.equal(rs[0].ok && rs[0].result.batch, 2);
    assert.equal(t.list().ids.length, 3);
  });
});
