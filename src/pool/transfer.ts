/**
 * Weights from peers over the `checkpoint` server stream (docs/PROTOCOL.md "## Checkpoint stream").
 *
 * Serving: a holder answers a request for a span inside the one it holds with the span's payload (./weights.ts)
 * in chunks of at most 1 MiB from the requested offset; every chunk names the payload's total size, its span hash
 * (model/hash.ts) and its SHA-256. A request at an offset ≥ the total size is a "head": one empty chunk with those
 * three figures. A request whose model_hash is "config" gets the model's config.json instead.
 *
 * Downloading a span: unit by unit (one layer each, ./weights.ts). For each unit the downloader asks up to three
 * holders for the head and keeps the figures that at least two of them agree on (a single holder's figures when it is
 * the only one: the genesis node at the start). It then streams the units from the agreeing holders in parallel,
 * resuming a broken stream from the bytes it has at the next holder, checks each finished unit's SHA-256 and span
 * hash, and on a mismatch penalises the holder that sent it and fetches the unit again from another. Nothing is
 * handed to the compute worker until every unit has verified: never a half-loaded shard.
 */
import type { LlamaConfig } from '../model/config.js';
import { parseHfConfig } from '../model/config.js';
import type { Span } from '../model/layout.js';
import * as methods from '../protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../protocols/pb/node.js';
import type { RpcNode, ServerStreamHandler } from '../protocols/rpc/service.js';
import { newestSharedRound, windowEndingAt } from './rounds.js';
import { errorMessage, NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { HeldWeightsChangedError, type HeldRangeReader } from './held-range.js';
import { modelFilesReply, type ModelFileSet } from './model-files.js';
import { SpanMeter } from './span-meter.js';
import { bytesToParams, paramBytes, sha256, spanHashOfParams, spanPayloadBytes, spanUnits, subRange } from './weights.js';
import { spanText } from '../util/span-text.js';

/** Bytes of data in one chunk (under the method's 4 MiB frame limit; small enough to resume cheaply). */
export const CHECKPOINT_CHUNK_DATA_BYTES = 1 << 20;
/** The request model_hash that asks for config.json. */
export const CONFIG_REQUEST = 'config';
/** Largest config.json served or accepted. */
export const MAX_CONFIG_BYTES = 64 * 1024;
/** Holders asked for each unit's head. */
const HEAD_QUORUM_ASKED = 3;
/** Offset that asks for a head (any offset ≥ the total size does). */
export const HEAD_OFFSET = 2n ** 62n;

export class WeightsMismatchError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('CHECKPOINT_HASH_MISMATCH', message, { fault: 'peer', meta });
  }
}

export class WeightsUnavailableError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('CHECKPOINT_UNAVAILABLE', message, { fault: 'local', meta });
  }
}

/**
 * A holder that keeps no float32 copy of its weights (`--weights int8`) was asked for them: it still holds the layers
 * (a replica for routing) but cannot serve them. The caller's fault (it asked the wrong holder), never a penalty: the
 * downloader skips such holders and asks others in their place.
 */
export class WeightsNotServedError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('CHECKPOINT_NOT_SERVED', message, { fault: 'caller', meta });
  }
}

/** True for a holder's typed "cannot serve weights" answer, raised here or received over RPC. */
export function isNotServed(e: unknown): boolean {
  return e instanceof NeuroShardError && e.code === 'CHECKPOINT_NOT_SERVED';
}

