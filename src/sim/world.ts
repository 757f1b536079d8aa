/**
 * The simulated world: a virtual clock with an event queue, and the documented distributions the simulator draws
 * from (links, machines, sessions, models). Everything random comes from one seeded Rng, so a seed fixes a run.
 * No wall-clock time is read here: `now` advances only when an event is taken off the queue.
 */
import type { Clock } from '../util/clock.js';
import { Rng } from '../util/rng.js';

/** A discrete-event queue: a binary heap ordered by (time, insertion order), so equal times run first-in first-out. */
export class EventQueue implements Clock {
  private t: number[] = [];
  private seq: number[] = [];
  private fn: (() => void)[] = [];
  private n = 0;
  private counter = 0;
  /** The virtual time, ms since the start of the run. */
  nowMs = 0;
  /** Events run so far. */
  ran = 0;

  /** The Clock view: a fixed Unix epoch (2026-01-01) plus the virtual time, so signed records carry real-looking times. */
  static readonly EPOCH_MS = 1_767_225_600_000;

  now(): number {
    return EventQueue.EPOCH_MS + Math.floor(this.nowMs);
  }

  at(timeMs: number, f: () => void): void {
    const tm = Math.max(timeMs, this.nowMs);
    let i = this.n++;
    this.t[i] = tm;
    this.seq[i] = this.counter++;
    this.fn[i] = f;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  after(delayMs: number, f: () => void): void {
    this.at(this.nowMs + delayMs, f);
  }

  /** Runs events until the queue is empty or the next one is past `endMs`. */
  runUntil(endMs: number): void {
    while (this.n > 0 && this.t[0]! <= endMs) {
      const f = this.fn[0]!;
      this.nowMs = this.t[0]!;
      this.pop();
      this.ran++;
      f();
    }
    this.nowMs = endMs;
  }

  private pop(): void {
    const last = --this.n;
    this.swap(0, last);
    this.fn.length = last;
    this.t.length = last;
    this.seq.length = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.n && this.less(l, m)) m = l;
      if (r < this.n && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }

  private less(a: number, b: number): boolean {
    return this.t[a]! < this.t[b]! || (this.t[a] === this.t[b] && this.seq[a]! < this.seq[b]!);
  }

  private swap(a: number, b: number): void {
    [this.t[a], this.t[b]] = [this.t[b]!, this.t[a]!];
    [this.seq[a], this.seq[b]] = [this.seq[b]!, this.seq[a]!];
    [this.fn[a], this.fn[b]] = [this.fn[b]!, this.fn[a]!];
  }
}

/** Log-normal with the given median and shape σ. */
export function logNormal(rng: Rng, median: number, sigma: number): number {
  return median * Math.exp(sigma * rng.normal());
}

/** Exponential with the given mean. */
export function exponential(rng: Rng, mean: number): number {
  return -mean * Math.log(1 - rng.next());
}

/**
 * Where a node sits. Continents with shares (residential peers of volunteer swarms cluster in North America and
 * Europe); inside a continent, 5 % of peers share a LAN site with another peer (a lab, an office).
 */
export const CONTINENTS = [
  { name: 'north-america', share: 0.4 },
  { name: 'europe', share: 0.35 },
  { name: 'asia', share: 0.25 },
] as const;
export const LAN_SHARE = 0.05;

/**
 * One-way link latency and loss by link class (documented in docs/SCALE.md):
 *   LAN: 0.3 ms median, loss 0.01 %; one continent: 20 ms median (log-normal σ 0.5), loss 0.5 %;
 *   intercontinental: 80 ms median (σ 0.3), loss 1 %. Jitter per message: ±10 %.
 */
export const LINK_CLASSES = {
  lan: { medianMs: 0.3, sigma: 0.3, loss: 0.0001 },
  continent: { medianMs: 20, sigma: 0.5, loss: 0.005 },
  intercontinental: { medianMs: 80, sigma: 0.3, loss: 0.01 },
} as const;

/**
 * The machine mix (consumer hardware): memory a node offers for layers, its uplink, and its speed relative to a
 * 16 GB desktop CPU (tokens/s through one layer of the 100-node model = 40 × speed).
 */
export const MACHINE_MIX = [
  { name: 'laptop-8gb', share: 0.3, offerMb: 4_096, upMbps: 20, speed: 0.5 },
  { name: 'desktop-16gb', share: 0.35, offerMb: 10_240, upMbps: 40, speed: 1 },
  { name: 'gaming-gpu-24gb', share: 0.25, offerMb: 20_480, upMbps: 100, speed: 6 },
  { name: 'workstation-64gb', share: 0.1, offerMb: 49_152, upMbps: 500, speed: 10 },
] as const;

/**
 * Session lengths (churn): log-normal with a median of 30 min and σ 1.2 (a heavy tail of long sessions, as
 * measured for volunteer and P2P swarms); 30 % of departures are crashes without goodbye. Arrivals are Poisson at
 * the rate that keeps the population steady.
 */
export const SESSION = { medianMin: 30, sigma: 1.2, crashShare: 0.3 } as const;

/**
 * The model each network size holds: the seed's scaling table (10 → 16L × 1024H, 100 → 32L × 3072H,
 * 1,000 → 64L × 7168H). A layer is ≈ 12·H² parameters, held as f16 (2 bytes).
 */
export function modelFor(nodes: number): { layers: number; hidden: number; layerMb: number } {
  const m = nodes <= 30 ? { layers: 16, hidden: 1024 } : nodes <= 300 ? { layers: 32, hidden: 3072 } : { layers: 64, hidden: 7168 };
  return { ...m, layerMb: Math.ceil((12 * m.hidden * m.hidden * 2) / (1024 * 1024)) };
}

export function pick<T extends { share: number }>(rng: Rng, items: readonly T[]): T {
  let u = rng.next();
  for (const it of items) {
    if (u < it.share) return it;
    u -= it.share;
  }
  return items[items.length - 1]!;
}

export { Rng };
