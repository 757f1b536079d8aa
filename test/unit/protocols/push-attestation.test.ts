/**
 * Session 30, signed pushes (protocols/push-attestation.ts): a push's signature binds the receiving session, the
 * position, the dtype, the shape and the bytes; and the entry's verdict on a digest mismatch (judgePushMismatch)
 * names the receiver or the pusher in each case the module's comment lists, rounding included.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgePushMismatch, newPushSigner, pushMessage, pushVerifier, sha256, signPush, verifyPush, type PushAttestationData } from '../../../src/protocols/push-attestation.js';
import { activationTensor, floatToBf16, toFloat32, type WireTensor } from '../../../src/protocols/tensor-wire.js';

const C = 4;
const T = 2;
const sessionId = 'hop-session-7';
const position = 12;

/** An fp32 answer [T, C] whose values are not exact in fp16 or bf16. */
function answer(): Float32Array {
  return Float32Array.from({ length: T * C }, (_, i) => 0.1 + i * 0.013 - (i % 3) * 0.37);
}

function attest(signer: ReturnType<typeof newPushSigner>, t: WireTensor, sid = sessionId, pos = position): PushAttestationData {
  const digest = sha256(t.data);
  return { dtype: t.dtype as 'fp32' | 'fp16' | 'bf16', digest, signature: signPush(signer, sid, pos, t, digest) };
}

