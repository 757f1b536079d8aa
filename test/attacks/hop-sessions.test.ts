/**
 * Attacks on a serving hop's sessions (protocols/inference.ts InferenceHopServer) by strangers: peers with fresh keys
 * that open sessions and never step, and steps and commit requests that are malformed. The hop runs on the compute
 * worker's own handler table in-process (the jobs a node's worker runs, without a thread) with transcripts kept for
 * validators as a node keeps them (node/validator.ts: the claim is the worker's `modelHash`).
 *
 * - Open and close, no step (session 27): every open asked the worker for the weights' model hash (the transcript's
 *   claim), and the worker hashed the whole span each time: 14 ms on the genesis model, 340 ms on a 12x768 one, 20-25
 *   decode steps of work for a ~100-byte request that anyone may send. Now the worker computes it once per weights
 *   version (compute/served-params.ts) and the flood costs one hash.
 * - Fresh keys from one address block holding every session (16 keys × 16 sessions = the node's 256) or the whole
 *   KV budget (a few context-long sessions of a large model, one peer), for as long as they send a frame every 120 s:
 *   every other entry got RPC_BUSY. Now one block holds at most 64 sessions and a quarter of the budget.
 * - A transcript served to validators is the hop's inputs bit for bit: encodeTranscript wrote activations one value at
 *   a time through a DataView, which quiets a signalling NaN, so a step carrying one made the hop's work unverifiable
 *   (the fetched inputs no longer matched its signed commitment); it also took 23-40 ms of the hop's event loop per
 *   8 MiB transcript, for a 64-byte request anyone may send (now ~4 ms: the bytes are copied, not converted).
 * - One session sealed again and again: each commit request seals the session's inputs under its request id, counted
 *   again in the transcripts' quota, so one stranger's 7 MiB session sealed 9 times filled the 64 MiB and pushed every
 *   other hop session's transcript out (unverifiable work). Now a session answers at most 4 commit requests and
 *   receipts (an entry sends one of each).
 * - Sealing for made-up request ids: a hop seals a session's inputs for any request id a commit request names, and
 *   keeps 1,024 sealed transcripts: one-step sessions from one address block, sealed 4 times each, pushed every other
 *   transcript out at ~200 bytes a seal. Now one block's seals take at most a quarter of the entries and bytes.
 * - Malformed steps and commit requests (chunks that do not cover the rows, a request id that is not 32 bytes, a hop
 *   index past the count): the method's validation refuses each on the wire (methods.ts). The hop handler itself did
 *   not (a RangeError from the commitment code, answered as an internal error, unpenalised), which mattered only to
 *   callers without that validation; it now refuses them as typed caller errors too (defence in depth).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { NULL_CONTEXT } from '../../src/compute/context.js';
import type { ComputeClient } from '../../src/compute/index.js';
import { createHandlers, runHandler } from '../../src/compute/handlers.js';
import type { Job } from '../../src/compute/jobs.js';
import { ComputeState } from '../../src/compute/state.js';
import { keyFromPrivate } from '../../src/identity/index.js';
import { makeConfig } from '../../src/model/index.js';
import { workerHopCompute } from '../../src/node/serving.js';
import { workerClaim } from '../../src/node/validator.js';
import { HopCommitQueue } from '../../src/protocols/hop-commit-queue.js';
import { decodeTranscript, encodeTranscript, inputCommitment, reexecute, TRANSCRIPT_LIMIT_DEFAULTS, TranscriptStore } from '../../src/protocols/hop-transcript.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, MAX_SETTLES_PER_SESSION, type HopCompute } from '../../src/protocols/inference.js';
import { inferenceStream } from '../../src/protocols/methods.js';
import type { InferenceRequest, InferenceResponse } from '../../src/protocols/pb/node.js';
import { activationTensor, fp32Tensor, tensorToPb } from '../../src/protocols/tensor-wire.js';
import { waitFor } from '../../src/util/abort.js';
import { isNeuroShardError } from '../../src/util/errors.js';
import { tally } from './tally.js';

const config = makeConfig({ hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, vocab_size: 64, max_position_embeddings: 32 });
const C = config.hidden_size;

/** The worker's handler table in-process, behind the ComputeClient surface the hop and the claim use. */
async function inProcessWorker(span: { start: number; end: number }) {
  const state = await ComputeState.create({ backend: 'reference' });
  const h = createHandlers(state);
  const jobs = new Map<string, number>();
  const client = {
    info: { description: 'reference (test)' },
    run: async (job: Job) => {
      jobs.set(job.type, (jobs.get(job.type) ?? 0) + 1);
      return runHandler(h, job, NULL_CONTEXT);
    },
  } as unknown as ComputeClient;
  await client.run({ type: 'initModel', config, seed: 3, span });
  return { state, client, jobs };
}

