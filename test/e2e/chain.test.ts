/**
 * Inference across separate `neuroshard start` processes on 127.0.0.1, every node in its own process group.
 *
 * 1. Pinned spans: six holders (each span twice: 0:1, 1:3, 3:4) loaded from one fixed checkpoint, and an entry node
 *    with `--span none`. The entry answers POST /api/generate (greedy) with exactly the tokens `neuroshard generate
 *    --checkpoint` gives, through a route of three hops; SIGKILL of the validator, the middle and the driver hop
 *    after the 10th streamed token: each stream completes with the same tokens and failovers >= 1.
 * 2. The layer pool assigns: a genesis node started from a fixed checkpoint (seed 1234, not the network's seed 0)
 *    and four joiners without `--span`, with memory for half the model each. Within a bound every layer has 2 live
 *    joiner holders whose weights hash to the checkpoint's. A fifth joiner adds a spare; SIGKILL of the genesis node
 *    and of a holder: the others re-cover its layers to 2 live replicas, weights verified by hash (GET /api/layers,
 *    each holder's own span hash). A `--span none` entry then answers with the checkpoint's tokens over more than one
 *    hop, and survives SIGKILL of the driver and of the validator hop after the 10th streamed token.
 */
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../src/compute/index.js';
import type { LlamaConfig } from '../../src/model/index.js';
import { bundledGenesis } from '../../src/node/genesis.js';
import { extraWeightBytes, layerMb, sliceSpan, spanHashOfParams } from '../../src/pool/index.js';
import { waitFor } from '../../src/util/abort.js';
import { cliJson, killAll, killGroup, LOCAL_NODE_FLAGS, startCli, type CliProcess } from '../utils/cli-process.js';
import { tempDir } from '../utils/paths.js';

after(killAll);

const PROMPT = 'The county grand jury said';
// long enough that the kill after the 10th streamed token lands while the chain still works (the entry may run ahead of the reader)
const MAX = 400;

interface Holder {
  proc: CliProcess;
  dir: string;
  peerId: string;
  span: string;
}

async function statusOf(dir: string): Promise<{ peerId: string; addresses: string[] }> {
  return (await cliJson(['status', '--json', '--data-dir', dir])) as { peerId: string; addresses: string[] };
}

