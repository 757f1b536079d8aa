import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { growthWindows, memoryGrowth, type RssSample } from '../../../src/sim/memory-growth.js';

const PHASE = 120_000;
const MB = 1024;

/** One sample every 5 s over [0, untilMs], RSS from `mb(tMs)`. */
function series(untilMs: number, mb: (tMs: number) => number): RssSample[] {
  const out: RssSample[] = [];
  for (let t = 0; t <= untilMs; t += 5_000) out.push({ tMs: t, kb: Math.round(mb(t) * MB) });
  return out;
}

describe('chaos memory growth (src/sim/memory-growth.ts)', () => {
  it('keeps the old windows for a node ready from the start (20-40 % against 70-100 % of the phase)', () => {
    assert.deepEqual(growthWindows(PHASE), { from: 24_000, baseline: [24_000, 48_000], end: [84_000, 120_000] });
    assert.deepEqual(growthWindows(PHASE, 60_000), { from: 60_000, baseline: [60_000, 84_000], end: [120_000, 156_000] });
  });

  // a trainer in a 2-minute run: 200 MiB, its outer-sync state (+45 MiB in steps with the kept rounds) arrives from
  // 40 s to 70 s and stays; its window is full at 70 s
  const plateau = (t: number): number => 200 + (t < 40_000 ? 0 : t >= 70_000 ? 45 : ((t - 40_000) / 30_000) * 45) + ((t / 5_000) % 2) * 3;

  it('reads a plateau that arrives between the windows as growth when measured from 20 % (the old rule)', () => {
    const r = memoryGrowth(series(200_000, plateau), PHASE, 0);
    assert.ok(r.growth !== null && r.growth > 0.2, `old rule: ${r.growth}`);
  });

  it('measured from the point where the state is full, a plateau is no growth', () => {
    const r = memoryGrowth(series(200_000, plateau), PHASE, 70_000);
    assert.ok(r.growth !== null && Math.abs(r.growth) < 0.02, `new rule: ${r.growth}`);
  });

  it('still sees a leak that goes on after the state is full', () => {
    // the same plateau, then +0.5 MiB/s for the rest of the run
    const leak = (t: number): number => plateau(t) + (t > 70_000 ? ((t - 70_000) / 1000) * 0.5 : 0);
    const r = memoryGrowth(series(200_000, leak), PHASE, 70_000);
    assert.ok(r.growth !== null && r.growth > 0.1, `leak: ${r.growth}`);
  });

  it('gives no figure, with a reason, when a window has too few samples', () => {
    const r = memoryGrowth(series(130_000, plateau), PHASE, 70_000);
    assert.equal(r.growth, null);
    assert.match(r.reason ?? '', /too few samples/);
  });

  it('uses medians: one garbage-collection dip or spike moves nothing', () => {
    const flat = series(200_000, () => 250);
    flat[6] = { tMs: flat[6]!.tMs, kb: 400 * MB }; // a spike inside the baseline window (30 s)
    flat[18] = { tMs: flat[18]!.tMs, kb: 150 * MB }; // a dip inside the end window (90 s)
    assert.equal(memoryGrowth(flat, PHASE, 0).growth, 0);
  });
});
