/**
 * The validator role (issue 11 §2 "Inference"; docs/ECONOMICS.md "Inference: validators re-execute and slash"): a
 * node holding a span re-executes a random sample of other hops' sessions on that span from their committed inputs,
 * and has a hop whose outputs do not match slashed.
 *
 * 1. **Sampling.** For every market completion it sees, a validator samples hop i when
 *    SHA-256("neuroshard/validate/v1" ‖ receipt signature ‖ u8 i ‖ validator key) read as a fraction is below its
 *    rate (`--validation-rate`, default VALIDATION_RATE_DEFAULT). The receipt's signature is the requester's and
 *    exists only after every hop signed, so no hop knows in advance whether, or by whom, it will be checked.
 * 2. **Check** (`check`): fetch the hop's transcript (hop-transcript.ts; the one sealed with the commitments in the
 *    completion, `hop-transcript/2.0.0`), verify its signed claim and that its inputs
 *    commit to the hop's signed inCommit (exact: the v2 chain binds the full tensors), skip unless the claim names
 *    this node's span, weights (model hash) and engine, re-execute, and compare output commitments. Equal: the hop is
 *    honest. Different on the same engine and weights: fraud, and the validator signs a statement (fraud.ts).
 * 3. **Quorum.** One statement slashes nobody. The validator asks other holders of the span to re-execute the same
 *    hop (`hop-fraud-check/1.0.0`); each that also disagrees answers its own signed statement. With HOP_FRAUD_QUORUM
 *    statements it submits the slash (evidence type hop-fraud). A validator that lies cannot slash alone, and an
 *    honest holder re-executes before it signs.
 *
 * Tolerance: the comparison is exact, so a validator judges only hops that claim its own engine (deterministic
 * kernels: bit-equal outputs on the same engine, weights and chunks). Across engines the top-k opening and
 * `verifyStep` with CROSS_ENGINE_TOLERANCE (ledger/commitment.ts) are the rule; that path is not wired yet (the hop
 * is skipped: docs/LIMITS.md).
 */
