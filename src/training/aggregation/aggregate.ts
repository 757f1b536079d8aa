/**
 * The aggregators (`--aggregator`), each a pure function of the contributions of one (round, layer):
 *
 *   mean              Σ Δ_i / k.
 *   trimmed-mean      per coordinate: sort the k values, drop b = ⌊β·k⌋ at each end (b ≤ (k−1)/2), mean of the rest.
 *   median            per coordinate: the middle value (mean of the two middle values when k is even).
 *   krum              Blanchard et al. 2017: score_i = Σ of the k − f − 2 smallest ‖Δ_i − Δ_j‖² (at least 1 term),
 *                     f = ⌊β·k⌋; the lowest score wins.
 *   multi-krum        the m = k − f lowest scores (or `multiKrumM`), averaged.
 *   geometric-median  Weiszfeld iterations from the mean (Pillutla et al.'s RFA), weights 1/max(ν, ‖Δ_i − z‖).
 *   centered-clip     Karimireddy et al. 2021: v ← v + (1/k)·Σ (Δ_i − v)·min(1, τ/‖Δ_i − v‖), 3 iterations from the
 *                     coordinate-wise median (or a given centre), τ = median distance to the start unless given.
 *   gauntlet          score each Δ_i by the held-out loss improvement it causes on its own (Gauntlet, arXiv
 *                     2505.21684), drop those that do not improve it (or whose loss is not finite), combine the rest.
 *
 * Before any of them: contributions are put in canonical order (by id, code-unit order) and those with the wrong
 * size, a non-finite value or a repeated id are rejected, so NaN/Inf never reaches an aggregate. Ties (equal values,
 * equal scores) are broken by that canonical order, so the record is deterministic too. Sums run in float64 in
 * canonical order and the result is rounded to float32 once per element: bit-identical on every holder.
 */
import { InvalidArgumentError } from '../../util/errors.js';
import {
  AGGREGATORS,
  type AggregateOptions,
  type AggregationRecord,
  type AggregationResult,
  type AggregatorName,
  type Contribution,
  type ContributionRecord,
} from './types.js';

/** Default assumed Byzantine fraction β. */
export const DEFAULT_BYZANTINE_FRACTION = 1 / 3;

export function isAggregatorName(s: string): s is AggregatorName {
  return (AGGREGATORS as readonly string[]).includes(s);
}

function allFinite(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return false;
  return true;
}

interface Prepared {
  valid: Contribution[];
  /** Record per valid contribution, same order as `valid`. */
  validRecords: ContributionRecord[];
  records: ContributionRecord[];
}

function prepare(contributions: readonly Contribution[], n: number): Prepared {
  const sorted = [...contributions].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const records: ContributionRecord[] = [];
  const valid: Contribution[] = [];
  const validRecords: ContributionRecord[] = [];
  const seen = new Set<string>();
  for (const c of sorted) {
    let reason: ContributionRecord['reason'];
    if (seen.has(c.id)) reason = 'duplicate';
    else if (!(c.delta instanceof Float32Array) || c.delta.length !== n) reason = 'wrong_size';
    else if (!allFinite(c.delta)) reason = 'non_finite';
    seen.add(c.id);
    const r: ContributionRecord = reason === undefined ? { id: c.id, used: true, weight: 1 } : { id: c.id, used: false, reason, weight: 0 };
    records.push(r);
    if (reason === undefined) {
      valid.push(c);
      validRecords.push(r);
    }
  }
  return { valid, validRecords, records };
}

function finish(aggregator: AggregatorName, records: ContributionRecord[], delta: Float32Array | null): AggregationResult {
  const used = records.filter((r) => r.used).length;
  const record: AggregationRecord = { aggregator, received: records.length, used, rejected: records.length - used, contributions: records };
  return { delta, record };
}

function trimCount(k: number, beta: number): number {
  return Math.max(0, Math.min(Math.floor(beta * k), Math.floor((k - 1) / 2)));
}

/** Plain mean of the given contributions (float64 sums in order, one rounding). */
function meanOf(xs: readonly Float32Array[], n: number): Float32Array {
  const acc = new Float64Array(n);
  for (const x of xs) for (let i = 0; i < n; i++) acc[i] += x[i]!;
  const out = new Float32Array(n);
  const k = xs.length;
  for (let i = 0; i < n; i++) out[i] = acc[i]! / k;
  return out;
}

/**
 * Per coordinate, the indices of the k contributions in ascending order of value (ties: lower canonical index
 * first), then `reduce(order, values)`. Insertion sort: k is small (replicas of one layer).
 */
function perCoordinate(xs: readonly Float32Array[], n: number, reduce: (order: Int32Array, vals: Float64Array) => number, out: Float32Array): void {
  const k = xs.length;
  const order = new Int32Array(k);
  const vals = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const v = xs[j]![i]!;
      let p = j;
      while (p > 0 && vals[p - 1]! > v) {
        vals[p] = vals[p - 1]!;
        order[p] = order[p - 1]!;
        p--;
      }
      vals[p] = v;
      order[p] = j;
    }
    out[i] = reduce(order, vals);
  }
}

