/**
 * Training receipts wired to a training node (issue 11 §2; ledger/training-receipt.ts has the rules): at the close of
 * every outer round the node builds the round's canonical training record from its own view (the members, the
 * contributions each layer used or rejected, the agreed state hashes) and keeps it for a few rounds. It co-signs a
 * peer's record over `training-record/1.0.0` (protocols/training-receipt.ts) only when the bytes equal its own.
 * The round's submitter — the member with the smallest key, so every member names the same one — asks every
 * other member for its co-signature (each call with its deadline, retried while the peer has not closed the round,
 * all within `collectMs`), and when it holds the quorum submits the TrainingReceipt event to its ledger, which
 * gossips it. A receipt the local ledger would refuse (unbonded co-signers, witnessed rules off) is not submitted.
 */
import { peerIdFromPublicKey, publicKeyFromPeerId, signDomain, type NodeKey } from '../identity/index.js';
import { buildTrainingReceipt } from '../ledger/build.js';
import type { LedgerEvent } from '../ledger/events.js';
import { receiptQuorum, roundRecord, trainingRecordPayload, TRAINING_RECORD_DOMAIN, verifyCosignature, type RecordCosignature, type TrainingRecord } from '../ledger/training-receipt.js';
import { NEUROLLM_BATCH, type LlamaConfig } from '../model/index.js';
import { trainingRecord } from '../protocols/training-receipt.js';
import type { NodeLedgerService } from './ledger.js';
import type { RpcNode } from '../protocols/rpc/service.js';
import type { LastRoundReport, PeerTrainingStatus } from '../training/sync.js';
import { deadlineLink } from '../util/abort.js';
import { bytesEqual, toHex } from '../util/bytes.js';
import type { Clock } from '../util/clock.js';
import { errorMessage, NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';

/** Records a node keeps to co-sign (a slower member may ask a few rounds late). */
export const RECORDS_KEPT = 8;

export interface TrainingReceiptsInit {
  rpc: RpcNode;
  key: NodeKey;
  networkId: string;
  /** Blocks [start, end) the outer sync trains. */
  span: { start: number; end: number };
  /** Tokens each contribution stands for: H inner steps × tokens per step (the same on every member). */
  tokensPerContribution: bigint;
  /** Submits a signed ledger event (the node's ledger service). */
  submit(bytes: Uint8Array): Promise<{ status: string; reason?: string }>;
  /** The local ledger's state verdict (null = it would apply). */
  precheck?(e: LedgerEvent): string | null;
  clock: Clock;
  log?: Logger;
  /** How long the submitter collects co-signatures after a round closes. Default 60 s. */
  collectMs?: number;
  /** Pause between asks of a member that has not closed the round yet. Default 500 ms. */
  pollMs?: number;
}

export interface TrainingReceipts {
  /** Builds and keeps the round's record; the submitter collects co-signatures and submits in the background. */
  onClosed(r: LastRoundReport, closed: PeerTrainingStatus['closed']): void;
  readonly counts: { records: number; cosigned: number; submitted: number; applied: number; failed: number };
  /** The submission attempts in flight (tests wait for them). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The receipts options of a node's outer sync: its ledger submits and prechecks; each contribution stands for H inner
 * steps of the network's batch (NEUROLLM_BATCH sequences × min(its length, the context): what node/chain.ts and solo
 * DiLoCo train on), so every member computes the same count.
 */
export function receiptsWiring(ledger: NodeLedgerService, config: LlamaConfig, innerSteps: number): Pick<TrainingReceiptsInit, 'tokensPerContribution' | 'submit' | 'precheck'> {
  const perStep = NEUROLLM_BATCH.batchSize * Math.min(NEUROLLM_BATCH.seqLen, config.max_position_embeddings);
  return { tokensPerContribution: BigInt(innerSteps * perStep), submit: (b) => ledger.service.submit(b), precheck: (e) => ledger.ledger.stateVerdict(e) };
}

/** The record of a closed round from training's report (undefined: this round gives none; see roundRecord). */
export function recordOfRound(r: LastRoundReport, closed: PeerTrainingStatus['closed'], span: { start: number; end: number }, tokensPerContribution: bigint): TrainingRecord | undefined {
  const outcomes = Object.values(r.outcome);
  if (outcomes.length === 0 || outcomes.some((o) => o !== 'closed')) return undefined;
  const hashes = closed.find((c) => c.round === r.round)?.hashes;
  if (hashes === undefined) return undefined;
  try {
    const contributions: Record<string, { sender: Uint8Array; used: boolean }[]> = {};
    let loss: bigint | undefined;
    for (const [layer, rec] of Object.entries(r.records)) {
      contributions[layer] = rec.contributions.map((c) => ({ sender: publicKeyFromPeerId(c.id), used: c.used }));
      // the gauntlet's measured held-out loss improvement: the mean over the used contributions of the first layer
      if (loss === undefined && rec.aggregator === 'gauntlet') {
        const used = rec.contributions.filter((c) => c.used && c.score !== undefined && Number.isFinite(c.score));
        if (used.length > 0) loss = -BigInt(Math.round((1e6 * used.reduce((a, c) => a + c.score!, 0)) / used.length));
      }
    }
    return roundRecord({
      round: r.round,
      layers: span,
      layerHashes: hashes,
      members: r.members.map((m) => publicKeyFromPeerId(m)),
      contributions,
      tokensPerContribution,
      ...(loss === undefined ? {} : { lossChangeMicro: loss }),
    });
  } catch {
    return undefined; // a member id that is no public key: no record
  }
}

export async function startTrainingReceipts(i: TrainingReceiptsInit): Promise<TrainingReceipts> {
  const log = i.log ?? silentLogger;
  const collectMs = i.collectMs ?? 60_000;
  const pollMs = i.pollMs ?? 500;
  const stopping = new AbortController();
  const kept = new Map<number, { record: TrainingRecord; payload: Uint8Array }>();
  const inflight = new Set<Promise<void>>();
  const counts = { records: 0, cosigned: 0, submitted: 0, applied: 0, failed: 0 };

  await i.rpc.handle(trainingRecord, (req) => {
    if (req.networkId !== i.networkId) throw new PeerMisbehaviourError('TRAINING_RECORD_WRONG_NETWORK', 'training record of another network');
    const mine = kept.get(req.record.round);
    if (mine === undefined) throw new NeuroShardError('TRAINING_RECORD_NOT_READY', `round ${req.record.round} is not closed here (or no longer kept)`, { fault: 'local' });
    if (!bytesEqual(mine.payload, req.payload)) throw new NeuroShardError('TRAINING_RECORD_MISMATCH', `our record of round ${req.record.round} differs`, { fault: 'local' });
    counts.cosigned++;
    return signDomain(i.key, TRAINING_RECORD_DOMAIN, mine.payload);
  });

  const sleep = (ms: number): Promise<void> =>
    new Promise((res) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        stopping.signal.removeEventListener('abort', done);
        res();
      }
      stopping.signal.addEventListener('abort', done, { once: true });
    });

  /** One member's co-signature of `payload`, asked until it answers, refuses, or the deadline passes. */
  async function ask(peer: string, member: number, record: TrainingRecord, payload: Uint8Array, until: number): Promise<RecordCosignature | undefined> {
    while (!stopping.signal.aborted && i.clock.now() < until) {
      try {
        // deadlineLink, disposed after the call: a deadlineSignal kept one listener per try on `stopping` (the node's
        // lifetime) until its deadline fired
        const link = deadlineLink(Math.max(1000, Math.min(10_000, until - i.clock.now())), stopping.signal);
        let signature: Uint8Array;
        try {
          signature = await i.rpc.call(peer, trainingRecord, { payload, networkId: i.networkId, record }, { signal: link.signal });
        } finally {
          link.dispose();
        }
        const c = { member, signature };
        if (verifyCosignature(i.networkId, record, c)) return c;
        log.warn('a member\'s co-signature does not verify', { peer, round: record.round });
        return undefined;
      } catch (e) {
        if (e instanceof NeuroShardError && e.code === 'TRAINING_RECORD_MISMATCH') {
          log.info('a member saw the round differently: no co-signature', { peer, round: record.round });
          return undefined;
        }
        log.debug('co-signature not yet', { peer, round: record.round, error: errorMessage(e) });
      }
      await sleep(pollMs);
    }
    return undefined;
  }

  async function collectAndSubmit(record: TrainingRecord, payload: Uint8Array): Promise<void> {
    const until = i.clock.now() + collectMs;
    const self = toHex(i.key.publicKey);
    const mine = record.members.findIndex((m) => toHex(m) === self);
    const asks = record.members.map((m, member) => {
      if (member === mine) return Promise.resolve<RecordCosignature | undefined>({ member, signature: signDomain(i.key, TRAINING_RECORD_DOMAIN, payload) });
      let peer: string;
      try {
        peer = peerIdFromPublicKey(m);
      } catch {
        return Promise.resolve(undefined);
      }
      return ask(peer, member, record, payload, until);
    });
    const cosigs = (await Promise.all(asks)).filter((c): c is RecordCosignature => c !== undefined).sort((a, b) => a.member - b.member);
    if (stopping.signal.aborted) return;
    if (cosigs.length < receiptQuorum(record.members.length)) {
      counts.failed++;
      log.info('training record: too few co-signatures, no receipt', { round: record.round, cosigners: cosigs.length, quorum: receiptQuorum(record.members.length) });
      return;
    }
    const ev = buildTrainingReceipt(i.key, { networkId: i.networkId, timestampMs: i.clock.now() }, record, cosigs);
    const refused = i.precheck?.(ev) ?? null;
    if (refused !== null) {
      counts.failed++;
      log.info('training receipt not submitted: the ledger would refuse it', { round: record.round, reason: refused });
      return;
    }
    counts.submitted++;
    const r = await i.submit(ev.bytes);
    if (r.status === 'applied') counts.applied++;
    else counts.failed++;
    log.info('training receipt submitted', { round: record.round, status: r.status, reason: r.reason, cosigners: cosigs.length, members: record.members.length });
  }

  return {
    counts,
    onClosed(r, closed) {
      const record = recordOfRound(r, closed, i.span, i.tokensPerContribution);
      if (record === undefined) return;
      const payload = trainingRecordPayload(i.networkId, record);
      kept.set(r.round, { record, payload });
      for (const k of [...kept.keys()].sort((a, b) => a - b).slice(0, Math.max(0, kept.size - RECORDS_KEPT))) kept.delete(k);
      counts.records++;
      if (!bytesEqual(record.members[0]!, i.key.publicKey)) return; // another member submits
      const p = collectAndSubmit(record, payload)
        .catch((e: unknown) => {
          counts.failed++;
          log.warn('training receipt failed', { round: r.round, error: errorMessage(e) });
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    },
    idle: async () => {
      while (inflight.size > 0) await Promise.allSettled([...inflight]);
    },
    stop: async () => {
      stopping.abort();
      await Promise.allSettled([...inflight]);
      await i.rpc.unhandle(trainingRecord).catch(() => {});
    },
  };
}
