// Two builds' serving-hop rigs in ONE process, timed in alternating blocks (a load swing hits both alike; docs/LIMITS.md
// "Session 20"). Usage: node scripts/experiments/hop-builds-ab.mjs [lane|libp2p] [reps=4000] [blocks=10] [A=/work/main] [B=.]
// Each build is a checkout with dist/ built (tsc); both load their own copies of the hop path. The slot matters: an A/A
// run (one build in both) gave B a 3-4 % lower p50 and ~10 % less CPU, so run both orders.
import { loadavg } from 'node:os';
const lane = process.argv[2] !== 'libp2p', reps = Number(process.argv[3] ?? 3000), blocks = Number(process.argv[4] ?? 10);
const roots = { A: process.argv[5] ?? '/work/main', B: process.argv[6] ?? new URL('../..', import.meta.url).pathname.replace(/\/$/, '') };
const rigs = {};
for (const [k, r] of Object.entries(roots)) rigs[k] = await (await import(r + '/dist/src/node/serving-bench/bench.js')).openHop('ip' + k, 768, lane);
for (let w = 0; w < 2; w++) for (const k in rigs) for (let i = 0; i < 400; i++) await rigs[k].step();
const acc = { A: { t: [], cpu: 0 }, B: { t: [], cpu: 0 } };
const per = Math.ceil(reps / blocks); const l0 = loadavg()[0];
for (let b = 0; b < blocks; b++) for (const k of b % 2 ? ['B', 'A'] : ['A', 'B']) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < per; i++) { const t0 = performance.now(); await rigs[k].step(); acc[k].t.push(performance.now() - t0); }
  const c = process.cpuUsage(c0); acc[k].cpu += c.user + c.system;
}
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(p * s.length)].toFixed(3); };
for (const k in acc) console.log(`${k} ${roots[k].padEnd(20)} ${lane ? 'lane' : 'libp2p'} p50 ${q(acc[k].t, 0.5)} p90 ${q(acc[k].t, 0.9)} p99 ${q(acc[k].t, 0.99)} ms cpu/step ${(acc[k].cpu / acc[k].t.length).toFixed(0)} us onLane ${rigs[k].onLane()} load ${((l0 + loadavg()[0]) / 2).toFixed(1)}`);
const { tcpRtt } = await import(roots.B + '/dist/src/node/serving-bench/bench.js');
if (typeof tcpRtt === 'function') console.log(`raw tcp ping-pong of ${768 * 4} bytes p50 ${q(await tcpRtt(768 * 4, 2000), 0.5)} ms`);
for (const k in rigs) await rigs[k].close();
process.exit(0);
