import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chooseSpan,
  coverage,
  health,
  MIN_REPLICAS,
  planMoves,
  rebalanceBackoffMs,
  REBALANCE_BACKOFF_BASE_MS,
  RESTORE_COOLDOWN_MS,
  servesWeightsTo,
  shouldRebalance,
  THROUGHPUT_TOLERANCE,
  type PoolHolder,
  type PoolView,
} from '../../../src/pool/index.js';
import { layerMb, layersFor, memoryBudgetMb } from '../../../src/pool/capacity.js';
import { NANO } from '../../../src/model/index.js';

const h = (peerId: string, start: number, end: number, tokensPerSec = 100, state: PoolHolder['state'] = 'alive', memoryMb = 0): PoolHolder => ({
  peerId,
  span: { start, end },
  state,
  tokensPerSec,
  memoryMb,
});
const view = (numLayers: number, ...holders: PoolHolder[]): PoolView => ({ numLayers, holders });

describe('coverage', () => {
  it('counts live replicas and throughput per layer; dead holders count for nothing, stale ones do', () => {
    const c = coverage(view(4, h('a', 0, 2, 10), h('b', 1, 4, 20, 'stale'), h('c', 0, 4, 50, 'dead')));
    assert.deepEqual(c.replicas, [1, 2, 1, 1]);
    assert.deepEqual(c.throughput, [10, 30, 20, 20]);
    assert.deepEqual(c.missing, []);
    assert.deepEqual(c.underReplicated, [0, 2, 3]);
    assert.equal(c.replicasMin, 1);
  });

  it('names missing layers, clamps spans past the model and counts a peer once', () => {
    const c = coverage(view(4, h('a', 2, 9), h('a', 0, 4), h('b', 7, 9)));
    assert.deepEqual(c.replicas, [0, 0, 1, 1]);
    assert.deepEqual(c.missing, [0, 1]);
    assert.equal(c.replicasMin, 0);
  });

  it('health: missing, then deficit, then bottleneck', () => {
    assert.deepEqual(health(coverage(view(3, h('a', 0, 3, 5), h('b', 0, 1, 7)))), { missing: 0, deficit: 2, bottleneck: 5 });
    assert.deepEqual(health(coverage(view(3))), { missing: 3, deficit: 3 * MIN_REPLICAS, bottleneck: 0 });
  });
});

