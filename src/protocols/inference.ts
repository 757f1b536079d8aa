/**
 * Hop sessions on the wire (inference-stream/1.0.0, docs/PROTOCOL.md "## Inference"): one bidirectional stream
 * per (session, hop). The entry node's first request opens the session (its id, the hop's span, the KV positions to
 * reserve, the sampling); every request is one step, answered by one response: hidden states [T, C] in the dtype
 * the request used (fp32, or fp16 / bf16 with `--wire f16|bf16`), or on the validator one sampled token per chunk. The stream
 * ending (end_session, the caller going away, the idle timeout of the method) closes the session and frees its KV
 * cache, so nothing outlives its stream.
 *
 * The server side (InferenceHopServer) enforces the node's quotas: a memory budget for KV caches, sessions per peer,
 * sessions and a share of the budget per address block, a session id owned by one peer; a hop that cannot take a session answers RPC_BUSY and the entry picks another
 * replica. It counts the positions it processed per session (for the ledger's proofs). The math is injected
 * (`HopCompute`: the node's compute worker).
 *
 * The client side (RemoteHopSession) is the router's HopSession over such a stream.
 */
import type { PeerScoreTable } from '../p2p/peer-score.js';
import { addressBlock } from './address-block.js';
import { PENALTY } from '../p2p/peer-score.js';
import { AbortedError, NeuroShardError, PeerMisbehaviourError, errorMessage } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { createHash } from 'node:crypto';
import { inferencePush, inferenceStream, MAX_PUSH_WAIT_MS } from './methods.js';
import type { InferencePush, InferencePushAck, InferenceRequest, InferenceResponse } from './pb/node.js';
import type { BidiHandler, CallContext, RpcNode } from './rpc/service.js';
import { activationTensor, tensorFromPb, tensorToPb, toFloat32, type WireTensor } from './tensor-wire.js';
import { signHopCommitment } from '../ledger/build.js';
import { MAX_HOPS, type HopCommitment } from '../ledger/events.js';
import { decodeReceipt, type HopMarket } from './hop-commitment.js';
import { hopCommitQueue, type HopCommitQueue, type QueuedCommitment } from './hop-commit-queue.js';
import { signTranscriptClaim } from '../ledger/fraud.js';
import type { OpenInputs, TranscriptStore } from './hop-transcript.js';
import { spanText } from '../util/span-text.js';
import type { KeyObject } from 'node:crypto';
import { attestationDtypeFromPb, attestationDtypeToPb, judgePushMismatch, newPushSigner, pushVerifier, sha256, signPush, verifyPush, type PushAttestationData, type PushBlame, type PushSigner } from './push-attestation.js';

export interface Span {
  start: number;
  end: number;
}

export interface HopSampling {
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/** The hop's math (the node's compute worker); ids are local to this node. */
export interface HopCompute {
  /** The span served now, or undefined. */
  span(): Span | undefined;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  contextLength: number;
  /** KV-cache bytes per position for the span (2 × layers × kv heads × head dim × 4). */
  kvBytesPerPosition(span: Span): number;
  open(id: string, maxLen: number, sampling: HopSampling): Promise<void>;
  /** `batch`: rows of the forward that ran the step (continuous batching; 1 or absent when it ran alone). */
  step(id: string, input: { ids?: Int32Array; hidden?: Float32Array; chunks: number[] }, signal: AbortSignal): Promise<{ hidden?: Float32Array; tokens?: Int32Array; batch?: number }>;
  close(id: string): Promise<void>;
}

export interface HopLimits {
  /** Bytes of KV cache all sessions together may reserve. */
  memoryBudgetBytes: number;
  /** Open sessions one peer may hold on this node. */
  maxSessionsPerPeer: number;
  /** Open sessions in all. */
  maxSessions: number;
  /**
   * Open sessions the peers of one address block (the IPv4 /24 or IPv6 /48 their connection comes from,
   * protocols/address-block.ts) may hold together, and the share of `memoryBudgetBytes` they may reserve. Keys are
   * free: before session 27, 16 fresh keys (16 sessions each) held all 256 sessions, and one peer with a few
   * context-long sessions the whole KV budget of a large model, for as long as they sent a frame every 120 s.
   */
  maxSessionsPerBlock: number;
  blockBudgetShare: number;
}

/** Commit requests and receipts one session may send (settleRoute sends one commit request, and one receipt to hop 0). */
export const MAX_SETTLES_PER_SESSION = 4;

export const HOP_LIMIT_DEFAULTS: HopLimits = { memoryBudgetBytes: 512 * 1024 * 1024, maxSessionsPerPeer: 16, maxSessions: 256, maxSessionsPerBlock: 64, blockBudgetShare: 0.25 };

export class HopError extends NeuroShardError {
  constructor(code: 'WRONG_SPAN' | 'SESSION_TAKEN' | 'SESSION_MISMATCH' | 'NOT_SERVING' | 'BAD_STEP' | 'NO_MARKET' | 'BAD_RECEIPT' | 'PUSH_REFUSED', message: string, fault: 'caller' | 'local' = 'caller') {
    super(code, message, { fault });
  }
}

/** RPC_BUSY: the hop's budget or caps are full; the caller should pick another replica. */
export class HopBusyError extends NeuroShardError {
  constructor(message: string) {
    super('RPC_BUSY', message, { fault: 'local' });
  }
}

interface HopSessionState {
  peer: string;
  /** The caller's address block (undefined: the transport named no address, as in-process callers). */
  block?: string;
  id: string;
  localId: string;
  bytes: number;
  tokens: number;
  openedAt: number;
  /** Ended by a drain that ran out of time: its KV cache is freed and its next step fails (the entry fails over). */
  evicted?: boolean;
  /**
   * Running commitments over what this hop received and sent (hop-commitment.ts), one step per forward chunk, taken
   * on the commitment worker (hop-commit-queue.ts) in step order: their values are read only after
   * `commits.settled()` (settle), which holds every step queued before it.
   */
  inC: QueuedCommitment;
  outC: QueuedCommitment;
  /** The market request this session's commitments were last signed for, and as which hop. */
  signedFor?: { requestId: Uint8Array; index: number; count: number };
  /** Commit requests and receipts answered (at most MAX_SETTLES_PER_SESSION). */
  settles: number;
  /** Issue 11 §2 re-execution: the session's exact inputs (hop-transcript.ts), its length, sampling and wire dtype. */
  inputs?: OpenInputs;
  /** The weights' claim when the session opened: a transcript is sealed only if the weights did not move since. */
  claimAtOpen?: Promise<{ modelHash: string } | undefined>;
  maxLen: number;
  sampling: HopSampling;
  /** The session's activation dtype, fixed by its first step of activations (`wireFixed`). */
  wire: 'f32' | 'f16' | 'bf16';
  wireFixed?: boolean;
  /** Session 29 pushes: where this session's outputs go when a step asks (hop k), and the push stream once open. */
  pushTo?: { peer: string; session: string };
  pushOut?: { queue: RequestQueue<InferencePush>; dead: boolean };
  /** Session 30: the ephemeral key this session signs its pushes with (made when push_to is set; hop k). */
  pushSigner?: PushSigner;
  /** The one peer whose pushes this session takes (hop k+1). */
  pushFrom?: string;
  /** Session 30: that peer's session key (push_from_key): every push must verify under it. Absent: an entry before session 30, pushes unsigned. */
  pushFromKey?: { raw: Uint8Array; key: KeyObject };
  /** Session 30: the named pusher's push stream was refused: placeholders answer push_missing at once (no push can come). */
  pushBroken?: boolean;
  /** Pushes received and not yet used, by the position they start at (at most MAX_PUSHES_BUFFERED, MAX_PUSH_BUFFER_BYTES). */
  pushed?: Map<number, TakenPush>;
  /** The placeholder step waiting for its push: the position and rows it needs. */
  pushWaiter?: { position: number; T: number; resolve: (w: TakenPush | undefined) => void };
}

/**
 * A push as this hop takes it: the input in the session's dtype (rounded when pushed in another), the pusher's
 * attestation (session 30; signed sessions only) and, when no rounding was needed, the SHA-256 of `w`'s bytes
 * (the attestation's digest, so it is not taken twice).
 */
interface TakenPush {
  w: WireTensor;
  attestation?: PushAttestationData;
  digest?: Uint8Array;
}

/** Pushes one session holds before a placeholder takes them (the entry asks for one a step; a replay never pushes). */
export const MAX_PUSHES_BUFFERED = 2;
/** Bytes of pushes one session holds (a decode step of a 8,192-wide model in fp32 is 32 KiB). */
export const MAX_PUSH_BUFFER_BYTES = 256 * 1024;
/**
 * A hop that pushed a step's output answers the entry two event-loop turns later (the next I/O poll in between), so
 * that where the next hop shares this process and its loop (the benches) the push is read and its step started
 * before the answer is encoded and written; between machines it costs the entry a few µs on a message no one waits
 * on. `NEUROSHARD_PUSH_ANSWER=now` answers at once (A/B in one build).
 */
const DEFER_PUSHED_ANSWER = process.env.NEUROSHARD_PUSH_ANSWER !== 'now';
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

/** A placeholder's wait for its push when the request names none (ms). */
export const PUSH_WAIT_DEFAULT_MS = 1_000;

/**
 * Issue 11 §2, validator re-execution (hop-transcript.ts): keep the inputs of sessions and seal them for validators
 * when the commitments are signed; `claim` names the weights (compute modelHash of the span) and the engine.
 */
export interface HopTranscripts {
  store: TranscriptStore;
  claim(): Promise<{ modelHash: string; engine: string }>;
}

/** Test-only faults (never set from options or the CLI): a hop that corrupts its outputs but commits to them honestly. */
export interface HopFaultsForTests {
  corruptOutputs?: boolean;
  /** Pushes (session 29) that differ from the answer to the entry (the pushed values × 1.5 + 0.1). */
  pushWrong?: boolean;
  /** Asked to push, pushes nothing. */
  pushNothing?: boolean;
  /** Answers as a hop before session 29 would (no push_capable). */
  noPushCapability?: boolean;
  /** Session 30: signs its pushes with a corrupted signature (the receiver must refuse them). */
  pushBadSignature?: boolean;
  /** Session 30: runs on its pushes honestly but answers another input_digest (to get its honest pusher blamed). */
  digestLie?: boolean;
  /** Session 30: as digestLie, and leaves the pusher's attestation out of its answer. */
  attestationDrop?: boolean;
  /** Answers as a hop of session 29 would (push_capable, but no push_signed, no push key). */
  noPushSignatures?: boolean;
}

/** What a hop did for one session (for the ledger): positions processed, by whom. */
export interface HopSessionRecord {
  peer: string;
  sessionId: string;
  tokens: number;
  closedAt: number;
}

export class InferenceHopServer {
  private readonly sessions = new Map<string, HopSessionState>();
  private reservedBytes = 0;
  private nextLocal = 0;
  /** While draining (before the pool moves this node's span) new sessions are refused. */
  private draining = false;
  /** Resolved whenever a session ends (drain() waits on it). */
  private onRelease: (() => void) | undefined;
  /** Closed sessions' counts, newest last (bounded). */
  readonly finished: HopSessionRecord[] = [];
  /** Positions processed in all, per session while open and summed after. */
  totalTokens = 0;
  /**
   * Steps answered, those among them the worker ran batched with other sessions' steps (continuous batching), and
   * the time the steps spent in the compute worker as this hop saw it (ms, messages to the worker included): what
   * the benchmark sets apart from a chain's time per token to see what the hop boundaries cost.
   */
  readonly stepStats = { steps: 0, batched: 0, rows: 0, computeMs: 0 };
  /** Session 29 pushes: steps run on a pushed input, placeholders answered push_missing, pushes sent and refused, steps with push fields. */
  readonly pushStats = { pushedSteps: 0, missing: 0, sent: 0, refused: 0, asked: 0 };
  private rpc: RpcNode | undefined;

