/** Small display helpers. */
export function bytes(n: number): string {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s % 60}s`;
}

export function short(id: string, n = 10): string {
  return id.length <= n + 4 ? id : `${id.slice(0, n)}…${id.slice(-4)}`;
}

export function num(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

export function int(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

export function ago(ms: number | null, now: number): string {
  return ms === null ? 'never' : `${duration(Math.max(0, now - ms))} ago`;
}

/** A span as everywhere else a user reads one (`a:b`, half-open, as typed after `--span`; `none`). */
export { spanText as span } from '../util/span-text.js';

/** An exact decimal NEURO amount (a string, never a float) with thousands separators in its whole part. */
export function neuro(amount: string): string {
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(amount);
  if (m === null) return amount;
  return `${m[1]}${m[2]!.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}${m[3] ?? ''}`;
}
