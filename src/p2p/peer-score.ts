/**
 * A table of peer scores. Protocol code lowers a peer's score when it sends something malformed, oversized or
 * forged; the score decays back towards zero with a half-life, so an honest peer that hit one bug recovers, while
 * a peer that keeps misbehaving crosses the ban threshold and is refused (connection gater) until the ban ends.
 */
import { systemClock, type Clock } from '../util/clock.js';
import { TypedEmitter } from '../util/events.js';
import { ipv6Groups, unmapIp } from '../util/ip.js';
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
  /**
   * A host (an IPv4 address or an IPv6 /64, see `hostOf`) from which this many distinct peer ids were banned within
   * banMs is banned itself for banMs: a new peer id is free, so bans per id alone bind nobody. Default 3.
   */
  hostBanAfter?: number;
  /** Most hosts tracked for host bans. Default 10,000. */
  maxHosts?: number;
  clock?: Clock;
}

export interface PeerScoreEvents {
  'peer:penalised': { peer: PeerIdString; points: number; reason: string; score: number };
  'peer:banned': { peer: PeerIdString; until: number; reason: string };
  'host:banned': { host: string; until: number; peers: number };
}

interface HostEntry {
  /** Banned peer ids seen from this host, with when their ban ends. */
  peers: Map<PeerIdString, number>;
  bannedUntil: number;
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
  private readonly hosts = new Map<string, HostEntry>();
  private readonly hostBanAfter: number;
  private readonly maxHosts: number;
  /** Where a peer connects from (set by the network once it runs); undefined when unknown. */
  private hostResolver: ((peer: PeerIdString) => string | undefined) | undefined;

  constructor(opts: PeerScoreOptions = {}) {
    this.hostBanAfter = opts.hostBanAfter ?? 3;
    this.maxHosts = opts.maxHosts ?? 10_000;
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

  /** Tells the table how to find the host a peer connects from (libp2p-node sets it). */
  setHostResolver(fn: ((peer: PeerIdString) => string | undefined) | undefined): void {
    this.hostResolver = fn;
  }

  /** True while `host` (as hostKey spells it) is banned. */
  isHostBanned(host: string): boolean {
    const h = this.hosts.get(host);
    return h !== undefined && h.bannedUntil > this.clock.now();
  }

  /** Notes that `peer`, connecting from `host`, was banned; bans the host after hostBanAfter distinct ids. */
  noteBannedFrom(peer: PeerIdString, host: string): void {
    const now = this.clock.now();
    let h = this.hosts.get(host);
    if (h === undefined) {
      if (this.hosts.size >= this.maxHosts) {
        // forget the least recently noted host that is not banned now
        for (const [k, v] of this.hosts) {
          if (v.bannedUntil <= now) {
            this.hosts.delete(k);
            break;
          }
        }
        if (this.hosts.size >= this.maxHosts) return;
      }
      h = { peers: new Map(), bannedUntil: 0 };
    } else {
      this.hosts.delete(host);
    }
    this.hosts.set(host, h);
    for (const [p, until] of h.peers) if (until <= now) h.peers.delete(p);
    h.peers.set(peer, now + this.banMs);
    if (h.peers.size > 4 * this.hostBanAfter) h.peers.delete(h.peers.keys().next().value!);
    if (h.peers.size >= this.hostBanAfter && h.bannedUntil <= now) {
      h.bannedUntil = now + this.banMs;
      this.events.emit('host:banned', { host, until: h.bannedUntil, peers: h.peers.size });
    }
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
      const host = this.hostResolver?.(peer);
      if (host !== undefined) this.noteBannedFrom(peer, host);
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

/**
 * The host key of an IP address for host bans: an IPv4 address as is (also when IPv4-mapped), an IPv6 address by
 * its /64 (one machine is routinely given a whole /64). Loopback addresses are never a host key: tests and local
 * clusters run many honest nodes on 127.0.0.1.
 */
export function hostKey(ip: string): string | undefined {
  const u = unmapIp(ip);
  if (u === '::1' || u.startsWith('127.')) return undefined;
  const g = ipv6Groups(u);
  if (g === undefined) return u;
  return g.slice(0, 4).map((x) => x.toString(16)).join(':') + '::/64';
}
