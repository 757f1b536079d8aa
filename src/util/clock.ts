/**
 * Time is injected: code that needs "now" takes a Clock, so unit tests can use a ManualClock and production uses
 * systemClock. Validity rules (the ledger) never read a clock at all.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}
