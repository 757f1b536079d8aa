/**
 * What a node's proofs of work are made of, as plain data and pure functions: the work counters the node feeds,
 * and the claim a proof makes from their growth since the previous proof (cut to the ledger's per-second caps,
 * training only when provable). node/ledger.ts wires them to the running node and signs; nothing here signs,
 * reads a clock or touches the network.
 *
 * Another engineer wires inference receipts and training aggregation records into rewards (issue 11 §2): they
 * arrive as new counters/records here and as new event kinds in events.ts, not as changes to the node wiring.
 */
import { concatBytes, fromHex, sha256, toHex } from '../util/bytes.js';
import { minBig } from './amount.js';
import { MAX_DATA_SAMPLES_PER_S, MAX_INFERENCE_TOKENS_PER_S, MAX_REQUEST_IDS_PER_PROOF, MAX_TRAINING_TOKENS_PER_S, MIN_TRAINING_UPTIME_MS, PROOF_WINDOW_MS } from './economics.js';

/** Layers [start, end) (structurally the HolderRecord span of protocols/). */
export interface WorkSpan {
  start: number;
  end: number;
}

/** Advertised capacity (structurally the HolderRecord capacity of protocols/). */
export interface WorkCapacity {
  memoryMb: number;
  tokensPerSec: number;
}

/** Figures of the node's latest training step. */
export interface TrainingFigures {
  /** Training loss (must be positive and finite for a training claim). */
  loss: number;
  gradNorm: number;
  /** 32-byte commitment to the gradient or pseudo-gradient; derived from the model hashes when absent. */
  gradientCommitment?: Uint8Array;
  /** 32-byte hash of the data the window trained on; zero when absent. */
  dataHash?: Uint8Array;
}

/**
 * Where the proofs' figures come from. Counters are cumulative since the node started and never decrease; the
 * emitter takes differences between proofs.
 */
export interface WorkCounters {
  inferenceTokens(): bigint;
  /** Training batches (informational: proofs carry tokens, rewarded per 2,048-token standard batch pro rata). */
  trainingBatches(): bigint;
  trainingTokens(): bigint;
  dataSamples(): bigint;
  /** Hex SHA-256 model hash of the weights held now (model/hash.ts), or '' before a model is loaded. */
  modelHash(): string;
  /**
   * Reads that hash afresh (optional): `modelHash()` may lag the weights (the node's lags them by up to 5 s,
   * pool/held-hash.ts), so a proof asks for this one right after it takes the counters (freshWork).
   */
  refreshModelHash?(): Promise<string>;
  /** The latest training step's figures, or undefined when the node has not trained. */
  training(): TrainingFigures | undefined;
  /** Layers held now [start, end), or undefined: a node that holds none proves nothing. */
  layersHeld(): WorkSpan | undefined;
  /** Market request ids served since the last call (at most 32 go into one proof; optional). */
  takeRequestIds?(): Uint8Array[];
  /** Capacity advertised in the embedded HolderRecord (tokensPerSec feeds the market's supply). */
  capacity?(): WorkCapacity | undefined;
}

/** Where a tally reads the model hash: the hash named now, and a read of the weights' hash now (pool/held-hash.ts). */
export interface ModelHashSource {
  current(): string;
  refresh(): Promise<string>;
}

/** A mutable WorkCounters for the node to feed (and for tests). */
export class WorkTally implements WorkCounters {
  private inference = 0n;
  private batches = 0n;
  private tokens = 0n;
  private samples = 0n;
  private hash: string | (() => string) | ModelHashSource = '';
  private span: WorkSpan | undefined;
  private last: TrainingFigures | undefined;
  private requests: Uint8Array[] = [];
  private cap: WorkCapacity | undefined;

