/**
 * verifyDomain's two backends (src/identity/sign.ts): libsecp256k1 (the fast path, issue 11 §4) and node:crypto
 * (the fallback) give the same verdict on every input: valid signatures, tampered payloads, domains and signatures,
 * high-S copies, out-of-range r and s, and keys that are not compressed points on the curve.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { keyFromPrivate, malleate, signDomain, verifyBackend, verifyDomain, verifyDomainOpenssl } from '../../../src/identity/index.js';
import { sha256 } from '../../../src/util/bytes.js';

const D = 'neuroshard/test/v1';

function verdicts(pub: Uint8Array, domain: string, payload: Uint8Array, sig: Uint8Array): [boolean, boolean] {
  return [verifyDomain(pub, domain, payload, sig), verifyDomainOpenssl(pub, domain, payload, sig)];
}

describe('signature verification backends', () => {
  it('the fast backend is loaded on this platform', () => {
    // linux-x64 and the other platforms with a prebuilt binding; NEUROSHARD_NO_LIBSECP256K1=1 forces the fallback
    if (process.env.NEUROSHARD_NO_LIBSECP256K1 !== '1' && process.platform === 'linux' && process.arch === 'x64') assert.equal(verifyBackend, 'libsecp256k1');
  });

  it('agree on valid, tampered and malleated signatures (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), fc.nat(), (seed, payload, flipAt) => {
        const k = keyFromPrivate(sha256(seed));
        const sig = signDomain(k, D, payload);
        assert.deepEqual(verdicts(k.publicKey, D, payload, sig), [true, true]);
        const badSig = new Uint8Array(sig);
        badSig[flipAt % 64] ^= 1;
        const v = verdicts(k.publicKey, D, payload, badSig);
        assert.equal(v[0], v[1]);
        assert.equal(v[0], false);
        assert.deepEqual(verdicts(k.publicKey, D, payload, malleate(sig)), [false, false]);
        assert.deepEqual(verdicts(k.publicKey, D + 'x', payload, sig), [false, false]);
        if (payload.length > 0) {
          const p2 = new Uint8Array(payload);
          p2[flipAt % p2.length] ^= 0x80;
          assert.deepEqual(verdicts(k.publicKey, D, p2, sig), [false, false]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('agree on keys that are not compressed points, and on r or s out of range', () => {
    const k = keyFromPrivate(sha256('backend key'));
    const payload = new TextEncoder().encode('payload');
    const sig = signDomain(k, D, payload);
    const keys: Uint8Array[] = [new Uint8Array(33), new Uint8Array(33).fill(4), k.publicKey.subarray(0, 32), new Uint8Array(65).fill(4)];
    // x values that are not on the curve (about half are): find a few with prefix 02
    for (let i = 0; keys.length < 12 && i < 200; i++) {
      const c = new Uint8Array(33);
      c[0] = 2;
      c.set(sha256(`x ${i}`), 1);
      keys.push(c);
    }
    for (const pub of keys) {
      const v = verdicts(pub, D, payload, sig);
      assert.equal(v[0], v[1], `key ${Buffer.from(pub).toString('hex')}`);
      assert.equal(v[0], false);
    }
    const n = Buffer.from('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141', 'hex');
    const bad = [new Uint8Array(64), new Uint8Array(63), new Uint8Array(Buffer.concat([n, sig.subarray(32)])), new Uint8Array(Buffer.concat([sig.subarray(0, 32), new Uint8Array(32)]))];
    for (const s of bad) assert.deepEqual(verdicts(k.publicKey, D, payload, s), [false, false]);
    assert.deepEqual(verdicts(k.publicKey, D, payload, sig), [true, true]);
  });
});
