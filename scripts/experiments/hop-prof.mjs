// One serving hop's round trip, profiled (session 22, docs/LIMITS.md "Session 22: hop round trip").
// Usage (after tsc): node [--cpu-prof --cpu-prof-dir DIR] scripts/experiments/hop-prof.mjs [reps=5000] [lane|libp2p]
// Warms the lane rig (or libp2p), then runs `reps` round trips and prints wall p50, CPU/step, event-loop turns per step
// (setImmediate ticks counted across the run) and async resources per step; HOP_PROF_DIR=DIR writes a CPU profile of
// the timed round trips only (DIR/timed.cpuprofile).
import { loadavg } from 'node:os';
import { createHook } from 'node:async_hooks';
const R = new URL('../../dist/src/', import.meta.url).href;
const { openHop, tcpRtt } = await import(R + 'node/serving-bench/bench.js');
const reps = Number(process.argv[2] ?? 5000), lane = (process.argv[3] ?? 'lane') === 'lane';
const rig = await openHop('hopprof', 768, lane);
for (let i = 0; i < 4000; i++) await rig.step();
let promises = 0, ticks = 0, other = 0; const types = new Map();
const hook = createHook({ init(_id, type) { if (type === 'PROMISE') promises++; else { other++; types.set(type, (types.get(type) ?? 0) + 1); } } });
let turns = 0, live = true; const turn = () => { turns++; if (live) setImmediate(turn); }; setImmediate(turn);
const countReps = 1000;
hook.enable();
for (let i = 0; i < countReps; i++) await rig.step();
hook.disable();
live = false;
console.log(`per step: promises ${(promises / countReps).toFixed(1)}, other async resources ${(other / countReps).toFixed(2)} ${JSON.stringify(Object.fromEntries([...types].map(([k, v]) => [k, +(v / countReps).toFixed(2)])))}, event-loop turns ${(turns / countReps).toFixed(2)}`);
const profDir = process.env.HOP_PROF_DIR;
let session;
if (profDir) { const { Session } = await import('node:inspector/promises'); session = new Session(); session.connect(); await session.post('Profiler.enable'); await session.post('Profiler.setSamplingInterval', { interval: 50 }); await session.post('Profiler.start'); }
const times = []; const c0 = process.cpuUsage();
for (let i = 0; i < reps; i++) { const t0 = performance.now(); await rig.step(); times.push(performance.now() - t0); }
const c = process.cpuUsage(c0);
if (session) { const { profile } = await session.post('Profiler.stop'); (await import('node:fs')).writeFileSync(profDir + '/timed.cpuprofile', JSON.stringify(profile)); }
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(p * s.length)].toFixed(3); };
console.log(`${lane ? 'lane' : 'libp2p'} p50 ${q(times, 0.5)} p90 ${q(times, 0.9)} ms cpu/step ${((c.user + c.system) / reps).toFixed(0)} us (user ${(c.user / reps).toFixed(0)} sys ${(c.system / reps).toFixed(0)}) load ${loadavg()[0].toFixed(2)}`);
const { hopCommitQueue } = await import(R + 'protocols/hop-commit-queue.js');
console.log(`commitment queue (whole run): ${JSON.stringify(hopCommitQueue().stats)}`);
const t = await tcpRtt(768 * 4, 3000);
console.log(`raw tcp p50 ${q(t, 0.5)} ms`);
await rig.close();
process.exit(0);
