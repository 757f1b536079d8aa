/**
 * Priming another thread's native pool by its id (addon primePoolById; pool.cc's registry of live pools; session 24):
 * the hop's main thread wakes its compute worker's pool as a step's frame arrives. Here: a prime by id reaches a live
 * pool and wakes its sleeping helper; a destroyed pool's id is a no-op; primes racing with pools being destroyed and
 * resized never crash; and the thread that only primes builds no pool of its own.
 *
 * This file loads the addon raw on the main thread (no NativeBackend, so no engine or pool here, which the last test
 * checks) and runs the pools in worker threads, each its own addon instance, as compute workers do.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { nativeAddonPath, primeNativePoolById, type NativePoolCounters } from '../../../src/tensor/backends/native.js';
import { waitFor } from '../../../src/util/abort.js';

const where = nativeAddonPath();
const skip = 'reason' in where ? `native addon not built: ${where.reason}` : false;

interface RawAddon {
  primePoolById(id: number, spinUs?: number): boolean;
}
const raw = (): RawAddon => createRequire(import.meta.url)((where as { path: string }).path) as RawAddon;

/**
 * A worker thread holding one native pool of `threads` threads; it answers 'counters' with its pool's counters and
 * process-wide pool-thread count, 'threads:N' by resizing its pool, and 'exit' by leaving.
 */
class PoolThread {
  readonly w: Worker;
  private readonly exited: Promise<number>;

  constructor(threads: number) {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      addon.setThreads(workerData.threads);
      parentPort.on('message', (m) => {
        if (m === 'exit') process.exit(0);
        if (typeof m === 'string' && m.startsWith('threads:')) addon.setThreads(Number(m.slice(8)));
        parentPort.postMessage({ counters: addon.poolCounters(), processPoolThreads: addon.info().processPoolThreads });
      });
      parentPort.postMessage({ counters: addon.poolCounters(), processPoolThreads: addon.info().processPoolThreads });
    `;
    this.w = new Worker(code, { eval: true, workerData: { path: (where as { path: string }).path, threads } });
    this.exited = new Promise((resolve) => this.w.once('exit', resolve));
  }

  next(): Promise<{ counters: NativePoolCounters; processPoolThreads: number }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.w.once('message', (m: { counters: NativePoolCounters; processPoolThreads: number }) => {
        this.w.off('error', onError);
        resolve(m);
      });
      this.w.once('error', onError);
    });
  }

  async ask(msg = 'counters'): Promise<{ counters: NativePoolCounters; processPoolThreads: number }> {
    const answer = this.next();
    this.w.postMessage(msg);
    return answer;
  }

  async end(): Promise<void> {
    this.w.postMessage('exit');
    await this.exited;
  }
}

describe('native pool primed by id (pool.cc registry, addon primePoolById)', { skip }, () => {
  it('a prime by id reaches a live pool and wakes its sleeping helper; the id of a destroyed pool is a no-op', async () => {
    const addon = raw();
    const t = new PoolThread(2);
    const first = await t.next();
    const id = first.counters.id;
    assert.ok(Number.isInteger(id) && id > 0, `a pool id: ${id}`);
    assert.equal(first.counters.threads, 2);
    // the helper sleeps once its first spin runs out (it has had no job)
    await waitFor(async () => (await t.ask()).counters.sleepers >= 1, { timeoutMs: 10_000, intervalMs: 5, what: 'the helper sleeps' });
    const before = (await t.ask()).counters;
    assert.equal(before.primesById, 0);
    assert.equal(addon.primePoolById(id), true, 'a live pool has this id');
    await waitFor(async () => (await t.ask()).counters.primeWakeups > before.primeWakeups, { timeoutMs: 10_000, intervalMs: 5, what: 'the primed helper wakes' });
    const after = (await t.ask()).counters;
    assert.equal(after.primesById, 1, 'counted once');
    // with a longer spin, through the module's wrapper too
    assert.equal(primeNativePoolById(id, 500), true);
    await waitFor(async () => (await t.ask()).counters.primesById === 2, { timeoutMs: 10_000, intervalMs: 5, what: 'the second prime' });
    await t.end();
    assert.equal(addon.primePoolById(id), false, 'the pool ended with its thread: its id reaches nothing');
    assert.equal(primeNativePoolById(id, 1000), false);
    assert.equal(addon.primePoolById(2 ** 40), false, 'an id never given');
    assert.throws(() => addon.primePoolById(0), /id must be an integer/);
    assert.throws(() => addon.primePoolById(-1), /id must be an integer/);
  });

  it('primes racing with pools being built, resized and destroyed never crash nor reach a dead pool', async () => {
    // a second thread primes every id in a shared list as fast as it can, while this thread starts and ends pool
    // threads (their ids go into the list as they start; stale ids stay in it) and one long-lived pool resizes
    const ids = new SharedArrayBuffer(8 * 64);
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const primerCode = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.path);
      const ids = new BigInt64Array(workerData.ids);
      const stop = new Int32Array(workerData.stop);
      let calls = 0, hits = 0;
      while (Atomics.load(stop, 0) === 0) {
        for (let i = 0; i < ids.length; i++) {
          const id = Number(ids[i]);
          if (id === 0) continue;
          calls++;
          if (addon.primePoolById(id, (calls & 1) === 0 ? 0 : 200)) hits++;
        }
      }
      parentPort.postMessage({ calls, hits });
    `;
    const primer = new Worker(primerCode, { eval: true, workerData: { path: (where as { path: string }).path, ids, stop: stop.buffer } });
    const primed = new Promise<{ calls: number; hits: number }>((resolve, reject) => {
      primer.once('message', resolve);
      primer.once('error', reject);
    });
    const list = new BigInt64Array(ids);
    const long = new PoolThread(2);
    const longId = (await long.next()).counters.id;
    list[0] = BigInt(longId);
    const deadIds: number[] = [];
    for (let round = 0; round < 12; round++) {
      const t = new PoolThread(3);
      const id = (await t.next()).counters.id;
      list[1 + (round % 63)] = BigInt(id);
      await long.ask(`threads:${round % 2 === 0 ? 3 : 2}`);
      await t.end();
      deadIds.push(id);
    }
    Atomics.store(stop, 0, 1);
    const r = await primed;
    await primer.terminate();
    assert.ok(r.calls > 0 && r.hits > 0, `primes ran (${r.calls} calls, ${r.hits} reached a pool)`);
    const addon = raw();
    for (const id of deadIds) assert.equal(addon.primePoolById(id), false, `pool ${id} ended`);
    const c = (await long.ask()).counters;
    assert.equal(c.id, longId, 'a resize keeps the pool and its id');
    assert.ok(c.primesById > 0, 'the long-lived pool was primed');
    assert.equal(addon.primePoolById(longId), true);
    await long.end();
    assert.equal(addon.primePoolById(longId), false);
  });

  it('the thread that only primes builds no pool of its own', async () => {
    const addon = raw();
    addon.primePoolById(2 ** 40);
    const t = new PoolThread(2);
    const first = await t.next();
    // the only pool of the process is the worker's: the main thread (which loaded the addon to prime) added none
    assert.equal(first.processPoolThreads, 2);
    await t.end();
  });
});
