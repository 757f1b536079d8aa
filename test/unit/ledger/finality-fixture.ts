/** Fixtures of the finality tests (issue 11 §3): a history in which three keys earn and stake, and signing helpers. */
import type { NodeKey } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildStake } from '../../../src/ledger/build.js';
import { signCheckpoint, type CheckpointBody, type SignedCheckpoint } from '../../../src/ledger/checkpoint.js';
import { env, T0, uptimeProof } from './helpers.js';

/** Window length of the proofs. */
export const W = 60_000;

/**
 * Three windows of proofs by each key (0.6 NEURO of data work each, so each earns more than 1 NEURO), then each
 * key stakes `stake[i]` (default 1 NEURO) in the fourth window. Returns the events in time order.
 */
export function stakedHistory(keys: NodeKey[], opts: { t0?: number; stake?: bigint[] } = {}): Uint8Array[] {
  const t0 = opts.t0 ?? T0;
  const out: Uint8Array[] = [];
  for (let w = 0; w < 3; w++) keys.forEach((k, i) => out.push(uptimeProof(k, t0 + w * W + 10 + i, { dataSamples: 60_000n })));
  keys.forEach((k, i) => out.push(buildStake(k, env(0, t0 + 3 * W + 10 + i), opts.stake?.[i] ?? NEURO, 1).bytes));
  return out;
}

export function signedBy(body: CheckpointBody, keys: NodeKey[]): SignedCheckpoint {
  return { body, sigs: keys.map((k) => signCheckpoint(k, body)) };
}
