/**
 * Per-key request budgets: a token bucket per key that holds up to `perMin` requests and refills at `perMin` per
 * minute, so a key may burst its minute's budget and then goes at the steady rate. Buckets live in a bounded map
 * (the least recently used is dropped past `maxKeys`; a dropped key starts again full, which is only generous).
 */
export interface RateDecision {
  ok: boolean;
  /** Seconds until one request is allowed again (0 when ok). */
  retryAfterS: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly now: () => number = Date.now, private readonly maxKeys = 10_000) {}

  take(key: string, perMin: number): RateDecision {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) b = { tokens: perMin, at: t };
    else this.buckets.delete(key); // re-inserted below: the map's order is recency
    b.tokens = Math.min(perMin, b.tokens + ((t - b.at) * perMin) / 60_000);
    b.at = t;
    let decision: RateDecision;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      decision = { ok: true, retryAfterS: 0 };
    } else {
      decision = { ok: false, retryAfterS: Math.max(1, Math.ceil(((1 - b.tokens) * 60) / perMin)) };
    }
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    return decision;
  }
}
