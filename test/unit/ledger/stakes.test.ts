import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accountIdFromPublicKey, keyFromPrivate, peerIdFromPublicKey } from '../../../src/identity/index.js';
import { stakesByPeer } from '../../../src/ledger/stakes.js';

const keyOf = (b: number) => keyFromPrivate(new Uint8Array(32).fill(b));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('stakesByPeer (route choice bond lookup, issue 12 §3)', () => {
  it("maps each peer id to its account's locked stake, read through the ledger's account reader", () => {
    const staker = keyOf(1);
    const idle = keyOf(2);
    const locked = new Map([[hex(accountIdFromPublicKey(staker.publicKey)), 250n]]);
    const stakes = stakesByPeer([peerIdFromPublicKey(staker.publicKey), peerIdFromPublicKey(idle.publicKey)], (id) => locked.get(hex(id)) ?? 0n);
    assert.deepEqual([...stakes.values()], [250n, 0n]);
    assert.equal(stakes.get(peerIdFromPublicKey(staker.publicKey)), 250n);
  });

  it('gives 0 to a peer id that names no secp256k1 key, and reads each peer once', () => {
    let reads = 0;
    const p = peerIdFromPublicKey(keyOf(3).publicKey);
    const stakes = stakesByPeer(['not-a-peer-id', p, p], () => (reads++, 5n));
    assert.equal(stakes.get('not-a-peer-id'), 0n);
    assert.equal(stakes.get(p), 5n);
    assert.equal(reads, 1);
  });
});
