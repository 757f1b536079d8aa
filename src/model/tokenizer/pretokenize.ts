/**
 * Pre-tokenisation: text is cut into pieces before BPE, and merges never cross a piece boundary. The splitter is
 * the cl100k pattern written with JavaScript Unicode property escapes:
 *
 * 1. English contractions `'s 't 're 've 'm 'll 'd` (either case);
 * 2. a run of letters with at most one leading non-letter, non-digit, non-newline character (usually a space);
 * 3. digits in groups of 1–3;
 * 4. a run of punctuation/symbols (incl. combining marks and emoji), with an optional leading space and trailing
 *    newlines;
 * 5. whitespace ending in newlines; whitespace not followed by a non-space (so `"  x"` gives `" "` + `" x"`);
 *    any other whitespace.
 *
 * Every code point of the input lands in exactly one piece and the pieces, concatenated, are the input (the loop
 * below also covers any gap the pattern might leave, so this holds by construction). Changing this pattern
 * changes every token id: it is versioned by PRETOKENIZER_NAME in the tokenizer file.
 */
const PATTERN =
  /'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** The pattern's source, for documentation and tests. */
export const PRETOKENIZE_PATTERN_SOURCE = PATTERN.source;

/** Calls `fn` with each piece of `text`, in order. */
export function forEachPiece(text: string, fn: (piece: string) => void): void {
  // A fresh RegExp per call keeps lastIndex state local (re-entrancy, several tokenizers in one process).
  const re = new RegExp(PATTERN.source, PATTERN.flags);
  let pos = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index > pos) fn(text.slice(pos, m.index));
    const s = m[0];
    if (s.length === 0) {
      // Cannot happen with this pattern (every branch consumes), but never loop forever on an empty match.
      re.lastIndex++;
      continue;
    }
    fn(s);
    pos = m.index + s.length;
  }
  if (pos < text.length) fn(text.slice(pos));
}

/** The pieces of `text` as an array. */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  forEachPiece(text, (p) => out.push(p));
  return out;
}
