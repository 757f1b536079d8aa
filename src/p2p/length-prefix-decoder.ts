/**
 * No exception per received message in noise's length-prefix decoder (issue 8 §5, the hop round trip's CPU).
 *
 * @chainsafe/libp2p-noise 17 splits what it reads into noise messages with `LengthPrefixedDecoder` from
 * @libp2p/utils 7. Its `decode` loops until the buffer holds no whole message, and learns that by calling the length
 * decoder and catching the RangeError it throws when too few bytes are left for a length. Every chunk read thus ends
 * in a thrown and caught error, usually on an empty buffer: an Error object with its stack trace per received TCP
 * chunk. Profiled on loopback (scripts/experiments/rpcprobe.mjs --only hop, `--cpu-prof`), noise's
 * `uint16BEDecode` was 5.7 % of the CPU of a hop's round trip, nearly all of it that Error.
 *
 * This replaces `decode` with the same loop that first checks whether the buffer can hold a length at all (the
 * encoding of length 0 is the shortest a length can be: 2 bytes for noise's u16, 1 for a varint) and stops without
 * calling the decoder when it cannot. Everything else is the library's code: the same limits, the same errors, the
 * same messages in the same order. A shorter-than-possible buffer is the only case skipped, and there the library
 * would have thrown a RangeError and stopped too.
 *
 * Process-wide once installed; a no-op when the class does not have the shape this relies on.
 */
import { InvalidParametersError } from '@libp2p/interface';
import { InvalidMessageLengthError, LengthPrefixedDecoder } from '@libp2p/utils';
import type { Uint8ArrayList } from 'uint8arraylist';

interface DecoderFields {
  buffer: Uint8ArrayList;
  maxBufferSize: number;
  maxDataLength: number;
  lengthDecoder: (data: Uint8ArrayList) => number;
  encodingLength: (length: number) => number;
}

type Decode = (this: DecoderFields, buf: Uint8Array | Uint8ArrayList) => Generator<Uint8ArrayList>;

let restore: (() => void) | undefined;

function* decode(this: DecoderFields, buf: Uint8Array | Uint8ArrayList): Generator<Uint8ArrayList> {
  this.buffer.append(buf);
  if (this.buffer.byteLength > this.maxBufferSize) {
    throw new InvalidParametersError(`Buffer length limit exceeded - ${this.buffer.byteLength}/${this.maxBufferSize}`);
  }
  const shortest = this.encodingLength(0);
  while (this.buffer.byteLength >= shortest) {
    let dataLength: number;
    try {
      dataLength = this.lengthDecoder(this.buffer);
    } catch (err) {
      // not enough bytes for the length (a varint cut short)
      if (err instanceof RangeError) break;
      throw err;
    }
    if (dataLength < 0 || dataLength > this.maxDataLength) throw new InvalidMessageLengthError('Invalid message length');
    const lengthLength = this.encodingLength(dataLength);
    const chunkLength = lengthLength + dataLength;
    if (this.buffer.byteLength < chunkLength) break;
    const out = this.buffer.sublist(lengthLength, chunkLength);
    this.buffer.consume(chunkLength);
    if (out.byteLength > 0) yield out;
  }
}

/** Installs the decode above on @libp2p/utils' LengthPrefixedDecoder (once per process); false when not applicable. */
export function installLengthPrefixFastPath(): boolean {
  if (restore !== undefined) return true;
  const proto = LengthPrefixedDecoder.prototype as unknown as { decode: Decode };
  const original = proto.decode;
  // the library's fields, checked on a fresh instance: a release that renames them keeps its own decode
  const probe = new LengthPrefixedDecoder() as unknown as Partial<DecoderFields>;
  if (typeof original !== 'function' || typeof probe.lengthDecoder !== 'function' || typeof probe.encodingLength !== 'function' || typeof probe.maxBufferSize !== 'number' || typeof probe.maxDataLength !== 'number' || probe.buffer === undefined) return false;
  proto.decode = decode;
  restore = () => {
    proto.decode = original;
  };
  return true;
}

/** Puts the library's own decode back (A/B measurements, tests). */
export function uninstallLengthPrefixFastPath(): void {
  restore?.();
  restore = undefined;
}
