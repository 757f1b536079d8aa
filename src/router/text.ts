/**
 * Turns generated token ids into streamed text: after each token, the text it adds, holding back what could still
 * turn out to be the start of a stop string, or the first bytes of a UTF-8 character that the next token completes
 * (byte-level BPE decodes those as U+FFFD). Stop strings are matched on the decoded new text after every token, as
 * model/generate.ts does: the text is cut before the earliest match.
 */

export class TextAssembler {
  private readonly tokens: number[] = [];
  private emitted = '';
  private final: string | undefined;

  constructor(
    private readonly decode: (ids: readonly number[]) => string,
    private readonly stop: readonly string[],
  ) {}

  /** Adds a token; `delta` is the text it releases, `stopped` says a stop string matched (the text is final). */
  push(id: number): { delta: string; stopped: boolean } {
    if (this.final !== undefined) return { delta: '', stopped: true };
    this.tokens.push(id);
    const full = this.decode(this.tokens);
    let at = -1;
    for (const s of this.stop) {
      const i = full.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.final = full.slice(0, at);
      return { delta: this.release(this.final), stopped: true };
    }
    let safe = full;
    while (safe.endsWith('\uFFFD')) safe = safe.slice(0, -1);
    safe = safe.slice(0, safe.length - this.stopPrefixAtEnd(safe));
    return { delta: this.release(safe), stopped: false };
  }

  /** Ends the text (no stop string matched): returns what was still held back. */
  finish(): string {
    if (this.final === undefined) this.final = this.decode(this.tokens);
    return this.release(this.final);
  }

  /** The whole new text: cut before a matched stop string, or everything once finished. */
  get text(): string {
    return this.final ?? this.decode(this.tokens);
  }

  private release(upTo: string): string {
    if (!upTo.startsWith(this.emitted) || upTo.length <= this.emitted.length) return '';
    const d = upTo.slice(this.emitted.length);
    this.emitted = upTo;
    return d;
  }

  /** Length of the longest suffix of `s` that is a proper prefix of a stop string. */
  private stopPrefixAtEnd(s: string): number {
    let best = 0;
    for (const stop of this.stop) {
      for (let n = Math.min(stop.length - 1, s.length); n > best; n--) {
        if (s.endsWith(stop.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
