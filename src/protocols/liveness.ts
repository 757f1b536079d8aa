/**
 * Liveness of peers, from their heartbeats. A peer is alive while its heartbeats arrive, stale after `staleMs`
 * without one and dead after `deadMs`; each transition is a typed event. A peer whose heartbeat says it is leaving
 * (it stops gracefully) is dead at once, until a heartbeat dated after that one (it came back). Dead peers are
 * remembered for a while (so "minus peers known dead" holds while their DHT records linger) and then forgotten.
 */
import { systemClock, type Clock } from '../util/clock.js';
import { InvalidArgumentError } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';

/** Peers looked at per newcomer for one `keep` does not name (kept ones go to the back, so the next call goes on). */
const EVICT_SCAN = 64;

export type LivenessState = 'alive' | 'stale' | 'dead';

/** What a heartbeat told us about a peer. */
export interface HeartbeatInfo {
  peerId: string;
  span: { start: number; end: number } | undefined;
  load: number;
  freeMemoryMb: number;
  trainingStep: bigint;
  timestampMs: number;
  seq: bigint;
  /** 'int8' when the sender holds its span as int8 (`--weights int8`); absent: float32. */
  weights?: 'int8';
  /** The sender's last heartbeat: it is stopping gracefully (protocols/heartbeat.ts `leave`). */
  leaving?: true;
}

export interface PeerLiveness {
  peer: string;
  state: LivenessState;
  /** Local clock time of the last heartbeat received. */
  lastSeenMs: number;
  heartbeat: HeartbeatInfo;
  /**
   * The sender's timestamp of the leaving heartbeat that made the peer dead (it stopped gracefully); absent when it
   * did not leave, or came back since. Only a heartbeat dated after it revives the peer.
   */
  leftAtMs?: number;
}

export interface LivenessEvents {
  'peer:alive': PeerLiveness;
  'peer:stale': PeerLiveness;
  'peer:dead': PeerLiveness;
}

export interface LivenessOptions {
  staleMs: number;
  deadMs: number;
  /** How often states are re-evaluated. Default staleMs/10, within 20..1000 ms. */
  checkIntervalMs?: number;
  /** How long a dead peer is remembered. Default 10 × deadMs. */
  forgetAfterMs?: number;
  /**
   * Most peers tracked. Default 10,000. A new peer beyond this takes the place of the longest-silent peer only
   * when that one has been silent for staleMs or more; while every tracked peer is alive the new peer is not
   * tracked (counted in `refused`), so fresh keys cannot push live, established peers out (issue 12's Sybil finding).
   * With `keep` set (see there), a full table of live peers makes room among the peers it does not keep instead.
   */
  maxPeers?: number;
  /**
   * Peers with a history here that fresh keys cannot fake (the node: peers it has seen serve a step, router/measure.ts
   * LatencyTable). When set and the table is full of live peers, a new peer takes the place of the longest-tracked
   * peer that `keep` does not name (counted in `rotated`); kept peers are never pushed out while alive.
   *
   * Why (issue 12, Sybil scenario at 1,000 nodes): without it the first 10,000 keys to arrive held the table for
   * good. 10,000 fresh keys heartbeating on time took every slot an honest peer left, so honest nodes joining
   * later were refused by every view (a million refusals in an hour; 82 % of the honest nodes up still in view at
   * the end, falling). Rotating the unproven part of the table keeps a joiner in view most of the time (it is back
   * at its next heartbeat; 92 % in view), and nobody the node has measured serving can be pushed out by keys.
   */
  keep?: (peer: string) => boolean;
  clock?: Clock;
}

/**
 * One tracked peer: its record and its places in the tracker's two orders. The orders are doubly linked lists, not
 * the insertion order of a Map or Set: moving a peer to the back of a Map (delete + set) leaves a deleted slot at
 * its old place until V8 next rehashes the table, and taking the first entry walks every such slot. With 10,000
 * Sybil keys heartbeating into full 10,000-peer tables that walk was 70 µs per newcomer and `observe` 28 % of the
 * 1,000-node sybil simulation (issue 12); here a move, an eviction and a lookup of the first peer are O(1).
 */
interface Entry {
  rec: PeerLiveness;
  hb: Link;
  adm: Link;
}

interface Link {
  prev: Entry | undefined;
  next: Entry | undefined;
}

/** A doubly linked list threaded through one of an Entry's links. */
class List {
  head: Entry | undefined;
  tail: Entry | undefined;
  constructor(private readonly link: 'hb' | 'adm') {}

  push(e: Entry): void {
    const l = e[this.link];
    l.prev = this.tail;
    l.next = undefined;
    if (this.tail === undefined) this.head = e;
    else this.tail[this.link].next = e;
    this.tail = e;
  }

