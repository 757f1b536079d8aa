/**
 * The held weights as the checkpoint stream reads them inside the compute worker (src/compute/served-params.ts),
 * driven in-process through the worker's handler table: `paramsDigest` gives the same span hash as the main
 * thread's spanHashOfParams for every sub-span (and the payload's SHA-256), `paramsRange` chunks concatenate to the
 * exact payload bytes, and every job that writes the weights moves the version, so that a range read at an old
 * version is refused (WEIGHTS_CHANGED) while reading jobs leave it alone.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { NULL_CONTEXT } from '../../../src/compute/context.js';
import { createHandlers, runHandler } from '../../../src/compute/handlers.js';
import type { Job, ResultOf } from '../../../src/compute/jobs.js';
import { MAX_RANGE_BYTES, type ParamsDigest } from '../../../src/compute/served-params.js';
import { ComputeState } from '../../../src/compute/state.js';
import { makeConfig, type Span } from '../../../src/model/index.js';
import { paramBytes, sliceSpan, spanHashOfParams } from '../../../src/pool/weights.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const config = makeConfig({ hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, vocab_size: 64, max_position_embeddings: 32 });
const L = config.num_hidden_layers;

async function worker(weights: 'f32' | 'int8' = 'f32') {
  const state = await ComputeState.create({ backend: 'reference', weights });
  const h = createHandlers(state);
  const run = async <T extends Job>(job: T): Promise<ResultOf<T['type']>> => (await runHandler(h, job, NULL_CONTEXT)) as ResultOf<T['type']>;
  return { state, run };
}

type Run = Awaited<ReturnType<typeof worker>>['run'];

/** A sub-span's payload read back in `chunk`-byte ranges at the digest's version. */
async function readAll(run: Run, d: ParamsDigest, chunk: number): Promise<Uint8Array> {
  const out = new Uint8Array(d.bytes);
  for (let o = 0; o < d.bytes; o += chunk) {
    const r = await run({ type: 'paramsRange', span: d.span, offset: o, length: Math.min(chunk, d.bytes - o), worker: d.worker, version: d.version });
    assert.equal(r.version, d.version);
    out.set(r.data, o);
  }
  return out;
}

function isCode(code: string): (e: unknown) => boolean {
  return (e) => isNeuroShardError(e) && e.code === code;
}

