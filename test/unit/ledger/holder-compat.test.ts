/**
 * The ledger checks embedded HolderRecords through an interface because it may not import src/protocols/. Its
 * own copy of the record layout (src/ledger/holder.ts) must stay byte-identical to the protocols implementation,
 * or node/ wiring and the ledger's own test double would disagree. Tests may import both.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalEncode, encodeHolderRecord, signHolderRecord, verifyHolderRecord } from '../../../src/protocols/holder-record.js';
import { holderRecordPayload, localHolderRecordVerifier, readHolderRecord, signEmbeddedHolderRecord, writeHolderRecord } from '../../../src/ledger/holder.js';
import { Reader, Writer } from '../../../src/ledger/codec.js';
import { peerIdFromPublicKey } from '../../../src/identity/index.js';
import { NET, T0, testKey } from './helpers.js';

describe('ledger HolderRecord layout matches src/protocols/holder-record.ts', () => {
  const key = testKey(77);
  const fields = {
    networkId: NET,
    peerId: peerIdFromPublicKey(key.publicKey),
    multiaddrs: ['/ip4/127.0.0.1/tcp/9000', '/ip4/127.0.0.1/tcp/9001/ws'],
    span: { start: 2, end: 6 },
    capacity: { memoryMb: 2048, tokensPerSec: 321 },
    timestampMs: T0,
    expiresMs: T0 + 60_000,
  };

  it('encodes the same canonical payload', () => {
    assert.deepEqual(holderRecordPayload(fields), canonicalEncode(fields));
  });

  it('verifies records signed by protocols/, and protocols/ verifies ours', () => {
    const theirs = signHolderRecord(key, fields);
    assert.equal(localHolderRecordVerifier.verifySignature(theirs), true);
    const ours = signEmbeddedHolderRecord(key, fields);
    assert.equal(ours.signature, theirs.signature); // deterministic signatures over the same bytes
    assert.equal(verifyHolderRecord(ours, { nowMs: ours.timestampMs, maxSkewMs: 0 }).ok, true);
    assert.equal(localHolderRecordVerifier.verifySignature({ ...theirs, span: { start: 2, end: 7 } }), false);
  });

  it('an int8 holder\'s record (version 2, signed weights byte): same payload, same signature, embeds and reads back', () => {
    const int8 = { ...fields, weights: 'int8' as const };
    assert.deepEqual(holderRecordPayload(int8), canonicalEncode(int8));
    const theirs = signHolderRecord(key, int8);
    const ours = signEmbeddedHolderRecord(key, int8);
    assert.equal(ours.signature, theirs.signature);
    assert.equal(localHolderRecordVerifier.verifySignature(theirs), true);
    // the proof's embedded form is the protocols wire form
    const w = new Writer();
    writeHolderRecord(w, theirs);
    const bytes = w.finish();
    assert.deepEqual(bytes, encodeHolderRecord(theirs));
    const back = readHolderRecord(new Reader(bytes));
    assert.equal(back.weights, 'int8');
    assert.equal(localHolderRecordVerifier.verifySignature(back), true);
    // the format is covered by the signature
    const { weights: _w, ...dropped } = back;
    assert.equal(localHolderRecordVerifier.verifySignature(dropped), false);
  });
});
