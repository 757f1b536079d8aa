/**
 * Round pins (training/keep.ts pinRound, reached by anyone through a `checkpoint` or `training-layer` request naming
 * a round): the quotas bound what pins cost (2 pins a peer, 60 s after renewal, 5 min at most, 4 distinct rounds,
 * new pins only on rounds inside the kept window), and they hold. Until session 22 the distinct-rounds quota was
 * first come, first served: two fresh keys that pinned the four rounds of the window and renewed them held all four
 * places for five minutes, and every joiner's pin on a newer round was refused meanwhile, so a download slower than
 * KEPT_ROUNDS rounds lost its round again (the failure pins were made for; found by the session-22 attack pass). Now a
 * pin inside the window is always granted and the quota keeps the newest pinned rounds past the window.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEPT_ROUNDS, PIN_LIMITS, pinRound, roundsToKeep, type RoundPin } from '../../src/training/keep.js';
import { tally } from './tally.js';

describe('round pins', () => {
  it('the quotas hold against fresh keys: at most KEPT_ROUNDS + maxRounds snapshots, a pin never outlives its cap', () => {
    let pins: RoundPin[] = [];
    const closed: number[] = [];
    let maxKept = 0;
    let sent = 0;
    // a round closes every 10 s for 20 minutes; 100 fresh keys each pin every round they can, renewing every 10 s
    for (let t = 0, r = 0; t <= 1_200_000; t += 10_000) {
      closed.push(r++);
      for (let k = 0; k < 100; k++) {
        for (const round of [closed[0]!, closed[closed.length - 1]!, -1, 2 ** 48]) {
          pins = pinRound(pins, `sybil${k}`, round, roundsToKeep(closed, pins, t), t).pins;
          sent++;
        }
      }
      const kept = roundsToKeep(closed, pins, t);
      maxKept = Math.max(maxKept, kept.length);
      for (const p of pins) assert.ok(p.until - p.since <= PIN_LIMITS.capMs);
      // the holder drops what it does not keep
      closed.splice(0, closed.length, ...kept);
    }
    tally('round pins: snapshots past the quota', sent, maxKept > KEPT_ROUNDS + PIN_LIMITS.maxRounds ? 1 : 0);
    assert.ok(maxKept <= KEPT_ROUNDS + PIN_LIMITS.maxRounds, `${maxKept} rounds kept`);
  });

  it(
    "two fresh keys holding the four distinct-round places do not refuse an honest joiner's pin on the newest round",
    () => {
      const closed = Array.from({ length: KEPT_ROUNDS }, (_, i) => i);
      let pins: RoundPin[] = [];
      // t = 0: two fresh keys pin the window's four rounds (two pins each)
      for (const [k, round] of [
        ['sybilA', 0],
        ['sybilA', 1],
        ['sybilB', 2],
        ['sybilB', 3],
      ] as const) {
        pins = pinRound(pins, k, round, closed, 0).pins;
      }
      let refused = 0;
      let lost = 0;
      let asked = 0;
      // a round closes every 10 s; the keys renew their pins every 10 s; a joiner arrives each round and pins the newest
      for (let t = 10_000, r = KEPT_ROUNDS; t <= 280_000; t += 10_000, r++) {
        closed.push(r);
        for (const p of pins.filter((x) => x.peer.startsWith('sybil'))) pins = pinRound(pins, p.peer, p.round, closed, t).pins;
        const j = pinRound(pins, `joiner${r}`, r, closed, t);
        pins = j.pins;
        asked++;
        if (!j.pinned) refused++;
        // the joiner whose round has just left the window (its download outlasted KEPT_ROUNDS rounds) still finds it
        const slow = r - KEPT_ROUNDS;
        if (slow >= KEPT_ROUNDS && !roundsToKeep(closed, pins, t).includes(slow)) lost++;
      }
      tally("round pins: joiners' pins refused or their rounds dropped by two keys' squatting", asked, refused + lost);
      assert.equal(refused, 0, `${refused} of ${asked} joiners' pins on the newest round were refused`);
      assert.equal(lost, 0, `${lost} slow joiners lost their pinned round`);
    },
  );
});
