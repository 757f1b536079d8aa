/**
 * The network's reward rules from a node's options (issue 11 §2, §3): each setting the operator left unset takes its
 * default. Pure: moved from node/ledger.ts (session 16) unchanged; node/ supplies its option defaults
 * (node/options.ts LEDGER_DEFAULTS and the checkpoint period).
 */
import { networkRewardRules, type RewardRules } from './witness.js';

/** The options that decide the reward rules (undefined: the default). */
export interface RewardRuleOptions {
  /** Rewards only for witnessed work, minted at checkpoints. */
  witnessedRewards?: boolean;
  /** Finality: the checkpoint period (the cuts are its multiples). */
  checkpointPeriodMs?: number;
  /** Finality: how old a cut is when its committee signs it. */
  checkpointSettleMs?: number;
}

/** The reward rules a node with options `o` runs (networkRewardRules, each unset option at its default). */
export function rewardRulesOf(o: RewardRuleOptions, defaults: Required<RewardRuleOptions>, genesisKey: Uint8Array | undefined): RewardRules {
  return networkRewardRules(
    {
      witnessed: o.witnessedRewards ?? defaults.witnessedRewards,
      checkpointPeriodMs: o.checkpointPeriodMs ?? defaults.checkpointPeriodMs,
      checkpointSettleMs: o.checkpointSettleMs ?? defaults.checkpointSettleMs,
    },
    genesisKey,
  );
}
