/**
 * ledger/prover.ts: a node's own proof sequence (which window, what claim, which nonce, what a verdict changes) and
 * the HolderRecord cache its proofs embed, as node/ledger.ts runs them but without a node: a WorkTally for the
 * counters, a real Ledger in a temp dir for the verdicts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accountIdFromPublicKey } from '../../../src/identity/index.js';
import { EventKind } from '../../../src/ledger/events.js';
import { PROOF_WINDOW_MS } from '../../../src/ledger/economics.js';
import { signEmbeddedHolderRecord, type EmbeddedHolderRecord } from '../../../src/ledger/holder.js';
import { HolderRecordCache, ProofSequence, type ProofPlan } from '../../../src/ledger/prover.js';
import { WorkTally } from '../../../src/ledger/work.js';
import { LAYERS, NET, openTempLedger, T0, testKey } from './helpers.js';

const key = testKey(41);
const W = PROOF_WINDOW_MS;
const E0 = Math.floor(T0 / W); // T0 starts a window

function sequence(counters: WorkTally, o: { offsetMs?: number; startedAt?: number; lastEpoch?: number } = {}): ProofSequence {
  return new ProofSequence({ key, networkId: NET, counters, modelLayers: LAYERS, offsetMs: o.offsetMs ?? 2000, startedAt: o.startedAt ?? T0, lastEpoch: o.lastEpoch ?? -1 });
}

function record(span: { start: number; end: number }, nowMs: number): EmbeddedHolderRecord {
  return signEmbeddedHolderRecord(key, { networkId: NET, multiaddrs: ['/ip4/127.0.0.1/tcp/9000'], span, capacity: { memoryMb: 1024, tokensPerSec: 10 }, timestampMs: nowMs, expiresMs: nowMs + 600_000 });
}

const none = (): { local: bigint; reported: bigint } => ({ local: 0n, reported: 0n });

describe('ProofSequence (ledger/prover.ts)', () => {
  it('one proof per window, past our offset, with layers held and a second of uptime', () => {
    const c = new WorkTally();
    const s = sequence(c, { offsetMs: 5000, startedAt: T0 });
    let asked = 0;
    const nonces = (): { local: bigint; reported: bigint } => {
      asked++;
      return none();
    };
    assert.equal(s.next(T0 + W + 10_000, nonces, record), undefined, 'no layers held');
    c.setLayers({ start: 0, end: LAYERS + 1 });
    assert.equal(s.next(T0 + W + 10_000, nonces, record), undefined, 'a span past the model');
    c.setLayers({ start: 0, end: LAYERS });
    assert.equal(s.next(T0 + 500, nonces, record), undefined, 'before our offset into the window');
    assert.equal(s.next(T0 + 5000, nonces, record)?.epoch, E0, 'at the offset (uptime 5 s)');
    assert.equal(asked, 1, 'the nonces are asked only when a proof is made');
    const p = s.next(T0 + W + 6000, nonces, record)!;
    assert.equal(p.epoch, E0 + 1);
    assert.equal(p.claim.uptimeMs, W, 'at most one window of uptime');
    s.settle(p, { id: 'x', status: 'applied' });
    assert.equal(s.next(T0 + W + 30_000, nonces, record), undefined, 'the window is done');
    assert.equal(s.next(T0 + 2 * W + 5500, nonces, record)?.claim.uptimeMs, W - 500, 'uptime since the previous proof');
  });

  it('claims the growth since the last taken proof; a dropped proof leaves it for the next, but ends its window', () => {
    const c = new WorkTally();
    c.setLayers({ start: 0, end: LAYERS });
    const s = sequence(c, { offsetMs: 0, startedAt: T0 });
    c.addInferenceTokens(100);
    c.addRequestId(new Uint8Array(32).fill(7));
    const p1 = s.next(T0 + W, none, record)!;
    assert.equal(p1.claim.inferenceTokens, 100n);
    assert.equal(p1.claim.requestIds.length, 1);
    const o1 = s.settle(p1, { id: 'a', status: 'dropped', reason: 'RATE_LIMIT_WINDOW' });
    assert.deepEqual(o1, { id: 'a', epoch: E0 + 1, nonce: p1.nonce.toString(), status: 'dropped', reason: 'RATE_LIMIT_WINDOW' });
    assert.equal(s.emitted, 0);
    assert.equal(s.lastEpoch, E0 + 1, 'a refused proof still ends its window');
    assert.deepEqual(s.last, o1);
    c.addInferenceTokens(50);
    const p2 = s.next(T0 + 2 * W, none, record)!;
    assert.equal(p2.claim.inferenceTokens, 150n, 'the refused proof’s work is claimed again');
    assert.equal(p2.claim.requestIds.length, 0, 'request ids are taken once');
    assert.equal(p2.claim.uptimeMs, W, 'uptime still runs from the start');
    s.settle(p2, { id: 'b', status: 'applied' });
    assert.equal(s.emitted, 1);
    c.addInferenceTokens(20);
    const p3 = s.next(T0 + 3 * W, none, record)!;
    assert.equal(p3.claim.inferenceTokens, 20n, 'only the growth since the taken proof');
  });

  it('the nonce is the epoch, raised by our ledger’s next one and what peers report; peers raise the last window', () => {
    const c = new WorkTally();
    c.setLayers({ start: 0, end: LAYERS });
    const s = sequence(c, { offsetMs: 0 });
    const e = BigInt(E0 + 1);
    assert.equal(s.next(T0 + W, () => ({ local: 3n, reported: 9n }), record)!.nonce, e, 'at least the window’s epoch');
    assert.equal(s.next(T0 + W, () => ({ local: e + 3n, reported: e + 9n }), record)!.nonce, e + 9n);
    assert.equal(s.next(T0 + W, () => ({ local: e + 12n, reported: e + 9n }), record)!.nonce, e + 12n);
    s.raiseProven(E0 + 5, E0);
    assert.equal(s.lastEpoch, E0 + 5);
    assert.equal(s.next(T0 + 5 * W + 1000, none, record), undefined, 'a window peers saw us prove');
    s.raiseProven(E0 + 1, E0);
    assert.equal(s.lastEpoch, E0 + 5, 'never lowered');
  });

  it('its proofs are what the ledger takes: applied in sequence, one per window', () => {
    const t = openTempLedger();
    try {
      const c = new WorkTally();
      c.setLayers({ start: 0, end: LAYERS });
      const s = sequence(c, { offsetMs: 0, startedAt: T0 });
      const plans: ProofPlan[] = [];
      for (let w = 1; w <= 3; w++) {
        const p = s.next(T0 + w * W, () => ({ local: t.ledger.nextNonce(key.publicKey, EventKind.Proof), reported: 0n }), record)!;
        plans.push(p);
        const r = t.ledger.ingest(p.event.bytes);
        assert.equal(r.status, 'applied', `${r.status} ${r.reason ?? ''}`);
        s.settle(p, r);
      }
      assert.deepEqual(plans.map((p) => p.nonce), [1, 2, 3].map((w) => BigInt(E0 + w)));
      assert.equal(s.emitted, 3);
      assert.equal(t.ledger.lastProofEpoch(accountIdFromPublicKey(key.publicKey)), E0 + 3);
    } finally {
      t.cleanup();
    }
  });
});

describe('HolderRecordCache (ledger/prover.ts)', () => {
  const me = '12D3KooWSelf';
  const input = (nowMs: number, o: { span?: { start: number; end: number }; addrs?: string[]; tokensPerSec?: number; memoryMb?: number } = {}) => ({
    nowMs,
    span: o.span ?? { start: 0, end: 4 },
    multiaddrs: o.addrs ?? [`/ip4/10.0.0.1/tcp/1/p2p/${me}`, '/ip4/10.0.0.2/tcp/1'],
    peerId: me,
    capacity: { memoryMb: o.memoryMb ?? 2048, tokensPerSec: o.tokensPerSec ?? 50 },
  });
  type Rec = { multiaddrs: string[]; span: { start: number; end: number }; capacity: { memoryMb: number; tokensPerSec: number }; timestampMs: number; expiresMs: number };
  const signer = (): ((c: Omit<Rec, 'timestampMs' | 'expiresMs'>, now: number, ttl: number) => Rec) => (c, now, ttl) => ({ ...c, timestampMs: now, expiresMs: now + ttl });

  it('re-signs only when the span, the addresses (as a set) or the throughput change, or at half its lifetime', () => {
    const cache = new HolderRecordCache<Rec>(600_000, signer());
    const r1 = cache.at(input(T0));
    assert.deepEqual(r1.multiaddrs, ['/ip4/10.0.0.1/tcp/1', '/ip4/10.0.0.2/tcp/1'], 'our /p2p suffix dropped');
    assert.equal(cache.at(input(T0 + 60_000, { memoryMb: 999 })), r1, 'free memory does not count');
    assert.equal(cache.at(input(T0 + 60_000, { addrs: ['/ip4/10.0.0.2/tcp/1', '/ip4/10.0.0.1/tcp/1'] })), r1, 'the same addresses in another order');
    assert.equal(cache.signed, 1);
    const r2 = cache.at(input(T0 + 60_000, { span: { start: 0, end: 8 } }));
    assert.notEqual(r2, r1);
    const r3 = cache.at(input(T0 + 60_000, { span: { start: 0, end: 8 }, tokensPerSec: 51 }));
    assert.notEqual(r3, r2);
    const r4 = cache.at(input(T0 + 60_000, { span: { start: 0, end: 8 }, tokensPerSec: 51, addrs: ['/ip4/10.0.0.3/tcp/1'] }));
    assert.notEqual(r4, r3);
    assert.equal(cache.at(input(T0 + 60_000 + 300_000, { span: { start: 0, end: 8 }, tokensPerSec: 51, addrs: ['/ip4/10.0.0.3/tcp/1'] })), r4, 'half its life left');
    const r5 = cache.at(input(T0 + 60_001 + 300_000, { span: { start: 0, end: 8 }, tokensPerSec: 51, addrs: ['/ip4/10.0.0.3/tcp/1'] }));
    assert.notEqual(r5, r4, 'past half its life');
    assert.equal(cache.signed, 5);
  });

  it('clamps the capacity to u32 fields, and signs without addresses when the record rules refuse ours', () => {
    const refused: unknown[] = [];
    const sign = signer();
    const cache = new HolderRecordCache<Rec>(
      600_000,
      (c, now, ttl) => {
        if (c.multiaddrs.some((a) => a.includes('/exotic'))) throw new Error('address refused');
        return sign(c, now, ttl);
      },
      (e) => refused.push(e),
    );
    const r = cache.at(input(T0, { addrs: ['/exotic/x'], memoryMb: -5, tokensPerSec: 2 ** 40 }));
    assert.deepEqual(r.multiaddrs, []);
    assert.deepEqual(r.capacity, { memoryMb: 0, tokensPerSec: 0xffff_ffff });
    assert.equal(refused.length, 1);
    assert.equal(cache.at(input(T0 + 1000, { addrs: ['/exotic/x'], memoryMb: 7, tokensPerSec: 2 ** 40 })), r, 'cached under the addresses asked for');
    assert.equal(refused.length, 1);
  });
});
