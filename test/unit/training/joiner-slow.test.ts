/**
 * Joiner corner cases (issue 9, left open since session 19: "a joiner whose install is slower than a whole round, or a
 * second failed status call with a late Δ"). Over ./sync-net.ts with whole-model holders (the real OuterSync).
 *
 * - A joiner downloads its layers one by one, from the newest round the holders closed (sync.ts adopt). A holder
 *   keeps its last KEPT_ROUNDS closed rounds; once a download took longer than that many rounds of the holders', the
 *   round it began with was gone before its last layer ("no such state"), it began again with a newer round, and it
 *   never entered. The training-layer RPC now pins the round it serves for the joiner (OuterSync.serveLayer, with the
 *   pool download's quotas: training/keep.ts), so its later layers find it.
 * - A holder that waived the joiner in its first round as a member (its status call at the boundary failed), whose
 *   second status call (the round's confirm) failed too, and that got the joiner's Δ only after it closed: the two
 *   aggregate different Δ sets and differ after that round (the hash vote reports it as split); the next round's vote
 *   brings them back together. Not fixed: both failures and the late Δ are needed, and the repair is one round.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEPT_ROUNDS } from '../../../src/training/index.js';
import { Net, until, type Node } from './sync-net.js';

const WHOLE = { start: 0, end: 3 };
const SYNC_MS = 3000; // sync-net's syncTimeoutMs

const hashes = (n: Node, r: number): Record<string, string> | undefined => n.sync.status().closed.find((c) => c.round === r)?.hashes;

describe('joiner corner cases', () => {
  it('a joiner whose download takes longer than the rounds a holder keeps enters, and then agrees with the holders', async () => {
    const net = new Net();
    try {
      const a = net.start('a', WHOLE, 20);
      const b = net.start('b', WHOLE, 20);
      await until(() => a.closed.length >= 2 && b.closed.length >= 2, 30_000, 'two rounds on a and b');
      // every layer's answer takes 300 ms to reach j: its five layers take 1.5 s, more than KEPT_ROUNDS rounds of a
      // and b (about 50 ms each here)
      net.fetchHold = (from) => (from === 'j' ? new Promise((r) => setTimeout(r, 300)) : undefined);
      const t0 = Date.now();
      const before = a.closed.length;
      const j = net.start('j', WHOLE, 20);
      const entered = (): number | undefined => j.sync.status().entered;
      await until(() => entered() !== undefined, 20_000, 'j entered');
      assert.ok(a.closed.length - before > KEPT_ROUNDS, `the download outlasted the rounds a keeps (${a.closed.length - before} rounds in ${Date.now() - t0} ms)`);
      // then all three close rounds together (three Δ each) and agree: two such rounds, compared while all keep them
      let seen: { r: number; h: (Record<string, string> | undefined)[] }[] = [];
      await until(
        () => {
          seen = j.reports
            .filter((x) => Object.values(x.records).length > 0 && Object.values(x.records).every((rec) => rec.used === 3))
            .map((x) => ({ r: x.round, h: [hashes(a, x.round), hashes(b, x.round), hashes(j, x.round)] }))
            .filter((x) => x.h.every((h) => h !== undefined));
          return seen.length >= 2;
        },
        30_000,
        `two rounds that a, b and j closed with three Δ each (j ${j.closed.slice(-5).join(',')}; a ${a.closed.slice(-5).join(',')})`,
      );
      for (const { r, h } of seen.slice(-2)) {
        assert.deepEqual(h[2], h[0], `j and a agree after round ${r}`);
        assert.deepEqual(h[1], h[0], `b and a agree after round ${r}`);
      }
    } finally {
      await net.stop();
    }
  });

  it('a second failed status call and a late Δ: holder and joiner differ after that round only', async () => {
    const net = new Net();
    try {
      const a = net.start('a', WHOLE, 20);
      await until(() => a.closed.length >= 1, 30_000, 'a round on a');
      const entered = (): number | undefined => net.nodes.get('j')?.sync.status().entered;
      // a's status calls to j fail in the round j entered at and in the next (the boundary's call and the confirm)
      net.statusFails = (from, to) => from === 'a' && to === 'j' && entered() !== undefined && (a.sync.round === entered() || a.sync.round === entered()! + 1);
      // a's Δ of j's entry round reaches j after a's begin (joiner-member.test.ts); j's Δ of the next round reaches a
      // only after a closed it
      net.sendHold = (from, to, round) => {
        const e = entered();
        if (e !== undefined && from === 'a' && to === 'j' && round === e) return until(() => a.sync.round > round, 30_000, 'a begins the next round');
        if (e !== undefined && from === 'j' && to === 'a' && round === e + 1) return until(() => a.sync.round > round, 30_000, 'a closed it');
        return undefined;
      };
      const j = net.start('j', WHOLE, 20);
      await until(() => entered() !== undefined, 30_000, 'j entered');
      const e = entered()!;
      await until(() => [e + 2, e + 3].every((r) => hashes(a, r) !== undefined && hashes(j, r) !== undefined), 60_000, 'rounds e + 2 and e + 3 on both');
      const ra = a.reports.find((r) => r.round === e + 1);
      assert.ok(ra !== undefined && ra.waived.includes('j'), `a waived j in round ${e + 1}`);
      assert.notDeepEqual(hashes(a, e + 1), hashes(j, e + 1), 'they differ after that round (a left j\'s Δ out, j counted it)');
      for (const r of [e + 2, e + 3]) assert.deepEqual(hashes(j, r), hashes(a, r), `they agree again after round ${r}`);
      for (const r of a.reports.filter((x) => x.round >= e + 2)) assert.ok(r.syncMs < SYNC_MS, `a's round ${r.round} did not wait for its deadline`);
    } finally {
      await net.stop();
    }
  });
});
