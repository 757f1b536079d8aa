/**
 * Streaming text out as it is generated without ever sending text a client must take back: given the decoded
 * text so far after each token, `push` returns the part that is safe to send. Held back are a trailing U+FFFD (the
 * first bytes of a character whose last bytes have not come yet) and a tail that could be the start of a stop
 * string; text from a complete stop string on is never sent. `finish` sends what is left of the final text.
 */
export class DeltaStream {
  private sent = 0;
  /** True once a stop string appeared: nothing more is sent. */
  stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  push(text: string): string {
    if (this.stopped) return '';
    let end = text.length;
    let at = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s, Math.max(0, this.sent - s.length + 1));
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      end = at;
      this.stopped = true;
    } else {
      while (end > this.sent && text.charCodeAt(end - 1) === 0xfffd) end--;
      end = Math.min(end, this.sent + safePrefix(text.slice(this.sent, end), this.stops));
    }
    if (end <= this.sent) return '';
    const delta = text.slice(this.sent, end);
    this.sent = end;
    return delta;
  }

  /** The rest of `finalText` (the generator's authoritative text, already cut before any stop string). */
  finish(finalText: string): string {
    if (finalText.length <= this.sent) return '';
    const delta = finalText.slice(this.sent);
    this.sent = finalText.length;
    return delta;
  }
}

/** Length of the longest prefix of `s` after which no suffix of `s` is a proper prefix of a stop string. */
function safePrefix(s: string, stops: readonly string[]): number {
  let hold = 0;
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, s.length); k > hold; k--) {
      if (s.endsWith(stop.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return s.length - hold;
}
