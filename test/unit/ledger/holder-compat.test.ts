/**
 * The ledger checks embedded HolderRecords through an interface because it may not import src/protocols/. Its
 * own copy of the record layout (src/ledger/holder.ts) must stay byte-identical to the protocols implementation,
 * or node/ wiring and the ledger's own test double would disagree. Tests may import both.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalEncode, signHolderRecord, verifyHolderRecord } from '../../../src/protocols/holder-record.js';
import { holderRecordPayload, localHolderRecordVerifier, signEmbeddedHolderRecord } from '../../../src/ledger/holder.js';
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
});
