/**
 * Progress for long CLI work: a bar (or a spinner when the total is unknown) redrawn in place on a terminal, plain
 * lines anywhere else (pipes, logs, tests), so a reader can wait for a line. Progress always goes to stderr: stdout
 * carries the command's answer (and its one JSON document under --json).
 */
import type { CommandIO } from './command.js';

function isTty(): boolean {
  return process.stderr.isTTY === true;
}

export class ProgressBar {
  private readonly tty = isTty();
  private last = -1;
  constructor(
    private readonly io: Pick<CommandIO, 'stderr'>,
    private readonly label: string,
    private readonly total: number,
  ) {}

  update(done: number, note = ''): void {
    if (done === this.last) return;
    this.last = done;
    if (this.tty) {
      const width = 24;
      const fill = this.total > 0 ? Math.round((Math.min(done, this.total) / this.total) * width) : 0;
      this.io.stderr(`\r\x1b[2K${this.label} [${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${done}/${this.total}${note ? ' ' + note : ''}`);
    } else {
      this.io.stderr(`${this.label}: ${done}/${this.total}${note ? ' ' + note : ''}\n`);
    }
  }

  done(): void {
    if (this.tty && this.last >= 0) this.io.stderr('\n');
  }
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class Spinner {
  private readonly tty = isTty();
  private timer: NodeJS.Timeout | undefined;
  private i = 0;
  constructor(
    private readonly io: Pick<CommandIO, 'stderr'>,
    private readonly label: string,
  ) {
    if (this.tty) {
      this.timer = setInterval(() => this.io.stderr(`\r\x1b[2K${FRAMES[this.i++ % FRAMES.length]} ${this.label}`), 100);
      this.timer.unref();
    } else {
      this.io.stderr(`${label}…\n`);
    }
  }

  done(): void {
    if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.io.stderr('\r\x1b[2K');
    }
  }
}
