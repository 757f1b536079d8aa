/**
 * Where a failover goes (route.ts planFailover) and what the answer says about it (driver.ts GenerationResult.routes).
 *
 * planFailover ranks the windows of hops around the failed one by the unproven hops of their replacement (holders
 * this node never had a step answered by), then by size, then leftmost: a failed Sybil hop claims a span few honest
 * spans tile, and replanning exactly its layers drew another fresh key (issue 12). Plain data; in-memory hops.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BanList, DRIVER_DEFAULTS, LayersUncoveredError, planFailover, runGeneration, type ChainHop, type DriverDeps, type HolderView, type HopSession, type ModelView } from '../../../src/router/index.js';

const h = (peerId: string, start: number, end: number, over: Partial<HolderView> = {}): HolderView => ({ peerId, span: { start, end }, alive: true, ...over });
const c = (peerId: string, start: number, end: number): ChainHop => ({ peerId, span: { start, end } });
const opts = (failed: string[], banned: string[] = []) => ({ random: () => 0, explore: 0, banned: new Set(banned), failed: new Set(failed) });
const ids = (hops: readonly ChainHop[]): string[] => hops.map((x) => x.peerId);

describe('planFailover: replacement windows ranked by unproven hops', () => {
  // the route a[0,2) → s[2,3) → c[3,4); s failed
  const route = [c('a', 0, 2), c('s', 2, 3), c('c', 3, 4)];

  it('a proven replica of the failed hop\'s own layers: that window, as before', () => {
    const hs = [h('a', 0, 2), h('s', 2, 3), h('c', 3, 4), h('s2', 2, 3), h('w', 0, 3)];
    const p = planFailover(hs, route, 1, opts(['s']));
    assert.deepEqual({ j: p.j, k: p.k, sub: ids(p.sub), unproven: p.unproven }, { j: 1, k: 1, sub: ['s2'], unproven: 0 });
  });

  it('prefers a wider window that proven holders cover over an unproven holder of exactly the failed layers', () => {
    // s2 (a fresh key) claims exactly [2, 3); w, measured, holds [0, 3)
    const hs = [h('a', 0, 2), h('s', 2, 3), h('c', 3, 4), h('s2', 2, 3, { unproven: true }), h('w', 0, 3)];
    const p = planFailover(hs, route, 1, opts(['s']));
    assert.deepEqual({ j: p.j, k: p.k, sub: ids(p.sub), unproven: p.unproven }, { j: 0, k: 1, sub: ['w'], unproven: 0 });
  });

  it('ties in unproven hops: the smaller window first, then the leftmost', () => {
    // both windows of two hops ([0, 3) by w, [2, 4) by v) are proven: the left one is found first
    const both = [h('a', 0, 2), h('s', 2, 3), h('c', 3, 4), h('s2', 2, 3, { unproven: true }), h('w', 0, 3), h('v', 2, 4)];
    const p = planFailover(both, route, 1, opts(['s']));
    assert.deepEqual([p.j, p.k, ids(p.sub)], [0, 1, ['w']]);
    // every window needs one unproven hop: the failed hop's own layers (the smallest window) win the tie
    const none = [h('a', 0, 2), h('s', 2, 3), h('c', 3, 4), h('s2', 2, 3, { unproven: true }), h('u', 0, 3, { unproven: true })];
    const q = planFailover(none, route, 1, opts(['s']));
    assert.deepEqual({ j: q.j, k: q.k, sub: ids(q.sub), unproven: q.unproven }, { j: 1, k: 1, sub: ['s2'], unproven: 1 });
    // fewer unproven hops beat a smaller window: the failed hop's [2, 4) takes two unproven hops (x, y), the whole
    // route one (u)
    const wide = [c('a', 0, 2), c('s', 2, 4), c('c', 4, 6)];
    const fewer = [h('a', 0, 2), h('s', 2, 4), h('c', 4, 6), h('x', 2, 3, { unproven: true }), h('y', 3, 4, { unproven: true }), h('u', 0, 6, { unproven: true })];
    const r = planFailover(fewer, wide, 1, opts(['s']));
    assert.deepEqual({ j: r.j, k: r.k, sub: ids(r.sub), unproven: r.unproven }, { j: 0, k: 2, sub: ['u'], unproven: 1 });
  });

  it('a window is replanned only where its layers can be: a neighbour holding more layers takes the dead hop with it', () => {
    // nobody but the dead s holds [2, 3); v holds [2, 4)
    const hs = [h('a', 0, 2), h('s', 2, 3), h('c', 3, 4), h('v', 2, 4)];
    const p = planFailover(hs, route, 1, opts(['s']));
    assert.deepEqual([p.j, p.k, ids(p.sub)], [1, 2, ['v']]);
  });

  it('the generation\'s failed peers are never planned; banned ones only where nothing else covers', () => {
    const hs = [h('a', 0, 2), h('s', 2, 3), h('c', 3, 4), h('b', 2, 3)];
    assert.deepEqual(ids(planFailover(hs, route, 1, opts(['s'], ['b'])).sub), ['b'], 'banned, but the only other holder');
    assert.throws(() => planFailover(hs, route, 1, opts(['s', 'b'])), LayersUncoveredError);
  });

  it('throws LayersUncoveredError when no window can be planned, RangeError for a hop outside the route', () => {
    const hs = [h('a', 0, 2), h('s', 2, 3), h('c', 3, 4)];
    assert.throws(() => planFailover(hs, route, 1, opts(['s'])), LayersUncoveredError);
    assert.throws(() => planFailover(hs, route, 3, opts(['s'])), RangeError);
  });

  it('is deterministic and leaves its inputs alone', () => {
    const hs = [h('a', 0, 2), h('s', 2, 3), h('c', 3, 4), h('s2', 2, 3, { unproven: true }), h('w', 0, 3), h('w2', 0, 3)];
    const before = JSON.stringify([hs, route]);
    const p1 = planFailover(hs, route, 1, opts(['s']));
    const p2 = planFailover([...hs].reverse(), route, 1, opts(['s']));
    assert.deepEqual(p1, p2);
    assert.equal(JSON.stringify([hs, route]), before);
  });
});

// ─── the driver: which route produced which tokens ───

const L = 4;
const C = 8;
const model: ModelView = { numLayers: L, hiddenSize: C, contextLength: 64, eosId: -1, encode: () => [1, 2, 3], decode: () => '' };
const req = { prompt: 'x', maxTokens: 5, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };

/** A hop over `span`: hidden rows of zeros, or (the last span) token 7 per chunk; fails from call `dieAfter` + 1 on. */
function hop(span: { start: number; end: number }, dieAfter = Infinity): HopSession {
  let calls = 0;
  return {
    step: async (input) => {
      if (++calls > dieAfter) throw new Error('connection reset');
      const T = input.chunks.reduce((a, b) => a + b, 0);
      return span.end === L ? { tokens: Int32Array.from(input.chunks.map(() => 7)) } : { hidden: new Float32Array(T * C) };
    },
    close: () => {},
  };
}

