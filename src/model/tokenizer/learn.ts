/**
 * Learning byte-level BPE merges, deterministically.
 *
 * Input is the multiset of pre-tokenised pieces (piece → count), so each distinct word is processed once however
 * often it occurs. Each step merges the adjacent pair with the highest count over all pieces (weighted by piece
 * count). **Tie-breaking:** among pairs with equal counts the one with the smallest first id wins, then the
 * smallest second id. Learning stops after `numMerges` merges or when the best pair occurs fewer than
 * `minFrequency` times. The result depends only on the multiset (not on the order pieces were seen), and uses only
 * integer arithmetic, so every machine learns the same merges.
 *
 * Cost: pair counts are updated incrementally. Each pair keeps the set of pieces it occurs in; a merge rewrites
 * only those pieces and applies the net change of their pair counts. The best pair comes from a max-heap with
 * lazy deletion (an entry is ignored when its count no longer matches the live count).
 */
import { BYTE_OFFSET, FIRST_MERGE_ID, MAX_VOCAB_SIZE } from './constants.js';
import { pairKey } from './bpe.js';
import { type SourceInfo } from './format.js';
import { forEachPiece } from './pretokenize.js';
import { Tokenizer } from './tokenizer.js';

export interface LearnOptions {
  /** Number of merges to learn (vocab size − 266). */
  numMerges: number;
  /** A pair must occur at least this often to be merged (default 2). */
  minFrequency?: number;
}

export interface LearnResult {
  /** merges[i] = [a, b] creates id 266 + i. */
  merges: [number, number][];
  /** Count of each merged pair at the moment it was merged (diagnostics). */
  counts: number[];
}

/** Learns merges from piece counts. */
export function learnMerges(pieces: Map<string, number>, opts: LearnOptions): LearnResult {
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(opts.numMerges) || opts.numMerges < 0 || FIRST_MERGE_ID + opts.numMerges > MAX_VOCAB_SIZE) {
    throw new RangeError(`numMerges must be an integer in [0, ${MAX_VOCAB_SIZE - FIRST_MERGE_ID}]`);
  }
  const enc = new TextEncoder();
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [piece, count] of pieces) {
    if (count <= 0) continue;
    const bytes = enc.encode(piece);
    if (bytes.length < 2) continue; // a single byte has no pairs and can never change
    const ids = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) ids[i] = bytes[i] + BYTE_OFFSET;
    words.push(ids);
    freq.push(count);
  }

  const counts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  for (let w = 0; w < words.length; w++) {
    const ids = words[w];
    for (let i = 0; i < ids.length - 1; i++) {
      const k = pairKey(ids[i], ids[i + 1]);
      counts.set(k, (counts.get(k) ?? 0) + freq[w]);
      let s = where.get(k);
      if (s === undefined) where.set(k, (s = new Set()));
      s.add(w);
    }
  }

  const heap = new PairHeap();
  for (const [k, c] of counts) heap.push(c, k);

  const merges: [number, number][] = [];
  const mergedCounts: number[] = [];
  const delta = new Map<number, number>();
  while (merges.length < opts.numMerges) {
    let best = -1;
    let bestCount = 0;
    while (heap.size > 0) {
      const [c, k] = heap.pop();
      if (counts.get(k) === c) {
        best = k;
        bestCount = c;
        break;
      }
    }
    if (best < 0 || bestCount < minFrequency) break;
    const a = Math.floor(best / 65_536);
    const b = best - a * 65_536;
    const id = FIRST_MERGE_ID + merges.length;
    merges.push([a, b]);
    mergedCounts.push(bestCount);

    delta.clear();
    const affected = where.get(best)!;
    where.delete(best);
    for (const w of affected) {
      const ids = words[w];
      const f = freq[w];
      // Net effect on pair counts: remove every pair of the old piece, add every pair of the new one.
      for (let i = 0; i < ids.length - 1; i++) {
        const k = pairKey(ids[i], ids[i + 1]);
        delta.set(k, (delta.get(k) ?? 0) - f);
      }
      let o = 0;
      for (let i = 0; i < ids.length; i++) {
        if (i < ids.length - 1 && ids[i] === a && ids[i + 1] === b) {
          ids[o++] = id;
          i++;
        } else {
          ids[o++] = ids[i];
        }
      }
      ids.length = o;
      for (let i = 0; i < o - 1; i++) {
        const k = pairKey(ids[i], ids[i + 1]);
        delta.set(k, (delta.get(k) ?? 0) + f);
        if (k !== best) {
          let s = where.get(k);
          if (s === undefined) where.set(k, (s = new Set()));
          s.add(w);
        }
      }
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const c = (counts.get(k) ?? 0) + d;
      if (c > 0) {
        counts.set(k, c);
        heap.push(c, k);
      } else {
        counts.delete(k);
      }
    }
    counts.delete(best);
  }
  return { merges, counts: mergedCounts };
}

/** Max-heap of (count, key) pairs: the highest count first, the smallest key among equal counts. */
class PairHeap {
  private c: number[] = [];
  private k: number[] = [];

  get size(): number {
    return this.c.length;
  }

  /** True when entry i should sit above entry j. */
  private above(ci: number, ki: number, cj: number, kj: number): boolean {
    return ci > cj || (ci === cj && ki < kj);
  }

  push(count: number, key: number): void {
    const { c, k } = this;
    let i = c.length;
    c.push(count);
    k.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(count, key, c[p], k[p])) break;
      c[i] = c[p];
      k[i] = k[p];
      i = p;
    }
    c[i] = count;
    k[i] = key;
  }

  /** Removes and returns the top entry as [count, key]; the heap must not be empty. */
  pop(): [number, number] {
    const { c, k } = this;
    const top: [number, number] = [c[0], k[0]];
    const lc = c.pop()!;
    const lk = k.pop()!;
    const n = c.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && this.above(c[r], k[r], c[l], k[l]) ? r : l;
        if (!this.above(c[m], k[m], lc, lk)) break;
        c[i] = c[m];
        k[i] = k[m];
        i = m;
      }
      c[i] = lc;
      k[i] = lk;
    }
    return top;
  }
}

/** Counts the pre-tokenised pieces of `texts` (the learner's input). */
export function countPieces(texts: Iterable<string>, into: Map<string, number> = new Map()): Map<string, number> {
  for (const t of texts) forEachPiece(t, (p) => into.set(p, (into.get(p) ?? 0) + 1));
  return into;
}

export interface LearnTokenizerOptions {
  /** Total ids including the 266 fixed ones (4,096 for nano). */
  vocabSize: number;
  minFrequency?: number;
  /** Provenance written into the file's `source` field. */
  source?: SourceInfo;
}

/** Learns a tokenizer from texts: the whole pipeline, deterministic (see learnMerges for the rules). */
export function learnTokenizer(texts: Iterable<string>, opts: LearnTokenizerOptions): Tokenizer {
  const { merges } = learnMerges(countPieces(texts), { numMerges: opts.vocabSize - FIRST_MERGE_ID, minFrequency: opts.minFrequency });
  return new Tokenizer({ merges, source: opts.source ?? {} });
}
