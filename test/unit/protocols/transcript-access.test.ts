/**
 * Who may read a hop's transcripts (session 28, protocols/transcript-access.ts), the pure parts: the bond rule (the
 * same predicate as the ledger's hop-fraud quorum) and the index of completions naming the hop (only an applied
 * one counts; bounded in count and time). The network side: test/attacks/transcript-access.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { peerIdFromPublicKey } from '../../../src/identity/index.js';
import { buildMarketRequest, buildServedCompletion, buildTransfer } from '../../../src/ledger/build.js';
import { decodeEvent, type LedgerEvent, type MarketCompleteBody } from '../../../src/ledger/events.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { MIN_REWARD_BOND } from '../../../src/ledger/economics.js';
import { countsForFraudQuorum } from '../../../src/ledger/fraud.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { encodeTranscriptRequest, hopTranscript, serveTranscripts, TranscriptStore } from '../../../src/protocols/hop-transcript.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { effectiveValidationRate, isSampled, MAX_VALIDATION_RATE } from '../../../src/protocols/sampling.js';
import { bondedReaders, carriedRequest, CARRIED_INGESTS_PER_MINUTE, CARRIED_INGESTS_PER_PEER_PER_MINUTE, CarriedIngestQuota, PaidCompletions, type TranscriptAccess } from '../../../src/protocols/transcript-access.js';
import { waitFor } from '../../../src/util/abort.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { acct, env, NET, T0, testKey } from '../ledger/helpers.js';

const H = testKey(1);
const D = testKey(2);
const Q = testKey(3);
const X = testKey(4);
const rid = (i: number): Uint8Array => new Uint8Array(32).fill(i);
/** A completion of request `r` whose hop 1 is `hop`, with commitments derived from `k`. */
function completion(r: number, hop = H, k = 0, nonce = r * 10 + k) {
  const c = (i: number): Uint8Array => new Uint8Array(32).fill(16 * k + i + 1);
  return buildServedCompletion(env(nonce, T0 + nonce), { requestId: rid(r), tokensUsed: 4, requester: Q, hops: [D, hop], commits: [c(0), c(1), c(2)] });
}

describe('transcript access (session 28)', () => {
  it('entitles a key whose locked stake counts toward the hop-fraud quorum, and no other', () => {
    const locked = new Map<string, bigint>([[Buffer.from(acct(H)).toString('hex'), MIN_REWARD_BOND], [Buffer.from(acct(X)).toString('hex'), MIN_REWARD_BOND - 1n]]);
    const entitled = bondedReaders((id) => locked.get(Buffer.from(id).toString('hex')) ?? 0n);
    assert.equal(entitled(peerIdFromPublicKey(H.publicKey)), true);
    assert.equal(entitled(peerIdFromPublicKey(X.publicKey)), false, 'one base unit short of the bond');
    assert.equal(entitled(peerIdFromPublicKey(D.publicKey)), false, 'no stake');
    assert.equal(entitled('12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'), false, 'an Ed25519 peer id has no account');
    assert.equal(countsForFraudQuorum(MIN_REWARD_BOND), true);
    assert.equal(countsForFraudQuorum(MIN_REWARD_BOND - 1n), false);
  });

  it("answers the hop's commitments of the applied completion for a request, and nothing for any other", () => {
    const applied = new Set<string>();
    const p = new PaidCompletions(H.publicKey, (id) => applied.has(Buffer.from(id).toString('hex')));
    const a = completion(1, H, 0);
    const b = completion(1, H, 1); // a second completion the requester signed for the same request
    p.note(a.bytes);
    p.note(b.bytes);
    p.note(a.bytes); // noted twice (gossip and sync): kept once
    p.note(completion(2, X).bytes); // names another hop
    p.note(buildTransfer(D, env(1, T0), acct(X), NEURO).bytes); // not a completion
    assert.equal(p.size(), 2);
    assert.equal(p.paid(rid(1), 1), undefined, 'none applied yet (pending, in flight)');
    applied.add(Buffer.from(b.id).toString('hex'));
    assert.deepEqual(p.paid(rid(1), 1), { id: b.id, inCommit: b.body.hops[1]!.inCommit, outCommit: b.body.hops[1]!.outCommit, receiptSignature: b.body.receiptSignature });
    assert.equal(p.paid(rid(1), 0), undefined, 'we are hop 1, not 0');
    assert.equal(p.paid(rid(2), 1), undefined);
  });

  it("does not let a stranger's completions for an open request take its places before the requester's (review2)", () => {
    // a stranger drove a session through the hop for the public request id and signed 4 completions over it, stored
    // 'pending' while a replay was pending: they took the request's 4 places, the requester's was dropped, and the
    // hop refused every validator of the paid session. Only the open request's requester's completions are kept now
    const applied = new Set<string>();
    const open = new Map([[Buffer.from(rid(1)).toString('hex'), Buffer.from(acct(Q)).toString('hex')]]);
    const p = new PaidCompletions(H.publicKey, (id) => applied.has(Buffer.from(id).toString('hex')), undefined, undefined, (r) => open.get(Buffer.from(r).toString('hex')));
    const c = (i: number): Uint8Array => new Uint8Array(32).fill(100 + i);
    for (let k = 0; k < 4; k++) {
      p.note(buildServedCompletion(env(500 + k, T0 + 500 + k), { requestId: rid(1), tokensUsed: 4, requester: X, hops: [X, H], commits: [c(0), c(1), c(2)] }).bytes);
    }
    const honest = completion(1, H, 0);
    p.note(honest.bytes);
    applied.add(Buffer.from(honest.id).toString('hex'));
    assert.deepEqual(p.paid(rid(1), 1), { id: honest.id, inCommit: honest.body.hops[1]!.inCommit, outCommit: honest.body.hops[1]!.outCommit, receiptSignature: honest.body.receiptSignature });
    assert.equal(p.size(), 1, "the stranger's were not kept");
  });

  it('forgets completions past its retention and past its count, oldest first', () => {
    let now = 0;
    const p = new PaidCompletions(H.publicKey, () => true, { maxEntries: 3, retentionMs: 1000 }, () => now);
    for (let r = 1; r <= 4; r++) p.note(completion(r).bytes);
    assert.equal(p.size(), 3);
    assert.equal(p.paid(rid(1), 1), undefined, 'the oldest went first');
    assert.notEqual(p.paid(rid(4), 1), undefined);
    now = 600;
    p.note(completion(5).bytes);
    now = 1100; // 2, 3, 4 noted at 0 are past 1000 ms; 5 (noted at 600) is not
    assert.notEqual(p.paid(rid(5), 1), undefined);
    assert.equal(p.size(), 1);
    assert.equal(p.paid(rid(2), 1), undefined);
  });
});

