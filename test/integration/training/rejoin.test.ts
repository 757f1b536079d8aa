/**
 * A restarted whole-model trainer re-enters the rounds of two half holders (issue 9; the chaos run's train0 beside
 * train1 on [0,1) and train2 on [1,2)), on real libp2p nodes on 127.0.0.1, each with its own compute worker: the half
 * holders are a 2-stage chain (node/chain.ts NodeChainTraining: driver, train-stage hop, outer sync per span), the
 * whole-model holder a replica with its solo trainer inside DiLoCo (node/diloco.ts, test/utils/training-replica.ts).
 *
 * The half holders start their rounds at different numbers (A at 0, B at DRIFT: OuterSync's firstRound), as two
 * groups of layers that share no holder are after they drifted apart while no whole-model holder tied them (the
 * chaos run's stuck train0, issue 9). The whole-model holder joins them:
 *   - it enters within a few of the half holders' rounds (before: never, it needed one closed round of the newest
 *     number on every layer's holders and A had none), A skips its numbering forward to W's, and from then on A, B and
 *     W close rounds of one number with equal per-layer hashes (training/rounds.ts nextRoundNumber, keep.ts
 *     layerEntryState).
 * Then it is stopped while the rounds run and restarted on the same key (the same data dir) with stale
 * weights, before the half holders' view marks it dead: the round they are in still counts its old incarnation.
 *   - it enters within three of the half holders' rounds after it hears them (before: the round waited for a Δ that the
 *     listener never sends, until the deadline);
 *   - every layer state it downloads verifies at once (before: "does not match the agreed hash" until the next round);
 *   - from its entry on, its per-layer state hashes equal the half holders' after every round they share.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { makeConfig, type LlamaConfig } from '../../../src/model/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { type NodeNetwork } from '../../../src/node/network.js';
import { NodeChainTraining } from '../../../src/node/chain.js';
import { DEFAULTS, type NodeOptions } from '../../../src/node/options.js';
import { buildView, type PoolEvents, type PoolSpan } from '../../../src/pool/index.js';
import { trainingStatus } from '../../../src/protocols/training-sync.js';
import type { BatchSource, LastRoundReport } from '../../../src/training/index.js';
import { batchOf } from '../../../src/training/pipeline/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { TypedEmitter } from '../../../src/util/events.js';
import { createLogger, type Logger } from '../../../src/util/logger.js';
import { startTrainingNet } from '../../utils/network.js';
import { learnableBatch, learnableTokens, xorshift } from '../../utils/learnable-stream.js';
import { startWholeReplica, stopWholeReplica, type WholeReplica } from '../../utils/training-replica.js';

const genesis = bundledGenesis();
const cfg: LlamaConfig = makeConfig({ hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 64 });
const L = cfg.num_hidden_layers;
const H = 3;
const SYNC_MS = 60_000;
/** B's first round number: A's and B's numbers stand this far apart until W ties them. */
const DRIFT = 7;
const OPTS: NodeOptions = {
  ...DEFAULTS,
  train: true,
  trainSteps: 1_000_000,
  microBatches: 2,
  pipelineSchedule: '1f1b',
  stageTimeoutMs: 60_000,
  innerSteps: H,
  outerLr: 0.7,
  outerMomentum: 0.9,
  aggregator: 'trimmed-mean',
  compress: 'int8',
  outerQuorum: 2 / 3,
  outerSyncTimeoutMs: SYNC_MS,
};

interface Half {
  name: string;
  net: NodeNetwork;
  compute: ComputeClient;
  chain: NodeChainTraining;
  seen: { round: number; at: number; report: LastRoundReport; hashes: Record<string, string> }[];
}

const halves: Half[] = [];
const wholeHolders = new Set<string>();
let whole: WholeReplica | undefined;
let wholeStop = new AbortController();
let wholeLoop: Promise<void> = Promise.resolve();
const addr = (n: NodeNetwork): string => n.p2p.multiaddrs()[0]!;
const logOf = (name: string): Logger | undefined => (process.env.SYNC_TEST_LOG === undefined ? undefined : createLogger({ level: process.env.SYNC_TEST_LOG === 'debug' ? 'debug' : 'info', module: name }));

