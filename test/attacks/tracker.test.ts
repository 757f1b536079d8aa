/**
 * Attack 11 (issue 11): tracker filling and poisoning.
 * - The per-source cap counted an IPv6 /64, so one /48 (65,536 /64s, what a site or a rented server block gets)
 *   filled the whole table with fresh keys and honest announcers got 503 full.
 * - Announced multiaddrs were not tied to the announcer: a record could send every newcomer to dial a third party,
 *   or (from a public tracker) into the newcomer's own LAN.
 * - The rate limiter forgot its longest-idle bucket when full, so a flood of other sources handed an exhausted
 *   source a fresh bucket.
 * Now records are also capped per prefix (/48, /24) and rate-limited per prefix, every public IP in a record must be
 * the announcer's own (DNS names are refused by default), the client drops private addresses from public trackers,
 * and a bucket is only forgotten once it has refilled.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyFromPrivate, type NodeKey } from '../../src/identity/index.js';
import { createTracker } from '../../src/node/tracker.js';
import { freshHolderRecord, type HolderRecord } from '../../src/protocols/holder-record.js';
import { trackerDialAddresses } from '../../src/protocols/tracker-client.js';
import { RateLimiter } from '../../src/tracker/rate-limit.js';
import { ManualClock } from '../../src/util/clock.js';
import { tally } from './tally.js';

const T0 = 1_800_000_000_000;

function key(i: number): NodeKey {
  const b = new Uint8Array(32);
  b[0] = 3;
  b[29] = (i >> 16) & 255;
  b[30] = (i >> 8) & 255;
  b[31] = i & 255;
  return keyFromPrivate(b);
}

function record(i: number, multiaddrs: string[], now = T0): HolderRecord {
  return freshHolderRecord(key(i), { networkId: 'attacknet', multiaddrs, span: { start: 0, end: 1 }, capacity: { memoryMb: 1, tokensPerSec: 1 } }, now, 60_000);
}

async function announce(tracker: ReturnType<typeof createTracker>, rec: HolderRecord, ip: string): Promise<{ status: number; code?: string }> {
  const res = await tracker.app.inject({ method: 'POST', url: '/announce', remoteAddress: ip, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(rec) });
  const body = JSON.parse(res.body) as { error?: { code: string } };
  return { status: res.statusCode, ...(body.error === undefined ? {} : { code: body.error.code }) };
}

describe('attack 11: tracker filling and poisoning', () => {
  it('one IPv6 /48 cannot fill the table: 1,100 fresh keys from 20 /64s of one /48, then an honest announce', async () => {
    const clock = new ManualClock(T0);
    // a small table so the test stays quick; the caps keep their default ratio (per /48 = 2 x per /64)
    const tracker = createTracker({ dbPath: ':memory:', maxEntries: 1000, maxEntriesPerSource: 64, maxEntriesPerPrefix: 128, announceBurst: 100_000 }, { clock });
    try {
      let accepted = 0;
      const N = 1100;
      for (let i = 0; i < N; i++) {
        const sub = Math.floor(i / 55); // 55 keys per /64, 20 /64s
        const ip = `2001:4860:aa:${(sub + 1).toString(16)}::${(i % 55) + 1}`;
        const r = await announce(tracker, record(i, [`/ip6/${ip}/tcp/4001`]), ip);
        if (r.status === 200) accepted++;
      }
      const honest = await announce(tracker, record(900_001, ['/ip4/8.8.4.4/tcp/4001']), '8.8.4.4');
      tally('tracker /48 fill', N, Math.max(0, accepted - 128) + (honest.status === 200 ? 0 : 1));
      assert.equal(accepted, 128, 'the /48 got its prefix cap, no more');
      assert.equal(honest.status, 200, 'the honest announcer still gets in');
    } finally {
      await tracker.close();
    }
  });

  it('a record may only name its sender: third-party public addresses and DNS names are refused', async () => {
    const clock = new ManualClock(T0);
    const tracker = createTracker({ dbPath: ':memory:' }, { clock });
    try {
      const attacker = '93.184.216.34';
      const poison = [
        ['/ip4/1.1.1.1/tcp/53'],
        ['/ip4/93.184.216.34/tcp/4001', '/ip4/1.1.1.1/tcp/80'],
        ['/ip6/2606:4700:4700::1111/tcp/443'],
        ['/dns4/victim.example.com/tcp/443'],
      ];
      let through = 0;
      for (let i = 0; i < poison.length; i++) {
        const r = await announce(tracker, record(100 + i, poison[i]!), attacker);
        if (r.status === 200) through++;
        else assert.equal(r.code, 'address_mismatch');
      }
      // its own address, its LAN address and a relay address are fine
      const own = await announce(tracker, record(200, ['/ip4/93.184.216.34/tcp/4001', '/ip4/192.168.1.20/tcp/4001']), attacker);
      const v6 = await announce(tracker, record(201, ['/ip6/2001:4860:1:2::99/tcp/4001']), '2001:4860:1:2::5');
      tally('tracker third-party addresses', poison.length, through);
      assert.equal(through, 0);
      assert.equal(own.status, 200);
      assert.equal(v6.status, 200, 'an address in the announcer\'s own /64 is its own');
    } finally {
      await tracker.close();
    }
  });

  it('a public tracker\'s records never send the client into its own LAN', () => {
    const rec = record(300, ['/ip4/93.184.216.34/tcp/4001', '/ip4/192.168.1.1/tcp/80', '/ip4/127.0.0.1/tcp/22', '/ip6/fe80::1/tcp/4001', '/ip4/10.0.0.1/tcp/4001/p2p/16Uiu2HAm9YM9GybhSVCDmAV56QpDbGNchomuLr4DyUVGs1UF2rhs/p2p-circuit']);
    const fromPublic = trackerDialAddresses(rec, false);
    const lan = fromPublic.filter((a) => !a.startsWith('/ip4/93.184.216.34/'));
    tally('tracker private addresses to dial', 4, lan.length);
    assert.deepEqual(lan, []);
    assert.equal(fromPublic.length, 1);
    assert.equal(trackerDialAddresses(rec, true).length, 5, 'a tracker on a private network keeps them');
  });

  it('flooding the rate limiter with other sources does not hand an exhausted source a fresh bucket', () => {
    const clock = new ManualClock(T0);
    const l = new RateLimiter({ burst: 5, perSec: 1, maxSources: 1000 }, clock);
    let extra = 0;
    for (let round = 0; round < 10; round++) {
      while (l.take('attacker'));
      // 1,000 other sources (what the attacker's /48 holds many times over) push the bucket out of the table
      for (let i = 0; i < 1000; i++) l.take(`other${round}-${i}`);
      if (l.take('attacker')) extra++;
      clock.advance(100);
    }
    tally('tracker rate-bucket reset', 10 * 1001, extra);
    assert.equal(extra, 0, 'the exhausted source never got its burst back early');
    assert.ok(l.size <= 1000);
    // once idle long enough to refill, buckets make room again
    clock.advance(10_000);
    assert.equal(l.take('newcomer'), true);
  });
});