  remove(e: Entry): void {
    const l = e[this.link];
    if (l.prev === undefined) this.head = l.next;
    else l.prev[this.link].next = l.next;
    if (l.next === undefined) this.tail = l.prev;
    else l.next[this.link].prev = l.prev;
    l.prev = undefined;
    l.next = undefined;
  }

  moveToBack(e: Entry): void {
    if (this.tail === e) return;
    this.remove(e);
    this.push(e);
  }
}

export class LivenessTracker {
  readonly events = new TypedEmitter<LivenessEvents>();
  /** Tracked peers by id; the order lives in the two lists below, never in the Map (see Entry). */
  private readonly peers = new Map<string, Entry>();
  /** Heartbeat order: the longest-silent peer first (the clock only moves forward, so lastSeenMs never falls along it). */
  private readonly byHeartbeat = new List('hb');
  /** Admission order: the longest-tracked peer first, for `keep`'s rotation. */
  private readonly byAdmission = new List('adm');
  private readonly staleMs: number;
  private readonly deadMs: number;
  private readonly checkMs: number;
  private readonly forgetMs: number;
  private readonly maxPeers: number;
  private readonly clock: Clock;
  private timer: NodeJS.Timeout | undefined;
  private keep: ((peer: string) => boolean) | undefined;
  /** New peers not tracked because the table was full of live peers. */
  refused = 0;
  /** Live peers not kept that made room for a new peer (the table was full; see LivenessOptions.keep). */
  rotated = 0;

  constructor(opts: LivenessOptions) {
    if (!(opts.staleMs > 0 && opts.deadMs > opts.staleMs)) throw new InvalidArgumentError('liveness: need 0 < staleMs < deadMs');
    this.staleMs = opts.staleMs;
    this.deadMs = opts.deadMs;
    this.checkMs = opts.checkIntervalMs ?? Math.min(1000, Math.max(20, Math.floor(opts.staleMs / 10)));
    this.forgetMs = opts.forgetAfterMs ?? 10 * opts.deadMs;
    this.maxPeers = opts.maxPeers ?? 10_000;
    this.clock = opts.clock ?? systemClock;
    this.keep = opts.keep;
  }

  /** Whether `keep` names the peer (a peer this node has seen serve). */
  isKept(peer: string): boolean {
    return this.keep?.(peer) ?? false;
  }

  /**
   * Live peers `keep` names whose heartbeat span holds `layer`, at most `max`, in table order (the layer registry
   * asks them besides the DHT's providers: LayerRegistryOptions.known).
   */
  keptHolders(layer: number, max: number): string[] {
    const out: string[] = [];
    if (this.keep === undefined) return out;
    for (let e = this.byHeartbeat.head; e !== undefined; e = e.hb.next) {
      if (out.length >= max) break;
      const p = e.rec;
      const s = p.heartbeat.span;
      if (s !== undefined && p.state === 'alive' && s.start <= layer && layer < s.end && this.keep(p.peer)) out.push(p.peer);
    }
    return out;
  }

