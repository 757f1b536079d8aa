/** Fixtures of the training-receipt tests (unit and attack): a witnessed-rules ledger with funded, bonded members. */
import type { NodeKey } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildGenesis, buildStake, buildTrainingReceipt, buildTransfer } from '../../../src/ledger/build.js';
import { MIN_REWARD_BOND } from '../../../src/ledger/economics.js';
import type { Ledger } from '../../../src/ledger/ledger.js';
import { cosignRecord, sortMembers, type RecordCosignature, type TrainingRecord } from '../../../src/ledger/training-receipt.js';
import type { RewardRules } from '../../../src/ledger/witness.js';
import { sha256 } from '../../../src/util/bytes.js';
import { acct, env, NET, T0, testKey } from './helpers.js';

export const GENESIS = testKey(9100);
export const RULES: RewardRules = { witnessed: true, genesisKey: GENESIS.publicKey };

/** Funds each key with 1,000 NEURO from the genesis allocation; stakes the bond for those in `bond`. Returns the next time. */
export function fundAndBond(ledger: Ledger, keys: readonly NodeKey[], bond: readonly NodeKey[], t0 = T0 + 1000): number {
  let t = t0;
  const ok = (b: Uint8Array): void => {
    const r = ledger.ingest(b);
    if (r.status !== 'applied') throw new Error(`setup event ${r.status} ${r.reason ?? ''}`);
  };
  ok(buildGenesis(GENESIS, { networkId: NET, timestampMs: t }).bytes);
  keys.forEach((k, i) => ok(buildTransfer(GENESIS, env(i + 1, (t += 1000)), acct(k), 1000n * NEURO).bytes));
  for (const k of bond) ok(buildStake(k, env(1, (t += 1000)), MIN_REWARD_BOND, 30).bytes);
  return t + 1000;
}

/** A record of `round` over blocks [start, end) whose members are `keys`, each contributing `tokens` (accepted unless listed in `rejected`). */
export function recordOf(keys: readonly NodeKey[], round: number, o: { layers?: { start: number; end: number }; tokens?: bigint; rejected?: readonly NodeKey[]; contributors?: readonly NodeKey[] } = {}): TrainingRecord {
  const members = sortMembers(keys.map((k) => k.publicKey));
  const contributors = new Set((o.contributors ?? keys).map((k) => Buffer.from(k.publicKey).toString('hex')));
  const rejected = new Set((o.rejected ?? []).map((k) => Buffer.from(k.publicKey).toString('hex')));
  const contributions = members
    .map((m, member) => ({ m: Buffer.from(m).toString('hex'), member }))
    .filter((x) => contributors.has(x.m))
    .map((x) => ({ member: x.member, tokens: o.tokens ?? 8192n, accepted: !rejected.has(x.m) }));
  return { round, layers: o.layers ?? { start: 0, end: 4 }, weightsHash: sha256(`weights ${round}`), members, contributions };
}

export function cosigsOf(record: TrainingRecord, signers: readonly NodeKey[], networkId = NET): RecordCosignature[] {
  return signers.map((k) => cosignRecord(k, networkId, record)!).sort((a, b) => a.member - b.member);
}

/** The receipt event bytes: `submitter` submits `record` co-signed by `signers`. */
export function receipt(submitter: NodeKey, record: TrainingRecord, signers: readonly NodeKey[], timestampMs: number): Uint8Array {
  return buildTrainingReceipt(submitter, { networkId: NET, timestampMs }, record, cosigsOf(record, signers)).bytes;
}
