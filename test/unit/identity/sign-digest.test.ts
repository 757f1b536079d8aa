/**
 * verifyDomainDigest (src/identity/sign.ts): verifyDomain for a caller that already computed the payload's signing
 * digest (the ledger's event ids and verdict-cache keys). With that digest it gives verifyDomain's verdict on every
 * input; a digest of other bytes verifies nothing signed over this payload.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { keyFromPrivate, malleate, signDomain, signingDigest, verifyDomain, verifyDomainDigest } from '../../../src/identity/index.js';
import { sha256 } from '../../../src/util/bytes.js';

const D = 'neuroshard/test/v1';

describe('verifyDomainDigest', () => {
  it('gives verifyDomain’s verdict on valid, tampered, malleated and wrong-key signatures (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), fc.nat(), (seed, payload, flipAt) => {
        const k = keyFromPrivate(sha256(seed));
        const other = keyFromPrivate(sha256(new Uint8Array([...seed, 1])));
        const sig = signDomain(k, D, payload);
        const d = signingDigest(D, payload);
        const bad = new Uint8Array(sig);
        bad[flipAt % 64]! ^= 1;
        const badKey = new Uint8Array(k.publicKey);
        badKey[0] = 4;
        for (const [pub, s] of [[k.publicKey, sig], [k.publicKey, bad], [k.publicKey, malleate(sig)], [other.publicKey, sig], [badKey, sig], [k.publicKey, sig.subarray(0, 63)]] as const) {
          assert.equal(verifyDomainDigest(pub, D, payload, d, s), verifyDomain(pub, D, payload, s));
        }
        assert.equal(verifyDomainDigest(k.publicKey, D, payload, d, sig), true);
      }),
      { numRuns: 64 },
    );
  });

  it('a digest of other bytes does not verify this payload’s signature; a malformed digest falls back to hashing', () => {
    const k = keyFromPrivate(sha256('sign-digest'));
    const payload = new TextEncoder().encode('payload');
    const sig = signDomain(k, D, payload);
    assert.equal(verifyDomainDigest(k.publicKey, D, payload, signingDigest(D, new TextEncoder().encode('other')), sig), false);
    assert.equal(verifyDomainDigest(k.publicKey, D, payload, signingDigest('neuroshard/other/v1', payload), sig), false, 'another domain');
    assert.equal(verifyDomainDigest(k.publicKey, D, payload, new Uint8Array(31), sig), true, 'not 32 bytes: verifyDomain decides');
  });
});
