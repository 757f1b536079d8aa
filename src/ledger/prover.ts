/**
 * A node's own Proof of Neural Work, as a sequence over plain data (node/ledger.ts wires it to the clock, the work
 * counters, the ledger and the network):
 *
 *   const seq = new ProofSequence({ key, networkId, counters, modelLayers, offsetMs, startedAt, lastEpoch });
 *   const p = await seq.nextFresh(now, () => ({ local: ledger.nextNonce(pub, EventKind.Proof), reported }), (span, now) => records.at(...));
 *   if (p !== undefined) seq.settle(p, await service.submit(p.event.bytes));
 *
 * `next` decides whether a proof is due at `now` (one per 60 s window, at the key's offset into it, with layers held
 * and at least a second of uptime), what it claims (the counters' growth since the previous proof, ledger/work.ts
 * proofClaim, with a model hash read after the counters: freshWork) and under which nonce (ledger/reconcile.ts proofNonce), and signs it. `settle` records the verdict:
 * the window is done whatever it was; only a proof the ledger took moves the claim's base on, so work a refused proof
 * claimed goes into the next one.
 *
 * HolderRecordCache is the record a proof embeds: re-signed only when the span, the addresses or the advertised
 * throughput change or half its lifetime is gone, so peers verify its signature once per record, not once per proof.
 */
import type { NodeKey } from '../identity/index.js';
import { buildProof } from './build.js';
import type { LedgerEvent, ProofBody } from './events.js';
import type { EmbeddedHolderRecord } from './holder.js';
import type { IngestResult } from './ledger.js';
import { proofNonce, provenThrough } from './reconcile.js';
import { clampU32, dueEpoch, freshWork, holderRecordAddrs, holderRecordKey, holderRecordReusable, proofClaim, proofUptime, workSnapshot, type FreshWork, type ProofClaim, type WorkCounters, type WorkSnapshot, type WorkSpan } from './work.js';

/** The verdict on one of our proofs, as the node reports it (`neuroshard ledger status`, proveNow). */
export interface ProofOutcome {
  id: string;
  epoch: number;
  nonce: string;
  status: IngestResult['status'];
  reason?: string;
}

/** A proof `next` made: signed, not yet submitted. */
export interface ProofPlan {
  epoch: number;
  nonce: bigint;
  nowMs: number;
  claim: ProofClaim;
  /** Why training was not claimable in this proof, when it was not (a debug line). */
  why?: string;
  event: LedgerEvent<ProofBody>;
  /** The counters and model hash the claim ran to: the next proof's base once this one is taken. */
  cur: WorkSnapshot;
  modelHash: string;
}

export interface ProofSequenceOptions {
  key: NodeKey;
  networkId: string;
  counters: WorkCounters;
  modelLayers: number;
  /** Our offset into each 60 s window (ledger/work.ts defaultProofOffset). */
  offsetMs: number;
  /** Ledger time the node started: the first proof's uptime runs from here. */
  startedAt: number;
  /** The last window already proved (or that may have been: provenThrough), -1 for none. */
  lastEpoch: number;
  /** The longest nextFresh waits for a fresh model hash (ledger/work.ts PROOF_HASH_WAIT_MS). */
  hashWaitMs?: number;
}

export class ProofSequence {
  emitted = 0;
  lastEpoch: number;
  last: ProofOutcome | undefined;
  private lastProofAt: number | undefined;
  private lastModelHash: string;
  private base: WorkSnapshot;

  constructor(private readonly o: ProofSequenceOptions) {
    this.lastEpoch = o.lastEpoch;
    this.lastModelHash = o.counters.modelHash();
    this.base = workSnapshot(o.counters);
  }

  /** Raises the last proved window to what peers report of our key (never below what we know; provenThrough). */
  raiseProven(reportedLastEpoch: number, startEpoch: number): void {
    this.lastEpoch = provenThrough(this.lastEpoch, reportedLastEpoch, startEpoch);
  }

  /** Whether a proof is due at `nowMs`: this window not proved yet, past our offset into it, layers held, ≥ 1 s of uptime. */
  due(nowMs: number): boolean {
    return this.slot(nowMs) !== undefined;
  }

  /**
   * The proof due at `nowMs`, signed, or undefined when none is: the window is done or we are not past our offset
   * into it, no (valid) layers are held, or under a second of uptime since the previous proof. Takes the counters'
   * request ids only when a proof is made. `nonces` (asked only when a proof is made): the next proof nonce our
   * ledger knows and the one peers reported. `record` gives the HolderRecord to embed for the span held. `work`: the
   * counters and model hash to claim to (freshWork); the counters as they are now when absent.
   */
  next(nowMs: number, nonces: () => { local: bigint; reported: bigint }, record: (span: WorkSpan, nowMs: number) => EmbeddedHolderRecord, work?: FreshWork): ProofPlan | undefined {
    const c = this.o.counters;
    const slot = this.slot(nowMs);
    if (slot === undefined) return undefined;
    const { epoch, span, uptimeMs } = slot;
    const { cur, modelHash } = work ?? { cur: workSnapshot(c), modelHash: c.modelHash() };
    const { claim, why } = proofClaim({
      uptimeMs,
      base: this.base,
      cur,
      modelHashBefore: this.lastModelHash,
      modelHashNow: modelHash,
      training: c.training(),
      requestIds: c.takeRequestIds?.() ?? [],
    });
    const n = nonces();
    const nonce = proofNonce(n.local, n.reported, epoch);
    const event = buildProof(this.o.key, { networkId: this.o.networkId, nonce, timestampMs: nowMs }, { ...claim, holderRecord: record(span, nowMs) });
    return { epoch, nonce, nowMs, claim, ...(why !== undefined ? { why } : {}), event, cur, modelHash };
  }

