/**
 * Naming the genesis key and founding a network (issue 11 §2; src/node/genesis-key.ts, src/node/ledger.ts): the
 * choice between a pinned key, network.json, the founder's own and a peer's; the founder minting the initial
 * allocation exactly once (across a restart); a joiner with no key learning it from its first peer, keeping it, and
 * agreeing with the founder; the first bond funded from the allocation; a pinned key that contradicts the stored one
 * refused; a stranger's Genesis event minting nothing. On the in-memory P2P network with a shared ManualClock.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildGenesis, buildStake, buildTransfer } from '../../../src/ledger/build.js';
import { GENESIS_ALLOCATION, GENESIS_STAKE, MIN_REWARD_BOND } from '../../../src/ledger/economics.js';
import { EventKind } from '../../../src/ledger/events.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { PeerScoreTable } from '../../../src/p2p/peer-score.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { chooseGenesisKey, NETWORK_FILE, readNetworkFile } from '../../../src/node/genesis-key.js';
import { startNodeLedgerService, WorkTally, type NodeLedgerService } from '../../../src/node/ledger.js';
import { waitFor } from '../../../src/util/abort.js';
import { sha256, toHex } from '../../../src/util/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { NodeKey } from '../../../src/identity/index.js';
import { tempDir } from '../../utils/paths.js';
import { acct, env, LAYERS, NET, T0, testKey } from '../ledger/helpers.js';

interface TestNode {
  key: NodeKey;
  l: NodeLedgerService;
}

async function startNode(hub: MemoryHub, dir: string, name: string, key: NodeKey, clock: ManualClock, o: { genesis: boolean; reuse?: boolean; genesisKey?: Uint8Array }): Promise<TestNode> {
  const p2p = o.reuse === true ? hub.nodes.get(name)! : hub.createNode(name);
  await p2p.start();
  const scores = new PeerScoreTable();
  const rpc = new RpcNode({ network: p2p, networkId: NET, scores });
  const tally = new WorkTally();
  tally.setLayers({ start: 0, end: LAYERS });
  tally.setModelHash(toHex(sha256(name)));
  const dataDir = join(dir, name);
  mkdirSync(dataDir, { recursive: true });
  const l = await startNodeLedgerService({
    network: { p2p, rpc, scores, genesis: o.genesis },
    key,
    dataDir,
    networkId: NET,
    modelLayers: LAYERS,
    counters: tally,
    clock,
    proofCheckMs: 10,
    proofOffsetMs: 0,
    resyncMs: 0,
    witnessedRewards: true,
    ...(o.genesisKey !== undefined ? { genesisKey: o.genesisKey } : {}),
  });
  return { key, l };
}

describe('genesis key: choosing it', () => {
  const own = testKey(601).publicKey;
  const other = toHex(testKey(602).publicKey);

  it('pinned, then network.json, then the founder’s own key; a joiner has none until a peer names it', () => {
    assert.equal(chooseGenesisKey({ pinned: other, stored: undefined, founder: true, own }).source, 'option');
    assert.equal(toHex(chooseGenesisKey({ pinned: undefined, stored: { version: 1, genesisKey: other, source: 'peer' }, founder: true, own }).key!), other);
    assert.equal(toHex(chooseGenesisKey({ pinned: undefined, stored: undefined, founder: true, own }).key!), toHex(own));
    assert.deepEqual(chooseGenesisKey({ pinned: undefined, stored: undefined, founder: false, own }), { key: undefined, source: 'none' });
  });

  it('a pinned key that is not the stored one, a malformed key, and a malformed network.json are typed errors', () => {
    assert.throws(
      () => chooseGenesisKey({ pinned: other, stored: { version: 1, genesisKey: toHex(own), source: 'founder' }, founder: false, own }),
      (e: unknown) => (e as { code?: string; fault?: string }).code === 'GENESIS_KEY_MISMATCH' && (e as { fault?: string }).fault === 'config',
    );
    assert.throws(() => chooseGenesisKey({ pinned: '04' + 'ab'.repeat(32), stored: undefined, founder: false, own }), (e: unknown) => (e as { code?: string }).code === 'CONFIG_INVALID');
    const t = tempDir('neuroshard-gkey-');
    try {
      for (const bad of ['{', '[]', '{"version":1,"genesisKey":"02zz","source":"peer"}', JSON.stringify({ version: 1, genesisKey: other, source: 'mars' }), 'x'.repeat(5000)]) {
        writeFileSync(join(t.dir, NETWORK_FILE), bad);
        assert.throws(() => readNetworkFile(t.dir), (e: unknown) => (e as { code?: string }).code === 'CONFIG_INVALID', bad.slice(0, 40));
      }
    } finally {
      t.cleanup();
    }
  });
});

describe('genesis key: founding a network', () => {
  it('the founder mints the allocation once (also across a restart); a joiner learns the key, agrees, and gets its bond from it', async () => {
    const t = tempDir('neuroshard-gkey-');
    const clock = new ManualClock(T0 + 5000);
    const hub = new MemoryHub();
    const ka = testKey(611);
    const kb = testKey(612);
    let a = await startNode(hub, t.dir, 'a', ka, clock, { genesis: true });
    let b: TestNode | undefined;
    try {
      // founded alone: the Genesis event is in the ledger at once
      const ga = a.l.ledger.account(acct(ka));
      assert.deepEqual([ga.balance, ga.staked], [GENESIS_ALLOCATION - GENESIS_STAKE, GENESIS_STAKE]);
      assert.equal(a.l.ledger.status().minted, GENESIS_ALLOCATION);
      assert.equal(a.l.ledger.nextNonce(ka.publicKey, EventKind.Genesis), 1n);
      assert.deepEqual(JSON.parse(readFileSync(join(t.dir, 'a', NETWORK_FILE), 'utf8')), { version: 1, genesisKey: toHex(ka.publicKey), source: 'founder', genesisEmitted: true });

      // restart: no second Genesis event
      const events = a.l.ledger.status().events;
      await a.l.stop();
      await hub.nodes.get('a')!.stop();
      a = await startNode(hub, t.dir, 'a', ka, clock, { genesis: true, reuse: true });
      clock.advance(1000);
      await new Promise((r) => setTimeout(r, 100)); // several founding ticks (10 ms)
      assert.equal(a.l.ledger.status().events, events);
      assert.equal(a.l.ledger.status().minted, GENESIS_ALLOCATION);

      // a joiner with no key (started before it could reach anyone) learns a's on its first reconciliation, then
      // re-judges its ledger under it, and holds the same state
      hub.createNode('b');
      hub.disconnect('a', 'b');
      b = await startNode(hub, t.dir, 'b', kb, clock, { genesis: false, reuse: true });
      assert.equal(b.l.ledger.genesisKey(), undefined);
      assert.equal(b.l.finality.status().state, 'off');
      hub.reconnect('a', 'b');
      await hub.nodes.get('b')!.dial('a');
      const bb = b;
      await waitFor(() => bb.l.status().sync.caughtUp && bb.l.ledger.stateHash() === a.l.ledger.stateHash(), { timeoutMs: 10_000, what: 'b learns the key and reconciles with a' });
      assert.equal(toHex(b.l.ledger.genesisKey()!), toHex(ka.publicKey));
      assert.equal(b.l.ledger.account(acct(ka)).staked, GENESIS_STAKE);
      assert.equal(readNetworkFile(join(t.dir, 'b'))?.source, 'peer');
      assert.equal(b.l.finality.status().state !== 'off', true, 'finality follows the learned key');

      // the first operator's bond comes from the allocation: a transfers, b stakes it
      const send = buildTransfer(ka, env(a.l.ledger.nextNonce(ka.publicKey, EventKind.Transfer), clock.now()), acct(kb), 150n * NEURO);
      assert.equal((await a.l.service.submit(send.bytes)).status, 'applied');
      await waitFor(() => bb.l.ledger.account(acct(kb)).balance === 150n * NEURO, { timeoutMs: 10_000, what: 'the transfer reaches b' });
      const stake = buildStake(kb, env(0, clock.now()), MIN_REWARD_BOND, 30);
      assert.equal((await b.l.service.submit(stake.bytes)).status, 'applied');
      await waitFor(() => a.l.ledger.account(acct(kb)).staked === MIN_REWARD_BOND && a.l.ledger.stateHash() === bb.l.ledger.stateHash(), { timeoutMs: 10_000, what: 'b bonded on both' });

      // a stranger's Genesis event mints nothing
      const stranger = testKey(613);
      const fake = buildGenesis(stranger, { networkId: NET, timestampMs: clock.now() });
      const r = await b.l.service.submit(fake.bytes);
      assert.equal(r.status, 'dropped');
      assert.equal(r.reason, 'NOT_GENESIS');
      assert.equal(b.l.ledger.account(acct(stranger)).balance, 0n);

      // b's data dir belongs to a's network now: pinning another key is refused
      await b.l.stop();
      await hub.nodes.get('b')!.stop();
      b = undefined;
      await assert.rejects(startNode(hub, t.dir, 'b', kb, clock, { genesis: false, reuse: true, genesisKey: stranger.publicKey }), (e: unknown) => (e as { code?: string }).code === 'GENESIS_KEY_MISMATCH');
    } finally {
      await b?.l.stop();
      await a.l.stop();
      t.cleanup();
    }
  });
});