  addInferenceTokens(n: number | bigint): void {
    this.inference += BigInt(n);
  }
  addDataSamples(n: number | bigint): void {
    this.samples += BigInt(n);
  }
  /** One optimizer step over `tokens` tokens. */
  recordTrainingStep(s: { tokens: number | bigint } & TrainingFigures): void {
    this.batches++;
    this.tokens += BigInt(s.tokens);
    this.last = { loss: s.loss, gradNorm: s.gradNorm, gradientCommitment: s.gradientCommitment, dataHash: s.dataHash };
  }
  addRequestId(id: Uint8Array): void {
    if (this.requests.length < 1024) this.requests.push(id);
  }
  /** The hash as of now, or where to read it each time (the node: its pool's, pool/held-hash.ts, fresh for proofs). */
  setModelHash(hex: string | (() => string) | ModelHashSource): void {
    this.hash = hex;
  }
  setLayers(span: WorkSpan | undefined): void {
    this.span = span === undefined ? undefined : { ...span };
  }
  setCapacity(c: WorkCapacity | undefined): void {
    this.cap = c;
  }

  inferenceTokens(): bigint {
    return this.inference;
  }
  trainingBatches(): bigint {
    return this.batches;
  }
  trainingTokens(): bigint {
    return this.tokens;
  }
  dataSamples(): bigint {
    return this.samples;
  }
  modelHash(): string {
    const h = this.hash;
    return typeof h === 'string' ? h : typeof h === 'function' ? h() : h.current();
  }
  refreshModelHash(): Promise<string> {
    const h = this.hash;
    return typeof h === 'object' ? h.refresh() : Promise.resolve(this.modelHash());
  }
  training(): TrainingFigures | undefined {
    return this.last;
  }
  layersHeld(): WorkSpan | undefined {
    return this.span;
  }
  takeRequestIds(): Uint8Array[] {
    return this.requests.splice(0);
  }
  capacity(): WorkCapacity | undefined {
    return this.cap;
  }
}

/** The cumulative counters at one moment. */
export interface WorkSnapshot {
  inference: bigint;
  tokens: bigint;
  samples: bigint;
}

export function workSnapshot(c: WorkCounters): WorkSnapshot {
  return { inference: c.inferenceTokens(), tokens: c.trainingTokens(), samples: c.dataSamples() };
}

/** The counters a proof claims to, and the model hash it names for them. */
export interface FreshWork {
  cur: WorkSnapshot;
  modelHash: string;
}

/** The longest a proof waits for a fresh model hash before it names the one held (which lags by ≤ 5 s). */
export const PROOF_HASH_WAIT_MS = 10_000;

/**
 * The counters now and a hash read after them, for a proof: training is claimed only when the hash moved, and a
 * hash that lags the weights (by up to 5 s on a node) would drop the training of the window's last seconds.
 *
 * Order: the counters first, then the hash. A training step is counted only once the worker applied it, and the
 * hash is read from that worker afterwards, so every token claimed is in the weights hashed. A step that lands
 * between the two is in the hash but not in the counters: its tokens go to the next proof, which claims them when
 * the hash moves again (a node that stopped training right then loses that one step's tokens). The other order would
 * claim tokens of a step whose effect the hash does not include. A read that fails, or takes over `waitMs` (a worker
 * busy with a long step), names the held hash instead (`modelHash()`), as before.
 */
export async function freshWork(c: WorkCounters, waitMs: number = PROOF_HASH_WAIT_MS): Promise<FreshWork> {
  const cur = workSnapshot(c);
  if (c.refreshModelHash === undefined) return { cur, modelHash: c.modelHash() };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    // not unref'd: a proof waiting on it is work in flight (ProofLoop.idle waits for it); cleared when the read ends
    timer = setTimeout(() => resolve(undefined), waitMs);
  });
  try {
    const h = await Promise.race([c.refreshModelHash().catch(() => undefined), late]);
    return { cur, modelHash: h ?? c.modelHash() };
  } finally {
    clearTimeout(timer);
  }
}

