import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RpcViolationError } from '../../../src/protocols/rpc/errors.js';
import { FRAME_ERROR, FRAME_MESSAGE, FrameReader, encodeFrame, encodeUvarint } from '../../../src/protocols/rpc/frame.js';

async function* chunks(parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

function split(buf: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  for (const s of sizes) {
    if (o >= buf.length) break;
    out.push(buf.subarray(o, o + Math.max(1, s)));
    o += Math.max(1, s);
  }
  if (o < buf.length) out.push(buf.subarray(o));
  return out;
}

describe('length-prefixed frames', () => {
  it('round-trips any sequence of frames however the bytes are chunked', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ kind: fc.constantFrom(FRAME_MESSAGE, FRAME_ERROR), body: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 40 }),
        async (frames, sizes) => {
          const wire = Buffer.concat(frames.map((f) => encodeFrame(f.kind, f.body)));
          const r = new FrameReader(chunks(split(wire, sizes)));
          for (const f of frames) {
            const got = await r.next(1000);
            assert.equal(got?.kind, f.kind);
            assert.deepEqual([...got!.body], [...f.body]);
          }
          assert.equal(await r.next(1000), undefined);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('encodes varints minimally', () => {
    assert.deepEqual([...encodeUvarint(0)], [0]);
    assert.deepEqual([...encodeUvarint(300)], [0xac, 0x02]);
    assert.throws(() => encodeUvarint(-1));
  });

  it('rejects oversized frames from the prefix alone, before the body arrives', async () => {
    let pulled = 0;
    async function* src(): AsyncGenerator<Uint8Array> {
      pulled++;
      yield encodeUvarint(1 << 20);
      pulled++;
      yield new Uint8Array(1 << 20);
    }
    const r = new FrameReader(src());
    await assert.rejects(r.next(1024), (e: unknown) => e instanceof RpcViolationError && e.code === 'RPC_OVERSIZED');
    assert.equal(pulled, 1);
  });

  it('names each kind of broken framing', async () => {
    const cases: [Uint8Array[], string][] = [
      [[Uint8Array.of(3, 0, 1)], 'RPC_TRUNCATED'],
      [[Uint8Array.of(0x80)], 'RPC_TRUNCATED'],
      [[Uint8Array.of(0)], 'RPC_MALFORMED'],
      [[Uint8Array.of(0x81, 0x00, 0)], 'RPC_MALFORMED'],
      [[Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0x01)], 'RPC_MALFORMED'],
      [[Uint8Array.of(2, 9, 0)], 'RPC_UNKNOWN_FRAME'],
    ];
    for (const [parts, code] of cases) {
      await assert.rejects(new FrameReader(chunks(parts)).next(100), (e: unknown) => e instanceof RpcViolationError && e.code === code, code);
    }
  });
});
