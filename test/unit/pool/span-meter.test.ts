/**
 * The rate on multi-layer checkpoint requests (pool/span-meter.ts): token buckets per peer and in all, over plain data.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refill, SpanMeter, type SpanMeterLimits } from '../../../src/pool/span-meter.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const LIMITS: SpanMeterLimits = { peerBurst: 2, peerEveryMs: 1000, allBurst: 3, allEveryMs: 500, maxPeers: 2 };
const busy = (e: unknown): boolean => isNeuroShardError(e) && e.code === 'CHECKPOINT_BUSY' && e.fault === 'local' && typeof e.meta?.retryInMs === 'number';

describe('span meter', () => {
  it('refill: a new bucket is full, tokens come back at one per period up to the burst, a clock going back adds none', () => {
    assert.deepEqual(refill(undefined, 4, 100, 50), { tokens: 4, at: 50 });
    assert.deepEqual(refill({ tokens: 0, at: 0 }, 4, 100, 250), { tokens: 2.5, at: 250 });
    assert.deepEqual(refill({ tokens: 3, at: 0 }, 4, 100, 1000), { tokens: 4, at: 1000 });
    assert.deepEqual(refill({ tokens: 1, at: 500 }, 4, 100, 400), { tokens: 1, at: 500 });
  });

  it('a peer gets its burst, then one per period; the overall burst bounds every peer together', () => {
    let t = 0;
    const m = new SpanMeter(LIMITS, () => t);
    m.take('a');
    m.take('a');
    assert.throws(() => m.take('a'), busy, 'a: its burst is spent');
    m.take('b');
    assert.throws(() => m.take('c'), busy, 'the overall burst (3) is spent');
    assert.equal(m.refused, 2);
    t = 1000; // a: +1, all: +2
    m.take('a');
    m.take('c');
    assert.throws(() => m.take('c'), busy);
  });

  it('at most maxPeers buckets are kept; a forgotten peer starts full but the overall bucket still holds', () => {
    const t = 0;
    const m = new SpanMeter({ ...LIMITS, allBurst: 100 }, () => t);
    for (const p of ['a', 'b', 'c']) m.take(p);
    m.take('a'); // 'a' was forgotten (maxPeers 2): a fresh bucket
    m.take('a');
    assert.throws(() => m.take('a'), busy);
  });
});
