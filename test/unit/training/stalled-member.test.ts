/**
 * A member that takes no inner step is not waited for (issue 9: outer-move after the swap on Node 24). Chains tie
 * layer groups into one wait: a hop paused in its round's close waited for a member's Δ, that member's steps came
 * from a driver paused in its own close, which waited for the Δ of a driver whose hop was the first one. Four nodes
 * in a cycle: each round waited for its deadline (120 s) and then its hash vote for its bound (125 s). A member whose
 * status shows it in its inner steps with the same step count for `stalledMs` is released from the round (its Δ not
 * waited for), which breaks any such cycle; a member that steps slowly is still waited for.
 *
 * Over ./sync-net.ts's solo nodes (three replicas of the whole tiny model, the real OuterSync): one replica's steps
 * stall (frozen) or slow down; the sync deadline is long (20 s) and the stall bound short (3 s).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Net, until } from './sync-net.js';

const WHOLE = { start: 0, end: 3 };
const SYNC_MS = 20_000;
const STALLED_MS = 3_000;

describe('a member that takes no inner step is not waited for', () => {
  it('the others close the round long before the deadline, with the stalled member released; it rejoins their state when it steps again', async () => {
    const net = new Net({ syncTimeoutMs: SYNC_MS, stalledMs: STALLED_MS });
    try {
      const [a, b, w] = [net.start('a', WHOLE, 5), net.start('b', WHOLE, 5), net.start('w', WHOLE, 5)];
      await until(() => [a, b, w].every((n) => n.reports.length >= 2), 30_000, 'two rounds on every replica');
      net.frozen.add('w');
      const t = Date.now();
      const next = Math.max(a.reports.length, b.reports.length) + 1;
      await until(() => a.reports.length >= next && b.reports.length >= next, SYNC_MS, 'a and b close a round without w');
      const ms = Date.now() - t;
      const r = a.reports.at(-1)!;
      assert.ok(ms < SYNC_MS / 2, `closed in ${ms} ms, far from the deadline`);
      assert.ok(r.waived.includes('w') && Object.values(r.outcome).every((o) => o === 'closed'), `a's round ${r.round}: w released, every layer closed (${JSON.stringify({ waived: r.waived, outcome: r.outcome })})`);
      assert.ok(a.infos.some((x) => x.startsWith('a member shows no progress')), 'a says why');
      // w steps again: it closes its round and ends in the others' state
      net.frozen.delete('w');
      const last = a.reports.at(-1)!.round;
      await until(() => w.closed.some((x) => x > last) && a.closed.some((x) => x > last + 1), 30_000, 'w back in the rounds');
      const common = w.closed.filter((x) => x > last && a.closed.includes(x) && b.closed.includes(x)).at(-1);
      assert.ok(common !== undefined, `a round w, a and b all closed after the stall (w ${w.closed.join(',')}; a ${a.closed.join(',')})`);
      const hashes = (n: typeof a): Record<string, string> | undefined => n.sync.status().closed.find((c) => c.round === common)?.hashes;
      assert.deepEqual(hashes(w), hashes(a), `w and a agree after round ${common}`);
      assert.deepEqual(hashes(b), hashes(a), `b and a agree after round ${common}`);
    } finally {
      await net.stop();
    }
  });

  it('a member that steps slowly (a step every 1 s, under the 3 s bound) is waited for: its Δ counts', async () => {
    const net = new Net({ syncTimeoutMs: SYNC_MS, stalledMs: STALLED_MS });
    try {
      const [a, b, w] = [net.start('a', WHOLE, 5), net.start('b', WHOLE, 5), net.start('w', WHOLE, 5)];
      await until(() => [a, b, w].every((n) => n.reports.length >= 2), 30_000, 'two rounds on every replica');
      w.stepMs = 1_000;
      const from = a.reports.length;
      await until(() => a.reports.length >= from + 3, 60_000, 'three more rounds of a');
      for (const r of a.reports.slice(from + 1)) {
        assert.ok(!r.waived.includes('w'), `a round ${r.round}: w waited for (${JSON.stringify(r.waived)})`);
        assert.equal(r.accepted, 3 * 5, `a round ${r.round}: three contributions per layer`);
      }
    } finally {
      await net.stop();
    }
  });
});
