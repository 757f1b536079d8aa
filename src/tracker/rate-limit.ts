/**
 * A token bucket per source (IP address). Time comes from the injected Clock, so tests drive it by hand.
 * Memory is bounded: at most `maxSources` buckets, and the one idle longest is forgotten first (a forgotten source
 * starts again with a full bucket, which is the same as a source that has been idle long enough).
 */
import type { Clock } from '../util/clock.js';

interface Bucket {
  tokens: number;
  lastMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly opts: { burst: number; perSec: number; maxSources: number },
    private readonly clock: Clock,
  ) {}

  /** Takes one token for `source`; false when its bucket is empty. */
  take(source: string): boolean {
    const now = this.clock.now();
    let b = this.buckets.get(source);
    if (b === undefined) {
      b = { tokens: this.opts.burst, lastMs: now };
      if (this.buckets.size >= this.opts.maxSources) this.buckets.delete(this.buckets.keys().next().value!);
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
    if (b === undefined || b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) / this.opts.perSec) * 1000);
  }

  get size(): number {
    return this.buckets.size;
  }
}
