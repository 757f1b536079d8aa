/**
 * Bounded reading of an HTTP answer (a fetch Response) from a server we do not control: the local API client, the
 * tracker client and HTTP corpus sources all stop at their size limit instead of buffering whatever arrives.
 */

/**
 * Reads the whole body, failing with `tooLarge(declared)` as soon as it is known to exceed `max` bytes: before
 * reading anything when the declared Content-Length is over the limit, else `tooLarge()` once the bytes read pass
 * it (the rest is never read). The body is cancelled either way.
 */
export async function readBodyBounded(res: Response, max: number, tooLarge: (declared?: number) => Error): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(declared);
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  // not concatBytes(...chunks): a server sending a byte per chunk would pass the engine's argument-count limit
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/** readBodyBounded as UTF-8 text (Buffer's decoding: bad sequences become U+FFFD, a leading BOM stays). */
export async function readTextBounded(res: Response, max: number, tooLarge: (declared?: number) => Error): Promise<string> {
  const b = await readBodyBounded(res, max, tooLarge);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}
