/**
 * Bounded in-memory series for live views (browser-safe: no Node imports).
 *
 * - `RingBuffer`: the last N items, each with a sequence number, so a reader can ask for "everything after seq s"
 *   and learn when it fell behind (items it missed were overwritten).
 * - `ThinningSeries`: a whole run's curve in bounded memory. It keeps every point until it is full, then drops every
 *   other point and from then on keeps only one point in `stride` (the stride doubles each time it fills). A
 *   100,000-step training run thus stays within `capacity` points that span the whole run, at an even spacing,
 *   instead of showing only its last minutes.
 */

export class RingBuffer<T> {
  private readonly items: (T | undefined)[];
  private next = 0; // sequence number the next push gets
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('ring capacity must be a positive integer');
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): number {
    const seq = this.next++;
    this.items[seq % this.capacity] = item;
    return seq;
  }

  /** The sequence number the next push will get (= how many were ever pushed). */
  get seq(): number {
    return this.next;
  }

  get size(): number {
    return Math.min(this.next, this.capacity);
  }

  /** Items with sequence number >= `from` that are still held, oldest first; `missed` counts overwritten ones. */
  since(from: number): { items: T[]; missed: number } {
    const oldest = Math.max(0, this.next - this.capacity);
    const start = Math.max(from, oldest);
    const items: T[] = [];
    for (let s = start; s < this.next; s++) items.push(this.items[s % this.capacity] as T);
    return { items, missed: Math.max(0, Math.min(oldest, this.next) - Math.max(0, from)) };
  }

  toArray(): T[] {
    return this.since(0).items;
  }
}

export class ThinningSeries<T> {
  private points: T[] = [];
  private stride = 1;
  private offered = 0;
  /** Points offered since the series last thinned; readers use it to fetch only what is new. */
  private version = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 4 || capacity % 2 !== 0) throw new RangeError('series capacity must be an even integer >= 4');
  }

  /** Offers a point; returns true when it was kept. */
  push(p: T): boolean {
    const keep = this.offered % this.stride === 0;
    this.offered++;
    if (!keep) return false;
    if (this.points.length >= this.capacity) {
      this.points = this.points.filter((_, i) => i % 2 === 0);
      this.stride *= 2;
      this.version++;
      // the offered point is kept only if it falls on the new, coarser grid
      if ((this.offered - 1) % this.stride !== 0) return false;
    }
    this.points.push(p);
    return true;
  }

  /** Incremented each time the series thins (points already read may have been dropped). */
  get generation(): number {
    return this.version;
  }

  get length(): number {
    return this.points.length;
  }

  toArray(): T[] {
    return this.points.slice();
  }
}
