/**
 * Fresh keys against the liveness view (issue 11 item 13, and issue 12's Sybil finding). Two tables were open to
 * anyone with new peer ids:
 * - the heartbeat replay guard was cleared whenever it passed 10,000 peers, so 10,001 fresh ids reopened replays
 *   of every honest peer's older heartbeats (an old span, an old load);
 * - the liveness tracker, at its cap of 10,000 peers, let every new peer evict the longest-silent one, so a burst of
 *   fresh keys pushed live honest peers out of the view (and each eviction scanned the whole table).
 * Now a liveness entry leaves the table only once its peer has been silent for staleMs (or, with `keep`, when it is
 * not a peer the node has seen serve); a replay-guard entry forgotten inside the skew window raises a floor that a
 * peer not in the guard must date its heartbeat after, so its older heartbeats stay refused. Session 22: the guard
 * used to admit no new peer at all while full of entries inside the window, so fresh keys that kept heartbeating
 * kept every joiner out of the view for as long as they liked.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryHub } from '../../src/p2p/memory.js';
import { HeartbeatService, MAX_REPLAY_ENTRIES } from '../../src/protocols/heartbeat.js';
import { heartbeatTopic } from '../../src/protocols/ids.js';
import { LivenessTracker, type HeartbeatInfo } from '../../src/protocols/liveness.js';
import { Heartbeat } from '../../src/protocols/pb/node.js';
import { ManualClock } from '../../src/util/clock.js';
import { tally } from './tally.js';

const hb = (peerId: string, ts: number, start = 0): HeartbeatInfo => ({ peerId, span: { start, end: start + 1 }, load: 0, freeMemoryMb: 0, trainingStep: 0n, timestampMs: ts, seq: 1n });

describe('fresh keys against the liveness view', () => {
  it('10,001 fresh ids do not clear the heartbeat replay guard: an honest peer\'s old heartbeat stays refused', async () => {
    const hub = new MemoryHub();
    const clock = new ManualClock(1_800_000_000_000);
    const net = hub.createNode('victim');
    await net.start();
    const liveness = new LivenessTracker({ staleMs: 15_000, deadMs: 30_000, clock });
    const svc = new HeartbeatService({
      network: net,
      networkId: 'attacknet',
      liveness,
      intervalMs: 3_600_000,
      clock,
      source: { span: () => undefined, load: () => 0, freeMemoryMb: () => 0, trainingStep: () => 0n },
    });
    svc.start();
    const topic = heartbeatTopic('attacknet');
    const encode = (peerId: string, ts: number, start: number): Uint8Array =>
      Heartbeat.encode({ peerId, timestampMs: BigInt(ts), seq: 1n, load: 0, freeMemoryMb: 0n, trainingStep: 0n, span: { start, end: start + 1 } });
    // the honest peer's heartbeat at t0 (span 0:1), then a newer one (span 5:6)
    const old = encode('honest', clock.now(), 0);
    await net.deliver({ topic, from: 'honest', via: 'honest', data: old });
    clock.advance(5_000);
    await net.deliver({ topic, from: 'honest', via: 'honest', data: encode('honest', clock.now(), 5) });
    assert.deepEqual(liveness.get('honest')?.heartbeat.span, { start: 5, end: 6 });
    // 10,001 fresh ids, each with one valid heartbeat
    const N = MAX_REPLAY_ENTRIES + 1;
    for (let i = 0; i < N; i++) await net.deliver({ topic, from: `sybil${i}`, via: `sybil${i}`, data: encode(`sybil${i}`, clock.now(), 1) });
    // then the honest peer's old heartbeat again, still inside the 60 s skew window
    clock.advance(1_000);
    await net.deliver({ topic, from: 'honest', via: 'mallory', data: old });
    const replayed = liveness.get('honest')?.heartbeat.span?.start === 0;
    tally('heartbeat replay-table flush', N + 1, replayed ? 1 : 0);
    assert.equal(replayed, false, 'the replayed heartbeat did not roll the honest peer back');
    assert.ok(svc.stats.crowded > 0, 'fresh ids past the table were ignored');
    // once the skew window has passed, old entries make room again (nothing is locked out for good)
    clock.advance(61_000);
    await net.deliver({ topic, from: 'late', via: 'late', data: encode('late', clock.now(), 2) });
    assert.equal(liveness.get('late')?.state, 'alive');
    svc.stop();
  });

  it('10,000 fresh keys that keep heartbeating do not lock a joiner out of the replay table (and its liveness view)', async () => {
    // Before, a full replay table whose oldest entry was still inside the skew window admitted no new peer at all:
    // fresh keys each heartbeating once every 50 s (200 small messages a second) kept every joiner's heartbeats
    // ignored for as long as they kept it up, so the joiner never came alive (the tracker's rotation never saw it)
    const hub = new MemoryHub();
    const clock = new ManualClock(1_800_000_000_000);
    const net = hub.createNode('victim');
    await net.start();
    // as in a node: the tracker rotates peers it has not seen serve when full of live ones (`keep`, issue 12)
    const liveness = new LivenessTracker({ staleMs: 15_000, deadMs: 30_000, clock, keep: (p) => p.startsWith('served') });
    const svc = new HeartbeatService({
      network: net,
      networkId: 'attacknet',
      liveness,
      intervalMs: 3_600_000,
      clock,
      source: { span: () => undefined, load: () => 0, freeMemoryMb: () => 0, trainingStep: () => 0n },
    });
    svc.start();
    const topic = heartbeatTopic('attacknet');
    const encode = (peerId: string, ts: number, start: number): Uint8Array =>
      Heartbeat.encode({ peerId, timestampMs: BigInt(ts), seq: 1n, load: 0, freeMemoryMb: 0n, trainingStep: 0n, span: { start, end: start + 1 } });
    const N = MAX_REPLAY_ENTRIES;
    let sent = 0;
    // the flood: N keys, refreshed every 50 s (inside the 60 s window), some dated 59 s ahead
    const flood = async (): Promise<void> => {
      for (let i = 0; i < N; i++) {
        const ahead = i % 2 === 0 ? 59_000 : 0;
        await net.deliver({ topic, from: `sybil${i}`, via: `sybil${i}`, data: encode(`sybil${i}`, clock.now() + ahead, 1) });
        sent++;
      }
    };
    await flood();
    // the joiner heartbeats every 5 s for 100 s; the flood goes on
    let aliveAt: number | undefined;
    for (let t = 5_000; t <= 100_000; t += 5_000) {
      clock.advance(5_000);
      if (t % 50_000 === 0) await flood();
      await net.deliver({ topic, from: 'joiner', via: 'joiner', data: encode('joiner', clock.now(), 4) });
      if (aliveAt === undefined && liveness.state('joiner') === 'alive') aliveAt = t;
    }
    const lockedOut = liveness.state('joiner') !== 'alive';
    tally('heartbeat replay-table lockout of a joiner', sent, lockedOut ? 1 : 0);
    assert.equal(lockedOut, false, `the joiner never came alive (${svc.stats.crowded} of its heartbeats ignored)`);
    assert.equal(aliveAt, 5_000, 'alive at its first heartbeat');
    svc.stop();
  });

  it('12,000 fresh keys heartbeating like live nodes do not evict 500 live honest peers from a liveness tracker capped at 10,000', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const t = new LivenessTracker({ staleMs: 15_000, deadMs: 30_000, clock });
    const honest = Array.from({ length: 500 }, (_, i) => `honest${i}`);
    for (const p of honest) t.observe(p, hb(p, clock.now()));
    const started = process.hrtime.bigint();
    // 12,000 fresh keys that heartbeat like live nodes, 1 s after each honest 5 s round (3 rounds)
    const N = 12_000;
    for (let r = 0; r < 3; r++) {
      clock.advance(4_000);
      for (const p of honest) t.observe(p, hb(p, clock.now()));
      clock.advance(1_000);
      for (let i = 0; i < N; i++) t.observe(`sybil${i}`, hb(`sybil${i}`, clock.now(), 3));
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const lost = honest.filter((p) => t.state(p) !== 'alive').length;
    tally('liveness eviction by fresh keys', 3 * N, lost);
    assert.equal(lost, 0, 'every honest peer is still tracked and alive');
    assert.ok(t.snapshot().length <= 10_000);
    assert.ok(t.refused > 0);
    process.stdout.write(`liveness: ${3 * N} heartbeats of ${N} fresh keys observed in ${ms.toFixed(0)} ms; ${t.refused} not tracked\n`);
  });

  it('a silent peer still makes room: past staleMs the longest-silent peer is replaced by a newcomer', () => {
    const clock = new ManualClock(0);
    const t = new LivenessTracker({ staleMs: 10, deadMs: 20, maxPeers: 2, clock });
    t.observe('a', hb('a', 0));
    t.observe('b', hb('b', 0));
    clock.advance(5);
    t.observe('b', hb('b', 5));
    t.observe('c', hb('c', 5));
    assert.equal(t.state('c'), undefined, 'a is not silent long enough: c is not tracked');
    clock.advance(10);
    t.observe('c', hb('c', 15));
    assert.equal(t.state('a'), undefined, 'a (silent 15 ms) made room');
    assert.equal(t.state('b'), 'alive');
    assert.equal(t.state('c'), 'alive');
  });
});
