/**
 * Agreement on the network's paths (session 25): the same events, of every kind the witnessed rules apply
 * (network-fixture.ts), delivered to ledgers in different orders by the paths a node takes them in (live gossip:
 * ingest 'gossip' with the deferred replay and its flush; sync pages: ingestMany 'sync'), dependents before what
 * they spend included, end with equal state hashes, equal to a ledger fed in canonical order by a trusted caller.
 *
 * Gossip is the path where arrival order matters: an event from the network that sorts after the tip is judged at
 * the tip, and one the state rules reject there is not stored (issue 11 attack 5), so a dependent that arrives
 * before what it spends is dropped and comes back only by a later sync. The offline exchange of
 * src/sim/ledger-converge.ts is that sync; after it the ledgers must agree (test/unit/ledger/agreement.test.ts covers
 * the trusted path with 10,000 generated events).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ledger } from '../../../src/ledger/ledger.js';
import { decodeEvent, KIND_NAMES } from '../../../src/ledger/events.js';
import { convergeLedgers } from '../../../src/sim/ledger-converge.js';
import { Rng } from '../../../src/util/rng.js';
import { tempDir } from '../../utils/paths.js';
import { LAYERS, NET } from './helpers.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildGenesis, buildStake, buildTransfer } from '../../../src/ledger/build.js';
import { MIN_REWARD_BOND } from '../../../src/ledger/economics.js';
import { acct, env, T0, testKey } from './helpers.js';
import { G, networkHistory, PERIOD_MS, RULES } from './network-fixture.js';
import { receipt, recordOf } from './receipt-fixture.js';

function open(path: string): Ledger {
  return new Ledger({ path, networkId: NET, modelLayers: LAYERS, rewards: RULES, checkInvariant: true });
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const rng = new Rng(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Live gossip: each event arrives 0.5 s after its date, in the given order; the replay timer fires every `flushEvery` events. */
function gossip(l: Ledger, events: readonly Uint8Array[], flushEvery: number): void {
  events.forEach((b, i) => {
    l.ingest(b, { ingress: 'gossip', nowMs: decodeEvent(b).timestampMs + 500, deferReplay: true });
    if ((i + 1) % flushEvery === 0) l.flushReplay();
  });
  l.flushReplay();
}

/** Sync pages of `page` events in canonical order (a peer serves its range in order), as LedgerService.syncFrom ingests them. */
function sync(l: Ledger, events: readonly Uint8Array[], page: number): void {
  const nowMs = Math.max(...events.map((b) => decodeEvent(b).timestampMs)) + 1000;
  for (let i = 0; i < events.length; i += page) {
    l.ingestMany(events.slice(i, i + page), { ingress: 'sync', nowMs, deferReplay: true });
    l.flushReplay();
  }
}