/** The figures a proof claims (the body fields of buildProof other than the HolderRecord). */
export interface ProofClaim {
  uptimeMs: number;
  inferenceTokens: bigint;
  trainingTokens: bigint;
  dataSamples: bigint;
  requestIds: Uint8Array[];
  modelHash?: Uint8Array;
  modelHashBefore?: Uint8Array;
  modelHashAfter?: Uint8Array;
  gradientCommitment?: Uint8Array;
  dataHash?: Uint8Array;
  lossMicro: bigint;
  gradNormMicro: bigint;
}

export interface ClaimInput {
  uptimeMs: number;
  base: WorkSnapshot;
  cur: WorkSnapshot;
  /** Hex model hash at the previous proof, and now. */
  modelHashBefore: string;
  modelHashNow: string;
  training: TrainingFigures | undefined;
  requestIds: Uint8Array[];
}

/**
 * The claim of a proof covering `uptimeMs`: the counters' growth since the previous proof cut to the ledger's
 * per-second caps (the excess is not carried over). Training is claimed only when provable: at least 10 s of
 * uptime, a positive loss and a model hash that changed (before = at the previous proof, after = now); the
 * gradient commitment is the trainer's, or else SHA-256 over the two model hashes and the tokens. `why` says why
 * training was not claimable, when it was not.
 */
export function proofClaim(i: ClaimInput): { claim: ProofClaim; why?: string } {
  const up = BigInt(i.uptimeMs);
  const capTo = (n: bigint, perSecond: number): bigint => minBig(n < 0n ? 0n : n, (BigInt(perSecond) * up) / 1000n);
  const inferenceTokens = capTo(i.cur.inference - i.base.inference, MAX_INFERENCE_TOKENS_PER_S);
  const dataSamples = capTo(i.cur.samples - i.base.samples, MAX_DATA_SAMPLES_PER_S);
  let trainingTokens = capTo(i.cur.tokens - i.base.tokens, MAX_TRAINING_TOKENS_PER_S);
  const before = hashBytes(i.modelHashBefore);
  const after = hashBytes(i.modelHashNow);
  const t = i.training;
  const lossMicro = t === undefined ? 0n : micro(t.loss);
  const gradNormMicro = t === undefined ? 0n : micro(t.gradNorm);
  let why: string | undefined;
  if (trainingTokens > 0n) {
    why =
      i.uptimeMs < MIN_TRAINING_UPTIME_MS ? 'uptime under 10 s' :
      before === undefined || after === undefined ? 'no model hash' :
      toHex(before) === toHex(after) ? 'model hash unchanged' :
      lossMicro <= 0n ? 'no positive loss' : undefined;
    if (why !== undefined) trainingTokens = 0n;
  }
  const training = trainingTokens > 0n;
  const claim: ProofClaim = {
    uptimeMs: i.uptimeMs,
    inferenceTokens,
    trainingTokens,
    dataSamples,
    requestIds: i.requestIds.filter((r) => r.byteLength === 32).slice(0, MAX_REQUEST_IDS_PER_PROOF),
    modelHash: after,
    lossMicro: training ? lossMicro : 0n,
    gradNormMicro: training ? gradNormMicro : 0n,
  };
  if (training) {
    claim.modelHashBefore = before;
    claim.modelHashAfter = after;
    claim.gradientCommitment = t?.gradientCommitment?.byteLength === 32 ? t.gradientCommitment : deriveCommitment(before!, after!, trainingTokens);
    if (t?.dataHash?.byteLength === 32) claim.dataHash = t.dataHash;
  }
  return why === undefined ? { claim } : { claim, why };
}

/** The proof window an emitter at `nowMs` may prove now, or undefined (not yet past its offset, or done). */
export function dueEpoch(nowMs: number, lastEpoch: number, offsetMs: number): number | undefined {
  const epoch = Math.floor(nowMs / PROOF_WINDOW_MS);
  if (epoch <= lastEpoch || nowMs - epoch * PROOF_WINDOW_MS < offsetMs) return undefined;
  return epoch;
}

