/**
 * The layer pool plans soon after a holder's death (session 30): the coalescing rule (pool/early-round.ts) and the
 * death-caused restore (placement.ts restoresConfirmedDeath) over plain data, and PoolService over fakes and a fake
 * clock (node:test's mocked setTimeout and Date): a holder that leaves makes this node restore its layers on the
 * second round, `earlyMs` after the first, itself `earlyMs` after the leave (before: three rounds a tick apart, the
 * first at the next tick: 20-30 s at the 10 s tick); a flood of deaths costs one early round, churn at most one per
 * `earlyMs`; a peer dead and back alive within the window causes no move; without a death a move keeps the stable
 * rule. The service tests fail on the code before it (no early round: nothing happens within seconds of the leave).
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { ComputeClient } from '../../../src/compute/client.js';
import { NANO } from '../../../src/model/index.js';
import { earlyRoundAt, MIN_REPLICAS, PoolService, restoresConfirmedDeath, type PoolHolder, type PoolSpan, type PoolView } from '../../../src/pool/index.js';
import type { HolderRecord } from '../../../src/protocols/holder-record.js';
import { LivenessTracker, type HeartbeatInfo } from '../../../src/protocols/liveness.js';
import type { RpcNode } from '../../../src/protocols/rpc/service.js';

const L = NANO.num_hidden_layers;

describe('earlyRoundAt (coalescing)', () => {
  it('a first ask runs gapMs later; asks while one is due join it; two early rounds are gapMs apart', () => {
    assert.equal(earlyRoundAt({ lastMs: undefined, dueMs: undefined }, 1000, 2000), 3000);
    // one already due: the ask joins it, whatever the time
    assert.equal(earlyRoundAt({ lastMs: undefined, dueMs: 3000 }, 1001, 2000), undefined);
    assert.equal(earlyRoundAt({ lastMs: 500, dueMs: 3000 }, 2999, 2000), undefined);
    // after an early round at 3000, an ask at 3500 waits for 5500 (gap from the ask; the last round is as far)
    assert.equal(earlyRoundAt({ lastMs: 3000, dueMs: undefined }, 3500, 2000), 5500);
    // an ask long after the last round: gapMs from the ask
    assert.equal(earlyRoundAt({ lastMs: 3000, dueMs: undefined }, 60_000, 2000), 62_000);
    // the last round is later than now (a clock step back): the gap from it still holds
    assert.equal(earlyRoundAt({ lastMs: 10_000, dueMs: undefined }, 5_000, 2000), 12_000);
  });

  it('a burst of asks, run as the service runs them: at most one round per gap', () => {
    let state: { lastMs: number | undefined; dueMs: number | undefined } = { lastMs: undefined, dueMs: undefined };
    const ran: number[] = [];
    // an ask every 10 ms for 10 s (churn); a round runs when it is due
    for (let t = 0; t <= 10_000; t += 10) {
      if (state.dueMs !== undefined && state.dueMs <= t) {
        ran.push(state.dueMs);
        state = { lastMs: state.dueMs, dueMs: undefined };
      }
      const at = earlyRoundAt(state, t, 1000);
      if (at !== undefined) state = { lastMs: state.lastMs, dueMs: at };
    }
    // the ask made at the instant a round runs is due gapMs later: one round a second, never more
    assert.deepEqual(ran, [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000]);
    for (let i = 1; i < ran.length; i++) assert.ok(ran[i]! - ran[i - 1]! >= 1000);
  });
});

function holder(peerId: string, span: PoolSpan, state: PoolHolder['state'] = 'alive'): PoolHolder {
  return { peerId, span, state, tokensPerSec: 100, memoryMb: 0 };
}

describe('restoresConfirmedDeath', () => {
  const view = (cState: PoolHolder['state']): PoolView => ({
    numLayers: 4,
    holders: [holder('a', { start: 0, end: 2 }), holder('b', { start: 0, end: 2 }), holder('c', { start: 2, end: 4 }, cState), holder('d', { start: 2, end: 4 }), holder('e', { start: 0, end: 2 })],
  });

  it('a restore onto layers a dead holder held and that are short of MIN_REPLICAS: yes', () => {
    assert.equal(MIN_REPLICAS, 2);
    assert.equal(restoresConfirmedDeath(view('dead'), { reason: 'restore', to: { start: 2, end: 4 } }), true);
    // partly overlapping target
    assert.equal(restoresConfirmedDeath(view('dead'), { reason: 'restore', to: { start: 1, end: 3 } }), true);
  });

  it('no: a throughput move, a stale holder (still a replica), a target the dead holder did not hold, layers back at 2', () => {
    assert.equal(restoresConfirmedDeath(view('dead'), { reason: 'throughput', to: { start: 2, end: 4 } }), false);
    assert.equal(restoresConfirmedDeath(view('stale'), { reason: 'restore', to: { start: 2, end: 4 } }), false);
    assert.equal(restoresConfirmedDeath(view('dead'), { reason: 'restore', to: { start: 0, end: 2 } }), false);
    // the dead holder's layers have 2 live holders again (someone restored them): nothing of its death is left
    const back: PoolView = { numLayers: 4, holders: [...view('dead').holders, holder('f', { start: 2, end: 4 })] };
    assert.equal(restoresConfirmedDeath(back, { reason: 'restore', to: { start: 2, end: 4 } }), false);
    // a young network short of holders (nobody died): the stable rule
    const young: PoolView = { numLayers: 4, holders: [holder('a', { start: 0, end: 2 }), holder('b', { start: 0, end: 2 }), holder('e', { start: 0, end: 2 }), holder('d', { start: 2, end: 4 })] };
    assert.equal(restoresConfirmedDeath(young, { reason: 'restore', to: { start: 2, end: 4 } }), false);
    // a dead holder whose span lies outside the model counts for nothing
    const outside: PoolView = { numLayers: 4, holders: [...young.holders, holder('z', { start: 4, end: 6 }, 'dead')] };
    assert.equal(restoresConfirmedDeath(outside, { reason: 'restore', to: { start: 2, end: 4 } }), false);
  });
});

const TICK_MS = 10_000;
const EARLY_MS = 1_000;
/** Self's layer rate: a span of 2 layers runs at 100 tokens/s, as every peer's record says. */
const LAYER_TPS = 200;

