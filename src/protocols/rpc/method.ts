/**
 * An RPC method: its protocol name and version, call shape, message codecs, size limits and deadlines. The table
 * of NeuroShard methods is `../methods.ts`; tests define their own.
 */
import { writer as protonsWriter, type Codec } from 'protons-runtime';

export type CallKind = 'unary' | 'server-stream' | 'bidi';

export interface MessageCodec<T> {
  encode(value: T): Uint8Array;
  /**
   * The same bytes as `encode`, as parts in order: every bytes field of at least `minPart` bytes is its own part, a
   * view of the value's own array (not copied); the rest is encoded into buffers between them. The caller must not
   * change those arrays until the parts are written. Optional: a codec without it is encoded whole.
   */
  encodeParts?(value: T, minPart: number): Uint8Array[];
  /** Throws on bytes that are not a valid message. */
  decode(bytes: Uint8Array): T;
}

export interface MethodDef<Req, Res, K extends CallKind = CallKind> {
  /** Protocol name: /neuroshard/<networkId>/<name>/<version>. */
  name: string;
  version: string;
  kind: K;
  request: MessageCodec<Req>;
  response: MessageCodec<Res>;
  /** Largest request / response message body in bytes. */
  maxRequestBytes: number;
  maxResponseBytes: number;
  /**
   * unary: the deadline of the whole call (client) and of the handler (server).
   * streams: the longest gap between two frames on either side; callers bound the whole call with a signal.
   */
  timeoutMs: number;
  /** Streams: most frames in each direction per call. */
  maxFrames?: number;
  /** Concurrent inbound streams of this method per connection. */
  maxInboundStreams: number;
  /** Concurrent handler executions of this method across all peers; more get RPC_BUSY. */
  maxConcurrent: number;
  /**
   * Concurrent handler executions of this method for one peer; more get RPC_BUSY. Default a quarter of
   * maxConcurrent, but not below maxInboundStreams (what one connection may open anyway): one peer's calls, over
   * however many connections, cannot take every slot (issue 11, attack 9).
   */
  maxConcurrentPerPeer?: number;
  /**
   * Deadline for the first request frame to arrive once a stream opens; no slot is held meanwhile. Default
   * min(timeoutMs, 5 s + 1 ms per KiB of maxRequestBytes): a silent stream is reset long before the call
   * deadline, while a large request (a tensor) still has time to flow at about 1 MB/s.
   */
  requestReadMs?: number;
  /** Field checks beyond decoding (tensor shapes, ranges); throw a PeerMisbehaviourError. */
  validateRequest?(req: Req): void;
  validateResponse?(res: Res): void;
}

/** Base of the request read deadline (plus 1 ms per KiB of the method's largest request). */
export const REQUEST_READ_MS = 5_000;

/** The per-peer in-flight limit of a method. */
export function perPeerLimit(m: Pick<MethodDef<unknown, unknown>, 'maxConcurrent' | 'maxConcurrentPerPeer' | 'maxInboundStreams'>): number {
  // never below what one connection may open (maxInboundStreams): a peer on one connection keeps what it had
  return Math.min(m.maxConcurrent, m.maxConcurrentPerPeer ?? Math.max(1, Math.ceil(m.maxConcurrent / 4), m.maxInboundStreams));
}

/** The deadline for a stream's first request frame. */
export function requestReadMs(m: Pick<MethodDef<unknown, unknown>, 'timeoutMs' | 'requestReadMs' | 'maxRequestBytes'>): number {
  return Math.min(m.timeoutMs, m.requestReadMs ?? REQUEST_READ_MS + Math.ceil(m.maxRequestBytes / 1024));
}

export type UnaryMethod<Req, Res> = MethodDef<Req, Res, 'unary'>;
export type ServerStreamMethod<Req, Res> = MethodDef<Req, Res, 'server-stream'>;
export type BidiMethod<Req, Res> = MethodDef<Req, Res, 'bidi'>;

export type RequestOf<M> = M extends MethodDef<infer Req, unknown> ? Req : never;
export type ResponseOf<M> = M extends MethodDef<unknown, infer Res> ? Res : never;

/** A protons Writer's scheduled operations (protons-runtime utils/writer.js), read by encodeParts. */
interface WriterOp {
  fn: (val: unknown, buf: Uint8Array, pos: number) => void;
  len: number;
  val: unknown;
  next: WriterOp | undefined;
}

/**
 * Encodes `value` with a protons codec into parts (MessageCodec.encodeParts): protons' Writer first lists one
 * operation per field (its length known) and copies everything into one buffer in `finish()`; here the list is walked
 * instead, and an operation that would copy a large byte array (`buf.set(val, pos)`: its value is that array, its
 * length the array's) becomes a part of its own. Falls back to one `finish()` buffer when the writer does not look
 * as expected (another protons version).
 */
export function encodeProtoParts<T>(codec: Codec<T>, value: T, minPart: number): Uint8Array[] {
  const w = protonsWriter();
  codec.encode(value, w, { lengthDelimited: false });
  const wi = w as unknown as { head?: WriterOp; len?: number; states?: unknown };
  if (wi.head === undefined || typeof wi.len !== 'number' || wi.states != null) return [w.finish()];
  const parts: Uint8Array[] = [];
  let total = 0;
  let runFirst: WriterOp | undefined;
  let runLen = 0;
  const endRun = (stop: WriterOp | undefined): void => {
    if (runLen === 0) return;
    const buf = Buffer.allocUnsafe(runLen);
    let pos = 0;
    for (let op = runFirst; op !== stop && op !== undefined; op = op.next) {
      op.fn(op.val, buf, pos);
      pos += op.len;
    }
    parts.push(buf);
    runLen = 0;
    runFirst = undefined;
  };
  for (let op = wi.head.next; op !== undefined; op = op.next) {
    total += op.len;
    const v = op.val;
    if (v instanceof Uint8Array && op.len >= minPart && op.len === v.byteLength) {
      endRun(op);
      parts.push(v);
      continue;
    }
    runFirst ??= op;
    runLen += op.len;
  }
  endRun(undefined);
  if (total !== wi.len) return [w.finish()]; // not the list we know: the whole message, as encode() makes it
  return parts;
}

/** Adapts a protons-generated message namespace (encode/decode, and codec() for encodeParts) to a MessageCodec. */
export function protoCodec<T>(ns: { encode(v: Partial<T>): Uint8Array; decode(b: Uint8Array): T; codec?(): Codec<T> }): MessageCodec<T> {
  const c = ns.codec;
  return {
    encode: (v) => ns.encode(v),
    decode: (b) => ns.decode(b),
    ...(c === undefined ? {} : { encodeParts: (v: T, minPart: number) => encodeProtoParts(c(), v, minPart) }),
  };
}