  constructor(
    private readonly compute: HopCompute,
    private readonly limits: HopLimits = HOP_LIMIT_DEFAULTS,
    private readonly scores?: PeerScoreTable,
    private readonly log: Logger = silentLogger,
    /** Signs this hop's commitments and submits completions as a driver (issue 11 §2); without it, commit requests get NO_MARKET. */
    private readonly market?: HopMarket,
    /**
     * Issue 11 §2: transcripts for validators, and test-only faults; `commits`: where the commitments are taken
     * (default: this process's queue and its worker thread).
     */
    private readonly extras: { transcripts?: HopTranscripts; faultsForTests?: HopFaultsForTests; commits?: HopCommitQueue } = {},
  ) {
    this.commits = extras.commits ?? hopCommitQueue();
  }

  private readonly commits: HopCommitQueue;

  /** Open sessions and reserved KV bytes (tests, status). */
  usage(): { sessions: number; reservedBytes: number } {
    return { sessions: this.sessions.size, reservedBytes: this.reservedBytes };
  }

  /** Positions processed per open session. */
  openCounts(): { peer: string; sessionId: string; tokens: number }[] {
    return [...this.sessions.values()].map((s) => ({ peer: s.peer, sessionId: s.id, tokens: s.tokens }));
  }

  /**
   * Stops taking new sessions (they get RPC_BUSY and the entry picks another replica) and waits up to `timeoutMs`
   * for the open ones to end; sessions still open then are evicted: their KV caches are freed at once and their next
   * step fails, so their entries fail over and replay elsewhere. Resolves with how many ended by themselves and how
   * many were evicted. New sessions stay refused until resume().
   */
  async drain(timeoutMs: number, signal?: AbortSignal): Promise<{ finished: number; evicted: number }> {
    this.draining = true;
    const before = this.sessions.size;
    const until = performance.now() + timeoutMs;
    while (this.sessions.size > 0 && performance.now() < until && signal?.aborted !== true) {
      const left = until - performance.now();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, left));
        function done(): void {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          resolve();
        }
        this.onRelease = done;
        signal?.addEventListener('abort', done, { once: true });
      });
      this.onRelease = undefined;
    }
    const left = [...this.sessions.values()];
    for (const s of left) {
      s.evicted = true;
      await this.release(s);
    }
    if (left.length > 0) this.log.info('drain: sessions evicted (their entries fail over)', { evicted: left.length });
    return { finished: before - left.length, evicted: left.length };
  }

  /** Takes new sessions again (after the move). */
  resume(): void {
    this.draining = false;
  }

  isDraining(): boolean {
    return this.draining;
  }

  async register(rpc: RpcNode): Promise<void> {
    this.rpc = rpc;
    await rpc.handle(inferenceStream, this.handler());
    await rpc.handle(inferencePush, this.pushHandler());
  }

  /**
   * inference-push/1.0.0 (session 29): hop k's outputs for one of our sessions. Checked at the boundary: the session
   * exists here and named this peer its pusher, [T, C] in the session's dtype, at a position not yet processed, at
   * most MAX_PUSHES_BUFFERED and MAX_PUSH_BUFFER_BYTES held. Anything else ends the stream with PUSH_REFUSED,
   * unpenalised (`pushRefused`); the session itself is untouched.
   */
  pushHandler(): BidiHandler<InferencePush, InferencePushAck> {
    const self = this;
    return async function* (pushes: AsyncIterable<InferencePush>, ctx: CallContext): AsyncGenerator<InferencePushAck> {
      let sessionId: string | undefined;
      try {
        for await (const p of pushes) {
          if (sessionId !== undefined && p.sessionId !== sessionId) {
            self.pushRefused(ctx.peer, 'a push stream carries one session');
          }
          sessionId = p.sessionId;
          self.takePush(p, ctx.peer);
        }
      } catch (e) {
        // the session's own pusher had a push refused: its stream ends here and a pusher does not reopen one, so the
        // placeholder waiting (or the next) answers push_missing at once rather than after its whole wait
        const s = sessionId === undefined ? undefined : self.sessions.get(sessionId);
        if (s !== undefined && s.pushFrom === ctx.peer) {
          s.pushBroken = true;
          s.pushWaiter?.resolve(undefined);
        }
        throw e;
      }
      // (no answers: a push is not acknowledged, the placeholder's answer to the entry says what ran)
      yield* [];
    };
  }

  /**
   * Refuses a push, never with a penalty (the lead, session 29): what a push must match (the session, its pusher,
   * its width, its rows, the bound held) is what the entry set on both hops, and an honest hop pushes where its entry
   * told it to. A penalty here let an entry frame an honest hop k at any node V: push_to = (V, a session of its own
   * there naming another pusher, or steps it never asks for), one penalty at V per session it opens on hop k. A
   * pusher sending junk into a session that names it gains nothing: its stream ends, the entry's placeholder answers
   * push_missing and the entry sends the input itself.
   */
  private pushRefused(_peer: string, why: string): never {
    this.pushStats.refused++;
    throw new HopError('PUSH_REFUSED', why);
  }

  private takePush(p: InferencePush, peer: string): void {
    const s = this.sessions.get(p.sessionId);
    if (s === undefined) this.pushRefused(peer, 'no such session');
    if (s.pushFrom !== peer) this.pushRefused(peer, 'this session takes no pushes from this peer');
    let w = tensorFromPb(p.hidden, 'inference-push.hidden');
    const C = this.compute.hiddenSize;
    const dtype = w.dtype === 'fp16' ? 'f16' : w.dtype === 'bf16' ? 'bf16' : w.dtype === 'fp32' ? 'f32' : undefined;
    if (w.shape.length !== 2 || w.shape[1] !== C || s.wireFixed !== true || dtype === undefined) this.pushRefused(peer, `a push must be [T, ${C}] in fp32, fp16 or bf16 after the session's first step`);
    if (p.position < s.tokens) return; // a step the entry sent explicitly meanwhile (push missing): stale, dropped
    const taken: TakenPush = { w };
    if (s.pushFromKey !== undefined) {
      // session 30: never run on a push its pusher did not sign for this session, position, dtype and shape; the
      // digest is over the bytes as sent (before any rounding here), as the pusher signed them
      const digest = sha256(w.data);
      const pd = w.dtype as 'fp32' | 'fp16' | 'bf16';
      if (p.signature === undefined || !verifyPush(s.pushFromKey.key, s.id, p.position, pd, w.shape, digest, p.signature)) this.pushRefused(peer, 'a push whose signature does not verify under its pusher\'s session key');
      taken.attestation = { dtype: pd, digest, signature: p.signature };
      if (dtype === s.wire) taken.digest = digest;
    }
    // a pusher answers in its own dtype (the driver hop in fp32 whatever the entry's wire): rounded here as the entry
    // rounds what it forwards (the same function), so the bytes are those the entry would have sent
    if (dtype !== s.wire) taken.w = w = activationTensor(toFloat32(w), w.shape, s.wire);
    const waiter = s.pushWaiter;
    if (waiter !== undefined && waiter.position === p.position) {
      if (waiter.T !== w.shape[0]) this.pushRefused(peer, `a push of ${w.shape[0]} rows for a step of ${waiter.T}`);
      s.pushWaiter = undefined;
      waiter.resolve(taken);
      return;
    }
    const held = (s.pushed ??= new Map());
    let bytes = w.data.byteLength;
    for (const x of held.values()) bytes += x.w.data.byteLength;
    if (held.has(p.position) || held.size >= MAX_PUSHES_BUFFERED || bytes > MAX_PUSH_BUFFER_BYTES) this.pushRefused(peer, `more pushes held than the bound (${MAX_PUSHES_BUFFERED}, ${MAX_PUSH_BUFFER_BYTES} bytes)`);
    held.set(p.position, taken);
  }

  /** The placeholder's input: a push held for this position, or the one that comes within `ms`; undefined if none. */
  private awaitPush(s: HopSessionState, T: number, ms: number, signal: AbortSignal): Promise<TakenPush | undefined> | TakenPush | undefined {
    const held = s.pushed?.get(s.tokens);
    if (held !== undefined) {
      s.pushed!.delete(s.tokens);
      if (held.w.shape[0] !== T) return undefined; // rows the entry's placeholder did not ask for: push_missing (pushRefused says why no penalty)
      return held;
    }
    if (s.pushBroken === true) return undefined;
    return new Promise((resolve) => {
      const done = (w: TakenPush | undefined): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        if (s.pushWaiter?.resolve === done) s.pushWaiter = undefined;
        resolve(w);
      };
      const onAbort = (): void => done(undefined);
      const timer = setTimeout(() => done(undefined), ms);
      signal.addEventListener('abort', onAbort, { once: true });
      s.pushWaiter = { position: s.tokens, T, resolve: done };
    });
  }

  /** Sends this step's output (as answered) to the session's next hop; a push stream that failed is not reopened. */
  private pushOutput(s: HopSessionState, position: number, sent: WireTensor): boolean {
    if (s.pushTo === undefined || this.extras.faultsForTests?.pushNothing === true) return false;
    this.openPush(s);
    if (s.pushOut === undefined || s.pushOut.dead) return false;
    let hidden = sent;
    const faults = this.extras.faultsForTests;
    if (faults?.pushWrong === true) {
      const f = toFloat32(sent).map((v) => v * 1.5 + 0.1);
      hidden = activationTensor(f, sent.shape, s.wire);
    }
    // session 30: signed over the receiving session, the position, the dtype, the shape and the bytes as sent
    // (pushWrong signs what it pushes: a lying pusher can sign its lie, and the entry then blames it)
    const signature = signPush((s.pushSigner ??= newPushSigner()), s.pushTo.session, position, hidden);
    if (faults?.pushBadSignature === true) signature[0] = signature[0]! ^ 1;
    s.pushOut.queue.push({ sessionId: s.pushTo.session, position, hidden: tensorToPb(hidden), signature });
    this.pushStats.sent++;
    return true;
  }

  /**
   * The session's push stream to its next hop, opened once (at set-up, so that the first pushed step does not wait
   * for the stream to open); one that failed is not reopened.
   */
  private openPush(s: HopSessionState): void {
    const to = s.pushTo;
    if (to === undefined || this.rpc === undefined) return;
    if (s.pushOut === undefined) {
      const queue = new RequestQueue<InferencePush>();
      const out = { queue, dead: false };
      s.pushOut = out;
      const calls = this.rpc.bidi(to.peer, inferencePush, queue);
      void (async () => {
        try {
          for await (const _ of calls) void _;
        } catch (e) {
          // the next hop refused a push or went away: its placeholders answer push_missing and the entry sends
          // explicitly; this session pushes no more
          this.log.info('a push stream ended', { peer: to.peer, error: errorMessage(e) });
        } finally {
          out.dead = true;
          queue.end();
        }
      })();
    }
  }

  handler(): BidiHandler<InferenceRequest, InferenceResponse> {
    const self = this;
    return async function* (requests: AsyncIterable<InferenceRequest>, ctx: CallContext): AsyncGenerator<InferenceResponse> {
      let s: HopSessionState | undefined;
      try {
        for await (const r of requests) {
          if (s === undefined) s = await self.open(r, ctx);
          else if (r.sessionId !== s.id) {
            self.penalise(ctx.peer, 'a session id changed within its stream');
            throw new HopError('SESSION_MISMATCH', 'one stream carries one session');
          }
          if (r.commitRequest !== undefined || r.receipt !== undefined) {
            yield self.settle(s, r, ctx.peer);
            if (r.endSession) break;
            continue;
          }
          if (r.endSession && r.hidden === undefined && r.tokens.length === 0) break;
          // `yield` awaits a promise itself (a second await here was one more tick per step)
          yield self.step(s, r, ctx);
          if (r.endSession) break;
        }
      } finally {
        if (s !== undefined) await self.release(s);
      }
    };
  }

  private penalise(peer: string, why: string): void {
    this.scores?.penalise(peer, PENALTY.malformed, `inference-stream: ${why}`);
  }

  private async open(r: InferenceRequest, ctx: CallContext): Promise<HopSessionState> {
    const span = this.compute.span();
    if (span === undefined) throw new HopError('NOT_SERVING', 'this node serves no layers', 'local');
    if (this.draining) throw new HopBusyError('this node is moving its layers and takes no new sessions');
    const t = r.targetSpan;
    if (t === undefined || t.start !== span.start || t.end !== span.end) {
      throw new HopError('WRONG_SPAN', `this node serves layers ${spanText(span)}; the request names ${t === undefined ? 'no span' : spanText(t)}`);
    }
    const owner = this.sessions.get(r.sessionId);
    if (owner !== undefined) {
      if (owner.peer !== ctx.peer) this.penalise(ctx.peer, 'reused the session id of another peer');
      throw new HopError('SESSION_TAKEN', 'this session id is in use');
    }
    const maxLen = r.maxLength;
    if (maxLen < 1 || maxLen > this.compute.contextLength) throw new HopError('BAD_STEP', `max_length ${maxLen} not in 1..${this.compute.contextLength}`);
    // an address the transport names without an IP or DNS part: one shared block, as records without one share 'none'
    const block = ctx.remoteAddr === undefined ? undefined : (addressBlock(ctx.remoteAddr) ?? 'none');
    let mine = 0;
    let ofBlock = 0;
    let blockBytes = 0;
    for (const x of this.sessions.values()) {
      if (x.peer === ctx.peer) mine++;
      if (block !== undefined && x.block === block) {
        ofBlock++;
        blockBytes += x.bytes;
      }
    }
    if (mine >= this.limits.maxSessionsPerPeer) throw new HopBusyError(`this peer holds ${mine} sessions here (the cap)`);
    if (ofBlock >= this.limits.maxSessionsPerBlock) throw new HopBusyError(`peers of this address block hold ${ofBlock} sessions here (the cap)`);
    if (this.sessions.size >= this.limits.maxSessions) throw new HopBusyError(`${this.sessions.size} sessions are open here (the cap)`);
    const bytes = maxLen * this.compute.kvBytesPerPosition(span);
    if (this.reservedBytes + bytes > this.limits.memoryBudgetBytes) {
      throw new HopBusyError(`the KV-cache budget is full (${this.reservedBytes} of ${this.limits.memoryBudgetBytes} bytes reserved, ${bytes} asked)`);
    }
    const blockBudget = Math.floor(this.limits.memoryBudgetBytes * this.limits.blockBudgetShare);
    if (block !== undefined && blockBytes + bytes > blockBudget) {
      throw new HopBusyError(`peers of this address block reserve ${blockBytes} bytes of KV cache here (their share: ${blockBudget}; ${bytes} asked)`);
    }
    const sampling: HopSampling = { temperature: r.temperature, topK: r.topK, topP: r.topP === 0 ? 1 : r.topP, seed: r.seed };
    const s: HopSessionState = { peer: ctx.peer, ...(block === undefined ? {} : { block }), id: r.sessionId, localId: `hop-${++this.nextLocal}`, bytes, tokens: 0, settles: 0, openedAt: Date.now(), inC: this.commits.open(), outC: this.commits.open(), maxLen, sampling, wire: 'f32' };
    if (this.extras.transcripts !== undefined) {
      s.inputs = this.extras.transcripts.store.open();
      // queued on the worker before the session's first step: the weights its steps run on (a training node's move)
      s.claimAtOpen = this.extras.transcripts.claim().catch(() => undefined);
    }
    this.sessions.set(r.sessionId, s);
    this.reservedBytes += bytes;
    try {
      await this.compute.open(s.localId, maxLen, sampling);
    } catch (e) {
      // unless a drain evicted it meanwhile (release() gave its bytes back then): undone twice, the reservation went
      // negative and the budget admitted that much more for good (session 27)
      if (this.sessions.get(r.sessionId) === s) {
        this.sessions.delete(r.sessionId);
        this.reservedBytes -= bytes;
        this.onRelease?.();
      }
      throw e;
    }
    return s;
  }

  private async step(s: HopSessionState, r: InferenceRequest, ctx: CallContext): Promise<InferenceResponse> {
    if (s.evicted === true) throw new HopError('NOT_SERVING', 'this node moved its layers; the session was ended', 'local');
    const span = this.compute.span();
    if (span === undefined) throw new HopError('NOT_SERVING', 'this node stopped serving its layers', 'local');
    const C = this.compute.hiddenSize;
    const driver = span.start === 0;
    const capable = this.extras.faultsForTests?.noPushCapability !== true;
    if (r.pushTo !== undefined || r.pushFrom !== undefined || r.pushOutput === true || r.inputByPush === true) this.pushStats.asked++;
    // session 29 pushes: where to push (set once) and whom to take pushes from (set once, never on the driver hop)
    if (r.pushTo !== undefined && capable) {
      if (s.pushTo !== undefined && (s.pushTo.peer !== r.pushTo || s.pushTo.session !== r.pushSession)) throw new HopError('BAD_STEP', 'a session pushes to one next hop');
      if (span.end === this.compute.numLayers) throw new HopError('BAD_STEP', 'the last hop has no next hop to push to');
      s.pushTo = { peer: r.pushTo, session: r.pushSession! };
      // session 30: the key this session signs its pushes with, answered below to the entry, which hands it to the
      // next hop; one per session, made here (~50 µs) so that the first push does not wait on it
      s.pushSigner ??= newPushSigner();
      if (this.extras.faultsForTests?.pushNothing !== true) this.openPush(s);
    }
    if (r.pushFrom !== undefined && capable) {
      if (driver) throw new HopError('BAD_STEP', 'the driver hop takes token ids, not pushes');
      if (s.pushFrom !== undefined && s.pushFrom !== r.pushFrom) throw new HopError('BAD_STEP', 'a session takes pushes from one peer');
      if (s.pushFromKey !== undefined && (r.pushFromKey === undefined || !Buffer.from(r.pushFromKey).equals(Buffer.from(s.pushFromKey.raw)))) throw new HopError('BAD_STEP', 'a session takes pushes under one key');
      if (s.pushFrom === undefined && r.pushFromKey !== undefined) {
        try {
          s.pushFromKey = { raw: Uint8Array.from(r.pushFromKey), key: pushVerifier(r.pushFromKey) };
        } catch {
          throw new HopError('BAD_STEP', 'push_from_key is not an Ed25519 public key');
        }
      }
      s.pushFrom = r.pushFrom;
    }
    /** A placeholder's input as pushed (with its attestation), and its digest for the entry. */
    let pushed: TakenPush | undefined;
    let pushedWire: WireTensor | undefined;
    if (r.inputByPush === true && capable) {
      if (driver || s.pushFrom === undefined || s.wireFixed !== true) throw new HopError('BAD_STEP', 'a placeholder step needs a pusher named and the session\'s first activations');
      const T = r.chunks.reduce((a, b) => a + b, 0);
      const bad = checkStep(T, r.chunks);
      if (bad !== undefined) throw new HopError('BAD_STEP', bad);
      const got = this.awaitPush(s, T, Math.min(MAX_PUSH_WAIT_MS, r.pushWaitMs ?? PUSH_WAIT_DEFAULT_MS), ctx.signal);
      pushed = got instanceof Promise ? await got : got;
      pushedWire = pushed?.w;
      // the push did not come: nothing ran or was committed, the session goes on (the entry sends the input itself)
      if (pushedWire === undefined) {
        this.pushStats.missing++;
        return { requestId: r.requestId, processedTokens: s.tokens, tokens: [], pushMissing: true, pushCapable: true, pushSigned: this.extras.faultsForTests?.noPushSignatures !== true };
      }
      this.pushStats.pushedSteps++;
    }
    let ids: Int32Array | undefined;
    let hidden: Float32Array | undefined;
    /** The input as received (not transferred to the worker): its commitment is taken after the answer. */
    let received: Float32Array | undefined;
    let wire: WireTensor | undefined;
    let T: number;
    if (driver) {
      if (r.hidden !== undefined || r.tokens.length === 0) throw new HopError('BAD_STEP', 'the driver hop takes token ids');
      const V = this.compute.vocabSize;
      if (r.tokens.some((t) => t >= V)) {
        this.penalise(ctx.peer, 'a token id out of the vocabulary');
        throw new HopError('BAD_STEP', `token ids must be below ${V}`);
      }
      ids = Int32Array.from(r.tokens);
      T = ids.length;
    } else {
      wire = pushedWire ?? tensorFromPb(r.hidden, 'inference-stream.hidden', true);
      if (wire === undefined || r.tokens.length > 0) throw new HopError('BAD_STEP', 'this hop takes hidden states');
      if (wire.shape[1] !== C) {
        this.penalise(ctx.peer, 'hidden states of the wrong width');
        throw new HopError('BAD_STEP', `hidden states must be [T, ${C}], got [${wire.shape.join(', ')}]`);
      }
      if (wire.shape.length !== 2) {
        this.penalise(ctx.peer, 'hidden states not of rank 2');
        throw new HopError('BAD_STEP', `hidden states must be [T, ${C}], got [${wire.shape.join(', ')}]`);
      }
      T = wire.shape[0];
      received = toFloat32(wire); // a view of the frame's own copy (rpc/frame.ts FrameReader): nothing reuses it
      hidden = received.slice(); // our own buffer: it is transferred to the worker
    }
    const chunks = r.chunks.length > 0 ? [...r.chunks] : [T];
    // the method's validation refuses these on the wire (methods.ts); checked here too, before anything is committed
    // or kept, for callers without it: the commitment code threw a RangeError for chunks that do not cover the rows
    // (an internal error, unpenalised) and let zero chunks through to the worker
    const bad = checkStep(T, chunks);
    if (bad !== undefined) {
      this.penalise(ctx.peer, bad);
      throw new HopError('BAD_STEP', bad);
    }
    if (wire !== undefined) {
      // one activation dtype per session, the first step's: the transcript names one (a validator re-executes every
      // step's output through it), so a session of fp32 steps and then a bf16 one re-executed to another output
      // commitment than the hop's own (bf16 then half rounds differently from half alone): an honest hop framed for
      // fraud and slashed, its bond's take going to the requester who mixed them (session 27). An entry keeps one.
      const dtype = wire.dtype === 'fp16' ? 'f16' : wire.dtype === 'bf16' ? 'bf16' : 'f32';
      if (s.wireFixed === true && dtype !== s.wire) {
        this.penalise(ctx.peer, 'activations of another dtype within a session');
        throw new HopError('BAD_STEP', `this session's activations are ${s.wire}, not ${dtype}`);
      }
      s.wire = dtype;
      s.wireFixed = true;
    }
    // a failed step ends the session (the entry fails over), so committing the input first costs nothing; the
    // records are taken on the commitment worker (the same bytes, off this event loop), in step order
    if (ids !== undefined) this.commits.tokens(s.inC, ids, chunks);
    else this.commits.hidden(s.inC, received!, C, chunks);
    // one plain object (two conditional spreads built and copied two throwaway objects per step)
    const input: { ids?: Int32Array; hidden?: Float32Array; chunks: number[] } = { chunks };
    if (ids !== undefined) input.ids = ids;
    if (hidden !== undefined) input.hidden = hidden;
    if (s.inputs !== undefined) this.extras.transcripts!.store.add(s.inputs, { ...input });
    const t0 = performance.now();
    const out = await this.compute.step(s.localId, input, ctx.signal);
    if (this.extras.faultsForTests?.corruptOutputs === true) corruptForTests(out, this.compute.vocabSize);
    // our compute share of the step, so that the entry can tell the network's share (its latency to us) apart
    const computeMs = performance.now() - t0;
    const computeUs = Math.min(0xffffffff, Math.max(0, Math.round(computeMs * 1000)));
    this.stepStats.computeMs += computeMs;
    s.tokens += T;
    this.totalTokens += T;
    // pushes for positions this step covered (one came after its placeholder answered push_missing) are stale
    if (s.pushed !== undefined) for (const at of s.pushed.keys()) if (at < s.tokens) s.pushed.delete(at);
    this.stepStats.steps++;
    if ((out.batch ?? 1) > 1) {
      this.stepStats.batched++;
      this.stepStats.rows += out.batch!;
    }
    const res: InferenceResponse = { requestId: r.requestId, processedTokens: s.tokens, tokens: [], computeUs };
    let deferAnswer = false;
    if (capable) {
      res.pushCapable = true;
      if (this.extras.faultsForTests?.noPushSignatures !== true) res.pushSigned = true;
      // the key of this session's pushes, on the answer to the step that set push_to (the entry hands it on)
      if (r.pushTo !== undefined && s.pushSigner !== undefined && this.extras.faultsForTests?.noPushSignatures !== true) res.pushKey = s.pushSigner.publicKey;
    }
    // what this step ran on when its input came by push: the entry checks it against the pusher's answer to it, and
    // holds the pusher's attestation of it in case the two disagree (which hop lied: judgePushMismatch)
    if (pushed !== undefined) {
      let digest: Uint8Array<ArrayBuffer> = (pushed.digest as Uint8Array<ArrayBuffer> | undefined) ?? activationDigest(pushed.w.data);
      const faults = this.extras.faultsForTests;
      if (faults?.digestLie === true || faults?.attestationDrop === true) {
        digest = Uint8Array.from(digest);
        digest[0] = digest[0]! ^ 1;
      }
      res.inputDigest = digest;
      const a = pushed.attestation;
      if (a !== undefined && faults?.attestationDrop !== true) res.pushAttestation = { dtype: attestationDtypeToPb(a.dtype), digest: a.digest as Uint8Array<ArrayBuffer>, signature: a.signature as Uint8Array<ArrayBuffer> };
    }
    // commitments over what travelled: our output as the entry will decode it (the input's is taken before the
    // step, which transfers its buffer to the worker)
    if (out.tokens !== undefined) {
      res.tokens = Array.from(out.tokens);
      this.commits.tokens(s.outC, out.tokens, chunks.map(() => 1));
    } else if (out.hidden !== undefined) {
      const sent = activationTensor(out.hidden, [T, C], wire?.dtype === 'fp16' ? 'f16' : wire?.dtype === 'bf16' ? 'bf16' : 'f32');
      res.hidden = tensorToPb(sent);
      // pushed before the answer is written: the next hop waits on it, the entry only checks it
      if (r.pushOutput === true && capable && this.pushOutput(s, s.tokens - T, sent) && DEFER_PUSHED_ANSWER) deferAnswer = true;
      // out.hidden is ours (the worker's answer) and is not written again: the queue may read it later
      this.commits.hidden(s.outC, sent.dtype === 'fp32' ? out.hidden : toFloat32(sent), C, chunks);
    }
    if (deferAnswer) await nextTurn();
    return res;
  }

  /**
   * A commit request: sign this session's commitments for the market request as hop index of count. A receipt (the
   * driver, hop 0 of the commitments signed last): check that it names our signed pair, then submit the completion.
   */
  private async settle(s: HopSessionState, r: InferenceRequest, peer: string): Promise<InferenceResponse> {
    // an entry settles a session once (a commit request, and a receipt to the driver): each commit request signs and
    // seals the session's inputs again under its request id, counted again in the transcripts' quota, so without a
    // bound one session's 7 MiB filled the 64 MiB quota after 9 and evicted every other hop session's transcript
    if (++s.settles > MAX_SETTLES_PER_SESSION) {
      this.penalise(peer, 'commit requests past the bound');
      throw new HopError('BAD_STEP', `a session is settled with at most ${MAX_SETTLES_PER_SESSION} commit requests and receipts`);
    }
    // every step of this session answered so far is in inC / outC (queue order)
    await this.commits.settled();
    if (this.market === undefined) throw new HopError('NO_MARKET', 'this hop signs no commitments (no ledger)', 'local');
    const res: InferenceResponse = { requestId: r.requestId, processedTokens: s.tokens, tokens: [] };
    if (r.commitRequest !== undefined) {
      const f = { requestId: r.commitRequest, index: r.commitIndex ?? 0, count: r.commitCount ?? 1 };
      // as for a step (checkStep; refused on the wire too): these reached the signing code's RangeErrors
      if (f.requestId.byteLength !== 32 || !(f.count >= 1 && f.count <= MAX_HOPS) || !(f.index < f.count)) {
        this.penalise(peer, 'a malformed commit request');
        throw new HopError('BAD_STEP', `a commit request names a 32-byte request id and hop index < count ≤ ${MAX_HOPS} (got ${f.requestId.byteLength} bytes, ${f.index} of ${f.count})`);
      }
      const h: HopCommitment = signHopCommitment(this.market.key, this.market.networkId, f.requestId, f.index, f.count, s.inC.value, s.outC.value);
      s.signedFor = f;
      await this.sealTranscript(s, h);
      return { ...res, hopKey: Uint8Array.from(h.key), inCommit: Uint8Array.from(h.inCommit), outCommit: Uint8Array.from(h.outCommit), hopSignature: Uint8Array.from(h.signature) };
    }
    const receipt = decodeReceipt(r.receipt!);
    const f = s.signedFor;
    const mine = receipt.hops[0]!;
    const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));
    if (f === undefined || f.index !== 0 || f.count !== receipt.hops.length) throw new HopError('BAD_RECEIPT', 'a receipt goes to the driver after it signed as hop 0 of the route');
    if (!same(mine.key, this.market.key.publicKey) || !same(mine.inCommit, s.inC.value) || !same(mine.outCommit, s.outC.value)) throw new HopError('BAD_RECEIPT', 'the receipt does not name this hop\'s signed commitments');
    const id = await this.market.submitCompletion({ requestId: f.requestId, ...receipt });
    return { ...res, completionId: Uint8Array.from(id) };
  }

  /**
   * Issue 11 §2: keeps the session's inputs for validators under (request, index, inCommit, outCommit), with the
   * signed claim: beside, never instead of, a session another peer sealed for the same public request id and index
   * (TranscriptStore, session 27).
   */
  private async sealTranscript(s: HopSessionState, h: HopCommitment): Promise<void> {
    const tr = this.extras.transcripts;
    const span = this.compute.span();
    if (tr === undefined || s.inputs === undefined || s.signedFor === undefined || span === undefined || this.market === undefined) return;
    const f = s.signedFor;
    try {
      const { modelHash, engine } = await tr.claim();
      // weights that moved during the session (training) name no weights a validator could re-run: not kept
      if ((await s.claimAtOpen)?.modelHash !== modelHash) {
        this.log.info('no transcript kept: the weights changed during the session');
        return;
      }
      const claim = { span: { start: span.start, end: span.end }, modelHash, engine };
      const claimSignature = signTranscriptClaim(this.market.key, this.market.networkId, f.requestId, f.index, f.count, h.inCommit, h.outCommit, claim);
      // owned by the entry's address block (its peer when the transport named no address): one block's seals take at
      // most a share of the store
      tr.store.seal(s.inputs, { requestId: f.requestId, index: f.index, count: f.count, inCommit: h.inCommit, outCommit: h.outCommit, claim, claimSignature, maxLen: s.maxLen, sampling: s.sampling, wire: s.wire, cols: span.start === 0 ? 0 : this.compute.hiddenSize }, s.block ?? `peer ${s.peer}`);
    } catch (e) {
      this.log.warn('keeping a transcript for validators failed', { error: errorMessage(e) });
    }
  }

  private async release(s: HopSessionState): Promise<void> {
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    s.pushOut?.queue.end();
    s.pushWaiter?.resolve(undefined);
    s.pushed?.clear();
    this.commits.drop(s.inC);
    this.commits.drop(s.outC);
    if (s.inputs !== undefined) this.extras.transcripts?.store.release(s.inputs);
    this.reservedBytes -= s.bytes;
    this.finished.push({ peer: s.peer, sessionId: s.id, tokens: s.tokens, closedAt: Date.now() });
    if (this.finished.length > 10_000) this.finished.splice(0, this.finished.length - 10_000);
    this.onRelease?.();
    await this.compute.close(s.localId).catch((e: unknown) => this.log.warn('closing a hop session failed', { error: errorMessage(e) }));
  }
}