describe('chooseSpan', () => {
  it('on an empty network takes the lowest window (tie-break: lowest start)', () => {
    assert.deepEqual(chooseSpan(view(8), { maxLayers: 3, layerTokensPerSec: 10 }), { start: 0, end: 3 });
  });

  it('takes the whole model when it fits, nothing when it holds no layer', () => {
    assert.deepEqual(chooseSpan(view(4, h('a', 0, 4)), { maxLayers: 9, layerTokensPerSec: 1 }), { start: 0, end: 4 });
    assert.equal(chooseSpan(view(4), { maxLayers: 0, layerTokensPerSec: 1 }), undefined);
    assert.equal(chooseSpan(view(0), { maxLayers: 3, layerTokensPerSec: 1 }), undefined);
  });

  it('fills missing layers before once-held ones, and once-held before the lowest throughput', () => {
    // layers 0-3 held twice (slow), 4-5 once (fast), 6-7 by nobody
    const v = view(8, h('a', 0, 4, 1), h('b', 0, 4, 1), h('c', 4, 6, 1000));
    assert.deepEqual(chooseSpan(v, { maxLayers: 2, layerTokensPerSec: 10 }), { start: 6, end: 8 });
    assert.deepEqual(chooseSpan(v, { maxLayers: 4, layerTokensPerSec: 10 }), { start: 4, end: 8 });
    // once 6-7 are held twice, the once-held 4-5 win over the slow twice-held 0-3
    const v2 = view(8, ...v.holders, h('d', 6, 8, 1), h('e', 6, 8, 1));
    assert.deepEqual(chooseSpan(v2, { maxLayers: 2, layerTokensPerSec: 10 }), { start: 4, end: 6 });
  });

  it('with every layer at two replicas, goes to the lowest total throughput', () => {
    const v = view(6, h('a', 0, 6, 10), h('b', 0, 3, 50), h('c', 3, 6, 20));
    assert.deepEqual(chooseSpan(v, { maxLayers: 3, layerTokensPerSec: 10 }), { start: 3, end: 6 });
    // replicas above MIN_REPLICAS do not help a layer: only throughput counts then
    const v2 = view(4, h('a', 0, 4, 10), h('b', 0, 4, 10), h('c', 0, 2, 10), h('d', 2, 4, 1));
    assert.deepEqual(chooseSpan(v2, { maxLayers: 2, layerTokensPerSec: 10 }), { start: 2, end: 4 });
  });

  it('compares whole windows: the weakest layer first, then the next weakest', () => {
    // window [0,2) holds keys (2,5),(2,9); window [1,3) holds (2,9),(2,6); window [2,4) holds (2,6),(2,5)
    const v = view(4, h('a', 0, 1, 5), h('a2', 0, 1, 0), h('b', 1, 2, 9), h('b2', 1, 2, 0), h('c', 2, 3, 6), h('c2', 2, 3, 0), h('d', 3, 4, 5), h('d2', 3, 4, 0));
    // [0,2) sorted (5,9), [2,4) sorted (5,6): [2,4) is weaker on the second key
    assert.deepEqual(chooseSpan(v, { maxLayers: 2, layerTokensPerSec: 1 }), { start: 2, end: 4 });
  });

  it('is deterministic: the same view in any order gives the same span', () => {
    const holders = [h('a', 0, 3, 7), h('b', 2, 5, 7), h('c', 5, 8, 3), h('d', 1, 2, 1, 'dead')];
    const want = chooseSpan(view(8, ...holders), { maxLayers: 3, layerTokensPerSec: 5 });
    for (let i = 0; i < 10; i++) {
      const shuffled = [...holders].sort(() => (i % 2 === 0 ? 1 : -1) * ((i * 7919) % 3) - 1);
      assert.deepEqual(chooseSpan(view(8, ...shuffled), { maxLayers: 3, layerTokensPerSec: 5 }), want);
    }
  });

  it('a genesis holder plus four half-model joiners reach ≥ 2 live replicas on every layer', () => {
    const L = 8;
    const holders: PoolHolder[] = [h('genesis', 0, L, 50)];
    for (const p of ['j1', 'j2', 'j3', 'j4']) {
      const span = chooseSpan(view(L, ...holders), { maxLayers: L / 2, layerTokensPerSec: 200 })!;
      holders.push(h(p, span.start, span.end, 200 / (span.end - span.start)));
    }
    assert.deepEqual(
      holders.slice(1).map((x) => [x.span.start, x.span.end]),
      [
        [0, 4],
        [4, 8],
        [0, 4],
        [4, 8],
      ],
    );
    assert.equal(coverage(view(L, ...holders)).replicasMin, 3);
  });

  it('equal joiners whose measured speeds differ by noise (< THROUGHPUT_TOLERANCE) still split 2/2; a clearly faster holder still decides', () => {
    const L = 8;
    // measured on one busy machine: 1251, 567, 4194 and 450 tokens/s per span were seen for equal nodes (pool.test.ts)
    const speeds = [1251, 567, 1900, 450];
    const holders: PoolHolder[] = [h('genesis', 0, L, 700)];
    speeds.forEach((tps, i) => {
      const span = chooseSpan(view(L, ...holders), { maxLayers: L / 2, layerTokensPerSec: tps * (L / 2) })!;
      holders.push(h(`j${i}`, span.start, span.end, tps));
    });
    const starts = holders.slice(1).map((x) => x.span.start);
    assert.equal(starts.filter((x) => x === 0).length, 2, `starts ${JSON.stringify(starts)}`);
    assert.equal(starts.filter((x) => x === L / 2).length, 2);
    // a GPU-class holder on 0-4 (10x the others): the next joiner goes to 4-8 even though 0-4 has fewer replicas
    const fast = view(L, h('genesis', 0, L, 700), h('gpu', 0, 4, 20_000), h('a', 4, 8, 1000), h('b', 4, 8, 1000));
    assert.deepEqual(chooseSpan(fast, { maxLayers: 4, layerTokensPerSec: 4000 }), { start: 4, end: 8 });
    assert.equal(THROUGHPUT_TOLERANCE, 4);
  });
});

