/** Route choice over plain data: cheapest tiling chains, near-best capacity-weighted draws, ties, churn, bans. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BanList, candidateChains, chooseRoute, chooseRouteAvoiding, EXPLORE_UNBONDED_SHARE, exploreRoute, hopCost, isQuiet, LayersUncoveredError, missingLayers, UNBONDED_WEIGHT, UNPROVEN_RTT_MS, type HolderView } from '../../../src/router/index.js';

const h = (peerId: string, start: number, end: number, over: Partial<HolderView> = {}): HolderView => ({ peerId, span: { start, end }, alive: true, ...over });
const R = { start: 0, end: 4 };
const fixed = (u: number) => () => u;
/** The given numbers in turn, then `last` forever. */
const seq = (xs: number[], last = 0.5) => {
  let i = 0;
  return () => (i < xs.length ? xs[i++]! : last);
};
/** A seeded uniform source (mulberry32), for shares over many draws. */
const seeded = (seed: number) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

describe('route choice', () => {
  it('finds the chain that tiles the layers, skipping spans that overlap', () => {
    const hs = [h('a', 0, 2), h('b', 2, 4), h('c', 1, 3)];
    assert.deepEqual(chooseRoute(hs, R, { random: fixed(0) }).map((x) => x.peerId), ['a', 'b']);
  });

  it('prefers fewer, faster hops by measured latency and compute time', () => {
    const hs = [h('whole', 0, 4, { rttMs: 5, msPerLayer: 1 }), h('a', 0, 2, { rttMs: 1, msPerLayer: 1 }), h('b', 2, 4, { rttMs: 1, msPerLayer: 1 })];
    // whole: 5 + 4 = 9; a+b: (1 + 2) + (1 + 2) = 6
    assert.deepEqual(chooseRoute(hs, R, { random: fixed(0), slack: 0, slackMs: 0 }).map((x) => x.peerId), ['a', 'b']);
    const slow = [h('whole', 0, 4, { rttMs: 1, msPerLayer: 1 }), h('a', 0, 2, { rttMs: 20 }), h('b', 2, 4, { rttMs: 20 })];
    assert.deepEqual(chooseRoute(slow, R, { random: fixed(0.99) }).map((x) => x.peerId), ['whole'], 'a clearly slower chain is never drawn');
  });

  it('ties are enumerated in a fixed order and drawn by capacity', () => {
    const hs = [h('b', 0, 4, { tokensPerSec: 30 }), h('a', 0, 4, { tokensPerSec: 10 })];
    const c = candidateChains(hs, R);
    assert.deepEqual(c.map((x) => x[0].peerId), ['a', 'b']);
    // weights 10 and 30: u < 0.25 picks a, above picks b
    assert.equal(chooseRoute(hs, R, { random: fixed(0.2) })[0].peerId, 'a');
    assert.equal(chooseRoute(hs, R, { random: fixed(0.3) })[0].peerId, 'b');
    // the same inputs give the same route
    assert.deepEqual(chooseRoute([...hs].reverse(), R, { random: fixed(0.3) }), chooseRoute(hs, R, { random: fixed(0.3) }));
  });

  it('spreads load over equal replicas roughly by capacity', () => {
    const hs = [h('a', 0, 2), h('b', 0, 2), h('c', 2, 4), h('d', 2, 4)];
    let seed = 1;
    const rnd = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const key = chooseRoute(hs, R, { random: rnd }).map((x) => x.peerId).join('');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    assert.equal(counts.size, 4);
    for (const n of counts.values()) assert.ok(n > 800 && n < 1200, `${n}`);
  });

  it('churn: dead, excluded and banned peers are skipped; an uncovered layer is named', () => {
    const hs = [h('a', 0, 2), h('b', 2, 4), h('c', 2, 4, { alive: false }), h('d', 0, 2)];
    assert.deepEqual(chooseRoute(hs, R, { random: fixed(0), exclude: new Set(['a']) }).map((x) => x.peerId), ['d', 'b']);
    // the message writes the range as --span takes it (src/util/span-text.ts)
    assert.throws(
      () => chooseRoute(hs, R, { random: fixed(0), exclude: new Set(['b']) }),
      (e: unknown) => e instanceof LayersUncoveredError && JSON.stringify(e.meta?.missing) === '[2,3]' && e.message === 'no chain of live peers covers layers 0:4; layers 2, 3 missing',
    );
    assert.deepEqual(missingLayers([h('a', 0, 3), h('b', 2, 4)], R), [3]);
    assert.deepEqual(missingLayers([], R), [0, 1, 2, 3]);
  });

  it('a failed hop is replaced by holders whose spans tile its layers, possibly two', () => {
    const hs = [h('x', 0, 2), h('y', 2, 3), h('z', 3, 4), h('w', 2, 4)];
    const sub = chooseRoute(hs, { start: 2, end: 4 }, { random: fixed(0), exclude: new Set(['w']) });
    assert.deepEqual(sub.map((x) => [x.peerId, x.span.start, x.span.end]), [['y', 2, 3], ['z', 3, 4]]);
  });

  it('a banned peer is avoided while others cover its layers, and used when it is the only holder left', () => {
    // chaos: the genesis node alone held 2:4; its ban outlasted its restart and every entry answered 503
    const hs = [h('g', 0, 4), h('j1', 0, 2), h('j2', 0, 2)];
    const bans = new BanList(5000, 300_000);
    for (let t = 0; t < 5; t++) bans.fail('g', t * 1000);
    const banned = bans.banned(6000);
    assert.throws(() => chooseRoute(hs, R, { random: fixed(0), exclude: banned }), LayersUncoveredError, 'the old rule: banned = gone');
    assert.deepEqual(chooseRouteAvoiding(hs, R, { random: fixed(0), banned, failed: new Set() }).map((x) => x.peerId), ['g']);
    // with a replica of 2:4 that is not banned, the banned peer stays avoided
    const withReplica = [...hs, h('j3', 2, 4)];
    for (const u of [0, 0.5, 0.99]) {
      const chain = chooseRouteAvoiding(withReplica, R, { random: fixed(u), banned, failed: new Set() }).map((x) => x.peerId);
      assert.ok(!chain.includes('g'), `chain ${chain.join(',')}`);
    }
    // a peer that failed this generation is never retried: no other holder of 2:4, so the layers are uncovered
    assert.throws(
      () => chooseRouteAvoiding(hs, { start: 2, end: 4 }, { random: fixed(0), banned, failed: new Set(['g']) }),
      (e: unknown) => e instanceof LayersUncoveredError && JSON.stringify(e.meta?.missing) === '[2,3]',
    );
    assert.throws(() => chooseRouteAvoiding([h('j1', 0, 2)], R, { random: fixed(0), banned: new Set(), failed: new Set() }), LayersUncoveredError);
  });

  it('quiet holders (late heartbeats, e.g. across a fresh partition) are avoided while on-time ones cover, used when not', () => {
    // 1,000-node partition: every remaining failure was in the cut's first minute, the far side still "alive"
    const hs = [h('far-a', 0, 2, { quiet: true }), h('far-b', 2, 4, { quiet: true }), h('near-a', 0, 2), h('near-b', 2, 4)];
    for (const u of [0, 0.3, 0.6, 0.99]) {
      assert.deepEqual(chooseRouteAvoiding(hs, R, { random: fixed(u), banned: new Set(), failed: new Set() }).map((x) => x.peerId), ['near-a', 'near-b']);
    }
    // without the flag the draw spreads over all four (what made requests fail over across the cut)
    const plain = hs.map((x) => ({ ...x, quiet: false }));
    const seen = new Set<string>();
    for (const u of [0, 0.3, 0.6, 0.99]) for (const p of chooseRouteAvoiding(plain, R, { random: fixed(u), banned: new Set(), failed: new Set() })) seen.add(p.peerId);
    assert.ok(seen.has('far-a') || seen.has('far-b'), [...seen].join(','));
    // a quiet peer that alone holds layers is still used, ahead of a banned one
    const only = [h('near-a', 0, 2), h('far-b', 2, 4, { quiet: true })];
    assert.deepEqual(chooseRouteAvoiding(only, R, { random: fixed(0), banned: new Set(), failed: new Set() }).map((x) => x.peerId), ['near-a', 'far-b']);
    // a failed peer stays excluded even when quiet ones are let back in
    assert.throws(() => chooseRouteAvoiding(only, R, { random: fixed(0), banned: new Set(), failed: new Set(['far-b']) }), LayersUncoveredError);
    // the rule: silent for more than 1.5 heartbeat intervals
    assert.equal(isQuiet(7_400, 5_000), false);
    assert.equal(isQuiet(7_600, 5_000), true);
    assert.equal(isQuiet(10_000, 0), false);
  });

  it('bans back off exponentially and clear on success', () => {
    const b = new BanList(100, 1000);
    assert.equal(b.fail('p', 0), 100);
    assert.ok(b.isBanned('p', 50));
    assert.ok(!b.isBanned('p', 100));
    assert.equal(b.fail('p', 100), 200);
    assert.equal(b.fail('p', 300), 400);
    assert.equal(b.fail('p', 700), 800);
    assert.equal(b.fail('p', 1500), 1000, 'capped');
    assert.deepEqual([...b.banned(1600)], ['p']);
    b.succeed('p');
    assert.ok(!b.isBanned('p', 1600));
    const small = new BanList(100, 1000, 2);
    small.fail('a', 0);
    small.fail('b', 0);
    small.fail('c', 0);
    assert.deepEqual([...small.banned(1)].sort(), ['b', 'c'], 'bounded: the oldest entry goes');
  });

  describe('unproven holders (issue 12: a Sybil flood of fresh keys claiming spans at huge speed)', () => {
    const us = [0, 0.25, 0.5, 0.75, 0.999];
    const sybils = (n: number, start: number, end: number): HolderView[] =>
      Array.from({ length: n }, (_, i) => h(`sybil-${String(i).padStart(3, '0')}`, start, end, { rttMs: 0.1, msPerLayer: 0.001, tokensPerSec: 1e6, unproven: true }));

    it('a measured holder wins over any number of unproven ones claiming more speed and capacity', () => {
      const hs = [h('honest-a', 0, 2, { rttMs: 3, msPerLayer: 10, tokensPerSec: 50 }), h('honest-b', 2, 4, { rttMs: 3, msPerLayer: 10, tokensPerSec: 50 }), ...sybils(100, 0, 2), ...sybils(100, 2, 4).map((x) => ({ ...x, peerId: `${x.peerId}-b` })), ...sybils(50, 0, 4).map((x) => ({ ...x, peerId: `${x.peerId}-w` }))];
      for (const u of us) assert.deepEqual(chooseRoute(hs, R, { random: fixed(u) }).map((x) => x.peerId), ['honest-a', 'honest-b']);
      // the same Sybils without the flag (their claims believed) take every draw: the flag is what decides
      const believed = hs.map((x) => ({ ...x, unproven: undefined }));
      for (const u of us) assert.ok(chooseRoute(believed, R, { random: fixed(u) }).every((x) => x.peerId.startsWith('sybil')));
    });

    it('unproven holders still cover layers nobody measured holds, and the chain takes as few of them as it can', () => {
      const hs = [h('honest', 0, 2, { rttMs: 3, msPerLayer: 10 }), h('new-1', 2, 3, { unproven: true }), h('new-2', 3, 4, { unproven: true }), h('new-whole', 2, 4, { unproven: true })];
      for (const u of us) assert.deepEqual(chooseRoute(hs, R, { random: fixed(u) }).map((x) => x.peerId), ['honest', 'new-whole']);
      // with nothing measured at all (a node's first request) the network is still usable
      const fresh = [h('x', 0, 4, { unproven: true })];
      assert.deepEqual(chooseRoute(fresh, R, { random: fixed(0.5) }).map((x) => x.peerId), ['x']);
    });

    it("an unproven holder's claims are not believed: its cost is the default speed plus the penalty, its capacity 1", () => {
      const fast = h('fast', 0, 2, { rttMs: 1, msPerLayer: 0.001, tokensPerSec: 1e6, unproven: true });
      const slow = h('slow', 0, 2, { rttMs: 1, msPerLayer: 40, tokensPerSec: 5, unproven: true });
      assert.equal(hopCost(fast), 1 + UNPROVEN_RTT_MS + 2 * 1);
      assert.equal(hopCost(slow), 1 + UNPROVEN_RTT_MS + 2 * 40, 'a claim slower than the default is believed');
      const twins = [fast, { ...fast, peerId: 'fast-2', tokensPerSec: 10 }];
      // equal weights: the draw splits at u = 0.5 (candidates in key order: fast-2, fast); believed, 1e6 against 10
      // would give fast every draw but u > 0.99999
      assert.equal(chooseRoute(twins, { start: 0, end: 2 }, { random: fixed(0.49) })[0].peerId, 'fast-2');
      assert.equal(chooseRoute(twins, { start: 0, end: 2 }, { random: fixed(0.51) })[0].peerId, 'fast');
    });

    it("the penalty is left out of the relative slack: one unproven hop does not make a slow measured replica near-best", () => {
      const hs = [h('near', 0, 2, { rttMs: 1 }), h('far', 0, 2, { rttMs: 40 }), h('new', 2, 4, { unproven: true })];
      for (const u of us) assert.deepEqual(chooseRoute(hs, R, { random: fixed(u) }).map((x) => x.peerId), ['near', 'new']);
    });

    it('slow layers (the 1,000-node model, seconds per chain): no chain with an unproven hop while measured holders cover the range', () => {
      // 64 layers of ≈ 130 ms each on 8 measured hops (the simulator's 1,176 MiB layers on desktops): a chain costs
      // ≈ 9 s, so neither its 25 % slack nor even its cost difference is small against the flat 1,000 ms penalty;
      // 300 fresh keys claim [8, 24) and [40, 56) (one hop of theirs replaces two measured ones)
      const L = { start: 0, end: 64 };
      const honest = Array.from({ length: 8 }, (_, i) => h(`honest-${i}`, 8 * i, 8 * i + 8, { rttMs: 80, msPerLayer: 130, tokensPerSec: 1 }));
      const replicas = honest.map((x) => ({ ...x, peerId: `${x.peerId}-r`, rttMs: 120, msPerLayer: 140 }));
      const flood = [...sybils(150, 8, 24), ...sybils(150, 40, 56).map((x) => ({ ...x, peerId: `${x.peerId}-b` }))];
      const hs = [...honest, ...replicas, ...flood];
      for (const u of [...us, 0.1, 0.6, 0.9]) {
        const chain = chooseRoute(hs, L, { random: fixed(u) });
        assert.ok(chain.every((x) => x.peerId.startsWith('honest')), `u=${u}: ${chain.map((x) => x.peerId).join(' ')}`);
      }
      assert.ok(candidateChains(hs, L).every((c) => c.every((x) => x.unproven !== true)), 'no candidate has an unproven hop');
      // the flood is still there to cover what no measured holder does (the chain then takes one unproven hop)
      const gap = hs.filter((x) => x.peerId !== 'honest-1' && x.peerId !== 'honest-1-r');
      const chain = chooseRoute(gap, L, { random: fixed(0.5) });
      assert.equal(chain.filter((x) => x.peerId.startsWith('sybil')).length, 1);
    });

    it('failover: once the measured holders of a span failed this request, unproven ones are tried', () => {
      const hs = [h('honest', 0, 4, { rttMs: 3 }), ...sybils(5, 0, 4), h('newcomer', 0, 4, { unproven: true })];
      assert.equal(chooseRouteAvoiding(hs, R, { random: fixed(0.5), banned: new Set(), failed: new Set() })[0].peerId, 'honest');
      const next = chooseRouteAvoiding(hs, R, { random: fixed(0.99), banned: new Set(['honest']), failed: new Set(['honest']) });
      assert.equal(next[0].peerId, 'newcomer', 'equal weights among the unproven: the last one at u = 0.99');
    });
  });

  describe('exploration (issue 12: honest newcomers get traffic)', () => {
    const none = { banned: new Set<string>(), failed: new Set<string>() };
    const measured = [h('old-a', 0, 2, { rttMs: 3, msPerLayer: 5, tokensPerSec: 50 }), h('old-b', 2, 4, { rttMs: 3, msPerLayer: 5, tokensPerSec: 50 })];

    it('a share of fresh requests takes the newcomer; the rest of its chain is measured holders', () => {
      const hs = [...measured, h('newcomer', 2, 4, { unproven: true, rttMs: 1, msPerLayer: 0.01, tokensPerSec: 1e6 })];
      // the usual chain takes a draw, the next one decides (below 0.05: explore), two more pick the block and the
      // holder in it
      assert.deepEqual(chooseRouteAvoiding(hs, R, { random: seq([0.5, 0.01, 0.5, 0.5]), ...none }).map((x) => x.peerId), ['old-a', 'newcomer']);
      assert.deepEqual(chooseRouteAvoiding(hs, R, { random: seq([0.5, 0.06]), ...none }).map((x) => x.peerId), ['old-a', 'old-b']);
      const rnd = seeded(7);
      let explored = 0;
      const n = 20_000;
      for (let i = 0; i < n; i++) if (chooseRouteAvoiding(hs, R, { random: rnd, ...none }).some((x) => x.peerId === 'newcomer')) explored++;
      assert.ok(explored / n > 0.045 && explored / n < 0.055, `share ${explored / n} is the default 0.05`);
    });

    it('off with explore 0, and never on a failover (a request that already failed replans with the usual rule)', () => {
      const hs = [...measured, h('newcomer', 2, 4, { unproven: true })];
      assert.deepEqual(chooseRouteAvoiding(hs, R, { random: fixed(0), explore: 0, ...none }).map((x) => x.peerId), ['old-a', 'old-b']);
      const replica = h('old-b2', 2, 4, { rttMs: 3, msPerLayer: 5 });
      const failover = chooseRouteAvoiding([...hs, replica], { start: 2, end: 4 }, { random: fixed(0), banned: new Set(['old-b']), failed: new Set(['old-b']) });
      assert.deepEqual(failover.map((x) => x.peerId), ['old-b2']);
    });

    it('draws a block first: keys from two blocks get two shares, whatever their number', () => {
      const flood = Array.from({ length: 200 }, (_, i) => h(`sybil-${String(i).padStart(3, '0')}`, 2, 4, { unproven: true, block: i % 2 === 0 ? '203.0.113' : '198.51.100' }));
      const hs = [...measured, ...flood, h('honest-new-1', 2, 4, { unproven: true, block: '192.0.2' }), h('honest-new-2', 0, 2, { unproven: true })];
      const rnd = seeded(11);
      const picks = new Map<string, number>();
      const n = 4000;
      for (let i = 0; i < n; i++) {
        const chain = exploreRoute(hs, R, { random: rnd });
        assert.ok(chain !== undefined);
        const fresh = chain.filter((x) => !x.peerId.startsWith('old-'));
        assert.equal(fresh.length, 1, 'one unproven hop, the rest measured');
        const k = fresh[0]!.peerId.startsWith('sybil') ? 'sybil' : fresh[0]!.peerId;
        picks.set(k, (picks.get(k) ?? 0) + 1);
      }
      // four blocks (two of the flood's, one honest /24, one holder without a known block): a quarter each
      const share = (k: string) => (picks.get(k) ?? 0) / n;
      assert.ok(share('sybil') > 0.45 && share('sybil') < 0.55, `the flood's 200 keys: ${share('sybil')}`);
      assert.ok(share('honest-new-1') > 0.2 && share('honest-new-1') < 0.3, `honest-new-1: ${share('honest-new-1')}`);
      assert.ok(share('honest-new-2') > 0.2 && share('honest-new-2') < 0.3, `honest-new-2: ${share('honest-new-2')}`);
      // per key, the flood would take 200 of 202 draws
    });

    it('no exploration where the measured holders do not cover the rest, or the newcomer is quiet, excluded or dead', () => {
      assert.equal(exploreRoute([h('old-a', 0, 2, { rttMs: 3 }), h('new', 2, 3, { unproven: true })], R, { random: fixed(0.5) }), undefined, 'nothing measured covers [3, 4)');
      assert.equal(exploreRoute([...measured, h('new', 2, 4, { unproven: true, quiet: true })], R, { random: fixed(0.5) }), undefined);
      assert.equal(exploreRoute([...measured, h('new', 2, 4, { unproven: true })], R, { random: fixed(0.5), exclude: new Set(['new']) }), undefined);
      assert.equal(exploreRoute([...measured, h('new', 2, 4, { unproven: true, alive: false })], R, { random: fixed(0.5) }), undefined);
      // ... and the request is then routed as usual
      const hs = [h('old-a', 0, 2, { rttMs: 3 }), h('old-b', 2, 4, { rttMs: 3 }), h('new', 2, 3, { unproven: true })];
      assert.deepEqual(chooseRouteAvoiding(hs, R, { random: fixed(0.01), ...none }).map((x) => x.peerId), ['old-a', 'old-b']);
      // nothing measured at all (a node's first requests): the usual chain already takes unproven holders, no draw
      const fresh = [h('x', 0, 4, { unproven: true }), h('y', 0, 4, { unproven: true })];
      let draws = 0;
      const counting = () => (draws++, 0.99);
      assert.deepEqual(chooseRouteAvoiding(fresh, R, { random: counting, ...none }).map((x) => x.peerId), ['y']);
      assert.equal(draws, 1, 'one draw, the usual one');
    });

    it('takes unproven on-time holders into the rest where the measured ones do not tile it (issue 12 §2: spans that do not line up)', () => {
      // the newcomer holds [1, 3): no measured span ends at 1 or starts at 3; two other unproven holders do
      const hs = [...measured, h('newcomer', 1, 3, { unproven: true }), h('edge-lo', 0, 1, { unproven: true }), h('edge-hi', 3, 4, { unproven: true }), h('late', 3, 4, { unproven: true, quiet: true })];
      // blocks in order: edge-hi, edge-lo, newcomer (the quiet one is never explored): 0.9 draws the newcomer
      assert.deepEqual(exploreRoute(hs, R, { random: seq([0.9, 0.5]) })?.map((x) => x.peerId), ['edge-lo', 'newcomer', 'edge-hi']);
      // measured holders still come first where they tile a side: old-b holds [2, 4) for a newcomer of [0, 2)
      const left = [...measured, h('newcomer', 0, 2, { unproven: true }), h('other', 2, 4, { unproven: true })];
      assert.deepEqual(exploreRoute(left, R, { random: seq([0.1, 0.5]) })?.map((x) => x.peerId), ['newcomer', 'old-b']);
      // never a quiet holder in the rest, and nothing when nothing on time tiles it
      assert.equal(exploreRoute([...measured, h('newcomer', 1, 3, { unproven: true }), h('edge-lo', 0, 1, { unproven: true }), h('late', 3, 4, { unproven: true, quiet: true })], R, { random: seq([0.99, 0.5]) }), undefined);
    });

    it('explores bonded newcomers first: an unbonded one gets EXPLORE_UNBONDED_SHARE of the explorations while bonded ones wait', () => {
      const hs = [...measured, h('bonded-new', 2, 4, { unproven: true, bonded: true }), ...Array.from({ length: 50 }, (_, i) => h(`keyless-${i}`, 2, 4, { unproven: true, bonded: false, block: `198.51.${i}` }))];
      const rnd = seeded(5);
      let unbonded = 0;
      const n = 4000;
      for (let i = 0; i < n; i++) if (exploreRoute(hs, R, { random: rnd })!.some((x) => x.peerId.startsWith('keyless'))) unbonded++;
      assert.ok(Math.abs(unbonded / n - EXPLORE_UNBONDED_SHARE) < 0.025, `unbonded share ${unbonded / n}`);
      // only unbonded ones waiting: they get every exploration, with no extra draw (no stake lookup: the same)
      const only = [...measured, h('keyless', 2, 4, { unproven: true, bonded: false })];
      let draws = 0;
      const counting = () => (draws++, 0.5);
      assert.deepEqual(exploreRoute(only, R, { random: counting })?.map((x) => x.peerId), ['old-a', 'keyless']);
      assert.equal(draws, 3, 'block, holder, and the rest: no bond draw');
    });

    it('same draws, same route', () => {
      const hs = [...measured, ...Array.from({ length: 30 }, (_, i) => h(`new-${i}`, i % 2 === 0 ? 0 : 2, i % 2 === 0 ? 2 : 4, { unproven: true }))];
      const a = exploreRoute(hs, R, { random: seeded(3) });
      const b = exploreRoute([...hs].reverse(), R, { random: seeded(3) });
      assert.deepEqual(a, b, 'the holders\' order does not matter');
    });
  });
});