/**
 * Why a step of `T` positions cut into `chunks` is malformed, or undefined: at least one position, in chunks of at
 * least one that sum to T. (Positions past the session's length are the worker's SESSION_FULL, sessions.ts.)
 */
export function checkStep(T: number, chunks: readonly number[]): string | undefined {
  if (!(T >= 1)) return 'a step of no positions';
  let sum = 0;
  for (const n of chunks) {
    if (!(n >= 1)) return 'a forward chunk of no positions';
    sum += n;
  }
  if (sum !== T) return `forward chunks of ${sum} positions for a step of ${T}`;
  return undefined;
}

/** Test-only (HopFaultsForTests): a wrong but well-formed output, which the hop then commits to honestly. */
function corruptForTests(out: { hidden?: Float32Array; tokens?: Int32Array }, vocab: number): void {
  if (out.tokens !== undefined) for (let i = 0; i < out.tokens.length; i++) out.tokens[i] = (out.tokens[i]! + 1) % vocab;
  if (out.hidden !== undefined) for (let i = 0; i < out.hidden.length; i++) out.hidden[i] = out.hidden[i]! * 1.5 + 0.1;
}

// ───────────────────────────── client ─────────────────────────────

/**
 * A push queue the bidi call reads its requests from (one reader). Its iterator is hand-written, not an async
 * generator: a request pushed while the reader waits resolves that wait directly (one promise per step, where the
 * generator's next(), its await and its yield were four).
 */
