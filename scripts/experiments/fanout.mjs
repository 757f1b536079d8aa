#!/usr/bin/env node
// What heartbeats cost a node as the network grows (docs/LIMITS.md "Session 30: heartbeat fan-out, measured").
// Usage (build first: npx tsc -p tsconfig.json):
//   node scripts/experiments/fanout.mjs [--n 4,8,16,24,32] [--windows 4] [--window-ms 10000] [--warmup-ms 10000]
//     [--interval-ms 5000] [--conn all|K] [--D 6 --Dlo 4 --Dhi 12 --Dlazy 6 --gossip-factor 0.25 --idontwant 512]
//     [--delivery 2] [--delivery-bytes 300] [--ab heartbeats|none] [--ip-colocation off|on]
// For each N: starts N real nodes of our stack in this process (createNodeNetwork, as the serving bench's
// 'deployed' pace: heartbeats every --interval-ms, gossipsub's heartbeat every second; no lanes, no discovery),
// connects every pair (--conn all) or each node to K random others, waits until every node hears every other's
// heartbeats, warms up, then measures consecutive windows A B B A ...: A with every node's heartbeats published, B
// with none published (the timers paused; every node stays subscribed, so the meshes stay as they are). Per window:
// the main thread's CPU (ms per s of wall time, /proc/thread-self/schedstat: every node runs on this one thread),
// and gossipsub's frames (RPCs sent and received, counted on each node's sendRpc / sendRpcInBatch /
// handleReceivedRpc) by kind: 'hbown' (a heartbeat between its publisher and a peer: gossipsub's flood publish
// sends a node's own message to every subscribed peer it is connected to), 'hb' (a forwarded heartbeat), 'msg'
// (another topic's message), 'ihave', 'idontwant',
// 'iwant', 'ctl' (graft/prune), 'sub'. The cost of heartbeats is A - B; per node per heartbeat in the network it is
// (A - B) / N / (heartbeats published a second). Then a delivery check on a second topic (ledger-like messages:
// --delivery messages of --delivery-bytes from every node, each node must receive every other node's, latency from
// publish to receipt) and heartbeat delivery (accepted / (published x (N - 1)) over the A windows).
// The mesh flags set gossipsub's parameters on every node (p2p/libp2p-node.ts `pubsub.mesh`; --flood 0: publish to
// the mesh only). One JSON line per N
// ('json:' prefix) besides the readable lines.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { keyFromPrivate } from '../../dist/src/identity/index.js';
import { createNodeNetwork } from '../../dist/src/node/network.js';
import { heartbeatTopic, topicId } from '../../dist/src/protocols/ids.js';
import { bundledGenesis } from '../../dist/src/node/genesis.js';

const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '4,8,16,24,32' },
    windows: { type: 'string', default: '4' },
    'window-ms': { type: 'string', default: '10000' },
    'warmup-ms': { type: 'string', default: '10000' },
    'interval-ms': { type: 'string', default: '5000' },
    conn: { type: 'string', default: 'all' },
    D: { type: 'string' },
    Dlo: { type: 'string' },
    Dhi: { type: 'string' },
    Dlazy: { type: 'string' },
    'gossip-factor': { type: 'string' },
    idontwant: { type: 'string' },
    flood: { type: 'string' },
    'ip-colocation': { type: 'string', default: 'off' },
    delivery: { type: 'string', default: '2' },
    'delivery-bytes': { type: 'string', default: '300' },
    ab: { type: 'string', default: 'heartbeats' },
  },
});
const intervalMs = Number(a['interval-ms']);
const mesh = {};
for (const [flag, key] of [['D', 'D'], ['Dlo', 'Dlo'], ['Dhi', 'Dhi'], ['Dlazy', 'Dlazy'], ['gossip-factor', 'gossipFactor'], ['idontwant', 'idontwantMinDataSize']]) {
  if (a[flag] !== undefined) mesh[key] = Number(a[flag]);
}
if (a.flood !== undefined) mesh.floodPublish = a.flood !== '0' && a.flood !== 'false';
const meshSet = Object.keys(mesh).length > 0;
const cpuNs = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mean = (xs) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
const q = (xs, p) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const networkId = bundledGenesis().networkId;
const HB = heartbeatTopic(networkId);
const LEDGERISH = topicId(networkId, 'fanoutprobe');
// 'hbown': a heartbeat sent by its publisher (flood publish) or received straight from it; 'hb': a forwarded one
const KINDS = ['hbown', 'hb', 'msg', 'ihave', 'idontwant', 'iwant', 'ctl', 'sub', 'other'];
const zero = () => Object.fromEntries(KINDS.map((k) => [k, 0]));