function request(fields: Partial<InferenceRequest>): InferenceRequest {
  return { sessionId: 's', requestId: '1', tokens: [], positionOffset: 0, endSession: false, chunks: [], maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0, ...fields };
}

/** Runs one stream of `reqs` from `peer`; resolves with its answers and the error that ended it (if any). */
async function stream(server: InferenceHopServer, peer: string, reqs: InferenceRequest[], remoteAddr?: string): Promise<{ out: InferenceResponse[]; error?: unknown }> {
  async function* source(): AsyncGenerator<InferenceRequest> {
    yield* reqs;
  }
  const out: InferenceResponse[] = [];
  try {
    for await (const r of server.handler()(source(), { peer, limited: false, signal: new AbortController().signal, ...(remoteAddr === undefined ? {} : { remoteAddr }) })) out.push(r);
    return { out };
  } catch (error) {
    return { out, error };
  }
}

/** A hop whose sessions cost nothing but their reservation: `kv` bytes of KV cache per position. */
function freeHop(span: { start: number; end: number }, kv: number): HopCompute {
  return {
    span: () => span,
    numLayers: 4,
    hiddenSize: C,
    vocabSize: 64,
    contextLength: 1024,
    kvBytesPerPosition: () => kv,
    open: async () => {},
    step: async (_id, input) => ({ hidden: new Float32Array(input.hidden!.length) }),
    close: async () => {},
  };
}

/** Opens a session from `peer` at `addr` and holds it until `hold` resolves; resolves `opened` with the outcome. */
function holdSession(server: InferenceHopServer, peer: string, addr: string, id: string, maxLength: number, span: { start: number; end: number }, hold: Promise<void>): Promise<unknown> {
  return new Promise((opened) => {
    async function* source(): AsyncGenerator<InferenceRequest> {
      yield request({ sessionId: id, maxLength, targetSpan: span, hidden: tensorToPb(fp32Tensor(new Float32Array(C), [1, C])) });
      await hold;
    }
    void (async () => {
      try {
        for await (const _ of server.handler()(source(), { peer, remoteAddr: addr, limited: false, signal: new AbortController().signal })) opened(undefined);
      } catch (e) {
        opened(e);
      }
    })();
  });
}