function source(seed: number): BatchSource {
  const rand = xorshift(seed);
  let i = 0;
  return {
    next: () => {
      i++;
      const t = learnableTokens(rand, 4, 16);
      return batchOf(t.inputs, t.targets, 4, 16);
    },
    position: () => i,
  };
}

async function startHalf(name: string, span: PoolSpan, boot: string[], k: number, firstRound: number): Promise<Half> {
  const key = keyFromPrivate(randomBytes(32));
  const net = await startTrainingNet(genesis.networkId, key, span, boot);
  const compute = await ComputeClient.start({ threads: 1 });
  await compute.run({ type: 'initModel', config: cfg, seed: 0, span });
  const h = { name, net, compute, seen: [] } as unknown as Half;
  const pool = {
    events: new TypedEmitter<PoolEvents>(),
    span: () => span,
    view: () => buildView({ numLayers: L, self: { peerId: net.peerId, span, tokensPerSec: 0, memoryMb: 0 }, peers: net.liveness.snapshot(), records: new Map() }),
  };
  const log = logOf(name);
  h.chain = new NodeChainTraining({
    opts: OPTS,
    config: cfg,
    compute,
    network: net,
    pool,
    outer: {
      key,
      networkId: genesis.networkId,
      clock: { now: () => Date.now() },
      pollMs: 100,
      firstRound,
      onRound: (r) => {
        const closed = h.chain.outerSync()?.sync.status().closed.find((c) => c.round === r.round);
        h.seen.push({ round: r.round, at: Date.now(), report: r, hashes: closed?.hashes ?? {} });
      },
    },
    data: () => Promise.resolve(source(100 + k)),
    ...(log === undefined ? {} : { log }),
  });
  return h;
}

/**
 * When the current whole-model replica's outer sync first had a training status answer from each peer: the moment it
 * could know where the half holders stand, from which its entry is counted (W's own start-up — a libp2p node, a
 * compute worker, dialling — takes as many of their rounds as the machine is slow, and says nothing of the entry).
 */
let heard = new Map<string, number>();
/** When the current whole-model replica logged its entry into the rounds (with verified weights). */
let entry: { at?: number } = {};

/**
 * The rounds A or B closed (the most of the two) between W's first status answers from both of them and its entry:
 * the protocol's part of the entry, in their rounds.
 */
function roundsWhileEntering(): number {
  const from = Math.max(...halves.map((h) => heard.get(h.net.peerId) ?? Infinity));
  const to = entry.at ?? Infinity;
  return Math.max(...halves.map((h) => h.seen.filter((s) => s.at > from && s.at <= to).length));
}

