/**
 * "Did you mean": the nearest names to a misspelt one (CLI commands and flags, config.json's keys).
 */

/**
 * The candidates within edit distance 2 of `word` (or that start with it), for "did you mean": all of those at the
 * nearest distance, in the candidates' order, so that an ambiguous prefix names every match ("st": start, status,
 * stop) instead of whichever is listed first.
 */
export function nearest(word: string, candidates: readonly string[]): string[] {
  let best: string[] = [];
  let bestD = 3;
  for (const c of candidates) {
    const d = word.length >= 2 && c.startsWith(word) ? 1 : editDistance(word, c);
    if (d < bestD) {
      best = [c];
      bestD = d;
    } else if (d === bestD) {
      best.push(c);
    }
  }
  return best;
}

/** The nearest candidate when exactly one is nearest (see `nearest`), else undefined. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const n = nearest(word, candidates);
  return n.length === 1 ? n[0] : undefined;
}

/** "a", "a or b", "a, b or c". */
export function orList(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]!}`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = cur;
  }
  return prev[b.length]!;
}