describe('served params (checkpoint serving inside the compute worker)', () => {
  for (const held of [{ start: 0, end: L }, { start: 1, end: 3 }, { start: 2, end: L }] as Span[]) {
    it(`held [${held.start}, ${held.end}): every sub-span's digest equals the main thread's span hash and its ranges concatenate to its exact bytes`, async () => {
      const { run } = await worker();
      await run({ type: 'initModel', config, seed: 5, span: held });
      const flat = (await run({ type: 'getParams' })).params;
      for (let a = held.start; a < held.end; a++) {
        for (let b = a + 1; b <= held.end; b++) {
          const want = { start: a, end: b };
          const p = sliceSpan(config, held, flat, want);
          const d = await run({ type: 'paramsDigest', span: want });
          assert.deepEqual(d.held, held);
          assert.deepEqual(d.span, want);
          assert.equal(d.bytes, p.byteLength);
          assert.equal(d.hash, spanHashOfParams(config, want, p), `span hash of [${a}, ${b})`);
          assert.equal(d.sha256, createHash('sha256').update(paramBytes(p)).digest('hex'));
          // chunks that are not whole float32s, the last one short
          const got = await readAll(run, d, 1000);
          assert.deepEqual(got, new Uint8Array(paramBytes(p)));
        }
      }
      // the whole held span, as the worker's own model hash names it
      const all = await run({ type: 'paramsDigest', span: held });
      assert.equal(all.hash, (await run({ type: 'modelHash' })).hash);
    });
  }

  it('a range is a copy: reading does not detach or pin the weights, and the weights read stay intact', async () => {
    const { state, run } = await worker();
    await run({ type: 'initModel', config, seed: 1 });
    const d = await run({ type: 'paramsDigest', span: { start: 1, end: 2 } });
    const r = await run({ type: 'paramsRange', span: d.span, offset: 0, length: 64 });
    assert.notEqual(r.data.buffer, state.model().shard.params.buffer);
    assert.equal(r.data.buffer.byteLength, 64, 'a buffer of its own, not the weights buffer');
    r.data.fill(0);
    assert.equal((await run({ type: 'paramsDigest', span: d.span })).hash, d.hash);
  });

  it('the version moves with every job that writes the weights and only then; a read at an old version is refused', async () => {
    const { run } = await worker();
    await run({ type: 'initModel', config, seed: 2 });
    const span = { start: 0, end: 2 };
    const v0 = await run({ type: 'paramsDigest', span });
    // reading jobs: the same version, the same figures
    await run({ type: 'forward', ids: Int32Array.from([1, 2, 3]), B: 1, T: 3 });
    await run({ type: 'sessionOpen', id: 's', maxLen: 8, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } });
    await run({ type: 'sessionStep', id: 's', ids: Int32Array.from([1, 2]), chunks: [2] });
    await run({ type: 'getParams' });
    await run({ type: 'modelHash' });
    const same = await run({ type: 'paramsDigest', span });
    assert.deepEqual({ ...same }, { ...v0 });
    await readAll(run, v0, 4096);

    // setParams: a new version; a stream that started at v0 cannot read on
    const flat = (await run({ type: 'getParams' })).params;
    flat[0] = flat[0]! + 1;
    await run({ type: 'setParams', params: flat });
    await assert.rejects(run({ type: 'paramsRange', span, offset: 4096, length: 4096, worker: v0.worker, version: v0.version }), isCode('WEIGHTS_CHANGED'));
    const v1 = await run({ type: 'paramsDigest', span });
    assert.ok(v1.version > v0.version);
    assert.notEqual(v1.hash, v0.hash, 'the figures are of the new weights (not a cached digest of the old ones)');
    assert.equal(v1.hash, spanHashOfParams(config, span, sliceSpan(config, { start: 0, end: L }, flat, span)));

    // a training step writes the weights in place
    await run({ type: 'trainStep', inputs: Int32Array.from([1, 2, 3, 4]), targets: Int32Array.from([2, 3, 4, 5]), B: 1, T: 4 });
    await assert.rejects(run({ type: 'paramsRange', span, offset: 0, length: 16, worker: v1.worker, version: v1.version }), isCode('WEIGHTS_CHANGED'));
    const v2 = await run({ type: 'paramsDigest', span });
    assert.ok(v2.version > v1.version);

    // a failed write job moves it too (it may have written part of the weights)
    await assert.rejects(run({ type: 'setParams', params: new Float32Array(3) }));
    await assert.rejects(run({ type: 'paramsRange', span, offset: 0, length: 16, worker: v2.worker, version: v2.version }), isCode('WEIGHTS_CHANGED'));

    // a new model, even with the same bytes: a new version
    const v3 = await run({ type: 'paramsDigest', span });
    await run({ type: 'initModel', config, seed: 2 });
    await assert.rejects(run({ type: 'paramsRange', span, offset: 0, length: 16, worker: v3.worker, version: v3.version }), isCode('WEIGHTS_CHANGED'));
    // another worker (a restarted one) with the same counter is another version
    await assert.rejects(run({ type: 'paramsRange', span, offset: 0, length: 16, worker: v3.worker + 1, version: (await run({ type: 'paramsDigest', span })).version }), isCode('WEIGHTS_CHANGED'));
    await run({ type: 'releaseModel' });
    await assert.rejects(run({ type: 'paramsDigest', span }), isCode('COMPUTE_STATE'));
  });

  it('modelHash is hashed once per weights version: asked again it costs nothing, a write makes it hash the new weights', async () => {
    const { state, run } = await worker();
    await run({ type: 'initModel', config, seed: 2, span: { start: 1, end: 3 } });
    const bytes = (await run({ type: 'getParams' })).params.byteLength;
    const before = state.served.hashedBytes;
    const h0 = await run({ type: 'modelHash' });
    assert.equal(state.served.hashedBytes - before, bytes, 'the held span hashed once');
    for (let i = 0; i < 5; i++) assert.deepEqual(await run({ type: 'modelHash' }), h0);
    assert.equal(state.served.hashedBytes - before, bytes, 'asked again at the same version: not hashed again');
    assert.equal(h0.hash, spanHashOfParams(config, { start: 1, end: 3 }, (await run({ type: 'getParams' })).params));
    // the weights move: the next answer is of the new ones, at the new version
    const flat = (await run({ type: 'getParams' })).params;
    flat[7] = flat[7]! + 1;
    await run({ type: 'setParams', params: flat });
    const h1 = await run({ type: 'modelHash' });
    assert.ok(h1.version > h0.version);
    assert.notEqual(h1.hash, h0.hash);
    assert.equal(h1.hash, spanHashOfParams(config, { start: 1, end: 3 }, flat));
    assert.equal(state.served.hashedBytes - before, 2 * bytes);
  });

  it('bad requests get typed errors: a span not held, ranges past the payload or too long, int8 weights', async () => {
    const { run } = await worker();
    await run({ type: 'initModel', config, seed: 1, span: { start: 1, end: 3 } });
    await assert.rejects(run({ type: 'paramsDigest', span: { start: 0, end: 2 } }), isCode('INVALID_ARGUMENT'));
    await assert.rejects(run({ type: 'paramsDigest', span: { start: 2, end: 2 } }), isCode('INVALID_ARGUMENT'));
    await assert.rejects(run({ type: 'paramsDigest', span: null as unknown as Span }), isCode('INVALID_ARGUMENT'));
    const d = await run({ type: 'paramsDigest', span: { start: 1, end: 2 } });
    await assert.rejects(run({ type: 'paramsRange', span: d.span, offset: d.bytes + 1, length: 0 }), isCode('INVALID_ARGUMENT'));
    await assert.rejects(run({ type: 'paramsRange', span: d.span, offset: d.bytes - 8, length: 16 }), isCode('INVALID_ARGUMENT'));
    await assert.rejects(run({ type: 'paramsRange', span: d.span, offset: -4, length: 4 }), isCode('INVALID_ARGUMENT'));
    await assert.rejects(run({ type: 'paramsRange', span: d.span, offset: 0.5, length: 4 }), isCode('INVALID_ARGUMENT'));
    assert.ok(d.bytes < MAX_RANGE_BYTES);
    assert.equal((await run({ type: 'paramsRange', span: d.span, offset: d.bytes, length: 0 })).data.byteLength, 0);

    const q = await worker('int8');
    await q.run({ type: 'initModel', config, seed: 1 });
    await assert.rejects(q.run({ type: 'paramsDigest', span: { start: 0, end: 1 } }), isCode('COMPUTE_STATE'));
    await assert.rejects(q.run({ type: 'paramsRange', span: { start: 0, end: 1 }, offset: 0, length: 4 }), isCode('COMPUTE_STATE'));
  });
});