/** The whole-model replica and its training loop (steps until stopped); download failures are collected. */
async function startWhole(boot: string[], key = keyFromPrivate(randomBytes(32)), warnings: string[] = []): Promise<WholeReplica> {
  const base = logOf('W');
  const seen = new Map<string, number>();
  const entered: { at?: number } = {};
  heard = seen;
  entry = entered;
  const capture = (): Logger => ({
    level: 'debug',
    error: (m, c) => base?.error(m, c),
    warn: (m, c) => {
      warnings.push(`${m} ${JSON.stringify(c ?? {})}`);
      base?.warn(m, c);
    },
    info: (m, c) => {
      if (m.startsWith('entered the outer rounds')) entered.at ??= Date.now();
      base?.info(m, c);
    },
    debug: (m, c) => base?.debug(m, c),
    trace: () => {},
    child: () => capture(),
  });
  const more = ({ net }: { net: NodeNetwork }): { log: Logger; rpc: NodeNetwork['rpc'] } => ({
    log: capture(),
    // the node's RPC client, noting each peer's first answer to the training status call
    rpc: new Proxy(net.rpc, {
      get(target, prop) {
        if (prop === 'call') {
          return async (...args: Parameters<NodeNetwork['rpc']['call']>) => {
            const out: unknown = await target.call(...args);
            if (args[1] === trainingStatus && !seen.has(args[0])) seen.set(args[0], Date.now());
            return out;
          };
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }),
  });
  const r = await startWholeReplica({ name: 'W', networkId: genesis.networkId, config: cfg, options: OPTS, boot, holders: wholeHolders, seed: 7, key, more });
  wholeStop = new AbortController();
  const signal = wholeStop.signal;
  wholeLoop = (async () => {
    while (!signal.aborted) await r.stepper.trainStep(learnableBatch(r.rand, 4, 16));
  })().catch((e: unknown) => {
    if (!signal.aborted) throw e;
  });
  return r;
}

describe('a restarted whole-model trainer re-enters two half holders\' rounds (real libp2p)', { timeout: 900_000 }, () => {
  before(async () => {
    halves.push(await startHalf('A', { start: 0, end: 1 }, [], 0, 0));
    halves.push(await startHalf('B', { start: 1, end: L }, [addr(halves[0]!.net)], 1, DRIFT));
    for (const h of halves) wholeHolders.add(h.net.peerId);
  });

  after(async () => {
    wholeStop.abort();
    if (whole !== undefined) await stopWholeReplica(whole);
    await wholeLoop.catch(() => {});
    for (const h of halves) await h.chain.stop().catch(() => {});
    for (const h of halves) {
      await h.net.stop().catch(() => {});
      await h.compute.close().catch(() => {});
    }
  });

  it('joins half holders whose numbers drifted apart, ties them; stopped mid-round and restarted on the same key: it enters within three rounds of hearing them, its downloads verify, all agree', async () => {
    const [a, b] = halves as [Half, Half];
    // A and B train as a chain, their rounds numbered DRIFT apart from the start; since chain partners agree on their
    // next number at each boundary (training/sync.ts chainNext) they may tie themselves before W comes (on a fast
    // machine they did): the numbers they began with are what must differ, W's entry then joins whatever stands
    await waitFor(() => halves.every((h) => h.seen.length >= 1), { timeoutMs: 600_000, intervalMs: 200, what: 'A and B close a round' });
    const apart = b.seen[0]!.round - a.seen[0]!.round;
    assert.ok(apart >= DRIFT - 1, `A and B began their rounds ${apart} numbers apart`);
    const t0 = Date.now();
    whole = await startWhole(halves.map((h) => addr(h.net)));
    const key = whole.key;
    const wid = whole.net.peerId;
    const first = whole;
    await waitFor(() => halves.every((h) => h.net.liveness.snapshot().filter((p) => p.state === 'alive' && p.heartbeat.span !== undefined).length >= 2), { timeoutMs: 240_000, intervalMs: 100, what: 'A and B see the two others' });
    // before: W stayed entering (round −1) for good
    await waitFor(() => first.wiring.sync.round >= 0 && first.wiring.sync.status().phase !== 'entering', { timeoutMs: 600_000, intervalMs: 100, what: 'W entered the drifted rounds' });
    const firstEntry = first.wiring.sync.round;
    const firstWaited = roundsWhileEntering();
    // two rounds with W a full member on both half holders
    await waitFor(() => halves.every((h) => h.seen.filter((s) => s.report.members.includes(wid) && !s.report.waived.includes(wid)).length >= 2), { timeoutMs: 600_000, intervalMs: 200, what: 'two rounds with W on A and B' });
    const warm = Date.now() - t0;
    // counted from W's first status answers of both (its start-up is the machine's speed, not the protocol's): the
    // bug left W entering for good (the wait above); this bound keeps the entry prompt: a boundary of each drifted
    // group that counts W, the download, the tie, and W's status polls (200 ms, several of the fastest rounds)
    assert.ok(firstWaited <= 8, `W entered round ${firstEntry} of the drifted groups after ${firstWaited} rounds of the half holders since it heard them (at most 8)`);
    // the numbers are tied: A, B and W closed the same rounds since, with equal hashes
    const shared = first.rounds.map((r) => r.round).filter((r) => r > firstEntry && a.seen.some((s) => s.round === r) && b.seen.some((s) => s.round === r));
    assert.ok(shared.length >= 1, `A, B and W closed rounds of one number after W's entry (W ${first.rounds.map((r) => r.round).join(',')}; A ${a.seen.map((s) => s.round).join(',')}; B ${b.seen.map((s) => s.round).join(',')})`);
    for (const r of shared) {
      const mine = first.wiring.sync.status().closed.find((c) => c.round === r)?.hashes;
      if (mine === undefined) continue; // out of the kept window
      for (const h of halves) for (const [layer, hash] of Object.entries(h.seen.find((s) => s.round === r)!.hashes)) assert.equal(mine[layer], hash, `W and ${h.name} agree on ${layer} after round ${r}`);
    }

    // stop W while it is in its inner steps (its round counts it on A and B), restart it on the same key at once
    const round = whole.wiring.sync.round;
    wholeStop.abort();
    await stopWholeReplica(whole);
    await wholeLoop;
    const stoppedAt = Date.now();
    const before = { a: a.seen.length, b: b.seen.length };
    const warnings: string[] = [];
    whole = await startWhole(halves.map((h) => addr(h.net)), key, warnings);
    const w = whole;
    await waitFor(() => w.wiring.sync.round >= 0 && w.wiring.sync.status().phase !== 'entering', { timeoutMs: 600_000, intervalMs: 100, what: 'W entered' });
    const entered = w.wiring.sync.round;
    const enteredAt = Date.now();
    const waited = roundsWhileEntering();
    const restartRounds = Math.max(a.seen.length - before.a, b.seen.length - before.b);
    // W's first rounds after its entry: a full member, and equal hashes with A and B
    await waitFor(() => w.rounds.filter((r) => r.round >= entered + 1).length >= 2, { timeoutMs: 600_000, intervalMs: 200, what: 'W closes two rounds after its entry' });
    const last = w.rounds.at(-1)!.round;
    await waitFor(() => halves.every((h) => h.seen.some((s) => s.round >= last)), { timeoutMs: 300_000, intervalMs: 200, what: 'A and B past W\'s last round' });
    if (process.env.SYNC_TEST_LOG !== undefined) for (const h of halves) console.error(h.name, JSON.stringify(h.seen.map((s) => ({ round: s.round, members: s.report.members.map((m) => m.slice(-4)), waived: s.report.waived.map((m) => m.slice(-4)), outcome: s.report.outcome, ms: s.report.syncMs }))));

    // from W's first status answers of both halves to its entry: the round they are in (it still counts W's old
    // incarnation) closes, W enters the next with the state it closed, and its download may overlap one more round;
    // a third covers a round shorter than W's 200 ms status poll (CI closed one every ~0.2 s). W's own restart (a
    // libp2p node, a worker, dialling) is not the protocol's and is not counted: CI closed 6 rounds during it
    assert.ok(waited <= 3, `W entered round ${entered} (stopped in round ${round}) after ${waited} rounds of the half holders since it heard them (${restartRounds} since it stopped; at most 3)`);
    assert.deepEqual(warnings.filter((x) => x.includes('download failed') || x.includes('could not take')), [], 'every download of W verified at once');
    // every round A and B closed while W was back and entering waited for no Δ of W's to the deadline
    for (const h of halves) for (const s of h.seen.filter((x) => x.at >= stoppedAt && x.round <= entered)) assert.ok(s.report.syncMs < SYNC_MS, `${h.name} round ${s.round} did not wait for the deadline (${s.report.syncMs} ms)`);
    for (const r of w.rounds.filter((x) => x.round > entered)) {
      assert.ok(r.members.includes(a.net.peerId) && r.members.includes(b.net.peerId), `W round ${r.round}: A and B are members`);
      const mine = w.wiring.sync.status().closed.find((c) => c.round === r.round)?.hashes;
      if (mine === undefined) continue; // out of the kept window
      for (const h of halves) {
        const theirs = h.seen.find((s) => s.round === r.round);
        assert.ok(theirs !== undefined, `${h.name} closed round ${r.round}`);
        for (const [layer, hash] of Object.entries(theirs.hashes)) assert.equal(mine[layer], hash, `W and ${h.name} agree on ${layer} after round ${r.round}`);
      }
    }
    console.log(`# rejoin: A and B began ${apart} rounds apart (${b.seen.at(-1)!.round - a.seen.at(-1)!.round} before W); W entered round ${firstEntry} after ${firstWaited} half-holder rounds since it heard them, tied in ${shared.join(',')}; warm-up ${warm} ms; W stopped in round ${round}, entered round ${entered} after ${enteredAt - stoppedAt} ms (${restartRounds} half-holder rounds, ${waited} since it heard them); A ${a.seen.filter((s) => s.at >= stoppedAt).map((s) => `${s.round}:${s.report.syncMs}`).join(' ')} ms`);
  });
});
