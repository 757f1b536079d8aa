/**
 * Adversarial review of the HolderRecord encoding (one record has exactly one binary form, so a relayed copy cannot
 * be re-spelled into different bytes that still decode and verify) and of the tracker client's handling of records.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey } from '../../../src/identity/index.js';
import { decodeHolderRecord, encodeHolderRecord, signHolderRecord, verifyHolderRecord } from '../../../src/protocols/holder-record.js';
import { TrackerClient } from '../../../src/protocols/tracker-client.js';
import { ManualClock } from '../../../src/util/clock.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const KEY = keyFromPrivate(new Uint8Array(32).fill(7));
const T0 = 1_700_000_000_000;

describe('HolderRecord binary form is canonical', () => {
  it('rejects a string field prefixed with a UTF-8 byte order mark (a second encoding of the same record)', () => {
    const rec = signHolderRecord(KEY, {
      networkId: 'testnet',
      peerId: peerIdFromPublicKey(KEY.publicKey),
      multiaddrs: ['/ip4/127.0.0.1/tcp/9000'],
      span: { start: 0, end: 4 },
      capacity: { memoryMb: 2048, tokensPerSec: 100 },
      timestampMs: T0,
      expiresMs: T0 + 60_000,
    });
    const bytes = encodeHolderRecord(rec);
    // version(1) ‖ u16 len ‖ "testnet": splice EF BB BF in front of the network id and fix its length
    const len = new DataView(bytes.buffer, bytes.byteOffset).getUint16(1);
    const spelled = new Uint8Array(bytes.byteLength + 3);
    spelled.set(bytes.subarray(0, 1));
    new DataView(spelled.buffer).setUint16(1, len + 3);
    spelled.set([0xef, 0xbb, 0xbf], 3);
    spelled.set(bytes.subarray(3), 6);
    assert.throws(() => decodeHolderRecord(spelled), (e) => isNeuroShardError(e, 'HOLDER_RECORD_MALFORMED'));
    // the genuine bytes still decode, verify and re-encode to themselves
    const back = decodeHolderRecord(bytes);
    assert.equal(verifyHolderRecord(back, { nowMs: T0, maxSkewMs: 0 }).ok, true);
    assert.deepEqual(encodeHolderRecord(back), bytes);
  });
});

describe('tracker client against a hostile tracker', () => {
  it('verifies no more records than it asked for (each costs a signature check; 1 MiB holds thousands)', async () => {
    const rec = signHolderRecord(KEY, {
      networkId: 'testnet',
      peerId: peerIdFromPublicKey(KEY.publicKey),
      multiaddrs: ['/ip4/127.0.0.1/tcp/9000'],
      span: { start: 0, end: 4 },
      capacity: { memoryMb: 1, tokensPerSec: 1 },
      timestampMs: T0,
      expiresMs: T0 + 60_000,
    });
    const body = { peers: Array.from({ length: 2000 }, () => rec) };
    const fakeFetch = (() => Promise.resolve(new Response(JSON.stringify(body), { status: 200 }))) as typeof fetch;
    const client = new TrackerClient({ trackers: ['http://127.0.0.1:1'], networkId: 'testnet' }, { fetch: fakeFetch, clock: new ManualClock(T0) });
    const got = await client.fetchPeersFrom('http://127.0.0.1:1', { limit: 50 });
    assert.equal(got.length, 50);
    const all = await client.fetchPeersFrom('http://127.0.0.1:1');
    assert.equal(all.length, 200);
  });
});