/** What a holder serves from. */
export interface WeightsSource {
  config(): LlamaConfig | undefined;
  /**
   * Why this holder serves no weights (an int8 node keeps no float32 copy), or undefined when it does. Config and
   * model files are still served.
   */
  notServed?(): string | undefined;
  /** The span held now, undefined when none. */
  held(): Span | undefined;
  /**
   * The held weights by range (./held-range.ts: read in the compute worker, a chunk at a time, each checked to be of
   * the version the stream started at). Used when present; else `params()`.
   */
  heldRange?: HeldRangeReader;
  /** The held span's flat parameters (a snapshot the source may cache); unused when `heldRange` is given. */
  params?(): Promise<Float32Array>;
  /** The network's config and tokenizer files, served to nodes without them (./model-files.ts); undefined: none. */
  modelFiles?(): ModelFileSet | undefined;
  /**
   * A training holder's weights after its last closed outer rounds (training/sync.ts keeps a few), oldest first.
   * While it has any, a head names the newest round's figures, and a request naming a round is served that round's
   * weights: holders of a layer agree on them bit for bit after each round, while their moving weights change with
   * every inner step (a joiner could not find two holders agreeing on those).
   */
  rounds?(): readonly RoundWeights[];
  /**
   * `peer` asked for the weights after `round` (a head or a chunk naming it: it is downloading them): keep that round
   * past the kept window for a while (training/keep.ts: pins with quotas), so that a download slower than the rounds
   * still finds it. Called before the round is looked up; undefined: nothing is pinned.
   */
  pin?(peer: string, round: number): void;
}

/** The weights of a span after a closed outer round (θ, not the optimizer state). */
export interface RoundWeights {
  round: number;
  /** The span these parameters cover (the outer sync's; the held span or one it held before a move). */
  span: Span;
  /** [ParamLayout(span).size] flat parameters. Never written after it is handed out. */
  params: Float32Array;
}

/** A holder no longer keeps the round a request names (it closed newer ones); not the holder's fault. */
export class RoundGoneError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('CHECKPOINT_ROUND_GONE', message, { fault: 'caller', meta });
  }
}

interface Prepared {
  total: number;
  hash: string;
  sha: Uint8Array<ArrayBuffer>;
  round: number | undefined;
  /** Served from the held weights by range (they may have moved since a client took their figures). */
  byRange?: boolean;
  /** Bytes [offset, offset+length) of the payload. */
  read(offset: number, length: number): Uint8Array<ArrayBuffer> | Promise<Uint8Array<ArrayBuffer>>;
}

/** What is cached of a span served from one source array: where it lies in it and its hashes, no copy of the bytes. */
interface PreparedRef {
  offset: number;
  size: number;
  hash: string;
  sha: Uint8Array<ArrayBuffer>;
}

/**
 * Multi-layer spans cached per source array (heads are asked repeatedly; a source has few distinct spans asked of
 * it). One-layer units, what downloaders ask, are kept apart and never pushed out by these (≤ the source's layers).
 */
export const CHECKPOINT_SPANS_PER_SOURCE = 16;

interface SourceCache {
  units: Map<string, PreparedRef>;
  spans: Map<string, PreparedRef>;
}

export interface CheckpointHandlerOptions {
  /** The rate on uncached multi-layer spans (./span-meter.ts); default a fresh SpanMeter with SPAN_METER_LIMITS. */
  meter?: SpanMeter;
}