  /** Sets the peers kept at the cap (LivenessOptions.keep): the node knows them only once its router exists. */
  setKeep(keep: ((peer: string) => boolean) | undefined): void {
    this.keep = keep;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.check(), this.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Records a (validated) heartbeat from `peer`. */
  observe(peer: string, hb: HeartbeatInfo): void {
    const now = this.clock.now();
    const e = this.peers.get(peer);
    if (hb.leaving === true) {
      // a peer we do not track has nothing to mark (and a flood of fresh keys leaving takes no slot of the table)
      if (e !== undefined) this.leave(e, hb, now);
      return;
    }
    // a copy of a heartbeat from before the peer left, delivered late: it does not bring the peer back
    if (e?.rec.leftAtMs !== undefined && hb.timestampMs <= e.rec.leftAtMs) return;
    if (e === undefined) {
      if (this.peers.size >= this.maxPeers && !this.evictSilent(now) && !this.evictUnkept()) {
        this.refused++;
        return;
      }
      const added: Entry = { rec: { peer, state: 'alive', lastSeenMs: now, heartbeat: hb }, hb: { prev: undefined, next: undefined }, adm: { prev: undefined, next: undefined } };
      this.peers.set(peer, added);
      this.byHeartbeat.push(added);
      this.byAdmission.push(added);
      this.events.emit('peer:alive', { ...added.rec });
      return;
    }
    // heartbeat order: longest silent first, so this peer goes to the back
    this.byHeartbeat.moveToBack(e);
    const p = e.rec;
    p.lastSeenMs = now;
    p.heartbeat = hb;
    delete p.leftAtMs;
    if (p.state !== 'alive') {
      p.state = 'alive';
      this.events.emit('peer:alive', { ...p });
    }
  }

  /**
   * A tracked peer said it leaves: dead now, as after `deadMs` of silence (listeners see alive → stale → dead, as
   * always), and forgotten `forgetAfterMs` after `deadMs` from now. Heard from now, so it goes to the back of the
   * heartbeat order (which `check` relies on).
   */
  private leave(e: Entry, hb: HeartbeatInfo, now: number): void {
    this.byHeartbeat.moveToBack(e);
    const p = e.rec;
    p.lastSeenMs = now;
    p.heartbeat = hb;
    p.leftAtMs = hb.timestampMs;
    if (p.state === 'alive') {
      p.state = 'stale';
      this.events.emit('peer:stale', { ...p });
    }
    if (p.state === 'stale') {
      p.state = 'dead';
      this.events.emit('peer:dead', { ...p });
    }
  }

  /** The tracker's clock now (lastSeenMs is on it). */
  now(): number {
    return this.clock.now();
  }

  /**
   * Re-evaluates every peer against the clock (the timer calls it; tests with a ManualClock call it directly). It
   * walks the heartbeat order from the longest-silent peer and stops at the first one silent for less than staleMs:
   * every peer after it heard from us later, so nothing changes for them. (Should the system clock step back, a
   * peer heard before the step reaches its next state that much later; nothing is lost.)
   */
  check(): void {
    const now = this.clock.now();
    for (let e = this.byHeartbeat.head; e !== undefined; ) {
      const p = e.rec;
      const silent = now - p.lastSeenMs;
      if (silent < this.staleMs) break;
      const next = e.hb.next; // taken before a listener runs
      if (silent >= this.deadMs + this.forgetMs) {
        this.forget(e);
      } else if (silent >= this.deadMs && p.state !== 'dead') {
        if (p.state === 'alive') {
          // never skip the stale step: listeners see alive → stale → dead
          p.state = 'stale';
          this.events.emit('peer:stale', { ...p });
        }
        p.state = 'dead';
        this.events.emit('peer:dead', { ...p });
      } else if (silent >= this.staleMs && p.state === 'alive') {
        p.state = 'stale';
        this.events.emit('peer:stale', { ...p });
      }
      e = next;
    }
  }

  state(peer: string): LivenessState | undefined {
    return this.peers.get(peer)?.rec.state;
  }

  isDead(peer: string): boolean {
    return this.peers.get(peer)?.rec.state === 'dead';
  }

  get(peer: string): PeerLiveness | undefined {
    const e = this.peers.get(peer);
    return e === undefined ? undefined : { ...e.rec };
  }

  /** Copies of every tracked peer, the longest-silent first. */
  snapshot(): PeerLiveness[] {
    const out: PeerLiveness[] = [];
    for (let e = this.byHeartbeat.head; e !== undefined; e = e.hb.next) out.push({ ...e.rec });
    return out;
  }

  /**
   * Calls `fn` with every tracked peer, the longest-silent first, as `snapshot` lists them but without copies (the
   * simulator reads 11,000-peer tables once a simulated second). `fn` must not change the tracker or keep the object.
   */
  forEach(fn: (p: Readonly<PeerLiveness>) => void): void {
    for (let e = this.byHeartbeat.head; e !== undefined; e = e.hb.next) fn(e.rec);
  }

  /** How many peers are tracked. */
  get size(): number {
    return this.peers.size;
  }

  private forget(e: Entry): void {
    this.peers.delete(e.rec.peer);
    this.byHeartbeat.remove(e);
    this.byAdmission.remove(e);
  }

  /**
   * Forgets the longest-silent peer when it has been silent for staleMs or more (O(1): the head of the heartbeat
   * order); false when every tracked peer is alive.
   */
  private evictSilent(now: number): boolean {
    const first = this.byHeartbeat.head;
    if (first === undefined || now - first.rec.lastSeenMs < this.staleMs) return false;
    this.forget(first);
    return true;
  }

  /**
   * With `keep`: forgets the longest-tracked peer that `keep` does not name (kept peers met on the way go to the
   * back of the admission order, so each is asked about once per pass: amortised O(1)); false when the first
   * EVICT_SCAN peers are all kept, or without `keep`.
   */
  private evictUnkept(): boolean {
    const keep = this.keep;
    if (keep === undefined) return false;
    // at most EVICT_SCAN peers per newcomer: a table of kept peers refuses newcomers without a scan of it each time
    for (let n = Math.min(this.peers.size, EVICT_SCAN); n > 0; n--) {
      const e = this.byAdmission.head!;
      if (keep(e.rec.peer)) {
        this.byAdmission.moveToBack(e);
        continue;
      }
      this.forget(e);
      this.rotated++;
      return true;
    }
    return false;
  }
}