describe('the draw and its ceiling (session 29)', () => {
  it('a key sampled at a lower rate is sampled at every higher one, and the ceiling draws its share', () => {
    // the hop serves keys sampled at MAX_VALIDATION_RATE: every hop a validator at a lower rate samples must be among them
    const rates = [0.001, 0.01, 0.05, 0.1, 0.2, MAX_VALIDATION_RATE];
    const N = 20_000;
    const hits = rates.map(() => 0);
    for (let n = 0; n < N; n++) {
      const receipt = new Uint8Array(randomBytes(64));
      const key = new Uint8Array(randomBytes(33));
      const index = n % 8;
      const at = rates.map((r) => isSampled(receipt, index, key, r));
      for (let i = 0; i < rates.length; i++) {
        if (at[i]) hits[i]!++;
        if (at[i] && i + 1 < rates.length) assert.ok(at[i + 1], `sampled at ${rates[i]} but not at ${rates[i + 1]}`);
      }
      assert.equal(isSampled(receipt, index, key, 1), true);
      assert.equal(isSampled(receipt, index, key, 0), false);
    }
    // binomial: σ = sqrt(0.25 · 0.75 / 20,000) ≈ 0.003
    assert.ok(Math.abs(hits[rates.length - 1]! / N - MAX_VALIDATION_RATE) < 0.02, `share at the ceiling ${hits[rates.length - 1]! / N}`);
  });

  it('a --validation-rate above the ceiling runs at the ceiling, with a message; at or below it, as set', () => {
    assert.deepEqual(effectiveValidationRate(0.05), { rate: 0.05 });
    assert.deepEqual(effectiveValidationRate(MAX_VALIDATION_RATE), { rate: MAX_VALIDATION_RATE });
    const high = effectiveValidationRate(1);
    assert.equal(high.rate, MAX_VALIDATION_RATE);
    assert.match(high.message ?? '', /above the network's ceiling 0\.25/);
    assert.deepEqual(effectiveValidationRate(0, 0.25), { rate: 0 });
  });

  it('a carried request must decode, be of this network, signed, and the very request the completion answers (session 30)', () => {
    const terms = { maxTokens: 1000, maxPricePerMillion: 5n * NEURO, expiresAtMs: T0 + 600_000 };
    const q = buildMarketRequest(Q, env(1, T0), terms);
    const c = decodeEvent(buildServedCompletion(env(2, T0 + 1000), { requestId: q.id, tokensUsed: 4, requester: Q, hops: [D, H] }).bytes) as LedgerEvent<MarketCompleteBody>;
    const access = { networkId: NET };
    assert.deepEqual(carriedRequest(q.bytes, c, access).id, q.id);
    const refused = (code: string, why: RegExp) => (e: unknown): boolean => isNeuroShardError(e) && e.code === code && e.fault === 'peer' && why.test(e.message);
    // a signature byte flipped: the very same id (an event's id excludes its signature), refused on the signature
    const resigned = Uint8Array.from(q.bytes);
    resigned[resigned.length - 1]! ^= 1;
    assert.deepEqual(decodeEvent(resigned).id, q.id);
    assert.throws(() => carriedRequest(resigned, c, access), refused('TRANSCRIPT_FORGED_REQUEST', /not signed/));
    // a term altered after signing (the last byte of expiresAtMs): the signature no longer verifies
    const altered = Uint8Array.from(q.bytes);
    altered[altered.length - 65]! ^= 1;
    assert.throws(() => carriedRequest(altered, c, access), refused('TRANSCRIPT_FORGED_REQUEST', /not signed/));
    assert.throws(() => carriedRequest(q.bytes.subarray(0, 40), c, access), refused('TRANSCRIPT_FORGED_REQUEST', /does not decode/));
    assert.throws(() => carriedRequest(buildMarketRequest(Q, env(1, T0, 'another-net'), terms).bytes, c, access), refused('TRANSCRIPT_FORGED_REQUEST', /another network/));
    assert.throws(() => carriedRequest(buildTransfer(Q, env(1, T0), acct(X), 1n).bytes, c, access), refused('TRANSCRIPT_FORGED_REQUEST', /not a market request/));
    // well signed, but another request of the requester's: not the one the completion names
    assert.throws(() => carriedRequest(buildMarketRequest(Q, env(3, T0), terms).bytes, c, access), refused('TRANSCRIPT_REQUEST_MISMATCH', /another event id/));
    // the completion names this request but another requester (the ledger would refuse it: NOT_REQUESTER)
    const byX = decodeEvent(buildServedCompletion(env(2, T0 + 1000), { requestId: q.id, tokensUsed: 4, requester: X, hops: [D, H] }).bytes) as LedgerEvent<MarketCompleteBody>;
    assert.throws(() => carriedRequest(q.bytes, byX, access), refused('TRANSCRIPT_REQUEST_MISMATCH', /requester/));
  });

  it('carried completions are ingested at most 6 a minute per caller and 60 in all', () => {
    let now = 0;
    const q = new CarriedIngestQuota(undefined, undefined, () => now);
    let a = 0;
    for (let i = 0; i < 10; i++) if (q.take('a')) a++;
    assert.equal(a, CARRIED_INGESTS_PER_PEER_PER_MINUTE);
    let all = a;
    for (let p = 0; p < 20; p++) for (let i = 0; i < 10; i++) if (q.take(`p${p}`)) all++;
    assert.equal(all, CARRIED_INGESTS_PER_MINUTE);
    now = 60_000;
    assert.equal(q.take('a'), true, 'a new minute');
  });
});

describe('transcript access on the wire (in-memory network)', () => {
  async function pair(access: TranscriptAccess) {
    const hub = new MemoryHub();
    const a = hub.createNode(peerIdFromPublicKey(H.publicKey));
    const b = hub.createNode(peerIdFromPublicKey(X.publicKey));
    await a.start();
    await b.start();
    const hop = new RpcNode({ network: a, networkId: NET });
    const caller = new RpcNode({ network: b, networkId: NET });
    await serveTranscripts(hop, new TranscriptStore(), access);
    const close = async (): Promise<void> => {
      await caller.close();
      await hop.close();
      await a.stop();
      await b.stop();
    };
    return { call: (r: Uint8Array) => caller.call(peerIdFromPublicKey(H.publicKey), hopTranscript, encodeTranscriptRequest(r, 1)), close };
  }
  const code = (e: unknown): string => (isNeuroShardError(e) ? e.code : String(e));

  it('an unbonded caller is refused before the completions are looked at; a request our ledger does not hold open is refused at once, an open one waits', async () => {
    let paidCalls = 0;
    let bonded = false;
    const open = new Set<string>(['01'.repeat(32)]);
    const w = await pair({ entitled: () => bonded, paid: () => (paidCalls++, undefined), pending: (r) => open.has(Buffer.from(r).toString('hex')), waitMs: 400 });
    try {
      await assert.rejects(w.call(rid(1)), (e) => code(e) === 'TRANSCRIPT_FORBIDDEN' && /NOT_BONDED/.test((e as Error).message));
      assert.equal(paidCalls, 0, 'nothing looked up for an unbonded caller');
      bonded = true;
      await assert.rejects(w.call(rid(2)), (e) => code(e) === 'TRANSCRIPT_FORBIDDEN' && /COMPLETION_NOT_APPLIED/.test((e as Error).message));
      assert.equal(paidCalls, 1, 'a request id not open in our ledger: looked up once, no wait');
      await assert.rejects(w.call(rid(1)), (e) => code(e) === 'TRANSCRIPT_FORBIDDEN');
      assert.ok(paidCalls >= 3, `an open request is looked up again while the hop waits for its completion (${paidCalls - 1} lookups)`);
    } finally {
      await w.close();
    }
  });

  it('callers waiting on requests that never complete hold at most half the slots: an applied completion is still answered (review2)', async () => {
    // four bonded keys, two calls each, naming a request open in our ledger whose completion never comes (their own
    // escrow, left to expire): until review2 every call waited its 5 s in a slot, all 8 were held, and an honest
    // validator asking about an applied completion got RPC_BUSY for as long as the keys kept asking
    const hub = new MemoryHub();
    const hopId = peerIdFromPublicKey(H.publicKey);
    const a = hub.createNode(hopId);
    await a.start();
    const hop = new RpcNode({ network: a, networkId: NET });
    const OPEN = rid(7);
    const APPLIED = rid(8);
    const commits = { inCommit: new Uint8Array(32).fill(1), outCommit: new Uint8Array(32).fill(2), id: new Uint8Array(32).fill(3), receiptSignature: new Uint8Array(64).fill(4) };
    const hex = (r: Uint8Array): string => Buffer.from(r).toString('hex');
    await serveTranscripts(hop, new TranscriptStore(), {
      entitled: () => true,
      pending: (r) => hex(r) === hex(OPEN),
      paid: (r) => (hex(r) === hex(APPLIED) ? commits : undefined),
      waitMs: 20_000,
      maxRate: 1, // the callers' ids are not keys: the draw names them only at rate 1
    });
    const callers: { rpc: RpcNode; stop: () => Promise<void> }[] = [];
    const caller = async (id: string): Promise<RpcNode> => {
      const n = hub.createNode(id);
      await n.start();
      const rpc = new RpcNode({ network: n, networkId: NET });
      callers.push({ rpc, stop: () => n.stop() });
      return rpc;
    };
    const stop = new AbortController();
    try {
      let refusedAtOnce = 0;
      const held: Promise<unknown>[] = [];
      for (let k = 0; k < 4; k++) {
        const rpc = await caller(`bonded${k}`);
        for (let j = 0; j < 2; j++) {
          held.push(
            rpc.call(hopId, hopTranscript, encodeTranscriptRequest(OPEN, 1), { signal: stop.signal }).catch((e: unknown) => {
              if (code(e) === 'TRANSCRIPT_FORBIDDEN' && /COMPLETION_NOT_APPLIED/.test((e as Error).message)) refusedAtOnce++;
            }),
          );
        }
      }
      // every one of the 8 calls is either waiting in a slot or answered
      await waitFor(() => hop.inFlight(hopTranscript) + refusedAtOnce === 8, { timeoutMs: 10_000, intervalMs: 5, what: 'the 8 calls to be waiting or answered' });
      const honest = await caller('validator');
      const r = await honest.call(hopId, hopTranscript, encodeTranscriptRequest(APPLIED, 1)).then(
        () => 'served',
        (e: unknown) => code(e),
      );
      // the store is empty: TRANSCRIPT_GONE is the answer of a call that got a slot and passed the access rule
      assert.equal(r, 'TRANSCRIPT_GONE', 'the applied completion is answered, not RPC_BUSY');
      assert.equal(hop.inFlight(hopTranscript), 4, 'four calls wait (one per caller), not eight');
      assert.equal(refusedAtOnce, 4, "each caller's second call is answered at once");
      stop.abort();
      await Promise.all(held);
    } finally {
      stop.abort();
      for (const c of callers) {
        await c.rpc.close();
        await c.stop();
      }
      await hop.close();
      await a.stop();
    }
  });
});
