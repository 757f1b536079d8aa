/**
 * Rewards only for witnessed work (issue 11 §2; docs/ECONOMICS.md "Rewards only for witnessed work"): the rules that
 * decide whether a key earns, as plain data and pure functions. apply.ts calls them; nothing here reads a clock,
 * signs for the node or touches the network.
 *
 * - **Reward rules** are a network-wide setting (every node of a network must use the same, or their state hashes
 *   differ). `WITNESSED_REWARDS` is what nodes run (src/node/options.ts); `SELF_CLAIMED_REWARDS` is the pre-§2 rule
 *   set, kept for the ledger's own unit tests of the proof formula (the default of a bare `Ledger`).
 * - **Bond**: under witnessed rules nothing is minted to an account whose locked stake is below `MIN_REWARD_BOND`.
 * - **Uptime** is minted only by an Uptime event (kind 10) carrying liveness attestations from at least
 *   `UPTIME_QUORUM` distinct bonded witnesses other than the subject, each a signature over
 *   `u8 1 ‖ str networkId ‖ subject key ‖ u64 epoch ‖ 32-byte challenge nonce` under `LIVENESS_DOMAIN`.
 * - **Genesis** (kind 9): the network's genesis key (a network-wide setting beside the rules) mints the initial
 *   allocation once (nonce 0: a second genesis event reuses the replay key and is void).
 */
import { accountIdFromPublicKey, signDomain, verifyDomain, type NodeKey } from '../identity/index.js';
import { bytesEqual, toHex } from '../util/bytes.js';
import { Writer } from './codec.js';
import { MAX_ATTESTATIONS, MAX_NETWORK_ID, NONCE_BYTES } from './events.js';

export { MAX_ATTESTATIONS, NONCE_BYTES };

export const LIVENESS_DOMAIN = 'neuroshard/liveness/v1';

export interface RewardRules {
  /** True: rewards need a bond and witnesses (issue 11 §2). False: the pre-§2 self-claimed proof rewards. */
  witnessed: boolean;
  /** The network's genesis key (33-byte compressed): the only key whose Genesis event applies. */
  genesisKey?: Uint8Array;
  /**
   * Issue 11 §3, rewards are minted at checkpoints (apply.ts rewardReleaseAt): a reward earned at event time t is
   * held unminted until ledger time cut(t) + settleMs, where cut(t) is the first multiple of periodMs after t (the
   * cut of the first checkpoint covering it) and settleMs the time after a cut when its committee signs it. Both are
   * the network's finality settings. Absent: rewards are minted when their event applies (pre-§3; bare Ledgers).
   */
  mintAt?: { periodMs: number; settleMs: number };
}

/**
 * The reward rules a node runs (every node of a network must run the same): witnessed or self-claimed, the genesis
 * key, and under witnessed rules minting at checkpoints (§3) from the finality period and settle time.
 */
export function networkRewardRules(o: { witnessed: boolean; checkpointPeriodMs: number; checkpointSettleMs: number }, genesisKey: Uint8Array | undefined): RewardRules {
  const r: RewardRules = { witnessed: o.witnessed, genesisKey };
  if (o.witnessed) r.mintAt = { periodMs: o.checkpointPeriodMs, settleMs: o.checkpointSettleMs };
  return r;
}

export const SELF_CLAIMED_REWARDS: Readonly<RewardRules> = Object.freeze({ witnessed: false });
export const WITNESSED_REWARDS: Readonly<RewardRules> = Object.freeze({ witnessed: true });

/** One witness's signed statement that `subject` answered its liveness challenge `nonce` in window `epoch`. */
export interface LivenessAttestation {
  /** The witness's compressed public key (33 bytes). */
  witness: Uint8Array;
  /** The witness's challenge nonce (32 random bytes). */
  nonce: Uint8Array;
  signature: Uint8Array;
}

/** What a witness signs: u8 1 ‖ str networkId ‖ subject key (33) ‖ u64 epoch ‖ nonce (32). */
export function attestationPayload(networkId: string, subject: Uint8Array, epoch: number, nonce: Uint8Array): Uint8Array {
  return new Writer().u8(1).str(networkId, MAX_NETWORK_ID).fixed(subject, 33).u64(epoch).fixed(nonce, NONCE_BYTES).finish();
}

export function signAttestation(witness: NodeKey, networkId: string, subject: Uint8Array, epoch: number, nonce: Uint8Array): LivenessAttestation {
  return { witness: witness.publicKey, nonce, signature: signDomain(witness, LIVENESS_DOMAIN, attestationPayload(networkId, subject, epoch, nonce)) };
}

export function verifyAttestation(networkId: string, subject: Uint8Array, epoch: number, a: LivenessAttestation): boolean {
  if (a.witness[0] !== 2 && a.witness[0] !== 3) return false;
  return verifyDomain(a.witness, LIVENESS_DOMAIN, attestationPayload(networkId, subject, epoch, a.nonce), a.signature);
}

/**
 * The stateless check of an Uptime event's attestations: 1..MAX_ATTESTATIONS, each signature valid for (network,
 * subject, epoch), witnesses distinct and none the subject. Returns false on any failure (the event is dropped).
 */
export function attestationsValid(networkId: string, subject: Uint8Array, epoch: number, atts: readonly LivenessAttestation[]): boolean {
  if (atts.length < 1 || atts.length > MAX_ATTESTATIONS) return false;
  const seen = new Set<string>();
  for (const a of atts) {
    if (bytesEqual(a.witness, subject)) return false;
    const k = toHex(accountIdFromPublicKey(a.witness));
    if (seen.has(k)) return false;
    seen.add(k);
    if (!verifyAttestation(networkId, subject, epoch, a)) return false;
  }
  return true;
}

/**
 * The number of attestations whose witness account is bonded (`bondOf(account hex)` ≥ `bond`), counted once per
 * account: what the uptime quorum counts. A million fresh keys count zero.
 */
export function bondedWitnesses(atts: readonly LivenessAttestation[], bondOf: (accountHex: string) => bigint, bond: bigint): number {
  const seen = new Set<string>();
  for (const a of atts) {
    const k = toHex(accountIdFromPublicKey(a.witness));
    if (!seen.has(k) && bondOf(k) >= bond) seen.add(k);
  }
  return seen.size;
}
