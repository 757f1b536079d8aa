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

  // a trainer (ready at 30 s) with 4 kept rounds of 19 MiB; a partner rejoining twice pins 2, then 4 more from 80 s to
  // 140 s (the CI run: +26.4 %, 385 -> 487 MiB), on top of round-boundary swings of -40..+40 MiB
  const kept = (t: number): number => 76 + (t >= 80_000 && t < 140_000 ? 19 * (t < 95_000 ? 2 : 4) : 0);
  const swing = (t: number): number => [0, 40, -30, 25, -40, 10][Math.floor(t / 1000) % 6]!;
  const trainer = (leakMbPerS: number): RssSample[] => {
    const out: RssSample[] = [];
    for (let t = 0; t <= 200_000; t += 1000) {
      const leak = t > 30_000 ? ((t - 30_000) / 1000) * leakMbPerS : 0;
      out.push({ tMs: t, kb: Math.round((330 + kept(t) + swing(t) + leak) * MB), boundedKb: kept(t) * MB });
    }
    return out;
  };

  it('sets a quota\'d store apart: kept rounds pinned for a rejoining partner read as growth on RSS, not when set apart', () => {
    const raw = memoryGrowth(trainer(0), PHASE, 30_000);
    assert.ok(raw.growth !== null && raw.growth > 0.15, `RSS alone: ${raw.growth}`);
    const apart = memoryGrowth(trainer(0), PHASE, 30_000, { setApart: true });
    assert.ok(apart.growth !== null && Math.abs(apart.growth) < 0.04, `set apart: ${apart.growth}`);
  });

  it('still sees a leak beside the set-apart store', () => {
    const r = memoryGrowth(trainer(1), PHASE, 30_000, { setApart: true });
    assert.ok(r.growth !== null && r.growth > 0.1, `leak: ${r.growth}`);
  });

  it('set apart, uses only the samples that carry the bounded figure (none: no figure)', () => {
    const s = trainer(0).map((x, k) => (k % 2 === 0 ? x : { tMs: x.tMs, kb: x.kb * 3 }));
    const r = memoryGrowth(s, PHASE, 30_000, { setApart: true });
    assert.ok(r.growth !== null && Math.abs(r.growth) < 0.04, `half the samples without it: ${r.growth}`);
    const none = memoryGrowth(trainer(0).map((x) => ({ tMs: x.tMs, kb: x.kb })), PHASE, 30_000, { setApart: true });
    assert.equal(none.growth, null);
  });

  // a trainer whose garbage (round buffers waiting for a collection and a trim) is 0-135 MiB above its live 330 MiB,
  // and mostly high in the end window (a partner catching up rounds: the chaos run's +30.3 % on medians)
  const garbage = (t: number, live: (t: number) => number): RssSample => {
    const k = Math.floor(t / 1000);
    const high = t >= 90_000 && t < 160_000;
    const g = k % 10 === 0 ? 0 : high ? 90 + (k % 4) * 15 : [5, 60, 20, 90, 40][k % 5]!;
    return { tMs: t, kb: Math.round((live(t) + 76 + g) * MB), boundedKb: 76 * MB };
  };
  const sawtooth = (live: (t: number) => number): RssSample[] => {
    const out: RssSample[] = [];
    for (let t = 0; t <= 200_000; t += 1000) out.push(garbage(t, live));
    return out;
  };

  it('compares floors when asked: garbage between collections reads as growth on medians, not on floors', () => {
    const s = sawtooth(() => 330);
    const med = memoryGrowth(s, PHASE, 30_000, { setApart: true });
    assert.ok(med.growth !== null && med.growth > 0.15, `medians: ${med.growth}`);
    const floor = memoryGrowth(s, PHASE, 30_000, { setApart: true, floor: true });
    assert.ok(floor.growth !== null && Math.abs(floor.growth) < 0.02, `floors: ${floor.growth}`);
  });

  it('floors still see a leak', () => {
    const r = memoryGrowth(sawtooth((t) => 330 + (t > 30_000 ? ((t - 30_000) / 1000) * 0.75 : 0)), PHASE, 30_000, { setApart: true, floor: true });
    assert.ok(r.growth !== null && r.growth > 0.1, `leak on floors: ${r.growth}`);
  });
});