describe('route choice weighs served holders by what was measured, not by what they claim (issue 12, Sybil side)', () => {
  // two served holders of [0, 4), measured alike (20 ms a step from here); one claims 10⁶ tokens/s and a compute
  // time of 0 (its compute lands in its round trip), the other tells the truth
  const honest = h('honest', 0, 4, { rttMs: 4, msPerLayer: 4, tokensPerSec: 50, stepMs: 20 });
  const liar = h('liar', 0, 4, { rttMs: 20, msPerLayer: 0.00025, tokensPerSec: 1e6, stepMs: 20 });
  const shareOf = (hs: HolderView[], peer: string, draws = 2000): number => {
    const rnd = seeded(7);
    let n = 0;
    for (let i = 0; i < draws; i++) if (chooseRoute(hs, R, { random: rnd }).some((x) => x.peerId === peer)) n++;
    return n / draws;
  };

  it('a claimed capacity of 10⁶ tokens/s draws no more than its measured share', () => {
    // by claims: 10⁶ against 50, the liar took 99.995 % of the draws
    const share = shareOf([honest, liar], 'liar');
    assert.ok(share > 0.4 && share < 0.6, `liar's share ${share}`);
  });

  it('a stated compute time cannot price a hop below its measured step', () => {
    // states its whole wall time as compute (round trip 0) and claims 10⁶ tokens/s: by claims it cost 0.001 ms
    // and was the only near-best chain
    const cheat = h('cheat', 0, 4, { rttMs: 0, msPerLayer: 0.00025, tokensPerSec: 1e6, stepMs: 20 });
    assert.equal(hopCost(cheat), 20);
    const share = shareOf([honest, cheat], 'cheat');
    assert.ok(share > 0.4 && share < 0.6, `cheat's share ${share}`);
  });

  it('a measured step still ranks holders: a hop measured slower loses its claim', () => {
    const slowLiar = h('slow-liar', 0, 4, { rttMs: 200, msPerLayer: 0.00025, tokensPerSec: 1e6, stepMs: 200 });
    assert.equal(shareOf([honest, slowLiar], 'slow-liar'), 0);
  });

  it('the weight is capped by the claim: a holder is never weighed above what it states', () => {
    // measured 1000 / 5 = 200 tokens/s, claims 10: weighs 10 against the other's 50
    const modest = h('modest', 0, 4, { rttMs: 4, msPerLayer: 4, tokensPerSec: 10, stepMs: 5 });
    const other = h('other', 0, 4, { rttMs: 4, msPerLayer: 4, tokensPerSec: 50, stepMs: 20 });
    const share = shareOf([modest, other], 'modest');
    assert.ok(share > 0.1 && share < 0.23, `modest's share ${share} (10 / 60 expected)`);
  });

  describe('weights formats (int8 and float32 holders)', () => {
    const none = { banned: new Set<string>(), failed: new Set<string>() };
    const ids = (r: { peerId: string }[]): string[] => r.map((x) => x.peerId);
    it('a float32 chain is preferred to a faster int8 one, and to a mix of both', () => {
      // the int8 holder is one hop and fast: the cost rule alone takes it (or a mixed chain through it)
      const hs = [h('q', 0, 4, { rttMs: 1, msPerLayer: 0.5, weights: 'int8' }), h('a', 0, 2, { rttMs: 5, msPerLayer: 2 }), h('b', 2, 4, { rttMs: 5, msPerLayer: 2 }), h('q2', 2, 4, { rttMs: 1, msPerLayer: 0.5, weights: 'int8' })];
      for (const u of [0, 0.3, 0.6, 0.99]) assert.deepEqual(ids(chooseRouteAvoiding(hs, R, { random: fixed(u), explore: 0, ...none })), ['a', 'b']);
    });
    it('without a float32 chain: an int8 one; without a chain of one format: a mixed one; failures stay excluded', () => {
      const hs = [h('a', 0, 2), h('q', 0, 4, { weights: 'int8' })];
      assert.deepEqual(ids(chooseRouteAvoiding(hs, R, { random: fixed(0), explore: 0, ...none })), ['q']);
      const mixed = [h('a', 0, 2), h('q', 2, 4, { weights: 'int8' })];
      assert.deepEqual(ids(chooseRouteAvoiding(mixed, R, { random: fixed(0), explore: 0, ...none })), ['a', 'q']);
      assert.throws(() => chooseRouteAvoiding(mixed, R, { random: fixed(0), explore: 0, banned: new Set(), failed: new Set(['q']) }), LayersUncoveredError);
    });
    it('a banned float32 holder does not beat an int8 chain that avoids it; it is used when nothing else covers', () => {
      const hs = [h('a', 0, 4), h('q', 0, 4, { weights: 'int8' })];
      assert.deepEqual(ids(chooseRouteAvoiding(hs, R, { random: fixed(0), explore: 0, banned: new Set(['a']), failed: new Set() })), ['q']);
      assert.deepEqual(ids(chooseRouteAvoiding(hs, R, { random: fixed(0), explore: 0, banned: new Set(['a']), failed: new Set(['q']) })), ['a']);
    });
  });
});