function trimmedMean(xs: readonly Float32Array[], n: number, beta: number, recs: ContributionRecord[]): Float32Array {
  const k = xs.length;
  const b = trimCount(k, beta);
  const kept = new Float64Array(k);
  const out = new Float32Array(n);
  perCoordinate(
    xs,
    n,
    (order, vals) => {
      let s = 0;
      // sum in sorted order (ties broken by canonical index): the same set gives the same bits in any arrival order
      for (let p = b; p < k - b; p++) {
        s += vals[p]!;
        kept[order[p]!]!++;
      }
      return s / (k - 2 * b);
    },
    out,
  );
  recs.forEach((r, j) => (r.weight = n === 0 ? 1 : kept[j]! / n));
  return out;
}

function median(xs: readonly Float32Array[], n: number, recs: ContributionRecord[]): Float32Array {
  const k = xs.length;
  const kept = new Float64Array(k);
  const out = new Float32Array(n);
  perCoordinate(
    xs,
    n,
    (order, vals) => {
      if (k % 2 === 1) {
        kept[order[(k - 1) / 2]!]!++;
        return vals[(k - 1) / 2]!;
      }
      kept[order[k / 2 - 1]!]!++;
      kept[order[k / 2]!]!++;
      return (vals[k / 2 - 1]! + vals[k / 2]!) / 2;
    },
    out,
  );
  recs.forEach((r, j) => (r.weight = n === 0 ? 1 : kept[j]! / n));
  return out;
}

function sqDist(a: Float32Array, b: Float32Array | Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    s += d * d;
  }
  return s;
}

function krum(xs: readonly Float32Array[], n: number, beta: number, m: number | 'auto' | 1, recs: ContributionRecord[]): Float32Array {
  const k = xs.length;
  const f = Math.floor(beta * k);
  const neighbours = Math.max(1, k - f - 2);
  const d = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) d[i * k + j] = d[j * k + i] = sqDist(xs[i]!, xs[j]!);
  const scores = xs.map((_, i) => {
    if (k === 1) return 0;
    const row: number[] = [];
    for (let j = 0; j < k; j++) if (j !== i) row.push(d[i * k + j]!);
    row.sort((a, b) => a - b);
    let s = 0;
    for (let t = 0; t < Math.min(neighbours, row.length); t++) s += row[t]!;
    return s;
  });
  const select = m === 'auto' ? Math.max(1, k - f) : Math.max(1, Math.min(k, m));
  const ranked = scores.map((s, i) => ({ s, i })).sort((a, b) => a.s - b.s || a.i - b.i);
  const chosen = new Set(ranked.slice(0, select).map((r) => r.i));
  recs.forEach((r, i) => {
    r.score = scores[i]!;
    if (!chosen.has(i)) {
      r.used = false;
      r.reason = 'krum_score';
      r.weight = 0;
    }
  });
  return meanOf(
    xs.filter((_, i) => chosen.has(i)),
    n,
  );
}

function geometricMedian(xs: readonly Float32Array[], n: number, maxIter: number, recs: ContributionRecord[]): Float32Array {
  const k = xs.length;
  const z = new Float64Array(n);
  for (const x of xs) for (let i = 0; i < n; i++) z[i] += x[i]! / k;
  const dist = new Float64Array(k);
  const dists = (): void => {
    for (let j = 0; j < k; j++) dist[j] = Math.sqrt(sqDist(xs[j]!, z));
  };
  dists();
  const sortedD = [...dist].sort((a, b) => a - b);
  const nu = 1e-9 * (1 + sortedD[Math.floor((k - 1) / 2)]!);
  const w = new Float64Array(k);
  const next = new Float64Array(n);
  for (let it = 0; it < maxIter; it++) {
    let wsum = 0;
    for (let j = 0; j < k; j++) {
      w[j] = 1 / Math.max(nu, dist[j]!);
      wsum += w[j]!;
    }
    next.fill(0);
    for (let j = 0; j < k; j++) {
      const a = w[j]! / wsum;
      const x = xs[j]!;
      for (let i = 0; i < n; i++) next[i] += a * x[i]!;
    }
    let moved = 0;
    let norm = 0;
    for (let i = 0; i < n; i++) {
      const dd = next[i]! - z[i]!;
      moved += dd * dd;
      norm += next[i]! * next[i]!;
      z[i] = next[i]!;
    }
    dists();
    if (Math.sqrt(moved) <= 1e-7 * Math.max(Math.sqrt(norm), 1e-30)) break;
  }
  let wsum = 0;
  for (let j = 0; j < k; j++) wsum += 1 / Math.max(nu, dist[j]!);
  recs.forEach((r, j) => {
    r.weight = Math.min(1, (k * (1 / Math.max(nu, dist[j]!))) / wsum);
    r.score = dist[j]!;
  });
  return Float32Array.from(z);
}

