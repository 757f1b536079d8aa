/**
 * An RPC method: its protocol name and version, call shape, message codecs, size limits and deadlines. The table
 * of NeuroShard methods is `../methods.ts`; tests define their own.
 */

export type CallKind = 'unary' | 'server-stream' | 'bidi';

export interface MessageCodec<T> {
  encode(value: T): Uint8Array;
  /**
   * Optional: the same bytes as `encode`, as parts whose large bytes fields are the value's own arrays (./parts.ts).
   * A unary request goes this way on a lane stream (no copy of a tensor's bytes before sealing); its arrays are then
   * read when the request is written, so the caller must not change them before the call settles.
   */
  encodeParts?(value: T): Uint8Array[];
  /**
   * Optional: the RPC frame of kind `kind` holding `encode(value)` (./frame.ts: uvarint(n) · kind · body), written
   * in one buffer as the message is encoded: the same bytes as `encodeFrame(kind, encode(value))` without a second
   * buffer of the message's size and the copy into it (a serving hop's every request and answer; docs/LIMITS.md
   * "Session 27: hop round trip").
   */
  encodeFramed?(value: T, kind: number): Uint8Array;
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

/** Adapts a protons-generated message namespace (encode/decode) to a MessageCodec. */
export function protoCodec<T>(ns: { encode(v: Partial<T>): Uint8Array; decode(b: Uint8Array): T }): MessageCodec<T> {
  return { encode: (v) => ns.encode(v), decode: (b) => ns.decode(b) };
}
