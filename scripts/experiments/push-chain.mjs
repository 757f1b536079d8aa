#!/usr/bin/env node
// Session 29: hop-to-hop pushes where they apply, between processes. A chain of N hops (default 4), each its own
// Node process and event loop (as nodes on other machines), with compute stubbed out (the driver hop's step gives
// zeros, a middle hop passes its input on, the last hop samples token 0): a token's time is its messages. The entry
// (this process) runs blocks of greedy tokens through the same chain with pushes off and on, alternating, and prints
// ms a token per block and the medians. On this host's 2 shared cores the processes' wake-ups are part of every
// figure: compare the two arms, not the absolute times.
// `--delay MS` holds every TCP write of every process for MS ms (order kept): a one-way link latency of MS between
// any two nodes, for this experiment only (writes are taken as accepted at once: no backpressure).
// `--arm auto` (session 30): the "on" blocks run with push 'auto' (router/driver.ts PUSH_AUTO_MIN_RTT_MS) over the
// round-trip floors the entry measured (a LatencyTable fed by its explicit steps, as a node's); the measured round
// trips are printed at the end.
//   node scripts/experiments/push-chain.mjs [--hops 4] [--blocks 10] [--tokens 64] [--width 768] [--delay 0] [--arm on|auto]
import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const dist = new URL('../../dist/src/', import.meta.url);
const { net } = await import(new URL('node/serving-bench/bench-node.js', dist).href);
const { HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession } = await import(new URL('protocols/inference.js', dist).href);
const { BanList, DRIVER_DEFAULTS, LatencyTable, runGeneration } = await import(new URL('router/index.js', dist).href);
const { bundledGenesis } = await import(new URL('node/genesis.js', dist).href);

const { values: a } = parseArgs({ options: { hops: { type: 'string', default: '4' }, blocks: { type: 'string', default: '10' }, tokens: { type: 'string', default: '64' }, width: { type: 'string', default: '768' }, delay: { type: 'string', default: '0' }, arm: { type: 'string', default: 'on' }, child: { type: 'string' }, boot: { type: 'string' } } });
const N = Number(a.hops);
const delayMs = Number(a.delay);
if (delayMs > 0) {
  const write = Socket.prototype.write;
  Socket.prototype.write = function (chunk, enc, cb) {
    setTimeout(() => write.call(this, chunk, enc, cb), delayMs);
    return true;
  };
}
const C = Number(a.width);
const networkId = bundledGenesis().networkId;

/** A stub hop of layer k of N: zeros from token ids, its input on, or token 0 per chunk on the last hop. */
function stubHop(k) {
  return {
    span: () => ({ start: k, end: k + 1 }),
    numLayers: N,
    hiddenSize: C,
    vocabSize: 10,
    contextLength: 1 << 16,
    kvBytesPerPosition: () => 0,
    open: async () => {},
    step: async (_id, input) => {
      if (k === N - 1) return { tokens: new Int32Array(input.chunks.length) };
      if (input.ids !== undefined) return { hidden: new Float32Array(input.ids.length * C).fill(0.25) };
      return { hidden: input.hidden };
    },
    close: async () => {},
  };
}

if (a.child !== undefined) {
  const k = Number(a.child);
  const n = await net(networkId, a.boot ? [a.boot] : [], { start: k, end: k + 1 }, 'fast');
  if (a.boot) await n.p2p.dial(a.boot, { signal: AbortSignal.timeout(60_000) });
  const srv = new InferenceHopServer(stubHop(k), HOP_LIMIT_DEFAULTS);
  await srv.register(n.rpc);
  process.stdout.write(JSON.stringify({ multiaddr: n.p2p.multiaddrs()[0], peerId: n.peerId }) + '\n');
  process.stdin.resume();
  process.stdin.on('end', () => void n.stop().then(() => process.exit(0)));
} else {
  const children = [];
  const hellos = [];
  for (let k = 0; k < N; k++) {
    const args = [new URL(import.meta.url).pathname, '--child', String(k), '--hops', String(N), '--width', String(C), '--delay', String(delayMs)];
    if (k > 0) args.push('--boot', hellos[k - 1].multiaddr);
    const c = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(c);
    const line = await new Promise((resolve) => createInterface({ input: c.stdout }).once('line', resolve));
    hellos.push(JSON.parse(line));
  }
  const entry = await net(networkId, [hellos[0].multiaddr], undefined, 'fast');
  for (const h of hellos) await entry.p2p.dial(h.multiaddr, { signal: AbortSignal.timeout(60_000) });
  const view = hellos.map((h, k) => ({ peerId: h.peerId, span: { start: k, end: k + 1 }, alive: true, rttMs: 0 }));
  const model = { numLayers: N, hiddenSize: C, contextLength: 1 << 16, eosId: -1, encode: () => [1, 5, 9, 3], decode: () => '' };
  const latency = new LatencyTable();
  const block = async (push, tokens) => {
    const times = [];
    const r = await runGeneration(
      { prompt: '', maxTokens: tokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
      {
        model,
        holders: () => view,
        opener: { open: (hop, spec) => new RemoteHopSession(entry.rpc, hop.peerId, hop.span, spec, { hiddenSize: C, vocabSize: 10, wire: 'f32', onStepTimed: (p, w, c) => latency.observeStep(p, w, c) }) },
        bans: new BanList(),
        now: () => performance.now(),
        random: () => 0,
        newSessionId: () => randomBytes(8).toString('hex'),
        options: { ...DRIVER_DEFAULTS, stepTimeoutMs: 30_000, explore: 0, push: push && a.arm === 'auto' ? 'auto' : push },
        rttFloorMs: (p) => latency.floorMs(p),
        log: { debug() {}, info: (m, f) => console.log(m, JSON.stringify(f)), warn: (m, f) => console.log(m, JSON.stringify(f)), error: (m, f) => console.log(m, JSON.stringify(f)), child() { return this; } },
      },
      { onToken: () => times.push(performance.now()) },
      new AbortController().signal,
    );
    // from token 2 on: tokens 0 and 1 are explicit either way (prefill, set-up)
    const t = times.slice(2);
    return { msPerToken: (t.at(-1) - t[0]) / (t.length - 1), pushes: r.pushes?.used ?? 0, failovers: r.failovers };
  };
  await block(false, 16);
  await block(true, 16);
  const res = { off: [], on: [] };
  for (let b = 0; b < Number(a.blocks); b++) {
    for (const push of b % 2 === 0 ? [false, true] : [true, false]) {
      const r = await block(push, Number(a.tokens));
      res[push ? 'on' : 'off'].push(r.msPerToken);
      console.log(`block ${b} push ${push ? 'on ' : 'off'}: ${r.msPerToken.toFixed(3)} ms a token (pushed steps ${r.pushes}, failovers ${r.failovers})`);
    }
  }
  const med = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  const ratios = res.on.map((x, i) => x / res.off[i]);
  console.log(`measured round trips (ms, the entry's EWMA / floor of the last 16): ${hellos.map((h) => `${latency.rttMs(h.peerId)?.toFixed(2) ?? '-'} / ${latency.floorMs(h.peerId)?.toFixed(2) ?? '-'}`).join(', ')}`);
  console.log(`${N} hops, ${C} wide, stub compute, one-way delay ${delayMs} ms, arm ${a.arm}, ${a.blocks} block pairs of ${a.tokens} tokens: ms a token off ${med(res.off).toFixed(3)}, on ${med(res.on).toFixed(3)}; on/off per pair median ${med(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})`);
  await entry.stop();
  for (const c of children) c.stdin.end();
  await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
}