function centeredClip(xs: readonly Float32Array[], n: number, o: AggregateOptions, recs: ContributionRecord[]): Float32Array {
  const k = xs.length;
  let v: Float64Array;
  if (o.center !== undefined) {
    if (o.center.length !== n || !allFinite(o.center)) throw new InvalidArgumentError(`centered-clip: the centre must have ${n} finite elements`);
    v = Float64Array.from(o.center);
  } else {
    v = Float64Array.from(median(xs, n, recs.map((r) => ({ ...r }))));
  }
  const dist = xs.map((x) => Math.sqrt(sqDist(x, v)));
  let tau = o.clipRadius;
  if (tau === undefined) tau = [...dist].sort((a, b) => a - b)[Math.floor((k - 1) / 2)]!;
  if (!(tau >= 0) || !Number.isFinite(tau)) throw new InvalidArgumentError(`centered-clip: radius ${tau} must be a finite number ≥ 0`);
  const iters = o.clipIterations ?? 3;
  const scale = new Float64Array(k);
  for (let it = 0; it < iters; it++) {
    const step = new Float64Array(n);
    for (let j = 0; j < k; j++) {
      const dj = it === 0 ? dist[j]! : Math.sqrt(sqDist(xs[j]!, v));
      scale[j] = dj === 0 ? 1 : Math.min(1, tau / dj);
      const a = scale[j]! / k;
      const x = xs[j]!;
      for (let i = 0; i < n; i++) step[i] += a * (x[i]! - v[i]!);
    }
    for (let i = 0; i < n; i++) v[i] += step[i]!;
  }
  recs.forEach((r, j) => {
    r.weight = scale[j]!;
    r.score = dist[j]!;
  });
  return Float32Array.from(v);
}

function gauntlet(valid: readonly Contribution[], n: number, o: AggregateOptions, recs: ContributionRecord[]): Float32Array | null {
  if (o.lossAfter === undefined || o.baseLoss === undefined || !Number.isFinite(o.baseLoss)) {
    throw new InvalidArgumentError('gauntlet aggregation needs lossAfter and a finite baseLoss (a held-out batch)');
  }
  const kept: Float32Array[] = [];
  const keptRecs: ContributionRecord[] = [];
  valid.forEach((c, j) => {
    const loss = o.lossAfter!(c.delta);
    const improvement = o.baseLoss! - loss;
    const r = recs[j]!;
    r.score = Number.isFinite(improvement) ? improvement : -Infinity;
    if (!Number.isFinite(loss) || !(improvement > 0)) {
      r.used = false;
      r.reason = 'harmful';
      r.weight = 0;
    } else {
      kept.push(c.delta);
      keptRecs.push(r);
    }
  });
  if (kept.length === 0) return null;
  if ((o.gauntletCombine ?? 'mean') === 'trimmed-mean') return trimmedMean(kept, n, o.byzantineFraction ?? DEFAULT_BYZANTINE_FRACTION, keptRecs);
  return meanOf(kept, n);
}

/**
 * Aggregates the contributions for a layer of n elements. Throws InvalidArgumentError for an unknown aggregator
 * or bad options; never throws for bad contributions (they are rejected in the record).
 */
export function aggregate(name: AggregatorName, contributions: readonly Contribution[], n: number, o: AggregateOptions = {}): AggregationResult {
  if (!isAggregatorName(name)) throw new InvalidArgumentError(`unknown aggregator "${String(name)}" (known: ${AGGREGATORS.join(', ')})`);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`aggregate: layer size ${n} must be an integer ≥ 0`);
  const beta = o.byzantineFraction ?? DEFAULT_BYZANTINE_FRACTION;
  if (!(beta >= 0 && beta < 0.5)) throw new InvalidArgumentError(`aggregate: byzantineFraction ${beta} must be in [0, 0.5)`);
  const { valid, validRecords, records } = prepare(contributions, n);
  if (valid.length === 0) return finish(name, records, null);
  const xs = valid.map((c) => c.delta);
  let delta: Float32Array | null;
  switch (name) {
    case 'mean':
      delta = meanOf(xs, n);
      break;
    case 'trimmed-mean':
      delta = trimmedMean(xs, n, beta, validRecords);
      break;
    case 'median':
      delta = median(xs, n, validRecords);
      break;
    case 'krum':
      delta = krum(xs, n, beta, 1, validRecords);
      break;
    case 'multi-krum':
      delta = krum(xs, n, beta, o.multiKrumM ?? 'auto', validRecords);
      break;
    case 'geometric-median':
      delta = geometricMedian(xs, n, o.maxIterations ?? 100, validRecords);
      break;
    case 'centered-clip':
      delta = centeredClip(xs, n, o, validRecords);
      break;
    case 'gauntlet':
      delta = gauntlet(valid, n, o, validRecords);
      break;
  }
  return finish(name, records, delta);
}
