/**
 * Pipeline training in-process: a 3-stage chain's gradients after one micro-batched step equal a single-node
 * step's (every parameter, 1e-5), 10 pipeline steps give the weights of 10 SoloTrainer steps (1e-5) under both
 * schedules, a failing stage abandons the step on every stage, a non-finite gradient skips it, and the schedules'
 * utilisation matches the textbook bubble.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LlamaShard, type LlamaConfig } from '../../../src/model/index.js';
import { type Backend } from '../../../src/tensor/index.js';
import { ShardTrainable, SoloTrainer } from '../../../src/training/index.js';
import { LocalStage, PipelineTrainer, batchOf, pipelineSchedule, simulateSchedule, type StepApply } from '../../../src/training/pipeline/index.js';
import { maxAbsDiff, randomIds, testBackends, tinyConfig } from '../model/helpers.js';

const B = 4;
const T = 8;
const SEED = 5;
const spans = [
  { start: 0, end: 1 },
  { start: 1, end: 3 },
  { start: 3, end: 4 },
];
const trainer = { lr: 3e-3, warmupSteps: 2, decaySteps: 10, maxGradNorm: 0.5 };

function cfg(): LlamaConfig {
  return tinyConfig({ num_hidden_layers: 4 });
}

function batch(i: number, c: LlamaConfig) {
  const ids = randomIds(B * (T + 1), c.vocab_size, 100 + i);
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    inputs.set(ids.subarray(b * (T + 1), b * (T + 1) + T), b * T);
    targets.set(ids.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
  }
  targets[3] = -100; // an ignored position: micro-batches count different numbers of targets
  return batchOf(inputs, targets, B, T);
}

class SpyStage extends LocalStage {
  snapshot: Float32Array | null = null;
  failBackwardOf: number | null = null;
  poisonBackward = false;
  override applyStep(step: number, a: StepApply): Promise<void> {
    this.snapshot = this.grads.slice();
    return super.applyStep(step, a);
  }
  override async backward(step: number, mb: number, dOut: Float32Array | null): Promise<Float32Array | null> {
    if (this.failBackwardOf === mb) throw new Error('stage lost');
    const r = await super.backward(step, mb, dOut);
    if (this.poisonBackward && r !== null) r[0] = Infinity;
    return r;
  }
}

function stages(c: LlamaConfig, be: Backend): SpyStage[] {
  return spans.map((span) => new SpyStage(c, be, span, { seed: SEED, trainer }));
}

/** Compares every parameter (by name) of the stages' buffers with the full model's. */
function worstByName(ss: LocalStage[], full: LlamaShard, pick: (s: LocalStage) => Float32Array, fullBuf: Float32Array): number {
  let worst = 0;
  for (const s of ss) {
    const buf = pick(s);
    for (const e of s.layout.entries) worst = Math.max(worst, maxAbsDiff(buf.subarray(e.offset, e.offset + e.size), full.layout.view(fullBuf, e.name)));
  }
  return worst;
}

