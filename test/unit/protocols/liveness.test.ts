import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey } from '../../../src/identity/index.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import type { P2PNetwork } from '../../../src/p2p/types.js';
import { HeartbeatService, MAX_HEARTBEAT_BYTES } from '../../../src/protocols/heartbeat.js';
import { heartbeatTopic } from '../../../src/protocols/ids.js';
import { LivenessTracker, type HeartbeatInfo } from '../../../src/protocols/liveness.js';
import { Heartbeat } from '../../../src/protocols/pb/node.js';
import { ManualClock } from '../../../src/util/clock.js';

const hb = (peerId: string, ts = 0): HeartbeatInfo => ({ peerId, span: undefined, load: 0, freeMemoryMb: 0, trainingStep: 0n, timestampMs: ts, seq: 1n });

describe('LivenessTracker', () => {
  it('goes alive → stale → dead on silence and back to alive on a heartbeat', () => {
    const clock = new ManualClock(0);
    const t = new LivenessTracker({ staleMs: 15_000, deadMs: 60_000, clock });
    const log: string[] = [];
    for (const ev of ['peer:alive', 'peer:stale', 'peer:dead'] as const) t.events.on(ev, (p) => log.push(`${ev}:${p.peer}`));
    t.observe('p', hb('p'));
    clock.advance(14_999);
    t.check();
    assert.equal(t.state('p'), 'alive');
    clock.advance(1);
    t.check();
    assert.equal(t.state('p'), 'stale');
    clock.advance(45_000);
    t.check();
    assert.equal(t.isDead('p'), true);
    t.observe('p', hb('p'));
    assert.deepEqual(log, ['peer:alive:p', 'peer:stale:p', 'peer:dead:p', 'peer:alive:p']);
  });

  it('never skips stale, forgets dead peers later, and stays bounded', () => {
    const clock = new ManualClock(0);
    const t = new LivenessTracker({ staleMs: 10, deadMs: 20, forgetAfterMs: 100, maxPeers: 2, clock });
    const log: string[] = [];
    t.events.on('peer:stale', () => log.push('stale'));
    t.events.on('peer:dead', () => log.push('dead'));
    t.observe('a', hb('a'));
    clock.advance(50);
    t.check();
    assert.deepEqual(log, ['stale', 'dead']);
    clock.advance(100);
    t.check();
    assert.equal(t.state('a'), undefined);
    t.observe('x', hb('x'));
    t.observe('y', hb('y'));
    t.observe('z', hb('z'));
    assert.equal(t.snapshot().length, 2);
  });
});

describe('LivenessTracker: a leaving heartbeat (a graceful stop)', () => {
  const leaving = (peerId: string, ts: number): HeartbeatInfo => ({ ...hb(peerId, ts), leaving: true });

  it('marks the peer dead at once (alive → stale → dead), and only a heartbeat dated after it revives the peer', () => {
    const clock = new ManualClock(0);
    const t = new LivenessTracker({ staleMs: 15_000, deadMs: 60_000, clock });
    const log: string[] = [];
    for (const ev of ['peer:alive', 'peer:stale', 'peer:dead'] as const) t.events.on(ev, () => log.push(ev));
    t.observe('p', hb('p', 1000));
    clock.advance(10);
    t.observe('p', leaving('p', 1010));
    assert.equal(t.state('p'), 'dead');
    assert.equal(t.isDead('p'), true);
    assert.equal(t.get('p')?.leftAtMs, 1010);
    assert.deepEqual(log, ['peer:alive', 'peer:stale', 'peer:dead']);
    // a late copy of a heartbeat sent before it left (or in the same millisecond) does not bring it back
    t.observe('p', hb('p', 1000));
    t.observe('p', hb('p', 1010));
    assert.equal(t.state('p'), 'dead');
    // the timer's checks leave it dead, and forget it later as any dead peer
    clock.advance(59_000);
    t.check();
    assert.equal(t.state('p'), 'dead');
    // it came back: a heartbeat dated after the leaving one
    t.observe('p', hb('p', 70_000));
    assert.equal(t.state('p'), 'alive');
    assert.equal(t.get('p')?.leftAtMs, undefined);
    assert.deepEqual(log, ['peer:alive', 'peer:stale', 'peer:dead', 'peer:alive']);
  });

  it('a stale peer goes straight to dead; a peer not tracked is not added (a flood of leaving keys takes no slot)', () => {
    const clock = new ManualClock(0);
    const t = new LivenessTracker({ staleMs: 100, deadMs: 1000, maxPeers: 2, clock });
    t.observe('s', hb('s', 0));
    clock.advance(150);
    t.check();
    assert.equal(t.state('s'), 'stale');
    t.observe('s', leaving('s', 150));
    assert.equal(t.state('s'), 'dead');
    for (let i = 0; i < 10; i++) t.observe(`k${i}`, leaving(`k${i}`, 150));
    assert.equal(t.size, 1);
    assert.equal(t.refused, 0);
  });
});

