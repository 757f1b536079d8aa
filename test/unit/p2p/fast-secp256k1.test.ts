import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import fc from 'fast-check';
import { parseDerSignature, verifySecp256k1 } from '../../../src/p2p/fast-secp256k1.js';

function noble(pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  try {
    return secp256k1.verify(sig, createHash('sha256').update(msg).digest(), pub, { prehash: false, format: 'der' });
  } catch {
    return false;
  }
}

describe('fast secp256k1 verify agrees with @noble/curves', () => {
  const sk = secp256k1.utils.randomSecretKey();
  const pub = secp256k1.getPublicKey(sk, true);

  it('accepts valid signatures and rejects tampered, high-S and garbage ones exactly as noble does', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.nat(80), (msg, flip) => {
        const digest = createHash('sha256').update(msg).digest();
        const der = secp256k1.sign(digest, sk, { prehash: false, format: 'der' });
        assert.equal(verifySecp256k1(pub, msg, der), true);
        assert.equal(noble(pub, msg, der), true);
        const s = secp256k1.Signature.fromBytes(der, 'der');
        const high = new secp256k1.Signature(s.r, secp256k1.Point.Fn.ORDER - s.s).toBytes('der');
        assert.equal(verifySecp256k1(pub, msg, high), false, 'high-S rejected');
        assert.equal(noble(pub, msg, high), false);
        const bad = der.slice();
        bad[flip % bad.length]! ^= 0x01;
        assert.equal(verifySecp256k1(pub, msg, bad), noble(pub, msg, bad));
        const other = Uint8Array.of(...msg, 1);
        assert.equal(verifySecp256k1(pub, other, der), false);
      }),
      { numRuns: 50 },
    );
  });

  it('hashes iterable messages (Uint8ArrayList parts) like a single buffer', () => {
    const msg = Uint8Array.of(1, 2, 3, 4, 5);
    const der = secp256k1.sign(createHash('sha256').update(msg).digest(), sk, { prehash: false, format: 'der' });
    assert.equal(verifySecp256k1(pub, [msg.subarray(0, 2), msg.subarray(2)], der), true);
  });

  it('parses only strict DER', () => {
    assert.equal(parseDerSignature(Uint8Array.of(0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01))?.s, 1n);
    assert.equal(parseDerSignature(Uint8Array.of(0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01)), undefined, 'non-minimal');
    assert.equal(parseDerSignature(Uint8Array.of(0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01)), undefined, 'negative');
    assert.equal(parseDerSignature(new Uint8Array(80)), undefined);
  });
});