async function sse(url: string, body: object, onEvent: (e: any, tokens: number) => void): Promise<any[]> {
  const res = await fetch(`${url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
  assert.equal(res.status, 200, await res.clone().text());
  const events: any[] = [];
  let buf = '';
  const dec = new TextDecoder();
  for await (const chunk of res.body!) {
    buf += dec.decode(chunk as Uint8Array, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!block.startsWith('data: ')) continue;
      const e = JSON.parse(block.slice(6));
      events.push(e);
      onEvent(e, events.filter((x) => x.token !== undefined).length);
    }
  }
  return events;
}

/** GET a JSON route of a node's API; undefined when the node does not answer (yet, or busy: the machine may be loaded). */
async function apiGet(url: string, path: string): Promise<any> {
  try {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(20_000) });
    return res.status === 200 ? await res.json() : undefined;
  } catch {
    return undefined;
  }
}

interface LayersBody {
  layers: { layer: number; holders: { peerId: string; state: string; tokensPerSec: number }[] }[];
  replicasMin: number;
  modelHash: string;
}

/** A generation streamed with a SIGKILL of route[hop]'s process group after the 10th token; asserts the outcome. */
async function streamWithKill(url: string, reference: number[], pick: (route: { peerId: string; span: number[] }[]) => number, kill: (peerId: string) => void): Promise<{ route: { peerId: string; span: number[] }[]; killed: string }> {
  let route: { peerId: string; span: number[] }[] = [];
  let killed: string | undefined;
  const events = await sse(url, { prompt: PROMPT, max_tokens: MAX, temperature: 0 }, (e, n) => {
    if (e.route !== undefined) route = e.route;
    if (e.token !== undefined && n === 10) {
      killed = route[pick(route)]!.peerId;
      kill(killed);
    }
  });
  assert.ok(killed !== undefined, 'a hop was killed');
  const done = events.at(-1);
  assert.equal(done.done, true, JSON.stringify(done));
  assert.deepEqual(done.tokens, reference);
  assert.deepEqual(events.filter((e) => e.token !== undefined).map((e) => e.token), reference);
  assert.ok(done.failovers >= 1, `failovers ${done.failovers}`);
  return { route, killed };
}

describe('a chain of neuroshard start processes (pinned spans)', () => {
  const root = tempDir('ns-chain-');
  const holders: Holder[] = [];
  let entryUrl = '';
  let reference: number[] = [];
  let entryProc: CliProcess | undefined;
  after(() => { if (process.env.CHAIN_DEBUG) console.log(entryProc?.err, holders.map((h) => h.proc.err).join('\n----\n')); });

  before(async () => {
    // one fixed checkpoint (the seeded genesis model), copied into every holder's data dir
    const genesis = bundledGenesis();
    const ck = join(root.dir, 'ck');
    const compute = await ComputeClient.start({ threads: 1 });
    try {
      await compute.run({ type: 'initModel', config: genesis.config, seed: 0 });
      await compute.run({ type: 'saveCheckpoint', root: ck, step: 0, tokenizerPath: genesis.tokenizerPath });
    } finally {
      await compute.close();
    }
    const ref = (await cliJson(['generate', '--checkpoint', ck, '--prompt', PROMPT, '--temperature', '0', '--max-tokens', String(MAX), '--json', '--threads', '1'])) as { tokens: number[] };
    reference = ref.tokens;

    const common = [...LOCAL_NODE_FLAGS, '--no-train', '--threads', '1'];
    const spans = ['0:1', '1:3', '3:4', '0:1', '1:3', '3:4'];
    const start = (i: number, span: string, boot: string[]): { proc: CliProcess; dir: string } => {
      const dir = join(root.dir, `h${i}`);
      cpSync(ck, join(dir, 'checkpoints'), { recursive: true });
      return { proc: startCli(['start', '--data-dir', dir, ...common, '--span', span, ...(i === 0 ? ['--genesis'] : boot)], {}, { detached: true }), dir };
    };
    const first = start(0, spans[0]!, []);
    await first.proc.waitLine(/status at/, 180_000);
    const st0 = await statusOf(first.dir);
    const boot = ['--bootstrap', st0.addresses.find((a) => a.includes('/tcp/'))!.replace(/\/p2p\/.*$/, '') + `/p2p/${st0.peerId}`];
    holders.push({ ...first, peerId: st0.peerId, span: spans[0]! });
    // the others start together (the machine may be slow: each loads a worker and its layers)
    const rest = spans.slice(1).map((span, k) => ({ ...start(k + 1, span, boot), span }));
    for (const r of rest) {
      await r.proc.waitLine(/status at/, 300_000);
      holders.push({ proc: r.proc, dir: r.dir, span: r.span, peerId: (await statusOf(r.dir)).peerId });
    }
    const edir = join(root.dir, 'entry');
    const entry = startCli(['start', '--data-dir', edir, ...common, '--span', 'none', '--hop-timeout-ms', '3000', ...boot], {}, { detached: true });
    const m = await entry.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000);
    entryUrl = m[1]!;
    entryProc = entry;
    // the entry routes over peers whose heartbeats it has seen (a busy node may not answer a poll: that is "not yet")
    await waitFor(
      async () => ((await apiGet(entryUrl, '/api/peers')) as { peers: { liveness: string; span: unknown }[] } | undefined)?.peers.filter((p) => (p.liveness === 'alive' || p.liveness === 'stale') && p.span !== null).length === 6,
      // stale (heartbeats late on a loaded machine) is still routed to, behind alive peers
      { timeoutMs: 300_000, intervalMs: 1000, what: 'six live holders seen from the entry' },
    );
  });

  it('answers with the tokens of neuroshard generate --checkpoint, over three hops', async () => {
    const res = await fetch(`${entryUrl}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, max_tokens: MAX, temperature: 0 }) });
    const json = (await res.json()) as { tokens: number[]; route: { peerId: string; span: number[] }[]; failovers: number };
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.deepEqual(json.tokens, reference);
    assert.deepEqual(json.route.map((h) => h.span), [[0, 1], [1, 3], [3, 4]]);
  });

  it('neuroshard generate without --checkpoint answers through the node running on the data dir', async () => {
    const r = (await cliJson(['generate', '--data-dir', join(root.dir, 'entry'), '--prompt', PROMPT, '--temperature', '0', '--max-tokens', String(MAX), '--json'])) as { tokens: number[] };
    assert.deepEqual(r.tokens, reference);
  });

  for (const [name, hop] of [['validator', 2], ['middle', 1], ['driver', 0]] as const) {
    it(`survives SIGKILL of the ${name} hop after the 10th token`, async () => {
      const { route } = await streamWithKill(entryUrl, reference, () => hop, (peerId) => killGroup(holders.find((h) => h.peerId === peerId)!.proc));
      assert.equal(route.length, 3);
    });
  }
});

