/**
 * Paired timing for the serving benches (issue 8 §5 `chain_ratio_4`, `batch8_ratio`): the arms of a ratio (1 and 4
 * hops; 1 and 8 streams) are set up together and timed in alternating blocks, so that each block's ratio compares
 * two runs a second apart, and the figure is the median of the block ratios.
 *
 * Why: a batch-1 decode of the 12x768 preset is memory-bound, and this host's memory bandwidth is not steady (the
 * same reader read ~60 GB/s and a minute later ~37 GB/s, session 22). Until session 21 the chain section timed 1, 2
 * and 4 hops one after another, once each, ~0.5 s apiece, so its ratio mixed the chains' cost with whatever the
 * memory did between them (docs/LIMITS.md "Session 22: chain and batch ratios, paired"). src/protocols/bench.ts
 * (p2p-rpc) and the serving-hop section (hopRttAB) pair their arms the same way.
 *
 * Pure functions over plain data, plus `alternate`, which only sequences the caller's runs.
 */

/** What one timed block of one arm gave: decoded token intervals and the wall time they took. */
export interface Block {
  /** Token-to-token intervals timed (tokens after a stream's first; summed over streams for an aggregate). */
  intervals: number;
  /** Wall time of those intervals (ms). */
  ms: number;
}

/** Tokens per second of one block. */
export function blockTokS(b: Block): number {
  return b.ms > 0 ? (b.intervals * 1000) / b.ms : 0;
}

/** All blocks of an arm pooled: every interval over all their wall time (a slow block weighs by its length). */
export function pooledTokS(blocks: readonly Block[]): number {
  const ms = blocks.reduce((a, b) => a + b.ms, 0);
  return ms > 0 ? (blocks.reduce((a, b) => a + b.intervals, 0) * 1000) / ms : 0;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface RatioSpread {
  /** Median of the block-by-block ratios: the figure reported. */
  median: number;
  min: number;
  max: number;
  /** Pooled numerator ÷ pooled denominator (all blocks' rates as pooled tokens/s). */
  pooled: number;
  ratios: number[];
}

/** Block b of `num` over block b of `den` (the same round of the alternation), their median, spread and pooled ratio. */
export function pairedRatio(num: readonly number[], den: readonly number[], pooledNum: number, pooledDen: number): RatioSpread {
  if (num.length !== den.length || num.length === 0) throw new RangeError(`paired blocks differ in number: ${num.length} vs ${den.length}`);
  const ratios = num.map((x, i) => x / den[i]!);
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), pooled: pooledNum / pooledDen, ratios };
}

/**
 * The order of the arms in block `b`: rotated by one each block, and reversed in every other round of rotations,
 * so that over 2 × n blocks each arm runs in each position equally often and before and after each other arm
 * equally often (3 arms, 6 blocks: all six orders; 2 arms: A B, B A, B A, A B, …).
 */
export function blockOrder<T>(arms: readonly T[], b: number): T[] {
  const n = arms.length;
  const r = b % n;
  const rotated = [...arms.slice(r), ...arms.slice(0, r)];
  return Math.floor(b / n) % 2 === 1 ? rotated.reverse() : rotated;
}

/** Runs `blocks` rounds of the arms, each round in blockOrder, one arm at a time (never two at once). */
export async function alternate<T>(arms: readonly T[], blocks: number, run: (arm: T, block: number) => Promise<void>): Promise<void> {
  for (let b = 0; b < blocks; b++) for (const arm of blockOrder(arms, b)) await run(arm, b);
}

/**
 * Process CPU (ms) per second of wall time while nothing is asked of the nodes: the median of `parts` windows
 * filling `ms` in all, so that one window holding a garbage collection left over from the timed blocks (or one
 * slice of another process's burst on a shared machine) does not set the figure (single 2 s windows after the
 * chain section's blocks read 12–54 ms/s at load 10–14, session 22).
 */
export async function idleCpuMedian(ms: number, parts = 4): Promise<number> {
  const rates: number[] = [];
  for (let i = 0; i < parts; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, ms / parts));
    const c = process.cpuUsage(c0);
    rates.push((c.user + c.system) / 1000 / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}
