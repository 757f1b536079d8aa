/**
 * Builders of signed events, for the node (proofs every window), the wallet CLI (transfers, stakes) and tests.
 * They fill derived fields (the transfer fee, the proof epoch) so a caller cannot get them wrong.
 */
import type { NodeKey } from '../identity/index.js';
import { PROOF_WINDOW_MS, transferFee } from './economics.js';
import {
  EventKind,
  EvidenceType,
  signEvent,
  ZERO32,
  ZERO_ACCOUNT,
  type LedgerEvent,
  type MarketClaimBody,
  type MarketCompleteBody,
  type MarketRequestBody,
  type ProofBody,
  type SlashBody,
  type StakeBody,
  type TransferBody,
  type UnstakeBody,
} from './events.js';
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

export function buildMarketComplete(
  key: NodeKey,
  env: Envelope,
  c: { requestId: Uint8Array; tokensUsed: number; validator?: Uint8Array; workers?: Uint8Array[] },
): LedgerEvent<MarketCompleteBody> {
  return signEvent(key, {
    ...env,
    body: { kind: EventKind.MarketComplete, requestId: c.requestId, tokensUsed: c.tokensUsed, validator: c.validator ?? ZERO_ACCOUNT, workers: c.workers ?? [] },
  });
}
