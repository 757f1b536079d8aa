/**
 * Chain planning (training/chain.ts planChain) and chain-id ordering (protocols/train-stage.ts olderChain): the
 * fewest hops whose spans line up, cost then peer id as tie-breaks, excluded peers left out, no chain when a layer
 * boundary has no holder; a driver's older chain is recognised, other drivers' ids are not comparable.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { olderChain } from '../../../src/protocols/train-stage.js';
import { driverGone, planChain } from '../../../src/training/index.js';
import { chainTieKey } from '../../../src/training/chain.js';

const self = { peer: 'me', span: { start: 0, end: 2 } };
const h = (peer: string, start: number, end: number, cost?: number) => ({ peer, span: { start, end }, ...(cost === undefined ? {} : { cost }) });

describe('planChain', () => {
  it('takes the fewest hops whose spans line up', () => {
    const p = planChain(self, [h('a', 2, 4), h('b', 4, 8), h('c', 2, 8), h('d', 3, 8)], 8);
    assert.deepEqual(p?.map((x) => x.peer), ['me', 'c']);
  });
  it('breaks ties by cost, then by the driver\'s own order of the hops', () => {
    assert.deepEqual(planChain(self, [h('z', 2, 8, 1), h('y', 2, 8, 5)], 8)?.map((x) => x.peer), ['me', 'z']);
    // equal cost: each driver's own order (chainTieKey), the same whatever the candidates' order
    const first = (driver: string, cs: ReturnType<typeof h>[]): string => planChain({ peer: driver, span: self.span }, cs, 8)![1]!.peer;
    const drivers = Array.from({ length: 16 }, (_, i) => `driver-${i}`);
    const picks = drivers.map((d) => first(d, [h('z', 2, 8), h('y', 2, 8), h('x', 2, 8)]));
    for (const [i, d] of drivers.entries()) assert.equal(first(d, [h('x', 2, 8), h('z', 2, 8), h('y', 2, 8)]), picks[i], `${d}: a stable choice`);
    assert.ok(new Set(picks).size >= 2, `drivers spread over equal replicas (${picks.join()}), not all on the lowest id`);
    assert.equal(chainTieKey('d', 'y'), chainTieKey('d', 'y'));
  });
  it('leaves excluded peers out, and finds none when a boundary has no holder', () => {
    assert.deepEqual(planChain(self, [h('c', 2, 8), h('a', 2, 4), h('b', 4, 8)], 8, new Set(['c']))?.map((x) => x.peer), ['me', 'a', 'b']);
    assert.equal(planChain(self, [h('a', 2, 4), h('b', 5, 8)], 8), null);
    assert.equal(planChain({ peer: 'me', span: { start: 1, end: 2 } }, [h('c', 2, 8)], 8), null);
  });
  it('a self span that covers the model is a one-node chain', () => {
    assert.deepEqual(planChain({ peer: 'me', span: { start: 0, end: 8 } }, [h('c', 2, 8)], 8)?.map((x) => x.peer), ['me']);
  });
});

describe('olderChain', () => {
  it('orders the chains of one driver by sequence, and nothing else', () => {
    assert.equal(olderChain('n1:3', 'n1:4'), true);
    assert.equal(olderChain('n1:4', 'n1:3'), false);
    assert.equal(olderChain('n1:3', 'n2:4'), false);
    assert.equal(olderChain('exact', 'n1:4'), false);
  });
});

describe('driverGone', () => {
  it('a driver the view shows dead, holding no span, or a span not starting at 0 (or the whole model) no longer drives; one it does not know may', () => {
    assert.equal(driverGone(undefined, 4), false);
    assert.equal(driverGone({ state: 'alive', span: { start: 0, end: 2 } }, 4), false);
    assert.equal(driverGone({ state: 'stale', span: { start: 0, end: 2 } }, 4), false);
    assert.equal(driverGone({ state: 'dead', span: { start: 0, end: 2 } }, 4), true);
    assert.equal(driverGone({ state: 'alive', span: { start: 2, end: 4 } }, 4), true);
    assert.equal(driverGone({ state: 'alive', span: undefined }, 4), true);
    assert.equal(driverGone({ state: 'alive', span: { start: 0, end: 4 } }, 4), true);
  });
});
