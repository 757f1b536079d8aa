/**
 * What route choice is fed, measured instead of assumed (pure: time and samples are passed in).
 *
 * - Latency: the entry node times every step it sends to a remote hop (request written to response read) and the
 *   hop states how long its own compute took for that step (`compute_us` in the response); the difference is the
 *   network's share, the RPC round trip. Its exponentially weighted moving average per peer (`LatencyTable`) is the
 *   hop's `rttMs`. A peer never measured has none (route.ts then uses DEFAULT_RTT_MS).
 * - Speed: the tokens/s a holder states in its signed HolderRecord (measured at its start through the span it holds;
 *   see pool/measure.ts) gives its compute time per layer for one decode step: 1000 / (tokens/s × layers) ms. It is
 *   also the hop's capacity weight in the draw among near-best chains.
 *
 * `holderViews` joins both with the liveness of heartbeats into the plain HolderView list route.ts chooses over.
 */
import { isQuiet, type HolderView } from './route.js';

/** Weight of a new sample in the moving average; 0.3 forgets a one-off spike within a few steps. */
export const LATENCY_EWMA_ALPHA = 0.3;
/** Samples above this are clamped (a hop that stalls is failed over by its deadline, not priced forever). */
export const LATENCY_SAMPLE_MAX_MS = 10_000;

/** Round trips kept per peer for `floorMs` (the newest). */
export const LATENCY_FLOOR_WINDOW = 16;

/** The moving average of measured round trips per peer; bounded (the least recently measured go first). */
export class LatencyTable {
  private readonly entries = new Map<string, { ewmaMs: number; samples: number; stepMs?: number; recent: number[] }>();

  constructor(
    readonly alpha = LATENCY_EWMA_ALPHA,
    readonly maxEntries = 10_000,
  ) {
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError('alpha must be in (0, 1]');
  }

  /** Adds one round trip (ms); negative or non-finite samples are ignored. Returns the new average. */
  observe(peer: string, ms: number): number | undefined {
    if (!Number.isFinite(ms) || ms < 0) return this.rttMs(peer);
    const x = Math.min(ms, LATENCY_SAMPLE_MAX_MS);
    const e = this.entries.get(peer);
    const recent = e?.recent ?? [];
    recent.push(x);
    if (recent.length > LATENCY_FLOOR_WINDOW) recent.shift();
    const next = e === undefined ? { ewmaMs: x, samples: 1, recent } : { ewmaMs: e.ewmaMs + this.alpha * (x - e.ewmaMs), samples: e.samples + 1, recent, ...(e.stepMs === undefined ? {} : { stepMs: e.stepMs }) };
    this.entries.delete(peer);
    this.entries.set(peer, next);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return next.ewmaMs;
  }

  /**
   * One timed step: its wall time (request written to response read) and the compute time the hop stated. Adds the
   * round trip (wall − stated compute, `roundTripMs`) to `rttMs` and the wall time itself to `stepMs`, which a hop
   * cannot shorten by what it states (route.ts prices and weighs served holders by it).
   */
  observeStep(peer: string, wallMs: number, hopComputeMs: number | undefined): void {
    if (!Number.isFinite(wallMs) || wallMs < 0) return;
    this.observe(peer, roundTripMs(wallMs, hopComputeMs));
    const e = this.entries.get(peer);
    if (e === undefined) return;
    const x = Math.min(wallMs, LATENCY_SAMPLE_MAX_MS);
    e.stepMs = e.stepMs === undefined ? x : e.stepMs + this.alpha * (x - e.stepMs);
  }

  /** The averaged wall time of a step through the peer (ms), undefined until a step was timed with observeStep. */
  stepMs(peer: string): number | undefined {
    return this.entries.get(peer)?.stepMs;
  }

  /**
   * The least of the peer's last LATENCY_FLOOR_WINDOW round trips (ms), undefined below `minSamples` of them: the
   * link's own latency, which load on either end only adds to (the average follows every spike of a busy host: with
   * the average, `--hop-push auto` set pushes up on loopback in 3 blocks of 64 tokens of 6 at load 3, where they are
   * slower; loopback floors stayed 0.17–0.20 ms at load 5, docs/LIMITS.md "Session 30: signed pushes"). What
   * `--hop-push auto` decides by (router/driver.ts PUSH_AUTO_MIN_RTT_MS).
   */
  floorMs(peer: string, minSamples = 4): number | undefined {
    const r = this.entries.get(peer)?.recent;
    if (r === undefined || r.length < minSamples) return undefined;
    return Math.min(...r);
  }

  /** The averaged round trip (ms), undefined until measured. */
  rttMs(peer: string): number | undefined {
    return this.entries.get(peer)?.ewmaMs;
  }