describe('chooseSpan tieBreak (joiners that see the same view)', () => {
  // the chaos run (4 nodes, 4 layers): three joiners placed within 3 s of each other, each saw only the genesis node,
  // and all took 0:2; killing the genesis node then left 2:4 uncovered
  const genesisOnly = (L: number): PoolView => view(L, h('genesis', 0, L, 1467));
  const cap = (k: number): { maxLayers: number; layerTokensPerSec: number } => ({ maxLayers: k, layerTokensPerSec: 1165 });
  const peers = Array.from({ length: 400 }, (_, i) => `16Uiu2HAm-peer-${i}`);

  it('without it a full tie still goes to the lowest start (unchanged rule)', () => {
    for (const p of peers.slice(0, 20)) assert.deepEqual(chooseSpan(genesisOnly(4), cap(2), { requireCovered: true }), { start: 0, end: 2 }, p);
  });

  it('spreads joiners over the tiling grid: both halves of a 4-layer model, every grid window of a 64-layer one', () => {
    const starts = new Map<number, number>();
    for (const p of peers) {
      const s = chooseSpan(genesisOnly(4), cap(2), { requireCovered: true, tieBreak: p })!;
      starts.set(s.start, (starts.get(s.start) ?? 0) + 1);
    }
    // only grid windows (0:2 and 2:4), each about half of the time
    assert.deepEqual([...starts.keys()].sort(), [0, 2]);
    for (const n of starts.values()) assert.ok(n > 150 && n < 250, `split ${JSON.stringify([...starts])}`);
    // 64 layers, spans of 17: grid starts 0, 17, 34 and the last window 47; each drawn, none other
    const big = new Map<number, number>();
    for (const p of peers) {
      const s = chooseSpan(genesisOnly(64), cap(17), { requireCovered: true, tieBreak: p })!;
      big.set(s.start, (big.get(s.start) ?? 0) + 1);
    }
    assert.deepEqual([...big.keys()].sort((a, b) => a - b), [0, 17, 34, 47]);
    for (const n of big.values()) assert.ok(n > 60, `split ${JSON.stringify([...big])}`);
  });

  it('is stable for one node and one view, and never overrides a real difference between windows', () => {
    for (const p of peers.slice(0, 20)) {
      const a = chooseSpan(genesisOnly(8), cap(2), { requireCovered: true, tieBreak: p });
      assert.deepEqual(chooseSpan(genesisOnly(8), cap(2), { requireCovered: true, tieBreak: p }), a);
      // 0:4 already held twice more: every joiner goes to the weaker 4:8, whatever its hash
      const v = view(8, h('genesis', 0, 8, 700), h('a', 0, 4, 700), h('b', 0, 4, 700));
      assert.deepEqual(chooseSpan(v, cap(4), { requireCovered: true, tieBreak: p }), { start: 4, end: 8 });
    }
    // the equal-joiner case above (sequential placement) still ends with 2 replicas per layer under any peer ids
    for (let r = 0; r < 20; r++) {
      const holders: PoolHolder[] = [h('genesis', 0, 8, 50)];
      for (let j = 0; j < 4; j++) {
        const s = chooseSpan(view(8, ...holders), { maxLayers: 4, layerTokensPerSec: 200 }, { requireCovered: true, tieBreak: `n${r}-${j}` })!;
        holders.push(h(`n${r}-${j}`, s.start, s.end, 50));
      }
      assert.equal(coverage(view(8, ...holders.slice(1))).replicasMin, 2, JSON.stringify(holders.map((x) => x.span)));
    }
  });
});

