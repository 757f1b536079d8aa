/**
 * Issue 11 §2: a fresh key alone earns nothing. Before, a proof of work and the HolderRecord inside it were signed
 * by the same key, so any fresh key minted up to the caps with no work and no witness (reproduced below under the
 * pre-§2 rules, SELF_CLAIMED_REWARDS). A node runs the witnessed rules by default (node/options.ts
 * LEDGER_DEFAULTS.witnessedRewards; the rules below are the ones `rewardRules` gives a node with DEFAULT options,
 * docs/ECONOMICS.md): proofs mint nothing for uptime or data and nothing at all without a bond; uptime pays only
 * with attestations of a quorum of bonded witnesses, so fresh keys witnessing each other (a Sybil ring) count zero;
 * a genesis allocation only from the network's genesis key; and what a bonded key earns is minted only at the
 * checkpoint covering it (§3). Success for the attacker = any NEURO minted to a key it controls.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate, type NodeKey } from '../../src/identity/index.js';
import { NEURO } from '../../src/ledger/amount.js';
import { buildGenesis, buildProof, buildStake, buildTransfer, buildUptime } from '../../src/ledger/build.js';
import { decodeEvent } from '../../src/ledger/events.js';
import { GENESIS_ALLOCATION, MIN_REWARD_BOND, SLASH_AMOUNT, UPTIME_REWARD_PER_MINUTE } from '../../src/ledger/economics.js';
import { rewardReleaseAt } from '../../src/ledger/apply.js';
import { signAttestation, SELF_CLAIMED_REWARDS, type RewardRules } from '../../src/ledger/witness.js';
import { LEDGER_DEFAULTS } from '../../src/node/options.js';
import { rewardRules } from '../../src/node/ledger.js';
import { tally } from './tally.js';
import { acct, env, holderRecord, LAYERS, NET, proofRun, T0, tempLedger, testKey } from './helpers.js';

const G = testKey(7000); // the network's genesis key
/** The rules of a node with default options (no reward option given), with this network's genesis key. */
const NODE_RULES: RewardRules = rewardRules({}, G.publicKey);

function freshKeys(n: number): NodeKey[] {
  return Array.from({ length: n }, () => keyFromPrivate(randomBytes(32)));
}

/** A fresh key's best self-claimed proofs: full uptime, data and training, one per window for `windows` windows. */
function selfClaimed(key: NodeKey, from: number, windows: number): Uint8Array[] {
  const out = proofRun(key, from, windows);
  // and training claims (a changed model hash, a loss, 20,000 tokens/s): what paid the most per layer held
  const rec = holderRecord(key, { start: 0, end: LAYERS }, from);
  for (let i = 0; i < windows; i++) {
    const ts = from + (windows + i) * 60_000;
    if (ts >= rec.expiresMs) break;
    out.push(
      buildProof(key, env(10_000 + i, ts), {
        uptimeMs: 60_000,
        trainingTokens: 1_200_000n,
        modelHashBefore: new Uint8Array(32).fill(1),
        modelHashAfter: new Uint8Array(32).fill(2),
        gradientCommitment: new Uint8Array(32).fill(3),
        lossMicro: 2_000_000n,
        gradNormMicro: 1_000_000n,
        holderRecord: rec,
      }).bytes,
    );
  }
  return out;
}

/** Events sorted by time, so that ingesting them never re-applies history (the cost under test is not replays). */
function inTimeOrder(list: Uint8Array[]): Uint8Array[] {
  return list.map((b) => ({ b, t: decodeEvent(b).timestampMs })).sort((x, y) => x.t - y.t).map((x) => x.b);
}

