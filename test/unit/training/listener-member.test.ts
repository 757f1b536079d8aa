/**
 * A listener is a member on every holder (issue 9, outer-move on CI): a joiner listens to the round it enters at
 * (waived: it sends no Δ there) and is a full member of the next. A holder learns that the joiner is in the rounds
 * from its status; no close asks a waived member's status but the one at the boundary, so when that one call failed
 * (a timeout under load) the holder kept the joiner's last status, from before its entry ('entering'), and waived it
 * again in the next round: it refused the joiner's Δ there, counted two of three, and the joiner's first round as a
 * member ("a full member", "three contributions per layer") failed. The joiner took the holder's Δ of its entry round:
 * that acceptance says it is in the rounds, and it now counts as heard from (sync.ts notWaited, `tookOurs`).
 *
 * Over ./sync-net.ts: a and b train together, j joins; every status call from a to j fails from j's entry until a has
 * closed j's entry round (the network's `statusFails`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Net, until } from './sync-net.js';

const S = { start: 0, end: 3 };

describe('a listener is a member on every holder', () => {
  it('a holder whose status call to a listener failed at its boundary still waits for it in the next round and counts its Δ', async () => {
    const net = new Net();
    try {
      const a = net.start('a', S, 10);
      const b = net.start('b', S, 12);
      await until(() => a.closed.length >= 2, 20_000, 'two rounds of a and b');
      const j = net.start('j', S, 11);
      const entered = (): number | undefined => j.sync.status().entered;
      net.statusFails = (from, to) => from === 'a' && to === 'j' && entered() !== undefined && !a.closed.includes(entered()!);
      await until(() => entered() !== undefined && [a, b, j].every((x) => x.closed.includes(entered()! + 1)), 30_000, 'j entered, and a, b and j closed the round after its entry');
      const e = entered()!;
      assert.ok(e > 0, `j entered as a joiner (round ${e})`);
      // round e + 1 on every holder: j a member, waited for, its Δ counted on every layer, one state
      for (const x of [a, b, j]) {
        const r = x.reports.find((y) => y.round === e + 1);
        assert.ok(r !== undefined, `${x.id} closed round ${e + 1}`);
        assert.ok(r.members.includes('j') && !r.waived.includes('j'), `${x.id}: j a member of round ${e + 1}, waited for (waived ${JSON.stringify(r.waived)})`);
        assert.ok(Object.values(r.records).every((rec) => rec.contributions.some((c) => c.id === 'j')), `${x.id}: j's Δ counted on every layer of round ${e + 1}`);
        assert.equal(r.accepted, 3 * Object.keys(r.outcome).length, `${x.id}: three contributions per layer in round ${e + 1}`);
        assert.deepEqual(r.repaired, [], `${x.id}: no layer repaired after round ${e + 1}`);
      }
    } finally {
      await net.stop();
    }
  });
});
