import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { concurrentTokS } from '../../../src/node/serving-bench/bench.js';

describe('concurrentTokS (serving-batch: tokens/s while every stream decodes)', () => {
  it('sums each stream\'s rate over its tokens in the span all streams share, leaving out a late start', () => {
    // stream a decodes every 10 ms from t = 0; stream b's first token comes at t = 100 (its prefill waited behind a's
    // steps), then every 10 ms; both end at t = 300
    const a = { times: Array.from({ length: 31 }, (_, i) => i * 10) };
    const b = { times: Array.from({ length: 21 }, (_, i) => 100 + i * 10) };
    // 100 tok/s each while both run
    assert.equal(concurrentTokS([a, b]), 200);
    // the earlier span figure (first first token to last token) counts b's late start against both: (30 + 20) / 0.3 s
    assert.ok(Math.abs(((a.times.length - 1 + b.times.length - 1) * 1000) / 300 - 166.67) < 0.01);
  });

  it('measures whole token-to-token intervals (a stream\'s tokens need not fall on the span\'s ends)', () => {
    const a = { times: [0, 10, 20, 30, 40, 50] };
    const b = { times: [5, 25, 45, 65] }; // shared span [5, 50]: a's 10..50 (4 intervals in 40 ms), b's 5..45 (2 in 40 ms)
    assert.equal(concurrentTokS([a, b]), 100 + 50);
  });

  it('is null when the streams never decode together', () => {
    assert.equal(concurrentTokS([{ times: [0, 10, 20] }, { times: [30, 40] }]), null);
    assert.equal(concurrentTokS([{ times: [0, 10, 20] }, { times: [15, 40] }]), null); // b has 1 token inside
  });
});
