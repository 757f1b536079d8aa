/**
 * Who may read a hop's sealed transcripts (session 28; protocols/transcript-access.ts). A transcript is the exact
 * inputs of a hop's session (for a driver, the remote user's prompt and generated ids), and until this session any
 * peer naming a public request id and a hop index got it, over either version, for any request the hop sealed for
 * (in flight or never completed included); and `hop-transcript/1.0.0` answered the newest session sealed for
 * (request, index), so a stranger's seal after the honest one was what an older validator re-executed.
 *
 * Real libp2p nodes on 127.0.0.1 (the hop H, a bonded validator V, an unbonded stranger S), a real SQLite ledger and
 * a real LedgerService behind the node's own wiring (`nodeTranscripts`: the completions naming H come from the
 * service's ingest events). The hop's sessions are driven in-process on its handler table (reference backend); every
 * transcript fetch crosses the network.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ComputeClient } from '../../src/compute/index.js';
import { accountIdFromPublicKey, keyFromPrivate, type NodeKey } from '../../src/identity/index.js';
import { NEURO } from '../../src/ledger/amount.js';
import { buildMarketRequest, buildServedCompletion, buildStake } from '../../src/ledger/build.js';
import { MIN_REWARD_BOND } from '../../src/ledger/economics.js';
import { countsForFraudQuorum, decodeFraudRecord, signFraudStatement } from '../../src/ledger/fraud.js';
import { decodeEvent, MAX_EVENT_BYTES } from '../../src/ledger/events.js';
import { Writer } from '../../src/ledger/codec.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { MemoryLedgerHub } from '../../src/ledger/memory-network.js';
import { LedgerService } from '../../src/ledger/service.js';
import { makeConfig } from '../../src/model/index.js';
import type { NodeNetwork } from '../../src/node/network.js';
import { workerHopCompute } from '../../src/node/serving.js';
import { nodeTranscripts, workerClaim } from '../../src/node/validator.js';
import { HopCommitQueue } from '../../src/protocols/hop-commit-queue.js';
import { decodeTranscript, encodeTranscriptRequest, encodeTranscriptRequestV3, encodeTranscriptRequestV4, fetchTranscript, hopTranscript, hopTranscriptV3, hopTranscriptV4, MAX_CARRIED_REQUEST_BYTES, serveTranscripts, TranscriptStore, type HopTranscript } from '../../src/protocols/hop-transcript.js';
import { HopValidator } from '../../src/protocols/hop-validator.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, type HopCompute } from '../../src/protocols/inference.js';
import type { InferenceResponse } from '../../src/protocols/pb/node.js';
import { fp32Tensor, tensorToPb } from '../../src/protocols/tensor-wire.js';
import { waitFor } from '../../src/util/abort.js';
import { isNeuroShardError } from '../../src/util/errors.js';
import { startServingNet } from '../utils/network.js';
import { env, NET, proofRun, T0, tempLedger } from './helpers.js';
import { inProcessWorker, request, stream } from './hop-rig.js';
import { tally } from './tally.js';
import { isSampled, MAX_VALIDATION_RATE } from '../../src/protocols/sampling.js';

const config = makeConfig({ hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, vocab_size: 64, max_position_embeddings: 32 });
const C = config.hidden_size;
const span = { start: 1, end: 3 };
/** How long the hop waits for a completion its ledger has not applied yet (5 s in a node). */
const PAID_WAIT_MS = 1_500;


const hidden = (T: number, k: number) => tensorToPb(fp32Tensor(Float32Array.from({ length: T * C }, (_, i) => Math.sin(i * 0.1 + k)), [T, C]));

interface Commits {
  inCommit: Uint8Array;
  outCommit: Uint8Array;
}
const commitsOf = (r: InferenceResponse): Commits => ({ inCommit: Uint8Array.from(r.inCommit!), outCommit: Uint8Array.from(r.outCommit!) });

/** The honest entry's session (prompt of 3, one decode step) committed for R as hop 1 of 2; with `stranger`, a stranger's session of one step committed for the same, after it. */
async function sessions(server: InferenceHopServer, R: Uint8Array, stranger: boolean): Promise<{ honest: Commits; stranger?: Commits }> {
  const commit = (id: string) => request({ sessionId: id, commitRequest: Uint8Array.from(R), commitIndex: 1, commitCount: 2 });
  const tag = Buffer.from(R).toString('hex').slice(0, 8);
  const h = await stream(server, 'honest', '/ip4/198.51.100.7/tcp/4001', [request({ sessionId: `h${tag}`, maxLength: 16, targetSpan: span, hidden: hidden(3, 1) }), request({ sessionId: `h${tag}`, hidden: hidden(1, 2) }), commit(`h${tag}`)]);
  if (!stranger) return { honest: commitsOf(h[2]!) };
  const x = await stream(server, 'stranger', '/ip4/203.0.113.9/tcp/4001', [request({ sessionId: `x${tag}`, maxLength: 16, targetSpan: span, hidden: hidden(1, 7) }), commit(`x${tag}`)]);
  assert.ok(x[1]?.hopSignature !== undefined, "the hop signed the stranger's commitments");
  return { honest: commitsOf(h[2]!), stranger: commitsOf(x[1]!) };
}

