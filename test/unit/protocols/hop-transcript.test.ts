/**
 * Issue 11 §2 validator re-execution, the pure parts: the hop's transcript store (quotas, retention, sealing), the
 * transcript wire codec and its bounds, the input commitment a validator recomputes (binds the full tensors), the
 * sampling rule, and the fraud record codec.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { RunningCommitment } from '../../../src/ledger/commitment.js';
import { decodeFraudRecord, encodeFraudRecord, signFraudStatement } from '../../../src/ledger/fraud.js';
import { buildMarketClaim, buildMarketRequest, buildServedCompletion } from '../../../src/ledger/build.js';
import { Writer } from '../../../src/ledger/codec.js';
import { MAX_EVENT_BYTES, MAX_NETWORK_ID } from '../../../src/ledger/events.js';
import { MAX_AMOUNT } from '../../../src/ledger/amount.js';
import {
  decodeTranscript,
  decodeTranscriptRequest,
  encodeTranscript,
  encodeTranscriptRequest,
  encodeTranscriptRequestV2,
  encodeTranscriptRequestV3,
  encodeTranscriptRequestV4,
  hopTranscript,
  hopTranscriptV2,
  hopTranscriptV3,
  hopTranscriptV4,
  inputCommitment,
  MAX_CARRIED_REQUEST_BYTES,
  TranscriptStore,
  type HopTranscript,
} from '../../../src/protocols/hop-transcript.js';
import { isSampled } from '../../../src/protocols/hop-validator.js';

const C = 16;
function transcript(steps: { chunks: number[]; hidden: Float32Array }[]): HopTranscript {
  const inC = new RunningCommitment();
  for (const s of steps) inC.hidden(s.hidden, C, s.chunks);
  return {
    requestId: new Uint8Array(32).fill(3),
    index: 1,
    count: 2,
    inCommit: inC.value,
    outCommit: new Uint8Array(32).fill(9),
    claim: { span: { start: 2, end: 4 }, modelHash: 'ab'.repeat(32), engine: 'cpu' },
    claimSignature: new Uint8Array(64).fill(1),
    maxLen: 64,
    sampling: { temperature: 0.7, topK: 40, topP: 0.9, seed: 12345 },
    wire: 'f16',
    cols: C,
    steps,
  };
}
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);

describe('hop transcripts (issue 11 §2)', () => {
  it('round-trips on the wire; the inputs recommit to the signed inCommit, and one changed value anywhere does not', () => {
    const t = transcript([{ chunks: [5], hidden: rand(5 * C) }, { chunks: [1], hidden: rand(C) }, { chunks: [2, 1], hidden: rand(3 * C) }]);
    const back = decodeTranscript(encodeTranscript(t));
    assert.deepEqual(back, t);
    assert.deepEqual(inputCommitment(back), t.inCommit);
    // outside the top-k too: the v2 chain hashes every value (at half precision)
    const s = back.steps[0]!.hidden!;
    let min = 0;
    for (let i = 1; i < C; i++) if (Math.abs(s[i]!) < Math.abs(s[min]!)) min = i;
    s[min] = s[min]! + 0.01; // more than half precision at its magnitude
    assert.notDeepEqual(inputCommitment(back), t.inCommit);
  });

  it('decoding refuses malformed transcripts (truncated, positions beyond max length, bad dtype or sampling)', () => {
    const bytes = encodeTranscript(transcript([{ chunks: [4], hidden: rand(4 * C) }]));
    for (const cut of [1, 10, 100, bytes.length - 1]) assert.throws(() => decodeTranscript(bytes.subarray(0, cut)), (e: unknown) => (e as { code?: string }).code === 'RPC_MALFORMED');
    assert.throws(() => decodeTranscript(encodeTranscript({ ...transcript([{ chunks: [4], hidden: rand(4 * C) }]), maxLen: 3 })), /positions beyond/);
    assert.throws(() => decodeTranscript(Uint8Array.of(...bytes, 0)), (e: unknown) => (e as { code?: string }).code === 'RPC_MALFORMED');
  });

  it('the store keeps a session within its quotas, seals what was signed, expires and evicts the oldest', () => {
    let now = 0;
    const store = new TranscriptStore({ maxBytes: 10_000, maxSessionBytes: 4_000, retentionMs: 1_000, maxEntries: 2 }, () => now);
    const step = (n: number): { chunks: number[]; hidden: Float32Array } => ({ chunks: [n], hidden: rand(n * C) }); // 64 n + 4 bytes
    const t0 = transcript([]);
    // a session over its own quota is dropped (and gives its bytes back)
    const big = store.open();
    for (let i = 0; i < 70; i++) store.add(big, step(1));
    assert.equal(big.dropped, true);
    assert.equal(store.seal(big, t0), false);
    assert.equal(store.usage().bytes, 0);
    // sealed sessions are served by (request, index); a step after sealing does not change what was sealed
    const a = store.open();
    store.add(a, step(2));
    assert.equal(store.seal(a, { ...t0, requestId: new Uint8Array(32).fill(1) }), true);
    store.add(a, step(1));
    assert.equal(store.get(new Uint8Array(32).fill(1), 1)?.steps.length, 1);
    store.release(a);
    assert.equal(store.usage().bytes, 132);
    // entries beyond maxEntries evict the oldest
    for (const k of [2, 3]) {
      const s = store.open();
      store.add(s, step(1));
      store.seal(s, { ...t0, requestId: new Uint8Array(32).fill(k) });
      store.release(s);
    }
    assert.equal(store.get(new Uint8Array(32).fill(1), 1), undefined);
    assert.equal(store.usage().entries, 2);
    // retention
    now = 5_000;
    assert.equal(store.get(new Uint8Array(32).fill(3), 1), undefined);
    assert.deepEqual(store.usage(), { entries: 0, bytes: 0 });
  });

  it('sessions sealed for one request and hop with other commitments are kept side by side, each served by its commitments', () => {
    let now = 0;
    const store = new TranscriptStore({ maxBytes: 100_000, maxSessionBytes: 4_000, retentionMs: 1_000, maxEntries: 8, ownerShare: 0.25 }, () => now);
    const t0 = transcript([]);
    const commits = (k: number) => ({ inCommit: new Uint8Array(32).fill(k), outCommit: new Uint8Array(32).fill(k + 100) });
    const seal = (k: number, owner: string, steps = 1): boolean => {
      const o = store.open();
      for (let i = 0; i < steps; i++) store.add(o, { chunks: [1], hidden: rand(C) });
      const ok = store.seal(o, { ...t0, ...commits(k) }, owner);
      store.release(o);
      return ok;
    };
    const R = t0.requestId;
    assert.equal(seal(1, 'honest', 2), true);
    // a stranger's session for the same (request, hop): kept beside, not instead
    assert.equal(seal(2, 'stranger'), true);
    assert.equal(store.get(R, 1, commits(1))?.steps.length, 2);
    assert.equal(store.get(R, 1, commits(2))?.steps.length, 1);
    assert.equal(store.get(R, 1, { inCommit: commits(1).inCommit, outCommit: commits(2).outCommit }), undefined, 'both commitments name the entry');
    // an older validator's request (no commitments): the newest
    assert.deepEqual(store.get(R, 1)?.inCommit, commits(2).inCommit);
    // the same commitments sealed again by someone else: the first entry stays (its owner, its steps)
    assert.equal(seal(1, 'stranger', 1), true);
    assert.equal(store.get(R, 1, commits(1))?.steps.length, 2);
    assert.equal(store.usage().entries, 2);
    // the stranger's share is 2 entries: its next seals evict its own oldest, never the honest entry
    for (const k of [3, 4, 5]) assert.equal(seal(k, 'stranger'), true);
    assert.equal(store.get(R, 1, commits(1))?.steps.length, 2);
    assert.equal(store.get(R, 1, commits(2)), undefined);
    assert.equal(store.get(R, 1, commits(3)), undefined);
    assert.equal(store.usage().entries, 3);
    assert.deepEqual(store.get(R, 1)?.inCommit, commits(5).inCommit);
    // evictions and expiry keep the newest-by-(request, hop) index true
    now = 2_000;
    assert.equal(store.get(R, 1), undefined);
    assert.deepEqual(store.usage(), { entries: 0, bytes: 0 });
  });

  it('transcript requests: 1.0.0 names (request, hop), 2.0.0 the commitments too; each method refuses the other\'s', () => {
    const id = new Uint8Array(32).fill(7);
    const commits = { inCommit: new Uint8Array(32).fill(1), outCommit: new Uint8Array(32).fill(2) };
    const v1 = encodeTranscriptRequest(id, 3);
    const v2 = encodeTranscriptRequestV2(id, 3, commits);
    assert.deepEqual(decodeTranscriptRequest(v1), { requestId: id, index: 3 });
    assert.deepEqual(decodeTranscriptRequest(v2), { requestId: id, index: 3, commits });
    assert.equal(v2.length, 98);
    assert.ok(v2.length <= hopTranscriptV2.maxRequestBytes && v1.length <= hopTranscript.maxRequestBytes);
    const malformed = (e: unknown): boolean => (e as { code?: string }).code === 'RPC_MALFORMED';
    hopTranscript.validateRequest!(v1);
    hopTranscriptV2.validateRequest!(v2);
    assert.throws(() => hopTranscript.validateRequest!(v2), malformed);
    assert.throws(() => hopTranscriptV2.validateRequest!(v1), malformed);
    for (const b of [v2.subarray(0, 97), Uint8Array.of(...v1, 0), Uint8Array.of(3, ...v1.subarray(1))]) assert.throws(() => decodeTranscriptRequest(b), malformed);
    assert.notEqual(hopTranscript.version, hopTranscriptV2.version);
  });

  it('4.0.0 carries the completion and its market request (session 30): bounds, strict decoding, each method refuses the others\'', () => {
    const Q = keyFromPrivate(randomBytes(32));
    const D = keyFromPrivate(randomBytes(32));
    const H = keyFromPrivate(randomBytes(32));
    // the largest market request there is (a 128-byte network id, every field at its widest) fits the carried limit
    const net = 'n'.repeat(MAX_NETWORK_ID);
    const widest = buildMarketRequest(Q, { networkId: net, nonce: 2n ** 64n - 1n, timestampMs: 2 ** 53 - 1 }, { maxTokens: 2 ** 32 - 1, maxPricePerMillion: MAX_AMOUNT, expiresAtMs: 2 ** 53 - 1 });
    assert.equal(widest.bytes.length, 273);
    assert.ok(widest.bytes.length <= MAX_CARRIED_REQUEST_BYTES);
    const q = buildMarketRequest(Q, { networkId: 'net', nonce: 1n, timestampMs: 1_000 }, { maxTokens: 100, maxPricePerMillion: 5n, expiresAtMs: 9_000 });
    const c = buildServedCompletion({ networkId: 'net', nonce: 1n, timestampMs: 2_000 }, { requestId: q.id, tokensUsed: 4, requester: Q, hops: [D, H] });
    const v4 = encodeTranscriptRequestV4(c.bytes, q.bytes, 1);
    const d = decodeTranscriptRequest(v4);
    assert.deepEqual(d.requestId, q.id);
    assert.deepEqual(d.carried, c.bytes);
    assert.deepEqual(d.carriedRequest, q.bytes);
    assert.equal(d.index, 1);
    assert.equal(d.statement, undefined);
    const statement = signFraudStatement(D, 'net', c.id, 1, 'x', new Uint8Array(32), new Uint8Array(32).fill(1));
    assert.deepEqual(decodeTranscriptRequest(encodeTranscriptRequestV4(c.bytes, q.bytes, 1, statement)).statement, statement);
    // the method's limit holds the largest request of all: an 8 KiB completion, a 512-byte request and a statement
    assert.equal(hopTranscriptV4.maxRequestBytes, 1 + 4 + MAX_EVENT_BYTES + 4 + MAX_CARRIED_REQUEST_BYTES + 1 + 1 + 129);
    const malformed = (e: unknown): boolean => (e as { code?: string }).code === 'RPC_MALFORMED';
    const v3 = encodeTranscriptRequestV3(c.bytes, 1);
    hopTranscriptV4.validateRequest!(v4);
    assert.throws(() => hopTranscriptV3.validateRequest!(v4), malformed);
    assert.throws(() => hopTranscriptV4.validateRequest!(v3), malformed);
    // one byte over the carried request's limit, whatever it holds; the encoder refuses to write it
    const over = new Writer().u8(4).bytes(c.bytes, MAX_EVENT_BYTES).bytes(new Uint8Array(MAX_CARRIED_REQUEST_BYTES + 1), MAX_CARRIED_REQUEST_BYTES + 1).u8(1).u8(0).finish();
    assert.throws(() => decodeTranscriptRequest(over), (e: unknown) => malformed(e) && /longer than 512/.test((e as Error).message));
    assert.throws(() => encodeTranscriptRequestV4(c.bytes, new Uint8Array(MAX_CARRIED_REQUEST_BYTES + 1), 1), RangeError);
    // not a market request (a claim of it), not an event, truncated, trailing bytes
    const claim = buildMarketClaim(Q, { networkId: 'net', nonce: 2n, timestampMs: 1_500 }, q.id);
    for (const b of [encodeTranscriptRequestV4(c.bytes, claim.bytes, 1), encodeTranscriptRequestV4(c.bytes, q.bytes.subarray(0, 100), 1), v4.subarray(0, v4.length - 1), Uint8Array.of(...v4, 0)]) {
      assert.throws(() => decodeTranscriptRequest(b), malformed);
    }
    assert.deepEqual(new Set([hopTranscript, hopTranscriptV2, hopTranscriptV3, hopTranscriptV4].map((m) => m.version)).size, 4);
  });

  it('sampling is deterministic per (receipt, hop, validator) and close to the rate', () => {
    const v = keyFromPrivate(randomBytes(32)).publicKey;
    let hits = 0;
    const n = 4000;
    for (let i = 0; i < n; i++) {
      const sig = new Uint8Array(randomBytes(64));
      const s = isSampled(sig, 1, v, 0.1);
      assert.equal(isSampled(sig, 1, v, 0.1), s);
      if (s) hits++;
    }
    assert.ok(hits > n * 0.07 && hits < n * 0.13, `${hits} of ${n}`);
    assert.equal(isSampled(new Uint8Array(64), 0, v, 0), false);
    assert.equal(isSampled(new Uint8Array(64), 0, v, 1), true);
  });

  it('fraud records round-trip and refuse trailing bytes or too many statements', () => {
    const k = keyFromPrivate(randomBytes(32));
    const s = signFraudStatement(k, 'net', new Uint8Array(32), 1, 'mh', new Uint8Array(32), new Uint8Array(32).fill(5));
    const r = { index: 1, claim: { span: { start: 2, end: 4 }, modelHash: 'mh', engine: 'cpu' }, claimSignature: new Uint8Array(64).fill(2), statements: [s, s] };
    assert.deepEqual(decodeFraudRecord(encodeFraudRecord(r)), r);
    assert.throws(() => decodeFraudRecord(Uint8Array.of(...encodeFraudRecord(r), 0)));
    assert.throws(() => decodeFraudRecord(encodeFraudRecord({ ...r, statements: Array.from({ length: 9 }, () => s) })));
  });
});