describe('issue 11 §2: a fresh key alone earns nothing', () => {
  it('a node runs the witnessed rules, minted at checkpoints, by default', () => {
    assert.equal(LEDGER_DEFAULTS.witnessedRewards, true);
    assert.equal(NODE_RULES.witnessed, true);
    assert.deepEqual(NODE_RULES.mintAt, { periodMs: 5 * 60_000, settleMs: LEDGER_DEFAULTS.checkpointSettleMs });
  });

  it('reproduces the hole under the pre-§2 rules: fresh keys mint from their own word', () => {
    const { ledger, done } = tempLedger({ rewards: SELF_CLAIMED_REWARDS });
    try {
      const keys = freshKeys(3);
      for (const b of inTimeOrder(keys.flatMap((k) => selfClaimed(k, T0, 5)))) ledger.ingest(b);
      for (const k of keys) assert.ok(ledger.account(acct(k)).balance > 0n, 'the self-claimed rules paid a fresh key');
      assert.ok(ledger.status().minted > 0n);
    } finally {
      done();
    }
  });

  it('under the node rules: fresh keys\' proofs, Sybil witness rings and forged geneses mint nothing', () => {
    const { ledger, done } = tempLedger({ rewards: NODE_RULES });
    try {
      const minted = (): bigint => ledger.status().minted;
      // 1. proofs: 20 fresh keys × 20 proofs of uptime, data and training
      const keys = freshKeys(20);
      let sent = 0;
      let won = 0;
      for (const b of inTimeOrder(keys.flatMap((k) => selfClaimed(k, T0, 10)))) {
        sent++;
        const before = minted();
        const r = ledger.ingest(b);
        if (r.status === 'applied' && minted() > before) won++;
      }
      tally('fresh-key proofs', sent, won);
      assert.equal(won, 0);
      assert.equal(minted(), 0n);
      for (const k of keys) assert.equal(ledger.account(acct(k)).balance, 0n);

      // 2. a Sybil ring: every fresh key witnesses 8 others in every window (all signatures valid), and submits
      let ring = 0;
      let ringWon = 0;
      for (let w = 0; w < 5; w++) {
        const ts = T0 + 100 * 60_000 + w * 60_000;
        const epoch = Math.floor(ts / 60_000);
        for (let i = 0; i < keys.length; i++) {
          const subject = keys[i]!;
          const atts = Array.from({ length: 8 }, (_, j) => signAttestation(keys[(i + 1 + j) % keys.length]!, NET, subject.publicKey, epoch, randomBytes(32)));
          ring++;
          const r = ledger.ingest(buildUptime(subject, { networkId: NET, timestampMs: ts + 1000 }, atts).bytes);
          if (r.status === 'applied') ringWon++;
          else assert.equal(r.reason, 'NOT_BONDED');
        }
      }
      tally('sybil witness ring', ring, ringWon);
      assert.equal(ringWon, 0);

      // 3. forged geneses: fresh keys sign genesis events
      let gen = 0;
      let genWon = 0;
      for (const [i, k] of keys.entries()) {
        gen++;
        const r = ledger.ingest(buildGenesis(k, { networkId: NET, timestampMs: T0 + 200 * 60_000 + i }).bytes);
        if (r.status === 'applied') genWon++;
        else assert.equal(r.reason, 'NOT_GENESIS');
      }
      tally('forged genesis', gen, genWon);
      assert.equal(genWon, 0);
      assert.equal(minted(), 0n, 'nothing minted by any of it');
    } finally {
      done();
    }
  });

  it('a bonded subject needs bonded witnesses: fresh witnesses, itself, replayed or stale attestations count for nothing; two bonded witnesses pay', () => {
    const { ledger, done } = tempLedger({ rewards: NODE_RULES, checkInvariant: true });
    try {
      const [S, W1, W2] = [testKey(7001), testKey(7002), testKey(7003)];
      let t = T0 + 1000;
      const ok = (b: Uint8Array): void => assert.equal(ledger.ingest(b).status, 'applied');
      ok(buildGenesis(G, { networkId: NET, timestampMs: t }).bytes);
      assert.equal(ledger.status().minted, GENESIS_ALLOCATION);
      // a second genesis of the genesis key (nonce 0 again) is void: the allocation is minted once
      assert.equal(ledger.ingest(buildGenesis(G, { networkId: NET, timestampMs: t + 1 }).bytes).status, 'void');
      for (const [i, k] of [S, W1, W2].entries()) ok(buildTransfer(G, env(i + 1, (t += 1000)), acct(k), 1000n * NEURO).bytes);
      ok(buildStake(S, env(1, (t += 1000)), MIN_REWARD_BOND, 30).bytes);

      const ts = T0 + 10 * 60_000;
      const epoch = Math.floor(ts / 60_000);
      const fresh = freshKeys(8);
      let sent = 0;
      let won = 0;
      const attempt = (b: Uint8Array, want: string): void => {
        sent++;
        const r = ledger.ingest(b);
        if (r.status === 'applied') won++;
        assert.equal(r.reason, want);
      };
      // 8 fresh witnesses: a bonded subject, no bonded witness
      attempt(buildUptime(S, { networkId: NET, timestampMs: ts }, fresh.map((w) => signAttestation(w, NET, S.publicKey, epoch, randomBytes(32)))).bytes, 'WITNESS_QUORUM');
      // W1 and W2 hold NEURO but have not staked: not bonded witnesses
      const two = (e: number): ReturnType<typeof signAttestation>[] => [W1, W2].map((w) => signAttestation(w, NET, S.publicKey, e, randomBytes(32)));
      attempt(buildUptime(S, { networkId: NET, timestampMs: ts + 60_000 }, two(epoch + 1)).bytes, 'WITNESS_QUORUM');
      // the subject witnessing itself, one witness twice, an attestation of another epoch: dropped, never stored
      attempt(buildUptime(S, { networkId: NET, timestampMs: ts + 120_000 }, [signAttestation(S, NET, S.publicKey, epoch + 2, randomBytes(32)), ...two(epoch + 2)]).bytes, 'UPTIME_INVALID');
      const a1 = signAttestation(W1, NET, S.publicKey, epoch + 2, randomBytes(32));
      attempt(buildUptime(S, { networkId: NET, timestampMs: ts + 120_000 }, [a1, a1]).bytes, 'UPTIME_INVALID');
      attempt(buildUptime(S, { networkId: NET, timestampMs: ts + 120_000 }, two(epoch)).bytes, 'UPTIME_INVALID');
      // an uptime event dated long after its window (backdating a window with old attestations)
      attempt(buildUptime(S, { networkId: NET, timestampMs: ts + 600_000 }, two(epoch), epoch).bytes, 'UPTIME_INVALID');
      tally('unwitnessed uptime', sent, won);
      assert.equal(won, 0);

      // the witnesses bond; now the same subject earns one minute of uptime, once per window
      ok(buildStake(W1, env(1, ts + 125_000), MIN_REWARD_BOND, 30).bytes);
      ok(buildStake(W2, env(1, ts + 126_000), MIN_REWARD_BOND, 30).bytes);
      const before = ledger.account(acct(S)).balance;
      const paid = buildUptime(S, { networkId: NET, timestampMs: ts + 130_000 }, two(epoch + 2));
      ok(paid.bytes);
      // earned, and held unminted until the checkpoint covering it (§3): nothing spendable, nothing minted yet
      const reward = ledger.account(acct(S)).unminted;
      assert.equal(ledger.account(acct(S)).balance, before);
      assert.ok(reward >= UPTIME_REWARD_PER_MINUTE && reward < 2n * UPTIME_REWARD_PER_MINUTE, `one minute of uptime × the stake multiplier, got ${reward}`);
      assert.equal(ledger.account(acct(S)).unmintedRewards[0]!.releaseAt, rewardReleaseAt(ts + 130_000, NODE_RULES));
      assert.equal(ledger.ingest(buildUptime(S, { networkId: NET, timestampMs: ts + 131_000 }, two(epoch + 2)).bytes).status, 'void', 'a second uptime event for the window reuses its replay key');
      // a bonded node's proof: uptime and data mint nothing (no witness), training pays (bonded, slashable)
      const b0 = ledger.account(acct(S)).balance;
      ok(buildProof(S, env(1, ts + 140_000), { uptimeMs: 60_000, dataSamples: 60_000n, holderRecord: holderRecord(S, { start: 0, end: LAYERS }, ts + 140_000) }).bytes);
      assert.equal(ledger.account(acct(S)).balance, b0);
      assert.equal(ledger.account(acct(S)).unminted, reward);
      assert.equal(ledger.supplyGap(), 0n);
      // S's first event at or after the checkpoint's signing time mints the reward
      const minted0 = ledger.status().minted;
      ok(buildTransfer(S, env(1, rewardReleaseAt(ts + 130_000, NODE_RULES)!), acct(W1), NEURO).bytes);
      assert.equal(ledger.account(acct(S)).unminted, 0n);
      assert.equal(ledger.status().minted, minted0 + reward);
      assert.equal(ledger.supplyGap(), 0n);
      // what the bond buys: a slash (1,000 NEURO) is ten bonds, and more than 10^4 windows of witnessed uptime
      assert.ok(SLASH_AMOUNT >= 10n * MIN_REWARD_BOND && SLASH_AMOUNT > 10_000n * reward);
    } finally {
      done();
    }
  });
});
