#!/usr/bin/env node
// The memory a holder spends serving its span over the checkpoint stream (issue 12 §2, issue 8 §1). Build first:
//   node scripts/checkpoint-serve-mem.mjs [--mode range|params] [--downloads 10] [--layers 10] [--json]
// A holder process (this script with --holder; its own compute worker) holds a whole model of ~146 MiB (hidden 512,
// 10 layers, vocabulary 8192: every span a joiner could ask for) and serves it on a real libp2p node on
// 127.0.0.1; this process downloads the whole span `--downloads` times (downloadSpan: heads, units in parallel,
// hashes verified) and prints the holder's RSS: its baseline (after the model is built, GC'd), its peak while
// serving (sampled every 10 ms) and its RSS after the last download (after a GC, then after the malloc_trim a node
// runs once a minute, node/heap-trim.ts), in MiB over the baseline (taken after a GC and a trim too).
//   --mode range   : what the pool serves from now: figures and 1 MiB chunks read in the compute worker
//                    (pool/held-range.ts, compute/served-params.ts);
//   --mode params  : what it served from before: the worker's whole span copied to the main thread (`getParams`)
//                    and that snapshot kept for a minute (PoolService.heldParams until this change), with the
//                    snapshot renewed before every download (one download a minute, as on a live network).
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ComputeClient } from '../dist/src/compute/index.js';
import { loadHeapTrim } from '../dist/src/node/heap-trim.js';
import { makeConfig } from '../dist/src/model/index.js';
import { createLibp2pNetwork } from '../dist/src/p2p/libp2p-node.js';
import { protocolPrefix } from '../dist/src/protocols/ids.js';
import * as methods from '../dist/src/protocols/methods.js';
import { RpcNode } from '../dist/src/protocols/rpc/service.js';
import { checkpointHandler, downloadSpan, workerHeldRange } from '../dist/src/pool/index.js';

const { values: args } = parseArgs({
  options: {
    holder: { type: 'boolean', default: false },
    mode: { type: 'string', default: 'range' },
    downloads: { type: 'string', default: '10' },
    layers: { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});
const NET = 'servemem01';
const config = makeConfig({ hidden_size: 512, intermediate_size: 1408, num_hidden_layers: Number(args.layers), num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 8192, max_position_embeddings: 256 });
const WHOLE = { start: 0, end: config.num_hidden_layers };
const MiB = (b) => Math.round((b / 1048576) * 10) / 10;
const signed = (x) => (x < 0 ? `${x}` : `+${x}`);

async function net() {
  const n = await createLibp2pNetwork({ privateKey: randomBytes(32), protocolPrefix: protocolPrefix(NET), listen: ['/ip4/127.0.0.1/tcp/0'], genesis: true, mdns: false, upnp: false, autonat: false, dcutr: false });
  await n.start();
  return n;
}

async function settle() {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 100));
    globalThis.gc?.();
  }
}

async function holder() {
  const compute = await ComputeClient.start({ threads: 1 });
  await compute.run({ type: 'initModel', config, seed: 1, span: WHOLE });
  const { hash } = await compute.run({ type: 'modelHash' });
  const n = await net();
  const rpc = new RpcNode({ network: n, networkId: NET });
  // the pool before this change: a whole-span snapshot from the worker, kept (here: until the next download)
  let snapshot;
  const source = { config: () => config, held: () => WHOLE };
  if (args.mode === 'params') source.params = async () => (snapshot ??= (await compute.run({ type: 'getParams' })).params);
  else source.heldRange = workerHeldRange(compute, () => WHOLE);
  await rpc.handle(methods.checkpoint, checkpointHandler(source));
  await settle();
  const t = loadHeapTrim();
  if ('trim' in t) await t.trim();
  const base = process.memoryUsage().rss;
  let peak = base;
  setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10).unref();
  process.on('message', async (m) => {
    if (m.cmd === 'minute') {
      snapshot = undefined; // a minute later: the old pool took a new snapshot for the next download
      process.send({ ok: true });
    } else if (m.cmd === 'report') {
      peak = Math.max(peak, process.memoryUsage().rss);
      await settle();
      const gcOnly = process.memoryUsage().rss;
      // what a node does once a minute (node/heap-trim.ts): the C heap's free pages back to the OS
      const t = loadHeapTrim();
      if ('trim' in t) await t.trim();
      process.send({ base, peak, gcOnly, after: process.memoryUsage().rss });
      await rpc.close().catch(() => {});
      await n.stop().catch(() => {});
      await compute.close();
      process.exit(0);
    }
  });
  process.send({ ready: true, addr: n.multiaddrs()[0], peer: n.peerId, hash, bytes: (await compute.run({ type: 'paramsDigest', span: WHOLE })).bytes });
}

async function main() {
  if (!['range', 'params'].includes(args.mode)) throw new Error('--mode is range or params');
  const child = fork(fileURLToPath(import.meta.url), ['--holder', '--mode', args.mode, '--layers', args.layers], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let fail;
  child.on('exit', (code) => fail?.(new Error(`holder exited with ${code}`)));
  const next = () => new Promise((resolve, reject) => {
    fail = reject;
    child.once('message', resolve);
  });
  try {
    const ready = await next();
    const n = await net();
    const rpc = new RpcNode({ network: n, networkId: NET });
    await n.dial(ready.addr);
    const times = [];
    for (let i = 0; i < Number(args.downloads); i++) {
      child.send({ cmd: 'minute' });
      await next();
      const t0 = performance.now();
      const d = await downloadSpan({ rpc }, { config, span: WHOLE, holdersOf: () => [ready.peer] });
      times.push(Math.round(performance.now() - t0));
      if (d.hash !== ready.hash) throw new Error(`download ${i}: hash ${d.hash}, the holder's is ${ready.hash}`);
    }
    child.send({ cmd: 'report' });
    const r = await next();
    await rpc.close().catch(() => {});
    await n.stop().catch(() => {});
    const out = { mode: args.mode, span_mib: MiB(ready.bytes), downloads: times.length, base_rss_mib: MiB(r.base), peak_over_base_mib: MiB(r.peak - r.base), after_gc_over_base_mib: MiB(r.gcOnly - r.base), after_over_base_mib: MiB(r.after - r.base), download_ms: times };
    if (args.json) console.log(JSON.stringify(out));
    else console.log(`${args.mode}: span ${out.span_mib} MiB, ${out.downloads} downloads (${times.join(', ')} ms); holder RSS base ${out.base_rss_mib} MiB, peak ${signed(out.peak_over_base_mib)} MiB, after (GC) ${signed(out.after_gc_over_base_mib)} MiB, after (GC + malloc_trim) ${signed(out.after_over_base_mib)} MiB`);
  } finally {
    child.kill();
  }
}

if (args.holder) await holder();
else await main();
