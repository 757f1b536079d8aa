/**
 * The validator role of a node (issue 11 §2 "Inference"; docs/ECONOMICS.md "Inference: validators re-execute and
 * slash"), wired: the logic is protocols/hop-validator.ts (sampling, check, quorum), protocols/hop-transcript.ts
 * (kept inputs, re-execution) and ledger/fraud.ts (evidence); this file only connects them to the node.
 *
 * - **Transcripts** (`nodeTranscripts`): the node's hop server keeps its sessions' inputs under the quota of
 *   TRANSCRIPT_LIMIT_DEFAULTS (64 MiB, 8 MiB per session, 10 min) and seals them when it signs its commitments; the
 *   claim names the compute worker's model hash of the span and its engine (the worker's own description: backend
 *   and threads, so only a node running the same kernels judges exactly). Served over `hop-transcript/4.0.0` (the
 *   completion and its request carried, ingested when our ledger lacks them), `3.0.0` (the completion carried),
 *   `2.0.0` (by the commitments) and `1.0.0` (older validators), only to bonded peers the draw names and only for
 *   completions our ledger applied (protocols/transcript-access.ts).
 * - **Completions to validate**: every MarketComplete the node's ledger applies, whichever way it came (gossip, sync,
 *   our own submit), dated within the transcripts' retention; a completion whose verdict waits on a replay
 *   ('pending') is looked at again once the replay ran. HopValidator samples the hops (`--validation-rate`, drawn
 *   from the requester's receipt signature) and judges only hops that claim our span, weights and engine.
 * - **Co-checks** come from peers whose heartbeats name the same span (alive, not banned).
 * - **The slash** (kind 5, evidence type 3) is signed with the node key and submitted through the node's ledger
 *   service, which stores it and gossips it, so every node's ledger applies it.
 *
 * `--validation-rate 0` turns the role off: no sampling and no co-checks (transcripts are still kept and served:
 * being checkable is the hop's side of the bargain).
 */