describe('attack: strangers against a serving hop\'s sessions', () => {
  it('fresh keys from one address block cannot hold every session or the whole KV budget: a peer of another block still opens', async () => {
    const span = { start: 1, end: 3 };
    const busy = (e: unknown): boolean => isNeuroShardError(e) && e.code === 'RPC_BUSY';
    for (const kind of ['slots', 'memory'] as const) {
      // slots: small sessions (the session caps bind); memory: context-long sessions of a large model, an eighth of
      // the budget each (the KV budget binds: one peer's 16 sessions would take it twice over)
      const kv = kind === 'slots' ? 64 : HOP_LIMIT_DEFAULTS.memoryBudgetBytes / 8 / 1024;
      const maxLength = kind === 'slots' ? 16 : 1024;
      const server = new InferenceHopServer(freeHop(span, kv), HOP_LIMIT_DEFAULTS);
      let release!: () => void;
      const hold = new Promise<void>((r) => (release = r));
      let got = 0;
      let tries = 0;
      // fresh keys from 203.0.113.0/24, each opening sessions until one is refused, up to 64 keys
      for (let k = 0; k < 64; k++) {
        let refused = false;
        for (let i = 0; i < HOP_LIMIT_DEFAULTS.maxSessionsPerPeer && !refused; i++) {
          tries++;
          const e = await holdSession(server, `sybil-${k}`, `/ip4/203.0.113.${k % 250}/tcp/4001`, `${kind}-${k}-${i}`, maxLength, span, hold);
          if (e === undefined) got++;
          else {
            assert.ok(busy(e), String(e));
            refused = true;
          }
        }
      }
      // an honest entry elsewhere
      const honest = await holdSession(server, 'honest', '/ip4/198.51.100.7/tcp/4001', `${kind}-honest`, maxLength, span, hold);
      tally(`hop: sessions one address block took (${kind})`, tries, got > HOP_LIMIT_DEFAULTS.maxSessionsPerBlock ? got : 0);
      tally(`hop: honest session refused after a block's flood (${kind})`, 1, honest === undefined ? 0 : 1);
      assert.equal(honest, undefined, `${kind}: the honest peer was refused after one block opened ${got} sessions: ${String(honest)}`);
      if (kind === 'slots') assert.equal(got, HOP_LIMIT_DEFAULTS.maxSessionsPerBlock);
      else assert.ok(got * maxLength * kv <= HOP_LIMIT_DEFAULTS.memoryBudgetBytes * HOP_LIMIT_DEFAULTS.blockBudgetShare, `${kind}: the block reserved ${got} sessions`);
      release();
      await waitFor(() => server.usage().sessions === 0, { timeoutMs: 5_000, what: 'the held sessions ended' });
      assert.equal(server.usage().reservedBytes, 0);
      // the block's share came back with its sessions
      assert.equal(await holdSession(server, 'sybil-0', '/ip4/203.0.113.0/tcp/4001', `${kind}-again`, maxLength, span, Promise.resolve()), undefined);
    }
  });


  it('a flood of sessions opened and closed without a step from fresh keys costs one hash of the weights, not one per session', async () => {
    const span = { start: 1, end: 3 };
    const w = await inProcessWorker(span);
    const store = new TranscriptStore();
    const server = new InferenceHopServer(workerHopCompute(w.client, config, () => span), HOP_LIMIT_DEFAULTS, undefined, undefined, undefined, {
      transcripts: { store, claim: workerClaim(w.client) },
      commits: new HopCommitQueue({ useWorker: false }),
    });
    // every hash of the weights the worker computes goes through the shard's hash()
    const shard = w.state.model().shard;
    const hashOf = shard.hash.bind(shard);
    let hashed = 0;
    shard.hash = () => ((hashed += 1), hashOf());

    const N = 200;
    for (let i = 0; i < N; i++) {
      const r = await stream(server, `fresh-${i}`, [request({ sessionId: `x${i}`, maxLength: 16, targetSpan: span, endSession: true })]);
      assert.equal(r.error, undefined);
    }
    // the claims are taken on the worker after the opens answered: wait for every one queued
    await w.client.run({ type: 'modelHash' });
    assert.equal(w.jobs.get('sessionOpen'), N);
    assert.deepEqual(server.usage(), { sessions: 0, reservedBytes: 0 });
    assert.equal(w.state.sessions.size, 0);
    assert.equal(store.usage().bytes, 0);
    // each open asks; the worker hashes once for the version
    tally('hop: weights hashed per stranger session opened', N, Math.max(0, hashed - 1));
    assert.equal(hashed, 1, `the weights were hashed ${hashed} times for ${N} sessions opened and closed`);

    // the cache follows the weights: new parameters are a new version and a new hash, the one the shard computes
    const params = (await w.client.run({ type: 'getParams' })).params;
    params[0] += 1;
    await w.client.run({ type: 'setParams', params });
    const fresh = (await w.client.run({ type: 'modelHash' })).hash;
    assert.equal(hashed, 2);
    assert.equal(fresh, hashOf());
  });

  it('a session evicted by a drain while its open was pending, whose open then fails, gives its reservation back once', async () => {
    const span = { start: 1, end: 3 };
    let failOpen!: (e: Error) => void;
    const hop: HopCompute = { ...freeHop(span, 64), open: () => new Promise<void>((_, reject) => (failOpen = reject)) };
    const server = new InferenceHopServer(hop, HOP_LIMIT_DEFAULTS);
    const opened = holdSession(server, 'p', '/ip4/203.0.113.1/tcp/1', 'pending', 16, span, Promise.resolve());
    await waitFor(() => server.usage().sessions === 1, { timeoutMs: 5_000, what: 'the open reached the compute' });
    assert.deepEqual(await server.drain(0), { finished: 0, evicted: 1 });
    assert.deepEqual(server.usage(), { sessions: 0, reservedBytes: 0 });
    failOpen(new Error('the worker restarted'));
    assert.ok((await opened) instanceof Error);
    tally('hop: reservation undone twice (drain, then a failed open)', 1, server.usage().reservedBytes === 0 ? 0 : 1);
    assert.deepEqual(server.usage(), { sessions: 0, reservedBytes: 0 });
  });

  it('a sealed transcript gives back the exact bits the hop committed to (signalling NaNs included), and is cheap to serve', async () => {
    const span = { start: 1, end: 3 };
    const w = await inProcessWorker(span);
    const store = new TranscriptStore();
    const market = { networkId: 'n', key: keyFromPrivate(randomBytes(32)), submitCompletion: async () => new Uint8Array(32) };
    const server = new InferenceHopServer(workerHopCompute(w.client, config, () => span), HOP_LIMIT_DEFAULTS, undefined, undefined, market, {
      transcripts: { store, claim: workerClaim(w.client) },
      commits: new HopCommitQueue({ useWorker: false }),
    });
    // activations of a step, one value a signalling NaN: a float32 → float64 → float32 round trip (DataView's
    // setFloat32, as encodeTranscript wrote every value) makes it quiet, so the transcript a validator fetched no
    // longer matched the hop's signed input commitment: the hop's work could not be validated (TRANSCRIPT_INPUT_MISMATCH)
    const x = new Float32Array(2 * C).fill(0.25);
    new Uint32Array(x.buffer)[5] = 0x7f800001;
    const requestId = new Uint8Array(32).fill(9);
    const r = await stream(server, 'entry', [request({ sessionId: 'nan', maxLength: 16, targetSpan: span, hidden: tensorToPb(fp32Tensor(x, [2, C])) }), request({ sessionId: 'nan', commitRequest: requestId, commitIndex: 1, commitCount: 2 })]);
    assert.equal(r.error, undefined);
    const t = store.get(requestId, 1);
    assert.ok(t !== undefined, 'the transcript was sealed');
    const back = decodeTranscript(encodeTranscript(t));
    const matched = Buffer.from(inputCommitment(back)).equals(Buffer.from(r.out[1]!.inCommit!));
    tally('hop: transcript of crafted activations that no longer matches the hop\'s commitment', 1, matched ? 0 : 1);
    assert.ok(matched, 'the served transcript does not match the signed input commitment');
    assert.equal(new Uint32Array(back.steps[0]!.hidden!.buffer, back.steps[0]!.hidden!.byteOffset, 2 * C)[5], 0x7f800001);
  });

  it('one session cannot seal its inputs again and again to push every other transcript out of the quota', async () => {
    const span = { start: 1, end: 3 };
    const store = new TranscriptStore();
    const claim = async () => ({ modelHash: 'ab'.repeat(32), engine: 'test' });
    const market = { networkId: 'n', key: keyFromPrivate(randomBytes(32)), submitCompletion: async () => new Uint8Array(32) };
    const server = new InferenceHopServer(freeHop(span, 64), { ...HOP_LIMIT_DEFAULTS, memoryBudgetBytes: 1 << 30 }, undefined, undefined, market, { transcripts: { store, claim }, commits: new HopCommitQueue({ useWorker: false }) });
    const step = (id: string, T: number, extra: Partial<InferenceRequest> = {}) => request({ sessionId: id, hidden: tensorToPb(fp32Tensor(new Float32Array(T * C).fill(0.5), [T, C])), ...extra });
    // an honest session, settled once
    const honestId = new Uint8Array(32).fill(1);
    assert.equal((await stream(server, 'honest', [step('h', 4, { maxLength: 8, targetSpan: span }), request({ sessionId: 'h', commitRequest: honestId, commitIndex: 1, commitCount: 2 })])).error, undefined);
    assert.ok(store.get(honestId, 1) !== undefined);
    // a stranger's session just under the per-session quota (7 steps of 1 MiB), then sealed under 64 request ids
    const T = (1 << 20) / 4 / C;
    const big = [step('s', T, { maxLength: 1024, targetSpan: span }), ...Array.from({ length: 6 }, () => step('s', T))];
    const seals = Array.from({ length: 64 }, (_, i) => request({ sessionId: 's', commitRequest: new Uint8Array(32).fill(100 + i), commitIndex: 1, commitCount: 2 }));
    const r = await stream(server, 'stranger', [...big, ...seals]);
    const sealed = r.out.length - big.length;
    const evicted = store.get(honestId, 1) === undefined;
    tally('hop: sealing one session again and again', seals.length, Math.max(0, sealed - MAX_SETTLES_PER_SESSION));
    assert.ok(!evicted, `the honest session's transcript was evicted (the stranger's session sealed ${sealed} times)`);
    assert.ok(sealed <= MAX_SETTLES_PER_SESSION, `one session was sealed ${sealed} times`);
    assert.ok(isNeuroShardError(r.error) && r.error.code === 'BAD_STEP', String(r.error));
    assert.ok(store.usage().bytes <= store.limits.maxBytes);
  });

  it('one block\'s tiny sessions sealed for made-up request ids cannot push every other transcript out', async () => {
    const span = { start: 1, end: 3 };
    const store = new TranscriptStore();
    const claim = async () => ({ modelHash: 'ab'.repeat(32), engine: 'test' });
    const market = { networkId: 'n', key: keyFromPrivate(randomBytes(32)), submitCompletion: async () => new Uint8Array(32) };
    const server = new InferenceHopServer(freeHop(span, 64), HOP_LIMIT_DEFAULTS, undefined, undefined, market, { transcripts: { store, claim }, commits: new HopCommitQueue({ useWorker: false }) });
    const step = (id: string, extra: Partial<InferenceRequest> = {}) => request({ sessionId: id, hidden: tensorToPb(fp32Tensor(new Float32Array(C).fill(0.5), [1, C])), ...extra });
    // made-up request ids, none the honest one's
    const madeUp = (n: number): Uint8Array<ArrayBuffer> => Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 200 : i === 1 ? n >> 8 : n & 255));
    const seal = (id: string, n: number) => request({ sessionId: id, commitRequest: madeUp(n), commitIndex: 1, commitCount: 2 });
    const honestId = new Uint8Array(32).fill(1);
    assert.equal((await stream(server, 'honest', [step('h', { maxLength: 8, targetSpan: span }), request({ sessionId: 'h', commitRequest: honestId, commitIndex: 1, commitCount: 2 })], '/ip4/198.51.100.7/tcp/1')).error, undefined);
    // a stranger's one-step sessions from one /24, each sealed 4 times under made-up request ids: 1,200 seals
    let n = 0;
    for (let i = 0; i < 300; i++) {
      const id = `t${i}`;
      const r = await stream(server, `sybil-${i % 40}`, [step(id, { maxLength: 8, targetSpan: span }), seal(id, ++n), seal(id, ++n), seal(id, ++n), seal(id, ++n)], `/ip4/203.0.113.${i % 250}/tcp/1`);
      assert.equal(r.error, undefined);
    }
    const kept = store.get(honestId, 1) !== undefined;
    tally('hop: honest transcript evicted by one block\'s seals', 1, kept ? 0 : 1);
    assert.ok(kept, `the honest transcript was evicted by ${n} seals from one block (entries ${store.usage().entries})`);
    assert.ok(store.usage().entries <= TRANSCRIPT_LIMIT_DEFAULTS.maxEntries * TRANSCRIPT_LIMIT_DEFAULTS.ownerShare! + 1);
    // the block's newest are the ones kept
    assert.ok(store.get(madeUp(n), 1) !== undefined);
  });

  it('a session cannot mix activation dtypes: its transcript would re-execute to other outputs and frame the honest hop', async () => {
    const span = { start: 1, end: 3 };
    const w = await inProcessWorker(span);
    const store = new TranscriptStore();
    const market = { networkId: 'n', key: keyFromPrivate(randomBytes(32)), submitCompletion: async () => new Uint8Array(32) };
    const compute = workerHopCompute(w.client, config, () => span);
    const server = new InferenceHopServer(compute, HOP_LIMIT_DEFAULTS, undefined, undefined, market, { transcripts: { store, claim: workerClaim(w.client) }, commits: new HopCommitQueue({ useWorker: false }) });
    const x = (T: number, k: number) => Float32Array.from({ length: T * C }, (_, i) => Math.sin(i * 0.1 + k));
    // a requester that drives the hop itself: the prompt in fp32, then a decode step in bf16 (an entry keeps one
    // dtype for a whole session: RemoteHopSession's `wire`)
    const requestId = new Uint8Array(32).fill(4);
    const r = await stream(server, 'requester', [
      request({ sessionId: 'mix', maxLength: 16, targetSpan: span, hidden: tensorToPb(activationTensor(x(3, 1), [3, C], 'f32')) }),
      request({ sessionId: 'mix', hidden: tensorToPb(activationTensor(x(1, 2), [1, C], 'bf16')) }),
      request({ sessionId: 'mix', commitRequest: requestId, commitIndex: 1, commitCount: 2 }),
    ]);
    // what a validator does with the sealed transcript: re-execute and compare with the hop's signed output commitment
    const t = store.get(requestId, 1);
    let framed = 0;
    if (r.error === undefined && t !== undefined) {
      const again = await reexecute(compute, decodeTranscript(encodeTranscript(t)), new AbortController().signal);
      if (!Buffer.from(again.outCommit).equals(Buffer.from(r.out[2]!.outCommit!))) framed++;
    }
    tally('hop: honest hop re-executed to other outputs (a slash) after a session of mixed dtypes', 1, framed);
    assert.equal(framed, 0, 'the honest hop\'s own transcript re-executes to another output commitment: validators would slash it');
    assert.ok(isNeuroShardError(r.error) && r.error.code === 'BAD_STEP', String(r.error));
    assert.equal(r.out.length, 1, 'the fp32 step answered, the bf16 one refused');
    // one dtype for the session, whichever: answered and sealed, and it re-executes to the hop's own commitment
    for (const dtype of ['f32', 'f16', 'bf16'] as const) {
      const id = new Uint8Array(32).fill(dtype.length + (dtype === 'bf16' ? 10 : 0));
      const ok = await stream(server, 'entry', [
        request({ sessionId: dtype, maxLength: 16, targetSpan: span, hidden: tensorToPb(activationTensor(x(3, 1), [3, C], dtype)) }),
        request({ sessionId: dtype, hidden: tensorToPb(activationTensor(x(1, 2), [1, C], dtype)) }),
        request({ sessionId: dtype, commitRequest: id, commitIndex: 1, commitCount: 2 }),
      ]);
      assert.equal(ok.error, undefined, `${dtype}: ${String(ok.error)}`);
      const again = await reexecute(compute, decodeTranscript(encodeTranscript(store.get(id, 1)!)), new AbortController().signal);
      assert.ok(Buffer.from(again.outCommit).equals(Buffer.from(ok.out[2]!.outCommit!)), `${dtype}: re-executed to another commitment`);
    }
  });

  it('malformed steps and commit requests: refused on the wire, and by the hop itself as typed, penalised caller errors', async () => {
    const span = { start: 1, end: 3 };
    const w = await inProcessWorker(span);
    const penalties: string[] = [];
    const scores = { penalise: (peer: string, _n: number, why: string) => penalties.push(`${peer}: ${why}`) } as unknown as ConstructorParameters<typeof InferenceHopServer>[2];
    const market = { networkId: 'n', key: keyFromPrivate(randomBytes(32)), submitCompletion: async () => new Uint8Array(32) };
    const server = new InferenceHopServer(workerHopCompute(w.client, config, () => span), HOP_LIMIT_DEFAULTS, scores, undefined, market, { commits: new HopCommitQueue({ useWorker: false }) });
    const open = { maxLength: 16, targetSpan: span };
    const hidden = (T: number, shape = [T, C]) => tensorToPb(fp32Tensor(new Float32Array(T * C).fill(0.5), shape));
    const cases: { name: string; reqs: InferenceRequest[] }[] = [
      { name: 'chunks short of the rows', reqs: [request({ ...open, hidden: hidden(3), chunks: [1, 1] })] },
      { name: 'chunks past the rows', reqs: [request({ ...open, hidden: hidden(2), chunks: [2, 1] })] },
      { name: 'a zero chunk', reqs: [request({ ...open, hidden: hidden(2), chunks: [0, 2] })] },
      { name: 'more chunks than rows', reqs: [request({ ...open, hidden: hidden(1), chunks: [1, 0, 0, 0] })] },
      { name: 'rank-3 hidden states', reqs: [request({ ...open, hidden: hidden(2, [2, C, 1]) })] },
      { name: 'zero rows', reqs: [request({ ...open, hidden: hidden(0), chunks: [] })] },
      { name: 'a request id of 5 bytes', reqs: [request({ ...open, commitRequest: new Uint8Array(5), commitIndex: 0, commitCount: 2 })] },
      { name: 'a hop index past the count', reqs: [request({ ...open, commitRequest: new Uint8Array(32), commitIndex: 3, commitCount: 2 })] },
      { name: 'a hop index past 255', reqs: [request({ ...open, commitRequest: new Uint8Array(32), commitIndex: 300, commitCount: 400 })] },
      { name: 'a count of zero', reqs: [request({ ...open, commitRequest: new Uint8Array(32), commitIndex: 0, commitCount: 0 })] },
    ];
    let passedWire = 0;
    for (const [i, c] of cases.entries()) {
      // the method's validation (methods.ts) refuses each on the wire: the hop's own checks below are for callers that
      // come without it (in-process), where the commitment code's RangeError was answered as an internal error
      try {
        inferenceStream.validateRequest!(c.reqs[0]!);
        passedWire++;
      } catch (e) {
        assert.ok(isNeuroShardError(e) && e.fault === 'peer', `${c.name}: ${String(e)}`);
      }
      const before = penalties.length;
      const r = await stream(server, `peer-${i}`, c.reqs.map((q) => ({ ...q, sessionId: `m${i}` })));
      const typed = isNeuroShardError(r.error) && r.error.fault === 'caller';
      assert.ok(typed, `${c.name}: ${r.error instanceof Error ? `${r.error.constructor.name}: ${r.error.message}` : String(r.error)}`);
      assert.equal(r.out.length, 0, `${c.name}: answered`);
      assert.equal(penalties.length, before + 1, `${c.name}: not penalised`);
      assert.deepEqual(server.usage(), { sessions: 0, reservedBytes: 0 }, `${c.name}: session kept`);
    }
    tally('hop: malformed step or commit request past the wire validation', cases.length, passedWire);
    assert.equal(passedWire, 0);
    assert.equal(w.state.sessions.size, 0);

    // the honest counterparts still pass: a step of two rows in chunks [1, 1], then a commit request as hop 1 of 3
    const ok = await stream(server, 'honest', [request({ ...open, sessionId: 'ok', hidden: hidden(2), chunks: [1, 1] }), request({ sessionId: 'ok', commitRequest: new Uint8Array(32).fill(1), commitIndex: 1, commitCount: 3 })]);
    assert.equal(ok.error, undefined);
    assert.equal(ok.out.length, 2);
    assert.equal(ok.out[1]!.hopSignature?.length, 64);
  });
});
