/**
 * The RPC layer: typed calls over P2PNetwork streams, one stream per call, or (unary calls with `reuseStreams`)
 * many calls on one long-lived stream per (peer, method): ./mux.ts.
 *
 *   unary          client: MESSAGE(req), half-close       server: MESSAGE(res) | ERROR, close
 *   server-stream  client: MESSAGE(req), half-close       server: MESSAGE(res)* [ERROR], close
 *   bidi           client: MESSAGE(req)*, half-close      server: MESSAGE(res)* [ERROR], close
 *
 * Every call has a deadline (unary: the whole call; streams: the longest gap between frames) and honours the
 * caller's AbortSignal. A peer that sends a malformed, oversized or unknown frame gets its stream reset and its
 * score lowered; the node never crashes on input. Handlers are registered per method by the components that own
 * them (a typed registry): the handler's types follow from the method definition.
 */
import { setMaxListeners } from 'node:events';
import { NetworkError } from '../../p2p/errors.js';
import type { StreamLanes } from '../../p2p/lane/manager.js';
import { PENALTY, type PeerScoreTable } from '../../p2p/peer-score.js';
import type { DuplexStream, P2PNetwork, PeerIdString, StreamInfo } from '../../p2p/types.js';
import { linkSignals, type AbortOptions } from '../../util/abort.js';
import { AbortedError, InvalidArgumentError, NeuroShardError, TimeoutError, errorMessage, isNeuroShardError, type Fault } from '../../util/errors.js';
import { TypedEmitter } from '../../util/events.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { protocolId } from '../ids.js';
import { RpcError as PbRpcError } from '../pb/node.js';
import { RemoteRpcError, RpcBusyError, RpcTransportError, RpcViolationError } from './errors.js';
import { FRAME_CANCEL, FRAME_ERROR, FRAME_MESSAGE, FRAME_PART, FrameReader, encodeFrame, framedBodyBytes, writeFrame, writeFramePartsAndClose, writeFrameWaiting, type Frame } from './frame.js';
import { joinParts, partsLength } from './parts.js';
import { ReadDeadline } from './deadline.js';
import { ID_BYTES, MUX_KINDS, MUX_MAX_INBOUND_STREAMS, MUX_MAX_REQUEST_BYTES, MUX_PIECE_BYTES, MuxAssembler, MuxChannel, MuxWriter, SERVER_IDLE_MS, muxProtocolOf, splitId } from './mux.js';
import { perPeerLimit, requestReadMs, type BidiMethod, type CallKind, type MethodDef, type ServerStreamMethod, type UnaryMethod } from './method.js';

export interface CallContext {
  /** The calling peer. */
  peer: PeerIdString;
  /** True when the call runs over a limited (relayed) connection. */
  limited: boolean;
  /**
   * The remote address of the connection (or lane) the call runs over, when the transport knows it: quotas per
   * address block (protocols/address-block.ts) read it; keys are free, address blocks are not.
   */
  remoteAddr?: string;
  /** Aborted when the call's deadline passes, the caller goes away or the node stops. */
  signal: AbortSignal;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Res | Promise<Res>;
export type ServerStreamHandler<Req, Res> = (req: Req, ctx: CallContext) => AsyncIterable<Res>;
export type BidiHandler<Req, Res> = (requests: AsyncIterable<Req>, ctx: CallContext) => AsyncIterable<Res>;

export interface CallOptions extends AbortOptions {
  /** Overrides the method's deadline (unary) or idle timeout (streams). */
  timeoutMs?: number;
  /**
   * Unary: the answer must arrive within this many ms of the request's last byte being written (a second deadline
   * beside `timeoutMs`, which also covers opening the stream). For answers that measure the peer, not our own
   * stream setup under load (liveness challenges).
   */
  answerTimeoutMs?: number;
}

export interface RpcEvents {
  /** A peer broke the protocol on one of our streams (it was penalised). */
  'rpc:violation': { peer: PeerIdString; method: string; code: string; message: string };
}

export interface RpcNodeOptions {
  network: P2PNetwork;
  networkId: string;
  scores?: PeerScoreTable;
  log?: Logger;
  /**
   * Unary calls reuse one stream per (peer, method) (./mux.ts), falling back to a stream per call for peers that
   * do not speak the reusable protocol. Default false. Either way the node serves both protocols.
   */
  reuseStreams?: boolean;
  /** Tests: how long a client keeps an idle reusable stream, and how long a server keeps one. */
  muxIdleMs?: { client?: number; server?: number };
  /**
   * Direct data lanes (p2p/lane/): every stream to a peer opens on its lane when one is up (or comes up within the
   * lanes' short wait), else on libp2p as before; every handler is served on lanes too. Undefined: libp2p only.
   */
  lanes?: StreamLanes;
}

/** How long we remember that a peer does not speak a method's reusable protocol (it may upgrade and restart). */
const NO_MUX_TTL_MS = 10 * 60_000;

const MAX_ERROR_BODY = 4096;

/**
 * How much a client reads for one answer frame: the method's response limit, or the error limit when that is larger.
 * A method with a tiny response (a 64-byte ack) still gets honest errors of up to MAX_ERROR_BODY; reading them under
 * the response limit turned a peer's "not ready yet" into RPC_OVERSIZED, a penalty and a ban.
 */
function responseReadLimit(method: { maxResponseBytes: number }): number {
  return Math.max(method.maxResponseBytes, MAX_ERROR_BODY);
}

/** The response-size check that responseReadLimit relaxed: a MESSAGE frame is held to the method's own limit. */
function responseFrame(method: { name: string; maxResponseBytes: number }, frame: Frame | undefined): Frame | undefined {
  if (frame !== undefined && frame.kind === FRAME_MESSAGE && frame.body.byteLength > method.maxResponseBytes) {
    const bytes = frame.body.byteLength;
    throw new RpcViolationError('RPC_OVERSIZED', `${method.name}: frame of ${bytes} bytes exceeds the limit of ${method.maxResponseBytes}`, { bytes, limit: method.maxResponseBytes });
  }
  return frame;
}
const ERROR_FLUSH_MS = 1000;
const FAULTS: readonly Fault[] = ['caller', 'peer', 'local', 'config'];

const PENALTY_BY_CODE: Record<string, number> = {
  RPC_OVERSIZED: PENALTY.oversized,
  RPC_MALFORMED: PENALTY.malformed,
  RPC_BAD_TENSOR: PENALTY.malformed,
  RPC_UNKNOWN_FRAME: PENALTY.malformed,
  RPC_TRUNCATED: PENALTY.protocol,
  RPC_PROTOCOL: PENALTY.protocol,
};

/** The peer id at the end of a multiaddr, or the argument itself when it is a peer id. */
function peerOf(target: string): string {
  if (!target.startsWith('/')) return target;
  const m = /\/p2p\/([^/]+)$/.exec(target);
  return m?.[1] ?? target;
}

/** A signal that fires when `ms` passes with the given reason, or when any parent fires. */
function timer(ms: number, what: string, ...parents: (AbortSignal | undefined)[]): { signal: AbortSignal; clear: () => void } {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(new TimeoutError(`${what} timed out after ${ms} ms`, { ms })), ms);
  if (parents.every((s) => s === undefined)) return { signal: ac.signal, clear: () => clearTimeout(t) };
  // not AbortSignal.any: a parent may live as long as the node, and Node never forgets what `any` hung on it
  const link = linkSignals(ac.signal, ...parents);
  return {
    signal: link.signal,
    clear: () => {
      clearTimeout(t);
      link.dispose();
    },
  };
}

