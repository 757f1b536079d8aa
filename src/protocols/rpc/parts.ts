/**
 * A protobuf message encoded as the list of its parts instead of one buffer: every bytes field of at least
 * PART_MIN_BYTES is a part of its own, the caller's own array (no copy), and the bytes between two such fields are
 * written into small buffers. Joined, the parts are exactly the bytes `encodeMessage` gives (test/unit/protocols/
 * rpc-parts.test.ts checks it); a sender that can write parts (a lane stream, ../../p2p/lane/stream.ts `sendParts`)
 * then seals a tensor's bytes straight from the caller's array, where the single-buffer encoding first copied them
 * into a fresh buffer of the message's size (a 1 MiB request: a fresh MiB and its memcpy per call, and the garbage
 * collection those buffers cost: docs/LIMITS.md "Session 23: 1 MiB on the lane, continued").
 *
 * It walks protons-runtime's writer (the list of pending write operations that `finish` would run into one
 * buffer). A writer of another shape (a protons-runtime upgrade) is detected and finished as before: one part.
 */
import { writer as createWriter, type Codec } from 'protons-runtime';

/** Bytes fields from this size on are parts of their own; smaller ones are copied with their neighbours. */
export const PART_MIN_BYTES = 64 * 1024;

/** One pending operation of protons-runtime's writer (utils/writer.js `Op`). */
interface WriterOp {
  fn: (val: unknown, buf: Uint8Array, pos: number) => void;
  len: number;
  val: unknown;
  next: WriterOp | undefined;
}

interface WriterInternals {
  head: WriterOp;
  len: number;
  finish(): Uint8Array;
}

function isWriterOp(o: unknown): o is WriterOp {
  return typeof o === 'object' && o !== null && typeof (o as WriterOp).fn === 'function' && typeof (o as WriterOp).len === 'number';
}

/** The message `value` of `codec` as parts in order (their total is the message's encoded length). */
export function encodeMessageParts<T>(codec: Codec<T>, value: Partial<T>, minPart = PART_MIN_BYTES): Uint8Array[] {
  const w = createWriter() as unknown as WriterInternals;
  codec.encode(value as T, w as never, { lengthDelimited: false });
  if (!isWriterOp(w.head) || typeof w.len !== 'number') return [w.finish()];
  const parts: Uint8Array[] = [];
  let op = w.head.next; // the first op is a no-op (writer.js finish skips it too)
  while (op !== undefined && op !== null) {
    // a run of small operations, written together into one buffer of their total size
    let run = 0;
    let end: WriterOp | undefined = op;
    while (end !== undefined && end !== null && !isLargeBytes(end, minPart)) {
      run += end.len;
      end = end.next;
    }
    if (run > 0) {
      // a Buffer, as writer.js's own finish allocates (its string writer calls Buffer methods on it)
      const buf = Buffer.allocUnsafe(run);
      let pos = 0;
      for (let o = op; o !== end; o = o.next!) {
        o.fn(o.val, buf, pos);
        pos += o.len;
      }
      parts.push(buf);
    }
    if (end === undefined || end === null) break;
    parts.push(end.val as Uint8Array);
    op = end.next;
  }
  return parts;
}

/** A bytes field's copy operation (writer.js `bytes`: val is the array itself, len its length) of minPart or more. */
function isLargeBytes(op: WriterOp, minPart: number): boolean {
  return op.len >= minPart && op.val instanceof Uint8Array && op.val.byteLength === op.len;
}

/**
 * The RPC frame (./frame.ts) of kind `kind` (< 0x80) holding the message `value` of `codec`, in one buffer: the kind
 * byte and the message are written as one length-delimited run (writer.js `fork` … `ldelim`), whose varint length
 * is the frame's own prefix (uvarint(body + 1), minimal LEB128 as frame.ts writes it). Same bytes as
 * `encodeFrame(kind, encodeMessage(value, codec))` (test/unit/protocols/rpc-parts.test.ts), one allocation.
 */
export function encodeMessageFramed<T>(codec: Codec<T>, value: Partial<T>, kind: number): Uint8Array {
  // a kind of one varint byte is that byte
  if (!Number.isInteger(kind) || kind < 0 || kind > 0x7f) throw new RangeError(`frame kind out of range: ${kind}`);
  const w = createWriter();
  w.fork();
  w.uint32(kind);
  codec.encode(value as T, w, { lengthDelimited: false });
  w.ldelim();
  return w.finish();
}

/** The total length of parts. */
export function partsLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  return n;
}

/** The parts joined into one buffer (a single part is returned as it is). */
export function joinParts(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(partsLength(parts));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}