describe('route choice weighs holders by their bond (issue 12 §3)', () => {
  const replicas = (bondA: boolean | undefined, bondB: boolean | undefined) => [
    h('a', 0, 4, { rttMs: 3, msPerLayer: 1, tokensPerSec: 50, stepMs: 10, ...(bondA === undefined ? {} : { bonded: bondA }) }),
    h('b', 0, 4, { rttMs: 3, msPerLayer: 1, tokensPerSec: 50, stepMs: 10, ...(bondB === undefined ? {} : { bonded: bondB }) }),
  ];
  const shareOfA = (hs: HolderView[]) => {
    const rnd = seeded(9);
    let a = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) if (chooseRoute(hs, R, { random: rnd })[0]!.peerId === 'a') a++;
    return a / n;
  };

  it('an unbonded replica weighs UNBONDED_WEIGHT of a bonded one of the same measured speed', () => {
    const expected = UNBONDED_WEIGHT / (1 + UNBONDED_WEIGHT);
    const got = shareOfA(replicas(false, true));
    assert.ok(Math.abs(got - expected) < 0.01, `unbonded a: ${got}, expected ${expected}`);
  });

  it('changes nothing when every holder is bonded, none is, or no bond is known (the same draws give the same routes)', () => {
    for (let u = 0; u < 1; u += 0.03) {
      const plain = chooseRoute(replicas(undefined, undefined), R, { random: fixed(u) });
      assert.deepEqual(chooseRoute(replicas(true, true), R, { random: fixed(u) }), plain, `u ${u}`);
      assert.deepEqual(chooseRoute(replicas(false, false), R, { random: fixed(u) }), plain, `u ${u}`);
    }
  });

  it('is a weight, not a filter: an unbonded holder that alone covers the layers is routed to', () => {
    assert.deepEqual(chooseRoute([h('a', 0, 2, { rttMs: 3, bonded: true }), h('keyless', 2, 4, { rttMs: 3, bonded: false })], R, { random: fixed(0.5) }).map((x) => x.peerId), ['a', 'keyless']);
  });
});
