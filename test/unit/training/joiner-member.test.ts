/**
 * A holder and a joiner agree on whether the joiner is a member of the round after its entry round (issue 9,
 * driver-entry under load: "d3 and d2 agree after round 4"). The joiner j enters round e (it only listens to it)
 * and is a full member of e + 1 in its own view. The holder a closed e and began e + 1 before it knew that j had
 * entered: its status call to j at that boundary failed (a timeout under load) and j's acceptance of a's Δ of round e
 * came after a's begin (a slow link: the 2-poll wait for a listener's acceptance ran out), so a began e + 1 with j
 * waived as still entering. Before the fix a aggregated e + 1 without j's Δ while j counted its own: two states,
 * a tied hash vote that sent j back to the round's start while a kept its own, and the two agreed again only
 * later. Over ./sync-net.ts, deterministic: the hooks force both halves of the race.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Net, until } from './sync-net.js';

const WHOLE = { start: 0, end: 3 };
const SYNC_MS = 3000; // sync-net's syncTimeoutMs

describe('a joiner waived by a holder that did not see it enter', () => {
  it('the holder counts it as a member of the round after its entry round as it does itself: equal hashes after every round', async () => {
    const net = new Net();
    try {
      const a = net.start('a', WHOLE, 20);
      await until(() => a.closed.length >= 1, 30_000, 'a round on a');
      const entered = (): number | undefined => net.nodes.get('j')?.sync.status().entered;
      // a's status calls to j fail while a is in the round j entered at (a's boundary after it misses j's entry)
      net.statusFails = (from, to) => from === 'a' && to === 'j' && entered() !== undefined && a.sync.round === entered();
      // a's Δ of that round reaches j (and j's acceptance a) only once a began the next round: a's 2-poll wait for a
      // listener's acceptance ran out (the trace: accepted 1 ms after the holder's begin)
      net.sendHold = (from, to, round) => (from === 'a' && to === 'j' && round === entered() ? until(() => a.sync.round > round, 30_000, 'a begins the next round') : undefined);
      const j = net.start('j', WHOLE, 20);
      await until(() => entered() !== undefined, 30_000, 'j entered');
      const e = entered()!;
      await until(() => j.closed.filter((r) => r > e).length >= 3 && a.closed.includes(j.closed.at(-1)!), 60_000, 'three rounds of j as a member, closed on a too');
      const ja = j.sync.status().closed;
      const aa = a.sync.status().closed;
      const shared = ja.filter((c) => c.round > e && aa.some((x) => x.round === c.round));
      assert.ok(shared.length >= 2, `rounds both kept: j ${ja.map((c) => c.round).join(',')}; a ${aa.map((c) => c.round).join(',')}`);
      for (const c of shared) assert.deepEqual(c.hashes, aa.find((x) => x.round === c.round)!.hashes, `j and a agree after round ${c.round} (j entered at ${e})`);
      // a's first round with j as a member: j's Δ counted, not waived, and no deadline waited for
      const first = a.reports.find((r) => r.round === e + 1);
      assert.ok(first !== undefined, `a closed round ${e + 1}`);
      assert.ok(!first.waived.includes('j') && first.members.includes('j'), `a counted j in round ${e + 1}: waived ${first.waived.join(',')}`);
      assert.ok(Object.values(first.records).every((rec) => rec.used === 2), `a aggregated both Δ in round ${e + 1}: ${JSON.stringify(Object.values(first.records).map((rec) => rec.used))}`);
      assert.ok(first.syncMs < SYNC_MS, `a's round ${e + 1} did not wait for its deadline (${first.syncMs} ms)`);
    } finally {
      await net.stop();
    }
  });
});
