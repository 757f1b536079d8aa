// 3 KiB ping-pong on one stream: a lane stream vs a libp2p (noise + yamux) stream vs raw TCP, alternating blocks, one
// process (docs/LIMITS.md "Session 18"). Usage (after tsc): node scripts/experiments/lane-pingpong.mjs

import { randomBytes } from 'node:crypto';
import { createServer, connect } from 'node:net';
import { loadavg } from 'node:os';
const R = new URL('../../dist/src/', import.meta.url).href;
const { createLibp2pNetwork } = await import(R + 'p2p/libp2p-node.js');
const { LaneManager } = await import(R + 'p2p/lane/manager.js');
const { protocolPrefix, laneProtocolId } = await import(R + 'protocols/ids.js');
const mk = async () => { const n = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: protocolPrefix('pp'), listen: ['/ip4/127.0.0.1/tcp/0'], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false }); await n.start(); return n; };
const a = await mk(), b = await mk();
const la = new LaneManager(a, laneProtocolId('pp'), { listenHost: '127.0.0.1' }), lb = new LaneManager(b, laneProtocolId('pp'), { listenHost: '127.0.0.1' });
await la.start(); await lb.start();
const echo = async (s) => { for await (const c of s) { const u = c instanceof Uint8Array ? c : c.subarray(); if (!s.send(u)) await s.onDrain(); } await s.close(); };
await a.handle('/pp/echo', echo); la.handle('/pp/echo', echo, {});
const peer = await b.dial(a.multiaddrs()[0]);
const ls = await lb.openStream(peer, '/pp/echo');
const ps = await b.openStream(peer, '/pp/echo');
const srv = createServer((s) => { s.setNoDelay(true); s.pipe(s); }); await new Promise(r => srv.listen(0, '127.0.0.1', r));
const tcp = connect(srv.address().port, '127.0.0.1'); tcp.setNoDelay(true); await new Promise(r => tcp.once('connect', r));
const msg = Buffer.alloc(3072, 1);
const block = async (s, n) => { const it = s[Symbol.asyncIterator](); const ts = []; const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) { const t0 = performance.now(); s.send(msg); let got = 0; while (got < 3072) { const r = await it.next(); got += r.value.byteLength; } ts.push(performance.now() - t0); }
  const c = process.cpuUsage(c0); return { ts, cpu: (c.user + c.system) / n }; };
const tcpBlock = async (n) => { const ts = []; const c0 = process.cpuUsage(); for (let i = 0; i < n; i++) { const t0 = performance.now(); await new Promise((res) => { let got = 0; const on = (d) => { got += d.length; if (got >= 3072) { tcp.off('data', on); res(); } }; tcp.on('data', on); tcp.write(msg); }); ts.push(performance.now() - t0); } const c = process.cpuUsage(c0); return { ts, cpu: (c.user + c.system) / n }; };
const all = { lane: [], libp2p: [], tcp: [] }, cpu = { lane: 0, libp2p: 0, tcp: 0 };
await block(ls, 200); await block(ps, 200); await tcpBlock(200);
for (let k = 0; k < 6; k++) for (const w of (k % 2 ? ['libp2p', 'lane', 'tcp'] : ['lane', 'libp2p', 'tcp'])) { const r = w === 'tcp' ? await tcpBlock(500) : await block(w === 'lane' ? ls : ps, 500); all[w].push(...r.ts); cpu[w] += r.cpu / 6; }
const p = (xs, q) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(q * s.length)].toFixed(3); };
for (const w of ['lane', 'libp2p', 'tcp']) console.log(`${w.padEnd(6)} 3 KiB ping-pong p50 ${p(all[w], 0.5)} ms p90 ${p(all[w], 0.9)} ms, CPU ${cpu[w].toFixed(0)} µs per round trip (both ends)`);
console.log('load', loadavg()[0].toFixed(1), JSON.stringify(lb.stats()));
process.exit(0);
