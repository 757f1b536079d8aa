/**
 * An RPC method: its protocol name and version, call shape, message codecs, size limits and deadlines. The table
 * of NeuroShard methods is `../methods.ts`; tests define their own.
 */

export type CallKind = 'unary' | 'server-stream' | 'bidi';

export interface MessageCodec<T> {
  encode(value: T): Uint8Array;
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
  /** Field checks beyond decoding (tensor shapes, ranges); throw a PeerMisbehaviourError. */
  validateRequest?(req: Req): void;
  validateResponse?(res: Res): void;
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
