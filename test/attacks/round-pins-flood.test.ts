/**
 * Round pins (training/keep.ts pinRound) against fresh keys in numbers (session 23 review of session 22's quotas).
 *
 * Session 22 capped the pins held in all at PIN_LIMITS.maxPins (256), a new pin replacing the oldest one, and made
 * every pin on a round inside the window granted. A pin costs its maker one checkpoint request naming a round in the
 * window, so 256 fresh keys a round (one request each) push every other pin out, the honest joiner's first: its pin
 * is the oldest (pins are ordered by when they were made; renewing does not move it), and once its round has left
 * the window it cannot pin it again. The holder then drops that round and the joiner's download fails, which is what
 * pins exist to prevent. Fixed: at maxPins the oldest pin that does not alone keep
 * a round is replaced.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEPT_ROUNDS, PIN_LIMITS, pinRound, roundsToKeep, type RoundPin } from '../../src/training/keep.js';

describe('round pins against fresh keys in numbers', () => {
  it(
    "maxPins fresh keys a round do not push out a renewing joiner's pin and drop its round",
    () => {
      const closed = Array.from({ length: KEPT_ROUNDS }, (_, i) => i);
      let pins: RoundPin[] = [];
      let fresh = 0;
      let lost = 0;
      let joiners = 0;
      /** Joiners downloading: the round each pinned, renewed every 10 s until its download ends. */
      const downloading = new Map<string, { round: number; until: number }>();
      // a round closes every 10 s; a joiner arrives each round, pins the newest and downloads for KEPT_ROUNDS + 2 rounds
      // (a slow download: its round leaves the window before it ends); meanwhile maxPins fresh keys each pin the newest
      for (let t = 10_000, r = KEPT_ROUNDS; t <= 300_000; t += 10_000, r++) {
        closed.push(r);
        for (const [peer, d] of downloading) {
          if (t > d.until) {
            downloading.delete(peer);
            continue;
          }
          if (!roundsToKeep(closed, pins, t).includes(d.round)) {
            lost++;
            downloading.delete(peer);
            continue;
          }
          pins = pinRound(pins, peer, d.round, closed, t).pins;
        }
        const j = `joiner${r}`;
        const mine = pinRound(pins, j, r, closed, t);
        pins = mine.pins;
        if (mine.pinned) {
          joiners++;
          downloading.set(j, { round: r, until: t + (KEPT_ROUNDS + 2) * 10_000 });
        }
        for (let k = 0; k < PIN_LIMITS.maxPins; k++) pins = pinRound(pins, `fresh${fresh++}`, r, closed, t).pins;
        // the holder drops what it does not keep
        closed.splice(0, closed.length, ...roundsToKeep(closed, pins, t));
      }
      process.stdout.write(`round pins flood: ${fresh} fresh keys' pins; ${lost} of ${joiners} slow joiners lost their round\n`);
      assert.ok(joiners > 0);
      assert.equal(lost, 0, `${lost} of ${joiners} joiners lost their pinned round to ${PIN_LIMITS.maxPins} fresh keys' pins a round`);
    },
  );
});
