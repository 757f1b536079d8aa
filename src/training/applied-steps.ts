/**
 * The chain step ids a stage applied, under one driver's ids (sync.ts chainNext: where a chain partner's next round
 * boundary is). A partner closes its rounds after H *applied* steps, and ids are not all applied: a NaN-skipped step
 * takes an id nobody applies (pipeline/trainer.ts), and a hop's previous driver numbered its steps on its own. Reading
 * a partner's next boundary as "H ids after its last one" (rounds.ts partnerAt before session 21) was one id short
 * after every skip in the round: a driver could wait at its boundary for a hop that waited for the driver's next step.
 *
 * Kept as runs of consecutive ids (a skip starts a new run), the newest `maxRuns` of them: a few numbers per skip.
 */
export class AppliedSteps {
  /** [first, last] ids of each run, oldest first. */
  private runs: [number, number][] = [];
  /** The driver whose ids these are (a hop's record starts again when another driver steps it). */
  private owner: string | undefined;

  constructor(private readonly maxRuns = 64) {}

  /** Step `id` was applied, numbered by `driver`'s counter (ids of one driver only grow; anything else starts over). */
  add(id: number, driver?: string): void {
    if (driver !== this.owner) {
      this.owner = driver;
      this.runs = [];
    }
    const last = this.runs[this.runs.length - 1];
    if (last !== undefined && id <= last[1]) {
      // the same id again (a step whose acknowledgement its driver lost, tried again): one id, one step
      if (id === last[1]) return;
      // a counter that went back (a restarted driver with the same peer id): nothing before it is comparable
      this.runs = [];
    }
    const tail = this.runs[this.runs.length - 1];
    if (tail !== undefined && id === tail[1] + 1) tail[1] = id;
    else {
      this.runs.push([id, id]);
      if (this.runs.length > this.maxRuns) this.runs.shift();
    }
  }

  /** Whose ids the record counts (undefined before the first step). */
  driver(): string | undefined {
    return this.owner;
  }

  /**
   * Steps applied with an id after `id` (up to the last one); undefined when the record does not reach back to it
   * (ids before the oldest run kept may have been applied, or were numbered before this record began).
   */
  after(id: number): number | undefined {
    const first = this.runs[0];
    if (first === undefined || id < first[0] - 1) return undefined;
    let n = 0;
    for (const [a, b] of this.runs) if (b > id) n += b - Math.max(a, id + 1) + 1;
    return n;
  }
}
