#!/usr/bin/env node
// Paired A/B of two builds' direct data lanes in one process (docs/LIMITS.md "Session 21: lane bulk"): for each
// build two libp2p nodes, their lane managers and a unary echo server, then alternating blocks (order flipped each
// pair) of `--per` calls of `--bytes` each with 4 in flight, as the p2p-rpc bench's lane figure. Both builds see
// the same moments of the machine's load. Usage (after tsc):
//   node scripts/experiments/lane-bulk-pair.mjs --a OLD_DIST --b NEW_DIST [--bytes 1048576] [--pairs 6] [--per 40]
//     [--a-opts JSON] [--b-opts JSON]   (LaneManager options of each side, e.g. '{"writeHighWaterBytes":4194304}')
// Prints per block MiB/s and CPU µs per call (this process: both ends), and the median of the B/A ratios.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

const { values: a } = parseArgs({ options: { a: { type: 'string' }, b: { type: 'string' }, bytes: { type: 'string', default: String(1 << 20) }, pairs: { type: 'string', default: '6' }, per: { type: 'string', default: '40' }, 'a-opts': { type: 'string', default: '{}' }, 'b-opts': { type: 'string', default: '{}' } } });
const size = Number(a.bytes), pairs = Number(a.pairs), per = Number(a.per), PIPELINE = 4, MiB = 1 << 20;
async function setup(dist, laneOpts) {
  const R = pathToFileURL(resolve(dist)).href + '/src/';
  const { createLibp2pNetwork } = await import(R + 'p2p/libp2p-node.js');
  const { LaneManager } = await import(R + 'p2p/lane/manager.js');
  const { RpcNode } = await import(R + 'protocols/rpc/service.js');
  const methods = await import(R + 'protocols/methods.js');
  const { echoHandler } = await import(R + 'protocols/handlers/echo.js');
  const { fp32Tensor, tensorToPb } = await import(R + 'protocols/tensor-wire.js');
  const { protocolPrefix, laneProtocolId } = await import(R + 'protocols/ids.js');
  const mk = async () => { const n = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: protocolPrefix('bench'), listen: ['/ip4/127.0.0.1/tcp/0'], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false }); await n.start(); return n; };
  const s = await mk(), c = await mk();
  const ls = new LaneManager(s, laneProtocolId('bench'), { listenHost: '127.0.0.1', ...laneOpts }), lc = new LaneManager(c, laneProtocolId('bench'), { listenHost: '127.0.0.1', ...laneOpts });
  await ls.start(); await lc.start();
  const srv = new RpcNode({ network: s, networkId: 'bench', lanes: ls });
  await srv.handle(methods.echo, echoHandler);
  const cli = new RpcNode({ network: c, networkId: 'bench', lanes: lc });
  const peer = await c.dial(s.multiaddrs()[0]);
  const x = new Float32Array(size / 4);
  for (let i = 0; i < x.length; i += 1024) x[i] = i;
  const req = { payload: new Uint8Array(0), tensor: tensorToPb(fp32Tensor(x, [size / 4])), replyWithTensor: false };
  let failed = 0;
  const call = async () => { try { const r = await cli.call(peer, methods.echo, req); if (r.receivedBytes !== BigInt(size)) throw new Error('short'); } catch { failed++; } };
  return { call, lanes: lc, failed: () => failed, stop: async () => { await cli.close(); await srv.close(); await lc.stop(); await ls.stop(); await c.stop(); await s.stop(); } };
}
const ways = { A: await setup(a.a, JSON.parse(a['a-opts'])), B: await setup(a.b, JSON.parse(a['b-opts'])) };
// garbage collections (count and ms) during each block, charged to the block's build
let gcN = 0, gcMs = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) { gcN++; gcMs += e.duration; } }).observe({ entryTypes: ['gc'] });
const block = async (w) => {
  const each = Math.ceil(per / PIPELINE);
  await new Promise((r) => setImmediate(r));
  gcN = 0; gcMs = 0;
  const c0 = process.cpuUsage(), t0 = performance.now();
  await Promise.all(Array.from({ length: PIPELINE }, async () => { for (let i = 0; i < each; i++) await ways[w].call(); }));
  const ms = performance.now() - t0, c = process.cpuUsage(c0);
  await new Promise((r) => setImmediate(r));
  return { mibs: (PIPELINE * each * size) / MiB / (ms / 1000), cpu: (c.user + c.system) / (PIPELINE * each), gcN, gcMs };
};
for (const w of ['A', 'B']) for (let i = 0; i < 3; i++) await block(w);
const r = { A: [], B: [] };
for (let p = 0; p < pairs; p++) for (const w of p % 2 ? ['B', 'A'] : ['A', 'B']) r[w].push(await block(w));
const med = (xs) => [...xs].sort((p, q) => p - q)[(xs.length - 1) >> 1];
const f = (v) => v.toFixed(0);
for (const w of ['A', 'B']) console.log(`${w} MiB/s ${r[w].map((x) => f(x.mibs)).join('/')} (median ${f(med(r[w].map((x) => x.mibs)))}); CPU µs/call ${r[w].map((x) => f(x.cpu)).join('/')} (median ${f(med(r[w].map((x) => x.cpu)))}); GCs per block ${r[w].map((x) => x.gcN).join('/')}, GC ms ${r[w].map((x) => f(x.gcMs)).join('/')}; failed ${ways[w].failed()}; lanes up ${ways[w].lanes.stats().lanesUp}`);
console.log(`B/A MiB/s ratio median ${med(r.A.map((x, i) => r.B[i].mibs / x.mibs)).toFixed(3)}, CPU ratio median ${med(r.A.map((x, i) => r.B[i].cpu / x.cpu)).toFixed(3)}; load ${loadavg().map((v) => v.toFixed(1)).join(' ')}`);
await ways.A.stop(); await ways.B.stop();
process.exit(0);
