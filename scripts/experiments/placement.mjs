#!/usr/bin/env node
// Session 22 (issue 10, the decode bound): is this VM's memory uniform? The bench's paired bound (ReadProbe) reads a
// buffer each worker allocated for itself; if buffers allocated at different times land on memory of different speed
// (host NUMA, backing), that bound need not be the bandwidth of the decode's weights. In one process, round after
// round in a rotating order, with the same native reader (AVX-512 loads, 2 threads pinned to CPU 0 and 1, each
// thread half of every buffer: addon readArrays):
//   probe4       the bench's ReadProbe (workers, own 128 MiB each, 4 streams, pinned): the old bound
//   w-f32 s1/s4  the 12x768 f32 shard's decode weights (LlamaShard.decodeReadArrays), 1 and 4 streams a thread
//   w-int8 s1/s4 the int8 shard's, likewise
//   r-f32, r-int8 the same bytes merged into back-to-back ranges (LlamaShard.decodeReadRanges)
//   own-A        a 256 MiB buffer this thread allocated at the start (2 MiB pages asked, filled)
//   fresh        a new 256 MiB buffer allocated this round (the last 3 are kept, then freed)
//   dec-f32/int8 64 greedy decode steps of each shard (tok/s × decodeReadBytes → GB/s)
// Each read figure is the best of 3 passes. Prints every round and the medians.
//   nice -n 5 node scripts/experiments/placement.mjs [--rounds 6] [--threads 2] [--root DIR]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';

const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : d;
};
const rounds = Number(opt('--rounds', '6'));
const threads = Number(opt('--threads', '2'));
// --no-decode: reads only (a lighter watch over a longer time); --pause MS between rounds
const noDecode = args.includes('--no-decode');
const pause = Number(opt('--pause', '0'));
const root = resolve(opt('--root', '.'));
const d = (p) => import(`${root}/dist/src/${p}`);
const { LlamaShard } = await d('model/shard.js');
const { generate } = await d('model/generate.js');
const { presetConfig } = await d('model/presets.js');
const { selectBackend } = await d('tensor/index.js');
const { nativeAddonPath } = await d('tensor/backends/native.js');
const { ReadProbe, decodeReadBytes } = await d('compute/llamacpp/bench.js');
const addon = createRequire(import.meta.url)(nativeAddonPath().path);