describe('ledger agreement on the network paths', () => {
  it('gossip and sync in different orders, dependents first included, agree after the exchange with the canonical ledger', () => {
    const t = tempDir('neuroshard-netagree-');
    const h = networkHistory();
    const ref = open(join(t.dir, 'ref.db'));
    try {
      // the reference: canonical order, trusted caller; every kind applied at least once
      const applied = new Set<string>();
      h.events.forEach((b, i) => {
        const r = ref.ingest(b);
        if (r.status === 'applied') applied.add(KIND_NAMES[decodeEvent(b).body.kind]);
        const want = h.labels[i]!.includes('(rejected)') ? 'rejected' : h.labels[i]!.includes('(void)') ? 'void' : 'applied';
        assert.equal(r.status, want, `${h.labels[i]}: ${r.status} ${r.reason ?? ''}`);
      });
      assert.deepEqual([...applied].sort(), ['genesis', 'market-complete', 'market-request', 'slash', 'stake', 'training-receipt', 'transfer', 'unstake'].sort());
      assert.ok(ref.status().minted > 0n && ref.status().burned > 0n, 'rewards minted and fees burned');
      const refHash = ref.stateHash();

      // dependents before what they spend: every dependent first
      const byLabel = new Map(h.labels.map((l, i) => [l, h.events[i]!]));
      const dependentsFirst = [...h.dependents.map((d) => byLabel.get(d)!), ...h.events.filter((_, i) => !h.dependents.includes(h.labels[i]!))];
      const half = Math.floor(h.events.length / 2);
      const feeds: Record<string, (l: Ledger) => void> = {
        'canonical-gossip': (l) => gossip(l, h.events, 1),
        'shuffled-gossip': (l) => gossip(l, shuffled(h.events, 11), 3),
        // a dependent gossiped before what it spends is dropped at the tip; the sync after it brings it back
        'dependents-first': (l) => {
          gossip(l, dependentsFirst, 4);
          sync(l, h.events, 4);
        },
        // a node that saw the second half live, then syncs the first half: every synced event sorts before its tip
        'late-half': (l) => {
          gossip(l, shuffled(h.events.slice(half), 13), 2);
          sync(l, h.events.slice(0, half), 5);
        },
        sync: (l) => sync(l, h.events, 4),
      };
      const paths = Object.keys(feeds).map((n) => join(t.dir, `${n}.db`));
      for (const [i, p] of paths.entries()) {
        const l = open(p);
        try {
          Object.values(feeds)[i]!(l);
          assert.equal(l.supplyGap(), 0n);
        } finally {
          l.close();
        }
      }
      const rep = convergeLedgers(
        paths.map((path) => ({ name: path.slice(t.dir.length + 1), path })),
        { networkId: NET, modelLayers: LAYERS, rewards: RULES },
      );
      // in canonical order on either path, or a dependent dropped and then synced: equal before any exchange
      for (const n of ['canonical-gossip', 'dependents-first', 'sync']) assert.equal(rep.rawHashes[`${n}.db`], refHash, n);
      // gossip out of order dropped dependents that came before what they spend; the exchange brings them
      const lacking = new Set(rep.missing.list.flatMap((m) => m.lackedBy));
      assert.ok(lacking.has('shuffled-gossip.db') && lacking.has('late-half.db'), `out-of-order gossip lacks events before the exchange: ${JSON.stringify(rep.missing)}`);
      assert.deepEqual(rep.refusals, []);
      assert.deepEqual(rep.verdictDiffs, []);
      assert.equal(rep.convergedEqual, true, JSON.stringify(rep.convergedHashes));
      for (const [name, hash] of Object.entries(rep.convergedHashes)) assert.equal(hash, refHash, name);
    } finally {
      ref.close();
      t.cleanup();
    }
  });

  it('a nonce reused after a rejected event: the node that stored the rejected one and the node that dropped it agree', () => {
    // E1 and E2 share (signer, kind, nonce). E1 is valid at the tip when it arrives on X, and rejected once the
    // earlier S arrives (X keeps it, rejected: it was judged when it came); Y gets S first and drops E1 at the tip
    // (issue 11 attack 5). A rejected event is neither relayed nor served, so Y never gets it; if it still took its
    // nonce on X, E2 would be void on X and applied on Y for good. A conflict counts only with an event that is
    // served (applied or void), so E2 is applied on both.
    const A = testKey(9601);
    const [Bk, C, Dk] = [testKey(9602), testKey(9603), testKey(9604)];
    const t = tempDir('neuroshard-netagree-');
    const genesis = buildGenesis(G, { networkId: NET, timestampMs: T0 + 1000 }).bytes;
    const fund = buildTransfer(G, env(1, T0 + 2000), acct(A), 10n * NEURO).bytes;
    const S = buildTransfer(A, env(1, T0 + 3000), acct(C), 8n * NEURO).bytes;
    const E1 = buildTransfer(A, env(2, T0 + 4000), acct(Bk), 5n * NEURO).bytes;
    const E2 = buildTransfer(A, env(2, T0 + 5000), acct(Dk), 1n * NEURO).bytes;
    const X = open(join(t.dir, 'x.db'));
    const Y = open(join(t.dir, 'y.db'));
    try {
      gossip(X, [genesis, fund, E1, S, E2], 1);
      gossip(Y, [genesis, fund, S, E1, E2], 1);
      assert.equal(X.eventStatus(decodeEvent(E1).id)?.status, 'rejected', 'X keeps E1, rejected at its place');
      assert.equal(Y.eventStatus(decodeEvent(E1).id), undefined, 'Y dropped E1 at the tip');
      assert.equal(Y.eventStatus(decodeEvent(E2).id)?.status, 'applied');
      assert.equal(X.eventStatus(decodeEvent(E2).id)?.status, 'applied', 'the rejected E1 does not void E2 on X');
      assert.equal(X.stateHash(), Y.stateHash());
    } finally {
      X.close();
      Y.close();
      t.cleanup();
    }
  });

  it('an event rejected at its place after it was applied at the tip leaves no trace: the node that judged it twice and the node that dropped it agree', () => {
    // A earns a reward (unminted until T0 + 70 s). S (A's transfer, before the release) leaves too little for E
    // (A's transfer, after it). X gets E before S: E applies at the tip, then S arrives and the replay rejects E at
    // its place. Y gets S first and drops E at the tip (issue 11 attack 5). Applying E at its place settled A's
    // matured rewards into A's balance before the transfer rule rejected it: had X kept E, its state would hold a
    // mint Y's has not made (until A's next event, and a slash before that forfeits on Y what X minted). The
    // network's events rejected at their place are removed at every judgment, not only their first.
    const A = testKey(9701);
    const Bk = testKey(9702);
    const t = tempDir('neuroshard-netagree-');
    const setup = [
      buildGenesis(G, { networkId: NET, timestampMs: T0 + 1000 }).bytes,
      buildTransfer(G, env(1, T0 + 2000), acct(A), 1000n * NEURO).bytes,
      buildTransfer(G, env(2, T0 + 2500), acct(Bk), 1000n * NEURO).bytes,
      buildStake(A, env(1, T0 + 3000), MIN_REWARD_BOND, 30).bytes,
      buildStake(Bk, env(1, T0 + 3500), MIN_REWARD_BOND, 30).bytes,
      receipt(A, recordOf([A, Bk], 1, { layers: { start: 0, end: LAYERS }, contributors: [A] }), [A, Bk], T0 + 20_000),
    ];
    const S = buildTransfer(A, env(1, T0 + PERIOD_MS + 5000), acct(Bk), 850n * NEURO).bytes;
    const E = buildTransfer(A, env(2, T0 + PERIOD_MS + 20_000), acct(Bk), 100n * NEURO).bytes;
    const X = open(join(t.dir, 'x.db'));
    const Y = open(join(t.dir, 'y.db'));
    try {
      gossip(X, [...setup, E, S], 1);
      gossip(Y, [...setup, S, E], 1);
      assert.ok(X.account(acct(A)).unminted > 0n || Y.account(acct(A)).unminted > 0n, 'A has a reward to settle');
      assert.equal(Y.eventStatus(decodeEvent(E).id), undefined, 'Y dropped E at the tip');
      assert.equal(X.eventStatus(decodeEvent(E).id)?.status, 'rejected', 'X keeps E, rejected at its place (it was judged when it came)');
      assert.equal(X.stateHash(), Y.stateHash());
    } finally {
      X.close();
      Y.close();
      t.cleanup();
    }
  });
});
