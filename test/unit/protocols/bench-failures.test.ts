/**
 * The p2p-rpc bench (src/protocols/bench.ts) counts a failed call instead of ending the section: session 20 lost a
 * whole run's JSON to one 16 MiB call that ran past the server's request deadline at load 24.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FAILURES_LOGGED, countFailure } from '../../../src/protocols/bench.js';

describe('p2p-rpc bench: failed calls', () => {
  it('a rejected call is counted per way and logged a few times, never thrown; a good one is true', async () => {
    const failed = { lane: 0, libp2p: 0 };
    const logged: string[] = [];
    const bad = (): Promise<void> => Promise.reject(new Error('stream reset'));
    for (let i = 0; i < FAILURES_LOGGED + 2; i++) assert.equal(await countFailure(bad, failed, 'lane', (m) => logged.push(m)), false);
    assert.equal(await countFailure(async () => {}, failed, 'lane', (m) => logged.push(m)), true);
    assert.equal(await countFailure(bad, failed, 'libp2p', (m) => logged.push(m)), false);
    assert.deepEqual(failed, { lane: FAILURES_LOGGED + 2, libp2p: 1 });
    assert.equal(logged.length, FAILURES_LOGGED + 1);
    assert.ok(logged.every((m) => m === 'stream reset'));
  });
});
