#!/usr/bin/env node
// Proof verification of two builds in one process, pass by pass alternating (issue 11 §4 proof_verify_per_s on a
// loaded machine): the bench's 384 proofs (64 signers, 6 windows, one HolderRecord per 3 proofs), each build's least
// CPU per proof over the passes. Usage: node scripts/ledger-verify-ab.mjs DIST_A DIST_B [passes=40]
const dists = process.argv.slice(2, 4).map((d) => (d.startsWith('/') ? d : process.cwd() + '/' + d));
const passes = Number(process.argv[4] ?? 40);
const mods = [];
for (const d of dists) {
  mods.push({
    d,
    E: await import(d + '/src/ledger/events.js'),
    V: await import(d + '/src/ledger/verify.js'),
    H: await import(d + '/src/ledger/holder.js'),
    B: await import(d + '/src/ledger/build.js'),
    I: await import(d + '/src/identity/index.js'),
    U: await import(d + '/src/util/bytes.js'),
  });
}
const m0 = mods[0];
const NET = 'bench-net', LAYERS = 16, T0 = 1_704_067_200_000;
const key = (i) => m0.I.keyFromPrivate(m0.U.sha256(`neuroshard bench key ${i}`));
const rec = (k, ts, life) => m0.H.signEmbeddedHolderRecord(k, { networkId: NET, multiaddrs: ['/ip4/192.0.2.1/tcp/9000', '/ip4/192.0.2.1/tcp/9001/ws'], span: { start: 0, end: LAYERS }, capacity: { memoryMb: 8192, tokensPerSec: 200 }, timestampMs: ts - 5000, expiresMs: ts - 5000 + life });
const sha = m0.U.sha256;
const proofs = [];
const keys = Array.from({ length: 64 }, (_, i) => key(i));
const records = new Map();
for (let w = 0; w < 6; w++) for (const [i, k] of keys.entries()) {
  const ts = T0 + w * 60_000 + i * 100;
  if (w % 3 === 0) records.set(k, rec(k, ts, 3 * 60_000 + 5000));
  proofs.push(m0.B.buildProof(k, { networkId: NET, nonce: BigInt(Math.floor(ts / 60_000)), timestampMs: ts }, { uptimeMs: 60_000, inferenceTokens: 10_000n, trainingTokens: 40_960n, dataSamples: 100n, modelHashBefore: sha('before'), modelHashAfter: sha('after'), gradientCommitment: sha('commitment'), lossMicro: 2_500_000n, holderRecord: records.get(k) }).bytes);
}
const best = mods.map(() => Infinity);
for (let p = 0; p < passes; p++) {
  for (const [j, m] of mods.entries()) {
    const verifier = { verifySignature: (r) => m.H.localHolderRecordVerifier.verifySignature(r) };
    const cfg = { networkId: NET, modelLayers: LAYERS, holderVerifier: verifier };
    m.V.clearEventVerdicts();
    const c0 = process.cpuUsage();
    for (const b of proofs) if (m.V.verifyEvent(m.E.decodeEvent(b), cfg) !== null) throw new Error('invalid');
    const c = process.cpuUsage(c0);
    best[j] = Math.min(best[j], (c.user + c.system) / proofs.length);
  }
}
console.log(mods.map((m, j) => `${m.d.split('/').slice(-2)[0]}: ${best[j].toFixed(1)} us/proof (${Math.round(1e6 / best[j])}/s)`).join('  '), 'load', (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