describe('LivenessTracker at its cap with keep (peers this node has seen serve)', () => {
  // 1 kept honest peer, 3 fresh keys fill a table of 4; an honest joiner comes later, then more fresh keys
  const full = (keep?: (peer: string) => boolean): { t: LivenessTracker; clock: ManualClock } => {
    const clock = new ManualClock(0);
    const t = new LivenessTracker({ staleMs: 15_000, deadMs: 60_000, maxPeers: 4, clock, ...(keep === undefined ? {} : { keep }) });
    for (const p of ['served', 'sybil0', 'sybil1', 'sybil2']) t.observe(p, hb(p));
    return { t, clock };
  };

  it('a joiner takes the place of the longest-tracked peer not kept; a kept peer is never pushed out while alive', () => {
    const { t, clock } = full((p) => p === 'served');
    clock.advance(1_000);
    t.observe('joiner', hb('joiner', 1_000));
    assert.equal(t.state('joiner'), 'alive', 'the joiner is tracked although every tracked peer is alive');
    assert.equal(t.state('sybil0'), undefined, 'the longest-tracked peer not kept made room');
    assert.equal(t.rotated, 1);
    assert.equal(t.refused, 0);
    // 1,000 more fresh keys: they rotate among the places not kept; the kept peer stays, the table stays bounded
    for (let i = 3; i < 1_003; i++) t.observe(`sybil${i}`, hb(`sybil${i}`, 1_000));
    assert.equal(t.state('served'), 'alive');
    assert.equal(t.snapshot().length, 4);
    // a rotated-out joiner is back at its next heartbeat
    assert.equal(t.state('joiner'), undefined);
    clock.advance(5_000);
    t.observe('joiner', hb('joiner', 6_000));
    assert.equal(t.state('joiner'), 'alive');
    assert.equal(t.state('served'), 'alive');
  });

  it('keptHolders: the live kept peers whose heartbeat span holds the layer, at most max', () => {
    const clock = new ManualClock(0);
    const kept = new Set(['a', 'b', 'c']);
    const t = new LivenessTracker({ staleMs: 15_000, deadMs: 60_000, clock, keep: (p) => kept.has(p) });
    const span = (peerId: string, start: number, end: number): HeartbeatInfo => ({ ...hb(peerId), span: { start, end } });
    t.observe('a', span('a', 0, 4));
    t.observe('b', span('b', 2, 6));
    t.observe('x', span('x', 0, 8)); // not kept
    clock.advance(20_000);
    t.observe('a', span('a', 0, 4));
    t.observe('x', span('x', 0, 8));
    t.check(); // b is stale now
    t.observe('c', span('c', 3, 5));
    assert.deepEqual(t.keptHolders(3, 16).sort(), ['a', 'c']);
    assert.deepEqual(t.keptHolders(5, 16), []);
    assert.equal(t.keptHolders(3, 1).length, 1);
    t.setKeep(undefined);
    assert.deepEqual(t.keptHolders(3, 16), []);
  });

  it('without keep a full table of live peers refuses the joiner (the lock-out keep fixes)', () => {
    const { t, clock } = full();
    clock.advance(1_000);
    t.observe('joiner', hb('joiner', 1_000));
    assert.equal(t.state('joiner'), undefined);
    assert.equal(t.refused, 1);
  });

  it('a table of kept peers only still refuses newcomers; setKeep sets the rule after construction', () => {
    const { t } = full();
    t.setKeep(() => true);
    t.observe('joiner', hb('joiner'));
    assert.equal(t.state('joiner'), undefined);
    assert.equal(t.refused, 1);
    t.setKeep((p) => p === 'served');
    t.observe('joiner', hb('joiner'));
    assert.equal(t.state('joiner'), 'alive');
    assert.equal(t.state('served'), 'alive');
  });
});