import { peerIdFromPublicKey, verifyDomain, type NodeKey } from '../identity/index.js';
import { DecodeError, Reader, Writer } from '../ledger/codec.js';
import { decodeEvent, EVENT_DOMAIN, EventKind, HOP_COMMITMENT_DOMAIN, hopCommitmentPayload, MAX_EVENT_BYTES, type LedgerEvent, type MarketCompleteBody } from '../ledger/events.js';
import { encodeFraudRecord, FRAUD_STATEMENT_DOMAIN, HOP_FRAUD_QUORUM, signFraudStatement, statementPayload, TRANSCRIPT_DOMAIN, transcriptPayload, type FraudStatement } from '../ledger/fraud.js';
import { bytesEqual } from '../util/bytes.js';
import { errorMessage, isNeuroShardError, NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { fetchTranscript, inputCommitment, reexecute, type HopTranscript } from './hop-transcript.js';
import type { HopCompute, Span } from './inference.js';
import type { MessageCodec, UnaryMethod } from './rpc/method.js';
import type { CallContext, RpcNode } from './rpc/service.js';
import { isSampled } from './sampling.js';

export { isSampled, MAX_VALIDATION_RATE, VALIDATE_DOMAIN, VALIDATION_RATE_DEFAULT } from './sampling.js';

export type Verdict =
  | { status: 'match'; index: number }
  | { status: 'fraud'; index: number; statement: FraudStatement; transcript: HopTranscript }
  | { status: 'skip'; index: number; reason: string };

/** A check shared by everyone who asks about one (completion, hop) while it runs or its verdict is kept. */
interface SharedCheck {
  at: number;
  v: Promise<Verdict>;
  /** Aborts the check: only once every caller waiting on it has gone. */
  ac: AbortController;
  waiting: number;
  settled: boolean;
}

/** Waits for a shared check as one caller: its abort answers it a skip and ends the check only if it was the last. */
function joinCheck(e: SharedCheck, index: number, signal: AbortSignal): Promise<Verdict> {
  if (e.settled) return e.v;
  if (signal.aborted) return Promise.resolve({ status: 'skip', index, reason: 'ABORTED' });
  e.waiting++;
  return new Promise<Verdict>((resolve) => {
    let left = false;
    const leave = (): void => {
      left = true;
      signal.removeEventListener('abort', onAbort);
      e.waiting--;
    };
    const onAbort = (): void => {
      if (left) return;
      leave();
      if (e.waiting === 0 && !e.settled) e.ac.abort(signal.reason);
      resolve({ status: 'skip', index, reason: 'ABORTED' });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    void e.v.then((r) => {
      if (left) return;
      leave();
      resolve(r);
    });
  });
}

export interface HopValidatorDeps {
  networkId: string;
  key: NodeKey;
  rpc: RpcNode;
  /** This node's span math (the same worker as its hop server): span(), and re-execution sessions. */
  compute: HopCompute;
  /** This node's weights for its span and its engine (the same strings its hop server claims). */
  claim(): Promise<{ modelHash: string; engine: string }>;
  /** Peers holding `span` (heartbeats), asked to co-check a fraud. */
  holders(span: Span): string[];
  /** Signs and submits the slash event (evidence: [completion event, fraud record]); resolves when the ledger took it. */
  submitSlash(evidence: [Uint8Array, Uint8Array]): Promise<void>;
  rate: number;
  /** Deadline of one hop's check (fetch and re-execution). */
  timeoutMs?: number;
  /**
   * Whether this node's ledger applied the completion with this event id. Given, a co-check is served only for an
   * applied completion (waiting up to `appliedWaitMs` for it to arrive): one a stranger signed as its own driver and
   * never paid for is refused before any fetch or re-execution.
   */
  completionApplied?(id: Uint8Array): boolean;
  /**
   * Whether this node's key holds the stake that makes its fraud statement count (ledger/fraud.ts
   * `countsForFraudQuorum`). Given and false, nothing is fetched or re-executed (`NOT_BONDED`): hops serve transcripts
   * only to bonded keys (session 28), and an unbonded statement slashes nobody.
   */
  bonded?(): boolean;
  /**
   * Whether a statement signed by this validator key counts toward HOP_FRAUD_QUORUM in this node's ledger (the key
   * holds the reward bond locked). Given, a co-statement that would not count is not taken and the next holder is
   * asked (review2, session 28: a co-checker without the bond, an older node or a hop serving everyone, signed; its
   * statement made the quorum here, the ledger refused the slash for HOP_FRAUD_QUORUM, and nobody else was asked).
   */
  counts?(validator: Uint8Array): boolean;
  /**
   * The wire bytes of the market request event with this id in this node's ledger (the request a completion answers:
   * its id is the event's). Given, a fetch carries it beside the completion over hop-transcript/4.0.0 (session 30), so
   * a hop whose ledger missed both ingests the request first; undefined (or without it), over 3.0.0 as before.
   */
  requestEvent?(requestId: Uint8Array): Uint8Array | undefined;
  /** How long a co-check waits for its completion to be applied here (default CO_CHECK_APPLIED_WAIT_MS). */
  appliedWaitMs?: number;
  /** Delays of the tries after a retryable skip (default TRANSCRIPT_RETRY_MS; tests shorten them). */
  retryMs?: readonly number[];
  log?: Logger;
}

/** How long a co-check waits for the completion it names to be applied by this node's ledger (gossip lag). */
export const CO_CHECK_APPLIED_WAIT_MS = 5_000;
/** Verdicts (match or fraud) kept per (completion, hop) for later co-checks and samples, and for how long. */
export const VERDICTS_KEPT = 1024;
export const VERDICT_KEEP_MS = 10 * 60_000;

/** Most completions waiting for validation; more are dropped (validation is best effort, sampling is the rule). */
export const MAX_VALIDATION_QUEUE = 32;

/**
 * Skips of a sampled hop that a later try may turn into a verdict (review2, session 28): the hop refused the fetch
 * because its ledger had not applied the completion or seen our bond yet (`TRANSCRIPT_FORBIDDEN`: it waits only while
 * its ledger holds the request open, and a hop whose ledger lacks the request, or missed the completion's gossip until a
 * sync, refuses at once), or its slots were full (`RPC_BUSY`). The sample was lost for good: a validator looks at a
 * completion once.
 */
const RETRYABLE_SKIPS: ReadonlySet<string> = new Set(['TRANSCRIPT_FORBIDDEN', 'RPC_BUSY']);
/** When such a hop is asked again, after the first try (then given up); all within the transcripts' 10 minutes. */
export const TRANSCRIPT_RETRY_MS: readonly number[] = [5_000, 30_000, 120_000];
/** Retries waiting at once at most (a timer and the completion's ≤ 8 KiB each); more are not scheduled. */
const MAX_RETRIES = 64;

export class HopValidator {
  readonly stats = { sampled: 0, reexecuted: 0, matched: 0, frauds: 0, skipped: 0, slashes: 0, coChecks: 0, dropped: 0, retries: 0 };
  private queue: Promise<unknown> = Promise.resolve();
  private pending = 0;
  /** Retries scheduled and not run yet. */
  private retrying = 0;
  private readonly log: Logger;
  /**
   * Checks per (completion id, hop index), in flight or ended in a match or a fraud (skips are forgotten: most are
   * transient), oldest first. A co-check re-executed the whole session each time it was asked, and anyone may ask
   * (session 27): one ~8 KiB request replaying a real completion cost a transcript fetch of up to 9 MiB and a
   * session's re-execution on this node's worker, as often as it was sent.
   */
  private readonly verdicts = new Map<string, SharedCheck>();

  constructor(private readonly d: HopValidatorDeps) {
    this.log = d.log ?? silentLogger;
  }

  /**
   * A completion this node saw (its ledger applied it): validates the sampled hops, one completion at a time, and
   * submits a slash when a quorum agrees on a fraud. Resolves with the verdicts (tests, logs).
   */
  onCompletion(bytes: Uint8Array, signal: AbortSignal): Promise<Verdict[]> {
    if (this.pending >= MAX_VALIDATION_QUEUE) {
      this.stats.dropped++;
      return Promise.resolve([]);
    }
    this.pending++;
    const run = this.queue.then(() => this.validate(bytes, signal)).finally(() => this.pending--);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The sampled hops of a completion (`only`: the hops a retry asks about again, `attempt` tries after the first). */
  private async validate(bytes: Uint8Array, signal: AbortSignal, only?: readonly number[], attempt = 0): Promise<Verdict[]> {
    const c = decodeEvent(bytes);
    if (c.body.kind !== EventKind.MarketComplete) return [];
    const b = c.body;
    const out: Verdict[] = [];
    const again: number[] = [];
    for (let i = 0; i < b.hops.length; i++) {
      if (only !== undefined) {
        if (!only.includes(i)) continue;
      } else {
        if (bytesEqual(b.hops[i]!.key, this.d.key.publicKey)) continue;
        if (!isSampled(b.receiptSignature, i, this.d.key.publicKey, this.d.rate)) continue;
        this.stats.sampled++;
      }
      const v = await this.checkOnce(c as LedgerEvent<MarketCompleteBody>, i, signal);
      out.push(v);
      if (v.status === 'fraud') await this.prosecute(c as LedgerEvent<MarketCompleteBody>, v, signal);
      else if (v.status === 'skip' && RETRYABLE_SKIPS.has(v.reason)) again.push(i);
    }
    if (again.length > 0) this.retryLater(bytes, again, attempt, signal);
    return out;
  }

  /** Asks about `indices` again after the attempt's delay (RETRYABLE_SKIPS), through the queue like a completion. */
  private retryLater(bytes: Uint8Array, indices: number[], attempt: number, signal: AbortSignal): void {
    const ms = (this.d.retryMs ?? TRANSCRIPT_RETRY_MS)[attempt];
    if (ms === undefined || signal.aborted || this.retrying >= MAX_RETRIES) return;
    this.retrying++;
    this.stats.retries++;
    const done = (): void => {
      this.retrying--;
      signal.removeEventListener('abort', cancel);
    };
    const cancel = (): void => {
      clearTimeout(timer);
      done();
    };
    const timer = setTimeout(() => {
      done();
      if (this.pending >= MAX_VALIDATION_QUEUE) {
        this.stats.dropped++;
        return;
      }
      this.pending++;
      const run = this.queue.then(() => this.validate(bytes, signal, indices, attempt + 1)).finally(() => this.pending--);
      this.queue = run.catch((e: unknown) => this.log.warn('validating a completion again failed', { error: errorMessage(e) }));
    }, ms);
    timer.unref();
    signal.addEventListener('abort', cancel, { once: true });
  }

  /** `check`, once per (completion, hop) while its verdict is kept (see `verdicts`). */
  private checkOnce(c: LedgerEvent<MarketCompleteBody>, index: number, signal: AbortSignal, vouch?: FraudStatement): Promise<Verdict> {
    const key = `${Buffer.from(c.id).toString('hex')}:${index}`;
    const now = Date.now();
    for (const [k, e] of this.verdicts) {
      if (now - e.at < VERDICT_KEEP_MS && this.verdicts.size <= VERDICTS_KEPT) break;
      this.verdicts.delete(k);
    }
    let e = this.verdicts.get(key);
    if (e === undefined) {
      // its own signal, not its first caller's: a co-check asked first and then dropped (its stream reset) aborted
      // the check that the validator's own sample of the hop had joined, and both got a skip (review2, session 27:
      // the checked hop could co-check its completion as soon as it was applied, and reset it)
      const ac = new AbortController();
      const v = this.check(c, index, ac.signal, vouch);
      const entry: SharedCheck = { at: now, v, ac, waiting: 0, settled: false };
      e = entry;
      this.verdicts.set(key, entry);
      void v.then((r) => {
        entry.settled = true;
        if (r.status === 'skip' && this.verdicts.get(key) === entry) this.verdicts.delete(key);
      });
    }
    return joinCheck(e, index, signal);
  }

  /** Resolves true once `completionApplied` says the completion is applied, false after `appliedWaitMs`. */
  private async applied(id: Uint8Array, signal: AbortSignal): Promise<boolean> {
    const known = this.d.completionApplied;
    if (known === undefined) return true;
    const until = Date.now() + (this.d.appliedWaitMs ?? CO_CHECK_APPLIED_WAIT_MS);
    for (;;) {
      if (known(id)) return true;
      if (Date.now() >= until || signal.aborted) return false;
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, until - Date.now()))));
    }
  }

  /** Re-executes hop `index` of a completion; never throws (a failure is a skip with its reason). */
  async check(c: LedgerEvent<MarketCompleteBody>, index: number, signal: AbortSignal, vouch?: FraudStatement): Promise<Verdict> {
    const v = await this.checkInner(c, index, signal, vouch).catch((e: unknown): Verdict => ({ status: 'skip', index, reason: e instanceof NeuroShardError ? e.code : errorMessage(e) }));
    if (v.status === 'match') this.stats.matched++;
    else if (v.status === 'fraud') this.stats.frauds++;
    else this.stats.skipped++;
    // an unbonded node (a new node at the default rate) skips every sampled hop of every completion: not at info
    if (v.status === 'skip' && v.reason === 'NOT_BONDED') this.log.debug('hop validation', { index, status: v.status, reason: v.reason });
    else if (v.status !== 'match') this.log.info('hop validation', { index, status: v.status, ...(v.status === 'skip' ? { reason: v.reason } : {}) });
    return v;
  }

  private async checkInner(c: LedgerEvent<MarketCompleteBody>, index: number, signal: AbortSignal, vouch?: FraudStatement): Promise<Verdict> {
    const skip = (reason: string): Verdict => ({ status: 'skip', index, reason });
    const b = c.body;
    const hop = b.hops[index];
    if (hop === undefined) return skip('NO_SUCH_HOP');
    const mine = this.d.compute.span();
    if (mine === undefined) return skip('NOT_SERVING');
    if (this.d.bonded?.() === false) return skip('NOT_BONDED');
    // the transcript of the commitments the completion carries: the hop may have sealed others for the same public
    // request id and index (strangers' sessions), kept beside it (hop-transcript.ts TranscriptStore). The request
    // carries the completion (a hop whose ledger missed it ingests it) and, for a co-check, the sampled validator's
    // statement that opens the transcript to us (session 29: hops serve only sampled keys, and those they vouch for),
    // and the request the completion answers (session 30: a hop whose ledger missed it drops the completion alone)
    const request = this.d.requestEvent?.(b.requestId);
    const carry = { completion: c.bytes, ...(request === undefined ? {} : { request }), ...(vouch === undefined ? {} : { statement: vouch }) };
    const t = await fetchTranscript(this.d.rpc, peerIdFromPublicKey(hop.key), b.requestId, index, signal, { inCommit: hop.inCommit, outCommit: hop.outCommit }, carry);
    // the transcript must be the one the hop signed for this completion, and its inputs the committed ones
    if (t.index !== index || t.count !== b.hops.length || !bytesEqual(t.requestId, b.requestId) || !bytesEqual(t.inCommit, hop.inCommit) || !bytesEqual(t.outCommit, hop.outCommit)) return skip('TRANSCRIPT_NOT_THIS_HOP');
    if (!verifyDomain(hop.key, TRANSCRIPT_DOMAIN, transcriptPayload(this.d.networkId, b.requestId, index, b.hops.length, hop.inCommit, hop.outCommit, t.claim), t.claimSignature)) return skip('TRANSCRIPT_BAD_SIGNATURE');
    if (!bytesEqual(inputCommitment(t), hop.inCommit)) return skip('TRANSCRIPT_INPUT_MISMATCH');
    const me = await this.d.claim();
    if (t.claim.span.start !== mine.start || t.claim.span.end !== mine.end) return skip('OTHER_SPAN');
    if (t.claim.modelHash !== me.modelHash) return skip('OTHER_WEIGHTS');
    if (t.claim.engine !== me.engine) return skip('OTHER_ENGINE');
    if ((t.cols === 0) !== (mine.start === 0) || (t.cols !== 0 && t.cols !== this.d.compute.hiddenSize)) return skip('TRANSCRIPT_SHAPE');
    const r = await reexecute(this.d.compute, t, signal, this.d.timeoutMs);
    this.stats.reexecuted++;
    // our own weights moved while we re-ran (a training node): the comparison says nothing about the hop
    if ((await this.d.claim()).modelHash !== me.modelHash) return skip('WEIGHTS_MOVED');
    if (bytesEqual(r.outCommit, hop.outCommit)) return { status: 'match', index };
    const statement = signFraudStatement(this.d.key, this.d.networkId, c.id, index, t.claim.modelHash, hop.outCommit, r.outCommit);
    return { status: 'fraud', index, statement, transcript: t };
  }

  /** Collects co-statements from other holders of the span until the quorum, then submits the slash. */
  private async prosecute(c: LedgerEvent<MarketCompleteBody>, v: Extract<Verdict, { status: 'fraud' }>, signal: AbortSignal): Promise<void> {
    const hop = c.body.hops[v.index]!;
    const statements = [v.statement];
    const hopPeer = peerIdFromPublicKey(hop.key);
    for (const peer of this.d.holders(v.transcript.claim.span)) {
      if (statements.length >= HOP_FRAUD_QUORUM) break;
      if (peer === hopPeer || peer === peerIdFromPublicKey(this.d.key.publicKey)) continue;
      try {
        const s = decodeStatement(await this.coCheck(peer, c.bytes, v.index, v.statement, signal));
        if (statements.some((x) => bytesEqual(x.validator, s.validator))) continue;
        if (this.d.counts?.(s.validator) === false) {
          this.log.info('a co-statement from a key without the bond: not counted', { peer });
          continue;
        }
        // a co-statement counts only if it verifies for this completion, hop, weights and output
        if (bytesEqual(s.recomputed, hop.outCommit)) continue;
        if (!verifyDomain(s.validator, FRAUD_STATEMENT_DOMAIN, statementPayload(this.d.networkId, c.id, v.index, v.transcript.claim.modelHash, hop.outCommit, s.recomputed), s.signature)) continue;
        statements.push(s);
      } catch (e) {
        this.log.info('a co-check was not given', { peer, error: errorMessage(e) });
      }
    }
    if (statements.length < HOP_FRAUD_QUORUM) {
      this.log.warn('hop fraud without a quorum: not slashed', { index: v.index, statements: statements.length });
      return;
    }
    const record = encodeFraudRecord({ index: v.index, claim: v.transcript.claim, claimSignature: v.transcript.claimSignature, statements });
    try {
      await this.d.submitSlash([c.bytes, record]);
      this.stats.slashes++;
    } catch (e) {
      this.log.warn('the hop-fraud slash was refused', { error: errorMessage(e) });
    }
  }

  /**
   * Asks `peer` to co-check hop `index` over hop-fraud-check/2.0.0, which carries our statement (the hop serves the
   * co-checker its transcript on it: the draw did not name the co-checker), or 1.0.0 when the peer is older.
   */
  private async coCheck(peer: string, completion: Uint8Array, index: number, statement: FraudStatement, signal: AbortSignal): Promise<Uint8Array> {
    try {
      return await this.d.rpc.call(peer, hopFraudCheckV2, encodeCoCheck(completion, index, statement), { signal });
    } catch (e) {
      if (!(isNeuroShardError(e) && e.code === 'RPC_UNAVAILABLE' && e.meta?.reason === 'unsupported-protocol')) throw e;
    }
    return this.d.rpc.call(peer, hopFraudCheck, encodeCoCheck(completion, index), { signal });
  }

  /** Stops serving co-checks. */
  async unserve(rpc: RpcNode): Promise<void> {
    await rpc.unhandle(hopFraudCheck).catch(() => undefined);
    await rpc.unhandle(hopFraudCheckV2).catch(() => undefined);
  }

  /** Serves co-checks: another validator found a fraud; re-execute the hop ourselves and sign only if we agree. */
  async serve(rpc: RpcNode): Promise<void> {
    const handler = async (req: Uint8Array, ctx: CallContext): Promise<Uint8Array> => {
      const q = decodeCoCheck(req);
      const c = verifiedCompletion(q.completion, this.d.networkId, q.index);
      this.stats.coChecks++;
      // before the wait for the completion: an unbonded co-checker answers at once (its statement would count for nothing)
      if (this.d.bonded?.() === false) throw new NeuroShardError('CANNOT_VALIDATE', 'this validator cannot judge the hop (NOT_BONDED: its key holds no reward bond)', { fault: 'local' });
      if (!(await this.applied(c.id, ctx.signal))) throw new NeuroShardError('CANNOT_VALIDATE', 'this validator cannot judge the hop (COMPLETION_NOT_APPLIED: its ledger has not applied the completion)', { fault: 'local' });
      const v = await this.checkOnce(c, q.index, ctx.signal, q.statement);
      if (v.status === 'fraud') return encodeStatement(v.statement);
      throw new NeuroShardError(v.status === 'match' ? 'OUTPUT_MATCHES' : 'CANNOT_VALIDATE', v.status === 'match' ? 'this validator re-executed the hop and got its output' : `this validator cannot judge the hop (${v.reason})`, { fault: 'local' });
    };
    await rpc.handle(hopFraudCheck, handler);
    await rpc.handle(hopFraudCheckV2, handler);
  }
}