function run(holders: HolderView[], dying: Record<string, number>) {
  const opened: string[] = [];
  let n = 0;
  const d: DriverDeps = {
    model,
    holders: () => holders,
    opener: {
      open: (x) => {
        opened.push(x.peerId);
        return hop(x.span, dying[x.peerId] ?? Infinity);
      },
    },
    bans: new BanList(),
    now: () => performance.now(),
    random: () => 0,
    newSessionId: () => `s${++n}`,
    options: { ...DRIVER_DEFAULTS, msPerPosition: 0, openTimeoutMs: 0, explore: 0 },
  };
  return runGeneration(req, d, {}, new AbortController().signal).then((result) => ({ opened, result }));
}

const routesOf = (r: { routes: { fromToken: number; hops: { peerId: string; span: [number, number] }[] }[] }) => r.routes.map((u) => [u.fromToken, u.hops.map((x) => `${x.peerId}${x.span[0]}:${x.span[1]}`).join(' ')]);

describe('the driver reports every route that produced tokens', () => {
  it('without a failover: one route, from token 0, the route as first chosen', async () => {
    const { result } = await run([h('a', 0, 2), h('b', 2, 4)], {});
    assert.deepEqual(routesOf(result), [[0, 'a0:2 b2:4']]);
    assert.deepEqual(result.routes[0]!.hops, result.route);
  });

  it('a hop that dies on the step of token 2: a second route from token 2 on, with the replacement', async () => {
    // b answers the prefill (token 0) and one decode step (token 1); the third call fails
    const { result } = await run([h('a', 0, 2), h('b', 2, 4, { rttMs: 1 }), h('b2', 2, 4, { rttMs: 5 })], { b: 2 });
    assert.deepEqual(result.tokens, [7, 7, 7, 7, 7]);
    assert.equal(result.failovers, 1);
    assert.deepEqual(routesOf(result), [[0, 'a0:2 b2:4'], [2, 'a0:2 b22:4']]);
    assert.deepEqual(result.route.map((x) => x.peerId), ['a', 'b'], 'route: as first chosen');
  });

  it('two failovers at different tokens: three routes; a failover before the first token replaces the first entry', async () => {
    const two = await run([h('a', 0, 2), h('b', 2, 4, { rttMs: 1 }), h('b2', 2, 4, { rttMs: 2 }), h('b3', 2, 4, { rttMs: 3 })], { b: 1, b2: 2 });
    // b fails on token 1's step; b2's replay gives token 1, its next call token 2, and its third fails on token 3's
    assert.deepEqual(routesOf(two.result), [[0, 'a0:2 b2:4'], [1, 'a0:2 b22:4'], [3, 'a0:2 b32:4']]);
    const first = await run([h('a', 0, 2), h('b', 2, 4, { rttMs: 1 }), h('b2', 2, 4, { rttMs: 5 })], { b: 0 });
    assert.equal(first.result.failovers, 1);
    assert.deepEqual(routesOf(first.result), [[0, 'a0:2 b22:4']], 'b produced no token');
    assert.deepEqual(first.result.route.map((x) => x.peerId), ['a', 'b']);
  });

  it('a failover prefers a proven window: an unproven replica of the lost layers loses to a measured holder of more', async () => {
    const { opened, result } = await run([h('a', 0, 2), h('b', 2, 4), h('s', 2, 4, { unproven: true }), h('w', 0, 4, { rttMs: 50 })], { b: 2 });
    assert.deepEqual(opened, ['a', 'b', 'w']);
    assert.deepEqual(routesOf(result), [[0, 'a0:2 b2:4'], [2, 'w0:4']]);
    assert.deepEqual(result.tokens, [7, 7, 7, 7, 7]);
  });
});
