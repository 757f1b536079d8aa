/**
 * Model jobs through the compute worker: seeded, reproducible initialisation; training steps; forward and greedy
 * generation matching the same model run in-process; parameters and trainer state moving as transferred buffers;
 * exact resume across a worker crash (the losses after the restore are bitwise equal to an uninterrupted run).
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ComputeClient, WorkerCrashedError } from '../../../src/compute/index.js';
import { makeConfig, type LlamaConfig } from '../../../src/model/config.js';
import { generate } from '../../../src/model/generate.js';
import { createModel } from '../../../src/model/shard.js';
import { selectBackend } from '../../../src/tensor/index.js';
import { workerClaim } from '../../../src/node/validator.js';
import { sha256Hex } from '../../../src/util/bytes.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';
import { Rng } from '../../../src/util/rng.js';

const config: LlamaConfig = makeConfig({
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 64,
  vocab_size: 64,
  max_position_embeddings: 32,
});
const B = 2;
const T = 8;
const trainer = { lr: 1e-2, warmupSteps: 2, decaySteps: 20 };

function batch(i: number): { inputs: Int32Array; targets: Int32Array; B: number; T: number } {
  const rng = new Rng(500 + i);
  const inputs = new Int32Array(B * T).map(() => rng.int(config.vocab_size));
  const targets = new Int32Array(B * T).map((_, j) => (inputs[j] * 7 + 1) % config.vocab_size);
  return { inputs, targets, B, T };
}

function hash(p: Float32Array): string {
  return sha256Hex(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
}

describe('compute/model jobs', () => {
  let client: ComputeClient;
  before(async () => {
    client = await ComputeClient.start({ threads: 1 });
  });
  after(async () => {
    await client.close();
  });

  it('initialises reproducibly from a seed (same bytes as the model built in-process)', async () => {
    const a = await client.run({ type: 'initModel', config, seed: 7 });
    const pa = (await client.run({ type: 'getParams' })).params;
    const b = await client.run({ type: 'initModel', config, seed: 7 });
    const c = await client.run({ type: 'initModel', config, seed: 8 });
    assert.equal(a.hash, b.hash);
    assert.notEqual(a.hash, c.hash);
    assert.equal(hash(pa), a.hash);
    const { backend } = await selectBackend({ backend: 'reference' });
    const local = createModel(config, backend, { seed: 7 });
    assert.equal(hash(local.params), a.hash, 'the worker initialises exactly as the model does in-process');
    assert.equal(a.paramCount, local.params.length);
  });

  it('jobs without a model fail with COMPUTE_STATE', async () => {
    await client.run({ type: 'releaseModel' });
    await assert.rejects(client.run({ type: 'getParams' }), (e) => isNeuroShardError(e, 'COMPUTE_STATE'));
  });

  it('trains: the loss on a repeated batch falls, and the step reports its timings', async () => {
    await client.run({ type: 'initModel', config, seed: 1, trainer: { ...trainer, lr: 3e-2 } });
    const first = await client.run({ type: 'trainStep', ...batch(0) });
    let last = first;
    for (let i = 0; i < 15; i++) last = await client.run({ type: 'trainStep', ...batch(0) });
    assert.equal(last.step, 16);
    assert.ok(last.loss < first.loss * 0.7, `loss ${first.loss} → ${last.loss}`);
    assert.ok(first.ms.forward > 0 && first.ms.backward > 0 && first.ms.optimizer >= 0);
    const ev = await client.run({ type: 'evalLoss', ...batch(0) });
    assert.ok(Math.abs(ev.loss - last.loss) < first.loss, 'eval loss in the same range');
    assert.equal(ev.tokens, B * T);
  });

  it('bad batches are typed caller errors and leave the worker usable', async () => {
    const bad = batch(1);
    await assert.rejects(client.run({ type: 'trainStep', ...bad, T: 9 }), (e) => isNeuroShardError(e, 'SHAPE_MISMATCH'));
    const oob = batch(1);
    oob.inputs[3] = config.vocab_size;
    await assert.rejects(client.run({ type: 'trainStep', ...oob }), (e) => isNeuroShardError(e, 'TOKEN_OUT_OF_RANGE'));
    await client.run({ type: 'trainStep', ...batch(1) });
  });

  it('forward and greedy generation agree with the same weights run in-process', async () => {
    const init = await client.run({ type: 'initModel', config, seed: 3 });
    const { backend } = await selectBackend({ backend: 'reference' });
    const local = createModel(config, backend, { seed: 3 });
    assert.equal(hash(local.params), init.hash);
    const ids = batch(2).inputs;
    const want = local.forward(ids, B, T).slice();
    const { logits } = await client.run({ type: 'forward', ids: ids.slice(), B, T });
    assert.equal(logits.length, want.length);
    let maxErr = 0;
    for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(logits[i] - want[i]));
    assert.ok(maxErr < 1e-4, `max |Δlogit| ${maxErr} (worker backend vs reference)`);

    const prompt = Int32Array.from([1, 5, 9, 2]);
    const g = await client.run({ type: 'generate', prompt: prompt.slice(), maxTokens: 6, temperature: 0, stopIds: [] });
    assert.equal(g.tokens.length, 6);
    assert.equal(g.finishReason, 'length');
    // reference: greedy by full recompute (no cache) in-process
    const seq = Array.from(prompt);
    const V = config.vocab_size;
    for (let i = 0; i < 6; i++) {
      const out = local.forward(Int32Array.from(seq), 1, seq.length);
      let best = 0;
      for (let v = 1; v < V; v++) if (out[(seq.length - 1) * V + v] > out[(seq.length - 1) * V + best]) best = v;
      seq.push(best);
    }
    assert.deepEqual(Array.from(g.tokens), seq.slice(prompt.length));

    const stopAt = g.tokens[2];
    const s = await client.run({ type: 'generate', prompt: prompt.slice(), maxTokens: 6, temperature: 0, stopIds: [stopAt] });
    assert.equal(s.finishReason, 'stop');
    assert.deepEqual(Array.from(s.tokens), Array.from(g.tokens.subarray(0, 2)), 'stops before the stop id');

    // sampling is seeded: the same seed gives the same tokens
    const s1 = await client.run({ type: 'generate', prompt: prompt.slice(), maxTokens: 8, temperature: 1, topK: 10, seed: 5, stopIds: [] });
    const s2 = await client.run({ type: 'generate', prompt: prompt.slice(), maxTokens: 8, temperature: 1, topK: 10, seed: 5, stopIds: [] });
    assert.deepEqual(Array.from(s1.tokens), Array.from(s2.tokens));
    await assert.rejects(client.run({ type: 'generate', prompt: prompt.slice(), maxTokens: 2, topP: 2 }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });

  it('reports a skipped step (non-finite loss) as a job event and keeps the weights', async () => {
    await client.run({ type: 'initModel', config, seed: 4, trainer });
    const { params } = await client.run({ type: 'getParams' });
    params[0] = NaN; // poison the embedding row of token 0's first channel
    const poisoned = params.slice();
    await client.run({ type: 'setParams', params });
    const events = client.waitFor('job:event', { timeoutMs: 30_000, pred: (e) => e.event.type === 'step:skipped' });
    const b = batch(3);
    b.inputs.fill(0);
    const r = await client.run({ type: 'trainStep', ...b });
    assert.equal(r.applied, false);
    assert.deepEqual(r.nonFinite, ['loss']);
    const e = await events;
    assert.equal(e.jobType, 'trainStep');
    const after = (await client.run({ type: 'getParams' })).params;
    assert.equal(hash(after), hash(poisoned), 'a skipped step changes nothing');
  });

  it('resumes exactly across a worker crash: losses bitwise equal to an uninterrupted run', async () => {
    const steps = 6;
    const cut = 3;
    await client.run({ type: 'initModel', config, seed: 11, trainer });
    const want: number[] = [];
    for (let i = 0; i < steps; i++) want.push((await client.run({ type: 'trainStep', ...batch(10 + i) })).loss);

    await client.run({ type: 'initModel', config, seed: 11, trainer });
    for (let i = 0; i < cut; i++) await client.run({ type: 'trainStep', ...batch(10 + i) });
    const saved = { params: (await client.run({ type: 'getParams' })).params, state: await client.run({ type: 'getTrainerState' }) };
    assert.equal(saved.state.step, cut);

    const gen = client.generation;
    const ready = client.waitFor('worker:ready', { timeoutMs: 60_000, pred: (r) => r.generation > gen });
    await assert.rejects(client.run({ type: 'crash', mode: 'exit' }), WorkerCrashedError);
    await ready;
    await assert.rejects(client.run({ type: 'getParams' }), (e) => isNeuroShardError(e, 'COMPUTE_STATE'), 'the new worker holds no model');

    await client.run({ type: 'initModel', config, seed: 999, params: saved.params, trainer });
    await client.run({ type: 'setTrainerState', state: saved.state });
    const got: number[] = [];
    for (let i = cut; i < steps; i++) got.push((await client.run({ type: 'trainStep', ...batch(10 + i) })).loss);
    for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], want[cut + i]), `step ${cut + i + 1}: ${got[i]} vs ${want[cut + i]}`);
  });

  it('checkpoints to disk from the worker and resumes from it exactly, data position included', async () => {
    const tmp = tempDir('neuroshard-ckpt-');
    try {
      const steps = 5;
      const cut = 2;
      await client.run({ type: 'initModel', config, seed: 21, trainer });
      const want: number[] = [];
      for (let i = 0; i < steps; i++) want.push((await client.run({ type: 'trainStep', ...batch(40 + i) })).loss);

      await client.run({ type: 'initModel', config, seed: 21, trainer });
      for (let i = 0; i < cut; i++) await client.run({ type: 'trainStep', ...batch(40 + i) });
      const saved = await client.run({ type: 'saveCheckpoint', root: tmp.dir, trainingState: { dataPosition: { next: cut } }, keepLast: 2 });
      assert.equal(saved.step, cut);
      await client.run({ type: 'initModel', config, seed: 5, trainer }); // something else entirely in between

      const loaded = await client.run({ type: 'loadCheckpoint', dir: saved.dir, trainer });
      assert.equal(loaded.step, cut);
      assert.equal(loaded.modelHash, saved.modelHash);
      assert.equal(loaded.optimizerRestored, true);
      assert.deepEqual(loaded.trainingState, { dataPosition: { next: cut } });
      const next = (loaded.trainingState as { dataPosition: { next: number } }).dataPosition.next;
      const got: number[] = [];
      for (let i = next; i < steps; i++) got.push((await client.run({ type: 'trainStep', ...batch(40 + i) })).loss);
      for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], want[cut + i]), `step ${cut + i + 1}: ${got[i]} vs ${want[cut + i]}`);

      await assert.rejects(client.run({ type: 'loadCheckpoint', dir: `${tmp.dir}/no-such-step` }), (e) => isNeuroShardError(e, 'CHECKPOINT_MISSING'));
      await assert.rejects(client.run({ type: 'getParams' }), (e) => isNeuroShardError(e, 'COMPUTE_STATE'), 'a failed load leaves no half-loaded model');
    } finally {
      tmp.cleanup();
    }
  });

  it('resumeTrainer: a checkpoint\'s step and moments over weights given apart continue exactly; bad arguments, another shape, a damaged or missing moments file are typed and change nothing (review, session 28)', async () => {
    const tmp = tempDir('neuroshard-resume-trainer-');
    try {
      await client.run({ type: 'initModel', config, seed: 31, trainer });
      const want: number[] = [];
      for (let i = 0; i < 4; i++) want.push((await client.run({ type: 'trainStep', ...batch(60 + i) })).loss);
      await client.run({ type: 'initModel', config, seed: 31, trainer });
      for (let i = 0; i < 2; i++) await client.run({ type: 'trainStep', ...batch(60 + i) });
      const saved = await client.run({ type: 'saveCheckpoint', root: tmp.dir });
      const params = (await client.run({ type: 'getParams' })).params;

      // the weights given apart (as a replica's), the trainer from the checkpoint: AdamW's bias-correction count is
      // the checkpoint's (2), so the losses after are bitwise the uninterrupted run's
      await client.run({ type: 'initModel', config, trainer, params: params.slice() });
      assert.deepEqual(await client.run({ type: 'resumeTrainer', step: 2, dir: saved.dir }), { step: 2, appliedSteps: 2 });
      for (let i = 2; i < 4; i++) assert.ok(Object.is((await client.run({ type: 'trainStep', ...batch(60 + i) })).loss, want[i]), `step ${i + 1}`);

      const snapshot = async (): Promise<string> => {
        const st = await client.run({ type: 'getTrainerState' });
        return `${st.step}/${st.optimizer.step}/${st.optimizer.m.map(hash).join()}/${st.optimizer.v.map(hash).join()}`;
      };
      const before = await snapshot();
      const other = makeConfig({ ...config, intermediate_size: 96 });
      await client.run({ type: 'initModel', config: other, seed: 1, trainer });
      const otherDir = (await client.run({ type: 'saveCheckpoint', root: `${tmp.dir}/other` })).dir;
      await client.run({ type: 'initModel', config, trainer, params: params.slice() });
      await client.run({ type: 'resumeTrainer', step: 4, dir: saved.dir });
      const ref = await snapshot();
      assert.notEqual(ref, before);
      const damaged = `${tmp.dir}/damaged`;
      cpSync(saved.dir, damaged, { recursive: true });
      const opt = `${damaged}/optimizer.safetensors`;
      const bytes = readFileSync(opt);
      bytes[bytes.length - 1] ^= 1;
      writeFileSync(opt, bytes);
      const bare = `${tmp.dir}/bare`;
      cpSync(saved.dir, bare, { recursive: true });
      const man = JSON.parse(readFileSync(`${bare}/checkpoint.json`, 'utf8')) as { files: Record<string, unknown> };
      delete man.files['optimizer.safetensors'];
      writeFileSync(`${bare}/checkpoint.json`, JSON.stringify(man));
      const bad: [Record<string, unknown>, string][] = [
        [{ step: -1 }, 'INVALID_ARGUMENT'],
        [{ step: 1.5 }, 'INVALID_ARGUMENT'],
        [{ step: '2' }, 'INVALID_ARGUMENT'],
        [{ step: Number.NaN }, 'INVALID_ARGUMENT'],
        [{ step: 2 ** 53 }, 'INVALID_ARGUMENT'],
        [{}, 'INVALID_ARGUMENT'],
        [{ step: 1, dir: '' }, 'INVALID_ARGUMENT'],
        [{ step: 1, dir: 'x'.repeat(5000) }, 'INVALID_ARGUMENT'],
        [{ step: 1, dir: 'a\0b' }, 'INVALID_ARGUMENT'],
        [{ step: 1, dir: 42 }, 'INVALID_ARGUMENT'],
        [{ step: 1, dir: `${tmp.dir}/no-such-step` }, 'CHECKPOINT_MISSING'],
        [{ step: 1, dir: otherDir }, 'CHECKPOINT_MISMATCH'],
        [{ step: 1, dir: damaged }, 'CHECKPOINT_CORRUPT'],
        [{ step: 1, dir: bare }, 'CHECKPOINT_MISSING'],
      ];
      for (const [args, code] of bad) {
        await assert.rejects(client.run({ type: 'resumeTrainer', ...args } as never), (e) => isNeuroShardError(e, code), `${JSON.stringify(args).slice(0, 80)}: ${code}`);
        assert.equal(await snapshot(), ref, `${JSON.stringify(args).slice(0, 80)} changed nothing`);
      }
      // a worker holding part of the model has no trainer to resume
      await client.run({ type: 'initModel', config, seed: 1, span: { start: 0, end: 1 } });
      await assert.rejects(client.run({ type: 'resumeTrainer', step: 1 }), (e) => isNeuroShardError(e, 'COMPUTE_STATE'));
    } finally {
      tmp.cleanup();
    }
  });
});

describe('compute/model jobs on the default thread count', () => {
  it('resumes bitwise-exactly with the native pool at its default size (deterministic kernels)', async () => {
    const client = await ComputeClient.start({});
    try {
      const steps = 4;
      const cut = 2;
      await client.run({ type: 'initModel', config, seed: 31, trainer });
      const want: number[] = [];
      for (let i = 0; i < steps; i++) want.push((await client.run({ type: 'trainStep', ...batch(60 + i) })).loss);
      await client.run({ type: 'initModel', config, seed: 31, trainer });
      for (let i = 0; i < cut; i++) await client.run({ type: 'trainStep', ...batch(60 + i) });
      const params = (await client.run({ type: 'getParams' })).params;
      const state = await client.run({ type: 'getTrainerState' });
      await client.run({ type: 'initModel', config, seed: 0, params, trainer });
      await client.run({ type: 'setTrainerState', state });
      for (let i = cut; i < steps; i++) {
        const got = (await client.run({ type: 'trainStep', ...batch(60 + i) })).loss;
        assert.ok(Object.is(got, want[i]), `step ${i + 1} on ${client.info?.description}: ${got} vs ${want[i]}`);
      }
    } finally {
      await client.close();
    }
  });
});

describe('compute/model jobs with int8 weights', () => {
  it('a client started with weights: int8 gets a worker that holds int8 weights (the option reaches the worker)', async () => {
    const client = await ComputeClient.start({ threads: 1, weights: 'int8' });
    try {
      const init = await client.run({ type: 'initModel', config, seed: 3 });
      const { backend } = await selectBackend({ backend: client.info?.backend === 'native' ? 'native' : 'reference' });
      const f32 = createModel(config, backend, { seed: 3 });
      const q = f32.quantized();
      // the hash is the float32 weights' span hash, as the in-process int8 model gives it; the float32 parameters are gone
      assert.equal(init.hash, q.hash());
      await assert.rejects(client.run({ type: 'getParams' }), (e) => isNeuroShardError(e, 'COMPUTE_STATE'));
      // and it decodes as the int8 model in-process does
      const prompt = Int32Array.from([1, 5, 9, 2]);
      const g = await client.run({ type: 'generate', prompt: prompt.slice(), maxTokens: 6, temperature: 0, stopIds: [] });
      const want = generate(q, prompt, { maxTokens: 6, temperature: 0, stopIds: [] });
      assert.deepEqual(Array.from(g.tokens), Array.from(want.tokens));
    } finally {
      await client.close();
    }
  });

  it('an int8 worker claims another engine than a float32 one on the same weights: validators never judge across formats', async () => {
    // a hop's claim is (model hash, engine), and the int8 worker's model hash is that of the float32 weights it
    // quantized: with the engine alike too, a float32 validator re-executed an honest int8 hop and found "fraud"
    const f = await ComputeClient.start({ threads: 1 });
    const q = await ComputeClient.start({ threads: 1, weights: 'int8' });
    try {
      for (const c of [f, q]) await c.run({ type: 'initModel', config, seed: 3 });
      const [cf, cq] = [await workerClaim(f)(), await workerClaim(q)()];
      assert.equal(cq.modelHash, cf.modelHash, 'the int8 worker names the float32 weights it quantized');
      assert.notEqual(cq.engine, cf.engine, `claims ${JSON.stringify(cf)} and ${JSON.stringify(cq)}`);
      assert.match(cq.engine, /int8/);
    } finally {
      await f.close();
      await q.close();
    }
  });

  it('readBound reads the decode weights of the model the worker holds, f32 and int8 (the bench\'s read bound, session 22)', async (t) => {
    const f = await ComputeClient.start({ threads: 2 });
    const q = await ComputeClient.start({ threads: 2, weights: 'int8' });
    try {
      if (f.info?.backend !== 'native') {
        await f.run({ type: 'initModel', config, seed: 3 });
        await assert.rejects(f.run({ type: 'readBound' }), (e) => isNeuroShardError(e, 'COMPUTE_STATE'));
        t.skip('no native backend: readBound has no reader');
        return;
      }
      // a model big enough that every thread's part of the large matrices is whole 512-byte chunks
      const big = makeConfig({ ...config, hidden_size: 256, intermediate_size: 512, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 512 });
      const { backend } = await selectBackend({ backend: 'reference' });
      for (const [c, weights] of [
        [f, 'f32'],
        [q, 'int8'],
      ] as const) {
        await c.run({ type: 'initModel', config: big, seed: 3 });
        const r = await c.run({ type: 'readBound', passes: 2, streams: [1, 4] });
        const m = createModel(big, backend, { seed: 3 });
        const arrays = (weights === 'int8' ? m.quantized() : m).decodeReadArrays();
        const total = arrays.reduce((s, x) => s + x.byteLength, 0);
        // each of the 2 threads reads whole 512-byte chunks of its half of every array from its 64-byte boundary
        assert.ok(r.bytes <= total && r.bytes > total - arrays.length * 2 * (512 + 64), `${weights}: read ${r.bytes} of ${total}`);
        assert.ok(r.bps > 0 && r.cpuBps > 0, JSON.stringify(r));
        assert.deepEqual(Object.keys(r.byReader).sort(), ['arrays/1', 'arrays/4', 'ranges/1', 'ranges/4']);
        assert.equal(r.bps, Math.max(...Object.values(r.byReader)));
        assert.ok(r.reader in r.byReader);
        assert.equal(r.threads, 2);
      }
      await assert.rejects(f.run({ type: 'readBound', streams: [3 as 1] }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    } finally {
      await f.close();
      await q.close();
    }
  });
});
