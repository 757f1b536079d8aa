/**
 * The checkpoint stream between real RpcNodes over the in-memory network: honest holders, a holder that sends bad
 * bytes under honest hashes, one that announces a different hash, a stream that breaks half-way (resumed at the
 * next holder), and a lone holder (the genesis case).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NANO, ParamLayout, type LlamaConfig } from '../../../src/model/index.js';
import { initParams } from '../../../src/model/init.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import * as methods from '../../../src/protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../../../src/protocols/pb/node.js';
import { type CallContext } from '../../../src/protocols/rpc/service.js';
import { SPAN_METER_LIMITS, SpanMeter } from '../../../src/pool/span-meter.js';
import { checkpointHandler, downloadSpan, fetchConfig, roundSource, roundTarget, voteHeads, WeightsUnavailableError, type RoundWeights } from '../../../src/pool/transfer.js';
import { sliceSpan, spanHashOfParams } from '../../../src/pool/weights.js';
import { pinRound, roundsToKeep, type RoundPin } from '../../../src/training/keep.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { createLogger } from '../../../src/util/logger.js';
import { memoryRpcNode } from '../../utils/memory-rpc.js';

const NET = 'pooltest01';
const CONFIG: LlamaConfig = { ...NANO };
const L = CONFIG.num_hidden_layers;

function modelParams(seed: number): Float32Array {
  const layout = new ParamLayout(CONFIG);
  const flat = new Float32Array(layout.size);
  initParams(layout, flat, seed);
  return flat;
}

/** int8: a `--weights int8` holder (keeps no float32 copy: answers every weights request "cannot serve"). */
type Behaviour = 'honest' | 'corrupt' | 'liar' | 'breaks' | 'int8';

async function swarm(behaviours: Behaviour[], chunkBytes = 64 * 1024) {
  const hub = new MemoryHub();
  const { rpc, scores } = await memoryRpcNode(hub, 'client', NET);
  const good = modelParams(0);
  const peers: string[] = [];
  for (const [i, b] of behaviours.entries()) {
    const id = `holder${i}`;
    const { rpc: r } = await memoryRpcNode(hub, id, NET);
    const params = b === 'liar' ? modelParams(1) : good;
    const notServed = b === 'int8' ? () => 'this node holds int8 weights and keeps no float32 copy to serve' : undefined;
    const inner = checkpointHandler({ config: () => CONFIG, held: () => ({ start: 0, end: L }), params: () => Promise.resolve(params), ...(notServed === undefined ? {} : { notServed }) }, chunkBytes);
    const handler = async function* (req: CheckpointRequest, ctx: CallContext): AsyncGenerator<CheckpointChunk> {
      let sent = 0;
      for await (const c of inner(req, ctx)) {
        if (b === 'corrupt' && c.data.byteLength > 0) {
          const data = c.data.slice();
          data[0] = data[0]! ^ 0xff;
          yield { ...c, data };
        } else yield c;
        if (b === 'breaks' && c.data.byteLength > 0 && ++sent === 2) throw new Error('connection lost');
      }
    };
    await r.handle(methods.checkpoint, handler);
    peers.push(id);
  }
  return { rpc, scores, peers, good };
}