export class RequestQueue<R = InferenceRequest> implements AsyncIterable<R>, AsyncIterator<R> {
  private readonly items: R[] = [];
  /** Reads waiting for a request, oldest first (one in a `for await`; more only if a caller overlaps next() calls). */
  private readonly waiters: ((r: IteratorResult<R>) => void)[] = [];
  private ended = false;

  push(r: R): void {
    if (this.ended) return; // nothing after end() (the session checks `closed` before it pushes)
    const w = this.waiters.shift();
    if (w === undefined) this.items.push(r);
    else w({ done: false, value: r });
  }

  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w({ done: true, value: undefined });
  }

  next(): Promise<IteratorResult<R>> {
    if (this.items.length > 0) return Promise.resolve({ done: false, value: this.items.shift()! });
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The reader stopped (its call ended): nothing more is handed out. */
  return(): Promise<IteratorResult<R>> {
    this.ended = true;
    this.items.length = 0;
    for (const w of this.waiters.splice(0)) w({ done: true, value: undefined });
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): AsyncIterator<R> {
    return this;
  }
}

/** Session 29 push fields of one step (RemoteHopSession.step): sent only to a hop that said it takes them. */
export interface StepPush {
  /** Set once: where this hop may push this session's outputs (the next hop's peer and its session id there). */
  to?: { peer: string; session: string };
  /** Push this step's output there. */
  output?: boolean;
  /** Set once: the only peer whose pushes this session takes. */
  from?: string;
  /** Session 30, with `from`: that peer's session key for these pushes (its answer's push_key). */
  fromKey?: Uint8Array;
}

