/**
 * Adversarial review of the tracker: one machine must not be able to take over the table or the rate limits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { createTracker } from '../../../src/node/tracker.js';
import { freshHolderRecord } from '../../../src/protocols/holder-record.js';
import { sourceKey } from '../../../src/tracker/rate-limit.js';
import { ManualClock } from '../../../src/util/clock.js';

const T0 = 1_700_000_000_000;

function key(i: number): NodeKey {
  const b = new Uint8Array(32);
  b[31] = i;
  b[0] = 2;
  return keyFromPrivate(b);
}

describe('tracker security: sources', () => {
  it('counts an IPv6 /64 as one source: a host owns a whole /64 and could otherwise announce from 2^64 addresses', async () => {
    const clock = new ManualClock(T0);
    const tracker = createTracker({ dbPath: ':memory:', maxEntriesPerSource: 2, announceBurst: 100 }, { clock });
    try {
      const statuses: number[] = [];
      for (let i = 1; i <= 3; i++) {
        const rec = freshHolderRecord(key(i), { networkId: 'testnet', multiaddrs: ['/ip4/192.0.2.1/tcp/9000'], span: { start: 0, end: 1 }, capacity: { memoryMb: 1, tokensPerSec: 1 } }, T0, 60_000);
        const res = await tracker.app.inject({
          method: 'POST',
          url: '/announce',
          remoteAddress: `2001:db8:1:2::${i.toString(16)}`,
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify(rec),
        });
        statuses.push(res.statusCode);
      }
      assert.deepEqual(statuses, [200, 200, 429]);
    } finally {
      await tracker.close();
    }
  });

  it('maps addresses to sources: IPv4 as is, IPv4-mapped IPv6 as its IPv4, IPv6 by its /64', () => {
    assert.equal(sourceKey('192.0.2.7'), '192.0.2.7');
    assert.equal(sourceKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(sourceKey('2001:db8:1:2::5'), sourceKey('2001:0db8:0001:0002:ffff:1:2:3'));
    assert.notEqual(sourceKey('2001:db8:1:2::5'), sourceKey('2001:db8:1:3::5'));
    assert.equal(sourceKey('::1'), sourceKey('::2')); // both in ::/64
    assert.equal(sourceKey('fe80::1%eth0'), sourceKey('fe80::2'));
    assert.equal(sourceKey('not an address'), 'not an address');
  });
});
