/**
 * The uncompressed-key cache of libsecp256k1 verification (src/identity/sign.ts, issue 11 §4 proof_verify_per_s):
 * a signer's key is handed to libsecp256k1 in its 65-byte form after its second valid signature. The verdicts are
 * those of the OpenSSL backend on every input, cached or not, and the cache holds only keys that signed something
 * valid, bounded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clearVerifyKeyCache, keyFromPrivate, malleate, signDomain, verifyBackend, verifyDomain, verifyDomainOpenssl, verifyKeyCacheSize } from '../../../src/identity/index.js';
import { sha256 } from '../../../src/util/bytes.js';

const D = 'neuroshard/test/v1';

describe('verification key cache', { skip: verifyBackend !== 'libsecp256k1' ? 'libsecp256k1 binding not loaded' : false }, () => {
  it('gives the same verdicts before and after a key is cached, as OpenSSL does', () => {
    clearVerifyKeyCache();
    const k = keyFromPrivate(sha256('key-cache a'));
    const other = keyFromPrivate(sha256('key-cache b'));
    const cases = Array.from({ length: 6 }, (_, i) => {
      const payload = new TextEncoder().encode(`message ${i}`);
      const sig = signDomain(k, D, payload);
      const bad = new Uint8Array(sig);
      bad[i * 7]! ^= 1;
      return { payload, sig, bad };
    });
    for (let round = 0; round < 3; round++) {
      for (const { payload, sig, bad } of cases) {
        for (const [pub, s] of [[k.publicKey, sig], [k.publicKey, bad], [k.publicKey, malleate(sig)], [other.publicKey, sig]] as const) {
          assert.equal(verifyDomain(pub, D, payload, s), verifyDomainOpenssl(pub, D, payload, s), `round ${round}`);
        }
        assert.equal(verifyDomain(k.publicKey, D, payload, sig), true);
      }
    }
    assert.equal(verifyKeyCacheSize(), 1, 'only the key that signed validly twice is cached');
  });

  it('a key that is not a curve point, or failed signatures, never enter the cache', () => {
    clearVerifyKeyCache();
    const k = keyFromPrivate(sha256('key-cache c'));
    const payload = new TextEncoder().encode('x');
    const sig = signDomain(k, D, payload);
    const offCurve = new Uint8Array(33);
    offCurve[0] = 2;
    offCurve[32] = 7; // x = 7: x³ + 7 is not a square mod p
    for (let i = 0; i < 3; i++) {
      assert.equal(verifyDomain(offCurve, D, payload, sig), false);
      assert.equal(verifyDomain(k.publicKey, D, new TextEncoder().encode('y'), sig), false);
    }
    assert.equal(verifyKeyCacheSize(), 0);
  });

  it('holds at most 8,192 keys however many sign', () => {
    clearVerifyKeyCache();
    const payload = new TextEncoder().encode('bound');
    for (let i = 0; i < 8300; i++) {
      const k = keyFromPrivate(sha256(`key-cache bound ${i}`));
      const sig = signDomain(k, D, payload);
      assert.equal(verifyDomain(k.publicKey, D, payload, sig), true);
      assert.equal(verifyDomain(k.publicKey, D, payload, sig), true);
    }
    assert.equal(verifyKeyCacheSize(), 8192);
    clearVerifyKeyCache();
  });
});
