/**
 * Pipeline training on the wire (train-stage/1.0.0, docs/PROTOCOL.md "## Pipeline training"): the driver of a chain
 * of holders sends each hop the ops of every training step (training/pipeline/ops.ts: begin, forward, backward,
 * sum-squares, apply, abort, eval, info) as unary calls. Activations and gradients are fp32 [B, T, C] (exactness),
 * token ids and targets int32 [B, T].
 *
 * The server side (TrainStageServer) owns the hop's rules, checked before any math runs:
 * - a lease: one driver's chain trains this hop at a time (a span has one AdamW); another driver gets RPC_BUSY and
 *   picks another replica, the same driver's new chain (re-formed after a failure) takes its lease over at begin.
 *   A lease ends, and the step it had in flight is aborted (nothing half-done is left here), when
 *     - its driver releases it (RELEASE: the driver's chain moved on to other hops, or it stopped driving: a pool
 *       move, a stop). Only the lease's holder may release it: the caller is the peer id its connection
 *       authenticated (libp2p Noise), so a stranger cannot free another driver's lease (NOT_LEASE_HOLDER);
 *     - the hop's view says its driver no longer drives (`StageHost.driverGone`: it holds no span starting at layer 0
 *       any more, or it is dead) and the lease had no call for `goneQuietMs`: a driver that moved or died without
 *       a release (crashed, its release lost) frees the hop at the next driver's begin, not after `leaseMs`;
 *     - this hop's span changed since the lease began (a pool move: another span, another AdamW);
 *     - it had no call for `leaseMs` (the last resort);
 * - a step machine: begin(step) → forward/backward per micro-batch (each forward once, each backward after its
 *   forward) → sum-squares (every forwarded micro-batch back-propagated) → apply | abort. An op for another step or
 *   out of order is WRONG_STEP; the span the driver names must be ours (WRONG_SPAN);
 * - shapes and values: ids in the vocabulary, targets in it or −100, hidden states [B, T, C] of our width,
 *   B·T ≤ `maxTokens`, T ≤ the context, micro-batch index < `maxMicroBatches`, the backward gradient the shape of the
 *   forward's output, lr and clip factor in range.
 * A caller at fault is penalised (malformed input 20, out-of-order ops 10); nothing is applied from a bad call.
 *
 * The client side (`remoteStageTransport`) is a training/pipeline StageTransport over rpc.call with the method's
 * deadline, the caller's abort signal, and checks of the hop's answer (its output's shape, its loss and count).
 */
