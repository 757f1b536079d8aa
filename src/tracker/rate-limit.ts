/**
 * A token bucket per source (IP address). Time comes from the injected Clock, so tests drive it by hand.
 * Memory is bounded: at most `maxSources` buckets. A bucket is forgotten only once it has refilled (the source has
 * been idle long enough that a fresh bucket is the same as its own); while the longest-idle bucket is still
 * refilling, a new source is refused instead. Evicting a half-empty bucket would hand its source a full one back:
 * flooding the table with other sources would reset any limit (issue 11, attack 11).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Clock } from '../util/clock.js';

/**
 * The source an address counts as, for rate limits and per-source caps. An IPv4 address is one source (an
 * IPv4-mapped IPv6 address is its IPv4 address). An IPv6 address counts by its /64: a single host or home is
 * routinely given a whole /64, so keying on the full address would let one machine appear as 2^64 sources.
 */
export function sourceKey(ip: string): string {
  const zone = ip.indexOf('%');
  let a = (zone >= 0 ? ip.slice(0, zone) : ip).toLowerCase();
  if (!isIPv6(a)) return ip;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4 !== null) {
    if (/^(0{0,4}:){0,5}:?ffff:/.test(a.slice(0, v4.index)) && isIPv4(v4[0])) return v4[0];
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number];
    a = a.slice(0, v4.index) + ((b0 << 8) | b1).toString(16) + ':' + ((b2 << 8) | b3).toString(16);
  }
  const [l, r] = a.split('::') as [string, string | undefined];
  const left = l === '' ? [] : l.split(':');
  const right = r === undefined || r === '' ? [] : r.split(':');
  const groups = r === undefined ? left : [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':') + '::/64';
}

/**
 * The wider prefix an address belongs to, for the per-prefix cap and rate limit: an IPv6 /48 (what a site or a
 * rented server block is given), an IPv4 /24.
 */
export function prefixKey(ip: string): string {
  const src = sourceKey(ip);
  if (isIPv4(src)) return src.split('.').slice(0, 3).join('.') + '.0/24';
  if (!src.endsWith('::/64')) return src;
  return src.slice(0, -'::/64'.length).split(':').slice(0, 3).join(':') + '::/48';
}

interface Bucket {
  tokens: number;
  lastMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  /** New sources refused because every tracked bucket was still refilling. */
  refusedNew = 0;

  constructor(
    private readonly opts: { burst: number; perSec: number; maxSources: number },
    private readonly clock: Clock,
  ) {}

  /** Takes one token for `source`; false when its bucket is empty. */
  take(source: string): boolean {
    const now = this.clock.now();
    let b = this.buckets.get(source);
    if (b === undefined) {
      if (this.buckets.size >= this.opts.maxSources) {
        // the map is in order of last use: the first bucket has been idle longest
        const [oldKey, old] = this.buckets.entries().next().value!;
        if (old.tokens + (Math.max(0, now - old.lastMs) / 1000) * this.opts.perSec < this.opts.burst) {
          this.refusedNew++;
          return false;
        }
        this.buckets.delete(oldKey);
      }
      b = { tokens: this.opts.burst, lastMs: now };
    } else {
      this.buckets.delete(source); // re-inserted below: the map's order is least recently seen first
      const elapsed = Math.max(0, now - b.lastMs);
      b.tokens = Math.min(this.opts.burst, b.tokens + (elapsed / 1000) * this.opts.perSec);
      b.lastMs = now;
    }
    this.buckets.set(source, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Milliseconds until `source` has a token again (for Retry-After). */
  retryAfterMs(source: string): number {
    const b = this.buckets.get(source);
    if (b === undefined) return this.buckets.size >= this.opts.maxSources ? Math.ceil(1000 / this.opts.perSec) : 0;
    if (b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) / this.opts.perSec) * 1000);
  }

  get size(): number {
    return this.buckets.size;
  }
}
