#!/usr/bin/env node
// 1 MiB unary echo over the direct data lane vs raw TCP, as the p2p-rpc bench measures it (server in a child
// process of the same build, PIPELINE = 4 calls in flight for the lane, raw TCP one at a time), for A/B of two
// builds in back-to-back processes. Usage (after tsc):
//   node scripts/experiments/lane-bulk-ab.mjs [--dist DIR] [--bytes N] [--blocks 4] [--per 50] [--lane-opts JSON]
// --lane-opts: the client's LaneManager options (e.g. '{"writeHighWaterBytes":4194304}').
// Node flags given to this process (--cpu-prof ...) go to the server child too.
// DIR is a build's dist/ (default: this tree's). Prints one JSON line: lane MiB/s per block, raw TCP per block, the
// median block ratio, CPU µs per call (client and server), load.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const { values: a } = parseArgs({ options: { dist: { type: 'string', default: new URL('../../dist', import.meta.url).pathname }, bytes: { type: 'string', default: String(1 << 20) }, blocks: { type: 'string', default: '4' }, per: { type: 'string', default: '48' }, 'lane-opts': { type: 'string', default: '{}' } } });
const dist = resolve(a.dist);
const R = pathToFileURL(dist).href + '/src/';
const { createLibp2pNetwork } = await import(R + 'p2p/libp2p-node.js');
const { LaneManager } = await import(R + 'p2p/lane/manager.js');
const { RpcNode } = await import(R + 'protocols/rpc/service.js');
const methods = await import(R + 'protocols/methods.js');
const { fp32Tensor, tensorToPb } = await import(R + 'protocols/tensor-wire.js');
const { protocolPrefix, laneProtocolId } = await import(R + 'protocols/ids.js');
const size = Number(a.bytes), blocks = Number(a.blocks), per = Number(a.per), PIPELINE = 4, MiB = 1 << 20;
const child = spawn(process.execPath, [...process.execArgv, dist + '/src/protocols/bench-server.js'], { stdio: ['pipe', 'pipe', 'inherit'], detached: false });
const cpuOf = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8'); const s = f.slice(f.lastIndexOf(')') + 2).split(' '); return (Number(s[11]) + Number(s[12])) * 1e4; };
try {
  const hello = await new Promise((res) => createInterface({ input: child.stdout }).once('line', res));
  const { multiaddr, tcpPort } = JSON.parse(hello);
  const net = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: protocolPrefix('bench'), listen: [], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false });
  await net.start();
  const lanes = new LaneManager(net, laneProtocolId('bench'), { listenHost: '127.0.0.1', ...JSON.parse(a['lane-opts']) });
  await lanes.start();
  const rpc = new RpcNode({ network: net, networkId: 'bench', lanes });
  const peer = await net.dial(multiaddr);
  const x = new Float32Array(size / 4);
  for (let i = 0; i < x.length; i += 1024) x[i] = i;
  const req = { payload: new Uint8Array(0), tensor: tensorToPb(fp32Tensor(x, [size / 4])), replyWithTensor: false };
  let failed = 0;
  const call = async () => { try { const r = await rpc.call(peer, methods.echo, req); if (r.receivedBytes !== BigInt(size)) throw new Error('short'); } catch { failed++; } };
  const sock = connect(tcpPort, '127.0.0.1'); sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  let acked = 0, sent = 0, waiter;
  sock.on('data', (d) => { acked += d.length; waiter?.(); });
  const hdr = Buffer.alloc(4); hdr.writeUInt32BE(size); const body = Buffer.alloc(size, 7);
  const tcpSeries = async (n) => { for (let i = 0; i < n; i++) { sent++; if (!sock.write(hdr)) await new Promise((r) => sock.once('drain', r)); if (!sock.write(body)) await new Promise((r) => sock.once('drain', r)); while (acked < 8 * sent) await new Promise((r) => (waiter = r)); } };
  for (let i = 0; i < 8; i++) await call();
  await tcpSeries(8);
  const lane = [], tcp = [], ratio = [];
  let ccpu = 0, scpu = 0, calls = 0;
  for (let b = 0; b < blocks; b++) {
    const one = async (w) => {
      if (w === 'tcp') { const t0 = performance.now(); await tcpSeries(per); tcp.push((per * size) / MiB / ((performance.now() - t0) / 1000)); return; }
      const c0 = process.cpuUsage(), s0 = cpuOf(child.pid), t0 = performance.now();
      const each = Math.ceil(per / PIPELINE);
      await Promise.all(Array.from({ length: PIPELINE }, async () => { for (let i = 0; i < each; i++) await call(); }));
      lane.push((PIPELINE * each * size) / MiB / ((performance.now() - t0) / 1000));
      const c = process.cpuUsage(c0); ccpu += c.user + c.system; scpu += cpuOf(child.pid) - s0; calls += PIPELINE * each;
    };
    for (const w of b % 2 ? ['tcp', 'lane'] : ['lane', 'tcp']) await one(w);
    ratio.push(lane[b] / tcp[b]);
  }
  const med = (xs) => [...xs].sort((p, q) => p - q)[(xs.length - 1) >> 1];
  const r1 = (v) => Math.round(v * 10) / 10;
  console.log(JSON.stringify({ dist, opts: a['lane-opts'], size, lane: lane.map(r1), tcp: tcp.map(r1), ratio: Math.round(med(ratio) * 1000) / 1000, laneMed: r1(med(lane)), cpuClientUs: Math.round(ccpu / calls), cpuServerUs: Math.round(scpu / calls), failed, lanesUp: lanes.stats().lanesUp, load: loadavg()[0].toFixed(1) }));
  sock.destroy();
  await rpc.close(); await lanes.stop(); await net.stop();
} finally {
  child.stdin.end();
  setTimeout(() => { child.kill('SIGKILL'); process.exit(0); }, 3000).unref();
}