import type { ComputeClient } from '../compute/index.js';
import { accountIdFromPublicKey, type NodeKey } from '../identity/index.js';
import { decodeEvent, EventKind, type LedgerEvent } from '../ledger/events.js';
import { buildSlashHopFraud, countsForFraudQuorum } from '../ledger/fraud.js';
import type { LlamaConfig } from '../model/index.js';
import { serveTranscripts, unserveTranscripts, TranscriptStore, TRANSCRIPT_LIMIT_DEFAULTS, type TranscriptLimits } from '../protocols/hop-transcript.js';
import { HopValidator, type Verdict } from '../protocols/hop-validator.js';
import { bondedReaders, CarriedIngestQuota, PAID_COMPLETION_DEFAULTS, PaidCompletions, type TranscriptAccess } from '../protocols/transcript-access.js';
import type { HopTranscripts } from '../protocols/inference.js';
import type { Clock } from '../util/clock.js';
import { errorMessage, NeuroShardError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { NodeLedgerService } from './ledger.js';
import type { NodeNetwork } from './network.js';
import { workerHopCompute, type Span } from './serving.js';

/** Deadline of one hop's check (transcript fetch and re-execution on our worker). */
const CHECK_TIMEOUT_MS = 120_000;
/** Deadline of the slash's publish (it is stored first; peers get it by sync when the publish is lost). */
const SUBMIT_MS = 10_000;
/** Completions whose verdict waits on a replay, looked at again every PENDING_POLL_MS for at most PENDING_MAX_MS. */
const MAX_PENDING = 256;
const PENDING_POLL_MS = 1000;
const PENDING_MAX_MS = 60_000;

/** The weights and engine a hop or validator claims: the worker's model hash of the span, and its engine. */
export function workerClaim(compute: ComputeClient): () => Promise<{ modelHash: string; engine: string }> {
  return async () => {
    const engine = compute.info?.description;
    if (engine === undefined) throw new NeuroShardError('COMPUTE_STARTING', 'the compute worker is (re)starting', { fault: 'local' });
    return { modelHash: (await compute.run({ type: 'modelHash' })).hash, engine };
  };
}

/**
 * The hop server's transcripts (a store under the default quota), and their serving over hop-transcript/1.0.0 to 4.0.0,
 * to the readers the ledger entitles (protocols/transcript-access.ts, session 28): a peer whose key holds the
 * reward bond locked, for the session of a completion this ledger applied. The completions naming us come from the
 * ledger service's ingest events (gossip, sync, our own submits; whether one is applied is asked at each fetch).
 */
export async function nodeTranscripts(
  compute: ComputeClient,
  network: NodeNetwork,
  ledger: Pick<NodeLedgerService, 'ledger' | 'service'>,
  key: NodeKey,
  opts: { limits?: TranscriptLimits; paidWaitMs?: number; maxRate?: number } = {},
): Promise<HopTranscripts & { stop(): Promise<void> }> {
  const limits = opts.limits ?? TRANSCRIPT_LIMIT_DEFAULTS;
  const store = new TranscriptStore(limits);
  const completions = new PaidCompletions(
    key.publicKey,
    (id) => ledger.ledger.eventStatus(id)?.status === 'applied',
    { ...PAID_COMPLETION_DEFAULTS, retentionMs: limits.retentionMs + 60_000 },
    Date.now,
    (requestId) => ledger.ledger.openRequester(requestId),
  );
  const off = ledger.service.on('ledger:ingested', ({ result, kind }) => {
    if (result.duplicate || (kind !== undefined && kind !== EventKind.MarketComplete) || (result.status !== 'applied' && result.status !== 'pending')) return;
    const bytes = ledger.ledger.eventBytes(Buffer.from(result.id, 'hex'));
    if (bytes !== undefined) completions.note(bytes);
  });
  const quota = new CarriedIngestQuota();
  const access: TranscriptAccess = {
    entitled: bondedReaders((id) => ledger.ledger.account(id).locked),
    networkId: ledger.ledger.networkId,
    key: key.publicKey,
    // a completion our ledger missed at gossip, carried by a sampled validator (session 29), after its request when
    // the validator carries that too (session 30): the ledger's own ingest, the pair one unit of the quota
    ingest: (completion, peer, request) => (quota.take(peer) ? ledger.service.ingestCarried(completion, request) : undefined),
    ...(opts.maxRate === undefined ? {} : { maxRate: opts.maxRate }),
    paid: (requestId, index) => completions.paid(requestId, index),
    // open, or stored and waiting for its deferred replay (a carried request before our tip: session 30), after which
    // it is open; a made-up id is neither, and is answered at once
    pending: (requestId) => ledger.ledger.requestPending(requestId) || ledger.ledger.eventStatus(requestId)?.status === 'pending',
    ...(opts.paidWaitMs === undefined ? {} : { waitMs: opts.paidWaitMs }),
  };
  await serveTranscripts(network.rpc, store, access);
  return {
    store,
    claim: workerClaim(compute),
    stop: async () => {
      off();
      await unserveTranscripts(network.rpc);
    },
  };
}

/** What GET /api/ledger/status shows of the validator (counts since the node started). */
// a type, not an interface: it fits the API's Record<string, number>
export type ValidatorView = {
  rate: number;
  /** Hops sampled, re-executed, that matched, found fraudulent (by us), skipped (another span, weights, engine, gone). */
  sampled: number;
  reexecuted: number;
  matched: number;
  frauds: number;
  skipped: number;
  /** Slashes we submitted that our ledger applied; co-checks we answered for other validators. */
  slashes: number;
  coChecks: number;
  /** Completions not looked at (the queue was full). */
  dropped: number;
};

export interface NodeValidatorInit {
  key: NodeKey;
  networkId: string;
  network: NodeNetwork;
  compute: ComputeClient;
  config: LlamaConfig;
  /** Our span (the pool's), read per check. */
  span(): Span | undefined;
  ledger: NodeLedgerService;
  rate: number;
  clock: Clock;
  log?: Logger;
  /** Transcripts older than this are gone (TRANSCRIPT_LIMIT_DEFAULTS.retentionMs): such completions are not checked. */
  retentionMs?: number;
  /** Every verdict, for tests and logs. */
  onVerdicts?: (completionId: string, verdicts: Verdict[]) => void;
}

export interface NodeValidator {
  readonly validator: HopValidator;
  view(): ValidatorView;
  /** Resolves once the completions queued so far are judged (tests). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the validator role (see the file comment); with rate 0 it does nothing but report. */
export async function startNodeValidator(i: NodeValidatorInit): Promise<NodeValidator> {
  const log = i.log ?? silentLogger;
  const ledger = i.ledger;
  const stopping = new AbortController();
  const retentionMs = i.retentionMs ?? TRANSCRIPT_LIMIT_DEFAULTS.retentionMs;
  const bondedPeer = bondedReaders((id) => ledger.ledger.account(id).locked);
  const validator = new HopValidator({
    networkId: i.networkId,
    key: i.key,
    rpc: i.network.rpc,
    compute: workerHopCompute(i.compute, i.config, i.span),
    claim: workerClaim(i.compute),
    holders: (span) =>
      i.network.liveness
        .snapshot()
        .filter((p) => p.state === 'alive' && p.heartbeat.span?.start === span.start && p.heartbeat.span.end === span.end && !i.network.scores.isBanned(p.peer))
        .map((p) => p.peer)
        // a holder without the bond can sign nothing that counts (and hops serve it no transcript): not asked
        .filter(bondedPeer),
    submitSlash: async ([completion, record]) => {
      const nonce = ledger.ledger.nextNonce(i.key.publicKey, EventKind.Slash);
      const ev = buildSlashHopFraud(i.key, { networkId: i.networkId, nonce, timestampMs: i.clock.now() }, completion, record);
      const r = await ledger.service.submit(ev.bytes, { signal: AbortSignal.timeout(SUBMIT_MS) });
      log.info('hop-fraud slash submitted', { status: r.status, reason: r.reason });
      if (r.status !== 'applied' && r.status !== 'pending') {
        throw new NeuroShardError('SLASH_REFUSED', `the ledger refused the slash: ${r.status}${r.reason === undefined ? '' : ` (${r.reason})`}`, { fault: 'local', meta: { reason: r.reason ?? r.status } });
      }
    },
    rate: i.rate,
    timeoutMs: CHECK_TIMEOUT_MS,
    // our statements count only with the bond, and hops serve their transcripts only to bonded keys (session 28)
    bonded: () => countsForFraudQuorum(ledger.ledger.account(accountIdFromPublicKey(i.key.publicKey)).locked),
    counts: (validator) => countsForFraudQuorum(ledger.ledger.account(accountIdFromPublicKey(validator)).locked),
    // co-checks only for completions our ledger applied: a stranger's unpaid, self-signed completion costs no work
    completionApplied: (id) => ledger.ledger.eventStatus(id)?.status === 'applied',
    // the request a sampled completion answers, carried to a hop whose ledger may lack it (session 30)
    requestEvent: (requestId) => ledger.ledger.eventBytes(requestId),
    log,
  });
  const inflight = new Set<Promise<unknown>>();
  const pending = new Map<string, number>();
  const offs: (() => void)[] = [];
  let timer: NodeJS.Timeout | undefined;

  const consider = (idHex: string): void => {
    const bytes = ledger.ledger.eventBytes(Buffer.from(idHex, 'hex'));
    // the kind is the event's second byte (u8 version ‖ u8 kind ‖ …): most events are not decoded twice
    if (bytes === undefined || bytes[1] !== EventKind.MarketComplete) return;
    let e: LedgerEvent;
    try {
      e = decodeEvent(bytes);
    } catch {
      return;
    }
    if (e.body.kind !== EventKind.MarketComplete || e.timestampMs < i.clock.now() - retentionMs) return;
    const p = validator
      .onCompletion(bytes, stopping.signal)
      .then((v) => i.onVerdicts?.(idHex, v))
      .catch((err: unknown) => log.warn('validating a completion failed', { error: errorMessage(err) }))
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };

  if (i.rate > 0) {
    await validator.serve(i.network.rpc);
    offs.push(
      ledger.service.on('ledger:ingested', ({ result, kind }) => {
        // only completions: during a sync every event is 'pending' until its replay, and the other kinds filled the
        // 256 places of `pending`, so the completions among them were never looked at (review2, session 28)
        if (result.duplicate || stopping.signal.aborted || (kind !== undefined && kind !== EventKind.MarketComplete)) return;
        if (result.status === 'applied') consider(result.id);
        else if (result.status === 'pending' && pending.size < MAX_PENDING) pending.set(result.id, i.clock.now());
      }),
    );
    timer = setInterval(() => {
      for (const [id, at] of pending) {
        const s = ledger.ledger.eventStatus(Buffer.from(id, 'hex'))?.status;
        if (s === 'applied') consider(id);
        if (s !== 'pending' || i.clock.now() - at > PENDING_MAX_MS) pending.delete(id);
      }
    }, PENDING_POLL_MS);
    timer.unref();
  }

  return {
    validator,
    view: () => {
      const s = validator.stats;
      return { rate: i.rate, sampled: s.sampled, reexecuted: s.reexecuted, matched: s.matched, frauds: s.frauds, skipped: s.skipped, slashes: s.slashes, coChecks: s.coChecks, dropped: s.dropped };
    },
    idle: async () => {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    stop: async () => {
      stopping.abort();
      clearInterval(timer);
      for (const off of offs.splice(0)) off();
      await Promise.allSettled([...inflight]);
      if (i.rate > 0) await validator.unserve(i.network.rpc);
    },
  };
}