  samples(peer: string): number {
    return this.entries.get(peer)?.samples ?? 0;
  }

  forget(peer: string): void {
    this.entries.delete(peer);
  }
}

/** The network's share of one timed step: wall time minus the compute time the hop stated (never below 0). */
export function roundTripMs(wallMs: number, hopComputeMs: number | undefined): number {
  if (hopComputeMs === undefined || !Number.isFinite(hopComputeMs) || hopComputeMs < 0) return wallMs;
  return Math.max(0, wallMs - hopComputeMs);
}

/** Compute time of one layer for one decode step (ms) from a span's stated tokens/s; undefined when unknown. */
export function msPerLayerOf(tokensPerSec: number | undefined, layers: number): number | undefined {
  if (tokensPerSec === undefined || !Number.isFinite(tokensPerSec) || tokensPerSec <= 0 || layers <= 0) return undefined;
  return 1000 / (tokensPerSec * layers);
}

export interface PeerHolding {
  peerId: string;
  span: { start: number; end: number };
  state: 'alive' | 'stale' | 'dead';
  /** Stated throughput through the span (HolderRecord), 0 or undefined when unknown. */
  tokensPerSec?: number;
  /** Time since its last heartbeat (ms); with `HolderViewInput.heartbeatIntervalMs` it marks late holders quiet. */
  silentMs?: number;
  /** The address block it is connected from (route.ts `HolderView.block`), when known. */
  block?: string;
  /** 'int8' when it holds int8 weights (its signed HolderRecord, else its heartbeats, say so); absent: float32. */
  weights?: 'int8';
}

export interface HolderViewInput {
  peers: readonly PeerHolding[];
  rttMs(peer: string): number | undefined;
  /** The measured wall time of a step through the peer (LatencyTable.stepMs), when known. */
  stepMs?(peer: string): number | undefined;
  /** Added to a stale peer's round trip, so that live replicas come first (a stale peer is still usable). */
  stalePenaltyMs: number;
  /** The heartbeat interval; when given, holders silent too long are `quiet` (route.ts `isQuiet`). */
  heartbeatIntervalMs?: number;
  /**
   * Whether this node has seen the peer serve (default: it has a measured round trip, which only a served step
   * gives). Peers it has not are `unproven` (route.ts `hopCost`): their stated speed is not believed.
   */
  proven?(peer: string): boolean;
  /**
   * Locked stake per peer (base units), from the node's ledger state (ledger/stakes.ts `stakesByPeer`); with it
   * every holder is marked `bonded` (route.ts) when its stake reaches `minBond`, a peer missing from the map has
   * none. Without it `bonded` stays unset (route choice as without stakes).
   */
  stakes?: ReadonlyMap<string, bigint>;
  /** The stake that counts as a bond (default 1 base unit: any stake). */
  minBond?: bigint;
}

/** Route choice's view: dead peers out, stale ones behind, measured latency and speed where known. */
export function holderViews(i: HolderViewInput): HolderView[] {
  const out: HolderView[] = [];
  for (const p of i.peers) {
    if (p.state === 'dead') continue;
    const layers = p.span.end - p.span.start;
    const rtt = i.rttMs(p.peerId);
    const msPerLayer = msPerLayerOf(p.tokensPerSec, layers);
    const v: HolderView = { peerId: p.peerId, span: { start: p.span.start, end: p.span.end }, alive: true };
    if (rtt !== undefined || p.state === 'stale') v.rttMs = (rtt ?? 0) + (p.state === 'stale' ? i.stalePenaltyMs : 0);
    if (msPerLayer !== undefined) v.msPerLayer = msPerLayer;
    if (p.tokensPerSec !== undefined && p.tokensPerSec > 0 && Number.isFinite(p.tokensPerSec)) v.tokensPerSec = p.tokensPerSec;
    if (!(i.proven === undefined ? rtt !== undefined : i.proven(p.peerId))) v.unproven = true;
    if (p.block !== undefined) v.block = p.block;
    if (p.weights === 'int8') v.weights = 'int8';
    if (i.stakes !== undefined) v.bonded = (i.stakes.get(p.peerId) ?? 0n) >= (i.minBond ?? 1n);
    const step = i.stepMs?.(p.peerId);
    if (step !== undefined) v.stepMs = step + (p.state === 'stale' ? i.stalePenaltyMs : 0);
    if (p.state === 'stale' || (i.heartbeatIntervalMs !== undefined && p.silentMs !== undefined && isQuiet(p.silentMs, i.heartbeatIntervalMs))) v.quiet = true;
    out.push(v);
  }
  return out;
}
