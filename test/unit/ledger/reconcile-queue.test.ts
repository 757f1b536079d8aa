/**
 * The node's reconciliation queue (ledger/reconcile-queue.ts), moved out of node/ledger.ts: one job per peer, one at a
 * time in first-asked order, a full job replacing a queued tail one, retries only for a peer that is not serving yet
 * (doubling delays, bounded), and a stop that drops queued jobs and pending retries. A fake scheduler holds the retry
 * timers; each reconciliation is a promise the test settles, so nothing here waits on real time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_RECONCILE_ATTEMPTS, type ReconcileMode } from '../../../src/ledger/reconcile.js';
import { ReconcileQueue, type RetryScheduler } from '../../../src/ledger/reconcile-queue.js';

class FakeScheduler implements RetryScheduler {
  readonly timers = new Map<number, { fn: () => void; ms: number }>();
  private next = 0;
  schedule(fn: () => void, ms: number): unknown {
    const h = this.next++;
    this.timers.set(h, { fn, ms });
    return h;
  }
  cancel(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Fires every pending timer once (a timer scheduled meanwhile waits for the next call). */
  fireAll(): number[] {
    const due = [...this.timers.entries()];
    for (const [h] of due) this.timers.delete(h);
    for (const [, t] of due) t.fn();
    return due.map(([, t]) => t.ms);
  }
}

class Unavailable extends Error {}

/** A queue whose every `run` waits until the test settles it. */
function harness() {
  const calls: { peer: string; mode: ReconcileMode; resolve: () => void; reject: (e: unknown) => void }[] = [];
  const failures: string[] = [];
  const scheduler = new FakeScheduler();
  let waiter: (() => void) | undefined;
  const q = new ReconcileQueue({
    self: 'me',
    scheduler,
    unavailable: (e) => e instanceof Unavailable,
    onFailure: (peer) => failures.push(peer),
    run: (peer, mode) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ peer, mode, resolve, reject });
        waiter?.();
      }),
  });
  /** Waits (microtasks only) until `n` calls have started. */
  const started = async (n: number): Promise<void> => {
    for (let i = 0; i < 100 && calls.length < n; i++) await new Promise<void>((r) => setImmediate(r));
    assert.equal(calls.length, n, `expected ${n} reconciliations to have started`);
  };
  return { q, calls, failures, scheduler, started };
}

describe('ReconcileQueue (ledger/reconcile-queue.ts)', () => {
  it('runs one job at a time, in the order peers were first asked for, one entry per peer', async () => {
    const h = harness();
    h.q.enqueue('a', 'tail');
    h.q.enqueue('b', 'full');
    h.q.enqueue('c', 'tail');
    h.q.enqueue('b', 'tail'); // covered by b's queued full
    h.q.enqueue('me', 'full'); // ourselves: never
    await h.started(1);
    assert.deepEqual([h.calls[0]!.peer, h.calls[0]!.mode], ['a', 'tail']);
    assert.equal(h.q.size, 2, 'b and c wait; only one job runs at a time');
    h.q.enqueue('c', 'full'); // a full replaces c's queued tail, in c's place
    for (let i = 0; i < 1000; i++) h.q.enqueue('b', 'full'); // asked a thousand times: still one entry
    assert.equal(h.q.size, 2);
    h.calls[0]!.resolve();
    await h.started(2);
    assert.deepEqual([h.calls[1]!.peer, h.calls[1]!.mode], ['b', 'full']);
    h.calls[1]!.resolve();
    await h.started(3);
    assert.deepEqual([h.calls[2]!.peer, h.calls[2]!.mode], ['c', 'full']);
    h.calls[2]!.resolve();
    await h.q.drained();
    assert.equal(h.calls.length, 3);
    assert.equal(h.q.running, false);
  });

  it('a peer asked for while its job runs is queued again (the running job does not cover what came after it)', async () => {
    const h = harness();
    h.q.enqueue('a', 'full');
    await h.started(1);
    h.q.enqueue('a', 'tail');
    h.calls[0]!.resolve();
    await h.started(2);
    assert.deepEqual([h.calls[1]!.peer, h.calls[1]!.mode], ['a', 'tail']);
    h.calls[1]!.resolve();
    await h.q.drained();
  });

  it('retries a peer that is not serving yet with doubling delays, MAX_RECONCILE_ATTEMPTS times in all; others never', async () => {
    const h = harness();
    h.q.enqueue('slow', 'full');
    h.q.enqueue('broken', 'tail');
    const delays: number[] = [];
    let n = 0;
    for (let attempt = 0; attempt < MAX_RECONCILE_ATTEMPTS; attempt++) {
      await h.started(++n);
      const slow = h.calls.at(-1)!;
      assert.deepEqual([slow.peer, slow.mode], ['slow', 'full'], 'a retry keeps its mode');
      slow.reject(new Unavailable());
      if (attempt === 0) {
        await h.started(++n);
        const broken = h.calls.at(-1)!;
        assert.equal(broken.peer, 'broken');
        broken.reject(new Error('garbage')); // not an unavailable peer: no retry
      }
      await h.q.drained();
      delays.push(...h.scheduler.fireAll());
    }
    await h.q.drained();
    assert.deepEqual(delays, [500, 1000], 'two retries after the first failure, then none');
    assert.equal(h.calls.filter((c) => c.peer === 'slow').length, MAX_RECONCILE_ATTEMPTS);
    assert.equal(h.calls.filter((c) => c.peer === 'broken').length, 1);
    assert.deepEqual(h.failures.sort(), ['broken', 'slow', 'slow', 'slow']);
    assert.equal(h.scheduler.timers.size, 0);
  });

  it('stop drops queued jobs and pending retries, waits for the running job, and takes nothing new', async () => {
    const h = harness();
    h.q.enqueue('x', 'full');
    await h.started(1);
    h.calls[0]!.reject(new Unavailable());
    await h.q.drained();
    assert.equal(h.q.pendingRetries, 1);
    h.q.enqueue('y', 'full');
    await h.started(2);
    h.q.enqueue('z', 'full');
    let stopped = false;
    const stopping = h.q.stop().then(() => (stopped = true));
    assert.equal(h.q.pendingRetries, 0, "x's retry is cancelled");
    assert.equal(h.scheduler.timers.size, 0);
    assert.equal(h.q.size, 0, 'z is dropped');
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(stopped, false, 'stop waits for the running job');
    h.calls[1]!.reject(new Error('aborted')); // what the caller's abort does to the running job
    await stopping;
    assert.deepEqual(h.failures, ['x'], 'a failure after stop is not reported');
    h.q.enqueue('w', 'full');
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(h.calls.length, 2, 'nothing runs after stop');
  });
});
