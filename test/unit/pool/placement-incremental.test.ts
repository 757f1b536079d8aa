import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chooseSpan,
  compareHealth,
  coverage,
  health,
  holderCapacity,
  planMoves,
  REBALANCE_MIN_GAIN,
  spanTokensPerSec,
  type Move,
  type PlanOptions,
  type PoolHolder,
  type PoolSpan,
  type PoolView,
} from '../../../src/pool/index.js';
import { Rng } from '../../../src/util/rng.js';

/**
 * planMoves derives each candidate's figures from the current view's per-layer sums instead of two full coverages
 * per holder (issue 12: 64 % of a 1,000-node simulation). This is the rule as it read before, written with the
 * public building blocks: the plans must be identical, bit for bit (throughput sums included), on random views.
 */
function planMovesReference(view: PoolView, opts: PlanOptions): Move[] {
  const L = view.numLayers;
  const minGain = opts.minGain ?? REBALANCE_MIN_GAIN;
  const maxMoves = opts.maxMoves ?? 64;
  const withHolder = (v: PoolView, peerId: string, h: PoolHolder | undefined): PoolView => {
    const holders = v.holders.filter((x) => x.peerId !== peerId);
    if (h !== undefined) holders.push(h);
    return { numLayers: v.numLayers, holders };
  };
  const moves: Move[] = [];
  let cur: PoolView = { numLayers: L, holders: [...view.holders] };
  const moved = new Set<string>();
  const candidates = () => {
    const before = health(coverage(cur));
    const out = [];
    const movers = cur.holders.filter((h) => h.state === 'alive' && !moved.has(h.peerId)).sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
    for (const h of movers) {
      const cap = holderCapacity(h, h.weights === 'int8' ? (opts.layerMbInt8 ?? opts.layerMb) : opts.layerMb, L, opts.extraMb ?? 0);
      // int8rec's mover rule: an int8 mover keeps no float32 copy, so its own layers are no weight source for it
      const int8 = h.weights === 'int8';
      const to = chooseSpan(withHolder(cur, h.peerId, undefined), cap, { requireCovered: true, weights: int8 ? 'int8' : 'f32', ...(int8 ? {} : { have: h.span }) });
      if (to === undefined || (to.start === h.span.start && to.end === h.span.end)) continue;
      const next = withHolder(cur, h.peerId, { ...h, span: to, tokensPerSec: spanTokensPerSec(cap.layerTokensPerSec, to.end - to.start) });
      out.push({ peerId: h.peerId, h, to, before, after: health(coverage(next)), view: next });
    }
    return out;
  };
  while (moves.length < maxMoves) {
    let best: ReturnType<typeof candidates>[number] | undefined;
    for (const c of candidates()) {
      if (c.after.missing > c.before.missing) continue;
      if (!(c.after.missing < c.before.missing || c.after.deficit < c.before.deficit)) continue;
      if (best === undefined || compareHealth(c.after, best.after) < 0) best = c;
    }
    if (best === undefined) break;
    moves.push({ peerId: best.peerId, from: best.h.span, to: best.to, reason: 'restore', before: best.before, after: best.after });
    moved.add(best.peerId);
    cur = best.view;
  }
  const speedsKnown = cur.holders.every((h) => h.state === 'dead' || (Number.isFinite(h.tokensPerSec) && h.tokensPerSec > 0));
  if (speedsKnown && moves.length < maxMoves) {
    let best: ReturnType<typeof candidates>[number] | undefined;
    for (const c of candidates()) {
      if (c.after.missing > c.before.missing || c.after.deficit > c.before.deficit) continue;
      if (!(c.after.bottleneck >= c.before.bottleneck * (1 + minGain) && c.after.bottleneck > c.before.bottleneck)) continue;
      if (best === undefined || c.after.bottleneck > best.after.bottleneck) best = c;
    }
    if (best !== undefined) moves.push({ peerId: best.peerId, from: best.h.span, to: best.to, reason: 'throughput', before: best.before, after: best.after });
  }
  return moves;
}

function randomView(rng: Rng, L: number, n: number): PoolView {
  const holders: PoolHolder[] = [];
  // a few distinct speeds (equal machines give equal throughputs, the ties the exact sums decide), odd fractions
  const speeds = [0.1, 0.3, 1 / 3, 7.77, 40, 40 * 0.7, 226 / 1176];
  for (let i = 0; i < n; i++) {
    const len = 1 + rng.int(Math.max(1, L >> 1));
    const start = rng.int(L - len + 1) + (rng.next() < 0.05 ? L : 0); // now and then a span past the model
    const u = rng.next();
    const state: PoolHolder['state'] = u < 0.1 ? 'dead' : u < 0.2 ? 'stale' : 'alive';
    const peerId = rng.next() < 0.05 && i > 0 ? holders[rng.int(i)]!.peerId : `p${String(rng.int(10 * n)).padStart(4, '0')}`; // some peers twice
    const h: PoolHolder = { peerId, span: { start, end: start + len }, state, tokensPerSec: rng.next() < 0.03 ? 0 : speeds[rng.int(speeds.length)]! / len, memoryMb: rng.int(8) * 100 };
    if (rng.next() < 0.2) h.weights = 'int8';
    holders.push(h);
  }
  return { numLayers: L, holders };
}

describe('planMoves (incremental per-layer figures)', () => {
  it('plans exactly what the two-coverages-per-holder rule planned, on random views', () => {
    const rng = new Rng(12);
    const planned = { restore: 0, throughput: 0 };
    for (let t = 0; t < 150; t++) {
      const L = 2 + rng.int(30);
      const n = 1 + rng.int(40);
      const v = randomView(rng, L, n);
      const opts: PlanOptions = { layerMb: 100, layerMbInt8: 30, extraMb: rng.int(2) * 50, ...(rng.next() < 0.3 ? { maxMoves: 1 + rng.int(3) } : {}) };
      const plan = planMoves(v, opts);
      assert.deepEqual(plan, planMovesReference(v, opts), `view ${t}`);
      for (const m of plan) planned[m.reason]++;
    }
    // the views exercise both kinds of move
    assert.ok(planned.restore > 20 && planned.throughput > 5, JSON.stringify(planned));
  });

  it('restores a layer that lost its holders, as before', () => {
    const span = (start: number, end: number): PoolSpan => ({ start, end });
    const v: PoolView = {
      numLayers: 4,
      holders: [
        { peerId: 'a', span: span(0, 2), state: 'alive', tokensPerSec: 10, memoryMb: 400 },
        { peerId: 'b', span: span(0, 2), state: 'alive', tokensPerSec: 10, memoryMb: 400 },
        { peerId: 'c', span: span(0, 4), state: 'alive', tokensPerSec: 5, memoryMb: 400 },
        { peerId: 'd', span: span(2, 4), state: 'dead', tokensPerSec: 10, memoryMb: 400 },
      ],
    };
    const plan = planMoves(v, { layerMb: 100 });
    assert.deepEqual(plan, planMovesReference(v, { layerMb: 100 }));
    assert.ok(plan.some((m) => m.reason === 'restore'));
  });
});
