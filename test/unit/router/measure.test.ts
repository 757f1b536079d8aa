/** What route choice is fed: measured round trips (EWMA), stated tokens/s as compute time and capacity, liveness. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseRoute, holderViews, LatencyTable, msPerLayerOf, roundTripMs, type PeerHolding } from '../../../src/router/index.js';

const p = (peerId: string, start: number, end: number, over: Partial<PeerHolding> = {}): PeerHolding => ({ peerId, span: { start, end }, state: 'alive', ...over });
const R = { start: 0, end: 4 };

describe('route measurements', () => {
  it('the moving average follows samples with weight alpha, ignores bad ones and clamps stalls', () => {
    const t = new LatencyTable(0.5);
    assert.equal(t.rttMs('a'), undefined);
    assert.equal(t.observe('a', 10), 10);
    assert.equal(t.observe('a', 20), 15);
    assert.equal(t.observe('a', 5), 10);
    assert.equal(t.observe('a', Number.NaN), 10);
    assert.equal(t.observe('a', -3), 10);
    assert.equal(t.samples('a'), 3);
    t.observe('b', 1e9);
    assert.equal(t.rttMs('b'), 10_000);
    t.forget('a');
    assert.equal(t.rttMs('a'), undefined);
    assert.throws(() => new LatencyTable(0));
  });

  it('the floor is the least of the last 16 round trips, after 4 of them (session 30, --hop-push auto)', () => {
    const t = new LatencyTable();
    for (const ms of [3, 0.4, 5]) t.observe('p', ms);
    assert.equal(t.floorMs('p'), undefined, 'fewer than 4 samples');
    t.observe('p', 9);
    assert.equal(t.floorMs('p'), 0.4);
    assert.ok(t.rttMs('p')! > 2, 'the average follows the spikes');
    // 16 samples kept: the 0.4 (the second) leaves with the 18th
    for (let i = 0; i < 12; i++) t.observe('p', 2 + i);
    t.observe('p', 20);
    assert.equal(t.floorMs('p'), 0.4, 'the 17th pushes out the first');
    t.observe('p', 21);
    assert.equal(t.floorMs('p'), 2);
    t.observeStep('q', 10, 9.5);
    assert.equal(t.floorMs('q', 1), 0.5, 'a step\'s round trip: wall less stated compute');
    assert.equal(t.floorMs('nobody', 1), undefined);
  });

  it('is bounded: the least recently measured peer goes first', () => {
    const t = new LatencyTable(0.3, 2);
    t.observe('a', 1);
    t.observe('b', 1);
    t.observe('a', 1);
    t.observe('c', 1);
    assert.equal(t.rttMs('b'), undefined);
    assert.notEqual(t.rttMs('a'), undefined);
    assert.notEqual(t.rttMs('c'), undefined);
  });

  it('the round trip is the wall time less the compute the hop stated', () => {
    assert.equal(roundTripMs(12, 10), 2);
    assert.equal(roundTripMs(12, undefined), 12);
    assert.equal(roundTripMs(5, 9), 0);
    assert.equal(roundTripMs(5, Number.NaN), 5);
  });

  it('stated tokens/s through a span give its compute time per layer', () => {
    assert.equal(msPerLayerOf(100, 2), 5);
    assert.equal(msPerLayerOf(0, 2), undefined);
    assert.equal(msPerLayerOf(undefined, 2), undefined);
    assert.equal(msPerLayerOf(Number.POSITIVE_INFINITY, 2), undefined);
  });

  it('the holder view: dead peers out, stale ones priced behind, measurements where known', () => {
    const rtt = new Map([['a', 3]]);
    const v = holderViews({
      peers: [p('a', 0, 2, { tokensPerSec: 50 }), p('b', 0, 2, { state: 'stale' }), p('c', 2, 4, { state: 'dead' }), p('d', 2, 4, { tokensPerSec: 0 })],
      rttMs: (x) => rtt.get(x),
      stalePenaltyMs: 50,
    });
    assert.deepEqual(v, [
      { peerId: 'a', span: { start: 0, end: 2 }, alive: true, rttMs: 3, msPerLayer: 10, tokensPerSec: 50 },
      // b and d: no round trip measured, so this node never saw them serve (unproven: their claims are not believed)
      { peerId: 'b', span: { start: 0, end: 2 }, alive: true, rttMs: 50, unproven: true, quiet: true },
      { peerId: 'd', span: { start: 2, end: 4 }, alive: true, unproven: true },
    ]);
  });

  it('a holder whose heartbeat is late by more than half an interval is quiet (only with the interval given)', () => {
    const peers = [p('on-time', 0, 2, { silentMs: 4_000 }), p('late', 0, 2, { silentMs: 7_600 }), p('unknown', 2, 4)];
    const v = holderViews({ peers, rttMs: () => undefined, stalePenaltyMs: 50, heartbeatIntervalMs: 5_000 });
    assert.deepEqual(v.map((x) => [x.peerId, x.quiet === true]), [['on-time', false], ['late', true], ['unknown', false]]);
    assert.ok(holderViews({ peers, rttMs: () => undefined, stalePenaltyMs: 50 }).every((x) => x.quiet === undefined), 'no interval, no quiet flag');
  });

  it('measured latency and speed decide the route: a far replica and a slow replica lose to a near, fast one', () => {
    const lat = new LatencyTable();
    // far: 40 ms away; near: 1 ms away. Both state the same speed.
    for (let i = 0; i < 5; i++) {
      lat.observe('far', 40);
      lat.observe('near', 1);
    }
    const peers = [p('far', 0, 2, { tokensPerSec: 100 }), p('near', 0, 2, { tokensPerSec: 100 }), p('v', 2, 4, { tokensPerSec: 100 })];
    for (const u of [0, 0.5, 0.99]) {
      assert.deepEqual(chooseRoute(holderViews({ peers, rttMs: (x) => lat.rttMs(x), stalePenaltyMs: 50 }), R, { random: () => u }).map((h) => h.peerId), ['near', 'v']);
    }
    // the same latency, but one replica computes 10× slower (10 tokens/s through 2 layers: 50 ms a layer)
    const speeds = [p('slow', 0, 2, { tokensPerSec: 10 }), p('fast', 0, 2, { tokensPerSec: 100 }), p('v', 2, 4, { tokensPerSec: 100 })];
    for (const u of [0, 0.5, 0.99]) {
      assert.deepEqual(chooseRoute(holderViews({ peers: speeds, rttMs: () => 1, stalePenaltyMs: 50 }), R, { random: () => u }).map((h) => h.peerId), ['fast', 'v']);
    }
    // with nothing measured the two replicas tie and both are drawn
    const blind = holderViews({ peers: [p('x', 0, 2), p('y', 0, 2), p('v', 2, 4)], rttMs: () => undefined, stalePenaltyMs: 50 });
    assert.deepEqual(new Set([0, 0.99].map((u) => chooseRoute(blind, R, { random: () => u })[0]!.peerId)), new Set(['x', 'y']));
  });
});

describe('measured step time (issue 12, Sybil side)', () => {
  it('observeStep keeps the round trip net of the stated compute and the wall time itself', () => {
    const t = new LatencyTable(0.5);
    t.observeStep('a', 30, 20);
    assert.equal(t.rttMs('a'), 10);
    assert.equal(t.stepMs('a'), 30);
    t.observeStep('a', 10, 0);
    assert.equal(t.rttMs('a'), 10);
    assert.equal(t.stepMs('a'), 20);
    // a hop that states its whole wall time as compute still shows the wall time
    t.observeStep('b', 40, 40);
    assert.equal(t.rttMs('b'), 0);
    assert.equal(t.stepMs('b'), 40);
    t.observe('a', 4); // a round trip alone keeps the step figure
    assert.equal(t.stepMs('a'), 20);
    assert.equal(t.stepMs('never'), undefined);
  });

  it('the holder view carries the measured step and the observed address block', () => {
    const v = holderViews({
      peers: [p('a', 0, 2, { tokensPerSec: 50, block: 'ip4 203.0.113' }), p('b', 2, 4, { state: 'stale' })],
      rttMs: (x) => (x === 'a' ? 3 : x === 'b' ? 5 : undefined),
      stepMs: (x) => (x === 'a' ? 13 : x === 'b' ? 25 : undefined),
      stalePenaltyMs: 50,
    });
    assert.deepEqual(v, [
      { peerId: 'a', span: { start: 0, end: 2 }, alive: true, rttMs: 3, msPerLayer: 10, tokensPerSec: 50, block: 'ip4 203.0.113', stepMs: 13 },
      { peerId: 'b', span: { start: 2, end: 4 }, alive: true, rttMs: 55, stepMs: 75, quiet: true },
    ]);
  });
});

describe('bonds from the ledger stakes (issue 12 §3)', () => {
  it('marks each holder bonded when its locked stake reaches the bond; a peer missing from the map has none', () => {
    const peers = [p('rich', 0, 2), p('poor', 0, 2), p('absent', 2, 4)];
    const views = holderViews({ peers, rttMs: () => undefined, stalePenaltyMs: 50, stakes: new Map([['rich', 100n], ['poor', 99n]]), minBond: 100n });
    assert.deepEqual(views.map((v) => [v.peerId, v.bonded]), [['rich', true], ['poor', false], ['absent', false]]);
    // the default bond is any stake
    assert.equal(holderViews({ peers, rttMs: () => undefined, stalePenaltyMs: 50, stakes: new Map([['poor', 1n]]) })[1]!.bonded, true);
  });

  it('leaves bonded unset without a stake lookup', () => {
    const [v] = holderViews({ peers: [p('a', 0, 4)], rttMs: () => undefined, stalePenaltyMs: 50 });
    assert.equal('bonded' in v!, false);
  });
});
