/**
 * A chain's driver gives its hops' leases back (training/chain.ts ChainTrainer): when a failed step makes it re-form
 * its chain, the old chain's hops are released (another driver may take them at once), and `release()` (the driver
 * stops: a pool move, a stop) releases the chain in use. In-process stages on the reference backend.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChainTrainer, type ChainHop, type LocalSpanStage } from '../../../src/training/index.js';
import { LocalStage, batchOf } from '../../../src/training/pipeline/index.js';
import type { Batch, BatchSource } from '../../../src/training/index.js';
import { NeuroShardError } from '../../../src/util/errors.js';
import { randomIds, reference, tinyConfig } from '../model/helpers.js';

const B = 2;
const T = 4;
const cfg = tinyConfig({ num_hidden_layers: 2 });

function source(): BatchSource {
  let i = 0;
  const next = (): Batch => {
    const ids = randomIds(B * T * 2, cfg.vocab_size, 7 + i++);
    return batchOf(ids.subarray(0, B * T), ids.subarray(B * T), B, T);
  };
  return { next: () => next(), position: () => i };
}

/** A hop whose forward fails while `broken` (a dead peer), counting the releases it gets. */
class Hop extends LocalStage {
  broken = false;
  /** Another driver's chain holds this hop's lease (train-stage answers RPC_BUSY). */
  busy = false;
  /** Called as it answers busy (a test's clock: the answer takes a while on a loaded machine). */
  onBusy?: () => void;
  override forward(...a: Parameters<LocalStage['forward']>): ReturnType<LocalStage['forward']> {
    if (this.busy) this.onBusy?.();
    if (this.busy) return Promise.reject(new NeuroShardError('RPC_BUSY', 'another chain holds this hop', { fault: 'local' }));
    if (this.broken) return Promise.reject(new Error('hop lost'));
    return super.forward(...a);
  }
}

describe('ChainTrainer releases its hops', () => {
  it('re-forming after a failed hop releases the old chain\'s hops; release() releases the chain in use', async () => {
    const local = new LocalStage(cfg, reference, { start: 0, end: 1 }, { seed: 1 }) as unknown as LocalSpanStage;
    const x = new Hop(cfg, reference, { start: 1, end: 2 }, { seed: 1 });
    const y = new Hop(cfg, reference, { start: 1, end: 2 }, { seed: 1 });
    const released: string[] = [];
    const hop = (peer: string, stage: Hop): ChainHop => ({ peer, span: stage.span, stage, release: () => (released.push(peer), Promise.resolve()) });
    const trainer = new ChainTrainer({
      self: 'me',
      local,
      data: source(),
      pipeline: { microBatches: 1, schedule: 'gpipe', trainer: { decaySteps: 10 } },
      retryMs: 1,
      formChain: (exclude) => Promise.resolve([{ peer: 'me', span: local.span, stage: local }, exclude.has('x') ? hop('y', y) : hop('x', x)]),
    });
    assert.equal((await trainer.innerSteps(1)).applied, 1);
    assert.deepEqual(released, []);
    x.broken = true;
    const r = await trainer.innerSteps(1);
    assert.equal(r.applied, 1);
    assert.equal(r.abandoned, 1);
    assert.deepEqual(trainer.chain()?.map((h) => h.peer), ['me', 'y']);
    // the dropped chain's hop got its release (fire-and-forget: it ran before the next chain's first step ended)
    assert.deepEqual(released, ['x']);
    await trainer.release();
    assert.deepEqual(released, ['x', 'y']);
    assert.equal(trainer.chain(), undefined);
    // a step after a release forms a new chain (and releases nothing more)
    assert.equal((await trainer.innerSteps(1)).applied, 1);
    assert.deepEqual(released, ['x', 'y']);
  });

  it('a busy hop (RPC_BUSY) is left out for seconds, a broken one for the long exclusion', async () => {
    const local = new LocalStage(cfg, reference, { start: 0, end: 1 }, { seed: 1 }) as unknown as LocalSpanStage;
    const x = new Hop(cfg, reference, { start: 1, end: 2 }, { seed: 1 });
    const y = new Hop(cfg, reference, { start: 1, end: 2 }, { seed: 1 });
    let now = 1_000_000;
    const hop = (peer: string, stage: Hop): ChainHop => ({ peer, span: stage.span, stage, release: () => Promise.resolve() });
    const asked: string[][] = [];
    const trainer = new ChainTrainer({
      self: 'me',
      local,
      data: source(),
      pipeline: { microBatches: 1, schedule: 'gpipe', trainer: { decaySteps: 10 } },
      retryMs: 1,
      excludeMs: 60_000,
      busyExcludeMs: 5_000,
      now: () => now,
      formChain: (exclude) => {
        asked.push([...exclude].sort());
        return Promise.resolve([{ peer: 'me', span: local.span, stage: local }, exclude.has('x') ? hop('y', y) : hop('x', x)]);
      },
    });
    x.busy = true;
    const r = await trainer.innerSteps(1);
    assert.equal(r.abandoned, 1);
    assert.deepEqual(trainer.chain()?.map((h) => h.peer), ['me', 'y'], 'the busy hop is left out for now');
    assert.deepEqual(asked.at(-1), ['x']);
    x.busy = false;
    y.broken = true;
    now += 6_000; // past the busy exclusion
    await trainer.innerSteps(1);
    assert.deepEqual(asked.at(-1), ['y'], 'x is back after seconds; the broken y is left out');
    assert.deepEqual(trainer.chain()?.map((h) => h.peer), ['me', 'x']);
    now += 30_000; // a broken hop stays out for the long exclusion
    await trainer.release();
    await trainer.innerSteps(1);
    assert.deepEqual(asked.at(-1), ['y']);
  });

  it('busy hops stay out together until a free replica is found, however slow each try (no round-robin between busy ones)', async () => {
    const local = new LocalStage(cfg, reference, { start: 0, end: 1 }, { seed: 1 }) as unknown as LocalSpanStage;
    const stages = { x: new Hop(cfg, reference, { start: 1, end: 2 }, { seed: 1 }), y: new Hop(cfg, reference, { start: 1, end: 2 }, { seed: 1 }), z: new Hop(cfg, reference, { start: 1, end: 2 }, { seed: 1 }) };
    stages.x.busy = true;
    stages.y.busy = true;
    let now = 1_000_000;
    stages.x.onBusy = stages.y.onBusy = () => void (now += 3_000);
    const tried: string[] = [];
    const trainer = new ChainTrainer({
      self: 'me',
      local,
      data: source(),
      pipeline: { microBatches: 1, schedule: 'gpipe', trainer: { decaySteps: 10 } },
      retryMs: 1,
      busyExcludeMs: 5_000,
      now: () => now,
      // the driver's order x, y, z; forming a chain and a busy answer take 3 s each on a loaded machine
      formChain: (exclude) => {
        now += 3_000;
        const p = (['x', 'y', 'z'] as const).find((k) => !exclude.has(k)) ?? 'x';
        tried.push(p);
        return Promise.resolve([{ peer: 'me', span: local.span, stage: local }, { peer: p, span: stages[p].span, stage: stages[p], release: () => Promise.resolve() }]);
      },
    });
    const r = await trainer.innerSteps(1);
    assert.equal(r.applied, 1);
    assert.deepEqual(tried, ['x', 'y', 'z'], 'each busy replica once, then the free one');
  });
});
