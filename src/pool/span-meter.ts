/**
 * A rate on the `checkpoint` requests that can cost their holder a hash of many layers (session 23, the attack
 * pass's finding 7).
 *
 * A head (or stream) of a sub-span of the held weights names the span hash and the SHA-256 of the sub-span's
 * payload. The span hash is made of per-layer hashes (model/hash.ts), but a SHA-256 of concatenated bytes is not
 * made of the SHA-256s of its parts: the figures of a span [a, b) cost one pass over its bytes unless they are cached.
 * The holder caches every one-layer unit's figures for its weights' version (./transfer.ts, compute/served-params.ts)
 * and honest downloaders ask only one-layer units (./transfer.ts downloadSpan: spanUnits). A span of more than one
 * layer is asked only by someone else: a held span of n layers has n(n+1)/2 sub-spans, more than the holder caches,
 * so a stranger asking distinct ones cost a hash of up to the whole held span (hundreds of MiB, in the compute
 * worker, beside the decode) for each request of ~100 bytes. Such requests are now taken at a bounded rate per peer
 * and across all peers (fresh keys each get a peer's share, but not more than the whole), and past it answered with
 * the typed CheckpointBusyError; a span whose figures are cached costs nothing and is not counted where the holder
 * can tell (weights served from a snapshot on the main thread).
 *
 * Token buckets over plain data: `burst` requests at once, then one per `everyMs`.
 */
import { NeuroShardError } from '../util/errors.js';

export interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

export interface SpanMeterLimits {
  /** Multi-layer requests one peer may make at once, then one per `peerEveryMs`. */
  peerBurst: number;
  peerEveryMs: number;
  /** The same across all peers. */
  allBurst: number;
  allEveryMs: number;
  /** Most peers with a bucket (the oldest is forgotten: a fresh key gets a fresh bucket anyway; `all` bounds them). */
  maxPeers: number;
}

/** One hash of up to the held span per 5 s in all (~≤ 10 % of a core for a 12x768 whole-model holder). */
export const SPAN_METER_LIMITS: SpanMeterLimits = { peerBurst: 4, peerEveryMs: 15_000, allBurst: 8, allEveryMs: 5_000, maxPeers: 1024 };

/** The bucket refilled to `now` (pure). */
export function refill(b: Bucket | undefined, burst: number, everyMs: number, now: number): Bucket {
  if (b === undefined) return { tokens: burst, at: now };
  const dt = Math.max(0, now - b.at);
  return { tokens: Math.min(burst, b.tokens + dt / everyMs), at: Math.max(b.at, now) };
}

/** A holder was asked for more uncached multi-layer figures than it computes for now; retry later. No one's fault. */
export class CheckpointBusyError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('CHECKPOINT_BUSY', message, { fault: 'local', meta });
  }
}

/** The per-peer and overall buckets of one holder. */
export class SpanMeter {
  private readonly peers = new Map<string, Bucket>();
  private all: Bucket | undefined;
  /** Requests refused so far (diagnostics, tests). */
  refused = 0;

  constructor(
    private readonly limits: SpanMeterLimits = SPAN_METER_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one request of `peer` if both its bucket and the overall one have a token; else throws CheckpointBusyError. */
  take(peer: string): void {
    const t = this.now();
    const l = this.limits;
    const mine = refill(this.peers.get(peer), l.peerBurst, l.peerEveryMs, t);
    const all = refill(this.all, l.allBurst, l.allEveryMs, t);
    if (mine.tokens < 1 || all.tokens < 1) {
      this.refused++;
      this.remember(peer, mine);
      this.all = all;
      const waitMs = Math.ceil(Math.max(mine.tokens < 1 ? (1 - mine.tokens) * l.peerEveryMs : 0, all.tokens < 1 ? (1 - all.tokens) * l.allEveryMs : 0));
      throw new CheckpointBusyError(`checkpoint: too many requests for spans of several layers (one-layer units are not limited); retry in ${waitMs} ms`, { retryInMs: waitMs });
    }
    this.remember(peer, { tokens: mine.tokens - 1, at: mine.at });
    this.all = { tokens: all.tokens - 1, at: all.at };
  }

  private remember(peer: string, b: Bucket): void {
    this.peers.delete(peer);
    if (this.peers.size >= this.limits.maxPeers) this.peers.delete(this.peers.keys().next().value!);
    this.peers.set(peer, b);
  }
}