/**
 * The cheap checks on a completion named by a co-check: decodes, is kind 8 of this network, signed by its driver,
 * and hop `index` exists and signed its commitment. Costs two signature checks, not a re-execution.
 */
export function verifiedCompletion(bytes: Uint8Array, networkId: string, index: number): LedgerEvent<MarketCompleteBody> {
  let c: LedgerEvent;
  try {
    c = decodeEvent(bytes);
  } catch (e) {
    throw new PeerMisbehaviourError('RPC_MALFORMED', `hop-fraud-check: ${errorMessage(e)}`);
  }
  if (c.body.kind !== EventKind.MarketComplete || c.networkId !== networkId || !verifyDomain(c.signer, EVENT_DOMAIN, c.payload, c.signature)) throw new PeerMisbehaviourError('HOP_FRAUD_FORGED', 'hop-fraud-check: not a signed completion of this network');
  const h = c.body.hops[index];
  if (h === undefined || !verifyDomain(h.key, HOP_COMMITMENT_DOMAIN, hopCommitmentPayload(networkId, c.body.requestId, index, c.body.hops.length, h.inCommit, h.outCommit), h.signature)) throw new PeerMisbehaviourError('HOP_FRAUD_FORGED', 'hop-fraud-check: the hop did not sign this commitment');
  return c as LedgerEvent<MarketCompleteBody>;
}

