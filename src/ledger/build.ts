/**
 * Builders of signed events, for the node (proofs every window), the wallet CLI (transfers, stakes) and tests.
 * They fill derived fields (the transfer fee, the proof epoch) so a caller cannot get them wrong.
 */
import { signDomain, type NodeKey } from '../identity/index.js';
import { createHash } from 'node:crypto';
import { PROOF_WINDOW_MS, transferFee } from './economics.js';
import {
  EventKind,
  EvidenceType,
  HOP_COMMITMENT_DOMAIN,
  hopCommitmentPayload,
  RECEIPT_DOMAIN,
  receiptPayload,
  signEvent,
  ZERO32,
  type HopCommitment,
  type LedgerEvent,
  type MarketClaimBody,
  type MarketCompleteBody,
  type MarketRequestBody,
  type ProofBody,
  type SlashBody,
  type StakeBody,
  type TransferBody,
  type UnstakeBody,
  type GenesisBody,
  type UptimeBody,
  type TrainingReceiptBody,
} from './events.js';
import type { LivenessAttestation } from './witness.js';
import type { RecordCosignature, TrainingRecord } from './training-receipt.js';
import type { EmbeddedHolderRecord } from './holder.js';

export interface Envelope {
  networkId: string;
  nonce: bigint;
  timestampMs: number;
}

export function buildTransfer(key: NodeKey, env: Envelope, to: Uint8Array, amount: bigint): LedgerEvent<TransferBody> {
  return signEvent(key, { ...env, body: { kind: EventKind.Transfer, to, amount, fee: transferFee(amount) } });
}

export function buildStake(key: NodeKey, env: Envelope, amount: bigint, lockDays: number): LedgerEvent<StakeBody> {
  return signEvent(key, { ...env, body: { kind: EventKind.Stake, amount, lockDays } });
}

export function buildUnstake(key: NodeKey, env: Envelope, amount: bigint): LedgerEvent<UnstakeBody> {
  return signEvent(key, { ...env, body: { kind: EventKind.Unstake, amount } });
}

export interface ProofCounters {
  uptimeMs: number;
  inferenceTokens?: bigint;
  trainingTokens?: bigint;
  dataSamples?: bigint;
  requestIds?: Uint8Array[];
  modelHash?: Uint8Array;
  modelHashBefore?: Uint8Array;
  modelHashAfter?: Uint8Array;
  gradientCommitment?: Uint8Array;
  dataHash?: Uint8Array;
  lossMicro?: bigint;
  gradNormMicro?: bigint;
  holderRecord: EmbeddedHolderRecord;
}

/** A proof for the window containing env.timestampMs; the layers are the HolderRecord's span. */
export function buildProof(key: NodeKey, env: Envelope, c: ProofCounters): LedgerEvent<ProofBody> {
  const body: ProofBody = {
    kind: EventKind.Proof,
    uptimeMs: c.uptimeMs,
    inferenceTokens: c.inferenceTokens ?? 0n,
    trainingTokens: c.trainingTokens ?? 0n,
    dataSamples: c.dataSamples ?? 0n,
    requestIds: c.requestIds ?? [],
    modelHash: c.modelHash ?? ZERO32,
    layers: { start: c.holderRecord.span.start, end: c.holderRecord.span.end },
    epoch: Math.floor(env.timestampMs / PROOF_WINDOW_MS),
    modelHashBefore: c.modelHashBefore ?? ZERO32,
    modelHashAfter: c.modelHashAfter ?? ZERO32,
    gradientCommitment: c.gradientCommitment ?? ZERO32,
    dataHash: c.dataHash ?? ZERO32,
    lossMicro: c.lossMicro ?? 0n,
    gradNormMicro: c.gradNormMicro ?? 0n,
    holderRecord: c.holderRecord,
  };
  return signEvent(key, { ...env, body });
}

/** The network's genesis allocation (issue 11 §2): nonce 0, signed by the genesis key. */
export function buildGenesis(key: NodeKey, env: Omit<Envelope, 'nonce'>): LedgerEvent<GenesisBody> {
  return signEvent(key, { ...env, nonce: 0n, body: { kind: EventKind.Genesis } });
}

/** A witnessed window of uptime (issue 11 §2): nonce = epoch = the window of env.timestampMs unless given. */
export function buildUptime(key: NodeKey, env: Omit<Envelope, 'nonce'>, attestations: LivenessAttestation[], epoch = Math.floor(env.timestampMs / PROOF_WINDOW_MS)): LedgerEvent<UptimeBody> {
  return signEvent(key, { ...env, nonce: BigInt(epoch), body: { kind: EventKind.Uptime, epoch, attestations } });
}

