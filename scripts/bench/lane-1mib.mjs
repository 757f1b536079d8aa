// A/B and profiling driver for issue 8's 1 MiB lane RPC (src/protocols/bench.ts's lane way alone): the client in this
// process, bench-server.js of the same build in a child, 1 MiB echo requests (reply without the tensor), 4 in flight,
// alternating with raw TCP request/ack blocks as the bench does.
//   node scripts/bench/lane-1mib.mjs [--dist DIR] [--blocks N] [--calls N] [--prof DIR]
// Prints one JSON line: lane MiB/s per block, raw TCP MiB/s per block, block ratios, CPU per call client/server.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const arg = (k, d) => { const i = process.argv.indexOf(k); return i < 0 ? d : process.argv[i + 1]; };
const dist = resolve(arg('--dist', 'dist'));
const blocks = Number(arg('--blocks', '6'));
const calls = Number(arg('--calls', '64'));
const prof = arg('--prof', undefined);
const noTcp = process.argv.includes('--no-tcp'); // profiling: the lane alone
const imp = (p) => import(pathToFileURL(`${dist}/src/${p}`).href);
await imp('util/polyfill.js');
const { LaneManager } = await imp('p2p/lane/manager.js');
const { createLibp2pNetwork } = await imp('p2p/libp2p-node.js');
const { setMallocPolicy } = await imp('util/malloc-policy.js');
const { laneProtocolId, protocolPrefix } = await imp('protocols/ids.js');
const methods = await imp('protocols/methods.js');
const { RpcNode } = await imp('protocols/rpc/service.js');
const { fp32Tensor, tensorToPb } = await imp('protocols/tensor-wire.js');
const { aeadBackend } = await imp('p2p/lane/aead.js');

const MiB = 1 << 20;
const TICK = 100;
const cpuOf = (pid) => { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return ((+f[11]) + (+f[12])) * 1e6 / TICK; };
setMallocPolicy();
const child = spawn(process.execPath, [...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), `${dist}/src/protocols/bench-server.js`], { stdio: ['pipe', 'pipe', 'inherit'], detached: false });
const hello = await new Promise((r) => createInterface({ input: child.stdout }).once('line', r));
const { multiaddr, tcpPort } = JSON.parse(hello);
const net = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: protocolPrefix('bench'), listen: [], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false });
await net.start();
const lanes = new LaneManager(net, laneProtocolId('bench'), { listenHost: '127.0.0.1' });
await lanes.start();
const rpc = new RpcNode({ network: net, networkId: 'bench', lanes });
const peer = await net.dial(multiaddr);
const x = new Float32Array(MiB / 4);
for (let i = 0; i < x.length; i += 1024) x[i] = i;
const req = { payload: new Uint8Array(0), tensor: tensorToPb(fp32Tensor(x, [MiB / 4])), replyWithTensor: false };
const call = async () => { const r = await rpc.call(peer, methods.echo, req); if (r.receivedBytes !== BigInt(MiB)) throw new Error('short echo'); };
const sock = connect(tcpPort, '127.0.0.1'); sock.setNoDelay(true);
await new Promise((r) => sock.once('connect', r));
let acked = 0, sent = 0, waiter;
sock.on('data', (d) => { acked += d.length; waiter?.(); });
const head = Buffer.alloc(4); head.writeUInt32BE(MiB); const body = Buffer.alloc(MiB, 7);
const tcpSeries = async (n) => { for (let i = 0; i < n; i++) { sent++; if (!sock.write(head)) await new Promise((r) => sock.once('drain', r)); if (!sock.write(body)) await new Promise((r) => sock.once('drain', r)); while (acked < 8 * sent) await new Promise((r) => (waiter = r)); } };
for (let i = 0; i < 20; i++) await call();
await tcpSeries(10);
const lane = [], tcp = [], cc = [], sc = [];
for (let b = 0; b < blocks; b++) {
  for (const w of b % 2 === 0 ? ['lane', 'tcp'] : ['tcp', 'lane']) {
    if (w === 'tcp') {
      if (noTcp) { tcp.push(NaN); continue; } const a = performance.now(); await tcpSeries(calls); tcp.push(calls / ((performance.now() - a) / 1000)); continue; }
    const c0 = process.cpuUsage(); const s0 = cpuOf(child.pid); const a = performance.now();
    await Promise.all(Array.from({ length: 4 }, async () => { for (let i = 0; i < calls / 4; i++) await call(); }));
    lane.push(calls / ((performance.now() - a) / 1000));
    const c = process.cpuUsage(c0); cc.push((c.user + c.system) / calls); sc.push((cpuOf(child.pid) - s0) / calls);
  }
}
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const r1 = (v) => Math.round(v * 10) / 10;
const ratios = lane.map((v, i) => v / tcp[i]);
console.log(JSON.stringify({ dist, aead: aeadBackend().backend, kernel: aeadBackend().kernel ?? null, lane_mib_s: r1(med(lane)), tcp_mib_s: r1(med(tcp)), ratio: Math.round(med(ratios) * 1000) / 1000, client_us: Math.round(med(cc)), server_us: Math.round(med(sc)), lane: lane.map(r1), tcp: tcp.map(r1), ratios: ratios.map((v) => Math.round(v * 1000) / 1000) }));
sock.destroy();
await rpc.close(); await lanes.stop(); await net.stop();
child.stdin.end();
await new Promise((r) => child.once('exit', r));
process.exit(0);
