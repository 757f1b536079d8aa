/**
 * Applying learned merges to one pre-tokenised piece. The canonical rule (the one learning used): repeatedly take
 * the adjacent pair whose merge was learned earliest (lowest merge id) and merge it at its leftmost occurrence.
 * Because a merge creates an id larger than every merge already applied, this is the same as applying each merge
 * to all its occurrences left to right, in learning order, so a word seen in training is cut exactly as learning
 * cut it.
 *
 * Two implementations of that rule: a quadratic scan for short pieces (almost all of them, and fastest there) and
 * a heap over a linked list for long ones (a megabyte of spaces must not take minutes). Tests check they agree.
 */

/** Merge table: pairKey(a, b) → id of the merged token. */
export type MergeTable = Map<number, number>;

/** One number per ordered id pair; ids are < 65,536, so the key is < 2^32 and exact. */
export function pairKey(a: number, b: number): number {
  return a * 65_536 + b;
}

/** Pieces up to this many symbols use the quadratic scan. */
const SHORT_PIECE = 48;

/** Applies the merges to `ids` (one piece's byte ids) and returns the merged ids (may reuse the input array). */
export function applyMerges(ids: number[], merges: MergeTable): number[] {
  return ids.length <= SHORT_PIECE ? applyMergesScan(ids, merges) : applyMergesHeap(ids, merges);
}

/** O(n²) per piece: scan for the lowest-id pair, merge it, repeat. Mutates and returns `ids`. */
export function applyMergesScan(ids: number[], merges: MergeTable): number[] {
  let n = ids.length;
  while (n >= 2) {
    let best = -1;
    let bestId = Infinity;
    for (let i = 0; i < n - 1; i++) {
      const m = merges.get(pairKey(ids[i], ids[i + 1]));
      if (m !== undefined && m < bestId) {
        bestId = m;
        best = i;
      }
    }
    if (best < 0) break;
    ids[best] = bestId;
    for (let i = best + 1; i < n - 1; i++) ids[i] = ids[i + 1];
    n--;
  }
  ids.length = n;
  return ids;
}

/**
 * O(n log n) per piece: a doubly linked list of symbols and a min-heap of candidate merges keyed by
 * (merge id, position), so equal ids pop left to right. Entries go stale when a neighbour merges; they are
 * checked when popped and skipped.
 */
export function applyMergesHeap(input: number[], merges: MergeTable): number[] {
  const n = input.length;
  const sym = Int32Array.from(input);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const heap = new MinHeap();
  // Entry = mergeId · 2^32 + position: exact in a double (mergeId < 2^16, position < 2^32).
  const push = (i: number): void => {
    const j = next[i];
    if (i < 0 || j < 0) return;
    const m = merges.get(pairKey(sym[i], sym[j]));
    if (m !== undefined) heap.push(m * 4_294_967_296 + i);
  };
  for (let i = 0; i < n - 1; i++) push(i);
  while (heap.size > 0) {
    const e = heap.pop();
    const m = Math.floor(e / 4_294_967_296);
    const i = e - m * 4_294_967_296;
    const j = next[i];
    if (alive[i] === 0 || j < 0 || merges.get(pairKey(sym[i], sym[j])) !== m) continue;
    sym[i] = m;
    alive[j] = 0;
    const k = next[j];
    next[i] = k;
    if (k >= 0) prev[k] = i;
    push(prev[i]);
    push(i);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0 && i < n; i = next[i]) out.push(sym[i]);
  return out;
}

/** A binary min-heap of numbers. */
export class MinHeap {
  private a: number[] = [];

  get size(): number {
    return this.a.length;
  }

  push(v: number): void {
    const a = this.a;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= v) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = v;
  }

  /** Removes and returns the smallest value; the heap must not be empty. */
  pop(): number {
    const a = this.a;
    const top = a[0];
    const last = a.pop()!;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && a[r] < a[l] ? r : l;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }

  peek(): number | undefined {
    return this.a[0];
  }
}