/** The `checkpoint` stream handler over a WeightsSource. */
export function checkpointHandler(src: WeightsSource, chunkBytes = CHECKPOINT_CHUNK_DATA_BYTES, opts: CheckpointHandlerOptions = {}): ServerStreamHandler<CheckpointRequest, CheckpointChunk> & { clearCache(): void; meter: SpanMeter } {
  const meter = opts.meter ?? new SpanMeter();
  // span hashes per source array and "start:end" (heads are asked repeatedly). Weakly keyed by the source, and no
  // copy of the bytes: chunks are views of the source. Before (issue 12 §2, chaos memory growth), 64 entries each
  // held a copy of its span's bytes, keyed by an id per source array; the pool hands out a fresh snapshot of its
  // weights every minute, so every minute's requests added copies of whole spans that were never asked for again
  // (up to 64 × a span: 1.2 GiB for the chaos model's 18 MiB halves) and survivors' memory crept up.
  let cache = new WeakMap<Float32Array, SourceCache>();
  // `peer` pays for figures of several layers that are not cached (./span-meter.ts); one-layer units are free
  const prepare = async (want: Span, round: number | undefined, peer: string, signal: AbortSignal | undefined): Promise<Prepared> => {
    const config = src.config();
    const held = src.held();
    if (config === undefined || held === undefined) throw new NeuroShardError('NOT_HOLDING', 'this node holds no layers', { fault: 'caller' });
    const refusal = src.notServed?.();
    if (refusal !== undefined) throw new WeightsNotServedError(refusal);
    if (!(want.start >= held.start && want.end <= held.end && want.start < want.end)) {
      throw new NeuroShardError('CHECKPOINT_SPAN_NOT_HELD', `layers ${spanText(want)} are not inside the held ${spanText(held)}`, { fault: 'caller' });
    }
    const r = roundSource(src.rounds?.() ?? [], want, round);
    if (round !== undefined && r === undefined) throw new RoundGoneError(`the weights of layers ${spanText(want)} after round ${round} are not kept here`, { round });
    if (r === undefined && src.heldRange !== undefined) {
      // the held weights: figures and bytes read in the compute worker, all of one version (./held-range.ts)
      const reader = src.heldRange;
      // the worker caches what it computed, but this thread cannot tell whether a span is among it: every
      // multi-layer span is metered here (honest downloaders never ask one)
      if (want.end - want.start > 1) meter.take(peer);
      const d = await reader.digest(want, signal);
      return { total: d.total, hash: d.hash, sha: d.sha, round: undefined, byRange: true, read: (o, n) => reader.read(want, o, n, d.version, signal) };
    }
    if (r === undefined && src.params === undefined) throw new WeightsUnavailableError('this node has no weights to serve');
    const from = r === undefined ? { span: held, params: await src.params!() } : r;
    let kept = cache.get(from.params);
    if (kept === undefined) cache.set(from.params, (kept = { units: new Map(), spans: new Map() }));
    const unit = want.end - want.start === 1;
    const spans = unit ? kept.units : kept.spans;
    const key = `${from.span.start}:${from.span.end}/${want.start}:${want.end}`;
    let ref = spans.get(key);
    if (ref === undefined) {
      if (!unit) meter.take(peer);
      const { offset, size } = subRange(config, from.span, want);
      const p = from.params.subarray(offset, offset + size);
      ref = { offset, size, hash: spanHashOfParams(config, want, p), sha: sha256(paramBytes(p)) };
      if (!unit && spans.size >= CHECKPOINT_SPANS_PER_SOURCE) spans.delete(spans.keys().next().value!);
      spans.set(key, ref);
    }
    const bytes = paramBytes(from.params.subarray(ref.offset, ref.offset + ref.size));
    return { total: bytes.byteLength, hash: ref.hash, sha: ref.sha, round: r?.round, read: (o, n) => bytes.subarray(o, o + n) };
  };
  // `ctx.signal` fires when the caller resets the stream (a download given up or failed): the worker jobs the handler
  // waits on reject at once (queued ones never run), so the handler ends and frees its checkpoint slot then. Before,
  // it waited for its queued range read to come out of a busy worker, and a joiner retrying at once was refused by
  // the holder (RPC_BUSY: 2 slots per peer) until then
  const handler = async function* (req: CheckpointRequest, ctx?: { peer: string; signal?: AbortSignal }): AsyncGenerator<CheckpointChunk> {
    const files = modelFilesReply(src.modelFiles?.(), req);
    if (files !== undefined) {
      yield* files;
      return;
    }
    if (req.modelHash === CONFIG_REQUEST) {
      const config = src.config();
      if (config === undefined) throw new NeuroShardError('NOT_HOLDING', 'this node holds no model', { fault: 'caller' });
      const data = new TextEncoder().encode(JSON.stringify(config));
      yield { name: 'config.json', offset: 0n, totalSize: BigInt(data.byteLength), data, modelHash: '', sha256: sha256(data) };
      return;
    }
    if (req.span === undefined) throw new NeuroShardError('RPC_BAD_REQUEST', 'checkpoint: span missing', { fault: 'caller' });
    if (req.round !== undefined && ctx !== undefined) src.pin?.(ctx.peer, Number(req.round));
    const p = await prepare(req.span, req.round === undefined ? undefined : Number(req.round), ctx?.peer ?? '', ctx?.signal);
    const total = BigInt(p.total);
    const name = `${req.span.start}:${req.span.end}`;
    const round = p.round === undefined ? {} : { round: BigInt(p.round) };
    if (req.offset >= total) {
      yield { name, offset: total, totalSize: total, data: new Uint8Array(0), modelHash: p.hash, sha256: p.sha, ...round };
      return;
    }
    // a client streaming figures it agreed on that the held weights no longer have: they moved since its head (not
    // the holder's fault; streaming other figures would cost it a penalty for nothing)
    if (p.byRange === true && req.modelHash.length === 64 && req.modelHash !== p.hash) {
      throw new HeldWeightsChangedError(`the held weights of layers ${spanText(req.span)} changed since hash ${req.modelHash.slice(0, 12)}…`);
    }
    for (let o = Number(req.offset); o < p.total; o += chunkBytes) {
      const data = await p.read(o, Math.min(p.total, o + chunkBytes) - o);
      yield { name, offset: BigInt(o), totalSize: total, data, modelHash: p.hash, sha256: p.sha, ...round };
    }
  };
  return Object.assign(handler, {
    meter,
    clearCache: () => {
      cache = new WeakMap();
    },
  });
}

