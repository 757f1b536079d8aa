// Session 18 (issue 10 §4): what the decode's read bound is on this host. (1) Sweeps the per-thread buffer size of
// the bench's ReadProbe (native readStream, AVX-512 loads, workers pinned); (2) compares the readers interleaved
// (1, 2, 4 streams per thread and the old memcmp); (3) times passes right after a buffer was read vs after other
// memory was streamed in between. Wall GB/s (all bytes ÷ latest end − earliest start) and per CPU-second.
//   node scripts/experiments/read-bound.mjs [threads=2] [sizes=4,8,16,32,64,128,256] [rounds=5] [order=sweep,readers,pin,again]
// Session 22: the phases run in the order given (the lead saw the last two read 28–36 GB/s after 56–64 in the first
// two: the order tells time from phase), each line stamped with the time and per CPU-second figures beside the wall.
import { loadavg } from 'node:os';
import { ReadProbe } from '../../dist/src/compute/llamacpp/bench.js';

const threads = Number(process.argv[2] ?? 2);
const sizes = (process.argv[3] ?? '4,8,16,32,64,128,256').split(',').filter((x) => x !== '').map(Number);
const rounds = Number(process.argv[4] ?? 5);
const order = (process.argv[5] ?? 'sweep,readers,pin,again').split(',');
const at = () => new Date().toISOString().slice(11, 19);
const gb = (x) => (x / 1e9).toFixed(1);
const la = () => loadavg()[0].toFixed(2);
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const stats = (xs) => `best ${gb(Math.max(...xs))} median ${gb(med(xs))} min ${gb(Math.min(...xs))}`;
const phases = {};
phases.sweep = async () => {
for (const mib of sizes) {
  const p = await ReadProbe.start(threads, mib);
  try {
    const reps = Math.max(1, Math.round(256 / mib));
    await p.pass(reps);
    const xs = [];
    const cs = [];
    for (let i = 0; i < 9; i++) {
      const r = await p.pass(reps);
      xs.push(r.bps);
      cs.push(r.cpuBps);
    }
    console.log(`size ${mib} MiB × ${threads}: wall ${stats(xs)} GB/s; per CPU-s median ${gb(med(cs))} (load ${la()})`);
  } finally {
    await p.close();
  }
}
};
phases.readers = async () => {
{
  const p = await ReadProbe.start(threads, 128);
  try {
    const kinds = [1, 2, 4, 'memcmp'];
    const w = new Map(kinds.map((k) => [k, []]));
    const c = new Map(kinds.map((k) => [k, []]));
    for (const k of kinds) await p.pass(1, k);
    for (let r = 0; r < rounds; r++)
      for (const k of kinds) {
        const x = await p.pass(2, k);
        w.get(k).push(x.bps);
        c.get(k).push(x.cpuBps);
      }
    for (const k of kinds) console.log(`reader ${k === 'memcmp' ? 'memcmp (old)' : `${k} stream(s)`}, 128 MiB × ${threads}: wall ${stats(w.get(k))} GB/s; per CPU-s ${stats(c.get(k))} (load ${la()})`);
  } finally {
    await p.close();
  }
}
};
phases.pin = async () => {
{
  // pinned (worker i on CPU i for the pass) or not, interleaved
  const p = await ReadProbe.start(threads, 128);
  try {
    const w = { true: [], false: [] };
    const c = { true: [], false: [] };
    for (let r = 0; r < 2 * rounds; r++)
      for (const pin of [true, false]) {
        const x = await p.pass(1, ReadProbe.STREAMS, pin);
        w[pin].push(x.bps);
        c[pin].push(x.cpuBps);
      }
    for (const pin of [true, false]) console.log(`${pin ? 'pinned' : 'not pinned'}, ${ReadProbe.STREAMS} streams, 128 MiB × ${threads}: wall ${stats(w[pin])} GB/s; per CPU-s ${stats(c[pin])} (load ${la()})`);
  } finally {
    await p.close();
  }
}
};
phases.again = async () => {
{
  // time since touched: a 64 MiB buffer read again at once (hot) vs after 256 MiB per thread of other reads (cold)
  const a = await ReadProbe.start(threads, 64);
  const b = await ReadProbe.start(threads, 256);
  try {
    const hot = [];
    const cold = [];
    const hc = [];
    const cc = [];
    for (let i = 0; i < 2 * rounds; i++) {
      await a.pass(1);
      const h = await a.pass(1);
      hot.push(h.bps);
      hc.push(h.cpuBps);
      await b.pass(1);
      const x = await a.pass(1);
      cold.push(x.bps);
      cc.push(x.cpuBps);
    }
    console.log(`64 MiB × ${threads} read again at once: ${stats(hot)} GB/s (per CPU-s ${stats(hc)}); after 256 MiB × ${threads} of other reads: ${stats(cold)} GB/s (per CPU-s ${stats(cc)}) (load ${la()})`);
  } finally {
    await a.close();
    await b.close();
  }
}
};
for (const ph of order) {
  if (phases[ph] === undefined) throw new Error(`unknown phase ${ph}`);
  console.log(`-- ${ph} from ${at()}`);
  await phases[ph]();
}