const raw: MessageCodec<Uint8Array> = { encode: (v) => v, decode: (b) => b };

/** Request: u8 1 ‖ bytes completion event (u32 length, ≤ 8 KiB) ‖ u8 hop index. Answer: a statement (33 ‖ 32 ‖ 64 bytes). */
export const hopFraudCheck: UnaryMethod<Uint8Array, Uint8Array> = {
  name: 'hop-fraud-check',
  version: '1.0.0',
  kind: 'unary',
  request: raw,
  response: raw,
  maxRequestBytes: MAX_EVENT_BYTES + 16,
  maxResponseBytes: 1024,
  timeoutMs: 150_000,
  maxInboundStreams: 2,
  maxConcurrent: 2,
  maxConcurrentPerPeer: 1,
  requestReadMs: 5_000,
  validateRequest: (b) => {
    if (b[0] !== 1) throw new PeerMisbehaviourError('RPC_MALFORMED', 'hop-fraud-check/1.0.0: version');
    decodeCoCheck(b);
  },
};

/**
 * hop-fraud-check/2.0.0 (session 29): u8 2 ‖ bytes completion event (u32 length, ≤ 8 KiB) ‖ u8 hop index ‖ the asking
 * validator's statement (33 ‖ 32 ‖ 64 bytes). The co-checker hands the statement to the hop with its transcript fetch:
 * hops serve transcripts only to keys the draw names (sampling.ts MAX_VALIDATION_RATE), and a co-checker is one the
 * asking validator picked, not the draw. A new version: an older co-checker answers "protocol not supported" and is
 * asked 1.0.0 (its fetch is then refused unless the draw names it).
 */
