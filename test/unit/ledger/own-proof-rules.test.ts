/**
 * The rules of a node's own proofs and wallet submits that moved from node/ledger.ts into src/ledger/ as pure
 * functions (work.ts, witness.ts, reconcile.ts, admission.ts): when a proof is due and what uptime it claims, when
 * the embedded HolderRecord is signed again, the record's addresses and u32 fields, the reward rules a node runs,
 * the last proof epoch read from history, and the submit staleness rule.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_LIVE_AGE_MS, submitTooOld } from '../../../src/ledger/admission.js';
import { PROOF_WINDOW_MS } from '../../../src/ledger/economics.js';
import { lastProofEpochIn } from '../../../src/ledger/reconcile.js';
import { networkRewardRules } from '../../../src/ledger/witness.js';
import { clampU32, holderRecordAddrs, holderRecordKey, holderRecordReusable, MIN_PROOF_UPTIME_MS, proofUptime } from '../../../src/ledger/work.js';

describe('own proof rules (ledger/work.ts and friends)', () => {
  it('proofUptime: none without a valid span or under the minimum, at most one window', () => {
    const span = { start: 0, end: 8 };
    assert.equal(proofUptime(10_000, 0, undefined, 8), undefined);
    assert.equal(proofUptime(10_000, 0, { start: 0, end: 9 }, 8), undefined, 'past the model');
    assert.equal(proofUptime(10_000, 0, { start: 4, end: 4 }, 8), undefined, 'empty');
    assert.equal(proofUptime(10_000, 0, { start: -1, end: 4 }, 8), undefined);
    assert.equal(proofUptime(10_000, 0, { start: 0.5, end: 4 }, 8), undefined);
    assert.equal(proofUptime(MIN_PROOF_UPTIME_MS - 1, 0, span, 8), undefined);
    assert.equal(proofUptime(MIN_PROOF_UPTIME_MS, 0, span, 8), MIN_PROOF_UPTIME_MS);
    assert.equal(proofUptime(5 * PROOF_WINDOW_MS, 0, span, 8), PROOF_WINDOW_MS);
  });

  it('the embedded HolderRecord is reused while its key holds and half its lifetime is left', () => {
    const k = holderRecordKey({ start: 0, end: 8 }, ['/ip4/10.0.0.2/tcp/1', '/ip4/10.0.0.1/tcp/1'], 200);
    assert.equal(k, holderRecordKey({ start: 0, end: 8 }, ['/ip4/10.0.0.1/tcp/1', '/ip4/10.0.0.2/tcp/1'], 200), 'addresses as a set');
    assert.notEqual(k, holderRecordKey({ start: 0, end: 16 }, ['/ip4/10.0.0.1/tcp/1', '/ip4/10.0.0.2/tcp/1'], 200));
    assert.notEqual(k, holderRecordKey({ start: 0, end: 8 }, ['/ip4/10.0.0.1/tcp/1', '/ip4/10.0.0.2/tcp/1'], 201));
    const prev = { key: k, timestampMs: 1000, expiresMs: 1000 + 600_000 };
    assert.equal(holderRecordReusable(undefined, k, 2000, 600_000), false);
    assert.equal(holderRecordReusable(prev, k, 2000, 600_000), true);
    assert.equal(holderRecordReusable(prev, k, 1000 + 300_000, 600_000), true, 'exactly half its life left');
    assert.equal(holderRecordReusable(prev, k, 1001 + 300_000, 600_000), false);
    assert.equal(holderRecordReusable(prev, k, 999, 600_000), false, 'a clock before the record');
    assert.equal(holderRecordReusable(prev, `${k}x`, 2000, 600_000), false);
  });

  it('record addresses lose our /p2p suffix, repeats and over-long entries, at most 16; u32 fields clamp', () => {
    const me = '12D3KooWExample';
    const long = `/dns4/${'a'.repeat(260)}/tcp/1`;
    const many = Array.from({ length: 20 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`);
    assert.deepEqual(holderRecordAddrs([`/ip4/10.0.0.1/tcp/1/p2p/${me}`, '/ip4/10.0.0.1/tcp/1', long, '/ip4/10.0.0.9/tcp/2/p2p/other'], me), ['/ip4/10.0.0.1/tcp/1', '/ip4/10.0.0.9/tcp/2/p2p/other']);
    assert.equal(holderRecordAddrs(many, me).length, 16);
    assert.equal(clampU32(Number.NaN), 0);
    assert.equal(clampU32(-3), 0);
    assert.equal(clampU32(12.9), 12);
    assert.equal(clampU32(2 ** 40), 0xffff_ffff);
  });

  it('networkRewardRules: witnessed rules mint at checkpoints, self-claimed ones do not', () => {
    const g = new Uint8Array(33).fill(2);
    assert.deepEqual(networkRewardRules({ witnessed: true, checkpointPeriodMs: 300_000, checkpointSettleMs: 360_000 }, g), { witnessed: true, genesisKey: g, mintAt: { periodMs: 300_000, settleMs: 360_000 } });
    assert.deepEqual(networkRewardRules({ witnessed: false, checkpointPeriodMs: 300_000, checkpointSettleMs: 360_000 }, undefined), { witnessed: false, genesisKey: undefined });
  });

  it('lastProofEpochIn takes the newest proof the address signed; submitTooOld is the live window', () => {
    const h = [
      { kind: 'transfer', from: 'neuro1me', epoch: 99 },
      { kind: 'proof', from: 'neuro1other', epoch: 50 },
      { kind: 'proof', from: 'neuro1me', epoch: 41 },
      { kind: 'proof', from: 'neuro1me', epoch: 40 },
    ];
    assert.equal(lastProofEpochIn(h, 'neuro1me'), 41);
    assert.equal(lastProofEpochIn(h, 'neuro1nobody'), -1);
    assert.equal(lastProofEpochIn([{ kind: 'proof', from: 'neuro1me', epoch: '7' }], 'neuro1me'), -1);
    assert.equal(submitTooOld(1_000_000 - MAX_LIVE_AGE_MS, 1_000_000), false);
    assert.equal(submitTooOld(1_000_000 - MAX_LIVE_AGE_MS - 1, 1_000_000), true);
  });
});