/** `p`, or the signal's reason when it fires first (p keeps running). */
function raceSignal<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Frames below this go as one write (encodeFrame joins header and body), as rpc/frame.ts writeFrame sends them. */
const SEND_JOIN_BELOW = 64 * 1024;

/**
 * The reason a served unary call's own signal is aborted with once it finished (its handler's leftover work stops):
 * one shared instance, as `abort()` without a reason builds a DOMException with a stack trace each time (~20 us a
 * call in the 1 MiB lane bench's server; docs/LIMITS.md "Session 23: 1 MiB on the lane, continued").
 */
const CALL_FINISHED = new AbortedError('rpc call finished');

/**
 * Sends one frame: undefined when the stream took it at once, else a promise of the drain (or of writeFrame, for a
 * large body). A bidi request or stream response that fits the stream's buffer (every serving-hop step) then costs
 * no promise; writeFrame's two async layers were four promises per round trip.
 */
function sendFrame(stream: DuplexStream, kind: number, body: Uint8Array, signal: AbortSignal): Promise<void> | undefined {
  if (body.byteLength >= SEND_JOIN_BELOW) return writeFrame(stream, kind, body, { signal });
  if (stream.send(encodeFrame(kind, body))) return undefined;
  return stream.onDrain({ signal });
}

function responseTooLarge(method: { name: string; maxResponseBytes: number }, bytes: number): NeuroShardError {
  return new NeuroShardError('RPC_RESPONSE_TOO_LARGE', `${method.name} response of ${bytes} bytes exceeds ${method.maxResponseBytes}`, { fault: 'local' });
}

