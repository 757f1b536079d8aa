/**
 * The tracker's orders are linked lists (O(1) per heartbeat, issue 12's Sybil simulation); before, they were the
 * insertion orders of a Map and a Set (delete + set per heartbeat). Route choice, the simulator's determinism and
 * `keptHolders` read those orders, so the lists must give exactly what the Map and Set gave: this drives both with
 * the same random heartbeats, silences, checks and `keep` rules and compares every event, snapshot and count.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LivenessTracker, type HeartbeatInfo, type PeerLiveness } from '../../../src/protocols/liveness.js';
import { ManualClock } from '../../../src/util/clock.js';

/** The tracker as it was (Map in heartbeat order, Set in admission order), reduced to what the lists replace. */
class MapTracker {
  readonly log: string[] = [];
  readonly peers = new Map<string, PeerLiveness>();
  readonly admitted = new Set<string>();
  refused = 0;
  rotated = 0;
  constructor(
    private readonly o: { staleMs: number; deadMs: number; forgetMs: number; maxPeers: number },
    private readonly clock: ManualClock,
    public keep: ((peer: string) => boolean) | undefined,
  ) {}

  observe(peer: string, hb: HeartbeatInfo): void {
    const now = this.clock.now();
    let p = this.peers.get(peer);
    if (p === undefined) {
      if (this.peers.size >= this.o.maxPeers && !this.evictSilent(now) && !this.evictUnkept()) {
        this.refused++;
        return;
      }
      p = { peer, state: 'alive', lastSeenMs: now, heartbeat: hb };
      this.peers.set(peer, p);
      this.admitted.add(peer);
      this.log.push(`alive:${peer}`);
      return;
    }
    this.peers.delete(peer);
    this.peers.set(peer, p);
    p.lastSeenMs = now;
    p.heartbeat = hb;
    if (p.state !== 'alive') {
      p.state = 'alive';
      this.log.push(`alive:${peer}`);
    }
  }

  check(): void {
    const now = this.clock.now();
    for (const p of [...this.peers.values()]) {
      const silent = now - p.lastSeenMs;
      if (silent >= this.o.deadMs + this.o.forgetMs) {
        this.peers.delete(p.peer);
        this.admitted.delete(p.peer);
      } else if (silent >= this.o.deadMs && p.state !== 'dead') {
        if (p.state === 'alive') {
          p.state = 'stale';
          this.log.push(`stale:${p.peer}`);
        }
        p.state = 'dead';
        this.log.push(`dead:${p.peer}`);
      } else if (silent >= this.o.staleMs && p.state === 'alive') {
        p.state = 'stale';
        this.log.push(`stale:${p.peer}`);
      }
    }
  }

  keptHolders(layer: number, max: number): string[] {
    const out: string[] = [];
    if (this.keep === undefined) return out;
    for (const p of this.peers.values()) {
      if (out.length >= max) break;
      const s = p.heartbeat.span;
      if (s !== undefined && p.state === 'alive' && s.start <= layer && layer < s.end && this.keep(p.peer)) out.push(p.peer);
    }
    return out;
  }

  private evictSilent(now: number): boolean {
    const first = this.peers.values().next();
    if (first.done === true || now - first.value.lastSeenMs < this.o.staleMs) return false;
    this.peers.delete(first.value.peer);
    this.admitted.delete(first.value.peer);
    return true;
  }

  private evictUnkept(): boolean {
    const keep = this.keep;
    if (keep === undefined) return false;
    for (let n = Math.min(this.admitted.size, 64); n > 0; n--) {
      const peer = this.admitted.values().next().value!;
      this.admitted.delete(peer);
      if (keep(peer)) {
        this.admitted.add(peer);
        continue;
      }
      this.peers.delete(peer);
      this.rotated++;
      return true;
    }
    return false;
  }
}

/** xorshift32: the same sequence on every run. */
const rng = (seed: number): (() => number) => {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
};

describe('LivenessTracker orders (linked lists) against the Map/Set it replaced', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: same events, snapshots, keptHolders, refused and rotated over 20,000 random steps`, () => {
      const r = rng(seed);
      const o = { staleMs: 15, deadMs: 60, forgetMs: 120, maxPeers: 3 + Math.floor(r() * 40) };
      const clock = new ManualClock(0);
      // keep rules change mid-run (as setKeep does): none, a fixed share of peers, every peer
      const rules: (((p: string) => boolean) | undefined)[] = [undefined, (p) => Number(p.slice(1)) % 3 === 0, (p) => Number(p.slice(1)) % 7 !== 0, () => true];
      let rule = rules[seed % rules.length];
      const t = new LivenessTracker({ staleMs: o.staleMs, deadMs: o.deadMs, forgetAfterMs: o.forgetMs, maxPeers: o.maxPeers, clock, ...(rule === undefined ? {} : { keep: rule }) });
      const ref = new MapTracker(o, clock, rule);
      const log: string[] = [];
      for (const ev of ['peer:alive', 'peer:stale', 'peer:dead'] as const) t.events.on(ev, (p) => log.push(`${ev.slice(5)}:${p.peer}`));
      const universe = 10 + Math.floor(r() * 120);
      for (let step = 0; step < 20_000; step++) {
        const x = r();
        if (x < 0.7) {
          const peer = `p${Math.floor(r() * universe)}`;
          const start = Math.floor(r() * 8);
          const hb: HeartbeatInfo = { peerId: peer, span: r() < 0.1 ? undefined : { start, end: start + 1 + Math.floor(r() * 4) }, load: 0, freeMemoryMb: 0, trainingStep: 0n, timestampMs: clock.now(), seq: BigInt(step) };
          t.observe(peer, hb);
          ref.observe(peer, hb);
        } else if (x < 0.85) {
          clock.advance(Math.floor(r() * (r() < 0.1 ? 200 : 6)));
        } else if (x < 0.97) {
          t.check();
          ref.check();
        } else if (x < 0.98) {
          rule = rules[Math.floor(r() * rules.length)];
          t.setKeep(rule);
          ref.keep = rule;
        } else {
          const layer = Math.floor(r() * 10);
          const max = 1 + Math.floor(r() * 5);
          assert.deepEqual(t.keptHolders(layer, max), ref.keptHolders(layer, max), `keptHolders at step ${step}`);
        }
        if (step % 97 === 0) assert.deepEqual(t.snapshot(), [...ref.peers.values()].map((p) => ({ ...p })), `snapshot at step ${step}`);
      }
      assert.deepEqual(log, ref.log);
      assert.deepEqual(t.snapshot(), [...ref.peers.values()].map((p) => ({ ...p })));
      assert.equal(t.size, ref.peers.size);
      assert.equal(t.refused, ref.refused);
      assert.equal(t.rotated, ref.rotated);
      assert.ok(ref.refused + ref.rotated > 0, 'the table was full at times');
      for (const p of ref.peers.keys()) assert.deepEqual(t.get(p), ref.peers.get(p));
    });
  }
});
