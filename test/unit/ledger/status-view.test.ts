/**
 * ledger/status-view.ts and ledger/reward-rules.ts (moved from node/ledger.ts, session 16): the status JSON of
 * `neuroshard ledger status` and the reward rules a node's options give.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { rewardRulesOf } from '../../../src/ledger/reward-rules.js';
import { ledgerStatusView } from '../../../src/ledger/status-view.js';
import type { LedgerStatus } from '../../../src/ledger/ledger.js';

const STATUS: LedgerStatus = {
  stateHash: 'ab'.repeat(32),
  replayPending: false,
  events: 7,
  applied: 5,
  rejected: 1,
  void: 1,
  minted: 250n * NEURO + NEURO / 4n,
  burned: 3n,
  staked: 100n * NEURO,
  escrowed: 0n,
  marketPricePerMillion: 1n,
  finalized: null,
};

describe('ledger status view', () => {
  it('gives the totals as decimal NEURO and null finality fields before any checkpoint', () => {
    const v = ledgerStatusView(STATUS);
    assert.deepEqual(v, {
      stateHash: 'ab'.repeat(32),
      replayPending: false,
      events: 7,
      minted: '250.25',
      burned: '0.000000000000000003',
      staked: '100',
      escrowed: '0',
      finalizedSeq: null,
      finalizedHeight: null,
      finalizedHash: null,
      finalizedStateHash: null,
    });
    assert.equal('finality' in v, false, 'no finality state unless a running node gives one');
  });

  it('names the latest checkpoint and, from a running node, the state of finality', () => {
    const finalized = { seq: 3, height: 1200, cutMs: 1_704_067_500_000, hash: 'cd'.repeat(32), stateHash: 'ef'.repeat(32), signers: 4 };
    const v = ledgerStatusView({ ...STATUS, replayPending: true, finalized }, { state: 'stalled' });
    assert.equal(v.replayPending, true);
    assert.equal(v.finalizedSeq, 3);
    assert.equal(v.finalizedHeight, 1200);
    assert.equal(v.finalizedHash, 'cd'.repeat(32));
    assert.equal(v.finalizedStateHash, 'ef'.repeat(32));
    assert.equal(v.finality, 'stalled');
  });
});

describe('reward rules from options', () => {
  const defaults = { witnessedRewards: true, checkpointPeriodMs: 300_000, checkpointSettleMs: 360_000 };
  const key = new Uint8Array(33).fill(2);

  it('takes the defaults for unset options: witnessed, minted at checkpoints', () => {
    assert.deepEqual(rewardRulesOf({}, defaults, key), { witnessed: true, genesisKey: key, mintAt: { periodMs: 300_000, settleMs: 360_000 } });
  });

  it('takes the options given; self-claimed rules mint at once (no mintAt)', () => {
    assert.deepEqual(rewardRulesOf({ checkpointPeriodMs: 60_000, checkpointSettleMs: 90_000 }, defaults, undefined), { witnessed: true, genesisKey: undefined, mintAt: { periodMs: 60_000, settleMs: 90_000 } });
    assert.deepEqual(rewardRulesOf({ witnessedRewards: false }, defaults, key), { witnessed: false, genesisKey: key });
  });
});