  /**
   * `next` with a fresh model hash: when a proof is due, the counters are taken and the hash read after them
   * (ledger/work.ts freshWork: a hash that lags the weights would drop the training of the window's last seconds).
   * Nothing is read when no proof is due; the span is read again after the hash (a pool move may land meanwhile).
   */
  async nextFresh(nowMs: number, nonces: () => { local: bigint; reported: bigint }, record: (span: WorkSpan, nowMs: number) => EmbeddedHolderRecord): Promise<ProofPlan | undefined> {
    if (!this.due(nowMs)) return undefined;
    const work = await freshWork(this.o.counters, this.o.hashWaitMs);
    return this.next(nowMs, nonces, record, work);
  }

  private slot(nowMs: number): { epoch: number; span: WorkSpan; uptimeMs: number } | undefined {
    const epoch = dueEpoch(nowMs, this.lastEpoch, this.o.offsetMs);
    if (epoch === undefined) return undefined;
    const span = this.o.counters.layersHeld();
    const uptimeMs = proofUptime(nowMs, this.lastProofAt ?? this.o.startedAt, span, this.o.modelLayers);
    return span === undefined || uptimeMs === undefined ? undefined : { epoch, span, uptimeMs };
  }

  /**
   * Records our ledger's verdict on `p`. Whatever it is, the window is done (a second proof in it could only be
   * rejected). A dropped proof was neither stored nor published and its nonce is free: the work it claimed waits
   * for the next proof. Anything else counts as emitted and moves the base on.
   */
  settle(p: ProofPlan, r: Pick<IngestResult, 'id' | 'status' | 'reason'>): ProofOutcome {
    this.lastEpoch = p.epoch;
    const outcome: ProofOutcome = { id: r.id, epoch: p.epoch, nonce: p.nonce.toString(), status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}) };
    this.last = outcome;
    if (r.status !== 'dropped') {
      this.emitted++;
      this.lastProofAt = p.nowMs;
      this.lastModelHash = p.modelHash;
      this.base = p.cur;
    }
    return outcome;
  }
}

/** What a HolderRecord embedded in our proofs says besides its span and times. */
export interface HolderRecordInput {
  nowMs: number;
  span: WorkSpan;
  /** Our listen addresses as libp2p reports them (with or without the /p2p/<us> suffix). */
  multiaddrs: readonly string[];
  peerId: string;
  capacity: { memoryMb: number; tokensPerSec: number };
}

/** Signs a record for `multiaddrs` valid from `nowMs` for `ttlMs` (throws for addresses the record rules refuse). */
export type HolderRecordSigner<R> = (content: { multiaddrs: string[]; span: WorkSpan; capacity: { memoryMb: number; tokensPerSec: number } }, nowMs: number, ttlMs: number) => R;

/** The HolderRecord our proofs embed (see the file comment). */
export class HolderRecordCache<R extends { timestampMs: number; expiresMs: number }> {
  private cached: { rec: R; key: string } | undefined;
  /** Records signed so far (tests; a status figure). */
  signed = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly sign: HolderRecordSigner<R>,
    /** Called when our addresses were refused and the record went out without them. */
    private readonly onAddressesRefused: (e: unknown) => void = () => {},
  ) {}

  /** The record for a proof at `i.nowMs`: the cached one while nothing in it changed and it is young enough. */
  at(i: HolderRecordInput): R {
    const addrs = holderRecordAddrs(i.multiaddrs, i.peerId);
    const capacity = { memoryMb: clampU32(i.capacity.memoryMb), tokensPerSec: clampU32(i.capacity.tokensPerSec) };
    const key = holderRecordKey(i.span, addrs, capacity.tokensPerSec);
    const c = this.cached;
    if (c !== undefined && holderRecordReusable({ key: c.key, timestampMs: c.rec.timestampMs, expiresMs: c.rec.expiresMs }, key, i.nowMs, this.ttlMs)) return c.rec;
    let rec: R;
    try {
      rec = this.sign({ multiaddrs: addrs, span: i.span, capacity }, i.nowMs, this.ttlMs);
    } catch (e) {
      // an address our record rules do not take (an exotic transport): the proof needs the span, not the addresses
      this.onAddressesRefused(e);
      rec = this.sign({ multiaddrs: [], span: i.span, capacity }, i.nowMs, this.ttlMs);
    }
    this.signed++;
    this.cached = { rec, key };
    return rec;
  }
}