import { PENALTY, type PeerScoreTable } from '../p2p/peer-score.js';
import { NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { StageOpKind, TrainStageRequest, TrainStageResponse, type StageTensor } from './pb/train.js';
import type { MessageCodec, UnaryMethod } from './rpc/method.js';
import type { RpcNode } from './rpc/service.js';
import { spanText } from '../util/span-text.js';

const MiB = 1024 * 1024;
const DT_FP32 = 1;
const DT_INT32 = 4;
const IGNORE = -100;
/** Deadline of an abort (the hop's lease lapses anyway when it never arrives). */
const ABORT_TIMEOUT_MS = 5_000;

export interface Span {
  start: number;
  end: number;
}

/** Structurally training/pipeline's StageOp (protocols may not import training). */
export type WireStageOp =
  | { op: 'begin'; step: number }
  | { op: 'forward'; step: number; mb: number; input: Int32Array | Float32Array; B: number; T: number; targets?: Int32Array; gradScale: number }
  | { op: 'backward'; step: number; mb: number; dOut: Float32Array | null }
  | { op: 'sumSquares'; step: number }
  | { op: 'apply'; step: number; lr: number; clipScale: number }
  | { op: 'abort'; step: number }
  | { op: 'eval'; input: Int32Array | Float32Array; B: number; T: number; targets?: Int32Array }
  | { op: 'info' }
  | { op: 'grads' }
  | { op: 'readLayers' }
  | { op: 'writeLayers'; layers: { id: string; params: Float32Array }[] }
  // a node's own span only, in its compute worker (a driver's discarded steps, a joining hop's steps while it waited,
  // leave no trace in its optimizer): not ops of the wire, the client refuses to send them
  | { op: 'saveState' }
  | { op: 'restoreState' };

/** Deadline of a release (a driver gives its leases back as it leaves; the hop's lease lapses anyway without it). */
const RELEASE_TIMEOUT_MS = 5_000;

export interface WireStageResult {
  output?: Float32Array | null;
  loss?: number;
  count?: number;
  sumSquares?: number;
  span: Span;
  appliedSteps: number;
}

/** The largest message: one micro-batch of hidden states (B·T ≤ maxTokens at the model's width) plus framing. */
export const TRAIN_STAGE_MAX_BYTES = 64 * MiB;

function malformed(msg: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('RPC_MALFORMED', msg);
}

function checkWireTensor(t: StageTensor | undefined, what: string): void {
  if (t === undefined) return;
  if (t.dtype !== DT_FP32 && t.dtype !== DT_INT32) throw malformed(`${what}: dtype ${t.dtype} (fp32 = 1 or int32 = 4 only)`);
  if (t.shape.length < 1 || t.shape.length > 3) throw malformed(`${what}: rank ${t.shape.length}`);
  let n = 1;
  for (const d of t.shape) {
    if (!Number.isInteger(d) || d < 1 || d > 1 << 24) throw malformed(`${what}: bad dimension ${d}`);
    n *= d;
  }
  if (n * 4 !== t.data.byteLength) throw new PeerMisbehaviourError('RPC_BAD_TENSOR', `${what}: ${t.data.byteLength} bytes for shape [${t.shape.join(',')}]`);
}

const requestCodec: MessageCodec<TrainStageRequest> = {
  encode: (v) => TrainStageRequest.encode(v),
  decode: (b) => TrainStageRequest.decode(b, { limits: { input$: { shape: 3 }, targets$: { shape: 3 } } } as never),
};
const responseCodec: MessageCodec<TrainStageResponse> = {
  encode: (v) => TrainStageResponse.encode(v),
  decode: (b) => TrainStageResponse.decode(b, { limits: { output$: { shape: 3 } } } as never),
};

export const trainStage: UnaryMethod<TrainStageRequest, TrainStageResponse> = {
  name: 'train-stage',
  version: '1.0.0',
  kind: 'unary',
  request: requestCodec,
  response: responseCodec,
  maxRequestBytes: TRAIN_STAGE_MAX_BYTES,
  maxResponseBytes: TRAIN_STAGE_MAX_BYTES,
  // one op of one micro-batch on a loaded CPU; the driver may pass a shorter deadline
  timeoutMs: 120_000,
  maxInboundStreams: 8,
  maxConcurrent: 8,
  validateRequest: (r) => {
    if (r.chainId.length === 0 || r.chainId.length > 128) throw malformed('train-stage.chain_id: missing or longer than 128 characters');
    if (r.op === StageOpKind.STAGE_OP_UNSPECIFIED || !Object.values(StageOpKind).includes(r.op)) throw malformed('train-stage.op: unknown');
    if (r.step > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('train-stage.step: too large');
    if (!(r.spanStart < r.spanEnd) || r.spanEnd > 65536) throw malformed(`train-stage.span: bad span ${spanText({ start: r.spanStart, end: r.spanEnd })}`);
    checkWireTensor(r.input, 'train-stage.input');
    checkWireTensor(r.targets, 'train-stage.targets');
    for (const [k, v] of [['grad_scale', r.gradScale], ['lr', r.lr], ['clip_scale', r.clipScale]] as const) {
      if (!Number.isFinite(v)) throw malformed(`train-stage.${k}: not finite`);
    }
  },
  validateResponse: (r) => {
    checkWireTensor(r.output, 'train-stage.output');
  },
};

// ---- tensors ---------------------------------------------------------------------------------------------------

function toWire(a: Int32Array | Float32Array, shape: number[]): StageTensor {
  return { dtype: a instanceof Int32Array ? DT_INT32 : DT_FP32, shape, data: new Uint8Array(a.buffer as ArrayBuffer, a.byteOffset, a.byteLength) };
}

/** A copy (the frame's bytes may be unaligned and are reused by the transport). */
function fromWire(t: StageTensor): Int32Array | Float32Array {
  const buf = new ArrayBuffer(t.data.byteLength);
  new Uint8Array(buf).set(t.data);
  return t.dtype === DT_INT32 ? new Int32Array(buf) : new Float32Array(buf);
}

// ---- server ----------------------------------------------------------------------------------------------------

/** The hop's side: its span and model shape, and the op runner (the node's compute worker). */
export interface StageHost {
  /** The span held now (undefined: none, or not loaded yet). */
  span(): Span | undefined;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  contextLength: number;
  run(o: WireStageOp, signal?: AbortSignal): Promise<WireStageResult>;
  /**
   * True when this node's view says `peer` no longer drives a chain (it holds no span starting at layer 0 any more,
   * or it is dead); false when it still may, or the view does not know it (then only a release or `leaseMs` ends
   * its lease). Absent: the view is not consulted.
   */
  driverGone?(peer: string): boolean;
}

export interface StageServerLimits {
  /** Positions (B·T) in one micro-batch. */
  maxTokens: number;
  /** Micro-batches per step. */
  maxMicroBatches: number;
  /** A chain's lease lapses after this long without a call; its step in flight is aborted. */
  leaseMs: number;
  /**
   * A lease whose driver the view says is gone (StageHost.driverGone) ends once it had no call for this long: a
   * driver that calls us is alive whatever a lagging view says.
   */
  goneQuietMs: number;
}

/** The lease outlasts the longest a hop may wait, idle, inside a step (the other stages' ops, each with a 120 s
 * deadline): a live driver's step is never dropped under it; a dead driver's is dropped within 5 minutes. */
export const STAGE_SERVER_DEFAULTS: StageServerLimits = { maxTokens: 16_384, maxMicroBatches: 256, leaseMs: 300_000, goneQuietMs: 5_000 };

export type StageErrorCode = 'WRONG_STEP' | 'WRONG_SPAN' | 'BAD_STAGE_INPUT' | 'NOT_TRAINING' | 'STAGE_PAUSED' | 'NOT_LEASE_HOLDER';

export class StageError extends NeuroShardError {
  constructor(code: StageErrorCode, message: string, fault: 'caller' | 'local' = 'caller') {
    super(code, message, { fault });
  }
}

/** RPC_BUSY: another chain holds this hop's lease. */
export class StageBusyError extends NeuroShardError {
  constructor(message: string) {
    super('RPC_BUSY', message, { fault: 'local' });
  }
}

interface Lease {
  peer: string;
  chainId: string;
  /** The hop's span when the lease began: a move to another span ends it. */
  span: Span;
  lastSeen: number;
  step: number | null;
  phase: 'idle' | 'running' | 'summed';
  /** mb → [B, T] of its forward; `done` once its backward ran. */
  mbs: Map<number, { B: number; T: number; done: boolean }>;
}

export interface StageServerEvents {
  /** A step this hop applied (AdamW stepped). */
  'step:applied': { peer: string; chainId: string; step: number; appliedSteps: number };
  /** A step this hop dropped: aborted by its driver, replaced by its driver's next chain, or its lease ended. */
  'step:aborted': { peer: string; chainId: string; step: number; why: LeaseEnd | 'driver' | 'replaced' };
  /** A lease ended other than by its driver's next chain taking it over. */
  'lease:ended': { peer: string; chainId: string; why: LeaseEnd };
}

/** Why a lease ended: its driver released it, the view says its driver is gone, our span moved, or it lapsed. */
export type LeaseEnd = 'released' | 'driver-gone' | 'span-moved' | 'lease-expired';

export class TrainStageServer {
  readonly events = new TypedEmitter<StageServerEvents>();
  private lease: Lease | undefined;
  private paused = false;
  /** Drivers whose BEGIN this pause refused (the hop's outer sync: a driver still in its round's steps). */
  private askedPaused = new Set<string>();
  private busy = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly timer: NodeJS.Timeout;
  /** Calls refused, by code (tests, status). */
  readonly refused = new Map<string, number>();

  constructor(
    private readonly host: StageHost,
    private readonly limits: StageServerLimits = STAGE_SERVER_DEFAULTS,
    private readonly scores?: PeerScoreTable,
    private readonly log: Logger = silentLogger,
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => void this.expire(), Math.max(250, Math.min(5000, limits.leaseMs / 4, limits.goneQuietMs)));
    this.timer.unref();
  }

  async register(rpc: RpcNode): Promise<void> {
    await rpc.handle(trainStage, (req, ctx) => this.handle(req, ctx.peer, ctx.signal));
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The chain holding this hop now (tests, status). */
  holder(): { peer: string; chainId: string; step: number | null } | undefined {
    return this.lease === undefined ? undefined : { peer: this.lease.peer, chainId: this.lease.chainId, step: this.lease.step };
  }

  /**
   * Refuses new steps (STAGE_PAUSED) and resolves once no step is in flight here: the step a driver had running
   * finishes (apply or abort) or its lease lapses. The inner loop's pause (training/inner.ts).
   */
  async pause(): Promise<void> {
    this.paused = true;
    this.askedPaused.clear();
    while (this.busy > 0 || (this.lease !== undefined && this.lease.phase !== 'idle')) {
      await new Promise<void>((res) => this.idleWaiters.push(res));
    }
  }

  resume(): void {
    this.paused = false;
    this.askedPaused.clear();
  }

  /** Whether `peer` asked to begin a step since the current pause began (false when not paused). */
  askedWhilePaused(peer: string): boolean {
    return this.paused && this.askedPaused.has(peer);
  }

  private wake(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Why the lease `l` should end now (lapsed, our span moved, its driver gone in our view), or undefined. */
  private staleness(l: Lease): LeaseEnd | undefined {
    const quiet = this.now() - l.lastSeen;
    if (quiet >= this.limits.leaseMs) return 'lease-expired';
    const span = this.host.span();
    if (span === undefined || span.start !== l.span.start || span.end !== l.span.end) return 'span-moved';
    if (quiet >= this.limits.goneQuietMs && this.host.driverGone?.(l.peer) === true) return 'driver-gone';
    return undefined;
  }

  /** The timer: ends a stale lease when no call is in flight (a pause waiting for a gone driver's step resolves). */
  private async expire(): Promise<void> {
    const l = this.lease;
    if (l === undefined || this.busy > 0) return;
    const why = this.staleness(l);
    if (why !== undefined) await this.endLease(l, why);
  }

  /** Ends `l` (if it is still the lease): its step in flight, if any, is aborted. */
  private async endLease(l: Lease, why: LeaseEnd): Promise<void> {
    if (this.lease !== l) return;
    this.lease = undefined;
    this.log.info('a chain\'s lease ended', { peer: l.peer, chain: l.chainId, why, step: l.phase === 'idle' ? null : l.step });
    if (l.phase !== 'idle' && l.step !== null) {
      await this.host.run({ op: 'abort', step: l.step }).catch(() => {});
      this.events.emit('step:aborted', { peer: l.peer, chainId: l.chainId, step: l.step, why });
    }
    this.events.emit('lease:ended', { peer: l.peer, chainId: l.chainId, why });
    this.wake();
  }

  /**
   * RELEASE: `peer` gives its lease back. Only the lease's holder may (the caller is the peer its connection
   * authenticated); a release naming an older chain of the driver than the lease's (a late message after its chain was
   * re-formed onto this hop again) leaves the newer chain's lease alone. No lease: nothing to do.
   */
  private async release(req: TrainStageRequest, peer: string): Promise<TrainStageResponse> {
    const l = this.lease;
    if (l !== undefined) {
      if (l.peer !== peer) this.refuse(peer, new StageError('NOT_LEASE_HOLDER', `this hop's lease belongs to another driver (${l.chainId.slice(0, 16)})`), 0);
      if (!olderChain(req.chainId, l.chainId)) await this.endLease(l, 'released');
    }
    return { count: 0, appliedSteps: 0n };
  }

  private refuse(peer: string, e: NeuroShardError, penalty: number): never {
    this.refused.set(e.code, (this.refused.get(e.code) ?? 0) + 1);
    if (penalty > 0) this.scores?.penalise(peer, penalty, `train-stage: ${e.message}`);
    throw e;
  }

  private async handle(req: TrainStageRequest, peer: string, signal: AbortSignal): Promise<TrainStageResponse> {
    this.busy++;
    try {
      return await this.handleInner(req, peer, signal);
    } finally {
      this.busy--;
      this.wake();
    }
  }

  private async handleInner(req: TrainStageRequest, peer: string, signal: AbortSignal): Promise<TrainStageResponse> {
    // a release needs no span of ours: a driver gives its lease back whatever we hold now
    if (req.op === StageOpKind.RELEASE) return this.release(req, peer);
    const h = this.host;
    const span = h.span();
    if (span === undefined) this.refuse(peer, new StageError('NOT_TRAINING', 'this node holds no layers now', 'local'), 0);
    if (req.spanStart !== span.start || req.spanEnd !== span.end) {
      this.refuse(peer, new StageError('WRONG_SPAN', `this hop holds ${spanText(span)}, not ${spanText({ start: req.spanStart, end: req.spanEnd })}`), 0);
    }
    const first = span.start === 0;
    const last = span.end === h.numLayers;
    const step = Number(req.step);
    const answer = (r: WireStageResult): TrainStageResponse => ({
      ...(r.output === undefined || r.output === null ? {} : { output: toWire(r.output, r.output.length % h.hiddenSize === 0 ? [r.output.length / h.hiddenSize, h.hiddenSize] : [r.output.length]) }),
      ...(r.loss === undefined ? {} : { loss: r.loss }),
      count: r.count ?? 0,
      ...(r.sumSquares === undefined ? {} : { sumSquares: r.sumSquares }),
      appliedSteps: BigInt(r.appliedSteps),
    });
    if (req.op === StageOpKind.INFO) return answer(await h.run({ op: 'info' }, signal));

    // the lease: one chain at a time; a stale one (lapsed, our span moved, its driver gone) ends before anything
    let l = this.lease;
    if (l !== undefined && this.busy <= 1) {
      const why = this.staleness(l);
      if (why !== undefined) await this.endLease(l, why);
      l = this.lease;
    }
    // a driver runs one chain at a time: its new chain (re-formed after a failure) takes over its own lease
    if (l !== undefined && l.peer !== peer) this.refuse(peer, new StageBusyError(`this hop trains in another driver's chain (${l.chainId.slice(0, 16)})`), 0);
    const mine = l !== undefined && l.chainId === req.chainId;

    if (req.op === StageOpKind.BEGIN) {
      if (l !== undefined && !mine && olderChain(req.chainId, l.chainId)) this.refuse(peer, new StageError('WRONG_STEP', `chain ${req.chainId} is older than this driver's chain ${l.chainId}`), 0);
      if (this.paused) {
        // bounded: one entry per driver holding or taking our lease (a stranger is refused as busy above, or is the
        // one lease holder), cleared at every pause and resume
        if (this.askedPaused.size < 64) this.askedPaused.add(peer);
        this.refuse(peer, new StageError('STAGE_PAUSED', 'this hop is between inner steps (outer sync); retry later', 'local'), 0);
      }
      if (mine && l!.step !== null && step < l!.step) this.refuse(peer, new StageError('WRONG_STEP', `step ${step} begins after step ${l!.step}`), PENALTY.protocol);
      if (l !== undefined && l.phase !== 'idle' && l.step !== null) {
        await h.run({ op: 'abort', step: l.step });
        this.events.emit('step:aborted', { peer, chainId: req.chainId, step: l.step, why: 'replaced' });
      }
      await h.run({ op: 'begin', step }, signal);
      this.lease = { peer, chainId: req.chainId, span: { start: span.start, end: span.end }, lastSeen: this.now(), step, phase: 'running', mbs: new Map() };
      return answer(await h.run({ op: 'info' }));
    }
    if (l === undefined || !mine) this.refuse(peer, new StageError('WRONG_STEP', 'no step begun by this chain'), PENALTY.protocol);
    l.lastSeen = this.now();

    if (req.op === StageOpKind.ABORT) {
      if (l.step !== null && l.phase !== 'idle') {
        await h.run({ op: 'abort', step: l.step });
        this.events.emit('step:aborted', { peer, chainId: l.chainId, step: l.step, why: 'driver' });
      }
      l.phase = 'idle';
      l.mbs.clear();
      return answer(await h.run({ op: 'info' }));
    }
    if (req.op === StageOpKind.EVAL) {
      if (l.phase !== 'idle') this.refuse(peer, new StageError('WRONG_STEP', 'evaluation during a step'), PENALTY.protocol);
      const { input, B, T, targets } = this.checkInput(req, peer, first, last);
      return answer(await h.run({ op: 'eval', input, B, T, ...(targets === undefined ? {} : { targets }) }, signal));
    }
    if (l.step !== step || l.phase === 'idle') this.refuse(peer, new StageError('WRONG_STEP', `op for step ${step}; this hop is ${l.phase === 'idle' ? 'between steps' : `in step ${l.step}`}`), PENALTY.protocol);
    const mb = req.microBatch;
    switch (req.op) {
      case StageOpKind.FORWARD: {
        if (l.phase !== 'running') this.refuse(peer, new StageError('WRONG_STEP', 'forward after sum-squares'), PENALTY.protocol);
        if (mb >= this.limits.maxMicroBatches) this.refuse(peer, new StageError('BAD_STAGE_INPUT', `micro-batch ${mb} ≥ ${this.limits.maxMicroBatches}`), PENALTY.malformed);
        if (l.mbs.has(mb)) this.refuse(peer, new StageError('WRONG_STEP', `micro-batch ${mb} was already forwarded in step ${step}`), PENALTY.protocol);
        if (!(req.gradScale >= 0 && req.gradScale <= 1)) this.refuse(peer, new StageError('BAD_STAGE_INPUT', `grad_scale ${req.gradScale} not in [0, 1]`), PENALTY.malformed);
        const { input, B, T, targets } = this.checkInput(req, peer, first, last);
        l.mbs.set(mb, { B, T, done: false });
        return answer(await h.run({ op: 'forward', step, mb, input, B, T, ...(targets === undefined ? {} : { targets }), gradScale: req.gradScale }, signal));
      }
      case StageOpKind.BACKWARD: {
        const f = l.mbs.get(mb);
        if (f === undefined || f.done || l.phase !== 'running') this.refuse(peer, new StageError('WRONG_STEP', `backward of micro-batch ${mb}, which has no pending forward`), PENALTY.protocol);
        let dOut: Float32Array | null = null;
        if (last) {
          if (req.input !== undefined) this.refuse(peer, new StageError('BAD_STAGE_INPUT', 'the last stage takes its gradient from the loss'), PENALTY.malformed);
        } else {
          const t = req.input;
          if (t === undefined || t.dtype !== DT_FP32 || t.shape.length !== 3 || t.shape[0] !== f.B || t.shape[1] !== f.T || t.shape[2] !== h.hiddenSize) {
            this.refuse(peer, new StageError('BAD_STAGE_INPUT', `the output gradient must be fp32 [${f.B}, ${f.T}, ${h.hiddenSize}]`), PENALTY.malformed);
          }
          dOut = fromWire(t) as Float32Array;
        }
        f.done = true;
        return answer(await h.run({ op: 'backward', step, mb, dOut }, signal));
      }
      case StageOpKind.SUM_SQUARES: {
        if (l.mbs.size === 0 || [...l.mbs.values()].some((x) => !x.done)) this.refuse(peer, new StageError('WRONG_STEP', 'sum-squares before every micro-batch was back-propagated'), PENALTY.protocol);
        l.phase = 'summed';
        return answer(await h.run({ op: 'sumSquares', step }, signal));
      }
      case StageOpKind.APPLY: {
        if (l.phase !== 'summed') this.refuse(peer, new StageError('WRONG_STEP', 'apply before sum-squares'), PENALTY.protocol);
        if (!(req.lr >= 0 && req.lr <= 1) || !(req.clipScale > 0 && req.clipScale <= 1)) {
          this.refuse(peer, new StageError('BAD_STAGE_INPUT', `lr ${req.lr} / clip ${req.clipScale} out of range`), PENALTY.malformed);
        }
        // the commit point: from here the step is this hop's, whatever happens to the call
        const r = await h.run({ op: 'apply', step, lr: req.lr, clipScale: req.clipScale });
        l.phase = 'idle';
        l.mbs.clear();
        this.events.emit('step:applied', { peer, chainId: l.chainId, step, appliedSteps: r.appliedSteps });
        return answer(r);
      }
    }
    this.refuse(peer, new StageError('BAD_STAGE_INPUT', `op ${String(req.op)}`), PENALTY.malformed);
  }

  /** The forward/eval input: ids [B, T] (first stage) or hidden [B, T, C]; targets [B, T] on the last stage. */
  private checkInput(req: TrainStageRequest, peer: string, first: boolean, last: boolean): { input: Int32Array | Float32Array; B: number; T: number; targets?: Int32Array } {
    const h = this.host;
    const t = req.input;
    const bad = (why: string): never => this.refuse(peer, new StageError('BAD_STAGE_INPUT', why), PENALTY.malformed);
    if (t === undefined) return bad('no input');
    const B = t.shape[0]!;
    const T = t.shape[1] ?? 0;
    if (first ? t.dtype !== DT_INT32 || t.shape.length !== 2 : t.dtype !== DT_FP32 || t.shape.length !== 3 || t.shape[2] !== h.hiddenSize) {
      bad(first ? 'the first stage takes token ids int32 [B, T]' : `hidden states must be fp32 [B, T, ${h.hiddenSize}]`);
    }
    if (T < 1 || T > h.contextLength || B * T > this.limits.maxTokens) bad(`[${B}, ${T}]: more than ${this.limits.maxTokens} positions or longer than the context ${h.contextLength}`);
    const input = fromWire(t);
    if (first) for (const id of input as Int32Array) if (id < 0 || id >= h.vocabSize) bad(`token id ${id} outside the vocabulary`);
    let targets: Int32Array | undefined;
    if (last) {
      const g = req.targets;
      if (g === undefined || g.dtype !== DT_INT32 || g.shape.length !== 2 || g.shape[0] !== B || g.shape[1] !== T) return bad(`the last stage needs targets int32 [${B}, ${T}]`);
      targets = fromWire(g) as Int32Array;
      for (const x of targets) if (x !== IGNORE && (x < 0 || x >= h.vocabSize)) bad(`target ${x} outside the vocabulary`);
    } else if (req.targets !== undefined) bad('targets sent to a stage without the head');
    return { input, B, T, ...(targets === undefined ? {} : { targets }) };
  }
}

/** Chain ids '<nonce>:<seq>' of one driver: `a` is an older chain of the same driver than `b`. */
export function olderChain(a: string, b: string): boolean {
  const pa = /^([^:]{1,64}):(\d{1,15})$/.exec(a);
  const pb = /^([^:]{1,64}):(\d{1,15})$/.exec(b);
  return pa !== null && pb !== null && pa[1] === pb[1] && Number(pa[2]) < Number(pb[2]);
}

// ---- client ----------------------------------------------------------------------------------------------------

export interface RemoteStageOptions {
  chainId: string;
  span: Span;
  numLayers: number;
  hiddenSize: number;
  /** Deadline of one op (default the method's). */
  timeoutMs?: number;
  scores?: PeerScoreTable;
}

/** A StageTransport (training/pipeline/ops.ts) to the holder `peer` over train-stage/1.0.0. */
export function remoteStageTransport(rpc: RpcNode, peer: string, o: RemoteStageOptions): (op: WireStageOp, signal?: AbortSignal) => Promise<WireStageResult> {
  const C = o.hiddenSize;
  const bad = (why: string): never => {
    o.scores?.penalise(peer, PENALTY.malformed, `train-stage answer: ${why}`);
    throw new PeerMisbehaviourError('RPC_MALFORMED', `train-stage answer from ${peer}: ${why}`);
  };
  // micro-batch → [B, T] of its forward: the backward's gradient has that shape
  const dims = new Map<number, { B: number; T: number }>();
  return async (op, signal) => {
    const base = { chainId: o.chainId, spanStart: o.span.start, spanEnd: o.span.end, step: 0n, microBatch: 0, gradScale: 0, lr: 0, clipScale: 0 };
    let req: Partial<TrainStageRequest>;
    let expect: { B: number; T: number } | null = null;
    let expectIn: { B: number; T: number } | null = null;
    if (op.op === 'begin' || op.op === 'abort') dims.clear();
    switch (op.op) {
      case 'begin':
      case 'sumSquares':
      case 'abort':
        req = { ...base, op: op.op === 'begin' ? StageOpKind.BEGIN : op.op === 'abort' ? StageOpKind.ABORT : StageOpKind.SUM_SQUARES, step: BigInt(op.step) };
        break;
      case 'apply':
        req = { ...base, op: StageOpKind.APPLY, step: BigInt(op.step), lr: op.lr, clipScale: op.clipScale };
        break;
      case 'forward':
      case 'eval':
        req = {
          ...base,
          op: op.op === 'forward' ? StageOpKind.FORWARD : StageOpKind.EVAL,
          ...(op.op === 'forward' ? { step: BigInt(op.step), microBatch: op.mb, gradScale: op.gradScale } : {}),
          input: toWire(op.input, op.input instanceof Int32Array ? [op.B, op.T] : [op.B, op.T, C]),
          ...(op.targets === undefined ? {} : { targets: toWire(op.targets, [op.B, op.T]) }),
        };
        if (o.span.end !== o.numLayers) expect = { B: op.B, T: op.T };
        if (op.op === 'forward') dims.set(op.mb, { B: op.B, T: op.T });
        break;
      case 'backward':
      {
        const d = dims.get(op.mb);
        if (op.dOut !== null && (d === undefined || op.dOut.length !== d.B * d.T * C)) throw new StageError('BAD_STAGE_INPUT', `backward of micro-batch ${op.mb}: no forward of its shape was sent`, 'local');
        req = { ...base, op: StageOpKind.BACKWARD, step: BigInt(op.step), microBatch: op.mb, ...(op.dOut === null ? {} : { input: toWire(op.dOut, [d!.B, d!.T, C]) }) };
        expectIn = d ?? null;
        dims.delete(op.mb);
        break;
      }
      case 'info':
        req = { ...base, op: StageOpKind.INFO };
        break;
      default:
        throw new StageError('BAD_STAGE_INPUT', `${op.op} is not an op of the wire (local stages only)`, 'local');
    }
    // an abort is sent to every hop of a failed step, a dead one included: it must not hold the driver long
    const timeoutMs = op.op === 'abort' ? Math.min(ABORT_TIMEOUT_MS, o.timeoutMs ?? ABORT_TIMEOUT_MS) : o.timeoutMs;
    const r = await rpc.call(peer, trainStage, req as TrainStageRequest, { ...(signal === undefined ? {} : { signal }), ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    const out: WireStageResult = { span: { ...o.span }, appliedSteps: Number(r.appliedSteps) };
    let output: Float32Array | undefined;
    if (r.output !== undefined) {
      if (r.output.dtype !== DT_FP32) bad('output not fp32');
      output = fromWire(r.output) as Float32Array;
      out.output = output;
    }
    if (expect !== null && (output === undefined || output.length !== expect.B * expect.T * C)) bad(`forward output is not [${expect.B}, ${expect.T}, ${C}]`);
    // the input gradient has the input's shape [B, T, C] (a first stage has none)
    if (op.op === 'backward' && o.span.start > 0 && (output === undefined || (expectIn !== null && output.length !== expectIn.B * expectIn.T * C))) bad('backward answered without an input gradient of its shape');
    if (r.loss !== undefined) {
      out.loss = r.loss;
      out.count = r.count;
    }
    if (r.sumSquares !== undefined) out.sumSquares = r.sumSquares;
    if (op.op === 'sumSquares' && out.sumSquares === undefined) bad('sum-squares answered without the sum');
    if ((op.op === 'forward' || op.op === 'eval') && o.span.end === o.numLayers && out.loss === undefined) bad('the last stage answered without the loss');
    return out;
  };
}

/**
 * Gives the lease that chain `chainId` of ours holds on `peer` back (RELEASE), so that another driver's chain can
 * take the hop at once: our chain moved on to other hops, or we stop driving (a pool move, a stop). Best effort
 * with a short deadline (the hop's lease lapses anyway without it); rejects on the transport's or the hop's error.
 */
export async function releaseStage(rpc: RpcNode, peer: string, o: { chainId: string; span: Span; timeoutMs?: number; signal?: AbortSignal }): Promise<void> {
  const req: TrainStageRequest = { chainId: o.chainId, op: StageOpKind.RELEASE, step: 0n, microBatch: 0, gradScale: 0, lr: 0, clipScale: 0, spanStart: o.span.start, spanEnd: o.span.end };
  await rpc.call(peer, trainStage, req, { timeoutMs: Math.min(RELEASE_TIMEOUT_MS, o.timeoutMs ?? RELEASE_TIMEOUT_MS), ...(o.signal === undefined ? {} : { signal: o.signal }) });
}