function kindOf(rpc, author) {
  if ((rpc.messages?.length ?? 0) > 0) {
    const hb = rpc.messages.find((m) => m.topic === HB);
    if (hb === undefined) return 'msg';
    return hb.from !== undefined && Buffer.from(hb.from.buffer, hb.from.byteOffset, hb.from.byteLength).equals(author) ? 'hbown' : 'hb';
  }
  const c = rpc.control;
  if ((c?.ihave?.length ?? 0) > 0) return 'ihave';
  if ((c?.idontwant?.length ?? 0) > 0) return 'idontwant';
  if ((c?.iwant?.length ?? 0) > 0) return 'iwant';
  if ((c?.graft?.length ?? 0) > 0 || (c?.prune?.length ?? 0) > 0) return 'ctl';
  if ((rpc.subscriptions?.length ?? 0) > 0) return 'sub';
  return 'other';
}

/** Counts the frames one node's gossipsub sends and receives, by kind (classified before a send piggybacks on it). */
function hook(gs, c) {
  const self = Buffer.from(gs.components.peerId.toMultihash().bytes);
  const send = gs.sendRpc.bind(gs);
  gs.sendRpc = (id, rpc) => {
    const k = kindOf(rpc, self);
    const ok = send(id, rpc);
    if (ok) c.sent[k]++;
    return ok;
  };
  const batch = gs.sendRpcInBatch.bind(gs);
  gs.sendRpcInBatch = (tosend, rpc) => {
    const k = kindOf(rpc, self);
    batch(tosend, rpc);
    c.sent[k] += tosend.size;
  };
  const recv = gs.handleReceivedRpc.bind(gs);
  gs.handleReceivedRpc = (from, rpc) => {
    c.recv[kindOf(rpc, Buffer.from(from.toMultihash().bytes))]++;
    for (const ih of rpc.control?.ihave ?? []) c.ihaveIds += ih.messageIDs?.length ?? 0;
    return recv(from, rpc);
  };
}

async function startNode(boot) {
  const n = await createNodeNetwork({
    networkId,
    key: keyFromPrivate(randomBytes(32)),
    options: {
      dataDir: '/nonexistent',
      listen: ['/ip4/127.0.0.1/tcp/0'],
      announce: [],
      bootstrap: boot,
      trackers: [],
      genesis: boot.length === 0,
      mdns: false,
      upnp: false,
      relay: false,
      relayDataLimitMb: 256,
      relayDurationS: 600,
      maxConnections: 300,
      span: undefined,
      rpcLane: false,
      heartbeatIntervalMs: intervalMs,
      peerStaleMs: 3 * intervalMs,
      peerDeadMs: 12 * intervalMs,
    },
    tuning: {
      ephemeralPeerStore: true,
      inboundConnectionThreshold: 1000,
      maxIncomingPendingConnections: 200,
      retryBaseMs: 200,
      retryMaxMs: 2000,
      pubsubHeartbeatMs: 1000,
      autonat: false,
      dcutr: false,
      ...(meshSet ? { pubsubMesh: mesh } : {}),
    },
  });
  const c = { sent: zero(), recv: zero(), ihaveIds: 0, got: new Map() };
  const gs = n.p2p.libp2p.services.pubsub;
  // every node here shares 127.0.0.1: gossipsub's IP colocation penalty (weight -5 beyond 10 peers of one address)
  // would put every peer below the graylist threshold from 14 nodes on (nothing is delivered at all). Deployed
  // nodes have addresses of their own: the address is exempted unless --ip-colocation on.
  if (a['ip-colocation'] !== 'on') gs.score.params.IPColocationFactorWhitelist = new Set(['127.0.0.1']);
  hook(gs, c);
  await n.start();
  // the ledger-like topic: every node subscribes from the start (a node's ledger topic is always there)
  n.p2p.subscribe(LEDGERISH, (m) => {
    const key = Buffer.from(m.data.subarray(0, 16)).toString('hex');
    if (!c.got.has(key)) c.got.set(key, performance.now());
  });
  return { net: n, c };
}

