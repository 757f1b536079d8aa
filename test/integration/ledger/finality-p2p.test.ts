/**
 * Finality on real libp2p nodes (issue 11 §3) under the node's default reward rules (witnessed, minted at
 * checkpoints): the genesis node founds the network (the Genesis allocation, 100,000 NEURO of it staked), funds two
 * operators from it and they bond (test/utils/ledger-bootstrap.ts, the real bootstrap) and stake as much as the
 * genesis account, so that later checkpoints need all three signatures (more than 2/3 of the stake); the first ones
 * are signed by the genesis account alone. A bonded node's training reward is held unminted in the state the
 * checkpoint covering it signs, and minted only once that checkpoint is due and signed. A fourth, new node starts
 * from the latest checkpoint's verified snapshot instead of replaying the history, then syncs what came after and
 * reaches the same state hash. A short checkpoint period on a shared ManualClock; waits are on conditions with bounds.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { accountIdFromPublicKey, keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { servedEvents } from '../../../src/ledger/reconcile.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTrainingReceipt, buildTransfer } from '../../../src/ledger/build.js';
import { cosignRecord, sortMembers, type TrainingRecord } from '../../../src/ledger/training-receipt.js';
import { GENESIS_STAKE } from '../../../src/ledger/economics.js';
import { EventKind } from '../../../src/ledger/events.js';
import { startNodeLedgerService, WorkTally, type NodeLedgerService } from '../../../src/node/ledger.js';
import { createNodeNetwork, type NetworkNodeOptions, type NodeNetwork } from '../../../src/node/network.js';
import { waitFor } from '../../../src/util/abort.js';
import { bytesEqual, sha256, toHex } from '../../../src/util/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import { fundAndBond } from '../../utils/ledger-bootstrap.js';
import { LOOPBACK_TUNING, loopbackNodeOptions } from '../../utils/network.js';
import { tempDir } from '../../utils/paths.js';

const NETWORK_ID = 'finality-itest-' + randomBytes(4).toString('hex');
const LAYERS = 4;
const PERIOD = 60_000;
const WAIT = { timeoutMs: 60_000, intervalMs: 25 };

interface Node {
  name: string;
  key: NodeKey;
  net: NodeNetwork;
  tally: WorkTally;
  l: NodeLedgerService;
}

describe('finality on four libp2p nodes', { timeout: 300_000 }, () => {
  const tmp = tempDir('neuroshard-finality-p2p-');
  const clock = new ManualClock(Math.floor(Date.now() / PERIOD) * PERIOD + 1000);
  const nodes: Node[] = [];
  const networks: NodeNetwork[] = [];
  let genesisKey: Uint8Array | undefined;

  async function startNode(name: string, over: Partial<NetworkNodeOptions>, waitPeer = false): Promise<Node> {
    const key = keyFromPrivate(randomBytes(32));
    genesisKey ??= key.publicKey;
    const dataDir = join(tmp.dir, name);
    mkdirSync(dataDir, { recursive: true });
    const net = await createNodeNetwork({ networkId: NETWORK_ID, key, options: loopbackNodeOptions({ dataDir, span: { start: 0, end: LAYERS }, ...over }), tuning: LOOPBACK_TUNING });
    networks.push(net);
    await net.start();
    if (waitPeer) await waitFor(() => net.p2p.connectedPeers().length > 0, { ...WAIT, what: `${name} connects` });
    const tally = new WorkTally();
    tally.setLayers({ start: 0, end: LAYERS });
    tally.setModelHash(toHex(sha256(`model of ${name}`)));
    const l = await startNodeLedgerService({
      network: net,
      key,
      dataDir,
      networkId: NETWORK_ID,
      modelLayers: LAYERS,
      counters: tally,
      clock,
      proofCheckMs: 25,
      proofOffsetMs: 0,
      resyncMs: 1000,
      genesisKey,
      // the default reward rules (witnessed, minted at checkpoints of this period and settle time)
      checkpointPeriodMs: PERIOD,
      checkpointSettleMs: 1000,
      checkpointCheckMs: 25,
    });
    const n: Node = { name, key, net, tally, l };
    nodes.push(n);
    return n;
  }

  async function agreed(what: string, among: Node[] = nodes): Promise<void> {
    await waitFor(
      () => {
        const first = among[0]!.l.ledger;
        return among.every((n) => !n.l.ledger.replayPending() && servedEvents(n.l.ledger.status()) === servedEvents(first.status()) && n.l.ledger.stateHash() === first.stateHash());
      },
      { ...WAIT, what },
    );
  }

  /** One window (or `ms` of ledger time): everyone proves, and all agree. */
  async function round(what: string, ms = PERIOD): Promise<void> {
    const before = nodes.map((n) => n.l.status().proofs.emitted);
    clock.advance(ms);
    await waitFor(() => nodes.every((n, i) => n.l.status().proofs.emitted > before[i]!), { ...WAIT, what: `${what}: every node proves` });
    await agreed(`${what}: agreement`);
  }

  const seq = (n: Node): number => n.l.ledger.latestCheckpoint()?.body.seq ?? 0;

  after(async () => {
    for (const n of nodes) await n.l.stop();
    await Promise.all(networks.map((n) => n.stop()));
    tmp.cleanup();
  });

  it('three staked nodes sign checkpoints; a fourth starts from the latest one and reaches the same state', async () => {
    const a = await startNode('a', { genesis: true });
    const b = await startNode('b', { bootstrap: [a.net.p2p.multiaddrs()[0]!] });
    const c = await startNode('c', { bootstrap: [a.net.p2p.multiaddrs()[0]!] });
    const three = [a, b, c];
    await waitFor(() => three.every((n) => n.l.status().sync.caughtUp || n === a), { ...WAIT, what: 'b and c reconcile' });
    for (let i = 1; i <= 3; i++) await round(`round ${i}`);
    // the genesis key alone has finalized the windows so far; every node holds those checkpoints
    await waitFor(() => three.every((n) => seq(n) >= 1 && seq(n) === seq(a)), { ...WAIT, what: 'the first checkpoints everywhere' });
    assert.equal(a.l.ledger.latestCheckpoint()!.sigs.length, 1, 'signed by the genesis key');
    assert.equal(a.l.status().finality.state, 'active');

    // the real bootstrap: a funds b and c from its allocation, they bond, then stake as much as a has staked, so
    // that each holds a third of the stake and a checkpoint needs all three
    await fundAndBond(a, [b, c], NETWORK_ID, clock, { fund: GENESIS_STAKE + 1000n * NEURO, bond: GENESIS_STAKE });
    for (const n of three) assert.equal(a.l.ledger.account(accountIdFromPublicKey(n.key.publicKey)).locked, GENESIS_STAKE);
    await agreed('after the stakes');
    // the next cut takes the stakes into the committee; the one after is signed by the stakers
    await round('round 4');
    await waitFor(() => three.every((n) => n.l.ledger.latestCheckpoint()?.body.committee.length === 3), { ...WAIT, what: 'a checkpoint names the three stakers' });
    const staked = seq(a);
    const t = buildTransfer(b.key, { networkId: NETWORK_ID, nonce: b.l.ledger.nextNonce(b.key.publicKey, EventKind.Transfer), timestampMs: clock.now() }, accountIdFromPublicKey(c.key.publicKey), NEURO / 10n);
    assert.notEqual((await b.l.service.submit(t.bytes)).status, 'dropped');
    await waitFor(() => three.every((n) => n.l.ledger.eventStatus(t.id)?.status === 'applied'), { ...WAIT, what: 'transfer everywhere' });
    assert.equal(b.l.ledger.isFinal(t.id), false);
    await round('round 5');
    await waitFor(() => three.every((n) => seq(n) > staked && seq(n) === seq(a)), { ...WAIT, what: 'a checkpoint signed by the stakers' });
    let cp = a.l.ledger.latestCheckpoint()!;
    const signers = new Set(cp.sigs.map((s) => toHex(accountIdFromPublicKey(Buffer.from(s.key, 'hex')))));
    assert.deepEqual(signers, new Set(three.map((n) => toHex(accountIdFromPublicKey(n.key.publicKey)))), 'all three stakers signed (each holds a third)');
    await waitFor(() => three.every((n) => n.l.ledger.isFinal(t.id)), { ...WAIT, what: 'the transfer is final everywhere' });
    assert.equal(a.l.status().finalized?.seq, cp.body.seq);

    // issue 11 §3, rewards are minted at checkpoints: c (bonded) earns a training reward from an outer round's record
    // co-signed by two bonded members, c and a (a training receipt, issue 11 §2; a proof alone mints nothing)
    const cAcct = accountIdFromPublicKey(c.key.publicKey);
    const minted0 = a.l.ledger.status().minted;
    const bal0 = a.l.ledger.account(cAcct).balance;
    const members = sortMembers([c.key.publicKey, a.key.publicKey]);
    const record: TrainingRecord = {
      round: 1,
      layers: { start: 0, end: LAYERS },
      weightsHash: sha256('weights after round 1'),
      members,
      contributions: [{ member: members.findIndex((m) => bytesEqual(m, c.key.publicKey)), tokens: 2048n * 10n, accepted: true }],
    };
    const cosigs = [c.key, a.key].map((k) => cosignRecord(k, NETWORK_ID, record)!).sort((x, y) => x.member - y.member);
    const proofTs = clock.now();
    const receipt = buildTrainingReceipt(c.key, { networkId: NETWORK_ID, timestampMs: proofTs }, record, cosigs);
    assert.notEqual((await c.l.service.submit(receipt.bytes)).status, 'dropped');
    await waitFor(() => three.every((n) => n.l.ledger.eventStatus(receipt.id)?.status === 'applied'), { ...WAIT, what: 'the training receipt everywhere' });
    const proofId = receipt.id;
    const earned = a.l.ledger.account(cAcct).unminted;
    assert.ok(earned > 0n, 'c earned a training reward');
    assert.ok(three.every((n) => n.l.ledger.account(cAcct).unminted === earned), 'the same unminted reward everywhere');
    assert.equal(a.l.ledger.account(cAcct).balance, bal0, 'not spendable yet');
    assert.equal(a.l.ledger.status().minted, minted0, 'not minted yet');
    assert.equal(a.l.ledger.supplyGap(), 0n);
    // the cut that covers it passes (c proves again before the checkpoint is due): still unminted
    const cut = (Math.floor(proofTs / PERIOD) + 1) * PERIOD;
    await round('round 7: past the cut, before its checkpoint is due', cut - clock.now() + 500);
    assert.equal(three.every((n) => n.l.ledger.account(cAcct).unminted === earned && n.l.ledger.account(cAcct).balance === bal0), true, 'unminted after the cut too');
    // the checkpoint at that cut: signed by the three, it covers the proof, and its state holds the reward unminted
    clock.advance(1000); // the cut is settleMs old: the checkpoint is due (no proof is: same window)
    await waitFor(() => three.every((n) => n.l.ledger.latestCheckpoint()!.body.cutMs >= cut), { ...WAIT, what: 'the checkpoint covering the reward everywhere' });
    cp = a.l.ledger.latestCheckpoint()!;
    assert.equal(cp.body.cutMs, cut);
    assert.ok(a.l.ledger.isFinal(proofId), 'the checkpoint covers the receipt');
    assert.equal(a.l.ledger.account(cAcct).balance, bal0, 'minted at c’s first event after the checkpoint, not before');
    // c's next event (its next proof) is the first at or after the checkpoint's signing time: the reward is minted
    await round('round 8: minted');
    for (const n of three) {
      assert.equal(n.l.ledger.account(cAcct).balance, bal0 + earned, `${n.name}: c's reward minted to its balance`);
      assert.equal(n.l.ledger.account(cAcct).unminted, 0n);
      assert.equal(n.l.ledger.status().minted, minted0 + earned);
      assert.equal(n.l.ledger.supplyGap(), 0n);
    }

    // a new node starts from the latest checkpoint
    const d = await startNode('d', { bootstrap: [b.net.p2p.multiaddrs()[0]!] }, true);
    await waitFor(() => seq(d) >= cp.body.seq, { ...WAIT, what: 'd holds the checkpoint' });
    assert.equal(d.l.finality.stats.snapshots, 1, 'd started from a snapshot');
    await round('round 9 with four');
    await agreed('d agrees');
    const stored = (n: Node): number => n.l.ledger.history(accountIdFromPublicKey(a.key.publicKey), 10_000).length;
    assert.ok(stored(d) < stored(a), `d did not replay the history (${stored(d)} events of a's stored, a has ${stored(a)})`);
    assert.equal(d.l.ledger.stateHash(), a.l.ledger.stateHash());
    assert.equal(d.l.ledger.replayHash(), d.l.ledger.stateHash());
    assert.equal(d.l.ledger.supplyGap(), 0n);
    // the members kept their history: none of them took a snapshot (which deletes the events before its cut), even
    // when a checkpoint reached one before the last events did (CI on Node 24: b snapshotted, and lost the transfer)
    for (const n of three) assert.equal(n.l.finality.stats.snapshots, 0, `${n.name} kept its history`);
    assert.ok(b.l.ledger.history(accountIdFromPublicKey(b.key.publicKey), 100).some((h) => h.final && h.kind === 'transfer'), "b's history shows its final transfer");
  });
});