/** A co-signed training record (issue 11 §2, training-receipt.ts): nonce = the record's round. */
export function buildTrainingReceipt(key: NodeKey, env: Omit<Envelope, 'nonce'>, record: TrainingRecord, cosigs: RecordCosignature[]): LedgerEvent<TrainingReceiptBody> {
  return signEvent(key, { ...env, nonce: BigInt(record.round), body: { kind: EventKind.TrainingReceipt, record, cosigs } });
}

/** Reports two different events with one (signer, kind, nonce). */
export function buildSlashEquivocation(reporter: NodeKey, env: Envelope, a: Uint8Array, b: Uint8Array): LedgerEvent<SlashBody> {
  return signEvent(reporter, { ...env, body: { kind: EventKind.Slash, evidenceType: EvidenceType.Equivocation, evidence: [a, b] } });
}

/** Reports a signed proof that breaks a stateless "fraud" rule. */
export function buildSlashInvalidProof(reporter: NodeKey, env: Envelope, proof: Uint8Array): LedgerEvent<SlashBody> {
  return signEvent(reporter, { ...env, body: { kind: EventKind.Slash, evidenceType: EvidenceType.InvalidProof, evidence: [proof] } });
}

export function buildMarketRequest(key: NodeKey, env: Envelope, r: Omit<MarketRequestBody, 'kind'>): LedgerEvent<MarketRequestBody> {
  return signEvent(key, { ...env, body: { kind: EventKind.MarketRequest, ...r } });
}

export function buildMarketClaim(key: NodeKey, env: Envelope, requestId: Uint8Array): LedgerEvent<MarketClaimBody> {
  return signEvent(key, { ...env, body: { kind: EventKind.MarketClaim, requestId } });
}

/** Hop `index` of `count` signs its commitment for a request (node side: the hop server, at the session's end). */
export function signHopCommitment(key: NodeKey, networkId: string, requestId: Uint8Array, index: number, count: number, inCommit: Uint8Array, outCommit: Uint8Array): HopCommitment {
  const signature = signDomain(key, HOP_COMMITMENT_DOMAIN, hopCommitmentPayload(networkId, requestId, index, count, inCommit, outCommit));
  return { key: key.publicKey, inCommit, outCommit, signature };
}

/** The requester signs its receipt: the tokens it received, the output commitment, and the route that served it. */
export function signReceipt(requester: NodeKey, networkId: string, requestId: Uint8Array, tokensUsed: number, outputCommitment: Uint8Array, hops: readonly HopCommitment[]): Uint8Array {
  return signDomain(requester, RECEIPT_DOMAIN, receiptPayload(networkId, requestId, tokensUsed, outputCommitment, hops));
}

/** The driver's completion, from the hops' signed commitments and the requester's receipt signature. */
export function buildMarketComplete(driver: NodeKey, env: Envelope, c: Omit<MarketCompleteBody, 'kind'>): LedgerEvent<MarketCompleteBody> {
  return signEvent(driver, { ...env, body: { kind: EventKind.MarketComplete, ...c } });
}

/**
 * Everything of a served request in one place (tests, tools): `hops[0]` is the driver and signs the event; each hop
 * signs a commitment chained from `commits` (hops.length + 1 hashes: the driver's input, then each hop's output;
 * default: distinct hashes derived from the request id), and the requester signs the receipt.
 */
export function buildServedCompletion(
  env: Envelope,
  c: { requestId: Uint8Array; tokensUsed: number; requester: NodeKey; hops: NodeKey[]; commits?: Uint8Array[] },
): LedgerEvent<MarketCompleteBody> {
  const commits = c.commits ?? Array.from({ length: c.hops.length + 1 }, (_, i) => new Uint8Array(createHash('sha256').update(c.requestId).update(new Uint8Array([i])).digest()));
  const hops = c.hops.map((k, i) => signHopCommitment(k, env.networkId, c.requestId, i, c.hops.length, commits[i]!, commits[i + 1]!));
  const out = commits[c.hops.length]!;
  const receiptSignature = signReceipt(c.requester, env.networkId, c.requestId, c.tokensUsed, out, hops);
  return buildMarketComplete(c.hops[0]!, env, { requestId: c.requestId, tokensUsed: c.tokensUsed, outputCommitment: out, hops, requesterKey: c.requester.publicKey, receiptSignature });
}