describe('push attestations (session 30)', () => {
  it('a signature verifies only for its session, position, dtype, shape and bytes', () => {
    const signer = newPushSigner();
    assert.equal(signer.publicKey.byteLength, 32);
    const key = pushVerifier(signer.publicKey);
    const t = activationTensor(answer(), [T, C], 'f16');
    const digest = sha256(t.data);
    const sig = signPush(signer, sessionId, position, t, digest);
    assert.equal(sig.byteLength, 64);
    assert.equal(verifyPush(key, sessionId, position, 'fp16', [T, C], digest, sig), true);
    assert.equal(verifyPush(key, 'hop-session-8', position, 'fp16', [T, C], digest, sig), false, 'another session');
    assert.equal(verifyPush(key, sessionId, position + 1, 'fp16', [T, C], digest, sig), false, 'another position');
    assert.equal(verifyPush(key, sessionId, position, 'bf16', [T, C], digest, sig), false, 'another dtype');
    assert.equal(verifyPush(key, sessionId, position, 'fp16', [C, T], digest, sig), false, 'another shape');
    assert.equal(verifyPush(key, sessionId, position, 'fp16', [T, C], sha256(new Uint8Array(3)), sig), false, 'other bytes');
    assert.equal(verifyPush(pushVerifier(newPushSigner().publicKey), sessionId, position, 'fp16', [T, C], digest, sig), false, 'another key');
    assert.equal(verifyPush(key, sessionId, position, 'fp16', [T, C], digest, sig.subarray(0, 63)), false, 'a short signature');
    assert.equal(verifyPush(key, sessionId, position, 'int8', [T, C], digest, sig), false, 'not an activation dtype');
    // the message is length-prefixed: moving a byte between the session id and what follows changes it
    assert.notDeepEqual(pushMessage('ab', 1, 'fp32', [1, 2], digest), pushMessage('a', 1, 'fp32', [1, 2], digest));
    assert.throws(() => pushVerifier(new Uint8Array(31)), RangeError);
  });

  describe('the entry\'s verdict on a digest mismatch', () => {
    const signer = newPushSigner();
    const key = pushVerifier(signer.publicKey);
    const base = { pusherKey: key, sessionId, position, T, C };

    it('no attestation, or one that does not verify or names another session or position: the receiver', () => {
      const a = answer();
      const t = activationTensor(a, [T, C], 'f32');
      assert.equal(judgePushMismatch({ ...base, wire: 'f32', answer: a, attestation: undefined }), 'receiver');
      const good = attest(signer, t);
      const forged = { ...good, signature: Uint8Array.from(good.signature, (b, i) => (i === 5 ? b ^ 1 : b)) };
      assert.equal(judgePushMismatch({ ...base, wire: 'f32', answer: a, attestation: forged }), 'receiver');
      assert.equal(judgePushMismatch({ ...base, wire: 'f32', answer: a, attestation: attest(signer, t, 'other-session') }), 'receiver');
      assert.equal(judgePushMismatch({ ...base, wire: 'f32', answer: a, attestation: attest(signer, t, sessionId, position - 1) }), 'receiver');
      // signed by someone else than the pusher (the receiver's own key)
      assert.equal(judgePushMismatch({ ...base, wire: 'f32', answer: a, attestation: attest(newPushSigner(), t) }), 'receiver');
      // a pusher that named no key: the entry never arms such a boundary, so a mismatch there is the receiver's
      assert.equal(judgePushMismatch({ ...base, pusherKey: undefined, wire: 'f32', answer: a, attestation: good }), 'receiver');
    });

    it('a valid attestation of other bytes than the pusher answered: the pusher', () => {
      const a = answer();
      const other = a.map((v) => v * 1.5 + 0.1);
      for (const wire of ['f32', 'f16', 'bf16'] as const) {
        assert.equal(judgePushMismatch({ ...base, wire, answer: a, attestation: attest(signer, activationTensor(other, [T, C], wire)) }), 'pusher', wire);
      }
      // one value one ulp off is other bytes too
      const near = a.slice();
      near[3] = Math.fround(near[3]! * (1 + 2 ** -20));
      assert.equal(judgePushMismatch({ ...base, wire: 'f32', answer: a, attestation: attest(signer, activationTensor(near, [T, C], 'f32')) }), 'pusher');
    });

    it('a valid attestation of the pusher\'s answer (its own dtype, rounded to the session\'s by the receiver): the receiver', () => {
      const a = answer();
      // hops after the first answer and push in the session's dtype; the entry's copy is that answer decoded (exact)
      for (const wire of ['f32', 'f16', 'bf16'] as const) {
        const pushed = activationTensor(a, [T, C], wire);
        const copy = toFloat32(pushed).slice();
        assert.deepEqual(Buffer.from(activationTensor(copy, [T, C], wire).data), Buffer.from(pushed.data), `${wire}: the copy re-encodes to the answer`);
        assert.equal(judgePushMismatch({ ...base, wire, answer: copy, attestation: attest(signer, pushed) }), 'receiver', wire);
      }
      // the driver hop answers and pushes fp32 whatever the wire: the receiver rounds it, as the entry does
      for (const wire of ['f16', 'bf16'] as const) {
        assert.equal(judgePushMismatch({ ...base, wire, answer: a, attestation: attest(signer, activationTensor(a, [T, C], 'f32')) }), 'receiver', `driver into ${wire}`);
      }
      // a driver that pushed its fp32 answer already rounded to the session's dtype: the bytes an honest receiver ran
      // on are the ones the entry expects, so a mismatch is still the receiver's
      assert.equal(judgePushMismatch({ ...base, wire: 'f16', answer: a, attestation: attest(signer, activationTensor(a, [T, C], 'f16')) }), 'receiver');
    });

    it('the pusher\'s answer in a dtype whose rounding to the session\'s differs (a double rounding): the pusher', () => {
      // x rounds to bf16 upward (just past the tie 1 + 2^-8), but to fp16 onto the tie, which bf16 rounds to even (1)
      const x = 1 + 2 ** -8 + 2 ** -20;
      assert.notEqual(floatToBf16(x), floatToBf16(toFloat32(activationTensor(Float32Array.of(x), [1, 1], 'f16'))[0]!));
      const a = answer();
      a[5] = x;
      // the driver answered fp32 and pushed fp16 into a bf16 session: an honest receiver ran on bf16(fp16(a)), which
      // is not bf16(a), so its digest differs from the entry's and the pusher chose the push that made it so
      assert.equal(judgePushMismatch({ ...base, wire: 'bf16', answer: a, attestation: attest(signer, activationTensor(a, [T, C], 'f16')) }), 'pusher');
      // without that value the same push rounds to the same bytes: the receiver
      a[5] = 0.5;
      assert.equal(judgePushMismatch({ ...base, wire: 'bf16', answer: a, attestation: attest(signer, activationTensor(a, [T, C], 'f16')) }), 'receiver');
    });
  });
});