/**
 * The round weights a request is served from (pure): the named round's, or without a name the newest round's,
 * among the kept rounds whose span covers `want`; undefined when none (then the held weights serve).
 */
export function roundSource(rounds: readonly RoundWeights[], want: Span, round: number | undefined): RoundWeights | undefined {
  let best: RoundWeights | undefined;
  for (const r of rounds) {
    if (!(want.start >= r.span.start && want.end <= r.span.end)) continue;
    if (round !== undefined ? r.round === round : best === undefined || r.round > best.round) best = r;
  }
  return best;
}

/** Points taken from a holder that sent weights not matching the agreed hash (p2p/peer-score.ts PENALTY.forged). */
export const BAD_WEIGHTS_PENALTY = 50;

/** The peer score table, as far as the downloader uses it. */
export interface PenaltySink {
  penalise(peer: string, points: number, reason: string): unknown;
}

export interface DownloadDeps {
  rpc: Pick<RpcNode, 'serverStream'>;
  scores?: PenaltySink;
  log?: Logger;
}

/** Asks holders for the model config (the first that answers with a valid one; they are checked by the hashes later). */
export async function fetchConfig(deps: DownloadDeps, holders: readonly string[], signal?: AbortSignal): Promise<LlamaConfig> {
  for (const peer of holders) {
    try {
      for await (const c of deps.rpc.serverStream(peer, methods.checkpoint, { modelHash: CONFIG_REQUEST, offset: 0n }, { signal, timeoutMs: 10_000 })) {
        if (c.data.byteLength > MAX_CONFIG_BYTES || BigInt(c.data.byteLength) !== c.totalSize) throw new PeerMisbehaviourError('CHECKPOINT_MALFORMED', 'config chunk of a bad size');
        return parseHfConfig(JSON.parse(new TextDecoder().decode(c.data)) as unknown);
      }
    } catch (e) {
      deps.log?.debug('config fetch failed', { peer, error: errorMessage(e) });
    }
  }
  throw new WeightsUnavailableError('no holder answered with the model config', { holders: holders.length });
}

/** A unit's figures as one holder states them. */
export interface Head {
  total: bigint;
  hash: string;
  sha: string;
  /** The closed outer round they are the weights after; undefined: the holder's weights outside the rounds. */
  round?: number;
}