interface Harness {
  pool: PoolService;
  liveness: LivenessTracker;
  /** The span self took, and the other half. */
  mine: PoolSpan;
  other: PoolSpan;
  /** Clock times at which a move began (beforeMove). */
  moves: number[];
  /** Planning rounds so far (each fetches the record of the always-live peer `p3`). */
  rounds: () => number;
  beat(peer: string, span: PoolSpan | undefined, extra?: Partial<HeartbeatInfo>): void;
  /** Runs the fake clock forward to `ms`, letting each round's promises settle. */
  advanceTo(ms: number): Promise<void>;
}

const settle = async (): Promise<void> => {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
};

/**
 * Self ('p0', the genesis node, auto) holds one half; p1 and p2 the same half, p3 and p4 the other. Every layer has
 * 2 live holders or more and no move is planned. A leave of p4 leaves the other half with one holder: the plan moves
 * p0 (the lowest id among the holders of the half with three) onto it.
 */
async function harness(t: TestContext, live: { staleMs: number; deadMs: number } = { staleMs: 3_600_000, deadMs: 7_200_000 }): Promise<Harness> {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  const clock = { now: () => Date.now() };
  const liveness = new LivenessTracker({ ...live, clock });
  let recordsOfP3 = 0;
  const seq = new Map<string, bigint>();
  const moves: number[] = [];
  const recordOf = async (peer: string): Promise<HolderRecord | undefined> => {
    await Promise.resolve();
    if (peer === 'p3') recordsOfP3++;
    const p = liveness.get(peer);
    if (p?.heartbeat.span === undefined) return undefined;
    return { networkId: 'n', peerId: peer, multiaddrs: [], span: p.heartbeat.span, capacity: { memoryMb: 0, tokensPerSec: 100 }, timestampMs: clock.now(), expiresMs: clock.now() + 60_000, signature: '' };
  };
  const compute = { run: async (req: { type: string }) => (req.type === 'modelHash' ? { hash: 'h'.repeat(64) } : {}) } as unknown as ComputeClient;
  const pool = new PoolService({
    mode: 'auto',
    config: NANO,
    configIsLocal: true,
    memoryMb: undefined,
    compute,
    network: {
      peerId: 'p0',
      rpc: { handle: async () => {} } as unknown as RpcNode,
      scores: { penalize: () => {} } as never,
      liveness,
      recordOf,
      holdSpan: async () => {},
      isGenesis: () => true,
    },
    loadLocal: async () => ({ hash: 'h'.repeat(64) }),
    tickMs: TICK_MS,
    earlyMs: EARLY_MS,
    settleMs: 0,
    hashRefreshMs: 3_600_000,
    capacity: { memoryMb: 0, maxLayers: 2, layerMb: 1, layerDecodeMs: 1, layerPrefillMs: 1, layerTokensPerSec: LAYER_TPS },
    // the move stops here (no download): the test only asks when it began
    beforeMove: async () => {
      moves.push(clock.now());
      throw new Error('test: move stopped before the download');
    },
  });
  t.after(() => pool.stop());
  const advanceTo = async (ms: number): Promise<void> => {
    while (Date.now() < ms) {
      t.mock.timers.tick(Math.min(50, ms - Date.now()));
      await settle();
    }
  };
  await pool.start();
  await advanceTo(Date.now() + 100);
  const mine = pool.span();
  assert.ok(mine !== undefined, 'the genesis node took a span');
  assert.equal(mine.end - mine.start, 2);
  const other = mine.start === 0 ? { start: 2, end: L } : { start: 0, end: 2 };
  const beat = (peer: string, span: PoolSpan | undefined, extra: Partial<HeartbeatInfo> = {}): void => {
    const s = (seq.get(peer) ?? 0n) + 1n;
    seq.set(peer, s);
    liveness.observe(peer, { peerId: peer, span, load: 0, freeMemoryMb: 0, trainingStep: 0n, timestampMs: clock.now(), seq: s, ...extra });
  };
  for (const p of ['p1', 'p2']) beat(p, mine);
  for (const p of ['p3', 'p4']) beat(p, other);
  // three regular ticks with the full view: no move planned
  await advanceTo(Date.now() + 3 * TICK_MS + 100);
  assert.deepEqual(moves, [], 'a steady view plans no move');
  return { pool, liveness, mine, other, moves, rounds: () => recordsOfP3, beat, advanceTo };
}

