/**
 * A table of peer scores. Protocol code lowers a peer's score when it sends something malformed, oversized or
 * forged; the score decays back towards zero with a half-life, so an honest peer that hit one bug recovers, while
 * a peer that keeps misbehaving crosses the ban threshold and is refused (connection gater) until the ban ends.
 */
import { systemClock, type Clock } from '../util/clock.js';
import { TypedEmitter } from '../util/events.js';
import type { PeerIdString } from './types.js';

export interface PeerScoreOptions {
  /** A score at or below this bans the peer. Default -100. */
  banThreshold?: number;
  /** How long a ban lasts. Default 10 minutes. */
  banMs?: number;
  /** Half-life of a penalty. Default 10 minutes. */
  halfLifeMs?: number;
  /** Most peers tracked; the least recently penalised are forgotten first. Default 10,000. */
  maxPeers?: number;
  clock?: Clock;
}

export interface PeerScoreEvents {
  'peer:penalised': { peer: PeerIdString; points: number; reason: string; score: number };
  'peer:banned': { peer: PeerIdString; until: number; reason: string };
}

interface Entry {
  score: number;
  at: number;
  bannedUntil: number;
}

/** Standard penalties, in points. */
export const PENALTY = {
  /** A malformed frame or message: undecodable, wrong shape, bad field. */
  malformed: 20,
  /** A frame larger than the limit of its message type. */
  oversized: 25,
  /** A signature that does not verify, a record for someone else's key. */
  forged: 50,
  /** Protocol misuse that may be an honest bug: unexpected frame order, a late frame. */
  protocol: 10,
} as const;

export class PeerScoreTable {
  readonly events = new TypedEmitter<PeerScoreEvents>();
  private readonly entries = new Map<PeerIdString, Entry>();
  private readonly banThreshold: number;
  private readonly banMs: number;
  private readonly halfLifeMs: number;
  private readonly maxPeers: number;
  private readonly clock: Clock;

  constructor(opts: PeerScoreOptions = {}) {
    this.banThreshold = opts.banThreshold ?? -100;
    this.banMs = opts.banMs ?? 10 * 60_000;
    this.halfLifeMs = opts.halfLifeMs ?? 10 * 60_000;
    this.maxPeers = opts.maxPeers ?? 10_000;
    this.clock = opts.clock ?? systemClock;
  }

  /** The current score (≤ 0), decayed to now. */
  score(peer: PeerIdString): number {
    const e = this.entries.get(peer);
    if (e === undefined) return 0;
    return this.decayed(e, this.clock.now());
  }

  isBanned(peer: PeerIdString): boolean {
    const e = this.entries.get(peer);
    return e !== undefined && e.bannedUntil > this.clock.now();
  }

  /** Lowers a peer's score by `points`; bans it when the score crosses the threshold. Returns the new score. */
  penalise(peer: PeerIdString, points: number, reason: string): number {
    const now = this.clock.now();
    let e = this.entries.get(peer);
    if (e === undefined) {
      if (this.entries.size >= this.maxPeers) this.evictOne();
      e = { score: 0, at: now, bannedUntil: 0 };
    } else {
      this.entries.delete(peer); // re-insert: the map's order is least recently penalised first
    }
    e.score = this.decayed(e, now) - Math.abs(points);
    e.at = now;
    this.entries.set(peer, e);
    this.events.emit('peer:penalised', { peer, points: Math.abs(points), reason, score: e.score });
    if (e.score <= this.banThreshold && e.bannedUntil <= now) {
      e.bannedUntil = now + this.banMs;
      this.events.emit('peer:banned', { peer, until: e.bannedUntil, reason });
    }
    return e.score;
  }

  /** Peers with a score below zero, worst first. */
  snapshot(): { peer: PeerIdString; score: number; banned: boolean }[] {
    const now = this.clock.now();
    return [...this.entries.entries()]
      .map(([peer, e]) => ({ peer, score: this.decayed(e, now), banned: e.bannedUntil > now }))
      .sort((a, b) => a.score - b.score);
  }

  private decayed(e: Entry, now: number): number {
    const dt = Math.max(0, now - e.at);
    return e.score * 0.5 ** (dt / this.halfLifeMs);
  }

  private evictOne(): void {
    const now = this.clock.now();
    // Never forget a banned peer early; drop the oldest unbanned entry.
    for (const [peer, e] of this.entries) {
      if (e.bannedUntil <= now) {
        this.entries.delete(peer);
        return;
      }
    }
    const first = this.entries.keys().next();
    if (first.done !== true) this.entries.delete(first.value);
  }
}
