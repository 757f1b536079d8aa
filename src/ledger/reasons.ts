/**
 * Reason codes: every rejected, void or dropped event carries one. Stable strings (logs, CLI output, tests).
 */
export const REASONS = {
  // admission: the event is dropped and never stored
  MALFORMED: 'event bytes do not decode to a well-formed event',
  TOO_LARGE: 'event larger than the size limit',
  WRONG_NETWORK: 'event belongs to another network',
  BAD_SIGNATURE: 'signature missing, high-S or not by the signer key',
  STALE: 'older than this path admits: 5 min for gossip and submissions, watched time for sync (admission only)',
  FUTURE: 'dated more than 60 s after our clock (admission only)',
  QUOTA: 'the ledger database is at its disk quota (admission only)',
  FINALIZED: 'dated before the latest signed checkpoint: finalized history admits nothing new (admission only)',
  // stateless field rules (also dropped). Those marked "fraud" make a proof slashable as evidence.
  HOLDER_RECORD_KEY_MISMATCH: 'fraud: embedded HolderRecord is not signed by the proof signer',
  HOLDER_RECORD_BAD_SIGNATURE: 'fraud: embedded HolderRecord signature does not verify',
  HOLDER_RECORD_WRONG_NETWORK: 'fraud: embedded HolderRecord belongs to another network',
  HOLDER_RECORD_NOT_VALID_AT_TIME: 'fraud: proof time outside the HolderRecord validity period',
  LAYERS_MISMATCH: 'fraud: layers claimed differ from the HolderRecord span',
  LAYERS_OUT_OF_RANGE: 'fraud: empty span or layers beyond the model',
  EPOCH_MISMATCH: 'fraud: epoch is not floor(timestamp / 60 s)',
  UPTIME_TOO_LONG: 'fraud: more uptime than one 60 s window',
  INFERENCE_RATE: 'fraud: more inference tokens per second of uptime than the cap',
  TRAINING_RATE: 'fraud: more training tokens per second of uptime than the cap',
  DATA_RATE: 'fraud: more data samples per second of uptime than the cap',
  TRAINING_HASH_UNCHANGED: 'fraud: training claimed but model hash before = after',
  TRAINING_LOSS_INVALID: 'fraud: training claimed without a positive loss',
  TRAINING_NO_COMMITMENT: 'fraud: training claimed without a gradient commitment',
  TRAINING_UPTIME_TOO_SHORT: 'fraud: training claimed with less than 10 s of uptime',
  AMOUNT_ZERO: 'amount must be positive',
  FEE_MISMATCH: 'fee must be exactly ceil(5 % of the amount)',
  SELF_TRANSFER: 'sender and recipient are the same account',
  STAKE_TOO_SMALL: 'stake below the minimum of 1 NEURO',
  LOCK_OUT_OF_RANGE: 'lock period must be 1..365 days',
  EVIDENCE_INVALID: 'slash evidence does not prove an offence',
  SELF_REPORT: 'a node cannot report itself',
  REQUEST_INVALID: 'market request fields out of range',
  COMPLETION_INVALID: 'market completion fields out of range (tokens, hop count, a hop twice, the requester as a hop)',
  COMPLETION_NOT_DRIVER: 'a completion is submitted by its first hop (the driver)',
  HOP_CHAIN_BROKEN: "a hop's output commitment differs from the next hop's input (or the last from the receipt's output)",
  HOP_BAD_SIGNATURE: 'a hop commitment is not signed by its hop',
  RECEIPT_BAD_SIGNATURE: "the receipt is not signed by the key it names",
  UPTIME_INVALID: 'uptime event: nonce is not the epoch, epoch not the window of its time, or an attestation that does not verify (a witness twice, the subject itself)',
  GENESIS_INVALID: 'a genesis event has nonce 0',
  CLAIM_RETIRED: 'market claims are retired: the requester-signed receipt names who is paid',
  TRAINING_RECEIPT_INVALID: 'training receipt: nonce is not the round, span out of range, members or contributions not in canonical order, tokens out of range, fewer co-signatures than the quorum, or a submitter that did not co-sign',
  TRAINING_RECEIPT_BAD_SIGNATURE: "training receipt: a co-signature does not verify under the member key it names (a changed record, or a non-member's signature)",
  // state rules: the event is stored, and rejected at its place in canonical order
  EQUIVOCATION: 'an earlier event has the same (signer, kind, nonce): this one is void, the signer is slashable',
  INSUFFICIENT_BALANCE: 'balance too low',
  INSUFFICIENT_STAKE: 'staked amount too low',
  STAKE_LOCKED: 'stake is still locked',
  UNBONDING_FULL: 'too many unstakes cooling down',
  RATE_LIMIT_WINDOW: 'a proof for this node and 60 s window was already accepted',
  ALREADY_SLASHED: 'this offence was already slashed',
  NOTHING_TO_SLASH: 'the offender has nothing left to slash',
  PRICE_ABOVE_MAX: 'market price is above the request maximum',
  REQUEST_NOT_PENDING: 'request unknown, settled or expired',
  NOT_REQUESTER: "the receipt's key is not the request's signer",
  TOKENS_ABOVE_MAX: 'completion uses more tokens than the request allows',
  NOT_GENESIS: "a genesis event not signed by the network's genesis key (or a network with none)",
  NOT_BONDED: 'witnessed rules: the subject has less locked stake than the reward bond',
  WITNESS_QUORUM: 'witnessed rules: fewer bonded witnesses than the uptime quorum',
  WITNESS_RULES_OFF: 'uptime events and training receipts pay only under witnessed reward rules',
  TRAINING_RECEIPT_QUORUM: 'training receipt: fewer (bonded) co-signers than the quorum max(2, floor(members / 2) + 1)',
  TRAINING_RECEIPT_DUPLICATE: 'training receipt: a co-signer already co-signed a receipt of this round',
  // issue 11 §2 validator re-execution (fraud.ts)
  HOP_FRAUD_QUORUM: 'hop fraud evidence: fewer bonded validators than the quorum',
} as const;

export type ReasonCode = keyof typeof REASONS;

/** Reasons for which a signed proof is proof of its signer's misbehaviour (slash evidence type INVALID_PROOF). */
export const FRAUD_REASONS: ReadonlySet<ReasonCode> = new Set(
  (Object.keys(REASONS) as ReasonCode[]).filter((k) => REASONS[k].startsWith('fraud:')),
);

/**
 * Reasons of the state rules (apply.ts): an event from the network that fails one at its place is not stored
 * (issue 11 attack 5), and a peer that served it is not at fault (its ledger may hold events ours lacks).
 */
export const STATE_REASONS: ReadonlySet<ReasonCode> = new Set<ReasonCode>([
  'INSUFFICIENT_BALANCE',
  'INSUFFICIENT_STAKE',
  'STAKE_LOCKED',
  'UNBONDING_FULL',
  'RATE_LIMIT_WINDOW',
  'ALREADY_SLASHED',
  'NOTHING_TO_SLASH',
  'PRICE_ABOVE_MAX',
  'REQUEST_NOT_PENDING',
  'NOT_REQUESTER',
  'TOKENS_ABOVE_MAX',
  'NOT_GENESIS',
  'NOT_BONDED',
  'WITNESS_QUORUM',
  'WITNESS_RULES_OFF',
  'TRAINING_RECEIPT_QUORUM',
  'TRAINING_RECEIPT_DUPLICATE',
  'HOP_FRAUD_QUORUM',
]);
