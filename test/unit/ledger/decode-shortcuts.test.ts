/**
 * What decoding remembers so that verification does not redo it (issue 11 §4): the signing digest of a decoded
 * event (events.ts decodedDigest), the header fields the verify pool reads without decoding the body (signedParts),
 * and the canonical payload of an embedded HolderRecord (holder.ts holderRecordPayloadOf). Each must equal what
 * computing it from the fields gives, and must not be used for an object that was assembled or changed elsewhere.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accountIdFromPublicKey, signingDigest } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import { decodedDigest, decodeEvent, decodeEvents, EVENT_DOMAIN, signedParts, type LedgerEvent, type ProofBody } from '../../../src/ledger/events.js';
import { holderRecordPayload, holderRecordPayloadOf } from '../../../src/ledger/holder.js';
import { acct, env, openTempLedger, T0, testKey, uptimeProof } from './helpers.js';

const A = testKey(41);
const B = testKey(42);

describe('decode shortcuts', () => {
  it('decodedDigest is the payload’s signing digest for a decoded event, and nothing for other objects', () => {
    const bytes = buildTransfer(A, env(1, T0), acct(B), NEURO).bytes;
    const e = decodeEvent(bytes);
    assert.deepEqual(decodedDigest(e), signingDigest(EVENT_DOMAIN, e.payload));
    assert.equal(decodedDigest({ ...e }), undefined, 'a copy of the object');
    const payload = e.payload.slice();
    payload[payload.length - 1]! ^= 1;
    const changed: LedgerEvent = e;
    changed.payload = payload;
    assert.equal(decodedDigest(changed), undefined, 'a replaced payload field');
    const f = decodeEvent(bytes);
    f.id[0]! ^= 1;
    assert.deepEqual(decodedDigest(f), signingDigest(EVENT_DOMAIN, f.payload), 'the digest is not the id field');
  });

  it('signedParts reads the signer, digest and signature decodeEvent reads, and refuses a broken header', () => {
    for (const bytes of [buildTransfer(A, env(2, T0), acct(B), NEURO).bytes, uptimeProof(A, T0), buildTransfer(B, env(3, T0, 'another-net-id'), acct(A), 1n).bytes]) {
      const e = decodeEvent(bytes);
      const p = signedParts(bytes)!;
      assert.deepEqual(p.signer, e.signer);
      assert.deepEqual(p.digest, e.id);
      assert.deepEqual(p.signature, e.signature);
    }
    assert.equal(signedParts(new Uint8Array(10)), null);
    const bad = buildTransfer(A, env(4, T0), acct(B), NEURO).bytes.slice();
    bad[0] = 9;
    assert.equal(signedParts(bad), null, 'unknown version');
    const long = bad.slice();
    long[0] = 1;
    long[2] = 0xff; // a networkId length past the end
    assert.equal(signedParts(long), null);
  });

  it('holderRecordPayloadOf is holderRecordPayload, also after the record object is changed', () => {
    const e = decodeEvent(uptimeProof(A, T0)) as LedgerEvent<ProofBody>;
    const rec = e.body.holderRecord;
    assert.deepEqual(holderRecordPayloadOf(rec), holderRecordPayload(rec));
    rec.span.end += 1;
    assert.deepEqual(holderRecordPayloadOf(rec), holderRecordPayload(rec), 'span changed');
    rec.span.end -= 1;
    rec.multiaddrs.push('/ip4/192.0.2.9/tcp/1');
    assert.deepEqual(holderRecordPayloadOf(rec), holderRecordPayload(rec), 'an address added');
    assert.deepEqual(holderRecordPayloadOf({ ...rec, multiaddrs: [] }), holderRecordPayload({ ...rec, multiaddrs: [] }));
  });

  it('the id and account id of a decoded event are its own (the account memo shares nothing)', () => {
    const one = decodeEvents([buildTransfer(A, env(4, T0), acct(B), NEURO).bytes, buildTransfer(A, env(5, T0), acct(B), NEURO).bytes]);
    const [e, f] = one as LedgerEvent[];
    for (const x of [e!, f!]) {
      assert.deepEqual(x.account, accountIdFromPublicKey(x.signer));
      assert.deepEqual(x.id, signingDigest(EVENT_DOMAIN, x.payload));
    }
    e!.account[0]! ^= 1;
    e!.id[0]! ^= 1;
    assert.deepEqual(f!.account, accountIdFromPublicKey(A.publicKey), 'another event of the signer');
    assert.deepEqual(decodeEvent(f!.bytes).account, accountIdFromPublicKey(A.publicKey), 'a later decode');
    assert.deepEqual(decodedDigest(e!), signingDigest(EVENT_DOMAIN, e!.payload), 'the digest is not the id field');
  });

  it('ingestMany takes a given decode only for the bytes it was decoded from (IngestOptions.decoded)', () => {
    const t = openTempLedger();
    try {
      const funding = uptimeProof(A, T0);
      const x = buildTransfer(A, env(1, T0 + 120_000), acct(B), 1n).bytes;
      const y = buildTransfer(A, env(2, T0 + 121_000), acct(B), 2n).bytes;
      const z = buildTransfer(A, env(3, T0 + 122_000), acct(B), 3n).bytes;
      const decoded = decodeEvents([funding, x, y]);
      // the list's last entry is z, the decode's is y: ingest must judge and store z
      const r = t.ledger.ingestMany([funding, x, z], { decoded });
      assert.ok(r.every((v) => v.status !== 'dropped'), JSON.stringify(r));
      assert.equal(r[2]!.id, Buffer.from(decodeEvent(z).id).toString('hex'));
      assert.equal(t.ledger.eventStatus(decodeEvent(y).id), undefined, 'the decode of other bytes is not stored');
      assert.notEqual(t.ledger.eventStatus(decodeEvent(z).id), undefined);
    } finally {
      t.cleanup();
    }
  });
});
