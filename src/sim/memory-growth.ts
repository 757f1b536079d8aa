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
 *
 * Bounded state that moves during the run is set apart (`setApart`): each sample may carry `boundedKb`, memory the
 * node reports holding under a quota, and the growth is then that of RSS − boundedKb, over the samples that carry it.
 * The chaos run passes a trainer's kept closed rounds (training/keep.ts: at most KEPT_ROUNDS + PIN_LIMITS.maxRounds
 * snapshots of its span; a joiner's pins keep a round past the window for a minute). Why: in a CI run a trainer whose
 * partner was killed and restarted twice kept 1-4 more 19 MiB snapshots for the rejoining partner's pins during the
 * end window and read +26.4 % (385 -> 487 MiB) with nothing leaking. A quota'd store is not a leak; what it holds is
 * bounded by its own tests (unit/training/keep, attacks/round-pins), and anything else still counts in full.
 *
 * A trainer's windows compare their lowest samples (`floor`), not their medians. Its RSS holds, beside its live
 * memory, garbage that comes and goes within seconds: the round boundaries' snapshot and contribution buffers (tens
 * of MiB each) wait in V8's external memory for a collection and then, freed, in the C heap for the next trim
 * (node/heap-trim.ts, every 10 s; util/malloc-policy.ts keeps freed buffers below 32 MiB in the heap between trims).
 * Sampled every second, a trainer of the 2-minute run swung 376-505 MiB, with 90 MiB more of it in the end window
 * than in the baseline while a partner caught up rounds (+30.3 % on medians, after the kept rounds were set apart;
 * +3 % floor to floor). RSS never falls below the live memory, so the floor is the live memory plus the least garbage
 * seen in the window, and a leak raises it like every other sample. The end window is longer (0.3·P against 0.2·P),
 * so its floor leans low by at most one swing's depth: a small bias towards under-reading, stated here.
 */

export interface RssSample {
  /** Time since the fault phase began (ms). */
  tMs: number;
  kb: number;
  /** Bounded state the node reported holding at the sample (KiB), set apart with `setApart`. */
  boundedKb?: number;
}

export interface GrowthOptions {
  /** Measure RSS − boundedKb, over the samples that carry boundedKb (see the module comment). */
  setApart?: boolean;
  /** Compare the windows' lowest samples instead of their medians (see the module comment). */
  floor?: boolean;
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
export function memoryGrowth(samples: readonly RssSample[], phaseMs: number, readyMs = 0, opts: GrowthOptions = {}): GrowthResult {
  const w = growthWindows(phaseMs, readyMs);
  const usable = opts.setApart === true ? samples.filter((s) => s.boundedKb !== undefined && Number.isFinite(s.boundedKb)) : samples;
  const value = (s: RssSample): number => (opts.setApart === true ? s.kb - s.boundedKb! : s.kb);
  const base = usable.filter((s) => s.tMs >= w.baseline[0] && s.tMs < w.baseline[1]).map(value);
  const end = usable.filter((s) => s.tMs >= w.end[0] && s.tMs <= w.end[1]).map(value);
  const stat = opts.floor === true ? (xs: number[]) => (xs.length === 0 ? undefined : Math.min(...xs)) : median;
  const b = stat(base);
  const e = stat(end);
  if (base.length < MIN_WINDOW_SAMPLES || end.length < MIN_WINDOW_SAMPLES || b === undefined || e === undefined || b <= 0) {
    return { baseKb: b ?? null, endKb: e ?? null, growth: null, windows: w, reason: `too few samples (baseline ${base.length}, end ${end.length}; ${MIN_WINDOW_SAMPLES} needed)` };
  }
  return { baseKb: b, endKb: e, growth: e / b - 1, windows: w };
}