describe('PoolService: an early round after a holder dies', () => {
  it('a holder that leaves: this node starts the restoring move 2 × earlyMs later (before: 20-30 s, three rounds a tick apart)', async (t) => {
    const h = await harness(t);
    const left = Date.now();
    h.beat('p4', h.other, { leaving: true });
    assert.equal(h.liveness.state('p4'), 'dead');
    // the first early round plans the restore, the second (earlyMs later) confirms it and moves
    await h.advanceTo(left + 2 * EARLY_MS + 500);
    assert.equal(h.moves.length, 1, `the restoring move began within ${2 * EARLY_MS + 500} ms of the leave`);
    const took = h.moves[0]! - left;
    assert.ok(took >= 2 * EARLY_MS && took <= 2 * EARLY_MS + 100, `moved ${took} ms after the leave`);
  });

  it('a holder that crashed (silent until dead): the restoring move 2 × earlyMs after the tracker marks it dead', async (t) => {
    const h = await harness(t, { staleMs: 15_000, deadMs: 60_000 });
    // p4 falls silent; the others heartbeat every 5 s; the tracker's check runs every second (its timer, by hand)
    let dead: number | undefined;
    h.liveness.events.on('peer:dead', (p) => {
      if (p.peer === 'p4') dead ??= Date.now();
    });
    const until = Date.now() + 70_000;
    while (Date.now() < until && h.moves.length === 0) {
      if (Date.now() % 5000 < 1000) for (const p of ['p1', 'p2']) h.beat(p, h.mine);
      if (Date.now() % 5000 < 1000) h.beat('p3', h.other);
      h.liveness.check();
      await h.advanceTo(Date.now() + 1000);
    }
    assert.ok(dead !== undefined, 'p4 went dead');
    assert.equal(h.moves.length, 1, 'the restoring move began');
    const took = h.moves[0]! - dead;
    assert.ok(took >= 2 * EARLY_MS && took <= 2 * EARLY_MS + 100, `moved ${took} ms after p4 went dead`);
  });

  it('a flood of deaths costs one early round, churn at most one per earlyMs; never one per event', async (t) => {
    const h = await harness(t);
    // 200 tracked holders whose spans lie outside the model (they leave no layer to restore, so no move)
    const flood = Array.from({ length: 200 }, (_, i) => `f${String(i).padStart(3, '0')}`);
    for (const f of flood) h.beat(f, { start: L, end: L + 2 });
    // align just after a regular tick, so that the next one is TICK_MS away
    const r0 = h.rounds();
    await h.advanceTo(Date.now() + TICK_MS);
    assert.equal(h.rounds(), r0 + 1);
    const t0 = Date.now();
    const before = h.rounds();
    for (const f of flood.slice(0, 100)) h.beat(f, { start: L, end: L + 2 }, { leaving: true });
    await h.advanceTo(t0 + EARLY_MS + 100);
    assert.equal(h.rounds() - before, 1, 'one early round for 100 deaths at once');
    // churn: the other 100 leave one every 50 ms over 5 s
    const t1 = Date.now();
    const mid = h.rounds();
    for (const f of flood.slice(100)) {
      h.beat(f, { start: L, end: L + 2 }, { leaving: true });
      await h.advanceTo(Date.now() + 50);
    }
    const span = Date.now() - t1;
    const churnRounds = h.rounds() - mid;
    assert.ok(churnRounds >= 1 && churnRounds <= Math.ceil(span / EARLY_MS) + 1, `${churnRounds} rounds in ${span} ms of churn`);
    assert.deepEqual(h.moves, []);
  });

  it('a holder dead and alive again within the window: no move', async (t) => {
    const h = await harness(t);
    const left = Date.now();
    h.beat('p4', h.other, { leaving: true });
    const r = h.rounds();
    // it comes back (a heartbeat dated after its leaving one) before the first early round
    await h.advanceTo(left + EARLY_MS / 2);
    h.beat('p4', h.other, { timestampMs: Date.now() + 1 });
    assert.equal(h.liveness.state('p4'), 'alive');
    await h.advanceTo(left + 4 * TICK_MS);
    assert.ok(h.rounds() > r, 'rounds ran');
    assert.deepEqual(h.moves, [], 'no move for a peer that came back');
  });

  it('a holder dead and back between the two confirming rounds: no move', async (t) => {
    const h = await harness(t);
    const left = Date.now();
    h.beat('p4', h.other, { leaving: true });
    // the first early round has planned the restore
    await h.advanceTo(left + EARLY_MS + 200);
    h.beat('p4', h.other, { timestampMs: Date.now() + 1 });
    await h.advanceTo(left + 4 * TICK_MS);
    assert.deepEqual(h.moves, [], 'the confirming round saw it alive: no move');
  });

  it('a death of a peer that holds nothing asks for no round', async (t) => {
    const h = await harness(t);
    h.beat('x', undefined);
    await h.advanceTo(Date.now() + TICK_MS);
    const t0 = Date.now();
    const r = h.rounds();
    h.beat('x', undefined, { leaving: true });
    assert.equal(h.liveness.state('x'), 'dead');
    // an early round would run at t0 + EARLY_MS; the next regular tick is ~TICK_MS after the last one
    await h.advanceTo(t0 + 2 * EARLY_MS + 100);
    assert.equal(h.rounds(), r, 'no early round for a holder of nothing');
  });
});
