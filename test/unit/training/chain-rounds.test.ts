/**
 * The stages of a pipeline chain begin one round number (issue 9, the 2-minute chaos run's trainers at 17, 17, 16:
 * the driver one behind its hop for good). Two stages of one chain share no layer, so the pull-forward between the
 * holders of a layer (training/rounds.ts nextRoundNumber, two or more ahead) never moved a number one behind, and
 * each stage picked its next number alone, at its own moment of the close. Over the in-memory network of
 * ./sync-net.ts with the real OuterSync logic and a chain whose stages step together (training/chain-outer.ts's
 * pause semantics):
 *
 *   - a driver and its hop that start their rounds one number apart (each alone in its layers' rounds) begin one
 *     number at their next boundary and stay so; a whole-model holder that joins agrees with both (one number, equal
 *     hashes). Before: 5,6,7… and 6,7,8… for good, and the whole-model holder could not tie them.
 *   - a hop whose rounds end one step before its driver's (it applied a step whose acknowledgement its driver lost)
 *     runs one shorter round and from then on closes with its driver, at its number;
 *   - the same after both published a boundary: the hop's boundary comes one step before its driver's where the
 *     driver's last boundary says it comes too; the driver asking the paused hop for its next step says it does not.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Net, until, type Node } from './sync-net.js';

const hashesOf = (n: Node, r: number): Record<string, string> | undefined => n.sync.status().closed.find((c) => c.round === r)?.hashes;

describe('chain partners begin one round number', () => {
  it('a driver and its hop one number apart tie at the next boundary; a whole-model holder agrees with both', async () => {
    const net = new Net();
    try {
      const [d, h] = net.startChain(
        [
          { id: 'd-drive', span: { start: 0, end: 1 }, firstRound: 5 },
          { id: 'h-hop', span: { start: 1, end: 3 }, firstRound: 6 },
        ],
        15,
      );
      await until(() => d!.closed.length >= 3 && h!.closed.length >= 3, 30_000, 'three rounds on both stages');
      // every boundary after the first: one number (the first one ties them: both closed it, each with its own number)
      assert.deepEqual(d!.closed.slice(1), h!.closed.slice(1, d!.closed.length), `one number after the first boundary (driver ${d!.closed.join(',')}; hop ${h!.closed.join(',')})`);
      assert.ok(d!.infos.some((x) => x.startsWith('chain partners begin one round number')), 'the driver took its hop\'s number');
      // a whole-model holder joins: one number on all three, equal hashes on every layer two of them hold
      const w = net.start('w-whole', { start: 0, end: 3 }, 20);
      await until(() => w.sync.round >= 0 && w.sync.status().phase !== 'entering', 30_000, 'w entered');
      const entered = w.sync.round;
      let last = -1;
      await until(
        () => {
          last = w.closed.findLast((r) => r >= entered + 2 && d!.closed.includes(r) && h!.closed.includes(r)) ?? -1;
          return last >= 0;
        },
        60_000,
        `a round after w's entry + 1 that d, h and w all closed (w ${w.closed.join(',')}; d ${d!.closed.slice(-6).join(',')}; h ${h!.closed.slice(-6).join(',')})`,
      );
      const mine = hashesOf(w, last)!;
      for (const x of [d!, h!]) {
        const theirs = hashesOf(x, last)!;
        for (const [layer, hash] of Object.entries(theirs)) assert.equal(mine[layer], hash, `${x.id} and w agree on ${layer} after round ${last}`);
      }
    } finally {
      await net.stop();
    }
  });

  it('a hop whose rounds end one step before its driver\'s runs one shorter round, then closes with it at one number', async () => {
    const net = new Net();
    try {
      const [d, h] = net.startChain(
        [
          { id: 'd-drive', span: { start: 0, end: 1 }, firstRound: 0 },
          { id: 'h-hop', span: { start: 1, end: 3 }, firstRound: 1 },
        ],
        10,
        ['h-hop'],
      );
      // the driver's 4th to 6th rounds (the third boundary ties them at the latest): the hop closed each of them too,
      // after the same chain step
      await until(() => d!.closedAt.length >= 6 && d!.closedAt.slice(3, 6).every((r) => h!.closedAt.includes(r)), 30_000, `six rounds of the driver, its 4th-6th closed by the hop after the same steps (driver ${d!.closedAt.join(',')}; hop ${h!.closedAt.join(',')})`);
      assert.ok(h!.infos.some((x) => x.includes('"alignSteps":1')), `the hop ran one round of 1 step (${h!.infos.join(' | ')})`);
    } finally {
      await net.stop();
    }
  });

  it('a hop at its boundary whose driver lost a step\'s acknowledgement since its last one does not wait for the driver: the driver asked for its next step', async () => {
    const net = new Net();
    try {
      // the driver loses step 4's acknowledgement after both published their boundary of step 2: the hop reaches its
      // boundary at step 5, where the driver's last boundary (2) says it comes (2 + H), but the driver is one step short
      // and asks the paused hop for step 6. Waiting for it held both until chainNext's bound (2 sync deadlines + 5 s;
      // 245 s on CI's outer-move: the old holders' round waited its deadline for the driver's Δ, then its hash vote)
      const [d, h] = net.startChain(
        [
          { id: 'd-drive', span: { start: 0, end: 1 } },
          { id: 'h-hop', span: { start: 1, end: 3 } },
        ],
        10,
        [],
        4,
      );
      await until(() => d!.closedAt.length >= 5 && d!.closedAt.slice(3, 5).every((r) => h!.closedAt.includes(r)), 60_000, `five rounds of the driver, its 4th-5th closed by the hop after the same steps (driver ${d!.closedAt.join(',')}; hop ${h!.closedAt.join(',')})`);
      assert.ok(h!.closedAt.some((x) => x.endsWith('@5')), `the hop closed a round at step 5, one step before its driver (hop ${h!.closedAt.join(',')})`);
      // a round's close takes its hash vote and the partner handshake (tens of ms here), never a sync deadline (3 s)
      for (const n of [d!, h!]) assert.ok(n.closeMs.every((ms) => ms < 3000), `${n.id}: every close under one sync deadline (${n.closeMs.join('/')} ms)`);
    } finally {
      await net.stop();
    }
  });

  it('a NaN-skipped step (an id nobody applies) does not make a driver wait for a hop whose rounds end elsewhere', async () => {
    const net = new Net();
    // the hop applied two steps before the counting began, so its first boundary is at step 0 and the driver's
    // (H = 3) would be at 2; step 1 is skipped (its gradients were not finite: nobody applies it), so the driver
    // closes at 3 and the hop, which knew no boundary of its driver at step 0 and runs a whole round, at 4. At 3 the
    // driver read the hop's last boundary (0) as "H ids back" (before session 21): 'coming', and waited for it to
    // chainNext's bound (2 sync deadlines + 5 s) while the hop waited for step 4. It applied 2 steps since, not H:
    // the hop is apart; it aligns with the driver at its next boundary
    const [d, h] = net.startChain(
      [
        { id: 'd-drive', span: { start: 0, end: 1 } },
        { id: 'h-hop', span: { start: 1, end: 3 } },
      ],
      10,
      ['h-hop', 'h-hop'],
      undefined,
      { skip: [1] },
    );
    try {
      await until(() => d!.closedAt.length >= 4 && d!.closedAt.slice(2, 4).every((r) => h!.closedAt.includes(r)), 30_000, `four rounds of the driver, its 3rd-4th closed by the hop after the same steps (driver ${d!.closedAt.join(',')}; hop ${h!.closedAt.join(',')})`);
      assert.ok(d!.closedAt[0]!.endsWith('@3') && h!.closedAt.slice(0, 2).map((x) => x.split('@')[1]).join() === '0,4', `the driver's first boundary at step 3, the hop's at 0 and 4 (driver ${d!.closedAt.join(',')}; hop ${h!.closedAt.join(',')})`);
      for (const n of [d!, h!]) assert.ok(n.closeMs.every((ms) => ms < 3000), `${n.id}: every close under one sync deadline (${n.closeMs.join('/')} ms)`);
    } finally {
      await net.stop();
    }
  });
});