/** Below this much uptime since the previous proof (or the start) no proof is made. */
export const MIN_PROOF_UPTIME_MS = 1000;

/**
 * The uptime a proof at `nowMs` claims (the time since the previous proof or the start, at most one window), or
 * undefined when no proof is due: no layers held, a span outside the model, or under MIN_PROOF_UPTIME_MS.
 */
export function proofUptime(nowMs: number, sinceMs: number, span: WorkSpan | undefined, modelLayers: number): number | undefined {
  if (span === undefined || !(Number.isInteger(span.start) && Number.isInteger(span.end) && 0 <= span.start && span.start < span.end && span.end <= modelLayers)) {
    return undefined;
  }
  const uptimeMs = Math.min(PROOF_WINDOW_MS, nowMs - sinceMs);
  return uptimeMs < MIN_PROOF_UPTIME_MS ? undefined : uptimeMs;
}

/**
 * What decides whether the HolderRecord a node embeds in its proofs must be signed again: its span, its addresses
 * (as a set) and its advertised throughput. Free memory changes all the time and does not count.
 */
export function holderRecordKey(span: WorkSpan, addrs: readonly string[], tokensPerSec: number): string {
  return JSON.stringify([span.start, span.end, [...addrs].sort(), tokensPerSec]);
}

/**
 * True when the record made under `prev.key` may be embedded again at `nowMs`: nothing in the key changed and half
 * its lifetime (`ttlMs`) is left, so peers verify its signature once per record, not once per proof.
 */
export function holderRecordReusable(prev: { key: string; timestampMs: number; expiresMs: number } | undefined, key: string, nowMs: number, ttlMs: number): boolean {
  return prev !== undefined && prev.key === key && nowMs >= prev.timestampMs && nowMs <= prev.expiresMs - ttlMs / 2;
}

/** A node's addresses as its HolderRecord wants them: without its /p2p suffix, de-duplicated, ≤ 256 chars, at most 16. */
export function holderRecordAddrs(addrs: readonly string[], peerId: string): string[] {
  const suffix = `/p2p/${peerId}`;
  return [...new Set(addrs.map((a) => (a.endsWith(suffix) ? a.slice(0, -suffix.length) : a)))].filter((a) => a.length <= 256).slice(0, 16);
}

/** A figure as a record's u32 field: 0 for NaN or negative, floored, at most 2^32 - 1. */
export function clampU32(n: number): number {
  if (!Number.isFinite(n) || n < 0) return 0;
  return Math.min(0xffff_ffff, Math.floor(n));
}

/** 0..15 s from the key: nodes' proofs spread over the first quarter of each window. */
export function defaultProofOffset(publicKey: Uint8Array): number {
  const h = sha256(publicKey);
  return ((h[0]! << 8) | h[1]!) % 15_000;
}

const U64_MAX = (1n << 64n) - 1n;

function hashBytes(hex: string): Uint8Array | undefined {
  return /^[0-9a-f]{64}$/.test(hex) ? fromHex(hex) : undefined;
}

/** x · 10^6 as a u64 (0 for NaN, negative or zero). */
export function micro(x: number): bigint {
  if (!Number.isFinite(x) || x <= 0) return 0n;
  const v = BigInt(Math.round(x * 1e6));
  return v > U64_MAX ? U64_MAX : v;
}

const COMMITMENT_DOMAIN = new TextEncoder().encode('neuroshard/proof-commitment/v1\0');

/** The default gradient commitment: the update moved the weights from `before` to `after` over `tokens`. */
export function deriveCommitment(before: Uint8Array, after: Uint8Array, tokens: bigint): Uint8Array {
  const t = new Uint8Array(8);
  new DataView(t.buffer).setBigUint64(0, tokens);
  return sha256(concatBytes(COMMITMENT_DOMAIN, before, after, t));
}
