#!/usr/bin/env node
// Session 18 (issue 10 §4): the decode's share of the read bound, paired: 12x768 batch-1 cached decode on 2
// threads in this process (no worker, no llama.cpp), blocks of 64 steps, each right after a sample of the bench's
// read bound (ReadProbe.sample(3): bound, block, bound, block, …), share = tok/s of the block × decodeReadBytes ÷
// that bound. With two checkouts, their builds alternate block by block (order swapped every round), each block
// after its own bound sample: an A/B of the share that the bound's swings between minutes do not decide.
//   nice -n -20 node scripts/experiments/decode-share.mjs [rounds=7] [weights=f32,int8] [rootA] [rootB]
import { loadavg } from 'node:os';
import { resolve } from 'node:path';

const rounds = Number(process.argv[2] ?? 7);
const weights = (process.argv[3] ?? 'f32,int8').split(',');
const roots = process.argv.slice(4).map((r) => resolve(r));
if (roots.length === 0) roots.push(resolve('.'));
const PROMPT = 8;
const STEPS = 64;
const { ReadProbe, decodeReadBytes } = await import(`${resolve('.')}/dist/src/compute/llamacpp/bench.js`);
const builds = [];
for (const root of roots) {
  const d = (p) => import(`${root}/dist/src/${p}`);
  const m = { ...(await d('tensor/index.js')), ...(await d('model/shard.js')), ...(await d('model/kv-cache.js')), ...(await d('model/presets.js')) };
  const config = m.presetConfig('12x768');
  const { backend } = await m.selectBackend({ backend: 'native', threads: 2 });
  const f32 = new m.LlamaShard({ config, backend, seed: 0 });
  builds.push({ root, m, config, sh: { f32, int8: weights.includes('int8') ? f32.quantized() : undefined } });
}
const config = builds[0].config;
const V = config.vocab_size;
function block(b, w) {
  const { m, sh, config } = b;
  const s = sh[w];
  const cache = new m.KVCache(config, { span: s.span, batch: 1, maxLen: PROMPT + STEPS + 1 });
  let l = s.forward(Int32Array.from({ length: PROMPT }, (_, i) => (i * 131 + 1) % V), 1, PROMPT, { cache });
  let tok = 0;
  for (let j = 1; j < V; j++) if (l[(PROMPT - 1) * V + j] > l[(PROMPT - 1) * V + tok]) tok = j;
  const t0 = performance.now();
  for (let i = 0; i < STEPS; i++) {
    l = s.forward(Int32Array.of(tok), 1, 1, { cache });
    tok = 0;
    for (let j = 1; j < V; j++) if (l[j] > l[tok]) tok = j;
  }
  return STEPS / ((performance.now() - t0) / 1000);
}
const probe = await ReadProbe.start(2, 128);
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const res = builds.map(() => Object.fromEntries(weights.map((w) => [w, { share: [], bound: [], tok: [] }])));
try {
  for (const b of builds) for (const w of weights) block(b, w);
  await probe.sample(1);
  for (let r = 0; r < rounds; r++) {
    let line = `round ${r} (load ${loadavg()[0].toFixed(1)})`;
    for (const w of weights) {
      const bytes = decodeReadBytes(config, w, PROMPT, STEPS).total;
      const order = builds.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      for (const i of order) {
        const bound = (await probe.sample(3)).bps;
        const tok = block(builds[i], w);
        const share = (tok * bytes) / bound;
        res[i][w].share.push(share);
        res[i][w].bound.push(bound / 1e9);
        res[i][w].tok.push(tok);
        line += ` | ${w}${builds.length > 1 ? `[${i}]` : ''} ${tok.toFixed(1)} tok/s, bound ${(bound / 1e9).toFixed(1)}, share ${(100 * share).toFixed(1)} %`;
      }
    }
    console.log(line);
  }
} finally {
  await probe.close();
}
for (const w of weights) {
  const bytes = decodeReadBytes(config, w, PROMPT, STEPS);
  builds.forEach((b, i) => {
    const x = res[i][w];
    console.log(
      `${w} ${b.root}: ${(bytes.total / 1e6).toFixed(1)} MB a token; share median ${(100 * med(x.share)).toFixed(1)} % (${(100 * Math.min(...x.share)).toFixed(1)}–${(100 * Math.max(...x.share)).toFixed(1)}), ` +
        `tok/s median ${med(x.tok).toFixed(1)}, bound min/median/max ${Math.min(...x.bound).toFixed(1)}/${med(x.bound).toFixed(1)}/${Math.max(...x.bound).toFixed(1)} GB/s`,
    );
  });
}
