#!/usr/bin/env node
// Session 30: the CPU that signed pushes add per pushed boundary (protocols/push-attestation.ts). Hop k hashes the
// pushed bytes and signs (Ed25519, node:crypto); hop k+1 hashes what it received (the digest then doubles as its
// input_digest when no rounding is needed, which session 29 took anyway) and verifies. Per session: a key pair at
// hop k and a public-key object at hop k+1. Prints µs per operation (median of `--rounds` rounds of `--n` each) for
// a decode step's [1, width] in fp32 and fp16, and [8, width] fp32.
//   node scripts/experiments/push-sign.mjs [--width 768] [--n 2000] [--rounds 7]
import { parseArgs } from 'node:util';

const dist = new URL('../../dist/src/', import.meta.url);
const { newPushSigner, pushVerifier, sha256, signPush, verifyPush } = await import(new URL('protocols/push-attestation.js', dist).href);
const { activationTensor } = await import(new URL('protocols/tensor-wire.js', dist).href);

const { values } = parseArgs({ options: { width: { type: 'string', default: '768' }, n: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '7' } } });
const C = Number(values.width);
const N = Number(values.n);
const R = Number(values.rounds);

function timeUs(fn) {
  const per = [];
  for (let r = 0; r < R; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn(i);
    per.push(Number(process.hrtime.bigint() - t0) / 1e3 / N);
  }
  per.sort((a, b) => a - b);
  return per[per.length >> 1];
}

const signer = newPushSigner();
const key = pushVerifier(signer.publicKey);
const out = {};
out.keypair_per_session_us = timeUs(() => newPushSigner());
out.verifier_per_session_us = timeUs(() => pushVerifier(signer.publicKey));
for (const [label, T, wire] of [
  ['1x' + C + ' f32', 1, 'f32'],
  ['1x' + C + ' f16', 1, 'f16'],
  ['8x' + C + ' f32', 8, 'f32'],
]) {
  const t = activationTensor(Float32Array.from({ length: T * C }, (_, i) => Math.sin(i)), [T, C], wire);
  const digest = sha256(t.data);
  const sig = signPush(signer, 'session-0123456789abcdef', 7, t, digest);
  if (!verifyPush(key, 'session-0123456789abcdef', 7, t.dtype, t.shape, digest, sig)) throw new Error('does not verify');
  const hash = timeUs(() => sha256(t.data));
  const sign = timeUs((i) => signPush(signer, 'session-0123456789abcdef', i, t, digest));
  const verify = timeUs(() => verifyPush(key, 'session-0123456789abcdef', 7, t.dtype, t.shape, digest, sig));
  out[label] = { bytes: t.data.byteLength, sha256_us: +hash.toFixed(2), sign_us: +sign.toFixed(2), verify_us: +verify.toFixed(2), boundary_us: +(hash + sign + hash + verify).toFixed(2) };
}
out.keypair_per_session_us = +out.keypair_per_session_us.toFixed(2);
out.verifier_per_session_us = +out.verifier_per_session_us.toFixed(2);
console.log(JSON.stringify(out, null, 2));
