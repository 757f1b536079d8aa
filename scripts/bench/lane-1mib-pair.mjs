// In-process A/B for issue 8's 1 MiB lane RPC: two builds (or one build with two AES-GCM kernels) side by side in
// this process, each with its own bench-server child, blocks alternating A, B, raw TCP (the order rotated each
// round), so that both see the same moments of a loaded machine. As src/protocols/bench.ts's lane way: 1 MiB echo
// requests (no tensor in the reply), 4 in flight.
//   node scripts/bench/lane-1mib-pair.mjs --a DIST[:openssl][:fresh] --b DIST[:openssl][:fresh] [--rounds N] [--calls N]
// ":openssl" runs that side's lanes (client and server) with NEUROSHARD_LANE_GCM=openssl; ":fresh" with
// NEUROSHARD_LANE_READS=fresh (Node's fresh socket read buffers instead of the shared one, session 24).
// Prints one JSON line: per side the median MiB/s, the median block ratio to raw TCP, the median CPU per call of
// client and server, and the per-round pair ratios (B / A) of MiB/s and CPU.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const arg = (k, d) => { const i = process.argv.indexOf(k); return i < 0 ? d : process.argv[i + 1]; };
const rounds = Number(arg('--rounds', '8'));
const calls = Number(arg('--calls', '128'));
const MiB = 1 << 20;
const cpuOf = (pid) => { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return ((+f[11]) + (+f[12])) * 1e4; };
const med = (a) => { const s = [...a].sort((p, q) => p - q); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const r3 = (v) => Math.round(v * 1000) / 1000;

async function side(spec) {
  const [d, ...opts] = spec.split(':');
  const dist = resolve(d);
  const openssl = opts.includes('openssl');
  const fresh = opts.includes('fresh');
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
  setMallocPolicy();
  const env = { ...process.env };
  if (openssl) env.NEUROSHARD_LANE_GCM = 'openssl'; else delete env.NEUROSHARD_LANE_GCM;
  if (fresh) env.NEUROSHARD_LANE_READS = 'fresh'; else delete env.NEUROSHARD_LANE_READS;
  const child = spawn(process.execPath, [`${dist}/src/protocols/bench-server.js`], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const { multiaddr, tcpPort } = JSON.parse(await new Promise((r) => createInterface({ input: child.stdout }).once('line', r)));
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
  // the client's lane (and its sealer) is made at the first call: under this side's kernel choice
  const saved = process.env.NEUROSHARD_LANE_GCM;
  const savedReads = process.env.NEUROSHARD_LANE_READS;
  if (openssl) process.env.NEUROSHARD_LANE_GCM = 'openssl'; else delete process.env.NEUROSHARD_LANE_GCM;
  if (fresh) process.env.NEUROSHARD_LANE_READS = 'fresh'; else delete process.env.NEUROSHARD_LANE_READS;
  for (let i = 0; i < 20; i++) await call();
  if (saved === undefined) delete process.env.NEUROSHARD_LANE_GCM; else process.env.NEUROSHARD_LANE_GCM = saved;
  if (savedReads === undefined) delete process.env.NEUROSHARD_LANE_READS; else process.env.NEUROSHARD_LANE_READS = savedReads;
  const kernelNow = (() => { const prev = process.env.NEUROSHARD_LANE_GCM; if (openssl) process.env.NEUROSHARD_LANE_GCM = 'openssl'; else delete process.env.NEUROSHARD_LANE_GCM; const k = aeadBackend().kernel ?? null; if (prev === undefined) delete process.env.NEUROSHARD_LANE_GCM; else process.env.NEUROSHARD_LANE_GCM = prev; return k; })();
  const block = async () => {
    const c0 = process.cpuUsage(); const s0 = cpuOf(child.pid); const a = performance.now();
    await Promise.all(Array.from({ length: 4 }, async () => { for (let i = 0; i < calls / 4; i++) await call(); }));
    const ms = performance.now() - a; const c = process.cpuUsage(c0);
    return { mibS: calls / (ms / 1000), client: (c.user + c.system) / calls, server: (cpuOf(child.pid) - s0) / calls };
  };
  const close = async () => { await rpc.close(); await lanes.stop(); await net.stop(); child.stdin.end(); await new Promise((r) => child.once('exit', r)); };
  return { name: spec, kernel: kernelNow, tcpPort, block, close };
}

const A = await side(arg('--a', 'dist'));
const B = await side(arg('--b', 'dist'));
const sock = connect(A.tcpPort, '127.0.0.1'); sock.setNoDelay(true);
await new Promise((r) => sock.once('connect', r));
let acked = 0, sent = 0, waiter;
sock.on('data', (d) => { acked += d.length; waiter?.(); });
const head = Buffer.alloc(4); head.writeUInt32BE(MiB); const body = Buffer.alloc(MiB, 7);
const tcp = async () => { const a = performance.now(); for (let i = 0; i < calls; i++) { sent++; if (!sock.write(head)) await new Promise((r) => sock.once('drain', r)); if (!sock.write(body)) await new Promise((r) => sock.once('drain', r)); while (acked < 8 * sent) await new Promise((r) => (waiter = r)); } return calls / ((performance.now() - a) / 1000); };
await tcp();
const res = { A: [], B: [], tcp: [] };
const order = ['A', 'B', 'tcp'];
for (let r = 0; r < rounds; r++) {
  const o = r % 2 === 0 ? order : ['B', 'A', 'tcp'];
  const rot = o.slice(r % 3).concat(o.slice(0, r % 3));
  for (const w of rot) res[w].push(w === 'tcp' ? await tcp() : await (w === 'A' ? A : B).block());
}
const sum = (k) => ({ build: (k === 'A' ? A : B).name, kernel: (k === 'A' ? A : B).kernel, mib_s: Math.round(med(res[k].map((b) => b.mibS))), ratio: r3(med(res[k].map((b, i) => b.mibS / res.tcp[i]))), client_us: Math.round(med(res[k].map((b) => b.client))), server_us: Math.round(med(res[k].map((b) => b.server))) });
console.log(JSON.stringify({ load: readFileSync('/proc/loadavg', 'utf8').split(' ')[0], rounds, calls, A: sum('A'), B: sum('B'), tcp_mib_s: Math.round(med(res.tcp)),
  pair_mib_s_B_over_A: res.A.map((a, i) => r3(res.B[i].mibS / a.mibS)), pair_cpu_B_over_A: res.A.map((a, i) => r3((res.B[i].client + res.B[i].server) / (a.client + a.server))) }));
sock.destroy();
await A.close(); await B.close();
process.exit(0);
