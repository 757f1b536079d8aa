/**
 * Hop transcripts (issue 11 §2: validators re-execute sampled hop spans; docs/PROTOCOL.md "Hop transcripts and fraud
 * evidence"). A hop keeps the exact inputs of its sessions while they are open and, for a session whose commitments
 * it signed for a market request, keeps them for a bounded time under a memory quota (`TranscriptStore`), so that a
 * validator can fetch them (`hop-transcript/1.0.0`), check them against the signed input commitment (whose v2 chain
 * binds the SHA-256 of every step's full tensor, ledger/commitment.ts), and re-run the span on its own weights
 * (`reexecute`).
 *
 * A session's inputs are all of its steps, not one: a step's output depends on the KV cache of the steps before it,
 * so a validator replays the session from its first step.
 */
import { createHash } from 'node:crypto';
import { publicKeyFromPeerId } from '../identity/index.js';
import { DecodeError, Reader, Writer } from '../ledger/codec.js';
import { RunningCommitment, type TopKStep } from '../ledger/commitment.js';
import { MAX_ENGINE_CHARS, MAX_MODEL_HASH_CHARS, type FraudStatement, type TranscriptClaim } from '../ledger/fraud.js';
import { decodeEvent, EventKind, MAX_EVENT_BYTES, MAX_HOPS, type LedgerEvent } from '../ledger/events.js';
import { bytesEqual } from '../util/bytes.js';
import { isNeuroShardError, NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { linkSignals } from '../util/abort.js';
import type { HopCompute, HopSampling } from './inference.js';
import type { MessageCodec, UnaryMethod } from './rpc/method.js';
import type { CallContext, RpcNode } from './rpc/service.js';
import { activationTensor, toFloat32 } from './tensor-wire.js';
import { MAX_VALIDATION_RATE, isSampled } from './sampling.js';
import { carriedCompletion, carriedRequest, TRANSCRIPT_MAX_WAITING, TRANSCRIPT_MAX_WAITING_PER_PEER, TRANSCRIPT_PAID_WAIT_MS, vouchable, vouches, type PaidCompletion, type TranscriptAccess } from './transcript-access.js';

const MiB = 1024 * 1024;

/** One step as the hop received it: token ids (the driver) or hidden states [T, C] as decoded from the wire. */
export interface TranscriptStep {
  chunks: number[];
  ids?: Int32Array;
  hidden?: Float32Array;
}

/** Everything a validator needs to re-run a hop's session, with the hop's signed claim about it. */
export interface HopTranscript {
  requestId: Uint8Array;
  index: number;
  count: number;
  inCommit: Uint8Array;
  outCommit: Uint8Array;
  claim: TranscriptClaim;
  /** The hop's signature over fraud.ts transcriptPayload. */
  claimSignature: Uint8Array;
  maxLen: number;
  sampling: HopSampling;
  /** The activation dtype on the wire (the hop answers in the dtype it was sent; the driver in fp32). */
  wire: 'f32' | 'f16' | 'bf16';
  /** Hidden width (0 for a driver, whose inputs are ids). */
  cols: number;
  steps: TranscriptStep[];
}

export interface TranscriptLimits {
  /** Bytes of inputs kept in all (open sessions and sealed transcripts together). */
  maxBytes: number;
  /** Bytes of inputs one session may keep; a longer session is not kept (and cannot be validated: docs/LIMITS.md). */
  maxSessionBytes: number;
  /** How long a sealed transcript is kept for validators. */
  retentionMs: number;
  /** Sealed transcripts kept at most. */
  maxEntries: number;
  /**
   * The share of `maxEntries` and `maxBytes` the sealed transcripts of one owner (the address block of the entry
   * that drove the session; `seal`'s `owner`) may take; past it the owner's own oldest go first. Default 1/4.
   */
  ownerShare?: number;
}

export const TRANSCRIPT_LIMIT_DEFAULTS: TranscriptLimits = { maxBytes: 64 * MiB, maxSessionBytes: 8 * MiB, retentionMs: 10 * 60_000, maxEntries: 1024, ownerShare: 0.25 };

/** A session's inputs while it is open. `bytes` counts toward the store's quota. */
export interface OpenInputs {
  steps: TranscriptStep[];
  bytes: number;
  /** Over the per-session or the global quota: nothing more is kept for it. */
  dropped: boolean;
}

const slotOf = (requestId: Uint8Array, index: number): string => `${Buffer.from(requestId).toString('hex')}:${index}`;
const keyOf = (requestId: Uint8Array, index: number, inCommit: Uint8Array, outCommit: Uint8Array): string =>
  `${slotOf(requestId, index)}:${Buffer.from(inCommit).toString('hex')}:${Buffer.from(outCommit).toString('hex')}`;

/** The commitments a validator has from the completion on the ledger: they name one sealed transcript. */
export interface TranscriptCommits {
  inCommit: Uint8Array;
  outCommit: Uint8Array;
}

/**
 * The hop's quota-bound memory of inputs. Open sessions add steps (`add`); a session whose commitments are signed is
 * sealed under (request, index, inCommit, outCommit) until `retentionMs` passes; the oldest sealed transcripts go
 * first when the bytes or the entries run out. `now` is injectable for tests.
 *
 * Keyed by the commitments, not by (request, index) alone (session 27): request ids are public (market requests are
 * on the ledger) and the hop seals for whatever request id a commit request names, so a stranger's session sealed
 * for a real request's id and index replaced the honest session's transcript, and validators, fetching the
 * stranger's, found it was not the one in the completion (`TRANSCRIPT_NOT_THIS_HOP`): the hop's work went
 * unverified. Now a stranger's seal only adds an entry of its own (bounded by its owner's share), and a validator
 * asks for the one whose commitments the completion carries (`get` with `commits`).
 */
export class TranscriptStore {
  /** Sealed transcripts by keyOf, in seal order (oldest first). */
  private readonly sealed = new Map<string, { t: HopTranscript; bytes: number; at: number; owner?: string; slot: string }>();
  /** The keys sealed under each (request, index), in seal order: `get` without commitments answers the newest. */
  private readonly slots = new Map<string, string[]>();
  private bytes = 0;

  constructor(
    readonly limits: TranscriptLimits = TRANSCRIPT_LIMIT_DEFAULTS,
    private readonly now: () => number = Date.now,
  ) {}

  open(): OpenInputs {
    return { steps: [], bytes: 0, dropped: false };
  }

  /** Keeps one step's inputs (copied) if the quotas allow. */
  add(o: OpenInputs, step: TranscriptStep): void {
    if (o.dropped) return;
    const b = (step.ids?.byteLength ?? 0) + (step.hidden?.byteLength ?? 0) + 4 * step.chunks.length;
    this.expire();
    while (this.bytes + b > this.limits.maxBytes && this.evictOldest());
    if (o.bytes + b > this.limits.maxSessionBytes || this.bytes + b > this.limits.maxBytes) {
      this.release(o);
      o.dropped = true;
      return;
    }
    o.steps.push({ chunks: [...step.chunks], ...(step.ids === undefined ? {} : { ids: Int32Array.from(step.ids) }), ...(step.hidden === undefined ? {} : { hidden: step.hidden.slice() }) });
    o.bytes += b;
    this.bytes += b;
  }

  /** The session ended without being sealed (or after): give its bytes back. */
  release(o: OpenInputs): void {
    this.bytes -= o.bytes;
    o.bytes = 0;
    o.steps = [];
  }

  /**
   * Keeps the session's inputs under (request, index, inCommit, outCommit); the open record's bytes move to the
   * sealed entry. Sessions sealed for the same request and index with other commitments are kept beside it, not
   * replaced (see the class). The same key sealed again (the same session settled twice, or another session of the
   * very same inputs and outputs) keeps the entry there: it already holds those inputs. `owner` (the address block
   * of the entry that drove the session): its sealed transcripts take at most `ownerShare` of the entries and bytes,
   * its own oldest going first. A hop seals for any request id a commit request names, so without it one stranger's
   * sessions of a step each, sealed for made-up request ids at ~200 bytes a seal, pushed every other transcript out
   * (session 27).
   */
  seal(o: OpenInputs, t: Omit<HopTranscript, 'steps'>, owner?: string): boolean {
    if (o.dropped) return false;
    this.expire();
    const k = keyOf(t.requestId, t.index, t.inCommit, t.outCommit);
    // first sealed, kept: a later seal of the same commitments cannot take the entry over (and with it, through its
    // owner's share, the right to evict it)
    if (this.sealed.has(k)) return true;
    // the steps are shared (a session signed twice keeps one copy); a copy is counted once more, bounded by the quota
    const bytes = o.bytes;
    if (owner !== undefined) this.makeRoomFor(owner, bytes);
    this.bytes += bytes;
    const slot = slotOf(t.requestId, t.index);
    // a copy of the step list: a session that goes on after signing does not grow what was signed
    this.sealed.set(k, { t: { ...t, steps: o.steps.slice() }, bytes, at: this.now(), slot, ...(owner === undefined ? {} : { owner }) });
    const keys = this.slots.get(slot);
    if (keys === undefined) this.slots.set(slot, [k]);
    else keys.push(k);
    while (this.sealed.size > this.limits.maxEntries && this.evictOldest());
    while (this.bytes > this.limits.maxBytes && this.evictOldest());
    return this.sealed.has(k);
  }

  /**
   * The transcript sealed for (request, index) with `commits` (a validator's request names the completion's); without
   * them the newest sealed for (request, index), whoever drove it (what hop-transcript/1.0.0 answered until session
   * 28; `serveTranscripts` now asks for it only when it is the one entry there, see `count`).
   */
  get(requestId: Uint8Array, index: number, commits?: TranscriptCommits): HopTranscript | undefined {
    this.expire();
    if (commits !== undefined) return this.sealed.get(keyOf(requestId, index, commits.inCommit, commits.outCommit))?.t;
    const keys = this.slots.get(slotOf(requestId, index));
    return keys === undefined ? undefined : this.sealed.get(keys[keys.length - 1]!)?.t;
  }

  /** How many transcripts are sealed for (request, index) (sessions of different commitments). */
  count(requestId: Uint8Array, index: number): number {
    this.expire();
    return this.slots.get(slotOf(requestId, index))?.length ?? 0;
  }

  usage(): { entries: number; bytes: number } {
    return { entries: this.sealed.size, bytes: this.bytes };
  }

  private expire(): void {
    const cut = this.now() - this.limits.retentionMs;
    for (const [k, v] of this.sealed) {
      if (v.at > cut) break; // insertion order = seal order
      this.drop(k);
    }
  }

  /** Evicts `owner`'s oldest sealed transcripts until one more of `bytes` fits its share. */
  private makeRoomFor(owner: string, bytes: number): void {
    const share = this.limits.ownerShare ?? TRANSCRIPT_LIMIT_DEFAULTS.ownerShare!;
    const maxEntries = Math.max(1, Math.floor(this.limits.maxEntries * share));
    const maxBytes = Math.floor(this.limits.maxBytes * share);
    const mine: string[] = [];
    let held = 0;
    for (const [k, v] of this.sealed) {
      if (v.owner !== owner) continue;
      mine.push(k);
      held += v.bytes;
    }
    for (let i = 0; i < mine.length; i++) {
      // mine.length - i of the owner's are still kept: one more must fit
      if (mine.length - i < maxEntries && held + bytes <= maxBytes) break;
      held -= this.drop(mine[i]!);
    }
  }

  private evictOldest(): boolean {
    const first = this.sealed.keys().next();
    if (first.done === true) return false;
    this.drop(first.value);
    return true;
  }

  /** Removes a sealed transcript (and its key from its slot); returns its bytes. */
  private drop(k: string): number {
    const v = this.sealed.get(k);
    if (v === undefined) return 0;
    this.sealed.delete(k);
    this.bytes -= v.bytes;
    const keys = this.slots.get(v.slot);
    if (keys !== undefined) {
      const i = keys.indexOf(k);
      if (i >= 0) keys.splice(i, 1);
      if (keys.length === 0) this.slots.delete(v.slot);
    }
    return v.bytes;
  }
}

// ───────────────────────────── wire ─────────────────────────────

/** Largest transcript on the wire: the per-session default quota plus framing. */
export const MAX_TRANSCRIPT_BYTES = 9 * MiB;
const MAX_STEPS = 65_536;
const MAX_CHUNKS = 8192;
const WIRES = ['f32', 'f16', 'bf16'] as const;

function malformed(msg: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('RPC_MALFORMED', `hop-transcript: ${msg}`);
}

/** hop-transcript/1.0.0 request: u8 1 ‖ 32-byte market request id ‖ u8 hop index. */
export function encodeTranscriptRequest(requestId: Uint8Array, index: number): Uint8Array {
  return new Writer().u8(1).fixed(requestId, 32).u8(index).finish();
}

/** hop-transcript/2.0.0 request: u8 2 ‖ 32-byte market request id ‖ u8 hop index ‖ 32-byte inCommit ‖ 32-byte outCommit. */
export function encodeTranscriptRequestV2(requestId: Uint8Array, index: number, commits: TranscriptCommits): Uint8Array {
  return new Writer().u8(2).fixed(requestId, 32).u8(index).fixed(commits.inCommit, 32).fixed(commits.outCommit, 32).finish();
}

/**
 * hop-transcript/3.0.0 request (session 29): u8 3 ‖ bytes completion event (u32 length, ≤ MAX_EVENT_BYTES) ‖ u8 hop
 * index ‖ u8 0 | u8 1 ‖ fraud statement (33-byte validator key ‖ 32-byte recomputed ‖ 64-byte signature). The
 * completion is the validator's applied one (the hop ingests it when its own ledger lacks it); the statement, a
 * co-checker's, is the sampled validator's that asked it (the hop serves a co-checker on its word).
 */
export function encodeTranscriptRequestV3(completion: Uint8Array, index: number, statement?: FraudStatement): Uint8Array {
  return withStatement(new Writer().u8(3).bytes(completion, MAX_EVENT_BYTES).u8(index), statement);
}

/**
 * The largest market request event a hop-transcript/4.0.0 request carries. A market request event is at most 273
 * bytes (u8 version ‖ u8 kind ‖ str networkId of ≤ 128 bytes ‖ 33-byte signer ‖ u64 nonce ‖ u64 timestamp ‖ u32
 * maxTokens ‖ 16-byte amount ‖ u64 expiresAtMs ‖ 64-byte signature); the rest is room for a body field added later,
 * which the hop's ledger would judge anyway. Anything longer is not a market request: RPC_MALFORMED.
 */
export const MAX_CARRIED_REQUEST_BYTES = 512;

/**
 * hop-transcript/4.0.0 request (session 30): 3.0.0's with the completion's market request event after the completion:
 * u8 4 ‖ bytes completion (u32 length, ≤ MAX_EVENT_BYTES) ‖ bytes request (u32 length, ≤ MAX_CARRIED_REQUEST_BYTES) ‖
 * u8 hop index ‖ u8 0 | u8 1 ‖ fraud statement. A hop whose ledger has neither ingests the request, then the
 * completion (a completion alone is REQUEST_NOT_PENDING there).
 */
export function encodeTranscriptRequestV4(completion: Uint8Array, request: Uint8Array, index: number, statement?: FraudStatement): Uint8Array {
  return withStatement(new Writer().u8(4).bytes(completion, MAX_EVENT_BYTES).bytes(request, MAX_CARRIED_REQUEST_BYTES).u8(index), statement);
}

function withStatement(w: Writer, statement: FraudStatement | undefined): Uint8Array {
  if (statement === undefined) return w.u8(0).finish();
  return w.u8(1).fixed(statement.validator, 33).fixed(statement.recomputed, 32).fixed(statement.signature, 64).finish();
}

/**
 * A decoded request of any version; `carried` and `statement` only in 3.0.0's and 4.0.0's (their requestId and
 * commits are the completion's), `carriedRequest` only in 4.0.0's.
 */
export interface TranscriptRequest {
  requestId: Uint8Array;
  index: number;
  commits?: TranscriptCommits;
  /** The completion event's bytes as carried (signatures not checked here). */
  carried?: Uint8Array;
  /** The completion's market request event as carried (it decodes as a market request; signature not checked here). */
  carriedRequest?: Uint8Array;
  statement?: FraudStatement;
}

/** Any version's request (its first byte), strictly: RPC_MALFORMED otherwise. */
export function decodeTranscriptRequest(b: Uint8Array): TranscriptRequest {
  try {
    const r = new Reader(b);
    const version = r.u8();
    if (version === 3 || version === 4) {
      const carried = r.bytes(MAX_EVENT_BYTES);
      const carriedRequest = version === 4 ? r.bytes(MAX_CARRIED_REQUEST_BYTES) : undefined;
      const index = r.u8();
      const flag = r.u8();
      if (flag > 1) throw new DecodeError('statement flag');
      const statement = flag === 1 ? { validator: r.fixed(33), recomputed: r.fixed(32), signature: r.fixed(64) } : undefined;
      r.end();
      if (index >= MAX_HOPS) throw new DecodeError('hop index');
      const e = decodedEvent(carried, 'completion');
      if (e.body.kind !== EventKind.MarketComplete) throw new DecodeError('completion: not a market completion');
      const hop = e.body.hops[index];
      if (hop === undefined) throw new DecodeError('completion: no such hop');
      if (carriedRequest !== undefined && decodedEvent(carriedRequest, 'request').body.kind !== EventKind.MarketRequest) throw new DecodeError('request: not a market request');
      return {
        requestId: e.body.requestId,
        index,
        commits: { inCommit: hop.inCommit, outCommit: hop.outCommit },
        carried,
        ...(carriedRequest === undefined ? {} : { carriedRequest }),
        ...(statement === undefined ? {} : { statement }),
      };
    }
    if (version !== 1 && version !== 2) throw new DecodeError('version');
    const requestId = r.fixed(32);
    const index = r.u8();
    const commits = version === 2 ? { inCommit: r.fixed(32), outCommit: r.fixed(32) } : undefined;
    r.end();
    if (index >= MAX_HOPS) throw new DecodeError('hop index');
    return { requestId, index, ...(commits === undefined ? {} : { commits }) };
  } catch (e) {
    if (e instanceof DecodeError || e instanceof RangeError) throw malformed(`request: ${e.message}`);
    throw e;
  }
}

function decodedEvent(bytes: Uint8Array, what: string): LedgerEvent {
  try {
    return decodeEvent(bytes);
  } catch (err) {
    throw new DecodeError(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * u8 1 ‖ requestId ‖ u8 index ‖ u8 count ‖ inCommit ‖ outCommit ‖ u32 start ‖ u32 end ‖ str modelHash ‖ str engine ‖
 * 64-byte claim signature ‖ u32 maxLen ‖ f64 temperature ‖ u32 topK ‖ f64 topP ‖ u32 seed ‖ u8 wire ‖ u32 cols ‖
 * u32 steps ‖ per step: u16 n ‖ u32 chunk × n ‖ (ids: i32 × T | hidden: f32 LE × T·cols).
 */
export function encodeTranscript(t: HopTranscript): Uint8Array {
  const w = new Writer()
    .u8(1)
    .fixed(t.requestId, 32)
    .u8(t.index)
    .u8(t.count)
    .fixed(t.inCommit, 32)
    .fixed(t.outCommit, 32)
    .u32(t.claim.span.start)
    .u32(t.claim.span.end)
    .str(t.claim.modelHash, MAX_MODEL_HASH_CHARS)
    .str(t.claim.engine, MAX_ENGINE_CHARS)
    .fixed(t.claimSignature, 64)
    .u32(t.maxLen);
  const f = new DataView(new ArrayBuffer(8));
  const f64 = (x: number): void => {
    f.setFloat64(0, x);
    w.fixed(new Uint8Array(f.buffer.slice(0)), 8);
  };
  f64(t.sampling.temperature);
  w.u32(t.sampling.topK);
  f64(t.sampling.topP);
  w.u32(t.sampling.seed >>> 0);
  w.u8(WIRES.indexOf(t.wire)).u32(t.cols).u32(t.steps.length);
  // the parts in order, joined once at the end: the activations (most of the bytes) are not copied through the
  // writer's doubling buffer (each doubling a new zeroed buffer and a copy, and a last copy in finish())
  const parts: Uint8Array[] = [w.finish()];
  for (const s of t.steps) {
    const sw = new Writer().u16(s.chunks.length);
    for (const c of s.chunks) sw.u32(c);
    const T = s.chunks.reduce((a, b) => a + b, 0);
    if (t.cols === 0) {
      const ids = s.ids ?? new Int32Array(0);
      if (ids.length !== T) throw new RangeError('transcript step: ids do not match the chunks');
      const dv = new DataView(new ArrayBuffer(4 * T));
      for (let i = 0; i < T; i++) dv.setInt32(4 * i, ids[i]!);
      sw.fixed(new Uint8Array(dv.buffer), 4 * T);
      parts.push(sw.finish());
    } else {
      const h = s.hidden ?? new Float32Array(0);
      if (h.length !== T * t.cols) throw new RangeError('transcript step: hidden does not match the chunks');
      parts.push(sw.finish(), f32Bytes(h));
    }
  }
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  n = 0;
  for (const p of parts) {
    out.set(p, n);
    n += p.byteLength;
  }
  return out;
}

/**
 * float32 little-endian bytes of `h`. On a little-endian host (every one Node runs on here) a view of the array's own
 * bytes, copied once into the answer: encoding element by element through a DataView took 23-40 ms of the hop's
 * event loop for an 8 MiB transcript, which any peer may ask for with 64 bytes, and quieted signalling NaNs (session
 * 27 attack pass). The same bits either way, NaN payloads included.
 */
function f32Bytes(h: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
  const dv = new DataView(new ArrayBuffer(4 * h.length));
  const u = new Uint32Array(h.buffer, h.byteOffset, h.length);
  for (let i = 0; i < u.length; i++) dv.setUint32(4 * i, u[i]!, true);
  return new Uint8Array(dv.buffer);
}

/** A fresh Float32Array from float32 little-endian bytes (the inverse of f32Bytes). */
function f32FromBytes(b: Uint8Array): Float32Array {
  const own = b.slice(); // a fresh, aligned buffer
  if (LITTLE_ENDIAN) return new Float32Array(own.buffer, 0, own.byteLength / 4);
  const dv = new DataView(own.buffer);
  const u = new Uint32Array(own.byteLength / 4);
  for (let i = 0; i < u.length; i++) u[i] = dv.getUint32(4 * i, true);
  return new Float32Array(u.buffer);
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** Strict decode with bounds (hop index, width, steps, positions up to maxLen); RPC_MALFORMED otherwise. */
export function decodeTranscript(b: Uint8Array): HopTranscript {
  try {
    const r = new Reader(b);
    if (r.u8() !== 1) throw new DecodeError('version');
    const requestId = r.fixed(32);
    const index = r.u8();
    const count = r.u8();
    if (count < 1 || count > MAX_HOPS || index >= count) throw new DecodeError('hop index/count');
    const inCommit = r.fixed(32);
    const outCommit = r.fixed(32);
    const span = { start: r.u32(), end: r.u32() };
    if (!(span.start < span.end)) throw new DecodeError('span');
    const modelHash = r.str(MAX_MODEL_HASH_CHARS);
    const engine = r.str(MAX_ENGINE_CHARS);
    const claimSignature = r.fixed(64);
    const maxLen = r.u32();
    const f64 = (): number => new DataView(r.fixed(8).slice().buffer).getFloat64(0);
    const temperature = f64();
    const topK = r.u32();
    const topP = f64();
    const seed = r.u32();
    if (!Number.isFinite(temperature) || temperature < 0 || !Number.isFinite(topP) || topP < 0 || topP > 1) throw new DecodeError('sampling');
    const wire = WIRES[r.u8()];
    if (wire === undefined) throw new DecodeError('wire dtype');
    const cols = r.u32();
    if (cols > 0xffff) throw new DecodeError('width');
    const n = r.u32();
    if (n > MAX_STEPS) throw new DecodeError('too many steps');
    const steps: TranscriptStep[] = [];
    let positions = 0;
    for (let i = 0; i < n; i++) {
      const k = r.u16();
      if (k < 1 || k > MAX_CHUNKS) throw new DecodeError('chunk count');
      const chunks: number[] = [];
      for (let j = 0; j < k; j++) chunks.push(r.u32());
      const T = chunks.reduce((a, c) => a + c, 0);
      positions += T;
      if (chunks.some((c) => c < 1) || positions > maxLen) throw new DecodeError('positions beyond max length');
      if (cols === 0) {
        const dv = new DataView(r.fixed(4 * T).slice().buffer);
        const ids = new Int32Array(T);
        for (let j = 0; j < T; j++) ids[j] = dv.getInt32(4 * j);
        steps.push({ chunks, ids });
      } else {
        steps.push({ chunks, hidden: f32FromBytes(r.fixed(4 * T * cols)) });
      }
    }
    r.end();
    return { requestId, index, count, inCommit, outCommit, claim: { span, modelHash, engine }, claimSignature, maxLen, sampling: { temperature, topK, topP, seed }, wire, cols, steps };
  } catch (e) {
    if (e instanceof DecodeError || e instanceof RangeError) throw malformed(e.message);
    throw e;
  }
}

const raw: MessageCodec<Uint8Array> = { encode: (v) => v, decode: (b) => b };

/**
 * A validator fetches a hop's transcript for (market request, hop index), the request of validators older than
 * 2.0.0: answered with the session of the completion this node's ledger applied for the request, or, without a ledger
 * (`serveTranscripts` with no access rule), the one session sealed for it; never a guess among several (session 28).
 * Re-execution is costly: few at a time.
 */
export const hopTranscript: UnaryMethod<Uint8Array, Uint8Array> = {
  name: 'hop-transcript',
  version: '1.0.0',
  kind: 'unary',
  request: raw,
  response: raw,
  maxRequestBytes: 64,
  maxResponseBytes: MAX_TRANSCRIPT_BYTES,
  timeoutMs: 30_000,
  maxInboundStreams: 2,
  maxConcurrent: 8,
  maxConcurrentPerPeer: 2,
  requestReadMs: 5_000,
  validateRequest: (b) => {
    if (b[0] !== 1) throw malformed(`request: version ${b[0] ?? 'none'} is not hop-transcript/1.0.0's`);
    decodeTranscriptRequest(b);
  },
};

/**
 * The same fetch naming the hop's commitments from the completion (session 27): the transcript of the session the
 * completion paid for, not one a stranger sealed for the same public request id and index. A new protocol version,
 * not a field added to 1.0.0's request: an older hop refuses a longer 1.0.0 request as malformed and penalises the
 * asker, while a version it does not speak is a plain "protocol not supported" (`fetchTranscript` then asks 1.0.0).
 * Limits shared with 1.0.0 (the RPC layer counts slots per method name).
 */
export const hopTranscriptV2: UnaryMethod<Uint8Array, Uint8Array> = {
  ...hopTranscript,
  version: '2.0.0',
  maxRequestBytes: 128,
  validateRequest: (b) => {
    if (b[0] !== 2) throw malformed('request: hop-transcript/2.0.0 names the commitments (version 2)');
    decodeTranscriptRequest(b);
  },
};

/**
 * The same fetch carrying the validator's applied completion event, and for a co-checker the sampled validator's
 * fraud statement (session 29; docs/PROTOCOL.md "Who gets a transcript"). The hop serves only a reader sampled for the
 * (completion, hop) under MAX_VALIDATION_RATE, or one a sampled validator's statement vouches for; and when its own
 * ledger has not applied the completion (it was dropped at gossip, and the tail sync comes after the transcript's 10
 * minutes) it ingests the carried one first. A new version, as 2.0.0 was: an older hop answers "protocol not
 * supported" and `fetchTranscript` asks 2.0.0.
 */
export const hopTranscriptV3: UnaryMethod<Uint8Array, Uint8Array> = {
  ...hopTranscript,
  version: '3.0.0',
  maxRequestBytes: MAX_EVENT_BYTES + 4 + 3 + 129,
  validateRequest: (b) => {
    if (b[0] !== 3) throw malformed('request: hop-transcript/3.0.0 carries the completion (version 3)');
    decodeTranscriptRequest(b);
  },
};

/**
 * The same fetch carrying the completion's market request event too (session 30; docs/PROTOCOL.md "Who gets a
 * transcript"): a hop whose ledger has neither the request nor the completion ingests the request, then the
 * completion, each through every ledger rule (with 3.0.0 the completion alone was REQUEST_NOT_PENDING there, dropped,
 * and the validator's retries carried it again to no avail). A new version, not a field added to 3.0.0's request:
 * that request is a fixed body decoded to its last byte, so an older hop would refuse a longer one as malformed and
 * penalise the asker, while a version it does not speak is "protocol not supported" and `fetchTranscript` asks 3.0.0.
 * Limits shared with 1.0.0 (the RPC layer counts slots per method name).
 */
export const hopTranscriptV4: UnaryMethod<Uint8Array, Uint8Array> = {
  ...hopTranscript,
  version: '4.0.0',
  maxRequestBytes: MAX_EVENT_BYTES + 4 + MAX_CARRIED_REQUEST_BYTES + 4 + 3 + 129,
  validateRequest: (b) => {
    if (b[0] !== 4) throw malformed('request: hop-transcript/4.0.0 carries the completion and its request (version 4)');
    decodeTranscriptRequest(b);
  },
};

/**
 * Serves the store's sealed transcripts over every version, 1.0.0 to 4.0.0 (TRANSCRIPT_GONE when it has none for the
 * request: expired, evicted, never kept).
 *
 * With `access` (a node: its ledger decides, protocols/transcript-access.ts), only to a peer entitled to validate
 * (refused first, before any wait, lookup or encoding: one state read per stranger) and only the session of the
 * completion the ledger applied for (request, index), waiting up to `access.waitMs` for it; a 2.0.0 request naming
 * other commitments, a request in flight or never completed: `TRANSCRIPT_FORBIDDEN`. A 1.0.0 request gets that
 * completion's session, whoever else the hop sealed for the same public request id. Without `access`, 1.0.0 answers
 * only when one session is sealed for (request, index), `TRANSCRIPT_AMBIGUOUS` when several are (a stranger's seal
 * beside the honest one: the newest was served until session 28, the stranger's when it came last).
 */
export async function serveTranscripts(rpc: RpcNode, store: TranscriptStore, access?: TranscriptAccess): Promise<void> {
  const waits = new WaitSlots(TRANSCRIPT_MAX_WAITING, TRANSCRIPT_MAX_WAITING_PER_PEER);
  const serve = async (req: Uint8Array, ctx: CallContext): Promise<Uint8Array> => {
    const q = decodeTranscriptRequest(req);
    let commits = q.commits;
    if (access !== undefined) {
      if (!access.entitled(ctx.peer)) throw new TranscriptForbiddenError('NOT_BONDED', 'the caller holds no reward bond: its fraud statement would count toward no quorum');
      const maxRate = access.maxRate ?? MAX_VALIDATION_RATE;
      const drawn = (receiptSignature: Uint8Array): boolean => readerSampled(ctx.peer, receiptSignature, q.index, maxRate);
      let carriedId: Uint8Array | undefined;
      if (q.carried !== undefined) {
        // signatures and our key first, then the sampling rule on the carried receipt, and only then the ingest: a
        // forged completion, or a caller the draw does not name, changes nothing in our ledger
        const c = carriedCompletion(q.carried, q.index, access);
        // the request the completion answers (4.0.0), signed by its requester and the very one it names
        if (q.carriedRequest !== undefined) carriedRequest(q.carriedRequest, c, access);
        carriedId = c.id;
        if (!drawn(c.body.receiptSignature) && !vouchable(q.statement, c.body.receiptSignature, q.index, maxRate, access)) {
          throw notSampled(maxRate);
        }
        if (access.ingest !== undefined && access.paid(q.requestId, q.index) === undefined) access.ingest(q.carried, ctx.peer, q.carriedRequest);
      }
      const paid = await paidWithin(access, q.requestId, q.index, ctx.signal, waits, ctx.peer);
      if (paid === undefined) throw new TranscriptForbiddenError('COMPLETION_NOT_APPLIED', 'no completion for this request and hop is applied by this node\'s ledger (yet: ask again later)');
      if ((commits !== undefined && !(bytesEqual(commits.inCommit, paid.inCommit) && bytesEqual(commits.outCommit, paid.outCommit))) || (carriedId !== undefined && !bytesEqual(carriedId, paid.id))) {
        throw new TranscriptForbiddenError('NOT_THE_COMPLETION', 'these commitments are not the ones in the completion this node\'s ledger applied');
      }
      commits = paid;
      // the draw on the applied completion's receipt (older validators' 1.0.0 and 2.0.0 requests carry none); a
      // statement is checked once the transcript's claim gives the model hash it signs
      const sampled = drawn(paid.receiptSignature);
      if (!sampled && q.statement === undefined) throw notSampled(maxRate);
      const t = store.get(q.requestId, q.index, commits);
      if (t === undefined) throw new TranscriptGoneError();
      if (!sampled && !vouches(q.statement, paid, q.index, t.claim.modelHash, maxRate, access)) throw notSampled(maxRate);
      return encodeTranscript(t);
    }
    if (commits === undefined && store.count(q.requestId, q.index) > 1) throw new TranscriptAmbiguousError();
    const t = store.get(q.requestId, q.index, commits);
    if (t === undefined) throw new TranscriptGoneError();
    return encodeTranscript(t);
  };
  await rpc.handle(hopTranscript, serve);
  await rpc.handle(hopTranscriptV2, serve);
  await rpc.handle(hopTranscriptV3, serve);
  await rpc.handle(hopTranscriptV4, serve);
}

/**
 * `access.paid`, asked again every 100 ms until `access.waitMs` passes or the call ends, while the request is still
 * open in our ledger (`access.pending`): a request id our ledger does not hold open is answered at once, so a bonded
 * caller naming made-up ids does not hold the method's 8 slots for 5 s a call. A call waits only with one of `waits`
 * (review2, session 28: a request open in our ledger whose completion never comes, a bonded key's own escrow left to
 * expire, held a slot 5 s a call just the same, and four bonded keys at 2 calls each held all 8: an honest validator
 * asking about an applied completion got RPC_BUSY); without one it is answered at once, as if the request were not open.
 */
async function paidWithin(access: TranscriptAccess, requestId: Uint8Array, index: number, signal: AbortSignal, waits: WaitSlots, peer: string): Promise<PaidCompletion | undefined> {
  const until = Date.now() + (access.waitMs ?? TRANSCRIPT_PAID_WAIT_MS);
  let waiting = false;
  try {
    for (;;) {
      const open = access.pending?.(requestId) ?? true; // asked first: a completion applied after it is found next
      const p = access.paid(requestId, index);
      if (p !== undefined || !open || Date.now() >= until || signal.aborted) return p;
      if (!waiting && !(waiting = waits.take(peer))) return undefined;
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, until - Date.now()))));
    }
  } finally {
    if (waiting) waits.release(peer);
  }
}

/** Calls waiting for a completion (`paidWithin`): at most `total`, and `perPeer` per caller. */
class WaitSlots {
  private n = 0;
  private readonly byPeer = new Map<string, number>();
  constructor(
    private readonly total: number,
    private readonly perPeer: number,
  ) {}

  take(peer: string): boolean {
    const mine = this.byPeer.get(peer) ?? 0;
    if (this.n >= this.total || mine >= this.perPeer) return false;
    this.n++;
    this.byPeer.set(peer, mine + 1);
    return true;
  }

  release(peer: string): void {
    this.n--;
    const mine = (this.byPeer.get(peer) ?? 1) - 1;
    if (mine <= 0) this.byPeer.delete(peer);
    else this.byPeer.set(peer, mine);
  }
}

/** Stops serving every version. */
export async function unserveTranscripts(rpc: RpcNode): Promise<void> {
  await rpc.unhandle(hopTranscript).catch(() => undefined);
  await rpc.unhandle(hopTranscriptV2).catch(() => undefined);
  await rpc.unhandle(hopTranscriptV3).catch(() => undefined);
  await rpc.unhandle(hopTranscriptV4).catch(() => undefined);
}

/**
 * The caller may not read this transcript (session 28): not bonded, or no completion our ledger applied names it.
 * Fault `caller`: answered, never penalised (an honest validator our ledger lags behind asks again).
 */
export class TranscriptForbiddenError extends NeuroShardError {
  constructor(reason: 'NOT_BONDED' | 'NOT_SAMPLED' | 'COMPLETION_NOT_APPLIED' | 'NOT_THE_COMPLETION', message: string) {
    super('TRANSCRIPT_FORBIDDEN', `hop-transcript: ${reason}: ${message}`, { fault: 'caller', meta: { reason } });
  }
}

/** Whether the draw names `peer`'s key for the hop (a peer id without a key: only at rate 1, where the draw names everyone). */
function readerSampled(peer: string, receiptSignature: Uint8Array, index: number, maxRate: number): boolean {
  let key: Uint8Array;
  try {
    key = publicKeyFromPeerId(peer);
  } catch {
    return maxRate >= 1;
  }
  return isSampled(receiptSignature, index, key, maxRate);
}

function notSampled(maxRate: number): TranscriptForbiddenError {
  return new TranscriptForbiddenError('NOT_SAMPLED', `the caller is not sampled for this hop at the network's ceiling rate (${maxRate}), and no sampled validator's statement vouches for it`);
}

/** A 1.0.0 request (no commitments) when several sessions are sealed for its request and hop, and no ledger picks one. */
export class TranscriptAmbiguousError extends NeuroShardError {
  constructor() {
    super('TRANSCRIPT_AMBIGUOUS', 'hop-transcript: several sessions are sealed for this request and hop; ask hop-transcript/2.0.0 with the completion\'s commitments', { fault: 'local' });
  }
}

export class TranscriptGoneError extends NeuroShardError {
  constructor() {
    super('TRANSCRIPT_GONE', 'hop-transcript: no transcript kept for this request and hop', { fault: 'local' });
  }
}

/**
 * What a validator's fetch carries over hop-transcript/3.0.0: its applied completion, and a co-checker's voucher; over
 * 4.0.0 the completion's market request event too.
 */
export interface TranscriptCarry {
  completion: Uint8Array;
  /** The market request event the completion answers, from the validator's ledger (≤ MAX_CARRIED_REQUEST_BYTES). */
  request?: Uint8Array;
  /** The sampled validator's fraud statement that asked this co-check (hop-validator.ts `prosecute`). */
  statement?: FraudStatement;
}

/**
 * Fetches and decodes hop `index`'s transcript for `requestId` from `peer`; the peer's key must be the hop's. With
 * `carry` over hop-transcript/4.0.0 when it has the request (session 30: the hop ingests the request and the
 * completion if its ledger lacks them), else or from a peer that does not speak it over 3.0.0 (session 29: the hop
 * ingests the completion if its ledger lacks it, and serves a co-checker on the statement's word), falling back to
 * 2.0.0 when the peer does not speak it; with `commits` (the
 * hop's commitments in the completion) over 2.0.0, falling back to 1.0.0 (an older node: it answers the newest
 * transcript it sealed for the request and index).
 */
export async function fetchTranscript(rpc: RpcNode, peer: string, requestId: Uint8Array, index: number, signal?: AbortSignal, commits?: TranscriptCommits, carry?: TranscriptCarry): Promise<HopTranscript> {
  publicKeyFromPeerId(peer); // a peer id without a key cannot be a hop
  const opts = signal === undefined ? {} : { signal };
  const unsupported = (e: unknown): boolean => isNeuroShardError(e) && e.code === 'RPC_UNAVAILABLE' && e.meta?.reason === 'unsupported-protocol';
  if (carry?.request !== undefined && carry.request.byteLength <= MAX_CARRIED_REQUEST_BYTES) {
    try {
      return decodeTranscript(await rpc.call(peer, hopTranscriptV4, encodeTranscriptRequestV4(carry.completion, carry.request, index, carry.statement), opts));
    } catch (e) {
      if (!unsupported(e)) throw e;
    }
  }
  if (carry !== undefined) {
    try {
      return decodeTranscript(await rpc.call(peer, hopTranscriptV3, encodeTranscriptRequestV3(carry.completion, index, carry.statement), opts));
    } catch (e) {
      if (!unsupported(e)) throw e;
    }
  }
  if (commits !== undefined) {
    try {
      return decodeTranscript(await rpc.call(peer, hopTranscriptV2, encodeTranscriptRequestV2(requestId, index, commits), opts));
    } catch (e) {
      if (!unsupported(e)) throw e;
    }
  }
  return decodeTranscript(await rpc.call(peer, hopTranscript, encodeTranscriptRequest(requestId, index), opts));
}

// ───────────────────────────── re-execution ─────────────────────────────

/** The input commitment of a transcript's steps (exact: the v2 chain binds every step's full tensor). */
export function inputCommitment(t: HopTranscript): Uint8Array {
  const c = new RunningCommitment();
  for (const s of t.steps) {
    if (t.cols === 0) c.tokens(s.ids ?? [], s.chunks);
    else c.hidden(s.hidden ?? new Float32Array(0), t.cols, s.chunks);
  }
  return c.value;
}

let reexecutions = 0;

/**
 * Re-runs a transcript's session on `compute` (the validator's own worker, same span): opens a session with the
 * transcript's length and sampling, steps through its inputs in order, and commits to the outputs exactly as the hop
 * did (hidden states through the same wire dtype; sampled ids one per chunk). Returns the output commitment and its
 * opening (the per-step top-k records, for the cross-engine comparison). Closes the session whatever happens.
 */
export async function reexecute(compute: HopCompute, t: HopTranscript, signal: AbortSignal, timeoutMs = 120_000): Promise<{ outCommit: Uint8Array; opening: (TopKStep | { tokens: Uint32Array })[]; outputs: Float32Array[] }> {
  const id = `validate-${process.pid}-${++reexecutions}-${createHash('sha256').update(t.requestId).digest('hex').slice(0, 8)}`;
  const linked = linkSignals(AbortSignal.timeout(timeoutMs), signal);
  const out = new RunningCommitment(true);
  const outputs: Float32Array[] = [];
  await compute.open(id, t.maxLen, t.sampling);
  try {
    for (const s of t.steps) {
      const r = await compute.step(id, { chunks: [...s.chunks], ...(s.ids === undefined ? {} : { ids: Int32Array.from(s.ids) }), ...(s.hidden === undefined ? {} : { hidden: Float32Array.from(s.hidden) }) }, linked.signal);
      if (r.tokens !== undefined) out.tokens(r.tokens, s.chunks.map(() => 1));
      else if (r.hidden !== undefined) {
        const T = s.chunks.reduce((a, b) => a + b, 0);
        const C = compute.hiddenSize;
        const sent = activationTensor(r.hidden, [T, C], t.wire);
        const values = sent.dtype === 'fp32' ? r.hidden : toFloat32(sent);
        outputs.push(values);
        out.hidden(values, C, s.chunks);
      } else throw new RangeError('re-execution: the step gave no output');
    }
  } finally {
    linked.dispose();
    await compute.close(id).catch(() => undefined);
  }
  return { outCommit: out.value, opening: out.opening ?? [], outputs };
}