describe('pipeline training', async () => {
  for (const { name, backend } of await testBackends()) {
    it(`${name}: one 3-stage step's gradients equal a single-node step's (every parameter, 1e-5)`, async () => {
      const c = cfg();
      for (const schedule of ['gpipe', '1f1b'] as const) {
        const ss = stages(c, backend);
        const pipe = new PipelineTrainer(ss, { microBatches: 4, schedule, trainer });
        const bt = batch(0, c);
        const full = new LlamaShard({ config: c, backend, seed: SEED });
        full.zeroGrad();
        full.forward(bt.inputs.data, B, T);
        const l = full.loss(bt.targets.data);
        full.backward(l.dlogits!);
        const r = await pipe.trainStep(bt);
        assert.ok(Math.abs(r.loss - l.loss) < 1e-5, `${schedule}: loss ${r.loss} vs ${l.loss}`);
        const worst = worstByName(ss, full, (s) => (s as SpyStage).snapshot!, full.grads);
        assert.ok(worst < 1e-5, `${schedule}: worst gradient difference ${worst}`);
        // every parameter was compared: the spans tile the model
        assert.equal(
          ss.reduce((a, s) => a + s.layout.entries.length, 0),
          full.layout.entries.length,
        );
        if (schedule === '1f1b') assert.ok(ss[0]!.activationSlots <= 3 && ss[2]!.activationSlots === 1, `1F1B slots ${ss.map((s) => s.activationSlots)}`);
        else assert.equal(ss[0]!.activationSlots, 4);
      }
    });

    it(`${name}: 10 pipeline steps give the weights of 10 solo steps (1e-5), clipping and schedule included`, async () => {
      const c = cfg();
      const full = new LlamaShard({ config: c, backend, seed: SEED });
      const solo = new SoloTrainer(backend, new ShardTrainable(full), trainer);
      for (const schedule of ['1f1b', 'gpipe'] as const) {
        const ss = stages(c, backend);
        const pipe = new PipelineTrainer(ss, { microBatches: 2, schedule, trainer });
        const soloW = schedule === '1f1b' ? full : new LlamaShard({ config: c, backend, seed: SEED });
        const soloT = schedule === '1f1b' ? solo : new SoloTrainer(backend, new ShardTrainable(soloW), trainer);
        let clipped = 0;
        for (let i = 0; i < 10; i++) {
          const a = soloT.trainStep(batch(i, c));
          const p = await pipe.trainStep(batch(i, c));
          assert.ok(Math.abs(a.gradNorm - p.gradNorm) < 1e-5 * a.gradNorm, `step ${i}: norm ${p.gradNorm} vs ${a.gradNorm}`);
          assert.equal(p.lr, a.lr);
          if (p.clipScale < 1) clipped++;
        }
        assert.ok(clipped > 0, 'clipping was exercised');
        const worst = worstByName(ss, soloW, (s) => s.params, soloW.params);
        assert.ok(worst < 1e-5, `${schedule}: worst weight difference ${worst}`);
        assert.equal(pipe.step, 10);
        const ev = await pipe.evaluate([batch(50, c)]);
        const es = soloT.evaluate([batch(50, c)]);
        assert.ok(Math.abs(ev.loss - es.loss) < 1e-4);
      }
    });
  }

  it('a stage failing mid-step abandons the step on every stage (no half-applied update); training goes on', async () => {
    const c = cfg();
    const { backend } = (await testBackends())[0]!;
    const ss = stages(c, backend);
    const pipe = new PipelineTrainer(ss, { microBatches: 2, schedule: '1f1b', trainer });
    const before = ss.map((s) => s.params.slice());
    ss[1]!.failBackwardOf = 1;
    await assert.rejects(pipe.trainStep(batch(0, c)), /stage lost/);
    ss.forEach((s, i) => assert.deepEqual(s.params, before[i]));
    assert.equal(pipe.step, 0);
    ss[1]!.failBackwardOf = null;
    const r = await pipe.trainStep(batch(0, c));
    assert.ok(r.applied);
    assert.ok(ss.every((s) => s.appliedSteps === 1));
  });

  it('a non-finite gradient skips the step on every stage and reports it', async () => {
    const c = cfg();
    const { backend } = (await testBackends())[0]!;
    const ss = stages(c, backend);
    const pipe = new PipelineTrainer(ss, { microBatches: 2, schedule: 'gpipe', trainer });
    const before = ss.map((s) => s.params.slice());
    const skipped: unknown[] = [];
    pipe.events.on('step:skipped', (e) => skipped.push(e));
    ss[2]!.poisonBackward = true;
    const r = await pipe.trainStep(batch(0, c));
    assert.equal(r.applied, false);
    assert.equal(r.step, 1);
    assert.equal(skipped.length, 1);
    ss.forEach((s, i) => assert.deepEqual(s.params, before[i]));
    assert.ok(ss.every((s) => s.appliedSteps === 0));
  });

  it('schedules: equal op costs give the textbook utilisation M/(M+S−1); 1F1B keeps fewer micro-batches alive', () => {
    for (const name of ['gpipe', '1f1b'] as const) {
      for (const [S, M] of [
        [4, 8],
        [3, 2],
        [1, 4],
      ] as const) {
        const ops = pipelineSchedule(name, S, M);
        assert.equal(
          ops.flat().length,
          2 * S * M,
        );
        const u = simulateSchedule(ops, (k) => (k === 'F' ? 1 : 2));
        assert.ok(Math.abs(u.utilisation - M / (M + S - 1)) < 1e-9, `${name} S=${S} M=${M}: ${u.utilisation}`);
      }
    }
    // 1F1B on stage 0 of 4: 3 warm-up forwards, then alternate
    assert.deepEqual(
      pipelineSchedule('1f1b', 4, 5)[0]!.map((o) => o.kind + o.mb).join(' '),
      'F0 F1 F2 F3 B0 F4 B1 B2 B3 B4',
    );
  });
});