describe('weight sources: int8 holders serve no weights (issue 8)', () => {
  const q8 = (peerId: string, start: number, end: number, tokensPerSec = 100, state: PoolHolder['state'] = 'alive', memoryMb = 0): PoolHolder => ({ ...h(peerId, start, end, tokensPerSec, state, memoryMb), weights: 'int8' });

  it('servesWeightsTo: float32 holders serve joiners of either format, int8 holders serve none', () => {
    for (const fmt of ['f32', 'int8'] as const) {
      assert.equal(servesWeightsTo(h('a', 0, 1), fmt), true);
      assert.equal(servesWeightsTo(q8('q', 0, 1), fmt), false);
    }
  });

  it('coverage counts int8 holders as replicas but not as sources', () => {
    const c = coverage(view(4, h('g', 0, 2), q8('q', 0, 4), q8('r', 2, 4, 100, 'dead'), h('s', 3, 4, 100, 'stale')));
    assert.deepEqual(c.replicas, [2, 2, 1, 2]);
    assert.deepEqual(c.sources, [1, 1, 0, 1]);
  });

  it('coverage(view, format): the sources for either format are the same float32 holders (one place counts them)', () => {
    const v = view(4, h('g', 0, 2), q8('q', 0, 4), h('s', 2, 4, 100, 'stale'), h('x', 1, 3, 100, 'dead'));
    assert.deepEqual(coverage(v, 'int8').sources, coverage(v, 'f32').sources);
    assert.deepEqual(coverage(v).sources, [1, 1, 1, 1]);
  });

  it('a holder marked noSource (no verified record, or named only by the registry) is a replica, not a source', () => {
    const unverified: PoolHolder = { ...h('u', 2, 4), noSource: true };
    assert.equal(servesWeightsTo(unverified), false);
    const v = view(4, h('g', 0, 2), unverified);
    const c = coverage(v);
    assert.deepEqual(c.replicas, [1, 1, 1, 1]);
    assert.deepEqual(c.sources, [1, 1, 0, 0]);
    // a whole-model joiner finds no window it can download (it waits instead of seeding 2:4); a half-model one
    // takes the window it can download, and without requireCovered (the genesis node) the view decides as before
    assert.equal(chooseSpan(v, { maxLayers: 4, layerTokensPerSec: 100 }, { requireCovered: true }), undefined);
    for (const tieBreak of ['peer-a', 'peer-b', 'peer-c']) assert.deepEqual(chooseSpan(v, { maxLayers: 2, layerTokensPerSec: 100 }, { requireCovered: true, tieBreak }), { start: 0, end: 2 }, tieBreak);
    assert.deepEqual(chooseSpan(v, { maxLayers: 4, layerTokensPerSec: 100 }), { start: 0, end: 4 });
  });

  it('a joiner never takes a window whose layers only int8 holders hold, even where it is the weakest; the genesis node may', () => {
    // 0-1: a float32 holder; 2-3: an int8 holder 10x slower (beyond THROUGHPUT_TOLERANCE): 2-3 is the weakest window
    const v = view(4, h('g', 0, 2, 100), q8('q', 2, 4, 10));
    const cap = { maxLayers: 2, layerTokensPerSec: 100 };
    assert.deepEqual(chooseSpan(v, cap), { start: 2, end: 4 }, 'without requireCovered (the genesis node) the weakest window');
    for (const weights of ['f32', 'int8'] as const) {
      for (const tieBreak of [undefined, 'peer-a', 'peer-b', 'peer-c']) {
        assert.deepEqual(chooseSpan(v, cap, { requireCovered: true, weights, ...(tieBreak === undefined ? {} : { tieBreak }) }), { start: 0, end: 2 }, `${weights} joiner, tieBreak ${tieBreak}`);
      }
    }
    // a window that takes in an int8-only layer is out too; with no float32 source anywhere, nothing
    assert.equal(chooseSpan(v, { maxLayers: 3, layerTokensPerSec: 100 }, { requireCovered: true }), undefined);
    assert.equal(chooseSpan(view(4, q8('q', 0, 4), q8('r', 0, 4)), cap, { requireCovered: true }), undefined);
    // an int8-only layer the node holds already counts (a float32 node keeps what it holds)
    assert.deepEqual(chooseSpan(v, { maxLayers: 3, layerTokensPerSec: 100 }, { requireCovered: true, have: { start: 2, end: 3 } }), { start: 0, end: 3 });
  });

  it('a restoring move never goes onto layers only int8 holders hold', () => {
    // 2-3 lost their float32 holder x; the int8 holder q keeps them at one replica. a (float32, memory for all 4
    // layers) would widen over 2-3 if anyone could serve it their weights
    const v = (weights?: 'int8'): PoolView => view(4, h('a', 0, 2, 50, 'alive', 400), h('b', 0, 2, 50, 'alive', 200), { ...h('q', 2, 4, 50, 'alive', 200), ...(weights === undefined ? {} : { weights }) }, h('x', 2, 4, 50, 'dead', 200));
    assert.deepEqual(planMoves(v('int8'), { layerMb: 100, layerMbInt8: 100 }), []);
    assert.deepEqual(
      planMoves(v(), { layerMb: 100 }).map((m) => [m.peerId, m.to]),
      [['a', { start: 0, end: 4 }]],
      'with a float32 q, a widens and downloads 2-3 from it',
    );
  });

  it('an int8 mover re-downloads its whole span: its own layers are no source, a float32 mover keeps them', () => {
    // q (int8, memory for all 4 layers) holds 0-1, which lost their other holder; g (float32) holds 2-3
    const v = (weights?: 'int8'): PoolView => view(4, { ...h('q', 0, 2, 50, 'alive', 400), ...(weights === undefined ? {} : { weights }) }, h('g', 2, 4, 50, 'alive', 200), h('d', 0, 2, 50, 'dead', 200));
    assert.deepEqual(
      planMoves(v(), { layerMb: 100 }).map((m) => [m.peerId, m.to]),
      [['q', { start: 0, end: 4 }]],
      'a float32 q widens: it keeps 0-1 and downloads 2-3 from g',
    );
    assert.deepEqual(planMoves(v('int8'), { layerMb: 100, layerMbInt8: 100 }), [], 'an int8 q would have to download 0-1, which nobody serves');
  });
});

