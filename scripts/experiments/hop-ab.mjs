// The serving hop's [1, 768] step on libp2p and on the lane (docs/LIMITS.md "Session 19").
// Usage (after tsc): node scripts/experiments/hop-ab.mjs [mode=ab|cold] [reps=400] [order=libp2p,lane]
//   ab:   both rigs set up and warmed, alternating blocks (what the bench's serving-hop does now), 3 runs
//   cold: session 18's bench order: one rig, its 20-step warm-up, `reps` steps, then the other rig the same way
import { loadavg } from 'node:os';
const R = new URL('../../dist/src/', import.meta.url).href;
const { openHop, hopRttAB } = await import(R + 'node/serving-bench/bench.js');
const mode = process.argv[2] ?? 'ab', reps = Number(process.argv[3] ?? 400);
const order = (process.argv[4] ?? 'libp2p,lane').split(',');
const p = (xs, q) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(q * s.length)].toFixed(3); };
const show = (w, r) => console.log(`${w.padEnd(6)} p50 ${p(r.times, 0.5)} ms p90 ${p(r.times, 0.9)} ms cpu ${r.cpuUs} us/step frames/step ${r.framesOutPerStep ?? '-'} out ${r.framesInPerStep ?? '-'} in, load ${loadavg()[0].toFixed(2)}`);
if (mode === 'cold') {
  for (const w of order) {
    const rig = await openHop('hopab', 768, w === 'lane');
    for (let i = 0; i < 20; i++) await rig.step();
    const times = []; const c0 = process.cpuUsage();
    for (let i = 0; i < reps; i++) { const t0 = performance.now(); await rig.step(); times.push(performance.now() - t0); }
    const c = process.cpuUsage(c0);
    show(w, { times, cpuUs: Math.round((c.user + c.system) / reps) });
    await rig.close();
  }
} else {
  for (let k = 0; k < 3; k++) { const r = await hopRttAB('hopab', 768, reps); show('libp2p', r.libp2p); show('lane', r.lane); }
}
process.exit(0);