describe('a chain of neuroshard start processes (the layer pool assigns)', () => {
  const root = tempDir('ns-poolchain-');
  let config: LlamaConfig;
  let full: Float32Array;
  let ck = '';
  let reference: number[] = [];
  let entryUrl = '';
  let boot: string[] = [];
  const L = bundledGenesis().config.num_hidden_layers;
  // heartbeats every second, stale after 8 s, dead after 20 s: a SIGKILLed holder is seen dead within the test's
  // bounds, a late heartbeat on a loaded machine is not (the pool's moves wait for dead holders)
  const env = { NEUROSHARD_HEARTBEAT_INTERVAL_MS: '1000', NEUROSHARD_PEER_STALE_MS: '8000', NEUROSHARD_PEER_DEAD_MS: '20000' };
  const common = [...LOCAL_NODE_FLAGS, '--no-train', '--threads', '1'];
  interface Node {
    proc: CliProcess;
    url: string;
    peerId: string;
  }
  let genesis: Node;
  const joiners: Node[] = [];
  const alive = (): Node[] => joiners.filter((j) => j.proc.child.exitCode === null && j.proc.child.signalCode === null);
  const hashOf = (span: { start: number; end: number }): string => spanHashOfParams(config, span, sliceSpan(config, { start: 0, end: L }, full, span));

  const startNode = async (name: string, args: string[]): Promise<Node> => {
    const dir = join(root.dir, name);
    const proc = startCli(['start', '--data-dir', dir, ...common, ...args], env, { detached: true });
    const m = await proc.waitLine(/status at (http:\/\/[^/]+)\/api\/status/, 300_000);
    const st = await statusOf(dir);
    return { proc, url: m[1]!, peerId: st.peerId };
  };
  /** The node's own span and hash, from GET /api/layers (the layers it holds alive, itself included). */
  const ownSpan = async (n: Node): Promise<{ span: { start: number; end: number }; hash: string } | undefined> => {
    const b = (await apiGet(n.url, '/api/layers')) as LayersBody | undefined;
    if (b === undefined || b.modelHash === '') return undefined;
    const mine = b.layers.filter((l) => l.holders.some((h) => h.peerId === n.peerId)).map((l) => l.layer);
    if (mine.length === 0) return undefined;
    return { span: { start: Math.min(...mine), end: Math.max(...mine) + 1 }, hash: b.modelHash };
  };
  /** Live holders per layer in `n`'s view, counting only `among`. */
  const liveReplicas = async (n: Node, among: Set<string>): Promise<number[] | undefined> => {
    const b = (await apiGet(n.url, '/api/layers')) as LayersBody | undefined;
    return b?.layers.map((l) => l.holders.filter((h) => among.has(h.peerId) && h.state === 'alive').length);
  };

  before(async () => {
    config = bundledGenesis().config;
    const c = await ComputeClient.start({ threads: 1 });
    try {
      await c.run({ type: 'initModel', config, seed: 1234 });
      full = (await c.run({ type: 'getParams' })).params;
      ck = (await c.run({ type: 'saveCheckpoint', root: join(root.dir, 'ck'), step: 0, tokenizerPath: bundledGenesis().tokenizerPath })).dir;
    } finally {
      await c.close();
    }
    reference = ((await cliJson(['generate', '--checkpoint', ck, '--prompt', PROMPT, '--temperature', '0', '--max-tokens', String(MAX), '--json', '--threads', '1'])) as { tokens: number[] }).tokens;
  });

  it('a genesis node from a checkpoint and four half-model joiners: every layer gets 2 live joiner holders, weights verified', async () => {
    genesis = await startNode('genesis', ['--genesis', '--checkpoint', ck]);
    const st = await statusOf(join(root.dir, 'genesis'));
    boot = ['--bootstrap', st.addresses.find((a) => a.includes('/tcp/'))!.replace(/\/p2p\/.*$/, '') + `/p2p/${st.peerId}`];
    await waitFor(async () => (await ownSpan(genesis))?.hash === hashOf({ start: 0, end: L }), { timeoutMs: 300_000, intervalMs: 1000, what: 'the genesis node holding the checkpoint' });
    const half = String(Math.ceil(extraWeightBytes(config) / (1 << 20)) + (L / 2) * layerMb(config) + 1);
    for (let i = 0; i < 4; i++) {
      const j = await startNode(`j${i}`, [...boot, '--memory-mb', half]);
      joiners.push(j);
      // each placement sees the ones before it: the next joiner starts once this one holds a span, alive in the genesis view
      await waitFor(async () => (await ownSpan(j)) !== undefined, { timeoutMs: 400_000, intervalMs: 1000, what: `joiner ${i} holding a span` });
      await waitFor(async () => ((await liveReplicas(genesis, new Set([j.peerId]))) ?? []).some((r) => r > 0), { timeoutMs: 120_000, intervalMs: 1000, what: `joiner ${i} alive in the genesis view` });
    }
    const ids = new Set(joiners.map((j) => j.peerId));
    await waitFor(async () => Math.min(...((await liveReplicas(genesis, ids)) ?? [0])) >= 2, { timeoutMs: 120_000, intervalMs: 1000, what: 'every layer with 2 live joiner holders' });
    for (const j of joiners) {
      const own = (await ownSpan(j))!;
      assert.equal(own.span.end - own.span.start, L / 2, 'a joiner with memory for half the model holds half of it');
      assert.equal(own.hash, hashOf(own.span), 'its weights came from peers and hash to the checkpoint\'s');
    }
  });

  it('SIGKILL of the genesis node and of a holder: the others re-cover its layers to 2 live replicas, weights verified', async () => {
    const spare = await startNode('j4', [...boot, '--memory-mb', String(Math.ceil(extraWeightBytes(config) / (1 << 20)) + (L / 2) * layerMb(config) + 1)]);
    joiners.push(spare);
    await waitFor(async () => (await ownSpan(spare)) !== undefined, { timeoutMs: 400_000, intervalMs: 1000, what: 'the fifth joiner holding a span' });
    const spans = new Map<string, number>();
    for (const j of joiners) spans.set(j.peerId, (await ownSpan(j))!.span.start);
    const count = (start: number): number => [...spans.values()].filter((s) => s === start).length;
    // the holder to kill: one of the half with fewer holders (2), so that its layers drop to 1 live replica
    const small = count(0) <= count(L / 2) ? 0 : L / 2;
    const victim = joiners.find((j) => spans.get(j.peerId) === small)!;
    killGroup(genesis.proc);
    killGroup(victim.proc);
    const survivors = alive().filter((j) => j !== victim);
    const watcher = survivors[0]!;
    const ids = new Set(survivors.map((j) => j.peerId));
    await waitFor(async () => Math.min(...((await liveReplicas(watcher, ids)) ?? [0])) >= 2, { timeoutMs: 400_000, intervalMs: 1000, what: 'every layer back to 2 live replicas' });
    let moved = 0;
    await waitFor(
      async () => {
        const owns = await Promise.all(survivors.map((j) => ownSpan(j)));
        if (owns.some((o) => o === undefined)) return false;
        moved = survivors.filter((j, k) => owns[k]!.span.start !== spans.get(j.peerId)).length;
        // every survivor's weights hash to the checkpoint's slice of the span it holds now
        return owns.every((o) => o!.hash === hashOf(o!.span));
      },
      { timeoutMs: 120_000, intervalMs: 1000, what: 'every survivor holding verified weights' },
    );
    assert.ok(moved >= 1, 'a survivor moved to the lost layers');
    // the killed holders are seen dead
    const b = (await apiGet(watcher.url, '/api/layers')) as LayersBody;
    assert.ok(b.layers.every((l) => l.holders.filter((h) => h.peerId === victim.peerId || h.peerId === genesis.peerId).every((h) => h.state === 'dead')));
  });

  it('a --span none entry answers with the checkpoint\'s tokens over more than one hop', async () => {
    const entry = await startNode('entry', ['--span', 'none', '--hop-timeout-ms', '3000', '--bootstrap', (await statusOf(join(root.dir, 'j4'))).addresses.find((a) => a.includes('/tcp/'))!]);
    entryUrl = entry.url;
    const ids = new Set(alive().map((j) => j.peerId));
    await waitFor(async () => Math.min(...((await liveReplicas(entry, ids)) ?? [0])) >= 2, { timeoutMs: 300_000, intervalMs: 1000, what: 'the entry seeing every layer held twice' });
    const res = await fetch(`${entryUrl}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, max_tokens: MAX, temperature: 0 }) });
    const json = (await res.json()) as { tokens: number[]; route: { peerId: string; span: number[] }[]; failovers: number };
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.deepEqual(json.tokens, reference);
    assert.ok(json.route.length > 1, `route ${JSON.stringify(json.route)}`);
    assert.ok(json.route.every((h) => ids.has(h.peerId)));
  });

  for (const [name, pick] of [['driver', () => 0], ['validator', (r: unknown[]) => r.length - 1]] as const) {
    it(`survives SIGKILL of the ${name} hop after the 10th token`, async () => {
      const { route } = await streamWithKill(entryUrl, reference, pick, (peerId) => killGroup(joiners.find((j) => j.peerId === peerId)!.proc));
      assert.ok(route.length > 1);
    });
  }
});
