// The serving hop with the hop in a child process (src/node/serving-bench/hop-2p.ts), beside raw TCP to the same
// child. Usage (after tsc): node scripts/experiments/hop-2p.mjs [warm=3000] [reps=2000] [runs=2] [lane|libp2p]
// HOP_2P_CHILD_ARGS='--cpu-prof --cpu-prof-dir=DIR' passes node flags to the hop's process (profile both sides with
// `node --cpu-prof --cpu-prof-dir=DIR scripts/experiments/hop-2p.mjs ...`).
import { loadavg } from 'node:os';
const R = new URL('../../dist/src/', import.meta.url).href;
const { hopRtt2p } = await import(R + 'node/serving-bench/hop-2p.js');
const warm = Number(process.argv[2] ?? 3000), reps = Number(process.argv[3] ?? 2000), runs = Number(process.argv[4] ?? 2), lane = (process.argv[5] ?? 'lane') === 'lane';
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(p * s.length)].toFixed(3); };
for (let k = 0; k < runs; k++) {
  const r = await hopRtt2p('hop2p', 768, reps, warm, lane, 6, (process.env.HOP_2P_CHILD_ARGS ?? '').split(' ').filter((a) => a !== ''));
  console.log(`2p ${r.onLane ? 'lane' : 'libp2p'} hop p50 ${q(r.hop, 0.5)} p90 ${q(r.hop, 0.9)} ms, tcp p50 ${q(r.tcp, 0.5)} ms, ratio ${(q(r.hop, 0.5) / q(r.tcp, 0.5)).toFixed(2)}, cpu/step ${r.hopCpuUs} us (hop ${r.hopServerCpuUs}), load ${loadavg()[0].toFixed(1)}`);
}
process.exit(0);