const config = presetConfig('12x768');
const { backend } = await selectBackend({ backend: 'native', threads });
backend.setThreads(threads);
const gb = (x) => (x / 1e9).toFixed(1);
const la = () => loadavg()[0].toFixed(2);
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const hugeKiB = () => {
  try {
    return readFileSync('/proc/self/smaps_rollup', 'utf8').match(/AnonHugePages:\s+(\d+)/)?.[1] ?? '?';
  } catch {
    return '?';
  }
};
const probe = await ReadProbe.start(threads, 128);
const own = () => {
  const a = new Uint8Array(256 << 20);
  addon.adviseHugePages(a);
  a.fill(7);
  return a;
};
const ownA = own();
console.log(`AnonHugePages after own-A: ${hugeKiB()} kB`);
const f32 = new LlamaShard({ config, backend, seed: 0 });
console.log(`AnonHugePages after the f32 shard: ${hugeKiB()} kB`);
const int8 = f32.quantized();
console.log(`AnonHugePages after the int8 shard: ${hugeKiB()} kB`);
const W = { f32: f32.decodeReadArrays(), int8: int8.decodeReadArrays() };
// the same bytes merged into back-to-back ranges (LlamaShard.decodeReadRanges: what the bench's bound reads)
const R = { f32: f32.decodeReadRanges(), int8: int8.decodeReadRanges() };
const bytesOf = (xs) => xs.reduce((s, x) => s + x.byteLength, 0);
console.log(`weights read: f32 ${(bytesOf(W.f32) / 1e6).toFixed(1)} MB in ${W.f32.length} arrays, int8 ${(bytesOf(W.int8) / 1e6).toFixed(1)} MB in ${W.int8.length}; load ${la()}`);
// best of k passes; per CPU-second (bytes ÷ the threads' mean CPU time: the memory's speed while the threads ran,
// with the descheduling of a loaded machine taken out) kept beside the wall figure in cpuRes
let lastCpu = NaN;
const readBest = (arrays, streams, k = 3) => {
  addon.readArrays(arrays, 1, threads, streams, true);
  let best = 0;
  lastCpu = 0;
  for (let i = 0; i < k; i++) {
    const r = addon.readArrays(arrays, 1, threads, streams, true);
    best = Math.max(best, r.bytes / ((r.t1 - r.t0) / 1000));
    lastCpu = Math.max(lastCpu, r.bytes / (r.cpuMs / 1000));
  }
  return best;
};
const PROMPT = 8;
const STEPS = 64;
const prompt = Int32Array.from({ length: PROMPT }, (_, i) => (i * 37 + 5) % config.vocab_size);
const decode = (shard, w) => {
  let tFirst = NaN;
  generate(shard, prompt, { maxTokens: 4, temperature: 0, stopIds: [] });
  const t0 = performance.now();
  generate(shard, prompt, { maxTokens: STEPS + 1, temperature: 0, stopIds: [], onToken: () => { if (Number.isNaN(tFirst)) tFirst = performance.now(); } });
  const t1 = performance.now();
  void t0;
  return (STEPS / ((t1 - tFirst) / 1000)) * decodeReadBytes(config, w, PROMPT, STEPS).total;
};
const fresh = [];
const kinds = {
  probe4: async () => {
    const r = await probe.sample(3);
    lastCpu = r.cpuBps;
    return r.bps;
  },
  probe1: async () => {
    let b = 0;
    lastCpu = 0;
    for (let i = 0; i < 3; i++) {
      const r = await probe.pass(1, 1, true);
      b = Math.max(b, r.bps);
      lastCpu = Math.max(lastCpu, r.cpuBps);
    }
    return b;
  },
  'w-f32 s1': async () => readBest(W.f32, 1),
  'w-f32 s4': async () => readBest(W.f32, 4),
  'w-int8 s1': async () => readBest(W.int8, 1),
  'w-int8 s4': async () => readBest(W.int8, 4),
  'r-f32 s4': async () => readBest(R.f32, 4),
  'r-int8 s1': async () => readBest(R.int8, 1),
  'r-int8 s4': async () => readBest(R.int8, 4),
  'own-A s4': async () => readBest([ownA], 4),
  'fresh s4': async () => {
    fresh.push(own());
    if (fresh.length > 3) fresh.shift();
    return readBest([fresh[fresh.length - 1]], 4);
  },
  'fresh-1 s4': async () => (fresh.length >= 2 ? readBest([fresh[fresh.length - 2]], 4) : NaN),
  'dec-f32': async () => decode(f32, 'f32'),
  'dec-int8': async () => decode(int8, 'int8'),
};
if (noDecode) {
  delete kinds['dec-f32'];
  delete kinds['dec-int8'];
  delete kinds['w-f32 s1'];
  delete kinds['w-int8 s1'];
  delete kinds['fresh-1 s4'];
}
const names = Object.keys(kinds);
const res = new Map(names.map((n) => [n, []]));
const cpuRes = new Map(names.map((n) => [n, []]));
try {
  for (let r = 0; r < rounds; r++) {
    const order = names.map((_, i) => names[(i + r * 3) % names.length]);
    const line = [];
    for (const n of order) {
      lastCpu = NaN;
      const x = await kinds[n]();
      res.get(n).push(x);
      cpuRes.get(n).push(lastCpu);
      line.push(`${n} ${gb(x)}${Number.isNaN(lastCpu) ? '' : `/${gb(lastCpu)}`}`);
    }
    console.log(`round ${r} ${new Date().toISOString().slice(11, 19)} (load ${la()}): ${line.join(', ')} GB/s (wall/per CPU-s)`);
    if (pause > 0) await new Promise((res) => setTimeout(res, pause));
  }
  console.log('medians (GB/s; dec-*: a decode token\'s decodeReadBytes × tok/s):');
  for (const n of names) {
    const c = cpuRes.get(n).filter((x) => !Number.isNaN(x));
    console.log(`  ${n.padEnd(11)} ${gb(med(res.get(n).filter((x) => !Number.isNaN(x))))}  [${res.get(n).map(gb).join(' ')}]${c.length > 0 ? `; per CPU-s ${gb(med(c))} [${c.map(gb).join(' ')}]` : ''}`);
  }
  const share = (dec, b) => res.get(dec).map((x, i) => (100 * x) / res.get(b)[i]);
  for (const [dec, w] of noDecode ? [] : [['dec-f32', 'w-f32'], ['dec-int8', 'w-int8']]) {
    for (const b of ['probe4', `${w} s1`, `${w} s4`]) console.log(`  share ${dec} / ${b}: median ${med(share(dec, b)).toFixed(1)} % [${share(dec, b).map((x) => x.toFixed(0)).join(' ')}]`);
  }
} finally {
  await probe.close();
}