export interface HeadAnswer {
  peer: string;
  h: Head;
}

function headKey(h: Head): string {
  return `${h.round ?? '-'}/${h.total}/${h.hash}/${h.sha}`;
}

function roundOf(c: CheckpointChunk): number | undefined {
  return c.round === undefined ? undefined : Number(c.round);
}

/**
 * The figures a unit is taken with (pure): those that at least two holders state (the only holder's when one
 * answered, and `heard` counts no other: the genesis node at the start), and strictly more holders than any other
 * figures; undefined when no
 * such figures exist (the download fails and the pool tries again at its next round). `outvoted`: holders that
 * stated other figures.
 */
export function voteHeads(answers: readonly HeadAnswer[], heard = answers.length): { head: Head; peers: string[]; outvoted: string[] } | undefined {
  const votes = new Map<string, { h: Head; peers: string[] }>();
  for (const a of answers) {
    const k = headKey(a.h);
    const v = votes.get(k) ?? { h: a.h, peers: [] };
    v.peers.push(a.peer);
    votes.set(k, v);
  }
  const ranked = [...votes.values()].sort((a, b) => b.peers.length - a.peers.length || (a.h.hash < b.h.hash ? -1 : 1));
  const top = ranked[0];
  const need = Math.max(answers.length, heard) >= 2 ? 2 : 1;
  if (top === undefined || top.peers.length < need || (ranked[1] !== undefined && ranked[1].peers.length === top.peers.length)) return undefined;
  return { head: top.h, peers: top.peers, outvoted: ranked.slice(1).flatMap((v) => v.peers) };
}

/**
 * The one closed round a span is downloaded at (pure), from the newest rounds the holders' heads named (undefined: a
 * holder outside the rounds): the newest round that every holder that named one keeps (training/keep.ts
 * newestSharedRound over the kept window ending at each named round); when they keep none in common (one is more
 * than the window ahead), the oldest named round. Holders of a layer close a round together but not in the same
 * instant, and a download that took each layer at its own round would mix states; one a round ahead still serves
 * the round before, while one a round behind cannot serve the next yet. The download then pins that round on every
 * holder it asks (a request naming a round), so it outlives the window while the download lasts. Undefined when no
 * head named a round.
 */
export function roundTarget(rounds: readonly (number | undefined)[]): number | undefined {
  const named = rounds.filter((r) => r !== undefined);
  if (named.length === 0) return undefined;
  return newestSharedRound(named.map((r) => windowEndingAt(r))) ?? Math.min(...named);
}

async function askHead(deps: DownloadDeps, peer: string, unit: Span, round: number | undefined, signal: AbortSignal | undefined): Promise<Head> {
  for await (const c of deps.rpc.serverStream(peer, methods.checkpoint, { modelHash: '', span: unit, offset: HEAD_OFFSET, ...(round === undefined ? {} : { round: BigInt(round) }) }, { signal, timeoutMs: 15_000 })) {
    if (c.sha256.byteLength !== 32 || c.modelHash.length !== 64) throw new PeerMisbehaviourError('CHECKPOINT_MALFORMED', 'checkpoint head without hashes');
    const r = roundOf(c);
    return { total: c.totalSize, hash: c.modelHash, sha: Buffer.from(c.sha256).toString('hex'), ...(r === undefined ? {} : { round: r }) };
  }
  throw new PeerMisbehaviourError('CHECKPOINT_MALFORMED', 'checkpoint head: empty stream');
}

export interface DownloadSpanOptions {
  config: LlamaConfig;
  span: Span;
  /** Live holders of each layer of the span (layer → peer ids), best first. */
  holdersOf: (layer: number) => readonly string[];
  /** Streams in flight at once. Default 4. */
  parallel?: number;
  signal?: AbortSignal;
}