/** Resets the stream when the signal fires, so any pending read or write fails at once. */
function guard(stream: DuplexStream, signal: AbortSignal): () => void {
  const onAbort = (): void => stream.abort(signal.reason instanceof Error ? signal.reason : new AbortedError());
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/**
 * A reusable stream's key: the peer and the method's protocol, name and version. By name alone (until session 28) a
 * call of one version after a call of another to the same peer went out on the other version's stream: the server
 * judged it by that version's rules (a hop-transcript/1.0.0 request on a 2.0.0 stream: RPC_MALFORMED, and the honest
 * caller penalised).
 */
function channelKey(peer: string, method: { name: string; version: string }): string {
  return `${peer}\u0000${method.name}/${method.version}`;
}

export class RpcNode {
  readonly events = new TypedEmitter<RpcEvents>();
  private readonly network: P2PNetwork;
  private readonly networkId: string;
  private readonly scores: PeerScoreTable | undefined;
  private readonly log: Logger;
  private readonly handled = new Map<string, MethodDef<unknown, unknown>>();
  /** Handler executions in progress per method: all peers together, and per peer. */
  private readonly inflight = new Map<string, number>();
  private readonly inflightByPeer = new Map<string, Map<PeerIdString, number>>();
  private readonly closing = new AbortController();
  private readonly reuse: boolean;
  private readonly muxIdle: { client?: number; server?: number };
  /** Client ends of reusable streams, by peer and method; a pending open is shared by the calls waiting on it. */
  private readonly channels = new Map<string, { ready: Promise<MuxChannel>; channel?: MuxChannel }>();
  private readonly lanes: StreamLanes | undefined;
  /** (peer, method) pairs whose peer does not speak the reusable protocol, until when. */
  private readonly noMux = new Map<string, number>();
  /** Current unary handlers (a reusable stream outlives a re-registration: each request runs the current one). */
  private readonly unaryHandlers = new Map<string, (...args: unknown[]) => unknown>();
  /** Reusable streams being served, per protocol: unregistering the method closes them. */
  private readonly served = new Map<string, Set<AbortController>>();
  private readonly offDisconnect: () => void;

  constructor(opts: RpcNodeOptions) {
    this.network = opts.network;
    this.networkId = opts.networkId;
    this.scores = opts.scores;
    this.log = opts.log ?? silentLogger;
    this.reuse = opts.reuseStreams ?? false;
    this.muxIdle = opts.muxIdleMs ?? {};
    this.lanes = opts.lanes;
    // every served call, reusable stream and stream open links to `closing` until it ends (linkSignals disposes it):
    // their number is bounded by the methods' slots and inbound stream limits, not by 10 (Node's leak warning fired
    // at the 11th concurrent call under load)
    setMaxListeners(0, this.closing.signal);
    // a dead connection takes its streams with it; fail their calls now rather than at their deadlines
    this.offDisconnect = this.network.events.on('peer:disconnect', ({ peer }) => this.dropPeer(peer));
  }

  /** Whether unary calls reuse streams. */
  get reusesStreams(): boolean {
    return this.reuse;
  }

  /** Reusable client streams open now (tests). */
  openChannels(peer?: PeerIdString): number {
    let n = 0;
    for (const [k, c] of this.channels) if (c.channel !== undefined && (peer === undefined || k.startsWith(peer + '\u0000'))) n++;
    return n;
  }

  private dropPeer(peer: PeerIdString): void {
    for (const k of [...this.noMux.keys()]) if (k.startsWith(peer + '\u0000')) this.noMux.delete(k);
    for (const [k, c] of [...this.channels]) {
      if (!k.startsWith(peer + '\u0000')) continue;
      this.channels.delete(k);
      c.channel?.fail(new RpcTransportError('RPC_STREAM_RESET', `connection to ${peer} closed`, { peer }));
    }
  }

  protocolOf(method: MethodDef<unknown, unknown>): string {
    return protocolId(this.networkId, method.name, method.version);
  }

  /** Registers the handler of a method (replacing any earlier one). */
  async handle<Req, Res>(method: UnaryMethod<Req, Res>, handler: UnaryHandler<Req, Res>): Promise<void>;
  async handle<Req, Res>(method: ServerStreamMethod<Req, Res>, handler: ServerStreamHandler<Req, Res>): Promise<void>;
  async handle<Req, Res>(method: BidiMethod<Req, Res>, handler: BidiHandler<Req, Res>): Promise<void>;
  async handle(method: MethodDef<unknown, unknown>, handler: (...args: never[]) => unknown): Promise<void> {
    const protocol = this.protocolOf(method);
    this.handled.set(protocol, method);
    const serve = (stream: DuplexStream, info: StreamInfo): Promise<void> => this.serve(method, handler as never, stream, info);
    await this.network.handle(protocol, serve, { maxInboundStreams: method.maxInboundStreams });
    this.lanes?.handle(protocol, serve, { maxInboundStreams: method.maxInboundStreams });
    if (method.kind === 'unary') {
      this.unaryHandlers.set(protocol, handler as never);
      const serveMux = (stream: DuplexStream, info: StreamInfo): Promise<void> => this.serveMux(method, protocol, stream, info);
      await this.network.handle(muxProtocolOf(protocol), serveMux, { maxInboundStreams: MUX_MAX_INBOUND_STREAMS });
      this.lanes?.handle(muxProtocolOf(protocol), serveMux, { maxInboundStreams: MUX_MAX_INBOUND_STREAMS });
    }
  }

  async unhandle(method: MethodDef<unknown, unknown, CallKind>): Promise<void> {
    const protocol = this.protocolOf(method);
    this.handled.delete(protocol);
    this.lanes?.unhandle(protocol);
    await this.network.unhandle(protocol);
    if (method.kind === 'unary') {
      this.unaryHandlers.delete(protocol);
      this.lanes?.unhandle(muxProtocolOf(protocol));
      await this.network.unhandle(muxProtocolOf(protocol));
      for (const c of this.served.get(protocol) ?? []) c.abort(new AbortedError(`${method.name} is no longer served`));
    }
  }

  /** Unregisters every handler and aborts the calls in progress. */
  async close(): Promise<void> {
    this.closing.abort(new AbortedError('rpc closing'));
    this.offDisconnect();
    for (const [p, m] of [...this.handled]) {
      this.lanes?.unhandle(p);
      if (m.kind === 'unary') this.lanes?.unhandle(muxProtocolOf(p));
      await this.network.unhandle(p).catch(() => {});
      if (m.kind === 'unary') await this.network.unhandle(muxProtocolOf(p)).catch(() => {});
    }
    this.handled.clear();
    for (const c of [...this.channels.values()]) c.channel?.fail(new AbortedError('rpc closing'));
    this.channels.clear();
  }

  // ───────────────────────────── client ─────────────────────────────

  /**
   * A unary call. Throws RemoteRpcError, RpcViolationError, RpcTransportError, TimeoutError or AbortedError.
   * The request's bytes fields of 64 KiB or more are read when the request is written (on a lane, sealed straight
   * from them: rpc/parts.ts), not when `call` is called: leave them unchanged until the call settles.
   */
  async call<Req, Res>(peer: string, method: UnaryMethod<Req, Res>, req: Req, opts: CallOptions = {}): Promise<Res> {
    const ms = opts.timeoutMs ?? method.timeoutMs;
    // the request's large bytes fields stay the caller's arrays (MessageCodec.encodeParts): a lane seals them from
    // there; the caller must not change them before the call settles
    const parts = this.encodeRequestParts(method, req);
    const bodyBytes = partsLength(parts);
    const t = timer(ms, `${method.name} call`, opts.signal);
    // the answer deadline, armed once the request is written (CallOptions.answerTimeoutMs)
    const answer = opts.answerTimeoutMs === undefined ? undefined : new AbortController();
    let answerTimer: NodeJS.Timeout | undefined;
    const link = answer === undefined ? undefined : linkSignals(answer.signal, t.signal);
    const signal = link?.signal ?? t.signal;
    const written = answer === undefined ? undefined : (): void => {
      if (signal.aborted) return; // a cancelled call's request, dropped from the writer's queue
      const a = opts.answerTimeoutMs!;
      answerTimer = setTimeout(() => answer.abort(new TimeoutError(`${method.name}: no answer within ${a} ms of the request`, { ms: a })), a);
    };
    try {
      // a request over MUX_MAX_REQUEST_BYTES goes on a stream of its own (bounds what a server buffers per stream)
      if (this.reuse && !this.closing.signal.aborted && bodyBytes <= MUX_MAX_REQUEST_BYTES) {
        const ch = await this.channelFor(peer, method, signal);
        if (ch !== undefined) {
          try {
            return this.decodeResponse(method, await ch.request(joinParts(parts), signal, written));
          } catch (e) {
            // the shared stream is not this call's to reset: a violation in one answer is penalised, the stream lives
            throw this.clientFailure(e, undefined, peer, method, signal);
          }
        }
      }
      try {
        return await this.callOnStream(peer, method, parts, signal, written);
      } catch (e) {
        // it speaks neither protocol of the method now (not registered yet, between two sessions of its handlers): it
        // is no older node without reusable streams, so reuse is tried again at the next call, not in NO_MUX_TTL_MS
        if (this.reuse && isNeuroShardError(e) && e.code === 'RPC_UNAVAILABLE' && e.meta?.reason === 'unsupported-protocol') this.noMux.delete(channelKey(peerOf(peer), method));
        throw e;
      }
    } finally {
      t.clear();
      clearTimeout(answerTimer);
      link?.dispose();
    }
  }

  /** The open reusable stream for (peer, method), opened when needed; undefined when the peer does not speak it. */
  private async channelFor(peer: string, method: UnaryMethod<unknown, unknown>, signal: AbortSignal): Promise<MuxChannel | undefined> {
    const id = peerOf(peer);
    const key = channelKey(id, method);
    const until = this.noMux.get(key);
    if (until !== undefined) {
      if (Date.now() < until) return undefined;
      this.noMux.delete(key);
    }
    let entry = this.channels.get(key);
    if (entry?.channel !== undefined && this.lanes !== undefined && !entry.channel.onLane && this.lanes.hasLane(id)) {
      // a lane came up after this stream opened on libp2p: new calls take the lane, the old stream finishes its own
      this.channels.delete(key);
      entry.channel.retire();
      entry = undefined;
    }
    // MAX_CLIENT_PENDING calls in flight on it: this call takes a stream of its own rather than wait
    if (entry?.channel !== undefined && !entry.channel.usable) return undefined;
    if (entry === undefined) {
      const opened = this.openChannel(peer, id, key, method);
      entry = { ready: opened };
      const e = entry;
      this.channels.set(key, e);
      opened.then(
        (ch) => {
          if (this.channels.get(key) === e) e.channel = ch;
        },
        () => {
          if (this.channels.get(key) === e) this.channels.delete(key);
        },
      );
    }
    try {
      return await raceSignal(entry.ready, signal);
    } catch (e) {
      if (isNeuroShardError(e) && e.code === 'RPC_UNAVAILABLE' && (e as RpcTransportError).meta?.reason === 'unsupported-protocol') {
        return undefined;
      }
      throw this.clientFailure(e, undefined, peer, method, signal);
    }
  }

  /**
   * Opens a reusable stream with a deadline of its own (the method's timeout), so that the first caller giving up
   * does not fail the others waiting on the same open.
   */
  private async openChannel(peer: string, id: PeerIdString, key: string, method: UnaryMethod<unknown, unknown>): Promise<MuxChannel> {
    const protocol = muxProtocolOf(this.protocolOf(method));
    const t = timer(method.timeoutMs, `${method.name} stream open`, this.closing.signal);
    let stream: DuplexStream;
    try {
      stream = await this.open(peer, method, t.signal, protocol);
    } catch (e) {
      if (isNeuroShardError(e) && e.code === 'RPC_UNAVAILABLE' && e.meta?.reason === 'unsupported-protocol') {
        // an older node: a stream per call for this method, for a while
        this.noMux.set(key, Date.now() + NO_MUX_TTL_MS);
        this.log.debug('peer does not reuse streams; one stream per call', { peer: id, method: method.name });
      }
      throw e;
    } finally {
      t.clear();
    }
    const ch: MuxChannel = new MuxChannel({
      stream,
      peer: id,
      method: method.name,
      maxResponseBytes: method.maxResponseBytes,
      maxErrorBytes: MAX_ERROR_BODY,
      stallMs: method.timeoutMs,
      idleMs: this.muxIdle.client,
      onLane: this.lanes?.isLaneStream(stream) ?? false,
      onViolation: (v) => this.violation(id, method, v),
      onEnd: (c) => {
        if (this.channels.get(key)?.channel === c) this.channels.delete(key);
      },
    });
    return ch;
  }

  /** A unary call on a stream of its own. */
  private async callOnStream<Res>(peer: string, method: UnaryMethod<unknown, Res>, parts: readonly Uint8Array[], signal: AbortSignal, written?: () => void): Promise<Res> {
    const t = { signal };
    let stream: DuplexStream | undefined;
    try {
      stream = await this.open(peer, method, t.signal);
      const unguard = guard(stream, t.signal);
      try {
        await writeFramePartsAndClose(stream, FRAME_MESSAGE, parts, { signal: t.signal });
        written?.();
        const reader = new FrameReader(stream);
        const frame = responseFrame(method, await reader.next(responseReadLimit(method)));
        if (frame === undefined) throw new RpcViolationError('RPC_TRUNCATED', `${method.name}: stream closed without a response`);
        return this.decodeResponse(method, frame);
      } finally {
        unguard();
      }
    } catch (e) {
      throw this.clientFailure(e, stream, peer, method, t.signal);
    }
  }

  /** A server-streaming call: yields each response; the method's timeout bounds the gap between responses. */
  async *serverStream<Req, Res>(peer: string, method: ServerStreamMethod<Req, Res>, req: Req, opts: CallOptions = {}): AsyncGenerator<Res> {
    const body = this.encodeRequest(method, req);
    yield* this.streamCall(peer, method, opts, async (stream, signal) => {
      await writeFrame(stream, FRAME_MESSAGE, body, { signal });
      await stream.close({ signal });
    });
  }

  /**
   * A bidirectional call: sends every request from `requests`, yields every response. The generator is streamCall's
   * own (no `yield*` wrapper: a delegating async generator cost two promises per response on the serving hop).
   */
  bidi<Req, Res>(peer: string, method: BidiMethod<Req, Res>, requests: AsyncIterable<Req> | Iterable<Req>, opts: CallOptions = {}): AsyncGenerator<Res> {
    return this.streamCall(peer, method, opts, async (stream, signal) => {
      let n = 0;
      for await (const r of requests) {
        if (++n > (method.maxFrames ?? Infinity)) throw new InvalidArgumentError(`${method.name}: more than ${method.maxFrames} requests`);
        const w = this.sendRequest(stream, method, r, signal);
        if (w !== undefined) await w;
      }
      await stream.close({ signal });
    });
  }

  private async *streamCall<Req, Res>(
    peer: string,
    method: MethodDef<Req, Res>,
    opts: CallOptions,
    send: (stream: DuplexStream, signal: AbortSignal) => Promise<void>,
  ): AsyncGenerator<Res> {
    const idleMs = opts.timeoutMs ?? method.timeoutMs;
    const ac = new AbortController();
    // not AbortSignal.any: the caller's signal may live as long as the node (see linkSignals)
    const link = opts.signal === undefined ? undefined : linkSignals(ac.signal, opts.signal);
    const signal = link?.signal ?? ac.signal;
    let stream: DuplexStream | undefined;
    let finished = false;
    let sendError: unknown;
    try {
      const open = timer(idleMs, `${method.name} open`, signal);
      try {
        stream = await this.open(peer, method, open.signal);
      } finally {
        open.clear();
      }
      const s = stream;
      const unguard = guard(s, signal);
      // The sender runs beside the reader: a bidi server may answer before we have sent everything.
      const sending = send(s, signal).catch((e: unknown) => {
        sendError = e;
        s.abort(e instanceof Error ? e : new Error(String(e)));
      });
      // one read deadline for the stream's life (./deadline.ts), not a timer per response
      const deadline = new ReadDeadline((e) => s.abort(e), (ms) => `${method.name} response: nothing received for ${ms} ms`);
      try {
        const reader = new FrameReader(s);
        const limit = responseReadLimit(method);
        let frames = 0;
        for (;;) {
          deadline.start(idleMs);
          let raw: Frame | undefined;
          try {
            raw = await reader.next(limit);
          } catch (e) {
            throw deadline.expired ?? e;
          } finally {
            deadline.stop();
          }
          const frame = responseFrame(method, raw);
          if (frame === undefined) break;
          if (++frames > (method.maxFrames ?? Infinity)) throw new RpcViolationError('RPC_PROTOCOL', `${method.name}: more than ${method.maxFrames} responses`);
          yield this.decodeResponse(method, frame);
        }
        await sending;
        if (sendError !== undefined) throw sendError;
        finished = true;
      } finally {
        deadline.dispose();
        unguard();
      }
    } catch (e) {
      if (sendError !== undefined && !(e instanceof RpcViolationError)) throw this.clientFailure(sendError, stream, peer, method, signal);
      throw this.clientFailure(e, stream, peer, method, signal);
    } finally {
      if (!finished) {
        ac.abort(new AbortedError(`${method.name} call ended early`));
        stream?.abort(new AbortedError(`${method.name} call ended early`));
      }
      link?.dispose();
    }
  }

  private async open(peer: string, method: MethodDef<unknown, unknown>, signal: AbortSignal, protocol = this.protocolOf(method)): Promise<DuplexStream> {
    if (this.lanes !== undefined && !this.closing.signal.aborted) {
      // the peer's lane when one is up; undefined (no lane, refused, dead) takes libp2p below
      const s = await this.lanes.openStream(peerOf(peer), protocol, signal);
      if (s !== undefined) return s;
    }
    try {
      return await this.network.openStream(peer, protocol, { signal, allowLimited: true });
    } catch (e) {
      if (signal.aborted) throw e;
      const code = isNeuroShardError(e) ? e.code : 'UNKNOWN';
      if (code === 'PROTOCOL_UNSUPPORTED') {
        throw new RpcTransportError('RPC_UNAVAILABLE', `${peerOf(peer)} does not speak ${protocol}`, { peer: peerOf(peer), reason: 'unsupported-protocol' }, e);
      }
      throw new RpcTransportError('RPC_UNAVAILABLE', `cannot reach ${peerOf(peer)} for ${method.name}: ${errorMessage(e)}`, { peer: peerOf(peer), reason: code }, e);
    }
  }

  /** encodeRequest as parts (MessageCodec.encodeParts; one part where the codec has none). */
  private encodeRequestParts<Req>(method: MethodDef<Req, unknown>, req: Req): Uint8Array[] {
    if (method.request.encodeParts === undefined) return [this.encodeRequest(method, req)];
    const parts = method.request.encodeParts(req);
    const n = partsLength(parts);
    if (n > method.maxRequestBytes) {
      throw new InvalidArgumentError(`${method.name} request of ${n} bytes exceeds the limit of ${method.maxRequestBytes}`);
    }
    return parts;
  }

  /**
   * One request of a bidi call, as sendFrame sends it; a codec that writes the frame itself (encodeFramed: the
   * header and the message in one buffer) spares the join's buffer and copy, the same bytes.
   */
  private sendRequest<Req>(stream: DuplexStream, method: MethodDef<Req, unknown>, req: Req, signal: AbortSignal): Promise<void> | undefined {
    const c = method.request;
    if (c.encodeFramed === undefined) return sendFrame(stream, FRAME_MESSAGE, this.encodeRequest(method, req), signal);
    const frame = c.encodeFramed(req, FRAME_MESSAGE);
    const n = framedBodyBytes(frame);
    if (n > method.maxRequestBytes) {
      throw new InvalidArgumentError(`${method.name} request of ${n} bytes exceeds the limit of ${method.maxRequestBytes}`);
    }
    if (n >= SEND_JOIN_BELOW) return writeFrame(stream, FRAME_MESSAGE, frame.subarray(frame.byteLength - n), { signal });
    if (stream.send(frame)) return undefined;
    return stream.onDrain({ signal });
  }

  private encodeRequest<Req>(method: MethodDef<Req, unknown>, req: Req): Uint8Array {
    const body = method.request.encode(req);
    if (body.byteLength > method.maxRequestBytes) {
      throw new InvalidArgumentError(`${method.name} request of ${body.byteLength} bytes exceeds the limit of ${method.maxRequestBytes}`);
    }
    return body;
  }

  private decodeResponse<Res>(method: MethodDef<unknown, Res>, frame: Frame): Res {
    if (frame.kind === FRAME_ERROR) throw this.decodeRemoteError(frame.body);
    let res: Res;
    try {
      res = method.response.decode(frame.body);
    } catch (e) {
      throw new RpcViolationError('RPC_MALFORMED', `${method.name}: undecodable response: ${errorMessage(e)}`);
    }
    method.validateResponse?.(res);
    return res;
  }

  private decodeRemoteError(body: Uint8Array): RemoteRpcError | RpcViolationError {
    if (body.byteLength > MAX_ERROR_BODY) return new RpcViolationError('RPC_OVERSIZED', `error frame of ${body.byteLength} bytes`);
    try {
      const e = PbRpcError.decode(body);
      const fault = (FAULTS as readonly string[]).includes(e.fault) ? (e.fault as Fault) : 'peer';
      return new RemoteRpcError(e.code.slice(0, 64) || 'RPC_REMOTE', e.message.slice(0, 512), fault);
    } catch (err) {
      return new RpcViolationError('RPC_MALFORMED', `undecodable error frame: ${errorMessage(err)}`);
    }
  }

  /** Turns whatever a client call threw into the typed error it should surface, penalising a misbehaving peer. */
  private clientFailure(e: unknown, stream: DuplexStream | undefined, peer: string, method: MethodDef<unknown, unknown>, signal: AbortSignal): unknown {
    if (e instanceof NeuroShardError && e.fault === 'peer' && e instanceof RpcViolationError) {
      this.violation(peerOf(peer), method, e);
      stream?.abort(e);
      return e;
    }
    // A transport failure (NetworkError: the dial or stream open failed or hit our deadline, the peer lacks the
    // protocol) is not misbehaviour: on a loaded machine honest peers time out, and penalising that banned them all
    // (pool.test.ts at load 30: `holder-record: STREAM_OPEN_ABORTED` bans until the network fell apart). Liveness and
    // the router's failover deal with unreachable peers.
    if (e instanceof NeuroShardError && e.fault === 'peer' && !(e instanceof RemoteRpcError) && !(e instanceof RpcTransportError) && !(e instanceof NetworkError)) {
      // A validateResponse failure (e.g. a bad tensor) is the peer's misbehaviour as well.
      this.violation(peerOf(peer), method, e);
      stream?.abort(e);
      return e;
    }
    if (signal.aborted) {
      stream?.abort(signal.reason instanceof Error ? signal.reason : new AbortedError());
      if (signal.reason instanceof TimeoutError) return signal.reason;
      if (signal.reason instanceof NeuroShardError) return signal.reason;
      return new AbortedError(`${method.name} aborted`);
    }
    if (e instanceof NeuroShardError) return e;
    stream?.abort(e instanceof Error ? e : new Error(String(e)));
    return new RpcTransportError('RPC_STREAM_RESET', `${method.name}: stream failed: ${errorMessage(e)}`, { peer: peerOf(peer) }, e);
  }

  private violation(peer: PeerIdString, method: MethodDef<unknown, unknown>, e: NeuroShardError): void {
    const points = PENALTY_BY_CODE[e.code] ?? PENALTY.malformed;
    this.scores?.penalise(peer, points, `${method.name}: ${e.code}`);
    this.log.debug('peer broke the RPC protocol', { peer, method: method.name, code: e.code, error: e.message });
    this.events.emit('rpc:violation', { peer, method: method.name, code: e.code, message: e.message });
  }

  /** Handler executions of `method` in progress (for one peer when given). */
  inFlight(method: MethodDef<unknown, unknown, CallKind>, peer?: PeerIdString): number {
    if (peer === undefined) return this.inflight.get(method.name) ?? 0;
    return this.inflightByPeer.get(method.name)?.get(peer) ?? 0;
  }

  /** Takes a handler slot for `peer`; false when the method's global or per-peer limit is reached. */
  private takeSlot(method: MethodDef<unknown, unknown>, peer: PeerIdString): boolean {
    const n = this.inflight.get(method.name) ?? 0;
    let byPeer = this.inflightByPeer.get(method.name);
    const mine = byPeer?.get(peer) ?? 0;
    if (n >= method.maxConcurrent || mine >= perPeerLimit(method)) return false;
    if (byPeer === undefined) this.inflightByPeer.set(method.name, (byPeer = new Map()));
    this.inflight.set(method.name, n + 1);
    byPeer.set(peer, mine + 1);
    return true;
  }

  private releaseSlot(method: MethodDef<unknown, unknown>, peer: PeerIdString): void {
    this.inflight.set(method.name, Math.max(0, (this.inflight.get(method.name) ?? 1) - 1));
    const byPeer = this.inflightByPeer.get(method.name);
    const mine = (byPeer?.get(peer) ?? 1) - 1;
    if (mine <= 0) byPeer?.delete(peer);
    else byPeer?.set(peer, mine);
  }

  // ───────────────────────────── server ─────────────────────────────

  private async serve(method: MethodDef<unknown, unknown>, handler: (...args: unknown[]) => unknown, stream: DuplexStream, info: StreamInfo): Promise<void> {
    const { peer } = info;
    if (this.scores?.isBanned(peer) === true) {
      stream.abort(new Error('peer is banned'));
      return;
    }
    const ac = new AbortController();
    // not AbortSignal.any: `closing` lives as long as the node, and every served call would leave an entry on it
    const link = linkSignals(ac.signal, this.closing.signal);
    const signal = link.signal;
    const unguard = guard(stream, signal);
    // The caller going away (its deadline, its abort, its node dying) resets the stream: stop the handler.
    stream.addEventListener('close', (evt) => {
      if (evt.error !== undefined) ac.abort(new AbortedError(`${method.name}: caller reset the stream`));
    }, { once: true });
    const reader = new FrameReader(stream);
    // one read deadline for the stream's life (./deadline.ts), not a timer per request
    const deadline = new ReadDeadline((e) => stream.abort(e), (ms) => `${method.name} request: nothing received for ${ms} ms`);
    let violation: NeuroShardError | undefined;
    const ctx: CallContext = { peer, limited: info.limited, remoteAddr: info.remoteAddr, signal };
    const failed = (e: unknown): never => {
      if (e instanceof NeuroShardError && e.fault === 'peer') violation = e;
      throw e;
    };
    const decodeRequest = (frame: Frame | undefined, required: boolean): unknown => {
      if (frame === undefined) {
        if (required) throw new RpcViolationError('RPC_TRUNCATED', `${method.name}: stream closed without a request`);
        return undefined;
      }
      if (frame.kind !== FRAME_MESSAGE) throw new RpcViolationError('RPC_PROTOCOL', `${method.name}: a client may only send MESSAGE frames`);
      let req: unknown;
      try {
        req = method.request.decode(frame.body);
      } catch (e) {
        throw new RpcViolationError('RPC_MALFORMED', `${method.name}: undecodable request: ${errorMessage(e)}`);
      }
      method.validateRequest?.(req);
      return req;
    };
    // a plain promise chain, not an async function: one promise per request instead of three (the serving hop)
    const readRequest = (required: boolean, ms: number): Promise<unknown> => {
      deadline.start(ms);
      return reader.next(method.maxRequestBytes).then(
        (frame) => {
          deadline.stop();
          try {
            return decodeRequest(frame, required);
          } catch (e) {
            return failed(e);
          }
        },
        (e: unknown) => {
          deadline.stop();
          return failed(deadline.expired ?? e);
        },
      );
    };
    let slot = false;
    try {
      // Slots are taken only once a request has arrived: a silent or slow stream holds none (attack 9).
      // The first request must arrive within the (short) request read deadline (a bidi call may send none).
      const firstReq = await readRequest(method.kind !== 'bidi', requestReadMs(method));
      if (!this.takeSlot(method, peer)) {
        await this.replyError(stream, new RpcBusyError(method.name), method.kind === 'bidi');
        return;
      }
      slot = true;
      if (method.kind === 'unary') {
        const res = await this.runUnary(method, handler, firstReq, ctx);
        await this.replyMessage(stream, method, this.encodeResponse(method, res), signal);
      } else {
        let source: AsyncIterable<unknown>;
        if (method.kind === 'server-stream') {
          source = handler(firstReq, ctx) as AsyncIterable<unknown>;
        } else {
          source = handler(this.requestIterable(method, firstReq, readRequest, (v) => (violation = v)), ctx) as AsyncIterable<unknown>;
        }
        let frames = 0;
        for await (const res of source) {
          if (++frames > (method.maxFrames ?? Infinity)) throw new NeuroShardError('RPC_INTERNAL', `${method.name}: handler produced more than ${method.maxFrames} responses`);
          const w = this.sendReply(stream, method, res, signal);
          if (w !== undefined) await w;
        }
        const closing = timer(method.timeoutMs, `${method.name} close`, signal);
        try {
          await stream.close({ signal: closing.signal });
        } finally {
          closing.clear();
        }
      }
    } catch (e) {
      if (violation !== undefined) {
        this.violation(peer, method, violation);
        // When the peer may still be writing (we skipped an oversized body, the framing is broken, or a bidi
        // call) the stream is reset after the error frame; otherwise the error frame and a close suffice.
        const reset = violation.code === 'RPC_OVERSIZED' || violation.code === 'RPC_UNKNOWN_FRAME' || method.kind === 'bidi';
        await this.replyError(stream, violation, reset);
      } else if (signal.aborted && !(signal.reason instanceof TimeoutError)) {
        stream.abort(signal.reason instanceof Error ? signal.reason : new AbortedError());
      } else if (e instanceof NeuroShardError) {
        await this.replyError(stream, e);
      } else if (isStreamError(e)) {
        stream.abort(e as Error);
      } else {
        this.log.error('rpc handler failed', { method: method.name, peer, error: errorMessage(e) });
        await this.replyError(stream, new NeuroShardError('RPC_INTERNAL', `${method.name}: internal error`, { fault: 'local' }));
      }
    } finally {
      deadline.dispose();
      unguard();
      ac.abort(CALL_FINISHED);
      link.dispose();
      if (slot) this.releaseSlot(method, peer);
    }
  }

  /**
   * A bidi call's requests as its handler iterates them: the first (already read), then one read per next() until
   * the caller half-closes. Hand-written rather than an async generator: a generator's next() and its awaits cost
   * four promises per request on the serving hop, this one the read's own. Past maxFrames requests the next read is
   * a protocol violation (`violated`), as is anything readRequest finds wrong.
   */
  private requestIterable(method: MethodDef<unknown, unknown>, first: unknown, readRequest: (required: boolean, ms: number) => Promise<unknown>, violated: (e: RpcViolationError) => void): AsyncIterable<unknown> {
    let done = first === undefined;
    let sentFirst = false;
    let reads = 0;
    const end = (): IteratorResult<unknown> => {
      done = true;
      return { done: true, value: undefined };
    };
    const it: AsyncIterator<unknown> = {
      next: () => {
        if (done) return Promise.resolve(end());
        if (!sentFirst) {
          sentFirst = true;
          return Promise.resolve({ done: false, value: first });
        }
        if (++reads >= (method.maxFrames ?? Infinity)) {
          done = true;
          const v = new RpcViolationError('RPC_PROTOCOL', `${method.name}: more than ${method.maxFrames} requests`);
          violated(v);
          return Promise.reject(v);
        }
        return readRequest(false, method.timeoutMs).then(
          (r) => (r === undefined ? end() : { done: false, value: r }),
          (e: unknown) => {
            done = true;
            throw e;
          },
        );
      },
      return: () => Promise.resolve(end()),
    };
    return { [Symbol.asyncIterator]: () => it };
  }

  /** Runs a unary handler under the method's deadline (the handler sees a signal that fires at it). */
  private async runUnary(method: MethodDef<unknown, unknown>, handler: (...args: unknown[]) => unknown, req: unknown, ctx: CallContext): Promise<unknown> {
    const t = timer(method.timeoutMs, `${method.name} handler`, ctx.signal);
    try {
      return await Promise.race([
        Promise.resolve(handler(req, { ...ctx, signal: t.signal })),
        new Promise<never>((_, reject) => {
          const fail = (): void => reject(t.signal.reason instanceof Error ? t.signal.reason : new AbortedError());
          if (t.signal.aborted) fail();
          else t.signal.addEventListener('abort', fail, { once: true });
        }),
      ]);
    } finally {
      t.clear();
    }
  }

  private encodeResponse(method: MethodDef<unknown, unknown>, res: unknown): Uint8Array {
    const body = method.response.encode(res);
    if (body.byteLength > method.maxResponseBytes) throw responseTooLarge(method, body.byteLength);
    return body;
  }

  /**
   * Serves a reusable unary stream (./mux.ts): every request runs as a one-call stream's would (decoding,
   * validation, penalties, slots, handler deadline); answers go back by id in the order they finish.
   */
  private async serveMux(method: MethodDef<unknown, unknown>, protocol: string, stream: DuplexStream, info: StreamInfo): Promise<void> {
    const { peer } = info;
    if (this.scores?.isBanned(peer) === true) {
      stream.abort(new Error('peer is banned'));
      return;
    }
    const life = new AbortController();
    let served = this.served.get(protocol);
    if (served === undefined) this.served.set(protocol, (served = new Set()));
    served.add(life);
    const link = linkSignals(life.signal, this.closing.signal);
    const signal = link.signal;
    // every call running on the stream links its signal to this one (serveMuxCall): up to the method's slots
    setMaxListeners(method.maxConcurrent + 16, signal);
    const unguard = guard(stream, signal);
    stream.addEventListener('close', (evt) => {
      if (evt.error !== undefined) life.abort(new AbortedError(`${method.name}: caller reset the stream`));
    }, { once: true });
    const writer = new MuxWriter(stream, method.timeoutMs, signal);
    const reader = new FrameReader(stream, MUX_KINDS);
    const parts = new MuxAssembler();
    const maxRequest = Math.min(method.maxRequestBytes, MUX_MAX_REQUEST_BYTES);
    const calls = new Map<number, AbortController>();
    const running = new Set<Promise<void>>();
    const idleMs = this.muxIdle.server ?? SERVER_IDLE_MS;
    const idle = new ReadDeadline((e) => stream.abort(e), (ms) => `${method.name} stream: idle for ${ms} ms`, () => calls.size > 0);
    // a client that stops reading answers stops our reading too (yamux's window then stops it writing)
    const maxQueued = 2 * perPeerLimit(method) + 8;
    const sendError = (id: number, e: NeuroShardError): void => {
      const body = PbRpcError.encode({ code: e.code, message: e.message.slice(0, 512), fault: e.fault });
      writer.write(FRAME_ERROR, id, body).catch(() => {});
    };
    try {
      for (;;) {
        await writer.below(maxQueued);
        // an idle or stalled stream does not hold an inbound stream forever: reset when no complete frame arrives
        // within idleMs while no call of it runs (one deadline for the stream, ./deadline.ts)
        idle.start(idleMs);
        let frame: Frame | undefined;
        try {
          frame = await reader.next(MUX_PIECE_BYTES + ID_BYTES);
        } catch (e) {
          throw idle.expired ?? e;
        } finally {
          idle.stop();
        }
        if (frame === undefined) break;
        if (this.scores?.isBanned(peer) === true) throw new AbortedError('peer is banned');
        const [id, piece] = splitId(frame.body);
        if (frame.kind === FRAME_CANCEL) {
          if (piece.byteLength !== 0) throw new RpcViolationError('RPC_MALFORMED', `${method.name}: CANCEL with a payload`);
          parts.drop(id);
          calls.get(id)?.abort(new AbortedError(`${method.name}: cancelled by the caller`));
          continue;
        }
        if (frame.kind !== FRAME_MESSAGE && frame.kind !== FRAME_PART) throw new RpcViolationError('RPC_PROTOCOL', `${method.name}: a client may only send MESSAGE, PART and CANCEL frames`);
        if (calls.has(id)) throw new RpcViolationError('RPC_PROTOCOL', `${method.name}: call id ${id} is already in flight`);
        const whole = parts.add(frame.kind, id, piece, maxRequest);
        if (whole === undefined) continue;
        const payload = whole.body;
        let req: unknown;
        try {
          try {
            req = method.request.decode(payload);
          } catch (e) {
            throw new RpcViolationError('RPC_MALFORMED', `${method.name}: undecodable request: ${errorMessage(e)}`);
          }
          method.validateRequest?.(req);
        } catch (e) {
          if (!(e instanceof NeuroShardError && e.fault === 'peer')) throw e;
          // one bad request: penalised and answered as on a stream of its own; the stream's other calls go on
          this.violation(peer, method, e);
          sendError(id, e);
          continue;
        }
        const handler = this.unaryHandlers.get(protocol);
        if (handler === undefined) throw new AbortedError(`${method.name} is no longer served`);
        if (!this.takeSlot(method, peer)) {
          sendError(id, new RpcBusyError(method.name));
          continue;
        }
        const ac = new AbortController();
        calls.set(id, ac);
        const run = this.serveMuxCall(method, handler, req, id, info, ac, signal, writer, sendError).finally(() => {
          calls.delete(id);
          this.releaseSlot(method, peer);
          running.delete(run);
        });
        running.add(run);
      }
      // the caller closed its side. A client half-closes only with no call in flight (idle, or retiring a stream),
      // so calls still running were given up (a connection closing gracefully under them): abort them, then close
      for (const c of calls.values()) c.abort(new AbortedError(`${method.name}: the caller closed the stream`));
      await Promise.allSettled([...running]);
      await writer.flushed();
      const closing = timer(method.timeoutMs, `${method.name} close`, signal);
      try {
        await stream.close({ signal: closing.signal });
      } catch {
        stream.abort(new AbortedError(`${method.name}: close failed`));
      } finally {
        closing.clear();
      }
    } catch (e) {
      if (e instanceof NeuroShardError && e.fault === 'peer' && !(e instanceof NetworkError)) {
        // the framing is broken: nothing more on this stream can be trusted
        this.violation(peer, method, e);
        stream.abort(e);
      } else {
        stream.abort(e instanceof Error ? e : new Error(String(e)));
      }
      life.abort(e);
      for (const c of calls.values()) c.abort(new AbortedError(`${method.name}: stream closed`));
      await Promise.allSettled([...running]);
    } finally {
      idle.dispose();
      unguard();
      life.abort();
      link.dispose();
      served.delete(life);
      if (served.size === 0) this.served.delete(protocol);
    }
  }

  private async serveMuxCall(
    method: MethodDef<unknown, unknown>,
    handler: (...args: unknown[]) => unknown,
    req: unknown,
    id: number,
    info: StreamInfo,
    ac: AbortController,
    streamSignal: AbortSignal,
    writer: MuxWriter,
    sendError: (id: number, e: NeuroShardError) => void,
  ): Promise<void> {
    const link = linkSignals(ac.signal, streamSignal);
    try {
      const res = await this.runUnary(method, handler, req, { peer: info.peer, limited: info.limited, remoteAddr: info.remoteAddr, signal: link.signal });
      if (ac.signal.aborted || streamSignal.aborted) return;
      await writer.write(FRAME_MESSAGE, id, this.encodeResponse(method, res));
    } catch (e) {
      if (ac.signal.aborted || streamSignal.aborted) return; // the caller forgot the call, or the stream is gone
      if (e instanceof NeuroShardError) sendError(id, e);
      else {
        if (!isStreamError(e)) this.log.error('rpc handler failed', { method: method.name, peer: info.peer, error: errorMessage(e) });
        sendError(id, new NeuroShardError('RPC_INTERNAL', `${method.name}: internal error`, { fault: 'local' }));
      }
    } finally {
      link.dispose();
    }
  }

  /**
   * One response of a stream call: undefined when the stream took it at once (no promise: the serving hop's answer),
   * else the wait for the stream to drain, under the method's deadline.
   */
  private sendReply(stream: DuplexStream, method: MethodDef<unknown, unknown>, res: unknown, signal: AbortSignal): Promise<void> | undefined {
    let frame: Uint8Array;
    const c = method.response;
    if (c.encodeFramed !== undefined) {
      // header and message in one buffer as they are encoded (no join: the same bytes, one buffer and copy fewer)
      frame = c.encodeFramed(res, FRAME_MESSAGE);
      const n = framedBodyBytes(frame);
      if (n > method.maxResponseBytes) throw responseTooLarge(method, n);
      if (n >= SEND_JOIN_BELOW) return this.replyMessage(stream, method, frame.subarray(frame.byteLength - n), signal, false);
    } else {
      const body = this.encodeResponse(method, res);
      if (body.byteLength >= SEND_JOIN_BELOW) return this.replyMessage(stream, method, body, signal, false);
      frame = encodeFrame(FRAME_MESSAGE, body);
    }
    if (stream.send(frame)) return undefined;
    const t = timer(method.timeoutMs, `${method.name} reply`, signal);
    return stream.onDrain({ signal: t.signal }).finally(t.clear);
  }

  private async replyMessage(stream: DuplexStream, method: MethodDef<unknown, unknown>, body: Uint8Array, signal: AbortSignal, close = true): Promise<void> {
    // the reply's deadline is armed only when a write has to wait (rpc/frame.ts writeFrameWaiting) or the stream closes
    let t: { signal: AbortSignal; clear: () => void } | undefined;
    const wait = (): { signal: AbortSignal } => ({ signal: (t ??= timer(method.timeoutMs, `${method.name} reply`, signal)).signal });
    try {
      await writeFrameWaiting(stream, FRAME_MESSAGE, body, wait);
      if (close) await stream.close(wait());
    } finally {
      t?.clear();
    }
  }

  /** Sends an ERROR frame (best effort, bounded) and closes; `reset` also resets the stream afterwards. */
  private async replyError(stream: DuplexStream, e: NeuroShardError, reset = false): Promise<void> {
    const body = PbRpcError.encode({ code: e.code, message: e.message.slice(0, 512), fault: e.fault });
    const signal = AbortSignal.timeout(ERROR_FLUSH_MS);
    try {
      await writeFrame(stream, FRAME_ERROR, body, { signal });
      await stream.close({ signal });
    } catch {
      // the stream is already gone; nothing more to tell the peer
    }
    if (reset) stream.abort(e);
  }
}

function isStreamError(e: unknown): boolean {
  const name = (e as Error | undefined)?.name ?? '';
  return /Stream|Abort|Reset|Mux|Connection/i.test(name);
}
