/**
 * Bounded body reading (src/util/http.ts), which the local API client, the tracker client and HTTP corpus sources
 * share: a declared Content-Length over the limit fails before any byte is read, a body that only turns out too
 * large fails once it passes the limit and is not read further, and what fits comes back whole.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readBodyBounded, readTextBounded } from '../../../src/util/http.js';

class TooLarge extends Error {
  constructor(readonly declared: number | undefined) {
    super('too large');
  }
}
const tooLarge = (declared?: number): Error => new TooLarge(declared);

/** A response streaming `chunks` that counts how many of them were pulled (no read-ahead: highWaterMark 0). */
function streamed(chunks: Uint8Array[], headers: Record<string, string> = {}): { res: Response; pulled: () => number } {
  let i = 0;
  const source: UnderlyingDefaultSource<Uint8Array> = {
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]!);
      else c.close();
    },
  };
  const body = new ReadableStream(source, { highWaterMark: 0 });
  return { res: new Response(body, { headers }), pulled: () => i };
}

describe('readBodyBounded', () => {
  it('returns the whole body when it fits, exactly at the limit too', async () => {
    const { res } = streamed([new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])]);
    const out = await readBodyBounded(res, 5, tooLarge);
    assert.deepEqual([...out], [1, 2, 3, 4, 5]);
    assert.equal(Object.getPrototypeOf(out), Uint8Array.prototype, 'a plain Uint8Array, not a Buffer');
    assert.equal((await readBodyBounded(new Response(null), 5, tooLarge)).length, 0);
  });

  it('fails on a declared Content-Length over the limit without reading the body', async () => {
    const { res, pulled } = streamed([new Uint8Array(4)], { 'content-length': '100' });
    await assert.rejects(readBodyBounded(res, 10, tooLarge), (e) => e instanceof TooLarge && e.declared === 100);
    assert.equal(pulled(), 0);
  });

  it('stops reading once an undeclared body passes the limit', async () => {
    const { res, pulled } = streamed(Array.from({ length: 10 }, () => new Uint8Array(4)));
    await assert.rejects(readBodyBounded(res, 10, tooLarge), (e) => e instanceof TooLarge && e.declared === undefined);
    assert.equal(pulled(), 3, 'the third chunk passes the limit; the other seven are never read');
  });
});

describe('readTextBounded', () => {
  it('decodes UTF-8 as Buffer does: a leading BOM stays, a bad byte becomes U+FFFD', async () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0xc3, 0xa9, 0xff]);
    assert.equal(await readTextBounded(new Response(bytes), 64, tooLarge), '\ufeffhé\ufffd');
  });
});