/** A placeholder step's answer: the output and the SHA-256 of the pushed input it ran on (its bytes in the session's dtype), or that no push came. */
export interface PushedOutput {
  hidden?: Float32Array;
  tokens?: Int32Array;
  inputDigest?: Uint8Array;
  /** Session 30: the pusher's attestation of the push the hop ran on (a signed session's answers carry one). */
  attestation?: PushAttestationData;
  pushMissing?: boolean;
}

/** SHA-256 of activations' wire bytes (the session's dtype, little-endian), as a hop digests its pushed input. */
export function activationDigest(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

export interface RemoteHopSpec {
  id: string;
  maxLen: number;
  sampling: HopSampling;
}

/**
 * The entry node's end of one hop session. Steps run one at a time; the first request carries the session's
 * parameters. `close()` ends the stream (the hop frees the session). A step that fails or is aborted ends the
 * stream too: the router replaces the hop rather than retrying on it.
 */
export class RemoteHopSession {
  private readonly queue = new RequestQueue();
  private readonly ac = new AbortController();
  private responses: AsyncGenerator<InferenceResponse> | undefined;
  private seq = 0;
  private closed = false;
  /** The signal whose abort closes this session (listen()). */
  private listening: AbortSignal | undefined;
  private readonly onAbort = (): void => this.close();

  constructor(
    private readonly rpc: RpcNode,
    private readonly peer: string,
    private readonly span: Span,
    private readonly spec: RemoteHopSpec,
    private readonly opts: {
      hiddenSize: number;
      vocabSize: number;
      wire: 'f32' | 'f16' | 'bf16';
      scores?: PeerScoreTable;
      /**
       * Called after each decode step (one position; not the first step, which also dials and opens) with the wall
       * time and the compute time the hop stated (ms): route choice's measured latency (router/measure.ts).
       */
      onStepTimed?: (peer: string, wallMs: number, hopComputeMs: number | undefined) => void;
    },
  ) {}

  /** Whether the hop's answers said it takes push fields (session 29): known after the first step. */
  pushCapable = false;
  /** Session 30: whether it signs its pushes and attests the ones it takes (the entry pushes only between two that do). */
  pushSigned = false;
  /** Session 30: the key this session signs its pushes with (the answer to the step that set push_to). */
  pushKey: Uint8Array | undefined;

  /**
   * Session 30: which hop lied when this hop's placeholder answer named another input digest than
   * pushDigest(`answer`) (`answer`: the entry's copy of the pusher's output; `pusherKey`: its answer's push_key;
   * `position`: the step's first position here). protocols/push-attestation.ts judgePushMismatch.
   */
  pushBlame(answer: Float32Array, out: PushedOutput, pusherKey: Uint8Array | undefined, position: number): PushBlame {
    const C = this.opts.hiddenSize;
    let key: KeyObject | undefined;
    try {
      key = pusherKey === undefined ? undefined : pushVerifier(pusherKey);
    } catch {
      key = undefined;
    }
    return judgePushMismatch({ pusherKey: key, sessionId: this.spec.id, position, T: answer.length / C, C, wire: this.opts.wire, answer, attestation: out.attestation });
  }

  /** The digest a placeholder's answer must name when the hop ran on `hidden` [T, C] (as step() would send it). */
  pushDigest(hidden: Float32Array): Uint8Array {
    const C = this.opts.hiddenSize;
    return activationDigest(activationTensor(hidden, [hidden.length / C, C], this.opts.wire).data);
  }

  /**
   * Sends a placeholder step (session 29): no activations, the step's chunks; the hop runs it on the input that the
   * pusher named earlier pushes, waiting at most `waitMs`, and pushes its own output on when `pushOutput`. Returns at once with the answer's promise
   * (the request is on its way): nothing else may be sent on this session until it settles. The answer is the
   * output and the digest of the input the hop used, or `pushMissing` (nothing ran; send the input with step()).
   */
  stepByPush(chunks: number[], waitMs: number, signal: AbortSignal, pushOutput = false): Promise<PushedOutput> {
    if (this.closed || this.responses === undefined) return Promise.reject(new AbortedError('hop session not open'));
    const req: InferenceRequest = { sessionId: this.spec.id, requestId: String(++this.seq), tokens: [], positionOffset: 0, endSession: false, chunks, maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0, inputByPush: true, pushWaitMs: Math.round(waitMs) };
    // (this hop pushes its own output on too, to the hop set up earlier)
    if (pushOutput) req.pushOutput = true;
    this.listen(signal);
    this.queue.push(req);
    const T = chunks.reduce((a, b) => a + b, 0);
    const answer = this.responses.next().then((n) => {
      if (n.done === true) throw new NeuroShardError('RPC_TRUNCATED', `${this.peer} ended the session stream`, { fault: 'peer' });
      const r = n.value;
      if (r.pushMissing === true) return { pushMissing: true } as PushedOutput;
      if (r.inputDigest === undefined) throw this.bad('answered a placeholder step without the digest of its input');
      const out: PushedOutput = { ...this.output(r, T, chunks), inputDigest: r.inputDigest };
      const a = r.pushAttestation;
      const dtype = a === undefined ? undefined : attestationDtypeFromPb(a.dtype);
      if (a !== undefined && dtype !== undefined) out.attestation = { dtype, digest: a.digest, signature: a.signature };
      return out;
    });
    return answer.catch((e: unknown) => {
      this.close();
      throw e;
    });
  }

  async step(input: { ids?: Int32Array; hidden?: Float32Array; chunks: number[] }, signal: AbortSignal, push?: StepPush): Promise<{ hidden?: Float32Array; tokens?: Int32Array }> {
    if (this.closed) throw new AbortedError('hop session closed');
    const T = input.chunks.reduce((a, b) => a + b, 0);
    const C = this.opts.hiddenSize;
    const first = this.responses === undefined;
    const req: InferenceRequest = {
      sessionId: this.spec.id,
      requestId: String(++this.seq),
      tokens: input.ids === undefined ? [] : Array.from(input.ids),
      positionOffset: 0,
      endSession: false,
      chunks: input.chunks,
      maxLength: first ? this.spec.maxLen : 0,
      temperature: first ? this.spec.sampling.temperature : 0,
      topK: first ? this.spec.sampling.topK : 0,
      topP: first ? this.spec.sampling.topP : 0,
      seed: first ? this.spec.sampling.seed : 0,
    };
    if (first) req.targetSpan = { start: this.span.start, end: this.span.end };
    if (input.hidden !== undefined) req.hidden = tensorToPb(activationTensor(input.hidden, [T, C], this.opts.wire));
    // push fields only to a hop that said it takes them (an older one would ignore them or misread a placeholder)
    if (push !== undefined && this.pushCapable) {
      if (push.to !== undefined) {
        req.pushTo = push.to.peer;
        req.pushSession = push.to.session;
      }
      if (push.output === true) req.pushOutput = true;
      if (push.from !== undefined) req.pushFrom = push.from;
      if (push.from !== undefined && push.fromKey !== undefined) req.pushFromKey = Uint8Array.from(push.fromKey);
    }
    this.responses ??= this.rpc.bidi(this.peer, inferenceStream, this.queue, { signal: this.ac.signal });
    this.listen(signal);
    try {
      const t0 = performance.now();
      this.queue.push(req);
      const n = await this.responses.next();
      if (n.done === true) throw new NeuroShardError('RPC_TRUNCATED', `${this.peer} ended the session stream`, { fault: 'peer' });
      const r = n.value;
      if (!first && T === 1) this.opts.onStepTimed?.(this.peer, performance.now() - t0, r.computeUs !== undefined && r.computeUs > 0 ? r.computeUs / 1000 : undefined);
      if (r.pushCapable === true) this.pushCapable = true;
      if (r.pushSigned === true) this.pushSigned = true;
      if (r.pushKey !== undefined && push?.to !== undefined) this.pushKey = r.pushKey;
      if (r.pushMissing === true) throw this.bad('answered push_missing to a step that carried its input');
      return this.output(r, T, input.chunks);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** A step's answer as the router takes it: one sampled token per chunk, or hidden states [T, C]. */
  private output(r: InferenceResponse, T: number, chunks: readonly number[]): { hidden?: Float32Array; tokens?: Int32Array } {
    const C = this.opts.hiddenSize;
    if (r.tokens.length > 0) {
      if (r.tokens.length !== chunks.length || r.tokens.some((t) => t >= this.opts.vocabSize)) throw this.bad('sampled tokens that do not fit the request');
      return { tokens: Int32Array.from(r.tokens) };
    }
    const h = tensorFromPb(r.hidden, 'inference-stream.hidden', true);
    if (h === undefined || h.shape[0] !== T || h.shape[1] !== C) throw this.bad(`hidden states not of shape [${T}, ${C}]`);
    // our own buffer (the router keeps it for replay): toFloat32 views the frame's bytes only when they are aligned
    // fp32, and otherwise already made a fresh array (a second copy was 2 of every answer's 3 KiB copies)
    const f = toFloat32(h);
    return { hidden: f.buffer === h.data.buffer ? f.slice() : f };
  }

  /**
   * Closes the session when `signal` aborts. The listener stays on the signal across steps (a caller that passes one
   * signal for a whole generation, as the bench does, pays one addEventListener instead of an add and a remove per
   * step: Node's EventTarget costs ~1 µs each); it moves when a step brings another signal (the router's per-call
   * one) and comes off at close(). Aborting that signal between steps closes the session, as at the next step.
   */
  private listen(signal: AbortSignal): void {
    if (signal === this.listening) return;
    this.listening?.removeEventListener('abort', this.onAbort);
    this.listening = signal;
    signal.addEventListener('abort', this.onAbort, { once: true });
  }


  /**
   * Asks the hop to sign its commitments for a market request as hop `index` of `count` (after the last step; issue
   * 11 §2). Rejects when the hop does not sign (an older hop, no ledger there) or the answer is malformed.
   */
  async commit(req: { requestId: Uint8Array; index: number; count: number }, signal: AbortSignal): Promise<HopCommitment> {
    const r = await this.exchange({ commitRequest: Uint8Array.from(req.requestId), commitIndex: req.index, commitCount: req.count }, signal);
    if (r.hopKey === undefined || r.inCommit === undefined || r.outCommit === undefined || r.hopSignature === undefined) throw this.bad('answered a commit request without a commitment');
    return { key: r.hopKey, inCommit: r.inCommit, outCommit: r.outCommit, signature: r.hopSignature };
  }

  /** Sends the requester's receipt to the driver (this hop), which submits the completion; resolves with its event id. */
  async submitReceipt(receipt: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    const r = await this.exchange({ receipt: Uint8Array.from(receipt) }, signal);
    if (r.completionId === undefined) throw this.bad('answered a receipt without a completion id');
    return r.completionId;
  }

  private async exchange(fields: Partial<InferenceRequest>, signal: AbortSignal): Promise<InferenceResponse> {
    if (this.closed || this.responses === undefined) throw new AbortedError('hop session not open');
    const req: InferenceRequest = { sessionId: this.spec.id, requestId: String(++this.seq), tokens: [], positionOffset: 0, endSession: false, chunks: [], maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0, ...fields };
    this.listen(signal);
    try {
      this.queue.push(req);
      const n = await this.responses.next();
      if (n.done === true) throw new NeuroShardError('RPC_TRUNCATED', `${this.peer} ended the session stream`, { fault: 'peer' });
      return n.value;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private bad(why: string): PeerMisbehaviourError {
    this.opts.scores?.penalise(this.peer, PENALTY.malformed, `inference-stream: ${why}`);
    return new PeerMisbehaviourError('HOP_BAD_OUTPUT', `${this.peer}: ${why}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listening?.removeEventListener('abort', this.onAbort);
    this.listening = undefined;
    this.queue.end();
    // a closed stream frees the hop's session; an aborted one as well (the hop sees the reset)
    if (this.responses === undefined) return;
    const r = this.responses;
    void (async () => {
      try {
        // drain: the server ends the stream after our half-close
        for (;;) if ((await r.next()).done === true) break;
      } catch {
        // reset or timed out: the hop's session ends with its stream either way
      }
    })();
    setTimeout(() => this.ac.abort(new AbortedError('hop session closed')), 2000).unref();
  }
}
