// Shared by the probes (chainprobe, batchprobe, poolchain): CPU time per thread of this process, from
// /proc/self/task/<tid>/stat (utime + stime in USER_HZ ticks), and a quantile of a sample. Linux only.
import { readFileSync, readdirSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ 100

/** tid -> { comm, ms }: each live thread's name and its user + system CPU so far (ms, 10 ms resolution). */
export function threadCpu() {
  const out = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // fields after the parenthesised comm, which may itself hold spaces: f[11] utime, f[12] stime
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const comm = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      out.set(tid, { comm, ms: (Number(f[11]) + Number(f[12])) * TICK_MS });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** The p-quantile (0..1) of xs by the nearest rank below; NaN for an empty sample. */
export function quantile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(p * s.length))];
}
