// A/B of one unary echo call at a time (a stream per call) over a direct data lane vs libp2p, client and server in
// this process, 6 alternating blocks (docs/LIMITS.md "Session 18"). Usage (after tsc): node scripts/experiments/lane-ab.mjs [bytes]
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
const root = new URL('../../dist/src/', import.meta.url).href;
const { createLibp2pNetwork } = await import(root + 'p2p/libp2p-node.js');
const { LaneManager } = await import(root + 'p2p/lane/manager.js');
const { RpcNode } = await import(root + 'protocols/rpc/service.js');
const methods = await import(root + 'protocols/methods.js');
const { echoHandler } = await import(root + 'protocols/handlers/echo.js');
const { fp32Tensor, tensorToPb } = await import(root + 'protocols/tensor-wire.js');
const { protocolPrefix, laneProtocolId } = await import(root + 'protocols/ids.js');
const mk = async () => { const n = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: protocolPrefix('bench'), listen: ['/ip4/127.0.0.1/tcp/0'], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false }); await n.start(); return n; };
const a = await mk(), b = await mk();
const la = new LaneManager(a, laneProtocolId('bench'), { listenHost: '127.0.0.1' }), lb = new LaneManager(b, laneProtocolId('bench'), { listenHost: '127.0.0.1' });
await la.start(); await lb.start();
const srv = new RpcNode({ network: a, networkId: 'bench', lanes: la });
await srv.handle(methods.echo, echoHandler);
const ways = { lane: new RpcNode({ network: b, networkId: 'bench', lanes: lb }), libp2p: new RpcNode({ network: b, networkId: 'bench' }) };
const peer = await b.dial(a.multiaddrs()[0]);
const size = Number(process.argv[2] ?? (1 << 20));
const x = new Float32Array(size / 4).fill(0.5);
const req = { payload: new Uint8Array(0), tensor: tensorToPb(fp32Tensor(x, [size / 4])), replyWithTensor: false };
const n = size > 4096 ? 60 : 600;
for (const w of ['lane', 'libp2p']) for (let i = 0; i < 10; i++) await ways[w].call(peer, methods.echo, req);
const res = { lane: [], libp2p: [] }, cpu = { lane: 0, libp2p: 0 }, seq = { lane: [], libp2p: [] };
for (let k = 0; k < 6; k++) for (const w of k % 2 ? ['libp2p', 'lane'] : ['lane', 'libp2p']) {
  const c0 = process.cpuUsage(); const t0 = performance.now();
  for (let i = 0; i < n; i++) { const s = performance.now(); await ways[w].call(peer, methods.echo, req); res[w].push(performance.now() - s); }
  const wall = performance.now() - t0; const c = process.cpuUsage(c0); cpu[w] += (c.user + c.system) / n / 6; seq[w].push((n * size) / 1048576 / (wall / 1000));
}
const p = (xs, q) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(q * s.length)].toFixed(3); };
for (const w of ['lane', 'libp2p']) console.log(`${w.padEnd(6)} ${size} B one at a time: p50 ${p(res[w], 0.5)} ms p90 ${p(res[w], 0.9)} ms; MiB/s per block ${seq[w].map((v) => v.toFixed(0)).join('/')}; CPU ${cpu[w].toFixed(0)} µs per call (both ends)`);
console.log('load', loadavg()[0].toFixed(1), 'lane streams', lb.stats().streamsOut);
process.exit(0);
