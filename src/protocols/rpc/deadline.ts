/**
 * A stream's read deadline: the next frame must arrive within `ms` of the read that waits for it, or the stream is
 * reset. One timer per stream, not one per frame: a serving hop reads a frame every ~0.1 ms on each side, and arming
 * and clearing a setTimeout around every read was two timer-list operations and a Timeout object per frame (issue 8,
 * session 21). Here a read only stamps the time it began; the one timer, when it fires, compares the stamp with the
 * clock and re-arms for what is left of the current read's deadline, so it fires about once per `ms` on a busy
 * stream and expires exactly `ms` after the start of a read that is still waiting (the per-frame timer's guarantee).
 *
 * The clock is injected so that unit tests drive it by hand (test/unit/protocols/rpc-deadline.test.ts).
 */
import { TimeoutError } from '../../util/errors.js';

export interface DeadlineClock {
  now(): number;
  /** A timer that keeps the process alive (as a per-read setTimeout did) until unref'd. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Whether the timer keeps the process alive. */
  ref(handle: unknown, on: boolean): void;
}

export const REAL_CLOCK: DeadlineClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  ref: (h, on) => void (on ? (h as NodeJS.Timeout).ref() : (h as NodeJS.Timeout).unref()),
};

export class ReadDeadline {
  /** The current read's deadline (clock time), or undefined while no read waits. */
  private due: number | undefined;
  /** The current read's length (ms), for the error. */
  private ms = 0;
  /** The armed timer and when it fires; at most one. */
  private handle: unknown;
  private handleAt = Infinity;
  /**
   * Whether the timer keeps the process alive: while a read waits, as the per-read timer did (on an in-memory
   * network nothing else may); not between reads, so that a timer left armed after a stream's last read (until it
   * fires and finds no read) holds no process open.
   */
  private refed = false;
  private disposed = false;
  /** Set when a read's deadline passed (the stream was reset with it). */
  expired: TimeoutError | undefined;

  constructor(
    /** Resets the stream (called once, with the TimeoutError). */
    private readonly onExpire: (e: TimeoutError) => void,
    /** The error's message for a read of `ms` that timed out. */
    private readonly message: (ms: number) => string,
    /**
     * Checked when a read's deadline passes: true holds the stream open for another `ms` (the reusable stream's
     * server while a call of it runs).
     */
    private readonly busy?: () => boolean,
    private readonly clock: DeadlineClock = REAL_CLOCK,
  ) {}

  /** A read for the next frame begins: it must complete within `ms`. */
  start(ms: number): void {
    if (this.disposed || this.expired !== undefined) return;
    this.ms = ms;
    this.due = this.clock.now() + ms;
    // the armed timer fires no later than this read's deadline: leave it (it re-arms for the rest when it fires)
    if (this.handle !== undefined && this.handleAt <= this.due) {
      if (!this.refed) {
        this.clock.ref(this.handle, true);
        this.refed = true;
      }
      return;
    }
    this.arm(ms);
  }

  /** The read completed (a frame or the stream's end arrived, or it failed). */
  stop(): void {
    this.due = undefined;
    if (this.refed && this.handle !== undefined) {
      this.clock.ref(this.handle, false);
      this.refed = false;
    }
  }

  /** The stream is done: no more deadlines, the timer goes. */
  dispose(): void {
    this.disposed = true;
    this.due = undefined;
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.handle = undefined;
  }

  private arm(delay: number): void {
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.handleAt = this.clock.now() + delay;
    // armed only while a read waits (start, or fire re-arming for one): keeps the process alive, as it should
    this.handle = this.clock.setTimeout(() => this.fire(), delay);
    this.refed = true;
  }

  private fire(): void {
    this.handle = undefined;
    this.handleAt = Infinity;
    this.refed = false;
    // no read waits: the next start() arms a timer again
    if (this.disposed || this.due === undefined) return;
    const now = this.clock.now();
    if (now < this.due) return this.arm(this.due - now);
    if (this.busy?.() === true) {
      this.due = now + this.ms;
      return this.arm(this.ms);
    }
    this.due = undefined;
    this.expired = new TimeoutError(this.message(this.ms), { ms: this.ms });
    this.onExpire(this.expired);
  }
}
