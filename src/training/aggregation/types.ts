/**
 * Robust aggregation of pseudo-gradients: the shared types.
 *
 * A `Contribution` is one holder's Δ for one layer (after decompression). An aggregator takes the contributions of
 * one (round, layer) and returns the Δ to apply with the outer step plus a record of what it used: the ledger turns
 * these records into training receipts, so every contribution appears in it exactly once, used or rejected, with a
 * reason. Contributions are put in canonical order (by id) before anything else, so every holder that receives
 * the same set computes bit-identical results whatever order they arrived in.
 */
export const AGGREGATORS = ['mean', 'trimmed-mean', 'median', 'krum', 'multi-krum', 'geometric-median', 'centered-clip', 'gauntlet'] as const;
export type AggregatorName = (typeof AGGREGATORS)[number];

export interface Contribution {
  /** Who sent it: the sender's peer id (unique within one aggregation). */
  id: string;
  /** Δ for the layer, n elements. */
  delta: Float32Array;
}

export type RejectReason =
  /** NaN or ±Infinity somewhere in Δ. */
  | 'non_finite'
  /** Δ has the wrong element count for the layer. */
  | 'wrong_size'
  /** A second contribution with the same id (only the first, in canonical order, counts). */
  | 'duplicate'
  /** Krum / Multi-Krum: not among the selected lowest scores. */
  | 'krum_score'
  /** Gauntlet: applying it made the held-out loss worse (or not better), or its loss was not finite. */
  | 'harmful';

export interface ContributionRecord {
  id: string;
  used: boolean;
  reason?: RejectReason;
  /**
   * How much of it went into the result, in [0, 1]: 1 for a plain mean member; the share of coordinates kept by a
   * trimmed mean or median; the clipping factor of centered clipping; the normalised Weiszfeld weight × n of the
   * geometric median (capped at 1).
   */
  weight: number;
  /** Aggregator-specific figure: Krum score, Gauntlet loss improvement, distance to the result, … */
  score?: number;
}

export interface AggregationRecord {
  aggregator: AggregatorName;
  /** Contributions received (after none were dropped). */
  received: number;
  used: number;
  rejected: number;
  /** One entry per contribution received, in canonical (id) order. */
  contributions: ContributionRecord[];
}

export interface AggregationResult {
  /** The aggregated Δ; null when no contribution survived (the layer keeps θ_start this round). */
  delta: Float32Array | null;
  record: AggregationRecord;
}

export interface AggregateOptions {
  /**
   * Fraction of contributions assumed Byzantine, β: trimmed mean drops ⌊β·n⌋ values at each end of every
   * coordinate; Krum assumes f = ⌊β·n⌋. Default 1/3 (so 1 of 4 and 2 of 6 are covered).
   */
  byzantineFraction?: number;
  /** Multi-Krum: how many to average (default n − f). */
  multiKrumM?: number;
  /** Geometric median: Weiszfeld iterations and smoothing ν (default 100 and 1e-9·(1 + median distance)). */
  maxIterations?: number;
  /** Centered clipping: radius τ (default the median distance to the starting centre) and iterations (default 3). */
  clipRadius?: number;
  clipIterations?: number;
  /** Centered clipping: the starting centre (e.g. last round's aggregate); default the coordinate-wise median. */
  center?: Float32Array;
  /**
   * Gauntlet: the held-out loss after applying a candidate Δ (the caller applies it with the outer step to a copy
   * of θ_start and evaluates a held-out batch), and the loss before (θ_start). Required for 'gauntlet'.
   */
  lossAfter?: (delta: Float32Array) => number;
  baseLoss?: number;
  /** Gauntlet: how to combine the kept ones (default 'trimmed-mean'). */
  gauntletCombine?: 'mean' | 'trimmed-mean';
}
