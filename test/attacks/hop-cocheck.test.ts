/**
 * Attacks on a validator's co-checks (`hop-fraud-check/1.0.0`, protocols/hop-validator.ts): any peer may ask a
 * validator holding a span to re-execute a hop of a market completion. Each request cost the validator a transcript
 * fetch (up to 9 MiB) and the re-execution of the hop's whole session on its worker (session jobs: they pass its
 * training), for an ~8 KiB request, however often it was sent (session 27):
 * - a real completion replayed: now re-executed once; its verdict (a match or a fraud) answers later co-checks and the
 *   validator's own sample of it;
 * - a completion the stranger signed as its own driver, over a hop session it drove and never paid for (no market
 *   request, never on any ledger): now refused unless this node's ledger applied the completion, before any work.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { buildServedCompletion } from '../../src/ledger/build.js';
import { RunningCommitment } from '../../src/ledger/commitment.js';
import { decodeFraudRecord, signFraudStatement, signTranscriptClaim } from '../../src/ledger/fraud.js';
import { decodeTranscriptRequest, encodeTranscript, type HopTranscript } from '../../src/protocols/hop-transcript.js';
import { encodeCoCheck, encodeStatement, HopValidator } from '../../src/protocols/hop-validator.js';
import type { HopCompute } from '../../src/protocols/inference.js';
import type { CallContext, RpcNode } from '../../src/protocols/rpc/service.js';
import { isNeuroShardError } from '../../src/util/errors.js';
import { tally } from './tally.js';
import { env, NET, T0, testKey } from './helpers.js';

const C = 16;
const span = { start: 1, end: 3 };
const claim = { span, modelHash: 'ab'.repeat(32), engine: 'test-engine' };
const R = testKey(9901); // requester
const D = testKey(9902); // driver
const H = testKey(9903); // the hop
const V = testKey(9904); // the validator
const S = testKey(9905); // a stranger, driving for itself

/** The span's math on the validator: its output is 2x + 1 (the hop computed the same: an honest hop). */
function validatorCompute(): HopCompute & { steps: number } {
  const c = {
    steps: 0,
    span: () => span,
    numLayers: 4,
    hiddenSize: C,
    vocabSize: 64,
    contextLength: 64,
    kvBytesPerPosition: () => 0,
    open: async () => {},
    step: async (_id: string, input: { hidden?: Float32Array }) => {
      c.steps++;
      return { hidden: input.hidden!.map((x) => 2 * x + 1) };
    },
    close: async () => {},
  };
  return c;
}

/**
 * A hop's session of one 2-row step whose output is 2x + 2 (the validator's span computes 2x + 1: fraud), its
 * transcript as the hop seals it, and the paid completion naming it (nonce `n`).
 */
function fraudulentHop(x: Float32Array, n: number): { inC: RunningCommitment; outC: RunningCommitment; requestId: Uint8Array; t: HopTranscript; done: ReturnType<typeof buildServedCompletion> } {
  const inC = new RunningCommitment();
  inC.hidden(x, C, [2]);
  const outC = new RunningCommitment();
  outC.hidden(x.map((v) => 2 * v + 2), C, [2]);
  const requestId = new Uint8Array(randomBytes(32));
  const t: HopTranscript = {
    requestId,
    index: 1,
    count: 2,
    inCommit: inC.value,
    outCommit: outC.value,
    claim,
    claimSignature: signTranscriptClaim(H, NET, requestId, 1, 2, inC.value, outC.value, claim),
    maxLen: 8,
    sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 },
    wire: 'f32',
    cols: C,
    steps: [{ chunks: [2], hidden: x }],
  };
  const done = buildServedCompletion(env(n, T0 + n), { requestId, tokensUsed: 4, requester: R, hops: [D, H], commits: [new Uint8Array(32).fill(7), inC.value, outC.value] });
  return { inC, outC, requestId, t, done };
}

