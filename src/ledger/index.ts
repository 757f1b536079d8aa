/**
 * The NEURO ledger: signed events (Proof of Neural Work, transfers, stakes, slashes, the inference market), their
 * verification, the SQLite store and the deterministic balance sheet. Rules and numbers: docs/ECONOMICS.md; wire
 * formats: docs/PROTOCOL.md "## Ledger events". Imports only identity/, util/ and params/; the network and the
 * HolderRecord check arrive through interfaces.ts.
 */
export { DECIMALS, MAX_AMOUNT, NEURO, WAD, formatAmount, parseAmount } from './amount.js';
export * from './economics.js';
export {
  EVENT_DOMAIN,
  EventKind,
  EvidenceType,
  KIND_NAMES,
  MAX_EVENT_BYTES,
  MAX_SLASH_BYTES,
  decodeEvent,
  describeEvent,
  encodePayload,
  orderKey,
  replayKey,
  signEvent,
  HOP_COMMITMENT_DOMAIN,
  MAX_HOPS,
  RECEIPT_DOMAIN,
  hopCommitmentPayload,
  receiptPayload,
  type EventBody,
  type HopCommitment,
  type LedgerEvent,
  type MarketClaimBody,
  type MarketCompleteBody,
  type MarketRequestBody,
  type ProofBody,
  type SlashBody,
  type StakeBody,
  type TransferBody,
  type UnsignedEvent,
  type UnstakeBody,
} from './events.js';
export * from './build.js';
export { HOLDER_RECORD_DOMAIN, holderRecordPayload, localHolderRecordVerifier, signEmbeddedHolderRecord, type EmbeddedHolderRecord } from './holder.js';
export { LEDGER_SYNC_LIMITS, type HolderRecordVerifier, type LedgerNetwork, type LedgerSyncHandler } from './interfaces.js';
export { Ledger, cutKey, MAX_LIVE_AGE_MS, MAX_LIVE_SKEW_MS, ledgerPath, type AccountView, type HistoryEntry, type IngestOptions, type IngestResult, type LedgerOptions, type LedgerStatus, type LedgerWorkStats, type FinalizedView, type FinalizeOutcome } from './ledger.js';
export { LedgerService, startNodeLedger, type LedgerServiceEvents, type LedgerServiceOptions, type NodeLedgerOptions } from './service.js';
export { MemoryLedgerHub, MemoryLedgerNetwork } from './memory-network.js';
export { OUTBOX_DIR, listOutbox, outboxMaxNonce, outboxPath, readOutcome, withOutboxLock, writeOutbox, type OutboxOutcome } from './outbox.js';
export { FRAUD_REASONS, REASONS, STATE_REASONS, type ReasonCode } from './reasons.js';
export { ACTIVATION_DOMAIN, COMMIT_TOP_K, CROSS_ENGINE_TOLERANCE, EXACT_TOLERANCE, extendCommitment, extendCommitmentTopK, extendTokenCommitment, initialCommitment, openingCommitment, RunningCommitment, topKRows, verifyStep, type CommitTolerance, type StepCheck, type TopKStep } from './commitment.js';
export { verifyEvent, verifyEventBytes, type Verdict, type VerifyConfig } from './verify.js';
export { benchLedgerApply, benchProofVerify } from './bench.js';
export { LEDGER_DB_FILE, SCHEMA_VERSION } from './store.js';
export { DEFAULT_SYNC_HORIZON_MS, admissionVerdict, markWatched, submitTooOld, type AdmissionContext, type Ingress, type WatchInterval } from './admission.js';
export {
  MAX_RECONCILE_ATTEMPTS,
  NOT_GARBAGE,
  afterTailSync,
  aloneFounder,
  caughtUpWith,
  garbageReasons,
  lastProofEpochIn,
  mergeReconcileJob,
  proofGate,
  proofNonce,
  provenThrough,
  raiseReported,
  reconcileAction,
  reconcileRetryMs,
  servedEvents,
  tailSyncStart,
  type ReconcileJob,
  type ReconcileMode,
  type StatusSummary,
} from './reconcile.js';
export { ReconcileQueue, type ReconcileQueueOptions, type RetryScheduler } from './reconcile-queue.js';
export * from './checkpoint.js';
export { HolderRecordCache, ProofSequence, type HolderRecordInput, type HolderRecordSigner, type ProofOutcome, type ProofPlan, type ProofSequenceOptions } from './prover.js';
export { ProofLoop, PROOF_GATE_PEERS, type ProofLoopOptions } from './proof-loop.js';
export { Reconciler, DEFAULT_TAIL_SYNC_MS, TAIL_SYNC_MAX_PAGES, type ReconcilerOptions, type ReconcileStats } from './reconciler.js';
export { ledgerStatusView, type LedgerStatusJson } from './status-view.js';
export { rewardRulesOf, type RewardRuleOptions } from './reward-rules.js';
export { Finality, VoteBox, type CheckpointVote, type FinalityNetwork, type FinalityOptions, type FinalityState, type FinalityStatus } from './finality.js';
export {
  MIN_PROOF_UPTIME_MS,
  WorkTally,
  clampU32,
  defaultProofOffset,
  holderRecordAddrs,
  holderRecordKey,
  holderRecordReusable,
  proofUptime,
  deriveCommitment,
  dueEpoch,
  proofClaim,
  workSnapshot,
  type ClaimInput,
  type ProofClaim,
  type TrainingFigures,
  type WorkCapacity,
  type WorkCounters,
  type WorkSnapshot,
  type WorkSpan,
} from './work.js';
export {
  MAX_RECEIPT_MEMBERS,
  MAX_RECEIPT_TOKENS,
  TRAINING_RECORD_DOMAIN,
  cosignRecord,
  decodeTrainingRecordPayload,
  receiptQuorum,
  sortMembers,
  trainingRecordPayload,
  verifyCosignature,
  type ReceiptContribution,
  type RecordCosignature,
  type TrainingRecord,
} from './training-receipt.js';
