/**
 * The chaos run's memory check (scripts/chaos.mjs, issue 12 §2): how much a survivor's RSS grew while it ran in a
 * steady state. Pure: the samples are passed in.
 *
 * RSS is sampled every few seconds from the start of the fault phase (length P) until the check. Growth is the
 * median of an end window over the median of a baseline window (medians, so that one garbage-collection cycle, tens
 * of MiB on a 250 MiB node, neither hides nor fakes a trend):
 *
 *   from     = max(0.2·P, ready)        ready: when the node's state has its full size (0 for a serving node)
 *   baseline = samples in [from, from + 0.2·P)
 *   end      = samples in [from + 0.5·P, from + 0.8·P]
 *
 * For a node ready from the start this is the old rule (20-40 % of the phase against 70-100 %). Why `ready`: a
 * trainer's outer-sync state (the weights at the round start, momentum, error feedback and the last KEPT_ROUNDS
 * closed rounds, about 20 MiB per copy of the chaos model) arrives with its first outer round and grows until the
 * kept-rounds window is full, then stays (sampled for 37 minutes and 8 rounds: a plateau, not a leak). In a 2-minute
 * run under load that plateau landed between the two windows and read as +21 %. Measuring from the point where the
 * window is full compares a trainer's memory with itself at the same state size, over the same length of time as a
 * serving node: a leak (anything that grows with time or requests) still shows in full, only the one-off arrival of
 * the state is left out. The caller keeps sampling past the phase until every end window is past.
 */

export interface RssSample {
  /** Time since the fault phase began (ms). */
  tMs: number;
  kb: number;
}

export interface GrowthWindows {
  from: number;
  baseline: [number, number];
  end: [number, number];
}

/** Minimum samples in each window; fewer give no figure (`growth` null with a reason). */
export const MIN_WINDOW_SAMPLES = 3;

/** The windows (ms since the phase start) for a node whose state has its full size from `readyMs` on. */
export function growthWindows(phaseMs: number, readyMs = 0): GrowthWindows {
  const from = Math.max(0.2 * phaseMs, readyMs);
  return { from, baseline: [from, from + 0.2 * phaseMs], end: [from + 0.5 * phaseMs, from + 0.8 * phaseMs] };
}

function median(xs: number[]): number | undefined {
  const v = [...xs].sort((a, b) => a - b);
  return v.length === 0 ? undefined : v[Math.floor(v.length / 2)];
}

export interface GrowthResult {
  baseKb: number | null;
  endKb: number | null;
  /** end / base − 1, or null when a window had fewer than MIN_WINDOW_SAMPLES samples. */
  growth: number | null;
  windows: GrowthWindows;
  reason?: string;
}

/** The growth of one node's RSS over its steady state (see the module comment). */
export function memoryGrowth(samples: readonly RssSample[], phaseMs: number, readyMs = 0): GrowthResult {
  const w = growthWindows(phaseMs, readyMs);
  const base = samples.filter((s) => s.tMs >= w.baseline[0] && s.tMs < w.baseline[1]).map((s) => s.kb);
  const end = samples.filter((s) => s.tMs >= w.end[0] && s.tMs <= w.end[1]).map((s) => s.kb);
  const b = median(base);
  const e = median(end);
  if (base.length < MIN_WINDOW_SAMPLES || end.length < MIN_WINDOW_SAMPLES || b === undefined || e === undefined || b <= 0) {
    return { baseKb: b ?? null, endKb: e ?? null, growth: null, windows: w, reason: `too few samples (baseline ${base.length}, end ${end.length}; ${MIN_WINDOW_SAMPLES} needed)` };
  }
  return { baseKb: b, endKb: e, growth: e / b - 1, windows: w };
}
