/** Address blocks of multiaddrs and the per-block quota of DHT records (issue 12, Sybil side). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressBlock, BlockQuota, connectedBlocks, recordBlock } from '../../../src/protocols/address-block.js';

describe('address blocks', () => {
  it('IPv4 /24, IPv6 /48, DNS without the first label; nothing for other or malformed addresses', () => {
    assert.equal(addressBlock('/ip4/203.0.113.7/tcp/9000'), 'ip4 203.0.113');
    assert.equal(addressBlock('/ip4/203.0.113.250/udp/9000/quic-v1'), 'ip4 203.0.113');
    assert.equal(addressBlock('/ip4/010.0.1.2/tcp/1'), 'ip4 10.0.1', 'leading zeros read as numbers');
    assert.equal(addressBlock('/ip6/2001:db8:1:2::7/tcp/9000'), 'ip6 2001:db8:1');
    assert.equal(addressBlock('/ip6/2001:0db8:0001:ffff:0:0:0:1/tcp/9000'), 'ip6 2001:db8:1');
    assert.equal(addressBlock('/ip6/::1/tcp/9000'), 'ip6 0:0:0');
    assert.equal(addressBlock('/dns4/node7.example.org/tcp/443/wss'), 'dns example.org');
    assert.equal(addressBlock('/dns/Example.ORG/tcp/443'), 'dns example.org');
    // a relayed address is the relay's
    assert.equal(addressBlock('/ip4/198.51.100.9/tcp/4001/p2p/QmRelay/p2p-circuit'), 'ip4 198.51.100');
    for (const bad of ['', '/', '/ip4/', '/ip4/1.2.3/tcp/1', '/ip4/a.b.c.d/tcp/1', '/ip6/1::2::3/tcp/1', '/ip6/xyz/tcp/1', '/ip6/1:2:3:4:5:6:7:8:9/tcp/1', '/p2p/QmX', '/unix/tmp/x']) {
      assert.equal(addressBlock(bad), undefined, bad);
    }
  });

  it('an IPv4-mapped IPv6 address is its IPv4 /24 (review2, session 27)', () => {
    // a node listening on /ip6/:: (dual stack) sees IPv4 callers as ::ffff:a.b.c.d, which multiaddr writes
    // ::ffff:XXXX:YYYY: before, every IPv4 caller of such a node was 'ip6 0:0:0' (and a dotted tail no block, the
    // shared 'none'), one block for all of them: one host's 64 sessions refused every other IPv4 peer there
    assert.equal(addressBlock('/ip6/::ffff:102:304/tcp/5'), 'ip4 1.2.3');
    assert.equal(addressBlock('/ip6/::ffff:1.2.3.4/tcp/5'), 'ip4 1.2.3');
    assert.equal(addressBlock('/ip6/0:0:0:0:0:ffff:cb00:7107/tcp/9000'), 'ip4 203.0.113');
    assert.equal(addressBlock('/ip6/::FFFF:C633:6409/tcp/9000'), 'ip4 198.51.100');
    assert.notEqual(addressBlock('/ip6/::ffff:102:304/tcp/5'), addressBlock('/ip6/::ffff:506:708/tcp/5'));
    // not mapped: IPv6 as before
    assert.equal(addressBlock('/ip6/::ffff:0:102:304/tcp/5'), 'ip6 0:0:0');
    assert.equal(addressBlock('/ip6/1::ffff:102:304/tcp/5'), 'ip6 1:0:0');
    for (const bad of ['/ip6/::ffff:1.2.3/tcp/1', '/ip6/::ffff:1.2.3.256/tcp/1', '/ip6/::1.2.3.4/tcp/1']) assert.equal(addressBlock(bad), undefined, bad);
  });

  it("a record's block is its first address with one, else 'none'", () => {
    assert.equal(recordBlock(['/p2p/QmX', '/ip4/192.0.2.1/tcp/1', '/ip4/203.0.113.1/tcp/1']), 'ip4 192.0.2');
    assert.equal(recordBlock([]), 'none');
    assert.equal(recordBlock(['/unix/x']), 'none');
  });
});

describe('per-block quota', () => {
  it('distinct peers per block up to the quota; a counted peer refreshes; other blocks are not affected', () => {
    const q = new BlockQuota({ perBlock: 3, maxEntries: 100 });
    for (const p of ['a', 'b', 'c']) assert.equal(q.admit('ip4 203.0.113', p, 1000, 0), true, p);
    assert.equal(q.admit('ip4 203.0.113', 'd', 1000, 0), false, 'a fourth peer of a full block');
    assert.equal(q.admit('ip4 203.0.113', 'a', 2000, 10), true, 'a refreshed record of a counted peer');
    assert.equal(q.admit('ip4 192.0.2', 'd', 1000, 10), true, 'another block has its own quota');
    assert.equal(q.count('ip4 203.0.113'), 3);
  });

  it('a peer is counted until its record expires, then the place is free', () => {
    const q = new BlockQuota({ perBlock: 2, maxEntries: 100 });
    q.admit('b', 'x', 1000, 0);
    q.admit('b', 'y', 5000, 0);
    assert.equal(q.admit('b', 'z', 6000, 999), false);
    assert.equal(q.admit('b', 'z', 6000, 1000), true, "x's record expired at 1000");
    assert.equal(q.count('b'), 2);
  });

  it('the memory bound forgets the oldest blocks, never refusing because of it', () => {
    const q = new BlockQuota({ perBlock: 2, maxEntries: 10 });
    for (let i = 0; i < 50; i++) assert.equal(q.admit(`block-${i}`, `p${i}`, 1e9, 0), true);
    assert.ok(q.size <= 10, `${q.size} entries`);
    assert.equal(q.count('block-49'), 1, 'the newest block is kept');
    assert.equal(q.count('block-0'), 0, 'the oldest was forgotten');
  });
});

describe('connectedBlocks: the block each peer is observed at (issue 12, exploration per block)', () => {
  it('takes the block of the address the connection runs over, direct before relayed, IPv4 /24 and IPv6 /48', () => {
    const m = connectedBlocks([
      { peer: 'a', remoteAddr: '/ip4/203.0.113.7/tcp/4001', limited: false },
      { peer: 'b', remoteAddr: '/ip4/198.51.100.1/tcp/4001/p2p/relay/p2p-circuit', limited: true },
      { peer: 'b', remoteAddr: '/ip6/2001:db8:1:2::5/tcp/4001', limited: false },
      { peer: 'c', remoteAddr: '/ip4/198.51.100.1/tcp/4001/p2p/relay/p2p-circuit', limited: true },
      { peer: 'd', remoteAddr: '/memory/d', limited: false },
      { peer: 'a', remoteAddr: '/ip4/192.0.2.9/tcp/5', limited: false },
    ]);
    assert.deepEqual(Object.fromEntries(m), { a: 'ip4 203.0.113', b: 'ip6 2001:db8:1', c: 'ip4 198.51.100' });
  });
});
