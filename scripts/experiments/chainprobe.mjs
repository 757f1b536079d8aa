#!/usr/bin/env node
// Where a token's time goes in a chain of hops (issue 8 §5, chain_ratio_4). Usage (build first):
//   node scripts/experiments/chainprobe.mjs [--hops 1,4] [--tokens 200] [--threads 2] [--prof DIR]
// --prof DIR writes a CPU profile of the main thread over each timed decode (DIR/chain-N.cpuprofile).
// The bench's chain (src/node/serving-bench/bench.ts: the 12x768 preset, each hop its own libp2p node and compute
// worker, an entry node holding no layers, all in this process, deployed background pace) and, per decoded token,
// the CPU time of each thread of the process from /proc/self/task (the main thread runs the entry and every hop's
// libp2p and RPC; the rest are the compute workers and their kernel pools), beside the entry's view of each hop's
// decode step: its wall time and the compute time the hop stated (its worker's answer, messages to it included).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { quantile, threadCpu } from './thread-cpu.mjs';
import { presetConfig } from '../../dist/src/model/index.js';
import { bundledGenesis } from '../../dist/src/node/genesis.js';
import { startChain, decode, evenSpans } from '../../dist/src/node/serving-bench/bench.js';

const { values: args } = parseArgs({ options: { hops: { type: 'string', default: '1,4' }, tokens: { type: 'string', default: '200' }, threads: { type: 'string', default: '2' }, prof: { type: 'string' } } });


const q = quantile;

const config = presetConfig('12x768');
const networkId = bundledGenesis().networkId;
const tokens = Number(args.tokens);
for (const n of args.hops.split(',').map(Number)) {
  const chain = await startChain(networkId, config, evenSpans(config.num_hidden_layers, n), Number(args.threads), 'deployed');
  try {
    await decode(chain, config, 8);
    // the nodes' background (heartbeats, gossip, DHT) on the main thread while nothing is asked of the chain, taken
    // out of the per-token figure below (it would be charged to each token more the slower the chain runs)
    const i0 = threadCpu().get(String(process.pid))?.ms ?? 0;
    const iw = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const idleMainMsPerS = ((threadCpu().get(String(process.pid))?.ms ?? 0) - i0) / ((performance.now() - iw) / 1000);
    const steps = [];
    let session;
    if (args.prof !== undefined) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
    }
    const t0 = threadCpu();
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    const r = await decode(chain, config, tokens, { onStepTimed: (peer, wall, comp) => steps.push({ peer, wall, comp: comp ?? NaN }) });
    const wall = performance.now() - w0;
    const c = process.cpuUsage(c0);
    const t1 = threadCpu();
    if (session !== undefined) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(`${args.prof}/chain-${n}.cpuprofile`, JSON.stringify(profile));
      session.disconnect();
    }
    const per = [];
    for (const [tid, a] of t1) {
      const d = a.ms - (t0.get(tid)?.ms ?? 0);
      if (d > 0) per.push({ tid, comm: a.comm, ms: d });
    }
    per.sort((x, y) => y.ms - x.ms);
    const main = per.find((x) => x.tid === String(process.pid))?.ms ?? 0;
    const all = per.reduce((a, x) => a + x.ms, 0);
    const T = r.times.length;
    console.log(`== ${n} hop(s): ${r.tokS.toFixed(1)} tok/s (${(1000 / r.tokS).toFixed(2)} ms/token), ${T} tokens, wall ${wall.toFixed(0)} ms, load ${loadavg()[0].toFixed(2)}`);
    const mainNet = (main - (idleMainMsPerS * wall) / 1000) / T;
    console.log(`   process CPU ${((c.user + c.system) / 1000 / T).toFixed(2)} ms/token; main thread (entry + hops' libp2p/RPC) ${(main / T).toFixed(2)} ms/token, ${mainNet.toFixed(2)} without its idle ${idleMainMsPerS.toFixed(1)} ms/s (${(mainNet / n).toFixed(2)} per hop); other threads ${((all - main) / T).toFixed(2)} ms/token`);
    console.log(`   threads (ms/token): ${per.slice(0, 14).map((x) => `${x.comm}${x.tid === String(process.pid) ? '*' : ''} ${(x.ms / T).toFixed(2)}`).join(', ')}`);
    const byPeer = new Map();
    for (const s of steps) (byPeer.get(s.peer) ?? byPeer.set(s.peer, []).get(s.peer)).push(s);
    for (const h of chain.hops) {
      const ss = byPeer.get(h.peerId) ?? [];
      const rest = ss.map((s) => s.wall - s.comp);
      console.log(`   hop [${h.span.start}, ${h.span.end}): step wall p50 ${q(ss.map((s) => s.wall), 0.5).toFixed(3)} ms, hop compute p50 ${q(ss.map((s) => s.comp), 0.5).toFixed(3)} ms, rest (RPC round trip + waits) p50 ${q(rest, 0.5).toFixed(3)} p90 ${q(rest, 0.9).toFixed(3)} ms`);
    }
  } finally {
    await chain.close();
  }
}
process.exit(0);
