/**
 * src/p2p/length-prefix-decoder.ts: @libp2p/utils' LengthPrefixedDecoder (noise's message splitter) without a thrown
 * RangeError per received chunk, and otherwise the library's behaviour: the same messages from the same bytes however
 * they are cut, the same errors for oversized lengths and buffers.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { LengthPrefixedDecoder } from '@libp2p/utils';
import fc from 'fast-check';
import { Uint8ArrayList } from 'uint8arraylist';
import { installLengthPrefixFastPath, uninstallLengthPrefixFastPath } from '../../../src/p2p/length-prefix-decoder.js';

/** Noise's length decoder (@chainsafe/libp2p-noise encoder.ts), counting the calls that must throw. */
function u16Decoder(): { decode: (d: Uint8ArrayList) => number; short: () => number } {
  let short = 0;
  const decode = (d: Uint8ArrayList): number => {
    if (d.length < 2) {
      short++;
      throw new RangeError('Could not decode int16BE');
    }
    return d.getUint16(0);
  };
  return { decode, short: () => short };
}

function u16Frames(msgs: Uint8Array[]): Uint8Array {
  const out = new Uint8ArrayList();
  for (const m of msgs) {
    out.append(Uint8Array.of(m.byteLength >> 8, m.byteLength & 0xff));
    out.append(m);
  }
  return out.subarray();
}

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Uint8Array.from(out);
}

function varintFrames(msgs: Uint8Array[]): Uint8Array {
  const out = new Uint8ArrayList();
  for (const m of msgs) {
    out.append(varint(m.byteLength));
    out.append(m);
  }
  return out.subarray();
}

/** Cuts `bytes` at `cuts` (offsets, any order) and decodes chunk by chunk. */
function decodeAll(d: LengthPrefixedDecoder, bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set([0, ...cuts.map((c) => c % (bytes.byteLength + 1)), bytes.byteLength])].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  for (let i = 1; i < at.length; i++) for (const m of d.decode(bytes.subarray(at[i - 1], at[i]))) out.push(m.subarray());
  return out;
}

const messages = fc.array(fc.uint8Array({ minLength: 1, maxLength: 600 }), { minLength: 0, maxLength: 12 });
const cutsArb = fc.array(fc.nat(8000), { maxLength: 20 });

describe('length-prefix decoder fast path', () => {
  after(() => uninstallLengthPrefixFastPath());

  it('installs on the library class', () => {
    assert.equal(installLengthPrefixFastPath(), true);
  });

  it('calls the length decoder only when a length can be there (no RangeError per chunk)', () => {
    installLengthPrefixFastPath();
    const spy = u16Decoder();
    const d = new LengthPrefixedDecoder({ lengthDecoder: spy.decode, encodingLength: () => 2, maxBufferSize: 1 << 24 });
    const frame = u16Frames([new Uint8Array(3072).fill(1)]);
    let got = 0;
    // one whole message per chunk, as a request/response hop receives them: the library threw after each
    for (let i = 0; i < 100; i++) for (const m of d.decode(frame)) got += m.byteLength;
    assert.equal(got, 100 * 3072);
    assert.equal(spy.short(), 0, 'the length decoder was called on a buffer too short for a length');
  });

  it('gives the library decode\'s messages for any cutting (u16 and varint lengths)', () => {
    fc.assert(
      fc.property(messages, cutsArb, (msgs, cuts) => {
        for (const kind of ['u16', 'varint'] as const) {
          const bytes = kind === 'u16' ? u16Frames(msgs) : varintFrames(msgs);
          const make = (): LengthPrefixedDecoder => (kind === 'u16' ? new LengthPrefixedDecoder({ lengthDecoder: u16Decoder().decode, encodingLength: () => 2 }) : new LengthPrefixedDecoder());
          uninstallLengthPrefixFastPath();
          const theirs = decodeAll(make(), bytes, cuts);
          installLengthPrefixFastPath();
          const ours = decodeAll(make(), bytes, cuts);
          assert.deepEqual(ours, theirs);
          assert.deepEqual(ours, msgs);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the library\'s errors: a length over the limit, a buffer over the limit', () => {
    installLengthPrefixFastPath();
    const long = new LengthPrefixedDecoder({ lengthDecoder: u16Decoder().decode, encodingLength: () => 2, maxDataLength: 100 });
    assert.throws(() => [...long.decode(u16Frames([new Uint8Array(101)]))], { name: 'InvalidMessageLengthError' });
    const full = new LengthPrefixedDecoder({ maxBufferSize: 10 });
    assert.throws(() => [...full.decode(new Uint8Array(11))], { name: 'InvalidParametersError' });
  });
});
