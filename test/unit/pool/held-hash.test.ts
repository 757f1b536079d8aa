/**
 * The one hash a node names for the weights it holds (src/pool/held-hash.ts), over a scripted worker: a refresh names
 * the worker's hash; a read that started before a span was adopted, or that ends while a swap is under way, is
 * dropped (it is of weights that are gone or not announced); reads run one at a time, and one asked while another
 * runs is queued once and sees a change that landed meanwhile; a failed read keeps the old hash; the timer refreshes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeldHash } from '../../../src/pool/held-hash.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

/** A worker whose modelHash answers are released by the test, one at a time. */
function scripted() {
  const pending: { resolve: (h: { hash: string }) => void; reject: (e: Error) => void }[] = [];
  let reads = 0;
  return {
    read: () => {
      reads++;
      return new Promise<{ hash: string }>((resolve, reject) => pending.push({ resolve, reject }));
    },
    answer: (hash: string) => pending.shift()!.resolve({ hash }),
    fail: () => pending.shift()!.reject(new Error('no model loaded')),
    pending: () => pending.length,
    reads: () => reads,
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('HeldHash', () => {
  it('a refresh names the worker hash; set() takes an adopted span\'s hash and drops a read that started before it', async () => {
    const w = scripted();
    const h = new HeldHash({ read: w.read, readable: () => true });
    const changes: string[] = [];
    h.events.on('changed', (e) => changes.push(e.hash));
    assert.equal(h.current(), '');
    const r1 = h.refresh();
    await tick();
    w.answer(A);
    assert.equal(await r1, A);
    assert.equal(h.current(), A);
    // a read of the old weights is in flight when a new span is adopted: its answer must not replace the new hash
    const r2 = h.refresh();
    await tick();
    h.set(B);
    w.answer(A);
    assert.equal(await r2, B);
    assert.equal(h.current(), B);
    assert.deepEqual(changes, [A, B]);
  });

  it('skips and drops reads while nothing is held or a swap is under way', async () => {
    const w = scripted();
    let readable = false;
    const h = new HeldHash({ read: w.read, readable: () => readable });
    assert.equal(await h.refresh(), '');
    assert.equal(w.reads(), 0, 'nothing held: the worker is not asked');
    readable = true;
    const r = h.refresh();
    await tick();
    readable = false; // a swap started while the read ran: the worker may hold the new span's weights
    w.answer(C);
    assert.equal(await r, '');
    assert.equal(h.current(), '');
  });

  it('runs one read at a time; one asked meanwhile is queued once and sees what changed during the first', async () => {
    const w = scripted();
    const h = new HeldHash({ read: w.read, readable: () => true });
    const first = h.refresh();
    await tick();
    // three askers while the first read runs (an outer round closed, the timer, training started): one more read
    const queued = [h.refresh(), h.refresh(), h.refresh()];
    await tick();
    assert.equal(w.pending(), 1, 'one read at a time');
    w.answer(A);
    assert.equal(await first, A);
    await tick();
    assert.equal(w.reads(), 2, 'the askers share one queued read');
    w.answer(B);
    assert.deepEqual(await Promise.all(queued), [B, B, B]);
    assert.equal(h.current(), B);
  });

  it('a failed read keeps the hash named; the timer refreshes until stopped', async (t) => {
    const w = scripted();
    const h = new HeldHash({ read: w.read, readable: () => true });
    h.set(A);
    const r = h.refresh();
    await tick();
    w.fail();
    assert.equal(await r, A);
    // the interval on a mocked clock (setImmediate stays real for tick()): no waiting on wall time
    t.mock.timers.enable({ apis: ['setInterval'] });
    h.start(5);
    t.mock.timers.tick(4);
    await tick();
    assert.equal(w.pending(), 0, 'no read before the interval');
    t.mock.timers.tick(1);
    await tick();
    assert.equal(w.pending(), 1, 'the timer asked the worker');
    w.answer(C);
    for (let i = 0; i < 10 && h.current() !== C; i++) await tick();
    assert.equal(h.current(), C);
    t.mock.timers.tick(5);
    await tick();
    assert.equal(w.pending(), 1, 'and asks again each interval');
    w.answer(C);
    await tick();
    h.stop();
    const reads = w.reads();
    t.mock.timers.tick(1000);
    await tick();
    assert.equal(w.reads(), reads, 'no read after stop()');
  });
});
