#!/usr/bin/env node
// What the nodes of a chain do at rest (issue 8, chain_ratio_4). Usage (build first):
//   node scripts/experiments/idleprobe.mjs [--hops 4] [--windows 8] [--window-ms 2000] [--prof DIR] [--ab heartbeats|tagger|secp]
// Starts the bench's chain (src/node/serving-bench/bench.ts, 'deployed' pace), decodes a few tokens as the bench's
// warm-up does, then reports the main thread's and the process's CPU (ms per s of wall time) in consecutive windows,
// so that start-up work (DHT refresh, registry publishes, lane setup) can be told from the steady background.
// --prof DIR writes a CPU profile of the main thread over all the windows (DIR/idle-N.cpuprofile). A wall-clock
// profile on a loaded machine charges preemption to whatever ran last, so shares are checked by switching a part off:
// --ab alternates windows A B B A ... with every node's heartbeats running (A) or stopped (B, `heartbeats`), or
// kad-dht's closest-peer tagger refreshing every 5 s (A, its default) or every 60 s (B, `tagger`), or libp2p's
// secp256k1 work as built (A) or on session 21's path (B, `secp`: every key parsed in pure JS, OpenSSL verify, noble
// sign; src/p2p/fast-secp256k1.ts). Each window's line ends with the key cache's lookups a second (parses of a
// secp256k1 key and libsecp256k1 verifies; none while `secp` B is on) and the 1-minute load.
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { threadCpu } from './thread-cpu.mjs';
import { presetConfig } from '../../dist/src/model/index.js';
import { bundledGenesis } from '../../dist/src/node/genesis.js';
import { startChain, decode, evenSpans } from '../../dist/src/node/serving-bench/bench.js';
import { keyCacheStats, setFastSecp256k1Paths } from '../../dist/src/p2p/fast-secp256k1.js';

const { values: args } = parseArgs({ options: { hops: { type: 'string', default: '4' }, windows: { type: 'string', default: '8' }, 'window-ms': { type: 'string', default: '2000' }, prof: { type: 'string' }, ab: { type: 'string' } } });
// the main thread's CPU time (ns) from the scheduler's account (/proc/thread-self/schedstat: exact; stat's ticks are 10 ms)
const cpuNs = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
const config = presetConfig('12x768');
const networkId = bundledGenesis().networkId;
for (const n of args.hops.split(',').map(Number)) {
  const chain = await startChain(networkId, config, evenSpans(config.num_hidden_layers, n), 2, 'deployed');
  try {
    await decode(chain, config, 4);
    let session;
    if (args.prof !== undefined) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 500 });
      await session.post('Profiler.start');
    }
    const pid = String(process.pid);
    const rows = [];
    const mains = [];
    const ab = { A: [], B: [] };
    const nets = [...chain.hops.map((h) => h.net), chain.entry];
    const taggers = nets.map((x) => x.p2p.libp2p.services.dht.routingTable.closestPeerTagger);
    const setB = (b) => {
      if (args.ab === 'heartbeats') for (const x of nets) b ? x.heartbeat.stop() : x.heartbeat.start();
      if (args.ab === 'secp') setFastSecp256k1Paths({ keyCache: !b, sign: !b, libsecpVerify: !b });
      if (args.ab === 'tagger')
        for (const t of taggers) {
          clearInterval(t.timeout);
          t.timeout = setInterval(() => void t.updatePeerTags().catch(() => {}), b ? 60_000 : 5000);
        }
    };
    for (let w = 0; w < Number(args.windows); w++) {
      const b = args.ab !== undefined && (w % 4 === 1 || w % 4 === 2);
      setB(b);
      const t0 = threadCpu();
      const c0 = process.cpuUsage();
      const k0 = keyCacheStats.hits + keyCacheStats.decompressions;
      const m0 = cpuNs();
      const w0 = performance.now();
      await new Promise((r) => setTimeout(r, Number(args['window-ms'])));
      const mainNs = cpuNs() - m0;
      const keys = keyCacheStats.hits + keyCacheStats.decompressions - k0;
      const s = (performance.now() - w0) / 1000;
      const c = process.cpuUsage(c0);
      const t1 = threadCpu();
      let other = 0;
      const by = new Map();
      for (const [tid, a] of t1) {
        const d = a.ms - (t0.get(tid)?.ms ?? 0);
        if (tid !== pid) other += d;
        if (d > 0) by.set(`${a.comm}${tid === pid ? '*' : ''}`, (by.get(`${a.comm}${tid === pid ? '*' : ''}`) ?? 0) + d);
      }
      mains.push(mainNs / 1e6 / s);
      if (args.ab !== undefined) ab[b ? 'B' : 'A'].push(mainNs / 1e6 / s);
      rows.push(`w${w}${args.ab === undefined ? '' : b ? ' B' : ' A'}: process ${((c.user + c.system) / 1000 / s).toFixed(1)} ms/s, main ${(mainNs / 1e6 / s).toFixed(2)} (schedstat), other threads ${(other / s).toFixed(1)} [${[...by].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${(v / s).toFixed(0)}`).join(', ')}], key lookups ${(keys / s).toFixed(1)}/s, load ${loadavg()[0].toFixed(2)}`);
    }
    if (session !== undefined) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(`${args.prof}/idle-${n}.cpuprofile`, JSON.stringify(profile));
      session.disconnect();
    }
    setB(false);
    const mean = (xs) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
    if (args.ab !== undefined) console.log(`-- ${args.ab}: main thread A (as deployed) ${mean(ab.A).toFixed(2)} ms/s [${ab.A.map((x) => x.toFixed(2)).join(', ')}], B (${{ heartbeats: 'stopped', tagger: '60 s', secp: "session 21's secp256k1" }[args.ab]}) ${mean(ab.B).toFixed(2)} ms/s [${ab.B.map((x) => x.toFixed(2)).join(', ')}]`);
    const sorted = [...mains].sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)];
    console.log(`== ${n} hop(s) (${n + 1} nodes), load ${loadavg()[0].toFixed(2)}: main thread median ${med.toFixed(2)} ms/s, ${(med / (n + 1)).toFixed(2)} ms/s a node\n   ${rows.join('\n   ')}`);
  } finally {
    await chain.close();
  }
}
process.exit(0);
