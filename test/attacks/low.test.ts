/**
 * Item 13 (issue 11), the low ones that are the network's (the replay table is in liveness-sybil.test.ts):
 * - bans were per peer id, and a new id is free: a banned attacker came straight back under a fresh key;
 * - `extraCandidates` kept every peer a tracker ever named, forever, and tried them all on every bootstrap round;
 * - `listCheckpoints` turned every read error (EACCES, EIO, ENOTDIR) into "no checkpoints".
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey } from '../../src/identity/index.js';
import { listCheckpoints } from '../../src/model/checkpoint.js';
import { createLibp2pNetwork, MAX_EXTRA_CANDIDATES } from '../../src/p2p/libp2p-node.js';
import { hostKey, PeerScoreTable } from '../../src/p2p/peer-score.js';
import { ManualClock } from '../../src/util/clock.js';
import { isNeuroShardError } from '../../src/util/errors.js';
import { tempDir } from '../utils/paths.js';
import { tally } from './tally.js';

describe('item 13: bans, candidates, read errors', () => {
  it('a host whose peer ids keep getting banned is banned itself: 100 fresh ids from it after 3 bans all refused', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const scores = new PeerScoreTable({ clock });
    const where = new Map<string, string>();
    scores.setHostResolver((p) => where.get(p));
    // an attacker at 2001:4860:7:8::/64 misbehaves under id after id
    const host = hostKey('2001:4860:7:8::1234')!;
    for (let i = 0; i < 3; i++) {
      where.set(`evil${i}`, host);
      scores.penalise(`evil${i}`, 100, 'forged');
      assert.equal(scores.isBanned(`evil${i}`), true);
    }
    let through = 0;
    for (let i = 0; i < 100; i++) if (!scores.isHostBanned(hostKey(`2001:4860:7:8::${(i + 1).toString(16)}`)!)) through++;
    tally('ban dodged with a fresh peer id', 100, through);
    assert.equal(through, 0, 'the fresh ids come from a banned host');
    // another host is untouched, loopback is never host-banned, and the ban ends with banMs
    assert.equal(scores.isHostBanned(hostKey('2001:4860:7:9::1')!), false);
    assert.equal(hostKey('127.0.0.1'), undefined);
    clock.advance(10 * 60_000 + 1);
    assert.equal(scores.isHostBanned(host), false);
  });

  it('tracker-named dial candidates are bounded: 2,000 named, at most MAX_EXTRA_CANDIDATES kept', async () => {
    const net = await createLibp2pNetwork({
      privateKey: randomBytes(32),
      protocolPrefix: '/neuroshard/attacknet',
      listen: ['/ip4/127.0.0.1/tcp/0'],
      genesis: true,
      mdns: false,
      autonat: false,
      dcutr: false,
    });
    try {
      const N = 2_000;
      const peers = Array.from({ length: N }, (_, i) => ({
        id: peerIdFromPublicKey(keyFromPrivate(randomBytes(32)).publicKey),
        multiaddrs: [`/ip4/198.51.100.${i % 250}/tcp/${4000 + i}`],
      }));
      await net.addBootstrapPeers(peers);
      const kept = net.extraBootstrapCandidates();
      tally('dial candidates kept forever', N, Math.max(0, kept.length - MAX_EXTRA_CANDIDATES));
      assert.equal(kept.length, MAX_EXTRA_CANDIDATES);
      assert.ok(kept.includes(peers.at(-1)!.id), 'the newest are kept');
    } finally {
      await net.stop();
    }
  });

  it('an unreadable checkpoint folder is an error, not "no checkpoints"', () => {
    const t = tempDir('neuroshard-attack-');
    try {
      const notADir = join(t.dir, 'checkpoints');
      writeFileSync(notADir, 'x');
      let hidden = 0;
      try {
        const list = listCheckpoints(notADir);
        if (list.length === 0) hidden = 1;
      } catch (e) {
        assert.ok(isNeuroShardError(e, 'CHECKPOINT_MISSING'), String(e));
      }
      tally('checkpoint read error read as empty', 1, hidden);
      assert.equal(hidden, 0);
      assert.deepEqual(listCheckpoints(join(t.dir, 'absent')), [], 'a missing folder is still simply empty');
    } finally {
      t.cleanup();
    }
  });
});
