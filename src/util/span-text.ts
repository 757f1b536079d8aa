/**
 * How a range of layers is written for people: `a:b`, half-open (layers a to b-1), the form a user types after
 * `--span`. Every place a user reads a span (CLI tables and lines, the dashboard, log lines) writes it with this
 * function, so that what `neuroshard status` prints can be pasted back as `--span`. Browser-safe: the dashboard
 * (src/ui) imports it.
 */
export interface LayerRange {
  /** First layer held. */
  start: number;
  /** One past the last layer held. */
  end: number;
}

/** `a:b`, or `none` for a node that holds no layers (`--span none`). */
export function spanText(s: LayerRange | null | undefined): string {
  return s === null || s === undefined ? 'none' : `${s.start}:${s.end}`;
}