async function pool(items, k, f) {
  let i = 0;
  await Promise.all(Array.from({ length: k }, async () => {
    while (i < items.length) await f(items[i++]);
  }));
}

function pause(x) {
  const h = x.net.heartbeat;
  clearInterval(h.timer);
  h.timer = undefined;
}
function resume(x) {
  const h = x.net.heartbeat;
  if (h.timer !== undefined) return;
  // a random phase, as nodes started at different times have
  h.timer = setTimeout(() => {
    void h.beat();
    h.timer = setInterval(() => void h.beat(), intervalMs);
  }, Math.random() * intervalMs);
}

const snap = (nodes) => ({
  cpu: cpuNs(),
  proc: process.cpuUsage(),
  t: performance.now(),
  sent: nodes.map((x) => ({ ...x.c.sent })),
  recv: nodes.map((x) => ({ ...x.c.recv })),
  ihaveIds: nodes.reduce((s, x) => s + x.c.ihaveIds, 0),
  published: nodes.reduce((s, x) => s + x.net.heartbeat.stats.published, 0),
  accepted: nodes.reduce((s, x) => s + x.net.heartbeat.stats.accepted, 0),
});

async function run(N) {
  const nodes = [];
  const t0 = performance.now();
  nodes.push(await startNode([]));
  const boot = [nodes[0].net.p2p.multiaddrs()[0]];
  for (let i = 1; i < N; i++) nodes.push(await startNode(boot));
  const pairs = [];
  if (a.conn === 'all') {
    for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) pairs.push([i, j]);
  } else {
    const k = Math.min(N - 1, Number(a.conn));
    for (let i = 0; i < N; i++) {
      const others = [...Array(N).keys()].filter((j) => j !== i).sort(() => Math.random() - 0.5).slice(0, k);
      for (const j of others) pairs.push([i, j]);
    }
  }
  await pool(pairs, 8, async ([i, j]) => {
    await nodes[i].net.p2p.dial(nodes[j].net.p2p.multiaddrs()[0], { signal: AbortSignal.timeout(60_000) }).catch((e) => console.error(`dial ${i}->${j}: ${e.message}`));
  });
  const aliveAll = () => nodes.every((x) => x.net.liveness.snapshot().filter((p) => p.state === 'alive').length >= N - 1);
  const deadline = performance.now() + 240_000;
  while (!aliveAll() && performance.now() < deadline) await sleep(200);
  const upS = (performance.now() - t0) / 1000;
  if (!aliveAll()) console.log(`!! N ${N}: not every node hears every other after ${upS.toFixed(0)} s (min ${Math.min(...nodes.map((x) => x.net.liveness.snapshot().filter((p) => p.state === 'alive').length))} of ${N - 1})`);
  await sleep(Number(a['warmup-ms']));
  const conns = mean(nodes.map((x) => x.net.p2p.libp2p.getConnections().length));
  const rows = [];
  const W = Number(a.windows);
  for (let w = 0; w < W; w++) {
    const b = a.ab === 'heartbeats' && (w % 4 === 1 || w % 4 === 2);
    for (const x of nodes) (b ? pause : resume)(x);
    const s0 = snap(nodes);
    await sleep(Number(a['window-ms']));
    const s1 = snap(nodes);
    const s = (s1.t - s0.t) / 1000;
    const fr = (which) => {
      const o = zero();
      for (let i = 0; i < N; i++) for (const k of KINDS) o[k] += s1[which][i][k] - s0[which][i][k];
      return o;
    };
    const meshes = nodes.map((x) => x.net.p2p.libp2p.services.pubsub.getMeshPeers(HB).length);
    const lmeshes = nodes.map((x) => x.net.p2p.libp2p.services.pubsub.getMeshPeers(LEDGERISH).length);
    rows.push({
      w,
      arm: b ? 'B' : 'A',
      s,
      main: (s1.cpu - s0.cpu) / 1e6 / s,
      proc: ((s1.proc.user - s0.proc.user) + (s1.proc.system - s0.proc.system)) / 1000 / s,
      sent: fr('sent'),
      recv: fr('recv'),
      ihaveIds: s1.ihaveIds - s0.ihaveIds,
      published: s1.published - s0.published,
      accepted: s1.accepted - s0.accepted,
      mesh: { mean: mean(meshes), min: Math.min(...meshes), max: Math.max(...meshes) },
      lmesh: mean(lmeshes),
      load: loadavg()[0],
    });
    const r = rows.at(-1);
    console.log(`   N ${N} w${w} ${r.arm}: main ${r.main.toFixed(1)} ms/s (${(r.main / N).toFixed(2)} a node), process ${r.proc.toFixed(1)}, hb published ${(r.published / s).toFixed(2)}/s, frames a node a s sent [${KINDS.filter((k) => r.sent[k] > 0).map((k) => `${k} ${(r.sent[k] / N / s).toFixed(1)}`).join(', ')}] recv [${KINDS.filter((k) => r.recv[k] > 0).map((k) => `${k} ${(r.recv[k] / N / s).toFixed(1)}`).join(', ')}], ihave ids recv ${(r.ihaveIds / N / s).toFixed(0)}/s a node, hb mesh ${r.mesh.mean.toFixed(1)} [${r.mesh.min}-${r.mesh.max}], load ${r.load.toFixed(2)}`);
  }
  for (const x of nodes) resume(x);
  // delivery of ledger-like messages: every node publishes, every other node must receive each
  const D = Number(a.delivery);
  const sentAt = new Map();
  const bytes = Number(a['delivery-bytes']);
  await Promise.all(nodes.map(async (x, i) => {
    for (let k = 0; k < D; k++) {
      await sleep(Math.random() * 2000);
      const m = randomBytes(bytes);
      sentAt.set(m.subarray(0, 16).toString('hex'), { t: performance.now(), from: i });
      await x.net.p2p.publish(LEDGERISH, m);
    }
  }));
  const expect = sentAt.size * (N - 1);
  const got = () => nodes.reduce((s, x, i) => s + [...sentAt].filter(([key, v]) => v.from !== i && x.c.got.has(key)).length, 0);
  const dl = performance.now() + 15_000;
  while (got() < expect && performance.now() < dl) await sleep(100);
  const lat = [];
  nodes.forEach((x, i) => {
    for (const [key, v] of sentAt) if (v.from !== i && x.c.got.has(key)) lat.push(x.c.got.get(key) - v.t);
  });
  const A = rows.filter((r) => r.arm === 'A');
  const B = rows.filter((r) => r.arm === 'B');
  const hbRate = mean(A.map((r) => r.published / r.s));
  const dMain = mean(A.map((r) => r.main)) - mean(B.map((r) => r.main));
  const perS = (rs, which, k) => mean(rs.map((r) => r[which][k] / N / r.s));
  const pub = A.reduce((s, r) => s + r.published, 0);
  const acc = A.reduce((s, r) => s + r.accepted, 0);
  const sum = {
    N,
    intervalMs,
    mesh: meshSet ? mesh : 'default',
    conn: a.conn,
    conns,
    upS,
    A: A.map((r) => +r.main.toFixed(2)),
    B: B.map((r) => +r.main.toFixed(2)),
    mainA: mean(A.map((r) => r.main)),
    mainB: mean(B.map((r) => r.main)),
    hbPerS: hbRate,
    perNodeHbMsPerS: dMain / N,
    perNodePerHbUs: B.length === 0 ? NaN : (dMain / N / hbRate) * 1000,
    // frames carrying heartbeats, per node per heartbeat published in the network
    hbFramesSentPerHb: mean(A.map((r) => (r.sent.hb + r.sent.hbown) / N / Math.max(1, r.published))),
    hbFramesRecvPerHb: mean(A.map((r) => (r.recv.hb + r.recv.hbown) / N / Math.max(1, r.published))),
    hbOwnSentPerHb: mean(A.map((r) => r.sent.hbown / N / Math.max(1, r.published))),
    hbOwnRecvPerHb: mean(A.map((r) => r.recv.hbown / N / Math.max(1, r.published))),
    ihaveSentPerS: { A: perS(A, 'sent', 'ihave'), B: perS(B, 'sent', 'ihave') },
    idontwantSentPerS: { A: perS(A, 'sent', 'idontwant'), B: perS(B, 'sent', 'idontwant') },
    iwantSentPerS: perS(A, 'sent', 'iwant'),
    ctlSentPerS: { A: perS(A, 'sent', 'ctl'), B: perS(B, 'sent', 'ctl') },
    ihaveIdsRecvPerS: mean(A.map((r) => r.ihaveIds / N / r.s)),
    hbMesh: mean(rows.map((r) => r.mesh.mean)),
    hbMeshRange: [Math.min(...rows.map((r) => r.mesh.min)), Math.max(...rows.map((r) => r.mesh.max))],
    ledgerMesh: mean(rows.map((r) => r.lmesh)),
    hbDelivery: pub === 0 ? NaN : acc / (pub * (N - 1)),
    ledger: { delivered: got(), expected: expect, p50Ms: q(lat, 0.5), p99Ms: q(lat, 0.99), maxMs: Math.max(...lat) },
    load: rows.map((r) => +r.load.toFixed(2)),
  };
  console.log(`== N ${N} (interval ${intervalMs} ms, mesh ${meshSet ? JSON.stringify(mesh) : 'default'}, conn ${a.conn}: ${conns.toFixed(1)} connections a node): main A ${sum.mainA.toFixed(1)} [${sum.A.join(', ')}] B ${sum.mainB.toFixed(1)} [${sum.B.join(', ')}] ms/s; heartbeats ${(dMain).toFixed(1)} ms/s = ${sum.perNodeHbMsPerS.toFixed(2)} a node = ${sum.perNodePerHbUs.toFixed(0)} µs a node per heartbeat (${hbRate.toFixed(2)}/s in the network); hb frames a node per heartbeat sent ${sum.hbFramesSentPerHb.toFixed(2)} recv ${sum.hbFramesRecvPerHb.toFixed(2)} (from/to the publisher ${sum.hbOwnSentPerHb.toFixed(2)} / ${sum.hbOwnRecvPerHb.toFixed(2)}); ihave sent ${sum.ihaveSentPerS.A.toFixed(1)}/s (B ${sum.ihaveSentPerS.B.toFixed(1)}), idontwant ${sum.idontwantSentPerS.A.toFixed(1)}/s; hb mesh ${sum.hbMesh.toFixed(1)} [${sum.hbMeshRange.join('-')}], ledger mesh ${sum.ledgerMesh.toFixed(1)}; hb delivery ${(sum.hbDelivery * 100).toFixed(1)} %; ledger-like ${sum.ledger.delivered}/${expect}, p50 ${sum.ledger.p50Ms.toFixed(0)} ms p99 ${sum.ledger.p99Ms.toFixed(0)} max ${sum.ledger.maxMs.toFixed(0)}; load ${sum.load.join(', ')}`);
  console.log(`json: ${JSON.stringify(sum)}`);
  await Promise.all(nodes.map((x) => x.net.stop().catch(() => {})));
}

for (const N of a.n.split(',').map(Number)) await run(N);
process.exit(0);