describe('HeartbeatService', () => {
  it('publishes signed-by-transport heartbeats that others accept, and rejects impostors, stale and oversized ones', async () => {
    const hub = new MemoryHub();
    const clock = new ManualClock(1_800_000_000_000);
    const ids = [0, 1].map(() => peerIdFromPublicKey(keyFromPrivate(randomBytes(32)).publicKey));
    const nets = ids.map((id) => hub.createNode(id));
    for (const n of nets) await n.start();
    const trackers = nets.map(() => new LivenessTracker({ staleMs: 1000, deadMs: 2000, clock }));
    const services = nets.map(
      (n, i) =>
        new HeartbeatService({
          network: n,
          networkId: 'net1',
          liveness: trackers[i]!,
          intervalMs: 60_000,
          clock,
          source: { span: () => ({ start: i, end: i + 1 }), load: () => 0.5, freeMemoryMb: () => 2048, trainingStep: () => 7n },
        }),
    );
    for (const s of services) s.start();
    await services[0]!.beat();
    const seen = trackers[1]!.get(ids[0]!);
    assert.equal(seen?.state, 'alive');
    assert.deepEqual(seen?.heartbeat.span, { start: 0, end: 1 });
    assert.equal(seen?.heartbeat.trainingStep, 7n);
    const topic = heartbeatTopic('net1');
    const encode = (peerId: string, ts: number): Uint8Array => Heartbeat.encode({ peerId, timestampMs: BigInt(ts), seq: 1n, load: 0, freeMemoryMb: 0n, trainingStep: 0n });
    // someone publishing a heartbeat in another peer's name (the transport signer is "mallory")
    await nets[1]!.deliver({ topic, from: 'mallory', via: 'mallory', data: encode(ids[0]!, clock.now()) });
    // a replay of an old heartbeat, one from the far future, and a huge one
    await nets[1]!.deliver({ topic, from: 'ghost', via: 'ghost', data: encode('ghost', clock.now() - 120_000) });
    await nets[1]!.deliver({ topic, from: 'ghost', via: 'ghost', data: encode('ghost', clock.now() + 120_000) });
    await nets[1]!.deliver({ topic, from: 'ghost', via: 'ghost', data: new Uint8Array(4096) });
    assert.equal(trackers[1]!.get('mallory'), undefined);
    assert.equal(trackers[1]!.get('ghost'), undefined);
    assert.equal(services[1]!.stats.rejected, 4);
    for (const s of services) s.stop();
  });

  it('carries the weights format: int8 arrives as int8, f32 as nothing; an unknown format is rejected', async () => {
    const hub = new MemoryHub();
    const clock = new ManualClock(1_800_000_000_000);
    const ids = [0, 1, 2].map(() => peerIdFromPublicKey(keyFromPrivate(randomBytes(32)).publicKey));
    const nets = ids.map((id) => hub.createNode(id));
    for (const n of nets) await n.start();
    const tracker = new LivenessTracker({ staleMs: 1000, deadMs: 2000, clock });
    const formats = ['int8', 'f32'] as const;
    const senders = formats.map((w, i) => new HeartbeatService({ network: nets[i]!, networkId: 'net1', liveness: new LivenessTracker({ staleMs: 1000, deadMs: 2000, clock }), intervalMs: 60_000, clock, source: { span: () => ({ start: 0, end: 1 }), load: () => 0, freeMemoryMb: () => 1, trainingStep: () => 0n, weights: () => w } }));
    const receiver = new HeartbeatService({ network: nets[2]!, networkId: 'net1', liveness: tracker, intervalMs: 60_000, clock, source: { span: () => undefined, load: () => 0, freeMemoryMb: () => 1, trainingStep: () => 0n } });
    for (const s of [...senders, receiver]) s.start();
    for (const s of senders) await s.beat();
    assert.equal(tracker.get(ids[0]!)?.heartbeat.weights, 'int8');
    assert.equal(tracker.get(ids[1]!)?.state, 'alive');
    assert.equal(tracker.get(ids[1]!)?.heartbeat.weights, undefined);
    const data = Heartbeat.encode({ peerId: 'ghost', timestampMs: BigInt(clock.now()), seq: 1n, load: 0, freeMemoryMb: 0n, trainingStep: 0n, weights: 'fp4' });
    await nets[2]!.deliver({ topic: heartbeatTopic('net1'), from: 'ghost', via: 'ghost', data });
    assert.equal(tracker.get('ghost'), undefined);
    for (const s of [...senders, receiver]) s.stop();
  });

  describe('leave (a graceful stop)', () => {
    const source = { span: () => ({ start: 0, end: 2 }), load: () => 0, freeMemoryMb: () => 1, trainingStep: () => 0n };
    const setup = async (): Promise<{ clock: ManualClock; ids: string[]; nets: ReturnType<MemoryHub['createNode']>[]; tracker: LivenessTracker; receiver: HeartbeatService; captured: Uint8Array[] }> => {
      const hub = new MemoryHub();
      const clock = new ManualClock(1_800_000_000_000);
      const ids = [0, 1, 2].map(() => peerIdFromPublicKey(keyFromPrivate(randomBytes(32)).publicKey));
      const nets = ids.map((id) => hub.createNode(id));
      for (const n of nets) await n.start();
      const tracker = new LivenessTracker({ staleMs: 15_000, deadMs: 60_000, clock });
      const receiver = new HeartbeatService({ network: nets[1]!, networkId: 'net1', liveness: tracker, intervalMs: 60_000, clock, source });
      receiver.start();
      running.push(receiver);
      // a third node records what the sender publishes (what an attacker on the topic can replay)
      const captured: Uint8Array[] = [];
      nets[2]!.subscribe(heartbeatTopic('net1'), (m) => {
        if (m.from === ids[0]) captured.push(m.data);
      });
      return { clock, ids, nets, tracker, receiver, captured };
    };
    // services started here are stopped after each test, failed or not (their 60 s timers would hold the process)
    const running: HeartbeatService[] = [];
    afterEach(() => {
      for (const s of running.splice(0)) s.stop();
    });
    const sender = (net: ReturnType<MemoryHub['createNode']>, clock: ManualClock): HeartbeatService => {
      const s = new HeartbeatService({ network: net, networkId: 'net1', liveness: new LivenessTracker({ staleMs: 15_000, deadMs: 60_000, clock }), intervalMs: 60_000, clock, source });
      running.push(s);
      return s;
    };

    it('peers mark the leaver dead at once; no heartbeat after it; a replay of an earlier one does not revive it', async () => {
      const { clock, ids, nets, tracker, captured } = await setup();
      const a = sender(nets[0]!, clock);
      a.start();
      await a.beat();
      assert.equal(tracker.state(ids[0]!), 'alive');
      // same millisecond as its last heartbeat: the leaving one is still dated after it
      assert.equal(await a.leave(), true);
      assert.equal(tracker.state(ids[0]!), 'dead');
      const left = Heartbeat.decode(captured.at(-1)!);
      assert.equal(left.leaving, true);
      assert.equal(left.timestampMs, BigInt(clock.now() + 1));
      assert.equal(await a.leave(), false, 'once');
      const published = a.stats.published;
      await a.beat();
      assert.equal(a.stats.published, published, 'nothing after the leaving heartbeat');
      // a replay of the ordinary heartbeats it sent before it left
      for (const data of captured.slice(0, -1)) await nets[1]!.deliver({ topic: heartbeatTopic('net1'), from: ids[0]!, via: ids[2]!, data });
      assert.equal(tracker.state(ids[0]!), 'dead');
    });

    it('a restart revives it; a replay of the old leaving heartbeat then does not mark it dead again', async () => {
      const { clock, ids, nets, tracker, captured } = await setup();
      const a = sender(nets[0]!, clock);
      a.start();
      await a.beat();
      await a.leave();
      assert.equal(tracker.state(ids[0]!), 'dead');
      const leavingMsg = captured.at(-1)!;
      clock.advance(3000);
      const again = sender(nets[0]!, clock); // the same key, a new process
      again.start();
      await again.beat();
      assert.equal(tracker.state(ids[0]!), 'alive');
      await nets[1]!.deliver({ topic: heartbeatTopic('net1'), from: ids[0]!, via: ids[2]!, data: leavingMsg });
      assert.equal(tracker.state(ids[0]!), 'alive', 'the replayed leaving heartbeat is older than the restart');
    });

    it('the same service started again after a leave (same millisecond) is alive again', async () => {
      const { ids, nets, tracker, clock } = await setup();
      const a = sender(nets[0]!, clock);
      a.start();
      await a.beat();
      await a.leave();
      assert.equal(tracker.state(ids[0]!), 'dead');
      a.stop();
      a.start();
      await a.beat();
      assert.equal(tracker.state(ids[0]!), 'alive');
    });

    it('a leaving heartbeat in another peer\'s name is rejected: nobody can evict anybody', async () => {
      const { clock, ids, nets, tracker, receiver } = await setup();
      const a = sender(nets[0]!, clock);
      a.start();
      await a.beat();
      assert.equal(tracker.state(ids[0]!), 'alive');
      clock.advance(10);
      const forged = Heartbeat.encode({ peerId: ids[0]!, timestampMs: BigInt(clock.now()), seq: 99n, load: 0, freeMemoryMb: 0n, trainingStep: 0n, leaving: true });
      const rejected = receiver.stats.rejected;
      // signed (transport) by ids[2], naming ids[0]
      await nets[1]!.deliver({ topic: heartbeatTopic('net1'), from: ids[2]!, via: ids[2]!, data: forged });
      assert.equal(receiver.stats.rejected, rejected + 1);
      assert.equal(tracker.state(ids[0]!), 'alive');
    });

    it('without peers it returns at once; a publish that never completes is given up after the bound', async () => {
      const hub = new MemoryHub();
      const clock = new ManualClock(1_800_000_000_000);
      const lone = hub.createNode(peerIdFromPublicKey(keyFromPrivate(randomBytes(32)).publicKey));
      await lone.start();
      const alone = sender(lone, clock);
      alone.start();
      assert.equal(await alone.leave(), false);
      const stuck = { peerId: 'stuck', topicPeers: () => ['someone'], publish: () => new Promise<number>(() => undefined) } as unknown as P2PNetwork;
      const s = new HeartbeatService({ network: stuck, networkId: 'net1', liveness: new LivenessTracker({ staleMs: 15_000, deadMs: 60_000, clock }), intervalMs: 60_000, clock, source });
      const t0 = performance.now();
      assert.equal(await s.leave(50), false);
      const ms = performance.now() - t0;
      assert.ok(ms >= 40 && ms < 1000, `${ms} ms`);
    });

    it('an old node reads a leaving heartbeat as an ordinary one (unknown fields are skipped), within the size limit', async () => {
      const { clock, ids, nets, tracker } = await setup();
      // field 20, varint 1: what field 9 is to a node built before it
      const known = Heartbeat.encode({ peerId: ids[0]!, span: { start: 0, end: 65536 }, timestampMs: BigInt(clock.now()), seq: 1n, load: 1e6, freeMemoryMb: 2n ** 53n - 1n, trainingStep: 1n << 60n, weights: 'int8' });
      const withUnknown = new Uint8Array([...known, 0xa0, 0x01, 0x01]);
      await nets[1]!.deliver({ topic: heartbeatTopic('net1'), from: ids[0]!, via: ids[0]!, data: withUnknown });
      assert.equal(tracker.state(ids[0]!), 'alive');
      const leavingMax = Heartbeat.encode({ ...Heartbeat.decode(known), leaving: true });
      assert.ok(leavingMax.byteLength <= MAX_HEARTBEAT_BYTES, `${leavingMax.byteLength}`);
    });
  });
});
