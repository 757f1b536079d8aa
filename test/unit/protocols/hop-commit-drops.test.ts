/**
 * What hop sessions that end without a step leave in the hop's commitment queue (session 23 review of session 22's
 * protocols/hop-commit-queue.ts).
 *
 * InferenceServer.release drops both commitments of every session it ends (`commits.drop`), and the queue keeps each
 * dropped id in a list that goes to the worker with the next batch of steps. A session opened and ended without a step
 * (anyone may: the first request opens it, `endSession` with no input ends it; the per-peer cap bounds sessions at
 * once, not one after another) never puts a step in the queue, so no batch is posted and the list only grows: two
 * numbers a session, for as long as no step comes, on a node whose worker was never even started. The worker only
 * needs the ids of commitments it was sent steps for. Fixed: drop() queues
 * only the ids of commitments that had a step queued (`sent`).
 *
 * The list is private state; the test reads its length (it has no other outward effect until the next batch).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HopCommitQueue } from '../../../src/protocols/hop-commit-queue.js';

describe('HopCommitQueue drops of commitments that never had a step', () => {
  it(
    'a million sessions opened and ended without a step leave nothing queued for the worker',
    async () => {
      const q = new HopCommitQueue({ useWorker: true });
      try {
        const sessions = 1_000_000;
        const h0 = process.memoryUsage().heapUsed;
        for (let i = 0; i < sessions; i++) {
          // InferenceServer.open then release: two commitments a session, no step
          const inC = q.open();
          const outC = q.open();
          q.drop(inC);
          q.drop(outC);
        }
        const held = (q as unknown as { drops: number[] }).drops.length;
        const grewMiB = (process.memoryUsage().heapUsed - h0) / 2 ** 20;
        process.stdout.write(`hop commit drops: ${sessions} step-less sessions left ${held} ids queued (heap +${grewMiB.toFixed(1)} MiB)\n`);
        assert.equal(q.pending, 0);
        assert.equal(held, 0, `${sessions} sessions without a step left ${held} ids queued for a worker that never saw them (heap +${grewMiB.toFixed(1)} MiB)`);
      } finally {
        await q.close();
      }
    },
  );
});
