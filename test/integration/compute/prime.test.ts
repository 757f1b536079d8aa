/**
 * ComputeClient.prime (session 24): the worker reports its native pool's id in `ready`, prime() wakes that pool from
 * the main thread, a restarted worker has a new pool (the old id reaches nothing), and prime() on a closed client,
 * or with a worker that has no native pool, does nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { nativeAddonPath, primeNativePoolById } from '../../../src/tensor/backends/native.js';

const where = nativeAddonPath();
const skip = 'reason' in where ? `native addon not built: ${where.reason}` : false;

describe('compute/ComputeClient.prime', { skip }, () => {
  it('primes the worker pool by the id it reported; a new worker after a crash has a new pool', async () => {
    const client = await ComputeClient.start({ threads: 2, backend: 'native' });
    try {
      const id = client.info?.poolId;
      assert.ok(id !== undefined && Number.isInteger(id) && id > 0, `the worker reports its pool id: ${id}`);
      client.prime();
      assert.equal(primeNativePoolById(id), true, 'that pool lives');
      const ping = await client.run({ type: 'ping' });
      assert.equal(ping.poolId, id, 'ping reports the same pool');
      const restarted = new Promise<void>((resolve) => client.once('worker:ready', () => resolve()));
      await assert.rejects(client.run({ type: 'crash', mode: 'exit' }));
      await restarted;
      const id2 = client.info?.poolId;
      assert.ok(id2 !== undefined && id2 !== id, `a new pool: ${id2} after ${id}`);
      assert.equal(primeNativePoolById(id), false, 'the dead worker took its pool with it');
      client.prime();
      assert.equal(primeNativePoolById(id2), true);
      await client.close();
      assert.equal(primeNativePoolById(id2), false, 'closed: the worker and its pool are gone');
      client.prime(); // a no-op, never a throw
    } finally {
      await client.close();
    }
  });

  it('a reference worker reports no pool and prime() does nothing', async () => {
    const client = await ComputeClient.start({ backend: 'reference' });
    try {
      assert.equal(client.info?.poolId, undefined);
      client.prime();
      assert.equal((await client.run({ type: 'ping', echo: 'x' })).echo, 'x');
    } finally {
      await client.close();
    }
  });
});
