#!/usr/bin/env node
// The lane layer alone (no RPC, no libp2p), two builds in one process: for each build a Lane pair on a 127.0.0.1
// socket pair (as test/unit/p2p/lane.test.ts makes it), a sink handler that reads and drops, then alternating
// blocks (order flipped each pair) of `--msgs` messages of `--bytes` each, 4 streams at a time, each stream opened,
// written and closed as a unary call's request is. Prints MiB/s and CPU µs per MiB (both ends: this process) and garbage
// collections per block and the median B/A ratios. Usage (after tsc):
//   node scripts/experiments/lane-stream-pair.mjs --a OLD_DIST --b NEW_DIST [--bytes 1048576] [--msgs 64] [--pairs 8]
import { randomBytes } from 'node:crypto';
import { createServer, connect } from 'node:net';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

const { values: a } = parseArgs({ options: { a: { type: 'string' }, b: { type: 'string' }, bytes: { type: 'string', default: String(1 << 20) }, msgs: { type: 'string', default: '64' }, pairs: { type: 'string', default: '8' } } });
const size = Number(a.bytes), msgs = Number(a.msgs), pairs = Number(a.pairs), MiB = 1 << 20;
async function socketPair() {
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise((r) => server.once('connection', r));
  const c = connect(server.address().port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  const s = await accepted;
  server.close();
  return [c, s];
}
async function setup(dist) {
  const R = pathToFileURL(resolve(dist)).href + '/src/p2p/lane/';
  const { Lane } = await import(R + 'lane.js');
  const { Sealer, Opener } = await import(R + 'aead.js');
  const { LANE_DEFAULTS } = await import(R + 'manager.js');
  const [cs, ss] = await socketPair();
  const k1 = randomBytes(32), k2 = randomBytes(32);
  const cap = 4 + LANE_DEFAULTS.maxFramePlainBytes + 16;
  const sink = async (s) => { for await (const c of s) void c; await s.close(); };
  const handlerOf = (p) => (p === '/sink' ? { handler: sink, maxInbound: 64 } : undefined);
  const limits = { ...LANE_DEFAULTS };
  const mk = (socket, role, sk, ok) => new Lane({ socket, role, peer: role, remoteAddr: 'x', sealer: new Sealer(sk, cap), opener: new Opener(ok), limits, handlerOf, onClose: () => {} });
  const client = mk(cs, 'client', k1, k2), server = mk(ss, 'server', k2, k1);
  await client.whenReady(); await server.whenReady();
  const msg = Buffer.alloc(size, 3);
  const one = async () => {
    const s = await client.openStream('/sink');
    const done = (async () => { for await (const c of s) void c; })();
    if (!s.send(msg)) await s.onDrain();
    await s.close();
    await done;
  };
  return { one, close: () => { client.close(); server.close(); } };
}
const ways = { A: await setup(a.a), B: await setup(a.b) };
// garbage collections (count and ms) during each block, charged to the block's build
let gcN = 0, gcMs = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) { gcN++; gcMs += e.duration; } }).observe({ entryTypes: ['gc'] });
const block = async (w) => {
  await new Promise((r) => setImmediate(r));
  gcN = 0; gcMs = 0;
  const c0 = process.cpuUsage(), t0 = performance.now();
  await Promise.all(Array.from({ length: 4 }, async () => { for (let i = 0; i < msgs / 4; i++) await ways[w].one(); }));
  const ms = performance.now() - t0, c = process.cpuUsage(c0);
  await new Promise((r) => setImmediate(r));
  return { mibs: (msgs * size) / MiB / (ms / 1000), cpu: (c.user + c.system) / ((msgs * size) / MiB), gcN, gcMs };
};
for (const w of ['A', 'B']) for (let i = 0; i < 3; i++) await block(w);
const r = { A: [], B: [] };
for (let p = 0; p < pairs; p++) for (const w of p % 2 ? ['B', 'A'] : ['A', 'B']) r[w].push(await block(w));
const med = (xs) => [...xs].sort((p, q) => p - q)[(xs.length - 1) >> 1];
const f = (v) => v.toFixed(0);
for (const w of ['A', 'B']) console.log(`${w} MiB/s ${r[w].map((x) => f(x.mibs)).join('/')} (median ${f(med(r[w].map((x) => x.mibs)))}); CPU µs/MiB ${r[w].map((x) => f(x.cpu)).join('/')} (median ${f(med(r[w].map((x) => x.cpu)))}); GCs per block ${r[w].map((x) => x.gcN).join('/')}, GC ms ${r[w].map((x) => f(x.gcMs)).join('/')}`);
console.log(`B/A MiB/s ratio median ${med(r.A.map((x, i) => r.B[i].mibs / x.mibs)).toFixed(3)}, CPU ratio median ${med(r.A.map((x, i) => r.B[i].cpu / x.cpu)).toFixed(3)}; load ${loadavg().map((v) => v.toFixed(1)).join(' ')}`);
ways.A.close(); ways.B.close();
process.exit(0);