/** The code and message of what `p` threw (it must throw). */
async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isNeuroShardError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  assert.fail('the transcript was served');
}

const acctOf = (k: NodeKey): Uint8Array => accountIdFromPublicKey(k.publicKey);
/** Whether the draw names `k` for hop 1 at the network's ceiling (sampling.ts). */
const drawn = (receipt: Uint8Array, k: NodeKey): boolean => isSampled(receipt, 1, k.publicKey, MAX_VALIDATION_RATE);
const same = (t: HopTranscript, c: Commits): boolean => Buffer.from(t.inCommit).equals(c.inCommit) && Buffer.from(t.outCommit).equals(c.outCommit);

describe('attack: reading hop transcripts (a remote user\'s inputs) without being entitled to validate them', () => {
  let ledger: Ledger;
  let done: () => void;
  let service: LedgerService;
  let t = T0 + 130 * 60_000;
  const nonces = new Map<string, number>();
  const nonce = (k: NodeKey): number => {
    const h = Buffer.from(k.publicKey).toString('hex');
    const n = (nonces.get(h) ?? 1000) + 1;
    nonces.set(h, n);
    return n;
  };
  const H = keyFromPrivate(randomBytes(32));
  const V = keyFromPrivate(randomBytes(32));
  const S = keyFromPrivate(randomBytes(32));
  const W = keyFromPrivate(randomBytes(32)); // a second bonded key (session 29): a co-checker, or a reader the draw did not name
  const Q = keyFromPrivate(randomBytes(32)); // the requester
  const D = keyFromPrivate(randomBytes(32)); // the route's driver (hop 0)
  let hopNet: NodeNetwork;
  let valNet: NodeNetwork;
  let strangerNet: NodeNetwork;
  let wNet: NodeNetwork;
  let server: InferenceHopServer;
  let store: TranscriptStore;
  let stopTranscripts: () => Promise<void>;
  let validator: HopValidator;
  let stakeReads = 0;
  let valWorker: ComputeClient;

  /** A market request of `k` (default Q), signed and dated now, that no ledger has seen. */
  const unseenRequest = (k: NodeKey = Q) => {
    t += 1000;
    return buildMarketRequest(k, env(nonce(k), t), { maxTokens: 10_000, maxPricePerMillion: 150n * NEURO, expiresAtMs: t + 600_000 });
  };
  /** A market request of Q applied by the hop's ledger (its id is R). */
  const marketRequest = (): Uint8Array => {
    const q = unseenRequest();
    assert.equal(ledger.ingest(q.bytes, { ingress: 'gossip', nowMs: t }).status, 'applied');
    return q.id;
  };
  /**
   * The completion of R naming the hop with `c` whose receipt draws `want` (default: V sampled for hop 1 at the network's
   * ceiling; the receipt signs tokensUsed, so trying counts from 4 up draws afresh each time).
   */
  const completionOf = (R: Uint8Array, c: Commits, want: (receipt: Uint8Array) => boolean = (r) => drawn(r, V)) => {
    t += 1000;
    const n = nonce(D);
    for (let used = 4; used < 4000; used++) {
      const ev = buildServedCompletion(env(n, t), { requestId: R, tokensUsed: used, requester: Q, hops: [D, H], commits: [new Uint8Array(32).fill(5), c.inCommit, c.outCommit] });
      if (want(ev.body.receiptSignature)) return ev;
    }
    assert.fail('no receipt drew as wanted');
  };
  /** `completionOf`, submitted through the ledger service as a node's own (applied). */
  const complete = async (R: Uint8Array, c: Commits, want?: (receipt: Uint8Array) => boolean): Promise<Uint8Array> => {
    const ev = completionOf(R, c, want);
    const r = await service.submit(ev.bytes);
    assert.equal(r.status, 'applied', r.reason);
    return ev.bytes;
  };

  before(async () => {
    ({ ledger, done } = tempLedger());
    for (const k of [Q, V, W]) for (const r of ledger.ingestMany(proofRun(k, T0, 125))) assert.equal(r.status, 'applied');
    for (const k of [V, W]) assert.equal(ledger.ingest(buildStake(k, env(nonce(k), (t += 1000)), MIN_REWARD_BOND, 30).bytes, { ingress: 'gossip', nowMs: t }).status, 'applied');
    service = new LedgerService({ ledger, network: new MemoryLedgerHub().join('hop'), clock: { now: () => t }, verifyThreads: 0 });
    service.start();
    hopNet = await startServingNet(NET, undefined, [], H);
    const boot = [hopNet.p2p.multiaddrs()[0]!];
    valNet = await startServingNet(NET, undefined, boot, V);
    strangerNet = await startServingNet(NET, undefined, boot, S);
    wNet = await startServingNet(NET, undefined, boot, W);
    await waitFor(() => [valNet, strangerNet, wNet].every((n) => n.p2p.connectedPeers().includes(hopNet.peerId)), { timeoutMs: 120_000, intervalMs: 50, what: 'V, S and W connected to the hop' });
    const hopWorker = await inProcessWorker(config, span);
    // the hop's ledger, its account reads counted: each transcript request reads the caller's stake once
    const counted = Object.create(ledger, { account: { value: (id: Uint8Array) => (stakeReads++, ledger.account(id)) } }) as Ledger;
    const transcripts = await nodeTranscripts(hopWorker, hopNet, { ledger: counted, service }, H, { paidWaitMs: PAID_WAIT_MS });
    store = transcripts.store;
    stopTranscripts = transcripts.stop;
    server = new InferenceHopServer(workerHopCompute(hopWorker, config, () => span), HOP_LIMIT_DEFAULTS, undefined, undefined, { networkId: NET, key: H, submitCompletion: async () => new Uint8Array(32) }, {
      transcripts,
      commits: new HopCommitQueue({ useWorker: false }),
    });
    valWorker = await inProcessWorker(config, span);
    validator = new HopValidator({ networkId: NET, key: V, rpc: valNet.rpc, compute: workerHopCompute(valWorker, config, () => span), claim: workerClaim(valWorker), holders: () => [], submitSlash: async () => {}, rate: 1 });
  });
  after(async () => {
    await stopTranscripts?.();
    for (const n of [wNet, strangerNet, valNet, hopNet]) await n?.stop();
    service?.stop();
    done?.();
  });

  it('an unbonded peer gets nothing, over either version, refused before anything is looked up; a bonded validator still verifies the hop', async () => {
    const R = marketRequest();
    const { honest } = await sessions(server, R, false);
    const completion = await complete(R, honest);
    const scoreBefore = hopNet.scores.score(strangerNet.peerId);
    const v2 = await refusal(fetchTranscript(strangerNet.rpc, hopNet.peerId, R, 1, undefined, honest));
    const v1 = await refusal(strangerNet.rpc.call(hopNet.peerId, hopTranscript, encodeTranscriptRequest(R, 1)));
    // a request never completed is refused for the same reason: the bond is checked before the ledger's completions
    const never = await refusal(fetchTranscript(strangerNet.rpc, hopNet.peerId, new Uint8Array(randomBytes(32)), 1, undefined, honest));
    let served = 0;
    for (const r of [v2, v1, never]) {
      if (r.code !== 'TRANSCRIPT_FORBIDDEN') served++;
      assert.equal(r.code, 'TRANSCRIPT_FORBIDDEN', r.message);
      assert.match(r.message, /NOT_BONDED/);
    }
    tally("hop: a user's inputs served to a peer without a bond", 3, served);
    assert.equal(hopNet.scores.score(strangerNet.peerId), scoreBefore, 'the refused peer is not penalised');
    // a validator that knows it holds no bond (node/validator.ts wires `bonded` from its ledger) does not even ask
    const reads = stakeReads;
    const unbonded = new HopValidator({ networkId: NET, key: S, rpc: strangerNet.rpc, compute: workerHopCompute(await inProcessWorker(config, span), config, () => span), claim: async () => ({ modelHash: '', engine: '' }), holders: () => [], submitSlash: async () => {}, rate: 1, bonded: () => countsForFraudQuorum(ledger.account(acctOf(S)).locked) });
    assert.deepEqual((await unbonded.onCompletion(completion, new AbortController().signal)).find((x) => x.index === 1), { status: 'skip', index: 1, reason: 'NOT_BONDED' });
    assert.equal(stakeReads, reads, 'no request reached the hop');
    // the honest, bonded validator samples the completion, fetches (2.0.0) and re-executes it: a match
    const vs = await validator.onCompletion(completion, new AbortController().signal);
    assert.deepEqual(vs.find((x) => x.index === 1), { status: 'match', index: 1 }, JSON.stringify(vs));
  });

  it('a bonded peer gets nothing for a request in flight (no completion applied) nor for a session the completion did not pay for', async () => {
    const R = marketRequest();
    const { honest, stranger } = await sessions(server, R, true);
    assert.equal(store.count(R, 1), 2, 'both sessions sealed');
    const inFlight = await refusal(fetchTranscript(valNet.rpc, hopNet.peerId, R, 1, undefined, honest));
    assert.equal(inFlight.code, 'TRANSCRIPT_FORBIDDEN', inFlight.message);
    assert.match(inFlight.message, /COMPLETION_NOT_APPLIED/);
    const inFlightV1 = await refusal(valNet.rpc.call(hopNet.peerId, hopTranscript, encodeTranscriptRequest(R, 1)));
    assert.equal(inFlightV1.code, 'TRANSCRIPT_FORBIDDEN', inFlightV1.message);
    await complete(R, honest);
    const other = await refusal(fetchTranscript(valNet.rpc, hopNet.peerId, R, 1, undefined, stranger));
    assert.equal(other.code, 'TRANSCRIPT_FORBIDDEN', other.message);
    assert.match(other.message, /NOT_THE_COMPLETION/);
    assert.ok(same(await fetchTranscript(valNet.rpc, hopNet.peerId, R, 1, undefined, honest), honest), 'the paid session once its completion is applied');
  });

  it("a bonded validator's fetch waits for a completion its hop's ledger applies after the validator's did (gossip lag)", async () => {
    const R = marketRequest();
    const { honest } = await sessions(server, R, false);
    const reads = stakeReads;
    const fetching = fetchTranscript(valNet.rpc, hopNet.peerId, R, 1, undefined, honest);
    // the hop has the request (it read V's stake) before the completion reaches its ledger
    await waitFor(() => stakeReads > reads, { timeoutMs: 60_000, intervalMs: 5, what: 'the hop to read the caller\'s stake' });
    await complete(R, honest);
    assert.ok(same(await fetching, honest));
  });

  it("a validator whose hop's ledger had neither the request nor the completion when it asked is served on a later try (review2)", async () => {
    // the hop refuses at once what its ledger does not hold open (no slot held for made-up ids), so a hop a gossip
    // hop or a sync behind the validator answered COMPLETION_NOT_APPLIED, and the sample was lost for good: a
    // validator looks at a completion once. It now asks again (hop-validator.ts TRANSCRIPT_RETRY_MS; shortened here)
    t += 1000;
    const q = buildMarketRequest(Q, env(nonce(Q), t), { maxTokens: 10_000, maxPricePerMillion: 150n * NEURO, expiresAtMs: t + 600_000 });
    const R = q.id;
    const { honest } = await sessions(server, R, false);
    const ev = completionOf(R, honest);
    const late = new HopValidator({ networkId: NET, key: V, rpc: valNet.rpc, compute: workerHopCompute(await inProcessWorker(config, span), config, () => span), claim: workerClaim(valWorker), holders: () => [], submitSlash: async () => {}, rate: 1, retryMs: [200, 1000, 4000] });
    const stop = new AbortController();
    try {
      const first = (await late.onCompletion(ev.bytes, stop.signal)).find((x) => x.index === 1);
      assert.deepEqual(first, { status: 'skip', index: 1, reason: 'TRANSCRIPT_FORBIDDEN' }, "the hop's ledger has not seen the request");
      // the request and the completion reach the hop's ledger (a sync, or gossip that came late)
      assert.equal(ledger.ingest(q.bytes, { ingress: 'gossip', nowMs: t }).status, 'applied');
      assert.equal((await service.submit(ev.bytes)).status, 'applied');
      await waitFor(() => late.stats.matched === 1, { timeoutMs: 30_000, intervalMs: 20, what: 'the retried check to match' });
      assert.ok(late.stats.retries >= 1);
    } finally {
      stop.abort();
    }
  });

  it('a bonded key the draw does not name gets nothing, over any version; the sampled one is served (session 29)', async () => {
    // until session 29 the bond was the price of reading: any bonded key read every applied completion's inputs. Now
    // a hop serves a key only where isSampled(receipt, index, key, MAX_VALIDATION_RATE): W is bonded, not drawn
    const R = marketRequest();
    const { honest } = await sessions(server, R, false);
    const completion = await complete(R, honest, (r) => drawn(r, V) && !drawn(r, W));
    const scoreBefore = hopNet.scores.score(wNet.peerId);
    const v3 = await refusal(wNet.rpc.call(hopNet.peerId, hopTranscriptV3, encodeTranscriptRequestV3(completion, 1)));
    const v2 = await refusal(fetchTranscript(wNet.rpc, hopNet.peerId, R, 1, undefined, honest));
    const v1 = await refusal(wNet.rpc.call(hopNet.peerId, hopTranscript, encodeTranscriptRequest(R, 1)));
    // W's own fraud statement vouches for nothing: the draw does not name W either
    const self = await refusal(wNet.rpc.call(hopNet.peerId, hopTranscriptV3, encodeTranscriptRequestV3(completion, 1, signFraudStatement(W, NET, decodeEvent(completion).id, 1, 'x', honest.outCommit, new Uint8Array(32).fill(9)))));
    let served = 0;
    for (const r of [v3, v2, v1, self]) {
      if (r.code !== 'TRANSCRIPT_FORBIDDEN') served++;
      assert.equal(r.code, 'TRANSCRIPT_FORBIDDEN', r.message);
      assert.match(r.message, /NOT_SAMPLED/);
    }
    tally("hop: a user's inputs served to a bonded key the draw did not name", 4, served);
    assert.equal(hopNet.scores.score(wNet.peerId), scoreBefore, 'the refused key is not penalised');
    assert.ok(same(decodeTranscript(await valNet.rpc.call(hopNet.peerId, hopTranscriptV3, encodeTranscriptRequestV3(completion, 1))), honest), 'the sampled key is served');
  });

  it("a co-checker the draw did not name gets the transcript on the sampled validator's statement, and the slash has its quorum (session 29)", async () => {
    // V and W compute the span differently from the hop (their outputs skewed), so both find the honest hop "wrong":
    // what matters here is the path, V sampled and W not, W's fetch opened by V's statement over real libp2p
    const skewed = (c: HopCompute): HopCompute => Object.assign(Object.create(c) as HopCompute, {
      step: async (id: string, input: Parameters<HopCompute['step']>[1], signal: AbortSignal) => {
        const r = await c.step(id, input, signal);
        return r.hidden === undefined ? r : { ...r, hidden: r.hidden.map((x) => x + 1) };
      },
    });
    const R = marketRequest();
    const { honest } = await sessions(server, R, false);
    const completion = await complete(R, honest, (r) => drawn(r, V) && !drawn(r, W));
    const wWorker = await inProcessWorker(config, span);
    const co = new HopValidator({ networkId: NET, key: W, rpc: wNet.rpc, compute: skewed(workerHopCompute(wWorker, config, () => span)), claim: workerClaim(wWorker), holders: () => [], submitSlash: async () => {}, rate: MAX_VALIDATION_RATE });
    await co.serve(wNet.rpc);
    await valNet.p2p.dial(wNet.p2p.multiaddrs()[0]!, { signal: AbortSignal.timeout(60_000) });
    const records: Uint8Array[] = [];
    const v = new HopValidator({
      networkId: NET,
      key: V,
      rpc: valNet.rpc,
      compute: skewed(workerHopCompute(valWorker, config, () => span)),
      claim: workerClaim(valWorker),
      holders: () => [wNet.peerId],
      submitSlash: async ([, record]) => void records.push(record),
      rate: MAX_VALIDATION_RATE,
    });
    try {
      const vs = await v.onCompletion(completion, new AbortController().signal);
      assert.equal(vs.find((x) => x.index === 1)?.status, 'fraud', JSON.stringify(vs));
      assert.equal(co.stats.coChecks, 1, 'W was asked');
      assert.equal(co.stats.frauds, 1, `W fetched the transcript and re-executed it (${JSON.stringify(co.stats)})`);
      assert.equal(records.length, 1, 'the slash was submitted: a quorum of two');
      const signers = decodeFraudRecord(records[0]!).statements.map((st) => Buffer.from(st.validator).toString('hex'));
      assert.deepEqual(signers, [V, W].map((k) => Buffer.from(k.publicKey).toString('hex')));
    } finally {
      await co.unserve(wNet.rpc);
    }
  });

  it("a completion the hop's ledger never received by gossip: the validator's fetch carries it, the hop ingests it and serves (session 29)", async () => {
    // dropped at gossip (it came before its request), such a completion reached the hop's ledger only by the 15-minute
    // tail sync, after the transcript's 10 minutes: every validator was refused (COMPLETION_NOT_APPLIED) until then
    const R = marketRequest();
    const { honest } = await sessions(server, R, false);
    const ev = completionOf(R, honest);
    marketRequest(); // the hop's ledger moved on: the completion sorts before its tip (a deferred replay applies it)
    assert.equal(ledger.eventStatus(ev.id), undefined, "not in the hop's ledger");
    const fresh = new HopValidator({ networkId: NET, key: V, rpc: valNet.rpc, compute: workerHopCompute(valWorker, config, () => span), claim: workerClaim(valWorker), holders: () => [], submitSlash: async () => {}, rate: MAX_VALIDATION_RATE, retryMs: [] });
    const vs = await fresh.onCompletion(ev.bytes, new AbortController().signal);
    assert.deepEqual(vs.find((x) => x.index === 1), { status: 'match', index: 1 }, JSON.stringify(vs));
    assert.equal(ledger.eventStatus(ev.id)?.status, 'applied', "the hop's ledger applied the carried completion");
  });

  it('a forged or altered completion carried in the request is refused with a typed error and changes nothing (session 29)', async () => {
    const R = marketRequest();
    const { honest, stranger } = await sessions(server, R, true);
    const ev = completionOf(R, honest);
    const before = ledger.status();
    // one byte of the receipt changed: the driver's signature no longer verifies
    const forged = Uint8Array.from(ev.bytes);
    forged[forged.length - 80] ^= 1;
    const f = await refusal(valNet.rpc.call(hopNet.peerId, hopTranscriptV3, encodeTranscriptRequestV3(forged, 1)));
    assert.equal(f.code, 'TRANSCRIPT_FORGED_COMPLETION', f.message);
    // well signed, but by a stranger as its own requester and driver over the session it drove through the hop for
    // this public request id: the ledger's own rules refuse it (only the requester's completion applies)
    const sn = nonce(S);
    let byStranger = buildServedCompletion(env(sn, t), { requestId: R, tokensUsed: 4, requester: S, hops: [S, H], commits: [new Uint8Array(32).fill(5), stranger!.inCommit, stranger!.outCommit] });
    for (let used = 5; !drawn(byStranger.body.receiptSignature, V); used++) {
      byStranger = buildServedCompletion(env(sn, t), { requestId: R, tokensUsed: used, requester: S, hops: [S, H], commits: [new Uint8Array(32).fill(5), stranger!.inCommit, stranger!.outCommit] });
    }
    const a = await refusal(valNet.rpc.call(hopNet.peerId, hopTranscriptV3, encodeTranscriptRequestV3(byStranger.bytes, 1)));
    assert.equal(a.code, 'TRANSCRIPT_FORBIDDEN', a.message);
    assert.match(a.message, /COMPLETION_NOT_APPLIED/);
    assert.notEqual(ledger.eventStatus(byStranger.id)?.status, 'applied');
    const after = ledger.status();
    assert.equal(after.stateHash, before.stateHash, 'the ledger state is unchanged');
    assert.equal(after.applied, before.applied);
    assert.equal(ledger.eventStatus(decodeEvent(forged).id), undefined, 'the forged event is not stored');
    // the honest completion, carried, is still taken
    assert.ok(same(decodeTranscript(await valNet.rpc.call(hopNet.peerId, hopTranscriptV3, encodeTranscriptRequestV3(ev.bytes, 1))), honest));
  });

  it("a hop whose ledger has neither the request nor the completion: the fetch carries both, the hop ingests the request, then the completion, and serves (session 30)", async () => {
    // with 3.0.0 the completion alone was REQUEST_NOT_PENDING in such a ledger (dropped), every retry carried it again
    // to no avail, and the hop's work on it was never validated: a hop could escape validation by "missing" requests
    const q = unseenRequest();
    const R = q.id;
    const { honest } = await sessions(server, R, false);
    const ev = completionOf(R, honest);
    marketRequest(); // the hop's ledger moved on: both sort before its tip (one deferred replay judges them, in order)
    assert.equal(ledger.eventStatus(R), undefined, "the request is not in the hop's ledger");
    assert.equal(ledger.eventStatus(ev.id), undefined, "nor is the completion");
    const escrowed = ledger.status().escrowed;
    // the validator's ledger applied both: it carries the request its ledger holds under the completion's request id
    const fresh = new HopValidator({
      networkId: NET,
      key: V,
      rpc: valNet.rpc,
      compute: workerHopCompute(valWorker, config, () => span),
      claim: workerClaim(valWorker),
      holders: () => [],
      submitSlash: async () => {},
      rate: MAX_VALIDATION_RATE,
      retryMs: [],
      requestEvent: (id) => (Buffer.from(id).equals(R) ? q.bytes : undefined),
    });
    const vs = await fresh.onCompletion(ev.bytes, new AbortController().signal);
    assert.deepEqual(vs.find((x) => x.index === 1), { status: 'match', index: 1 }, JSON.stringify(vs));
    assert.equal(fresh.stats.retries, 0, 'served on the first try');
    assert.equal(ledger.eventStatus(R)?.status, 'applied', "the hop's ledger applied the carried request");
    assert.equal(ledger.eventStatus(ev.id)?.status, 'applied', 'and the carried completion on it');
    assert.equal(ledger.requestPending(R), false, 'the escrow is settled by the completion');
    assert.equal(ledger.status().escrowed, escrowed, 'escrowed by the request, paid out by its completion');
  });

  it('a forged, altered, mismatched, oversized, unfunded or replayed carried request is refused with a typed error and changes nothing (session 30)', async () => {
    // W here (bonded, drawn for these completions): V's carried quota (6 a minute) is used by the tests before
    const forW = (r: Uint8Array): boolean => drawn(r, W);
    const q = unseenRequest();
    const R = q.id;
    const { honest } = await sessions(server, R, false);
    const ev = completionOf(R, honest, forW);
    // a request of Q's already settled by a completion whose hop 1 is another key: spent escrow
    const spent = unseenRequest();
    assert.equal(ledger.ingest(spent.bytes, { ingress: 'gossip', nowMs: t }).status, 'applied');
    const { honest: spentCommits } = await sessions(server, spent.id, false);
    t += 1000;
    const settle = buildServedCompletion(env(nonce(D), t), { requestId: spent.id, tokensUsed: 4, requester: Q, hops: [D, S], commits: [new Uint8Array(32).fill(5), new Uint8Array(32).fill(6), new Uint8Array(32).fill(7)] });
    assert.equal((await service.submit(settle.bytes)).status, 'applied');
    const again = completionOf(spent.id, spentCommits, forW);
    // a request of S, who holds nothing, with a completion S signed as its requester over a session it drove through the hop
    const poor = unseenRequest(S);
    const { honest: poorCommits } = await sessions(server, poor.id, false);
    t += 1000;
    const dn = nonce(D);
    let unfunded = buildServedCompletion(env(dn, t), { requestId: poor.id, tokensUsed: 4, requester: S, hops: [D, H], commits: [new Uint8Array(32).fill(5), poorCommits.inCommit, poorCommits.outCommit] });
    for (let used = 5; !forW(unfunded.body.receiptSignature); used++) {
      unfunded = buildServedCompletion(env(dn, t), { requestId: poor.id, tokensUsed: used, requester: S, hops: [D, H], commits: [new Uint8Array(32).fill(5), poorCommits.inCommit, poorCommits.outCommit] });
    }
    marketRequest(); // the tip moves on: what is carried sorts before it
    await waitFor(() => !ledger.status().replayPending, { timeoutMs: 10_000, intervalMs: 10, what: 'no replay pending' });
    const before = ledger.status();
    const v4 = (completion: Uint8Array, request: Uint8Array) => wNet.rpc.call(hopNet.peerId, hopTranscriptV4, encodeTranscriptRequestV4(completion, request, 1));

    // forged: a signature byte flipped keeps the request's id (ids exclude signatures); altered: a term changed after signing
    const resigned = Uint8Array.from(q.bytes);
    resigned[resigned.length - 1]! ^= 1;
    assert.ok(Buffer.from(decodeEvent(resigned).id).equals(R));
    const altered = Uint8Array.from(q.bytes);
    altered[altered.length - 65]! ^= 1;
    const forged = await refusal(v4(ev.bytes, resigned));
    const alt = await refusal(v4(ev.bytes, altered));
    // mismatched: a well-signed request of Q's, not the one the completion answers
    const mis = await refusal(v4(ev.bytes, unseenRequest().bytes));
    assert.deepEqual([forged.code, alt.code, mis.code], ['TRANSCRIPT_FORGED_REQUEST', 'TRANSCRIPT_FORGED_REQUEST', 'TRANSCRIPT_REQUEST_MISMATCH'], [forged.message, alt.message, mis.message].join(' | '));
    // oversized: refused as it is decoded, before the bond is read (S, unbonded, gets the same answer)
    const over = new Writer().u8(4).bytes(ev.bytes, MAX_EVENT_BYTES).bytes(new Uint8Array(MAX_CARRIED_REQUEST_BYTES + 1), MAX_CARRIED_REQUEST_BYTES + 1).u8(1).u8(0).finish();
    const big = await refusal(strangerNet.rpc.call(hopNet.peerId, hopTranscriptV4, over));
    assert.equal(big.code, 'RPC_MALFORMED', big.message);
    assert.match(big.message, /longer than 512/);

    // unfunded: well signed and matching, so the ledger judges it: S cannot escrow, the request is not kept, nor the completion
    const poorly = await refusal(v4(unfunded.bytes, poor.bytes));
    assert.equal(poorly.code, 'TRANSCRIPT_FORBIDDEN', poorly.message);
    assert.match(poorly.message, /COMPLETION_NOT_APPLIED/);
    assert.equal(ledger.eventStatus(poor.id), undefined, 'the unfunded request is not stored');
    assert.equal(ledger.eventStatus(unfunded.id), undefined, 'nor its completion');
    // replayed: a spent request carried again with a second completion for it (dedupe; REQUEST_NOT_PENDING)
    const replayed = await refusal(v4(again.bytes, spent.bytes));
    assert.equal(replayed.code, 'TRANSCRIPT_FORBIDDEN', replayed.message);
    assert.match(replayed.message, /COMPLETION_NOT_APPLIED/);
    // (stored for the deferred replay that judges it at its place, and dropped there)
    await waitFor(() => !ledger.status().replayPending, { timeoutMs: 10_000, intervalMs: 10, what: 'the replays to run' });
    assert.equal(ledger.eventStatus(again.id), undefined, 'the second completion of a spent request is not kept');
    const after = ledger.status();
    assert.equal(after.stateHash, before.stateHash, 'the ledger state is unchanged');
    assert.deepEqual([after.applied, after.rejected, after.escrowed], [before.applied, before.rejected, before.escrowed]);
    assert.equal(ledger.eventStatus(R), undefined, 'no refused carry stored the honest request');
    assert.equal(ledger.eventStatus(ev.id), undefined);

    // the honest pair is still taken, and carried again (a replay of the same fetch) it changes nothing more
    assert.ok(same(decodeTranscript(await v4(ev.bytes, q.bytes)), honest));
    assert.equal(ledger.eventStatus(ev.id)?.status, 'applied');
    const served = ledger.status();
    assert.equal(served.applied, before.applied + 2, 'the request and its completion');
    assert.ok(same(decodeTranscript(await v4(ev.bytes, q.bytes)), honest));
    assert.equal(ledger.status().stateHash, served.stateHash, 'the same pair carried again changes nothing');
  });

  it("an older validator (1.0.0: no commitments) gets the session the applied completion paid for, not a stranger's sealed after it", async () => {
    const R = marketRequest();
    const { honest, stranger } = await sessions(server, R, true);
    await complete(R, honest);
    const t1 = decodeTranscript(await valNet.rpc.call(hopNet.peerId, hopTranscript, encodeTranscriptRequest(R, 1)));
    assert.ok(!same(t1, stranger!), "1.0.0 answered the stranger's session (the newest sealed)");
    assert.ok(same(t1, honest), '1.0.0 answers the completion\'s session');
  });

  it('without a ledger to tell, 1.0.0 refuses to guess between sessions sealed for one request and hop', async () => {
    // a second hop serving its store with no access rule (serveTranscripts alone, as a tool or a test would)
    const K = keyFromPrivate(randomBytes(32));
    const net = await startServingNet(NET, undefined, [hopNet.p2p.multiaddrs()[0]!], K);
    try {
      const worker = await inProcessWorker(config, span);
      const own = new TranscriptStore();
      const hop = new InferenceHopServer(workerHopCompute(worker, config, () => span), HOP_LIMIT_DEFAULTS, undefined, undefined, { networkId: NET, key: K, submitCompletion: async () => new Uint8Array(32) }, {
        transcripts: { store: own, claim: workerClaim(worker) },
        commits: new HopCommitQueue({ useWorker: false }),
      });
      await serveTranscripts(net.rpc, own);
      await valNet.p2p.dial(net.p2p.multiaddrs()[0]!, { signal: AbortSignal.timeout(60_000) });
      const one = new Uint8Array(randomBytes(32));
      const { honest } = await sessions(hop, one, false);
      assert.ok(same(decodeTranscript(await valNet.rpc.call(net.peerId, hopTranscript, encodeTranscriptRequest(one, 1))), honest), 'one session sealed: served');
      const two = new Uint8Array(randomBytes(32));
      await sessions(hop, two, true);
      const r = await refusal(valNet.rpc.call(net.peerId, hopTranscript, encodeTranscriptRequest(two, 1)));
      assert.equal(r.code, 'TRANSCRIPT_AMBIGUOUS', r.message);
    } finally {
      await net.stop();
    }
  });

  it('a hop that does not speak 4.0.0 (an older node) is asked 3.0.0 by a validator carrying the request (session 30)', async () => {
    // last in the file: it takes 4.0.0 off the hop. The hop's ledger holds the request and missed the completion
    await hopNet.rpc.unhandle(hopTranscriptV4);
    const R = marketRequest();
    const { honest } = await sessions(server, R, false);
    const ev = completionOf(R, honest, (r) => drawn(r, W));
    marketRequest();
    const probe = () => refusal(wNet.rpc.call(hopNet.peerId, hopTranscriptV4, encodeTranscriptRequestV4(ev.bytes, ledger.eventBytes(R)!, 1)));
    let older = await probe();
    // the stream W's calls shared for 4.0.0 (rpc/mux.ts) was reset by the unhandle; a new one negotiates the protocol
    if (older.code === 'RPC_STREAM_RESET') older = await probe();
    assert.equal(older.code, 'RPC_UNAVAILABLE', older.message);
    assert.match(older.message, /does not speak/);
    const v = new HopValidator({
      networkId: NET,
      key: W,
      rpc: wNet.rpc,
      compute: workerHopCompute(valWorker, config, () => span),
      claim: workerClaim(valWorker),
      holders: () => [],
      submitSlash: async () => {},
      rate: MAX_VALIDATION_RATE,
      retryMs: [],
      requestEvent: (id) => ledger.eventBytes(id),
    });
    const vs = await v.onCompletion(ev.bytes, new AbortController().signal);
    assert.deepEqual(vs.find((x) => x.index === 1), { status: 'match', index: 1 }, JSON.stringify(vs));
    assert.equal(ledger.eventStatus(ev.id)?.status, 'applied', 'the completion carried over 3.0.0 was ingested');
  });
});