describe('attack: co-checks that make a validator re-execute', () => {
  it('a replayed completion is re-executed once, and a self-signed unpaid one not at all', async () => {
    // the hop's session: one step of two rows, its commitments and its sealed transcript
    const x = Float32Array.from({ length: 2 * C }, (_, i) => Math.sin(i));
    const inC = new RunningCommitment();
    inC.hidden(x, C, [2]);
    const outC = new RunningCommitment();
    outC.hidden(x.map((v) => 2 * v + 1), C, [2]);
    const transcriptFor = (requestId: Uint8Array): HopTranscript => ({
      requestId,
      index: 1,
      count: 2,
      inCommit: inC.value,
      outCommit: outC.value,
      claim,
      claimSignature: signTranscriptClaim(H, NET, requestId, 1, 2, inC.value, outC.value, claim),
      maxLen: 8,
      sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 },
      wire: 'f32',
      cols: C,
      steps: [{ chunks: [2], hidden: x }],
    });
    const completion = (driver: typeof D, requestId: Uint8Array, nonce: number) =>
      buildServedCompletion(env(nonce, T0 + nonce), { requestId, tokensUsed: 4, requester: R, hops: [driver, H], commits: [new Uint8Array(32).fill(7), inC.value, outC.value] });
    const paid = completion(D, new Uint8Array(randomBytes(32)), 1);
    const applied = new Set([Buffer.from(paid.id).toString('hex')]);

    let fetches = 0;
    let handler: ((req: Uint8Array, ctx: CallContext) => Promise<Uint8Array>) | undefined;
    const rpc = {
      handle: async (_m: unknown, h: typeof handler) => {
        handler = h;
      },
      call: async (_peer: string, _m: unknown, req: Uint8Array) => {
        fetches++;
        return encodeTranscript(transcriptFor(decodeTranscriptRequest(req).requestId));
      },
    } as unknown as RpcNode;
    const compute = validatorCompute();
    const validator = new HopValidator({
      networkId: NET,
      key: V,
      rpc,
      compute,
      claim: async () => ({ modelHash: claim.modelHash, engine: claim.engine }),
      holders: () => [],
      submitSlash: async () => {},
      rate: 1,
      completionApplied: (id) => applied.has(Buffer.from(id).toString('hex')),
      appliedWaitMs: 50,
    });
    await validator.serve(rpc);
    const coCheck = async (bytes: Uint8Array): Promise<string> => {
      try {
        await handler!(encodeCoCheck(bytes, 1), { peer: 'stranger', limited: false, signal: new AbortController().signal });
        return 'STATEMENT';
      } catch (e) {
        return isNeuroShardError(e) ? e.code : String(e);
      }
    };

    // 1. one real, paid completion asked about 20 times: the honest hop matches every time, re-executed once
    const N = 20;
    const answers = [];
    for (let i = 0; i < N; i++) answers.push(await coCheck(paid.bytes));
    assert.deepEqual(new Set(answers), new Set(['OUTPUT_MATCHES']));
    tally('validator: re-executions for one replayed co-check', N, compute.steps - 1);
    assert.equal(compute.steps, 1, `${compute.steps} re-executions for ${N} co-checks of one completion`);
    assert.equal(fetches, 1);
    // and the validator's own sample of it is answered from the same verdict
    // (hop 0, the driver, is sampled too: its transcript is not this one, a skip before any re-execution)
    const own = await validator.onCompletion(paid.bytes, new AbortController().signal);
    assert.equal(own.find((v) => v.index === 1)?.status, 'match');
    assert.equal(compute.steps, 1);

    // 2. completions the stranger signed as its own driver over the same hop session, each under a fresh request id
    const before = compute.steps;
    const fetched = fetches;
    const fakes = Array.from({ length: 10 }, (_, i) => completion(S, new Uint8Array(randomBytes(32)), 100 + i));
    const refused = [];
    for (const f of fakes) refused.push(await coCheck(f.bytes));
    const worked = compute.steps - before;
    tally('validator: re-executions for self-signed unpaid completions', fakes.length, worked);
    assert.equal(worked, 0, `${worked} re-executions for ${fakes.length} completions no ledger applied`);
    assert.deepEqual(new Set(refused), new Set(['CANNOT_VALIDATE']));
    assert.equal(fetches, fetched, 'nothing fetched for them');
  });
  it("a co-check asked first and dropped does not end the validator's own check of the hop as a skip (review2)", async () => {
    // a hop that committed to 2x + 2 where the span computes 2x + 1: a fraud. The hop (or anyone) co-checks its
    // completion as soon as it is applied, the validator's own sample (queued behind other completions) joins that
    // check, and the co-check's stream is reset: before, its signal aborted the shared check (the transcript fetch),
    // a skip answered the validator's own sample too, and the fraud went unchallenged by this validator
    const x = Float32Array.from({ length: 2 * C }, (_, i) => Math.cos(i));
    const { t, done } = fraudulentHop(x, 7);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let fetching!: () => void;
    const fetchStarted = new Promise<void>((r) => (fetching = r));
    let calls = 0;
    let secondCall!: () => void;
    const second = new Promise<void>((r) => (secondCall = r));
    let handler: ((req: Uint8Array, ctx: CallContext) => Promise<Uint8Array>) | undefined;
    const rpc = {
      handle: async (_m: unknown, h: typeof handler) => {
        handler = h;
      },
      // the first transcript fetch (the co-check's, of hop 1) held until released and ended by its signal as a real
      // call is; the next (the validator's own, of hop 0: not this transcript, a skip) answered at once
      call: async (_peer: string, _m: unknown, _req: Uint8Array, opts?: { signal?: AbortSignal }) => {
        if (++calls === 2) secondCall();
        if (calls > 1) return encodeTranscript(t);
        fetching();
        await new Promise<void>((resolve, reject) => {
          if (opts?.signal?.aborted === true) return reject(new Error('aborted'));
          opts?.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
          void gate.then(resolve);
        });
        return encodeTranscript(t);
      },
    } as unknown as RpcNode;
    const validator = new HopValidator({
      networkId: NET,
      key: V,
      rpc,
      compute: validatorCompute(),
      claim: async () => ({ modelHash: claim.modelHash, engine: claim.engine }),
      holders: () => [],
      submitSlash: async () => {},
      rate: 1,
      completionApplied: () => true,
      appliedWaitMs: 50,
    });
    await validator.serve(rpc);
    const dropped = new AbortController();
    const co = handler!(encodeCoCheck(done.bytes, 1), { peer: 'the-hop', limited: false, signal: dropped.signal }).then(
      () => 'STATEMENT',
      (e: unknown) => (isNeuroShardError(e) ? e.code : String(e)),
    );
    await fetchStarted;
    const own = validator.onCompletion(done.bytes, new AbortController().signal);
    // hop 0 checked (a skip), hop 1's check joined: all in microtasks after the second fetch answered
    await second;
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    dropped.abort(new Error('the co-check stream was reset'));
    await co;
    release();
    const verdicts = await own;
    assert.equal(verdicts.find((v) => v.index === 1)?.status, 'fraud', JSON.stringify(verdicts.find((v) => v.index === 1)));
  });

  it('a co-statement from a key without the bond is not taken into the slash: the next holder is asked (review2)', async () => {
    // a fraud (the hop committed to 2x + 2, the span computes 2x + 1); two holders co-check it and both sign: u holds no
    // bond (an older node, or one against a hop serving everyone), w does. Before, u's statement, asked first, made
    // the quorum of two here; every ledger refused the slash (HOP_FRAUD_QUORUM) and w was never asked
    const U = testKey(9906);
    const W = testKey(9907);
    const x = Float32Array.from({ length: 2 * C }, (_, i) => Math.sin(3 * i));
    const { outC, t, done } = fraudulentHop(x, 8);
    const recomputed = new RunningCommitment();
    recomputed.hidden(x.map((v) => 2 * v + 1), C, [2]);
    const asked: string[] = [];
    const rpc = {
      handle: async () => {},
      call: async (peer: string, m: { name: string }) => {
        if (m.name !== 'hop-fraud-check') return encodeTranscript(t);
        asked.push(peer);
        const k = peer === 'u' ? U : W;
        return encodeStatement(signFraudStatement(k, NET, done.id, 1, claim.modelHash, outC.value, recomputed.value));
      },
    } as unknown as RpcNode;
    const records: Uint8Array[][] = [];
    const validator = new HopValidator({
      networkId: NET,
      key: V,
      rpc,
      compute: validatorCompute(),
      claim: async () => ({ modelHash: claim.modelHash, engine: claim.engine }),
      holders: () => ['u', 'w'],
      submitSlash: async ([, record]) => {
        records.push(decodeFraudRecord(record).statements.map((st) => st.validator));
      },
      rate: 1,
      counts: (k) => !Buffer.from(k).equals(U.publicKey),
    });
    const vs = await validator.onCompletion(done.bytes, new AbortController().signal);
    assert.equal(vs.find((v) => v.index === 1)?.status, 'fraud', JSON.stringify(vs));
    assert.deepEqual(asked, ['u', 'w']);
    assert.equal(records.length, 1, 'one slash submitted');
    assert.deepEqual(records[0]!.map((k) => Buffer.from(k).toString('hex')), [V, W].map((k) => Buffer.from(k.publicKey).toString('hex')), "the slash carries the bonded statements, not u's");
  });
});