describe('planMoves (restoration and rebalancing)', () => {
  const opts = { layerMb: 100 };

  it('an int8 holder\'s memory counts in int8 layers: it widens over a dead holder\'s layers that f32 sizing says it cannot hold', () => {
    // 8 layers; 0-3: g + q (int8, 40 MiB: 4 f32 layers of 10 MiB, 13 int8 ones of 3 MiB); 4-7: g alone once x died
    const q: PoolHolder = { ...h('q', 0, 4, 40, 'alive', 40), weights: 'int8' };
    const v = view(8, h('g', 0, 8, 10, 'alive', 80), q, h('x', 4, 8, 40, 'dead', 40));
    assert.deepEqual(planMoves(v, { layerMb: 10 }), [], 'in f32 layers q fits only what it holds: nothing can restore');
    const plan = planMoves(v, { layerMb: 10, layerMbInt8: 3 });
    assert.equal(plan.length, 1);
    assert.equal(plan[0]!.peerId, 'q');
    assert.deepEqual(plan[0]!.to, { start: 0, end: 8 });
    assert.equal(plan[0]!.after.deficit, 0);
    // a float32 holder of the same memory is still sized in f32 layers
    assert.deepEqual(planMoves(view(8, h('g', 0, 8, 10, 'alive', 80), h('q', 0, 4, 40, 'alive', 40), h('x', 4, 8, 40, 'dead', 40)), { layerMb: 10, layerMbInt8: 3 }), []);
  });

  it('a dead holder: a redundant holder moves onto its layers, never opening a new hole', () => {
    // 0-3: genesis + x (x dead); 4-7: genesis + y + z. y and z are equally redundant: the lower peerId (y) moves
    const v = view(8, h('g', 0, 8, 10, 'alive', 800), h('x', 0, 4, 40, 'dead', 400), h('y', 4, 8, 40, 'alive', 400), h('z', 4, 8, 40, 'alive', 400));
    const plan = planMoves(v, opts);
    assert.equal(plan.length, 1);
    assert.equal(plan[0]!.peerId, 'y');
    assert.deepEqual(plan[0]!.to, { start: 0, end: 4 });
    assert.equal(plan[0]!.reason, 'restore');
    assert.equal(plan[0]!.after.deficit, 0);
    // z is not named: only one node moves (no stampede)
    assert.equal(shouldRebalance(v, 'z', { movesMs: [] }, 0, opts).move, false);
    const y = shouldRebalance(v, 'y', { movesMs: [] }, 0, opts);
    assert.ok(y.move);
    assert.deepEqual(y.span, { start: 0, end: 4 });
  });

  it('a node with spare memory widens its span over the lost layers', () => {
    // a holds 0-2 but has memory for all 4 layers; b (the only other holder of 2-4) died
    const v = view(4, h('a', 0, 2, 10, 'alive', 400), h('g', 0, 4, 10, 'alive', 400), h('b', 2, 4, 10, 'dead', 200));
    const plan = planMoves(v, opts);
    assert.deepEqual(
      plan.map((m) => [m.peerId, m.to]),
      [['a', { start: 0, end: 4 }]],
    );
  });

  it('a whole-model holder is never planned to move, whatever its memory and speed (its outer sync would not follow)', () => {
    // a whole-model replica trains in its own worker with an outer sync over the whole model (node/node.ts
    // startTraining); that does not follow a move to a partial span (docs/TRAINING.md), so placement must keep it:
    // holderCapacity counts the layers a holder holds as its capacity's floor, and a span of every layer is the only
    // window of that length. Random views: whole-model holders with little or no memory and any speed, partial
    // holders alive or dead (holes to restore, bottlenecks to lift)
    let seed = 12345;
    const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let moves = 0;
    for (let t = 0; t < 300; t++) {
      const L = 2 + Math.floor(rand() * 7);
      const holders: PoolHolder[] = [];
      const whole = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < whole; i++) holders.push(h(`w${i}`, 0, L, 1 + rand() * 500, 'alive', Math.floor(rand() * 3) * 50));
      for (let i = 0, n = Math.floor(rand() * 8); i < n; i++) {
        const start = Math.floor(rand() * L);
        const end = start + 1 + Math.floor(rand() * (L - start));
        holders.push(h(`p${i}`, start, end, 1 + rand() * 500, rand() < 0.3 ? 'dead' : 'alive', Math.floor(rand() * 10) * 100));
      }
      const plan = planMoves(view(L, ...holders), { layerMb: 100, minGain: 0.01 });
      moves += plan.length;
      for (const m of plan) assert.ok(!m.peerId.startsWith('w'), `view ${t}: a whole-model holder planned to move ${JSON.stringify(m)}`);
    }
    assert.ok(moves > 0, 'the views did plan moves (of partial holders)');
  });

  it('the only holder of a layer never moves away from it', () => {
    const v = view(4, h('a', 0, 2, 10, 'alive', 200), h('b', 2, 4, 10, 'alive', 200));
    assert.deepEqual(planMoves(v, opts), []);
  });

  it('churn: several dead holders are restored by several movers, each named once', () => {
    const hs: PoolHolder[] = [h('g', 0, 8, 10, 'alive', 800)];
    for (let i = 0; i < 6; i++) hs.push(h(`n${i}`, i % 2 === 0 ? 0 : 4, i % 2 === 0 ? 4 : 8, 30, 'alive', 400));
    // kill every holder of 0-4 except genesis
    const v = view(8, ...hs.map((x) => (x.span.start === 0 && x.peerId !== 'g' ? { ...x, state: 'dead' as const } : x)));
    assert.deepEqual(coverage(v).underReplicated, [0, 1, 2, 3]);
    const plan = planMoves(v, opts);
    const peers = plan.map((m) => m.peerId);
    assert.equal(new Set(peers).size, peers.length);
    assert.ok(plan.every((m) => m.reason === 'restore' || m.reason === 'throughput'));
    let after = v;
    for (const m of plan) after = { numLayers: 8, holders: after.holders.map((x) => (x.peerId === m.peerId ? { ...x, span: m.to } : x)) };
    assert.ok(coverage(after).replicasMin >= MIN_REPLICAS);
  });

  it('a throughput move happens only above the margin', () => {
    // both layers held by g (fast) and two slow nodes; moving one slow node does not raise the bottleneck
    const even = view(2, h('g', 0, 2, 100, 'alive', 200), h('a', 0, 1, 10, 'alive', 100), h('b', 1, 2, 10, 'alive', 100));
    assert.deepEqual(planMoves(even, opts), []);
    // layer 1 is far weaker than layer 0: c moves from 0 to 1 (the bottleneck rises from 110 to 200+)
    const skew = view(2, h('g', 0, 2, 100, 'alive', 200), h('a', 0, 1, 100, 'alive', 100), h('c', 0, 1, 100, 'alive', 100), h('b', 1, 2, 10, 'alive', 100));
    const plan = planMoves(skew, opts);
    assert.equal(plan.length, 1);
    assert.equal(plan[0]!.reason, 'throughput');
    assert.deepEqual(plan[0]!.to, { start: 1, end: 2 });
    assert.equal(plan[0]!.peerId, 'a'); // tie between a and c: the lower peerId
    // with a 10x margin nobody moves
    assert.deepEqual(planMoves(skew, { layerMb: 100, minGain: 10 }), []);
  });

  it('no throughput move while a live holder has an unknown speed (its record not fetched yet); restores still happen', () => {
    // b's speed is unknown (0): layer 1 looks like a bottleneck of 0 that moving a or c would lift; it is not one
    const unknown = view(2, h('g', 0, 2, 100, 'alive', 200), h('a', 0, 1, 100, 'alive', 100), h('c', 0, 1, 100, 'alive', 100), h('b', 1, 2, 0, 'alive', 100));
    assert.deepEqual(planMoves(unknown, opts), []);
    // a dead holder's unknown speed does not matter; the same skew with b known moves a (see above)
    const deadUnknown = view(2, h('g', 0, 2, 100, 'alive', 200), h('a', 0, 1, 100, 'alive', 100), h('c', 0, 1, 100, 'alive', 100), h('b', 1, 2, 10, 'alive', 100), h('d', 1, 2, 0, 'dead', 100));
    assert.equal(planMoves(deadUnknown, opts)[0]?.reason, 'throughput');
    // a restore needs no speeds: layer 1's second holder died, a surplus holder of layer 0 takes it
    const restore = view(2, h('g', 0, 2, 0, 'alive', 200), h('a', 0, 1, 0, 'alive', 100), h('c', 0, 1, 0, 'alive', 100), h('b', 1, 2, 0, 'dead', 100));
    const plan = planMoves(restore, opts);
    assert.equal(plan[0]?.reason, 'restore');
    assert.deepEqual(plan[0]?.to, { start: 1, end: 2 });
  });

  it('backs off: throughput moves wait longer after each recent move; restores wait only the cooldown', () => {
    assert.equal(rebalanceBackoffMs({ movesMs: [] }, 0), 0);
    const now = 10 * 60_000;
    assert.equal(rebalanceBackoffMs({ movesMs: [now - 1000] }, now), REBALANCE_BACKOFF_BASE_MS);
    assert.equal(rebalanceBackoffMs({ movesMs: [now - 2000, now - 1000] }, now), 2 * REBALANCE_BACKOFF_BASE_MS);
    const skew = view(2, h('g', 0, 2, 100, 'alive', 200), h('a', 0, 1, 100, 'alive', 100), h('c', 0, 1, 100, 'alive', 100), h('b', 1, 2, 10, 'alive', 100));
    const d = shouldRebalance(skew, 'a', { movesMs: [now - 1000] }, now, { layerMb: 100 });
    assert.equal(d.move, false);
    assert.equal(!d.move && d.reason, 'backoff');
    assert.equal(shouldRebalance(skew, 'a', { movesMs: [now - REBALANCE_BACKOFF_BASE_MS] }, now, { layerMb: 100 }).move, true);
    const dead = view(8, h('g', 0, 8, 10, 'alive', 800), h('x', 0, 4, 40, 'dead', 400), h('y', 4, 8, 40, 'alive', 400), h('z', 4, 8, 40, 'alive', 400));
    assert.equal(shouldRebalance(dead, 'y', { movesMs: [now - RESTORE_COOLDOWN_MS + 1] }, now, opts).move, false);
    assert.equal(shouldRebalance(dead, 'y', { movesMs: [now - RESTORE_COOLDOWN_MS] }, now, opts).move, true);
  });

  it('does not oscillate: after the planned move is applied, the plan is empty', () => {
    const skew = view(2, h('g', 0, 2, 100, 'alive', 200), h('a', 0, 1, 100, 'alive', 100), h('c', 0, 1, 100, 'alive', 100), h('b', 1, 2, 10, 'alive', 100));
    let v: PoolView = skew;
    for (let round = 0; round < 5; round++) {
      const plan = planMoves(v, opts);
      if (plan.length === 0) break;
      assert.ok(round < 2, 'the pool must settle within two rounds');
      v = { numLayers: 2, holders: v.holders.map((x) => (plan.some((m) => m.peerId === x.peerId) ? { ...x, span: plan.find((m) => m.peerId === x.peerId)!.to } : x)) };
    }
    assert.deepEqual(planMoves(v, opts), []);
  });

  it('plans 1,000 nodes over 32 layers deterministically', () => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const hs: PoolHolder[] = [];
    for (let i = 0; i < 1000; i++) {
      const len = 1 + Math.floor(rnd() * 8);
      const start = Math.floor(rnd() * (32 - len + 1));
      hs.push(h(`p${String(i).padStart(4, '0')}`, start, start + len, 1 + Math.floor(rnd() * 100), rnd() < 0.1 ? 'dead' : 'alive', len * 100));
    }
    const a = planMoves(view(32, ...hs), { layerMb: 100, maxMoves: 4 });
    const b = planMoves(view(32, ...[...hs].reverse()), { layerMb: 100, maxMoves: 4 });
    assert.deepEqual(a, b);
  });
});

describe('capacity arithmetic', () => {
  it('memory budget: free minus reserve, capped by --memory-mb', () => {
    assert.equal(memoryBudgetMb(4096, undefined, 512), 3584);
    assert.equal(memoryBudgetMb(4096, 1000, 512), 1000);
    assert.equal(memoryBudgetMb(100, undefined, 512), 0);
  });

  it('layers that fit: nothing below the embedding + head, all layers with plenty', () => {
    assert.equal(layersFor(NANO, 0), 0);
    assert.equal(layersFor(NANO, 1 << 20), NANO.num_hidden_layers);
    const one = layerMb(NANO);
    assert.ok(one >= 1);
  });
});
