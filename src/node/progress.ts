/**
 * The training progress display on stderr: step, loss, tokens/s and ETA.
 *
 * - On a terminal it is one line redrawn in place (`\r` + clear-line), at most every `redrawMs`, with a bar; events
 *   (validation, checkpoints, messages) are printed as lines of their own above it.
 * - Anywhere else (a pipe, a log file, a test) it prints plain lines: one every `logEvery` steps, plus one per
 *   event, so a reader can wait for a line instead of guessing how long to sleep. The line formats are stable
 *   (scripts/learning-run.mjs parses them):
 *
 *     step 120/2000 loss 5.4321 lr 1.00e-3 tok/s 6512 eta 4m50s
 *     eval step 250 val_loss 5.1234 tokens 65536
 *     checkpoint step 500 reason periodic dir /home/me/.neuroshard/checkpoints/step-0000000500
 *
 * `loss` is the mean training loss of the steps since the previous line (the last step's alone is noisy);
 * tokens/s and the ETA come from the steps of the last `windowS` seconds.
 */
import { ProgressReporter, type ProgressMode } from '../util/progress.js';

export interface ProgressOptions {
  write: (s: string) => void;
  /** True when the stream is a terminal: redraw one line instead of printing many. */
  tty: boolean;
  /** The step the run started at (a resumed run starts past 0) and the step it stops at. */
  startStep: number;
  targetStep: number;
  /** Plain mode: a line every this many steps (default 10). */
  logEvery?: number;
  /** TTY mode: redraw at most this often (default 100 ms). */
  redrawMs?: number;
  /** Rate window (default 30 s). */
  windowS?: number;
  now?: () => number;
}

interface Sample {
  t: number;
  tokens: number;
}

export class TrainProgress {
  private readonly o: Required<ProgressOptions>;
  private readonly samples: Sample[] = [];
  private lossSum = 0;
  private lossCount = 0;
  private lastLoss = NaN;
  private lastLr = NaN;
  private valLoss: number | undefined;
  private step: number;
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(opts: ProgressOptions) {
    this.o = { logEvery: 10, redrawMs: 100, windowS: 30, now: () => performance.now(), ...opts };
    this.step = opts.startStep;
    this.samples.push({ t: this.o.now(), tokens: 0 });
  }

  /** One training step finished. */
  onStep(r: { step: number; loss: number; tokens: number; lr: number }): void {
    const now = this.o.now();
    this.step = r.step;
    this.lastLoss = r.loss;
    this.lastLr = r.lr;
    if (Number.isFinite(r.loss)) {
      this.lossSum += r.loss;
      this.lossCount++;
    }
    this.samples.push({ t: now, tokens: r.tokens });
    // keep the window, but never fewer than two samples (a rate needs an interval)
    while (this.samples.length > 2 && now - this.samples[1].t > this.o.windowS * 1000) this.samples.shift();
    if (this.o.tty) {
      if (now - this.lastDraw >= this.o.redrawMs || r.step >= this.o.targetStep) this.draw(now);
    } else if (r.step % this.o.logEvery === 0 || r.step === this.o.startStep + 1 || r.step >= this.o.targetStep) {
      this.o.write(this.plainLine() + '\n');
      this.lossSum = 0;
      this.lossCount = 0;
    }
  }

  onEval(e: { step: number; loss: number; tokens: number }): void {
    this.valLoss = e.loss;
    this.line(`eval step ${e.step} val_loss ${e.loss.toFixed(4)} tokens ${e.tokens}`);
  }

  onCheckpoint(c: { step: number; dir: string; reason: string }): void {
    this.line(`checkpoint step ${c.step} reason ${c.reason} dir ${c.dir}`);
  }

  /** A line of its own (above the bar on a terminal). */
  line(s: string): void {
    if (this.o.tty && this.drawn) this.o.write('\r\x1b[2K');
    this.o.write(s + '\n');
    if (this.o.tty && this.drawn) this.draw(this.o.now());
  }

  /** Ends the bar's line so whatever follows starts on a fresh one. */
  done(): void {
    if (this.o.tty && this.drawn) {
      this.draw(this.o.now());
      this.o.write('\n');
      this.drawn = false;
    }
  }

  /** Training tokens per second over the rate window (0 before two steps). */
  tokensPerSecond(): number {
    const s = this.samples;
    if (s.length < 2) return 0;
    const dt = (s[s.length - 1].t - s[0].t) / 1000;
    let tokens = 0;
    for (let i = 1; i < s.length; i++) tokens += s[i].tokens;
    return dt > 0 ? tokens / dt : 0;
  }

  /** Seconds left at the window's step rate, or undefined before it is known. */
  etaSeconds(): number | undefined {
    const s = this.samples;
    if (s.length < 2) return undefined;
    const perStep = (s[s.length - 1].t - s[0].t) / 1000 / (s.length - 1);
    return Math.max(0, this.o.targetStep - this.step) * perStep;
  }

  private plainLine(): string {
    const loss = this.lossCount > 0 ? this.lossSum / this.lossCount : this.lastLoss;
    return `step ${this.step}/${this.o.targetStep} loss ${loss.toFixed(4)} lr ${this.lastLr.toExponential(2)} tok/s ${Math.round(this.tokensPerSecond())} eta ${formatDuration(this.etaSeconds())}`;
  }

  private draw(now: number): void {
    const span = Math.max(1, this.o.targetStep - this.o.startStep);
    const frac = Math.min(1, Math.max(0, (this.step - this.o.startStep) / span));
    const width = 20;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
    const val = this.valLoss === undefined ? '' : ` | val ${this.valLoss.toFixed(3)}`;
    const text =
      `step ${this.step}/${this.o.targetStep} [${bar}] ${(frac * 100).toFixed(0)}% | loss ${this.lastLoss.toFixed(3)}${val} | ` +
      `${Math.round(this.tokensPerSecond())} tok/s | ETA ${formatDuration(this.etaSeconds())}`;
    this.o.write('\r\x1b[2K' + text);
    this.lastDraw = now;
    this.drawn = true;
  }
}

/** 4m50s, 1h02m, 12s; '?' when unknown. */
export function formatDuration(s: number | undefined): string {
  if (s === undefined || !Number.isFinite(s)) return '?';
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A checkpoint save's progress (issue 10 §3): the bytes of its weight files as the compute worker writes them
 * (`checkpoint:progress` events), through util/progress.ts: a bar on a terminal, plain lines otherwise
 * (`saving checkpoint step 500 25% 5.0/20.1 MiB` … `saving checkpoint step 500 done 20.1 MiB in 0.3s`), nothing
 * under --json ('silent'). `saved()` ends it when the `checkpoint` event arrives.
 */
export class SaveProgress {
  private r: ProgressReporter | undefined;
  private step: number | undefined;

  constructor(private readonly o: { mode: ProgressMode; write: (s: string) => void; now?: () => number }) {}

  onProgress(e: { step: number; done: number; total: number }): void {
    if (this.r === undefined || this.step !== e.step) {
      this.r?.abandon();
      this.step = e.step;
      this.r = new ProgressReporter({ mode: this.o.mode, write: this.o.write, label: `saving checkpoint step ${e.step}`, total: e.total, unit: 'bytes', ...(this.o.now === undefined ? {} : { now: this.o.now }) });
    }
    this.r.update(e.done, e.total);
  }

  /** The checkpoint is written (its `checkpoint` event). */
  saved(): void {
    this.r?.finish();
    this.r = undefined;
  }

  /** The save failed or the run ended without one: end a drawn bar's line. */
  abandon(): void {
    this.r?.abandon();
    this.r = undefined;
  }
}
