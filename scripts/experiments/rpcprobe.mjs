#!/usr/bin/env node
// Where a message's time goes on our RPC over libp2p (issue 8 §5, hop RTT and 1 MiB throughput). Usage (build first):
//   node scripts/experiments/rpcprobe.mjs [--reps 500] [--only raw,bidi,hop,unary,tcp] [--bytes 3072]
//   node --cpu-prof --cpu-prof-dir=/tmp/prof scripts/experiments/rpcprobe.mjs --only hop
// Two bare libp2p nodes (TCP + noise + yamux, no gossip/DHT traffic of note) in this process, on 127.0.0.1, and
// the same message pattern at each layer of the stack, one message in flight at a time:
//   tcp    raw TCP ping-pong of the bytes (the floor)
//   raw    one long-lived libp2p stream, the server echoing each chunk: TCP + noise + yamux + libp2p's stream
//   bidi   our bidi RPC (frames, protobuf tensor, validation) on one long-lived stream: one request, one response
//   hop    RemoteHopSession ↔ InferenceHopServer with an identity hop (what `serving-hop` measures)
//   unary  one unary echo call per message (a new stream per call: open, multistream-select, close)
//   --bytes 1048576 with unary: the 1 MiB RPC; --lazy-window: window updates at half the window (A/B)
//   --split with --only hop: the hop server in a child process (its own event loop, as between two machines): work a
//     hop does after writing its answer leaves the round trip only then; CPU is then the client's alone
//   --prof DIR with --only hop: a CPU profile of the timed round trips only (DIR/hop.cpuprofile; no start-up in it)
//   --ab lp|window with --only hop: paired A/B in this one process, blocks of --block steps alternating the
//     library's own code (A) and ours (B: lp = src/p2p/length-prefix-decoder.ts, window = src/p2p/yamux-window.ts),
//     so that both sides see the same load; prints the CPU per step of each and the median of the B/A ratios
// Prints the median, p90 and p99 wall time of each and the process's CPU time per message, with the load.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createServer, connect } from 'node:net';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createLibp2pNetwork } from '../../dist/src/p2p/libp2p-node.js';
import { protocolPrefix } from '../../dist/src/protocols/ids.js';
import * as methods from '../../dist/src/protocols/methods.js';
import { RpcNode } from '../../dist/src/protocols/rpc/service.js';
import { echoHandler } from '../../dist/src/protocols/handlers/echo.js';
import { fp32Tensor, tensorToPb } from '../../dist/src/protocols/tensor-wire.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } from '../../dist/src/protocols/inference.js';
import { installYamuxLazyWindow, uninstallYamuxLazyWindow, yamuxLazyWindowInstalled } from '../../dist/src/p2p/yamux-window.js';
import { installLengthPrefixFastPath, uninstallLengthPrefixFastPath } from '../../dist/src/p2p/length-prefix-decoder.js';

const { values: args } = parseArgs({ options: { reps: { type: 'string', default: '500' }, only: { type: 'string', default: 'tcp,raw,bidi,hop,unary' }, bytes: { type: 'string', default: '3072' }, 'lazy-window': { type: 'boolean', default: false }, ab: { type: 'string' }, block: { type: 'string', default: '500' }, prof: { type: 'string' }, split: { type: 'boolean', default: false }, 'serve-child': { type: 'boolean', default: false } } });
const REPS = Number(args.reps);
const BYTES = Number(args.bytes);
const only = new Set(args.only.split(','));
const ID = 'probe';

const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))] * 1000) / 1000;
};
const report = (name, { times: xs, cpuUs }) => console.log(`${name.padEnd(6)} p50 ${q(xs, 0.5)} ms  p90 ${q(xs, 0.9)} ms  p99 ${q(xs, 0.99)} ms  cpu ${cpuUs.toFixed(0)} us/msg  (${xs.length}, load ${loadavg()[0].toFixed(2)})`);

async function time(n, fn) {
  for (let i = 0; i < Math.min(50, n); i++) await fn();
  const out = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  const c = process.cpuUsage(c0);
  // CPU of this process (client and server both live here) per message: steadier than wall time on a loaded machine
  return { times: out, cpuUs: (c.user + c.system) / n };
}

async function node() {
  const net = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: protocolPrefix(ID), listen: ['/ip4/127.0.0.1/tcp/0'], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false });
  await net.start();
  return net;
}

