/**
 * Progress of long work (weights downloaded from peers, a GGUF export written, a checkpoint read): pure renderers
 * and a small reporter that picks one of three modes.
 *
 * - 'tty': one line redrawn in place (`\r` + clear-line) at most every `redrawMs`, with a bar, the rate and an ETA;
 *   `finish()` ends the line so what follows starts on a fresh one.
 * - 'plain' (a pipe, a log file, a test): plain lines, one when the work starts, one each time another
 *   `plainStep` of it is done (default 25 %), and one when it ends, so a reader can wait for a line. Format:
 *
 *     export 50% 12.0/24.0 MiB
 *     export done 24.0 MiB in 1.2s
 *
 * - 'silent': nothing (`--json`: stdout carries the one JSON document and stderr stays quiet).
 *
 * The renderers are pure functions over a ProgressState so both modes are tested without a terminal.
 */

export type ProgressMode = 'tty' | 'plain' | 'silent';

export interface ProgressState {
  label: string;
  /** Units done so far. */
  done: number;
  /** Units in all; undefined when unknown (no bar, no percentage). */
  total: number | undefined;
  /** 'bytes' prints KiB/MiB/GiB; 'count' prints plain numbers (layers, tensors). */
  unit: 'bytes' | 'count';
  /** Since the work started. */
  elapsedMs: number;
}

/** 1.5 MiB, 512 B, 2.0 GiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** 4m50s, 1h02m, 12s; '?' when unknown. */
export function formatEta(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** done/total as a fraction in [0, 1]; undefined when the total is unknown (or 0 with nothing done). */
export function progressFraction(s: Pick<ProgressState, 'done' | 'total'>): number | undefined {
  if (s.total === undefined) return undefined;
  if (s.total <= 0) return 1;
  return Math.min(1, Math.max(0, s.done / s.total));
}

function amount(s: ProgressState): string {
  const f = s.unit === 'bytes' ? formatBytes : (n: number) => String(Math.round(n));
  if (s.total === undefined) return f(s.done);
  // bytes: "12.0/24.0 MiB" reads better than "12.0 MiB/24.0 MiB"
  if (s.unit === 'bytes') {
    const [d, unitD] = splitUnit(formatBytes(s.done));
    const [t, unitT] = splitUnit(formatBytes(s.total));
    return unitD === unitT ? `${d}/${t} ${unitT}` : `${d} ${unitD}/${t} ${unitT}`;
  }
  return `${f(s.done)}/${f(s.total)}`;
}

function splitUnit(s: string): [string, string] {
  const i = s.lastIndexOf(' ');
  return [s.slice(0, i), s.slice(i + 1)];
}

/** The terminal line (without `\r`/clear): `label [#######.....] 58% 14.0/24.0 MiB 3.1 MiB/s ETA 3s`. */
export function renderProgressBar(s: ProgressState, width = 24): string {
  const frac = progressFraction(s);
  const secs = s.elapsedMs / 1000;
  const rate = secs > 0 ? s.done / secs : 0;
  const rateText = s.unit === 'bytes' ? `${formatBytes(rate)}/s` : `${rate.toFixed(1)}/s`;
  if (frac === undefined) return `${s.label} ${amount(s)} ${rateText}`;
  const filled = Math.round(frac * width);
  const eta = rate > 0 && s.total !== undefined ? (s.total - s.done) / rate : undefined;
  return `${s.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor(frac * 100)}% ${amount(s)} ${rateText} ETA ${formatEta(eta)}`;
}

/** A plain progress line: `label 50% 12.0/24.0 MiB` (or `label 12.0 MiB` when the total is unknown). */
export function renderProgressLine(s: ProgressState): string {
  const frac = progressFraction(s);
  return frac === undefined ? `${s.label} ${amount(s)}` : `${s.label} ${Math.floor(frac * 100)}% ${amount(s)}`;
}

/** The closing plain line: `label done 24.0 MiB in 1.2s`. */
export function renderProgressDone(s: ProgressState): string {
  const f = s.unit === 'bytes' ? formatBytes(s.done) : String(Math.round(s.done));
  return `${s.label} done ${f} in ${(s.elapsedMs / 1000).toFixed(1)}s`;
}

/** The plain-mode bucket of a fraction (a line is printed each time it grows): 0..floor(1/step). */
export function plainBucket(frac: number, step: number): number {
  return Math.floor(frac / step + 1e-9);
}

export interface ProgressReporterOptions {
  mode: ProgressMode;
  write: (s: string) => void;
  label: string;
  total: number | undefined;
  unit: ProgressState['unit'];
  /** TTY: redraw at most this often (default 100 ms). */
  redrawMs?: number;
  /** Plain: a line each time this fraction more is done (default 0.25). */
  plainStep?: number;
  now?: () => number;
}

/** Feeds a ProgressState to the renderers in the chosen mode. */
export class ProgressReporter {
  private readonly started: number;
  private done = 0;
  private total: number | undefined;
  private lastDraw = -Infinity;
  private drawn = false;
  private bucket = -1;
  private finished = false;
  private readonly o: Required<Omit<ProgressReporterOptions, 'total'>>;

  constructor(opts: ProgressReporterOptions) {
    this.o = { redrawMs: 100, plainStep: 0.25, now: () => performance.now(), ...opts };
    this.total = opts.total;
    this.started = this.o.now();
    this.update(0);
  }

  state(): ProgressState {
    return { label: this.o.label, done: this.done, total: this.total, unit: this.o.unit, elapsedMs: this.o.now() - this.started };
  }

  /** `done` units so far (absolute, not an increment); `total` when it becomes known. */
  update(done: number, total?: number): void {
    if (this.finished) return;
    this.done = done;
    if (total !== undefined) this.total = total;
    if (this.o.mode === 'silent') return;
    const now = this.o.now();
    if (this.o.mode === 'tty') {
      if (now - this.lastDraw < this.o.redrawMs) return;
      this.o.write('\r\x1b[2K' + renderProgressBar(this.state()));
      this.lastDraw = now;
      this.drawn = true;
      return;
    }
    const frac = progressFraction(this.state());
    // unknown total: only the first line (and the closing one)
    const b = frac === undefined ? 0 : plainBucket(frac, this.o.plainStep);
    if (b > this.bucket) {
      this.bucket = b;
      // the last bucket (100 %) is the closing line's job
      if (frac === undefined || frac < 1) this.o.write(renderProgressLine(this.state()) + '\n');
    }
  }

  /** The work ended: the bar's last frame and a newline on a terminal, the closing line otherwise. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.o.mode === 'silent') return;
    if (this.o.mode === 'tty') {
      this.o.write('\r\x1b[2K' + renderProgressBar(this.state()) + '\n');
      this.drawn = false;
      return;
    }
    this.o.write(renderProgressDone(this.state()) + '\n');
  }

  /** The work failed: end a drawn bar's line (the error goes on a line of its own). */
  abandon(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.o.mode === 'tty' && this.drawn) this.o.write('\n');
  }
}

/** The mode for a command's stderr: silent under --json, a bar on a terminal, plain lines otherwise. */
export function progressMode(json: boolean, isTty: boolean): ProgressMode {
  return json ? 'silent' : isTty ? 'tty' : 'plain';
}
