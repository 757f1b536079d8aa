/**
 * Liveness of peers, from their heartbeats. A peer is alive while its heartbeats arrive, stale after `staleMs`
 * without one and dead after `deadMs`; each transition is a typed event. Dead peers are remembered for a while
 * (so "minus peers known dead" holds while their DHT records linger) and then forgotten.
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
}

export interface PeerLiveness {
  peer: string;
  state: LivenessState;
  /** Local clock time of the last heartbeat received. */
  lastSeenMs: number;
  heartbeat: HeartbeatInfo;
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

export class LivenessTracker {
  readonly events = new TypedEmitter<LivenessEvents>();
  private readonly peers = new Map<string, PeerLiveness>();
  private readonly staleMs: number;
  private readonly deadMs: number;
  private readonly checkMs: number;
  private readonly forgetMs: number;
  private readonly maxPeers: number;
  private readonly clock: Clock;
  private timer: NodeJS.Timeout | undefined;
  /** Tracked peers in order of admission (the oldest first), for `keep`'s rotation. */
  private readonly admitted = new Set<string>();
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
    for (const p of this.peers.values()) {
      if (out.length >= max) break;
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
    let p = this.peers.get(peer);
    if (p === undefined) {
      if (this.peers.size >= this.maxPeers && !this.evictSilent(now) && !this.evictUnkept()) {
        this.refused++;
        return;
      }
      p = { peer, state: 'alive', lastSeenMs: now, heartbeat: hb };
      this.peers.set(peer, p);
      this.admitted.add(peer);
      this.events.emit('peer:alive', { ...p });
      return;
    }
    // the map is kept in order of last heartbeat (longest silent first): move this peer to the end
    this.peers.delete(peer);
    this.peers.set(peer, p);
    p.lastSeenMs = now;
    p.heartbeat = hb;
    if (p.state !== 'alive') {
      p.state = 'alive';
      this.events.emit('peer:alive', { ...p });
    }
  }

  /** The tracker's clock now (lastSeenMs is on it). */
  now(): number {
    return this.clock.now();
  }

  /** Re-evaluates every peer against the clock (the timer calls it; tests with a ManualClock call it directly). */
  check(): void {
    const now = this.clock.now();
    for (const p of [...this.peers.values()]) {
      const silent = now - p.lastSeenMs;
      if (silent >= this.deadMs + this.forgetMs) {
        this.peers.delete(p.peer);
        this.admitted.delete(p.peer);
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
    }
  }

  state(peer: string): LivenessState | undefined {
    return this.peers.get(peer)?.state;
  }

  isDead(peer: string): boolean {
    return this.peers.get(peer)?.state === 'dead';
  }

  get(peer: string): PeerLiveness | undefined {
    const p = this.peers.get(peer);
    return p === undefined ? undefined : { ...p };
  }

  snapshot(): PeerLiveness[] {
    return [...this.peers.values()].map((p) => ({ ...p }));
  }

  /**
   * Forgets the longest-silent peer when it has been silent for staleMs or more (O(1): the map is in order of
   * last heartbeat); false when every tracked peer is alive.
   */
  private evictSilent(now: number): boolean {
    const first = this.peers.values().next();
    if (first.done === true || now - first.value.lastSeenMs < this.staleMs) return false;
    this.peers.delete(first.value.peer);
    this.admitted.delete(first.value.peer);
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
    for (let n = Math.min(this.admitted.size, EVICT_SCAN); n > 0; n--) {
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