export interface DownloadedSpan {
  params: Float32Array;
  /** The span hash of the downloaded weights. */
  hash: string;
  /** Holders that served at least one unit. */
  sources: string[];
  /** Units fetched again after a mismatch or a broken stream. */
  retries: number;
  /** The closed outer round whose weights these are, when the holders train (undefined: weights as held). */
  round?: number;
}

/**
 * At most `limit` streams open to one peer at a time. A holder accepts only `checkpoint.maxInboundStreams` streams
 * of this protocol per connection and resets the rest (libp2p), so a joiner taking more units than that from a lone
 * holder (the genesis node) lost every unit past the limit and never held a span.
 */
class PeerSlots {
  private readonly open = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();
  constructor(private readonly limit: number) {}

  async with<T>(peer: string, f: () => Promise<T>): Promise<T> {
    while ((this.open.get(peer) ?? 0) >= this.limit) {
      await new Promise<void>((resolve) => {
        const q = this.waiting.get(peer) ?? [];
        q.push(resolve);
        this.waiting.set(peer, q);
      });
    }
    this.open.set(peer, (this.open.get(peer) ?? 0) + 1);
    try {
      return await f();
    } finally {
      const n = (this.open.get(peer) ?? 1) - 1;
      if (n === 0) this.open.delete(peer);
      else this.open.set(peer, n);
      const q = this.waiting.get(peer);
      const wake = q?.shift();
      if (q !== undefined && q.length === 0) this.waiting.delete(peer);
      wake?.();
    }
  }
}

/**
 * Downloads and verifies the weights of `span`. Throws WeightsUnavailableError when a unit has no holder, when
 * its holders disagree with no two agreeing, or when every holder of a unit failed; nothing partial is returned.
 */
