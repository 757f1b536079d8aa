// Seal + open of one lane frame, the addon's OpenSSL GCM vs node:crypto, alternating blocks (docs/LIMITS.md "Session 19").
// Usage (after tsc): node scripts/experiments/lane-aead-bench.mjs
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
const R = new URL('../../dist/src/', import.meta.url).href;
const { Sealer, Opener, setAeadBackendForTests } = await import(R + 'p2p/lane/aead.js');
const { FrameAccumulator } = await import(R + 'p2p/lane/codec.js');
const key = randomBytes(32);
const run = (backend, n, reps) => {
  setAeadBackendForTests(backend);
  const s = new Sealer(key), o = new Opener(key), acc = new FrameAccumulator(1 << 20);
  const msg = randomBytes(n);
  const c0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) {
    const wire = s.seal([msg]);
    for (const b of wire) acc.push(b.length === 0 ? b : Buffer.from(b)); // as a socket read delivers it (a fresh buffer)
    const f = acc.next();
    o.open(f.pieces, f.tag, true);
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / reps;
};
for (const [n, reps] of [[3081, 20000], [262144, 300]]) {
  const r = { openssl: [], node: [] };
  run('openssl', n, reps / 10); run('node', n, reps / 10);
  for (let k = 0; k < 6; k++) for (const b of k % 2 ? ['node', 'openssl'] : ['openssl', 'node']) r[b].push(run(b, n, reps));
  const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1].toFixed(1);
  console.log(`${n} B frame, seal + open: openssl median ${med(r.openssl)} µs CPU (min ${Math.min(...r.openssl).toFixed(1)}), node:crypto ${med(r.node)} µs (min ${Math.min(...r.node).toFixed(1)}); load ${loadavg()[0].toFixed(1)}`);
}
process.exit(0);