describe('checkpoint stream', () => {
  it('the handler keeps no copy of the weights it served: chunks are views of the source, a replaced source is not pinned', async () => {
    // issue 12 §2: the pool hands out a fresh snapshot of its weights every minute; the handler cached a copy of
    // every span per snapshot (64 of them), so a chaos survivor's memory grew by whole spans that nobody asked again
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // a WeakRef's deref keeps its target alive to the end of the job: collect after a turn, then look
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setImmediate(r));
        gc();
      }
    };
    const ctx = {} as CallContext;
    let current = modelParams(0);
    // a multi-layer span from five snapshots: past the rate on uncached multi-layer spans (pool/span-meter.ts),
    // which is not what this test is about
    const meter = new SpanMeter({ ...SPAN_METER_LIMITS, peerBurst: 100, allBurst: 100 });
    const inner = checkpointHandler({ config: () => CONFIG, held: () => ({ start: 0, end: L }), params: () => Promise.resolve(current) }, undefined, { meter });
    const span = { start: 1, end: L };
    const chunks = async (): Promise<CheckpointChunk[]> => {
      const out: CheckpointChunk[] = [];
      for await (const c of inner({ modelHash: '', span, offset: 0n } as CheckpointRequest, ctx)) out.push(c);
      return out;
    };
    const got = await chunks();
    assert.ok(got.length > 0 && got.every((c) => c.data.buffer === current.buffer), 'every chunk is a view of the source array, not a copy');
    assert.equal(got[0]!.modelHash, spanHashOfParams(CONFIG, span, sliceSpan(CONFIG, { start: 0, end: L }, current, span)));
    got.length = 0;
    const first = new WeakRef(current);
    await settle();
    const base = process.memoryUsage().arrayBuffers;
    // the pool's minute refresh: a new snapshot each time, each asked once; the old ones are dropped by the pool
    for (let i = 0; i < 4; i++) {
      current = current.slice();
      await chunks();
    }
    await settle();
    assert.equal(first.deref(), undefined, 'the first snapshot was collected');
    const grew = process.memoryUsage().arrayBuffers - base;
    assert.ok(grew < current.byteLength / 2, `array buffers grew ${grew} bytes after 4 snapshots of ${current.byteLength} (copies kept)`);
  });

  it('downloads a span from several holders in parallel, verified, equal to the source weights', async () => {
    const s = await swarm(['honest', 'honest', 'honest']);
    const span = { start: 1, end: L };
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span, holdersOf: () => s.peers });
    const want = sliceSpan(CONFIG, { start: 0, end: L }, s.good, span);
    assert.deepEqual(d.params, want);
    assert.equal(d.hash, spanHashOfParams(CONFIG, span, want));
    assert.ok(d.sources.length >= 2, 'units come from more than one holder');
    assert.equal(d.retries, 0);
  });

  it('a holder sending bad bytes under honest hashes is penalised and the unit is fetched elsewhere', async () => {
    const s = await swarm(['corrupt', 'honest', 'honest']);
    const span = { start: 0, end: L };
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span, holdersOf: () => s.peers });
    assert.deepEqual(d.params, s.good);
    assert.ok(!d.sources.includes('holder0'));
    assert.ok(s.scores.score('holder0') !== 0, 'the corrupting holder lost score');
    assert.ok(d.retries >= 1);
  });

  it('a holder announcing other weights is outvoted by two agreeing holders and never used', async () => {
    const s = await swarm(['liar', 'honest', 'honest']);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: 2 }, holdersOf: () => s.peers });
    assert.deepEqual(d.params, sliceSpan(CONFIG, { start: 0, end: L }, s.good, { start: 0, end: 2 }));
    assert.ok(!d.sources.includes('holder0'));
  });

  it('int8 holders ranked first give their places to f32 holders: two agreeing f32 holders outvote a liar, int8 ones unpenalised', async () => {
    // int8 holders (fastest, so first in holdersOf) used to take the three head places: no f32 holder was asked
    const s = await swarm(['int8', 'int8', 'int8', 'liar', 'honest', 'honest']);
    const span = { start: 0, end: L };
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span, holdersOf: () => s.peers });
    assert.deepEqual(d.params, s.good);
    assert.ok(d.sources.length >= 1 && d.sources.every((p) => p === 'holder4' || p === 'holder5'), `sources ${d.sources.join(',')}`);
    for (const p of ['holder0', 'holder1', 'holder2']) assert.equal(s.scores.score(p), 0, `${p} (int8) is not penalised`);
  });

  it('an int8 holder asked for weights: a typed "cannot serve" (the caller\'s fault), its config still served; only int8 holders: a typed error', async () => {
    const s = await swarm(['int8']);
    const stream = s.rpc.serverStream(s.peers[0]!, methods.checkpoint, { modelHash: '', span: { start: 0, end: 1 }, offset: 0n }, { timeoutMs: 10_000 });
    await assert.rejects(
      (async () => {
        for await (const _ of stream) void _;
      })(),
      (e: unknown) => isNeuroShardError(e) && e.code === 'CHECKPOINT_NOT_SERVED' && e.fault === 'local',
    );
    assert.equal(s.scores.score(s.peers[0]!), 0);
    assert.deepEqual(await fetchConfig({ rpc: s.rpc }, s.peers), CONFIG);
    await assert.rejects(
      downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: 1 }, holdersOf: () => s.peers }),
      (e: unknown) => e instanceof WeightsUnavailableError && /float32/.test(e.message),
    );
    assert.equal(s.scores.score(s.peers[0]!), 0);
  });

  it('two holders that disagree: a typed error, nothing returned', async () => {
    const s = await swarm(['liar', 'honest']);
    await assert.rejects(
      downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: 1 }, holdersOf: () => s.peers }),
      (e: unknown) => e instanceof WeightsUnavailableError && e.code === 'CHECKPOINT_UNAVAILABLE',
    );
  });

  it('a broken stream resumes from the bytes received at the next holder', async () => {
    const s = await swarm(['breaks', 'honest'], 16 * 1024);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores, log: process.env.DEBUG_POOL !== undefined ? createLogger({ level: 'debug' }) : undefined }, { config: CONFIG, span: { start: 1, end: 3 }, holdersOf: () => s.peers, parallel: 1 });
    assert.deepEqual(d.params, sliceSpan(CONFIG, { start: 0, end: L }, s.good, { start: 1, end: 3 }));
    assert.ok(d.retries >= 1);
  });

  it('a lone holder (the genesis node) is trusted; its config is fetched', async () => {
    const s = await swarm(['honest']);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 2, end: L }, holdersOf: () => s.peers });
    assert.equal(d.params.length, new ParamLayout(CONFIG, { start: 2, end: L }).size);
    const c = await fetchConfig({ rpc: s.rpc }, s.peers);
    assert.deepEqual(c, CONFIG);
  });

  it('a lone holder is asked for no more streams at once than it accepts (the whole model from the genesis node)', async () => {
    // the holder resets streams past checkpoint.maxInboundStreams (2); a joiner taking all L units from it used to
    // open L heads at once and lose every unit past the second
    assert.ok(L > methods.checkpoint.maxInboundStreams);
    const s = await swarm(['honest']);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: L }, holdersOf: () => s.peers, parallel: 4 });
    assert.deepEqual(d.params, s.good);
    assert.equal(d.retries, 0);
  });

  it('a span not held, or no holder at all: typed errors, no crash', async () => {
    const s = await swarm(['honest']);
    await assert.rejects(
      downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: 1 }, holdersOf: () => [] }),
      (e: unknown) => isNeuroShardError(e) && e.code === 'CHECKPOINT_UNAVAILABLE',
    );
    // asking for layers past the holder's span: the holder answers a typed error, the download fails cleanly
    const wide = { ...CONFIG, num_hidden_layers: L + 2 };
    await assert.rejects(downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: wide, span: { start: L, end: L + 1 }, holdersOf: () => s.peers }), (e: unknown) => isNeuroShardError(e));
  });
});

