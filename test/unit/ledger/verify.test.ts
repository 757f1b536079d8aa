/**
 * Admission: tampering with any signed byte, replays (also with the malleated high-S signature), forged node ids,
 * HolderRecord checks, the proof plausibility rules, freshness and malformed input. None of these may credit
 * anything.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { malleate, signDomain } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildMarketRequest, buildProof, buildStake, buildTransfer } from '../../../src/ledger/build.js';
import { EVENT_DOMAIN, EventKind, decodeEvent, signEvent, type ProofBody, type LedgerEvent } from '../../../src/ledger/events.js';
import { signEmbeddedHolderRecord } from '../../../src/ledger/holder.js';
import { MAX_LIVE_AGE_MS } from '../../../src/ledger/ledger.js';
import { acct, env, holderRecord, LAYERS, NET, openTempLedger, T0, testKey, uptimeProof } from './helpers.js';

const A = testKey(11);
const B = testKey(12);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const o = new Uint8Array(a.length + b.length);
  o.set(a);
  o.set(b, a.length);
  return o;
}

function trainingProof(key = A, ts = T0, over: Partial<ProofBody> = {}, uptimeMs = 60_000): LedgerEvent<ProofBody> {
  const base = buildProof(key, env(1, ts), {
    uptimeMs,
    trainingTokens: 4096n,
    inferenceTokens: 1000n,
    dataSamples: 10n,
    modelHashBefore: new Uint8Array(32).fill(1),
    modelHashAfter: new Uint8Array(32).fill(2),
    gradientCommitment: new Uint8Array(32).fill(3),
    lossMicro: 1_500_000n,
    holderRecord: holderRecord(key, { start: 0, end: LAYERS }, ts),
  });
  return signEvent(key, { networkId: NET, nonce: 1n, timestampMs: ts, body: { ...base.body, ...over } });
}

describe('ledger verification: tampering', () => {
  const samples: [string, () => LedgerEvent][] = [
    ['proof', () => trainingProof()],
    ['transfer', () => buildTransfer(A, env(1, T0), acct(B), 5n * NEURO)],
    ['stake', () => buildStake(A, env(2, T0), 5n * NEURO, 10)],
    ['market request', () => buildMarketRequest(A, env(3, T0), { maxTokens: 100, maxPricePerMillion: NEURO, expiresAtMs: T0 + 1000 })],
  ];
  for (const [name, make] of samples) {
    it(`rejects a ${name} with any single signed byte changed`, () => {
      const { ledger, cleanup } = openTempLedger();
      try {
        const e = make();
        const payloadLen = e.payload.byteLength;
        let dropped = 0;
        for (let i = 0; i < e.bytes.byteLength; i++) {
          const t = Uint8Array.from(e.bytes);
          t[i] ^= i < payloadLen ? 0x01 : 0x80;
          const r = ledger.ingest(t);
          assert.equal(r.status, 'dropped', `byte ${i} of ${e.bytes.byteLength}: ${r.status}`);
          dropped++;
        }
        assert.equal(dropped, e.bytes.byteLength);
        assert.equal(ledger.status().events, 0);
        assert.equal(ledger.status().minted, 0n);
      } finally {
        cleanup();
      }
    });
  }

  it('rejects a re-encoded event whose fields changed under the old signature (amount, recipient, fee)', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const e = buildTransfer(A, env(1, T0), acct(B), 5n * NEURO);
      const variants: LedgerEvent[] = [
        signEvent(A, { ...env(1, T0), body: { ...e.body, amount: 6n * NEURO } }),
        signEvent(A, { ...env(1, T0), body: { ...e.body, to: acct(A) } }),
        signEvent(A, { ...env(1, T0), body: { ...e.body, fee: 0n } }),
        signEvent(A, { ...env(2, T0), body: e.body }),
        signEvent(A, { ...env(1, T0 + 1), body: e.body }),
      ];
      for (const v of variants) {
        const forged = concat(v.payload, e.signature);
        const r = ledger.ingest(forged);
        assert.deepEqual([r.status, r.reason], ['dropped', 'BAD_SIGNATURE']);
      }
    } finally {
      cleanup();
    }
  });
});

describe('ledger verification: replay and malleability', () => {
  it('credits a proof once: an exact replay and a high-S malleated copy are the same event', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const p = decodeEvent(uptimeProof(A, T0));
      const first = ledger.ingest(p.bytes);
      assert.equal(first.status, 'applied');
      const balance = ledger.account(acct(A)).balance;
      assert.ok(balance > 0n);
      const replay = ledger.ingest(p.bytes);
      assert.deepEqual([replay.duplicate, replay.id], [true, first.id]);
      const highS = concat(p.payload, malleate(p.signature));
      assert.notDeepEqual(highS, p.bytes);
      const mall = ledger.ingest(highS);
      assert.deepEqual([mall.duplicate, mall.id], [true, first.id]); // same id: id excludes the signature
      assert.equal(ledger.account(acct(A)).balance, balance);
      assert.equal(ledger.status().events, 1);
    } finally {
      cleanup();
    }
  });

  it('drops a high-S signature on an event it has not seen', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const p = decodeEvent(uptimeProof(A, T0));
      const r = ledger.ingest(concat(p.payload, malleate(p.signature)));
      assert.deepEqual([r.status, r.reason], ['dropped', 'BAD_SIGNATURE']);
      assert.equal(ledger.ingest(p.bytes).status, 'applied');
    } finally {
      cleanup();
    }
  });
});

describe('ledger verification: forged identities and HolderRecords', () => {
  it('drops an event signed by another key than its signer field', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const e = buildTransfer(A, env(1, T0), acct(B), NEURO);
      const bySomeoneElse = concat(e.payload, signDomain(B, EVENT_DOMAIN, e.payload));
      assert.equal(ledger.ingest(bySomeoneElse).reason, 'BAD_SIGNATURE');
    } finally {
      cleanup();
    }
  });

  it("drops a proof that embeds another node's HolderRecord (forged node id)", async () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const theirs = holderRecord(B, { start: 0, end: LAYERS }, T0);
      const p = buildProof(A, env(1, T0), { uptimeMs: 60_000, holderRecord: theirs });
      assert.equal(ledger.ingest(p.bytes).reason, 'HOLDER_RECORD_KEY_MISMATCH');
      // a record naming an Ed25519 peer id
      const ed = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
      const edRec = signEmbeddedHolderRecord(A, { networkId: NET, peerId: ed, multiaddrs: [], span: { start: 0, end: 1 }, capacity: { memoryMb: 1, tokensPerSec: 1 }, timestampMs: T0 - 1, expiresMs: T0 + 1000 });
      assert.equal(ledger.ingest(buildProof(A, env(2, T0), { uptimeMs: 60_000, holderRecord: edRec }).bytes).reason, 'HOLDER_RECORD_KEY_MISMATCH');
      assert.equal(ledger.status().events, 0);
    } finally {
      cleanup();
    }
  });

  it('checks the HolderRecord signature, network and validity at the proof time (not the wall clock)', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const rec = holderRecord(A, { start: 0, end: LAYERS }, T0);
      const tampered = { ...rec, span: { start: 0, end: LAYERS }, capacity: { memoryMb: 1, tokensPerSec: 999_999 } };
      assert.equal(ledger.ingest(buildProof(A, env(1, T0), { uptimeMs: 60_000, holderRecord: tampered }).bytes).reason, 'HOLDER_RECORD_BAD_SIGNATURE');
      const otherNet = holderRecord(A, { start: 0, end: LAYERS }, T0, { networkId: 'elsewhere' });
      assert.equal(ledger.ingest(buildProof(A, env(2, T0), { uptimeMs: 60_000, holderRecord: otherNet }).bytes).reason, 'HOLDER_RECORD_WRONG_NETWORK');
      const expired = holderRecord(A, { start: 0, end: LAYERS }, T0 - 10 * 60_000, { lifetimeMs: 60_000 });
      assert.equal(ledger.ingest(buildProof(A, env(3, T0), { uptimeMs: 60_000, holderRecord: expired }).bytes).reason, 'HOLDER_RECORD_NOT_VALID_AT_TIME');
      // A proof from 2024 with its 2024 record is valid today: validity never reads the clock.
      assert.equal(ledger.ingest(uptimeProof(A, T0)).status, 'applied');
    } finally {
      cleanup();
    }
  });

  it('requires the claimed layers to equal the record span and to lie inside the model', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const p = trainingProof(A, T0, { layers: { start: 0, end: 4 } });
      assert.equal(ledger.ingest(p.bytes).reason, 'LAYERS_MISMATCH');
      const beyond = buildProof(A, env(1, T0), { uptimeMs: 60_000, holderRecord: holderRecord(A, { start: 4, end: LAYERS + 1 }, T0) });
      assert.equal(ledger.ingest(beyond.bytes).reason, 'LAYERS_OUT_OF_RANGE');
      const empty = buildProof(A, env(2, T0), { uptimeMs: 60_000, holderRecord: holderRecord(A, { start: 3, end: 3 }, T0) });
      assert.equal(ledger.ingest(empty.bytes).reason, 'LAYERS_OUT_OF_RANGE');
    } finally {
      cleanup();
    }
  });
});

describe('ledger verification: proof plausibility', () => {
  const cases: [string, () => LedgerEvent, string][] = [
    ['model hash unchanged', () => trainingProof(A, T0, { modelHashAfter: new Uint8Array(32).fill(1) }), 'TRAINING_HASH_UNCHANGED'],
    ['zero loss', () => trainingProof(A, T0, { lossMicro: 0n }), 'TRAINING_LOSS_INVALID'],
    ['no commitment', () => trainingProof(A, T0, { gradientCommitment: new Uint8Array(32) }), 'TRAINING_NO_COMMITMENT'],
    ['training with 5 s uptime', () => trainingProof(A, T0, {}, 5_000), 'TRAINING_UPTIME_TOO_SHORT'],
    ['uptime beyond the window', () => trainingProof(A, T0, { uptimeMs: 60_001 }), 'UPTIME_TOO_LONG'],
    ['inference above 5,000 tokens/s', () => trainingProof(A, T0, { inferenceTokens: 300_001n }), 'INFERENCE_RATE'],
    ['training above 20,000 tokens/s', () => trainingProof(A, T0, { trainingTokens: 1_200_001n }), 'TRAINING_RATE'],
    ['data above 1,000 samples/s', () => trainingProof(A, T0, { dataSamples: 60_001n }), 'DATA_RATE'],
    ['epoch not matching the timestamp', () => trainingProof(A, T0, { epoch: Math.floor(T0 / 60_000) + 1 }), 'EPOCH_MISMATCH'],
  ];
  for (const [name, make, reason] of cases) {
    it(`drops a proof with ${name}`, () => {
      const { ledger, cleanup } = openTempLedger();
      try {
        const r = ledger.ingest(make().bytes);
        assert.deepEqual([r.status, r.reason], ['dropped', reason]);
      } finally {
        cleanup();
      }
    });
  }

  it('accepts the same proof at the caps exactly', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const p = trainingProof(A, T0, { inferenceTokens: 300_000n, trainingTokens: 1_200_000n, dataSamples: 60_000n });
      assert.equal(ledger.ingest(p.bytes).status, 'applied');
    } finally {
      cleanup();
    }
  });
});

describe('ledger verification: admission', () => {
  it('filters live gossip by freshness, but not sync', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const old = uptimeProof(A, T0);
      assert.equal(ledger.ingest(old, { nowMs: T0 + MAX_LIVE_AGE_MS + 1 }).reason, 'STALE');
      assert.equal(ledger.ingest(old, { nowMs: T0 - 60_001 }).reason, 'FUTURE');
      assert.equal(ledger.ingest(old, { nowMs: T0 + 1000 }).status, 'applied');
      const older = uptimeProof(B, T0 - 3_600_000);
      assert.equal(ledger.ingest(older).status, 'applied'); // sync of history
    } finally {
      cleanup();
    }
  });

  it('drops other networks, garbage, truncation, trailing bytes and oversized input', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      const e = buildTransfer(A, env(1, T0, 'other-net'), acct(B), NEURO);
      assert.equal(ledger.ingest(e.bytes).reason, 'WRONG_NETWORK');
      const good = uptimeProof(A, T0);
      assert.equal(ledger.ingest(good.subarray(0, 100)).reason, 'MALFORMED');
      assert.equal(ledger.ingest(concat(good, new Uint8Array([0]))).status, 'dropped');
      assert.equal(ledger.ingest(new Uint8Array(0)).reason, 'MALFORMED');
      assert.equal(ledger.ingest(new Uint8Array(100_000)).reason, 'TOO_LARGE');
      const junk = new Uint8Array(300);
      for (let i = 0; i < 300; i++) junk[i] = (i * 131 + 7) & 0xff;
      assert.equal(ledger.ingest(junk).status, 'dropped');
      const unknownKind = Uint8Array.from(buildTransfer(A, env(1, T0), acct(B), NEURO).bytes);
      unknownKind[1] = 99;
      assert.equal(ledger.ingest(unknownKind).reason, 'MALFORMED');
      assert.equal(ledger.status().events, 0);
    } finally {
      cleanup();
    }
  });

  it('keeps verdicts across kinds independent: a stake nonce does not collide with a transfer nonce', () => {
    const { ledger, cleanup } = openTempLedger();
    try {
      assert.equal(ledger.ingest(uptimeProof(A, T0)).status, 'applied');
      const t = ledger.ingest(buildTransfer(A, env(5, T0 + 60_000), acct(B), 1n).bytes);
      const s = ledger.ingest(signEvent(A, { ...env(5, T0 + 60_001), body: { kind: EventKind.Unstake, amount: 1n } }).bytes);
      assert.equal(t.status, 'applied');
      assert.deepEqual([s.status, s.reason], ['rejected', 'INSUFFICIENT_STAKE']);
    } finally {
      cleanup();
    }
  });
});