if (only.has('tcp')) {
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.pipe(s);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const sock = connect(server.address().port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  const buf = Buffer.alloc(BYTES, 7);
  report('tcp', await time(REPS, () => new Promise((resolve) => {
    let got = 0;
    const on = (d) => {
      got += d.length;
      if (got >= BYTES) {
        sock.off('data', on);
        resolve();
      }
    };
    sock.on('data', on);
    sock.write(buf);
  })));
  sock.destroy();
  server.close();
}

/** The identity hop [1, 2) (what `serving-hop` measures). */
function identityHop(C) {
  return {
    span: () => ({ start: 1, end: 2 }),
    numLayers: 3,
    hiddenSize: C,
    vocabSize: 10,
    contextLength: 1 << 16,
    kvBytesPerPosition: () => 0,
    open: async () => {},
    step: async (_id, input) => ({ hidden: input.hidden }),
    close: async () => {},
  };
}

if (args['serve-child']) {
  // --split's server: prints its address, serves until its stdin closes
  const net = await node();
  const rpc = new RpcNode({ network: net, networkId: ID });
  await new InferenceHopServer(identityHop(BYTES / 4), HOP_LIMIT_DEFAULTS).register(rpc);
  console.log(net.multiaddrs()[0].toString());
  process.stdin.resume();
  await new Promise((r) => process.stdin.once('end', r));
  await net.stop();
  process.exit(0);
}

let child;
let a;
let peer;
const b = await node();
if (args.split) {
  if ([...only].some((x) => x !== 'hop')) throw new Error('--split measures --only hop');
  child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve-child', '--only', 'hop', '--bytes', String(BYTES)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const addr = await new Promise((resolve) => createInterface({ input: child.stdout }).once('line', resolve));
  peer = await b.dial(addr);
} else {
  a = await node();
  peer = await b.dial(a.multiaddrs()[0]);
}
// A/B: window updates at half the window (src/p2p/yamux-window.ts) instead of yamux's own after every data frame
if (args['lazy-window']) installYamuxLazyWindow();
console.log(`yamux window updates: ${yamuxLazyWindowInstalled() ? 'at half the window (src/p2p/yamux-window.ts)' : 'after every data frame (library default)'}, ${BYTES} bytes per message${args.split ? ', hop server in a child process' : ''}`);

if (only.has('raw')) {
  const proto = `/${ID}/raw-echo/1`;
  await a.handle(proto, async (stream) => {
    for await (const chunk of stream) stream.send(chunk instanceof Uint8Array ? chunk : chunk.subarray());
  });
  const s = await b.openStream(peer, proto);
  const it = s[Symbol.asyncIterator]();
  const buf = new Uint8Array(BYTES).fill(7);
  report('raw', await time(REPS, async () => {
    s.send(buf);
    let got = 0;
    while (got < BYTES) got += (await it.next()).value.byteLength;
  }));
  s.abort(new Error('done'));
}

const ra = a === undefined ? undefined : new RpcNode({ network: a, networkId: ID });
const rb = new RpcNode({ network: b, networkId: ID });

if (only.has('bidi') || only.has('hop')) {
  const C = BYTES / 4;
  if (ra !== undefined) await new InferenceHopServer(identityHop(C), HOP_LIMIT_DEFAULTS).register(ra);
  const x = new Float32Array(C).fill(0.5);
  if (only.has('hop')) {
    const s = new RemoteHopSession(rb, peer, { start: 1, end: 2 }, { id: 'probe', maxLen: 1 << 16, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } }, { hiddenSize: C, vocabSize: 10, wire: 'f32' });
    const ac = new AbortController();
    if (args.ab !== undefined) {
      const toggles = { lp: [uninstallLengthPrefixFastPath, installLengthPrefixFastPath], window: [uninstallYamuxLazyWindow, installYamuxLazyWindow] };
      const [offB, onB] = toggles[args.ab];
      const blocks = Math.max(2, Math.round(REPS / Number(args.block)));
      const cpu = { A: [], B: [] };
      const p50 = { A: [], B: [] };
      for (let i = 0; i < blocks; i++) {
        for (const side of i % 2 === 0 ? ['A', 'B'] : ['B', 'A']) {
          if (side === 'A') offB();
          else onB();
          const r = await time(Number(args.block), () => s.step({ hidden: x, chunks: [1] }, ac.signal));
          cpu[side].push(r.cpuUs);
          p50[side].push(q(r.times, 0.5));
        }
      }
      const ratios = cpu.B.map((b, i) => b / cpu.A[i]).sort((u, v) => u - v);
      const med = (xs) => [...xs].sort((u, v) => u - v)[Math.floor(xs.length / 2)];
      console.log(`ab ${args.ab}: cpu us/step A ${cpu.A.map((v) => v.toFixed(0)).join(' ')} | B ${cpu.B.map((v) => v.toFixed(0)).join(' ')}`);
      console.log(`ab ${args.ab}: median cpu A ${med(cpu.A).toFixed(0)} B ${med(cpu.B).toFixed(0)} us/step; B/A per pair median ${med(ratios).toFixed(3)} (${ratios.map((v) => v.toFixed(2)).join(' ')}); p50 wall A ${med(p50.A)} B ${med(p50.B)} ms (load ${loadavg()[0].toFixed(2)})`);
    } else {
      let session;
      if (args.prof !== undefined) {
        for (let i = 0; i < 200; i++) await s.step({ hidden: x, chunks: [1] }, ac.signal); // warm, outside the profile
        session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 100 });
        await session.post('Profiler.start');
      }
      report('hop', await time(REPS, () => s.step({ hidden: x, chunks: [1] }, ac.signal)));
      if (session !== undefined) {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(`${args.prof}/hop.cpuprofile`, JSON.stringify(profile));
        session.disconnect();
      }
    }
    s.close();
  }
}

if (only.has('unary')) {
  await ra.handle(methods.echo, echoHandler);
  const req = { payload: new Uint8Array(0), tensor: tensorToPb(fp32Tensor(new Float32Array(BYTES / 4), [BYTES / 4])), replyWithTensor: false };
  report('unary', await time(REPS, () => rb.call(peer, methods.echo, req)));
}

await b.stop();
await a?.stop();
child?.stdin.end();