export const hopFraudCheckV2: UnaryMethod<Uint8Array, Uint8Array> = {
  ...hopFraudCheck,
  version: '2.0.0',
  maxRequestBytes: MAX_EVENT_BYTES + 16 + 129,
  validateRequest: (b) => {
    if (b[0] !== 2) throw new PeerMisbehaviourError('RPC_MALFORMED', 'hop-fraud-check/2.0.0: version');
    decodeCoCheck(b);
  },
};

/** Version 1 without `statement`, version 2 with it. */
export function encodeCoCheck(completion: Uint8Array, index: number, statement?: FraudStatement): Uint8Array {
  const w = new Writer().u8(statement === undefined ? 1 : 2).bytes(completion, MAX_EVENT_BYTES).u8(index);
  if (statement !== undefined) w.fixed(statement.validator, 33).fixed(statement.recomputed, 32).fixed(statement.signature, 64);
  return w.finish();
}

export function decodeCoCheck(b: Uint8Array): { completion: Uint8Array; index: number; statement?: FraudStatement } {
  try {
    const r = new Reader(b);
    const version = r.u8();
    if (version !== 1 && version !== 2) throw new DecodeError('version');
    const out = { completion: r.bytes(MAX_EVENT_BYTES), index: r.u8() };
    const statement = version === 2 ? { validator: r.fixed(33), recomputed: r.fixed(32), signature: r.fixed(64) } : undefined;
    r.end();
    return statement === undefined ? out : { ...out, statement };
  } catch (e) {
    if (e instanceof DecodeError || e instanceof RangeError) throw new PeerMisbehaviourError('RPC_MALFORMED', `hop-fraud-check: ${e.message}`);
    throw e;
  }
}

export function encodeStatement(s: FraudStatement): Uint8Array {
  return new Writer().fixed(s.validator, 33).fixed(s.recomputed, 32).fixed(s.signature, 64).finish();
}

export function decodeStatement(b: Uint8Array): FraudStatement {
  try {
    const r = new Reader(b);
    const s = { validator: r.fixed(33), recomputed: r.fixed(32), signature: r.fixed(64) };
    r.end();
    return s;
  } catch (e) {
    if (e instanceof DecodeError || e instanceof RangeError) throw new PeerMisbehaviourError('RPC_MALFORMED', `hop-fraud-check answer: ${e.message}`);
    throw e;
  }
}
