/**
 * The lane's frame deadline (p2p/lane/lane.ts frameOverdue): a frame whose length has arrived must arrive whole within
 * frameMs plus one second per frameBytesPerSec of it. A slow honest sender of a large frame is inside it; a length
 * followed by nothing is not (test/attacks/lane-stall drives it through a real Lane).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { frameOverdue } from '../../../src/p2p/lane/lane.js';
import { LANE_DEFAULTS } from '../../../src/p2p/lane/manager.js';

describe('lane frame deadline', () => {
  it('allows a 4 MiB frame from a 64 KiB/s sender and cuts a stalled one', () => {
    const bytes = 4 * 1024 * 1024 + 16;
    const since = 1_000_000;
    assert.equal(frameOverdue(undefined, since + 10 ** 9, LANE_DEFAULTS), false, 'no frame in progress');
    // 4 MiB at 64 KiB/s takes 64 s: inside 30 s + 64 s
    assert.equal(frameOverdue({ since, bytes }, since + 64_000, LANE_DEFAULTS), false);
    assert.equal(frameOverdue({ since, bytes }, since + 93_000, LANE_DEFAULTS), false);
    assert.equal(frameOverdue({ since, bytes }, since + 95_000, LANE_DEFAULTS), true);
    // a small frame gets about frameMs
    assert.equal(frameOverdue({ since, bytes: 3_000 }, since + 30_000, LANE_DEFAULTS), false);
    assert.equal(frameOverdue({ since, bytes: 3_000 }, since + 30_100, LANE_DEFAULTS), true);
  });
});