export async function downloadSpan(deps: DownloadDeps, o: DownloadSpanOptions): Promise<DownloadedSpan> {
  const log = deps.log ?? silentLogger;
  const units = spanUnits(o.span);
  const slots = new PeerSlots(methods.checkpoint.maxInboundStreams);
  const bad = new Set<string>();
  // holders that answered "cannot serve" (int8 holders): skipped, never penalised, and not counted among those asked
  const noServe = new Set<string>();
  const sources = new Set<string>();
  let retries = 0;
  const penalise = (peer: string, why: string): void => {
    bad.add(peer);
    deps.scores?.penalise(peer, BAD_WEIGHTS_PENALTY, why);
    log.warn('penalised a weights holder', { peer, why });
  };

  // 1. agreed figures per unit: first every unit's heads as the holders choose (a training holder names the
  // newest round it closed); when they name rounds, one round for the whole span (roundTarget), and holders that
  // named another are asked for that round's figures, so that every unit comes from the same closed round
  const askHeads = async (u: Span, peers: readonly string[], round: number | undefined): Promise<HeadAnswer[]> => {
    const expectBytes = BigInt(spanPayloadBytes(o.config, u));
    const heads = await Promise.all(
      peers.map(async (peer) => {
        try {
          const h = await slots.with(peer, () => askHead(deps, peer, u, round, o.signal));
          if (h.total !== expectBytes) {
            penalise(peer, `layer ${u.start}: ${h.total} bytes announced, ${expectBytes} expected`);
            return undefined;
          }
          // a holder asked for a round must answer with that round's figures
          if (round !== undefined && h.round !== round) throw new PeerMisbehaviourError('CHECKPOINT_MALFORMED', `layer ${u.start}: asked for round ${round}, answered ${h.round}`);
          return { peer, h };
        } catch (e) {
          if (isNotServed(e)) noServe.add(peer);
          log.debug('checkpoint head failed', { peer, layer: u.start, round, error: errorMessage(e) });
          return undefined;
        }
      }),
    );
    return heads.filter((x) => x !== undefined);
  };
  // HEAD_QUORUM_ASKED holders that can serve: one that answers "cannot serve" frees its place for the next holder.
  // Before, the first three holders were asked whatever they were; int8 holders (often the fastest, so first) then
  // took the places of f32 ones, and a unit had one answer where two agreeing ones were to be had, or none at all
  const askQuorum = async (u: Span): Promise<{ holders: string[]; answers: HeadAnswer[] }> => {
    const all = o.holdersOf(u.start).filter((p) => !bad.has(p));
    const holders: string[] = [];
    const answers: HeadAnswer[] = [];
    let at = 0;
    for (;;) {
      const want = HEAD_QUORUM_ASKED - holders.filter((p) => !noServe.has(p)).length;
      const batch: string[] = [];
      while (batch.length < want && at < all.length) {
        const p = all[at++]!;
        if (!noServe.has(p)) batch.push(p);
      }
      if (batch.length === 0) break;
      holders.push(...batch);
      answers.push(...(await askHeads(u, batch, undefined)));
    }
    return { holders: holders.filter((p) => !noServe.has(p)), answers };
  };
  const first = await Promise.all(
    units.map(async (u) => {
      if (o.holdersOf(u.start).filter((p) => !bad.has(p)).length === 0) throw new WeightsUnavailableError(`no live holder of layer ${u.start}`, { layer: u.start });
      const { holders, answers } = await askQuorum(u);
      if (holders.length === 0) throw new WeightsUnavailableError(`no holder of layer ${u.start} serves float32 weights (int8 holders keep none)`, { layer: u.start });
      return { unit: u, holders, answers };
    }),
  );
  const round = roundTarget(first.flatMap((f) => f.answers.map((a) => a.h.round)));
  const agreed = await Promise.all(
    first.map(async ({ unit: u, holders, answers }) => {
      let answered = answers.filter((a) => !bad.has(a.peer));
      // units that holders serve from rounds are taken at the span's round; the others (nobody trains them) as held.
      // Every holder is asked for the round by name, which pins it there until the streams are done (keep.ts)
      if (round !== undefined && answered.some((a) => a.h.round !== undefined)) {
        const ask = holders.filter((p) => !bad.has(p));
        answered = ask.length === 0 ? [] : await askHeads(u, ask, round);
      }
      // a holder that answered at first but lacks the span's round still counts: one answer then is not enough
      const v = voteHeads(answered, answers.length);
      if (v === undefined) {
        throw new WeightsUnavailableError(`holders of layer ${u.start} do not agree on its hash${round === undefined ? '' : ` after round ${round}`}`, { layer: u.start, round, answers: answered.length, distinct: new Set(answered.map((a) => headKey(a.h))).size });
      }
      // holders whose figures disagree with the agreed ones serve nothing to us
      for (const p of v.outvoted) bad.add(p);
      const others = o.holdersOf(u.start).filter((p) => !v.peers.includes(p) && !bad.has(p) && !noServe.has(p));
      return { unit: u, head: v.head, peers: [...v.peers, ...others] };
    }),
  );

  // 2. stream the units, several at once, each from a holder that agreed. The first unit that fails stops the others
  // and the call returns only once every stream has ended: units left streaming after a failed download took the
  // holder's inbound stream slots, and the retry's heads were reset
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(o.signal!.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const signal = stop.signal;
  const out: Uint8Array[] = new Array<Uint8Array>(units.length);
  let next = 0;
  let turn = 0;
  const fetchUnit = async (i: number): Promise<void> => {
    const a = agreed[i]!;
    const total = Number(a.head.total);
    const buf = new Uint8Array(total);
    let have = 0;
    let lastPeer = '';
    // holders whose bytes are in `buf` now (a resumed unit holds bytes of several)
    const wrote = new Set<string>();
    const candidates = a.peers.filter((p) => !bad.has(p) && !noServe.has(p));
    // spread units over holders: start at a different holder for each unit
    const first = turn++;
    const order = candidates.map((_, k) => candidates[(k + first) % candidates.length]!);
    for (let k = 0; k < order.length; k++) {
      const peer = order[k]!;
      if (bad.has(peer) || noServe.has(peer)) continue;
      if (signal.aborted) throw signal.reason;
      lastPeer = peer;
      try {
        await slots.with(peer, async () => {
          for await (const c of deps.rpc.serverStream(peer, methods.checkpoint, { modelHash: a.head.hash, span: a.unit, offset: BigInt(have), ...(a.head.round === undefined ? {} : { round: BigInt(a.head.round) }) }, { signal, timeoutMs: 30_000 })) {
            if (c.totalSize !== a.head.total || c.modelHash !== a.head.hash || Buffer.from(c.sha256).toString('hex') !== a.head.sha || roundOf(c) !== a.head.round) {
              throw new WeightsMismatchError(`layer ${a.unit.start}: the stream names other figures than the agreed ones`, { peer });
            }
            if (c.offset !== BigInt(have)) throw new PeerMisbehaviourError('CHECKPOINT_MALFORMED', `layer ${a.unit.start}: chunk at ${c.offset}, expected ${have}`);
            if (have + c.data.byteLength > total) throw new PeerMisbehaviourError('CHECKPOINT_MALFORMED', `layer ${a.unit.start}: chunk past the total size`);
            buf.set(c.data, have);
            have += c.data.byteLength;
            if (c.data.byteLength > 0) wrote.add(peer);
            if (have === total) break;
          }
        });
      } catch (e) {
        if (signal.aborted) throw e;
        // bad bytes or a broken protocol cost the holder score; an unreachable or busy holder is only skipped
        if (e instanceof WeightsMismatchError || e instanceof PeerMisbehaviourError) penalise(peer, errorMessage(e));
        if (isNotServed(e)) noServe.add(peer);
        log.debug('checkpoint stream broke; resuming at another holder', { peer, layer: a.unit.start, have, error: errorMessage(e) });
        retries++;
        continue;
      }
      if (have < total) {
        retries++;
        continue; // the holder ended early: resume from `have` at the next one
      }
      const sha = Buffer.from(sha256(buf)).toString('hex');
      const params = bytesToParams(buf);
      if (sha !== a.head.sha || spanHashOfParams(o.config, a.unit, params) !== a.head.hash) {
        const sole = wrote.size === 1;
        have = 0;
        wrote.clear();
        retries++;
        if (sole) {
          // every byte came from this holder: it sent weights other than the figures it agreed to
          penalise(peer, `layer ${a.unit.start}: weights do not match the agreed hash`);
          continue;
        }
        // Bytes of several holders (a resumed stream): which one lied is unknown, so nobody is penalised and the unit
        // is taken again from this holder alone (penalised if its own bytes do not match). Before, the holder that
        // finished the unit was penalised: a holder that sent garbage and ended its stream early had the next,
        // honest holder penalised in its place (BAD_WEIGHTS_PENALTY each time) and the unit fail when it was the
        // last (test/attacks/pool-transfer.test.ts). At most one retake per holder: a retake starts from nothing
        k--;
        continue;
      }
      sources.add(peer);
      out[i] = buf;
      return;
    }
    throw new WeightsUnavailableError(`every holder of layer ${a.unit.start} failed`, { layer: a.unit.start, last: lastPeer });
  };
  let failure: { e: unknown } | undefined;
  const worker = async (): Promise<void> => {
    try {
      while (next < units.length && !signal.aborted) await fetchUnit(next++);
    } catch (e) {
      failure ??= { e };
      stop.abort(e);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(o.parallel ?? 4, units.length) }, worker));
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
  if (failure !== undefined) throw failure.e;
  if (o.signal?.aborted === true) throw o.signal.reason;

  const size = out.reduce((s, b) => s + b.byteLength, 0);
  const all = new Uint8Array(size);
  let off = 0;
  for (const b of out) {
    all.set(b, off);
    off += b.byteLength;
  }
  const params = bytesToParams(all);
  return { params, hash: spanHashOfParams(o.config, o.span, params), sources: [...sources], retries, ...(round === undefined ? {} : { round }) };
}