/** Holders that train: each has its own moving weights and the weights after the outer rounds it closed. */
async function trainingSwarm(holders: { moving: number; rounds: { round: number; seed: number }[] }[], pins: { holder: string; peer: string; round: number }[] = []) {
  const hub = new MemoryHub();
  const { rpc, scores } = await memoryRpcNode(hub, 'client', NET);
  const peers: string[] = [];
  const whole = { start: 0, end: L };
  for (const [i, h] of holders.entries()) {
    const id = `trainer${i}`;
    const { rpc: r } = await memoryRpcNode(hub, id, NET);
    const moving = modelParams(h.moving);
    const rounds: RoundWeights[] = h.rounds.map((x) => ({ round: x.round, span: whole, params: modelParams(x.seed) }));
    await r.handle(methods.checkpoint, checkpointHandler({ config: () => CONFIG, held: () => whole, params: () => Promise.resolve(moving), rounds: () => rounds, pin: (peer, round) => void pins.push({ holder: id, peer, round }) }));
    peers.push(id);
  }
  return { rpc, scores, peers };
}

describe('checkpoint stream from holders that train (weights of a closed outer round)', () => {
  it('roundTarget: the newest round every holder that named one keeps; none when no head names one', () => {
    assert.equal(roundTarget([]), undefined);
    assert.equal(roundTarget([undefined, undefined]), undefined);
    assert.equal(roundTarget([5, 5, 4]), 4, 'the holder a round behind has not closed 5; the others keep 4');
    assert.equal(roundTarget([9, 5]), 5, 'no round in common (a holder more than the window ahead): the oldest named');
    assert.equal(roundTarget([5, 4]), 4, 'a holder a round ahead still keeps the round before; one behind lacks the next');
    assert.equal(roundTarget([undefined, 7]), 7);
    assert.equal(roundTarget([-1, -1, 0]), -1);
  });

  it('voteHeads: two agreeing beat one; a tie or no pair is no agreement; a lone answer is taken', () => {
    const h = (hash: string, round?: number) => ({ total: 8n, hash: hash.repeat(64), sha: 's'.repeat(64), ...(round === undefined ? {} : { round }) });
    assert.deepEqual(voteHeads([{ peer: 'a', h: h('1', 3) }, { peer: 'b', h: h('1', 3) }, { peer: 'c', h: h('2', 3) }])?.outvoted, ['c']);
    assert.equal(voteHeads([{ peer: 'a', h: h('1', 3) }, { peer: 'b', h: h('2', 3) }]), undefined);
    // the same weights named for different rounds are different figures
    assert.equal(voteHeads([{ peer: 'a', h: h('1', 3) }, { peer: 'b', h: h('1', 4) }]), undefined);
    assert.deepEqual(voteHeads([{ peer: 'a', h: h('1') }])?.peers, ['a']);
    // a second holder was heard but could not answer at the span's round: one answer is not enough then
    assert.equal(voteHeads([{ peer: 'a', h: h('1', 3) }], 2), undefined);
    assert.equal(voteHeads([]), undefined);
  });

  it('roundSource: the named round, or the newest; only rounds whose span covers the request', () => {
    const p = new Float32Array(1);
    const rs: RoundWeights[] = [
      { round: 1, span: { start: 0, end: 2 }, params: p },
      { round: 2, span: { start: 0, end: 2 }, params: p },
      { round: 3, span: { start: 2, end: 4 }, params: p },
    ];
    assert.equal(roundSource(rs, { start: 0, end: 1 }, undefined)?.round, 2);
    assert.equal(roundSource(rs, { start: 0, end: 1 }, 1)?.round, 1);
    assert.equal(roundSource(rs, { start: 0, end: 1 }, 3), undefined);
    assert.equal(roundSource(rs, { start: 2, end: 3 }, undefined)?.round, 3);
    assert.equal(roundSource([], { start: 0, end: 1 }, undefined), undefined);
  });

  it('holders whose live weights all differ agree on their last closed round: that round is downloaded, nobody penalised', async () => {
    // three trainers, each a few steps into the next round (moving weights 11, 12, 13): round 4 is the state after
    const s = await trainingSwarm([
      { moving: 11, rounds: [{ round: 3, seed: 3 }, { round: 4, seed: 4 }] },
      { moving: 12, rounds: [{ round: 3, seed: 3 }, { round: 4, seed: 4 }] },
      { moving: 13, rounds: [{ round: 3, seed: 3 }, { round: 4, seed: 4 }] },
    ]);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: L }, holdersOf: () => s.peers });
    assert.equal(d.round, 4);
    assert.deepEqual(d.params, modelParams(4));
    assert.equal(d.retries, 0);
    for (const p of s.peers) assert.equal(s.scores.score(p), 0, `${p} not penalised`);
  });

  it('holders a round apart: the span comes whole from the round they all keep, not layer by layer from mixed rounds', async () => {
    // holder 0 closed round 5 already; holder 1 is still collecting it (its newest is 4): both serve round 4
    const pins: { holder: string; peer: string; round: number }[] = [];
    const s = await trainingSwarm([
      { moving: 11, rounds: [{ round: 4, seed: 4 }, { round: 5, seed: 5 }] },
      { moving: 12, rounds: [{ round: 3, seed: 3 }, { round: 4, seed: 4 }] },
    ], pins);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 1, end: L }, holdersOf: () => s.peers });
    assert.equal(d.round, 4);
    // the download named round 4 to both holders (heads, then chunks): it is pinned on each of them for the client
    assert.deepEqual([...new Set(pins.map((p) => `${p.holder}/${p.peer}/${p.round}`))].sort(), ['trainer0/client/4', 'trainer1/client/4']);
    assert.deepEqual(d.params, sliceSpan(CONFIG, { start: 0, end: L }, modelParams(4), { start: 1, end: L }));
    assert.equal(d.sources.length, 2, 'both holders served units');
    for (const p of s.peers) assert.equal(s.scores.score(p), 0, `${p} not penalised`);
  });

  it('a round a holder no longer keeps: a typed error of the caller, and the holder is not penalised', async () => {
    const s = await trainingSwarm([{ moving: 11, rounds: [{ round: 6, seed: 6 }] }]);
    const stream = s.rpc.serverStream(s.peers[0]!, methods.checkpoint, { modelHash: '', span: { start: 0, end: 1 }, offset: 0n, round: 2n }, { timeoutMs: 10_000 });
    await assert.rejects(
      (async () => {
        for await (const c of stream) void c;
      })(),
      (e: unknown) => isNeuroShardError(e) && e.code === 'CHECKPOINT_ROUND_GONE' && e.fault === 'local', // the caller's fault, as the caller sees it
    );
    // two trainers whose kept rounds do not overlap cannot agree: no download, no penalty
    const t = await trainingSwarm([
      { moving: 11, rounds: [{ round: 9, seed: 9 }] },
      { moving: 12, rounds: [{ round: 2, seed: 2 }] },
    ]);
    await assert.rejects(
      downloadSpan({ rpc: t.rpc, scores: t.scores }, { config: CONFIG, span: { start: 0, end: 1 }, holdersOf: () => t.peers }),
      (e: unknown) => e instanceof WeightsUnavailableError,
    );
    for (const p of t.peers) assert.equal(t.scores.score(p), 0);
  });

  it('holders whose rounds close faster than the download: the round it takes is pinned and kept until it is done', async () => {
    // two trainers that keep their closed rounds as the outer sync does (training/keep.ts: the 4 newest and pinned
    // ones) and close 2 rounds for every stream they serve: without pins, the round the joiner picked leaves their
    // kept rounds after a couple of units (the fifth session's "do not agree on its hash after round N")
    const fastSwarm = async (pinning: boolean) => {
      const hub = new MemoryHub();
      const { rpc, scores } = await memoryRpcNode(hub, 'client', NET);
      const peers: string[] = [];
      const whole = { start: 0, end: L };
      const weights = new Map<number, Float32Array>();
      const of = (r: number): Float32Array => weights.get(r) ?? weights.set(r, modelParams(100 + r)).get(r)!;
      for (let i = 0; i < 2; i++) {
        const id = `fast${i}`;
        const { rpc: r } = await memoryRpcNode(hub, id, NET);
        let closed = [7, 8, 9, 10];
        let pins: RoundPin[] = [];
        const close = (): void => {
          const next = closed.at(-1)! + 1;
          closed = roundsToKeep([...closed, next], pins, 0);
        };
        const inner = checkpointHandler({
          config: () => CONFIG,
          held: () => whole,
          params: () => Promise.resolve(of(-100)),
          rounds: () => closed.map((round) => ({ round, span: whole, params: of(round) })),
          ...(pinning ? { pin: (peer: string, round: number) => void (pins = pinRound(pins, peer, round, closed, 0).pins) } : {}),
        });
        await r.handle(methods.checkpoint, (req: CheckpointRequest, ctx: CallContext) => {
          if (req.offset < HEAD) {
            close();
            close();
          }
          return inner(req, ctx);
        });
        peers.push(id);
      }
      return { rpc, scores, peers, of };
    };
    const HEAD = 1n << 40n;
    const pinned = await fastSwarm(true);
    const d = await downloadSpan({ rpc: pinned.rpc, scores: pinned.scores }, { config: CONFIG, span: { start: 0, end: L }, holdersOf: () => pinned.peers, parallel: 1 });
    assert.equal(d.round, 10);
    assert.deepEqual(d.params, pinned.of(10));
    const unpinned = await fastSwarm(false);
    await assert.rejects(
      downloadSpan({ rpc: unpinned.rpc, scores: unpinned.scores }, { config: CONFIG, span: { start: 0, end: L }, holdersOf: () => unpinned.peers, parallel: 1 }),
      (e: unknown) => e instanceof WeightsUnavailableError,
      'without pins the round is gone before the last units',
    );
  });

  it('a holder outside the rounds (weights it does not train) is outvoted by trainers at their round', async () => {
    const hub = await trainingSwarm([
      { moving: 11, rounds: [{ round: 2, seed: 2 }] },
      { moving: 12, rounds: [{ round: 2, seed: 2 }] },
      { moving: 2, rounds: [] },
    ]);
    const d = await downloadSpan({ rpc: hub.rpc, scores: hub.scores }, { config: CONFIG, span: { start: 0, end: 2 }, holdersOf: () => hub.peers });
    assert.equal(d.round, 2);
    assert.deepEqual(d.params, sliceSpan(CONFIG, { start: 0, end: L }, modelParams(2), { start: 0, end: 2 }));
    assert.ok(!d.sources.includes('trainer2'), 'the holder without rounds served nothing');
  });
});
