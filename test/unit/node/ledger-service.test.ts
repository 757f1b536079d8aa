/**
 * The node's ledger composition (src/node/ledger.ts) on the in-memory P2P network with a shared ManualClock: the
 * Proof-of-Neural-Work emitter (one proof per window, work since the last proof within the caps, provable training
 * only, the embedded HolderRecord re-used until something in it changes), nonces across a restart, a joining node
 * that proves only after it has reconciled, and a sync peer serving forged events losing score.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import { decodeEvent, EventKind, type LedgerEvent, type ProofBody } from '../../../src/ledger/events.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { PeerScoreTable } from '../../../src/p2p/peer-score.js';
import * as methods from '../../../src/protocols/methods.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { ledgerSubmitter, startNodeLedgerService, WorkTally, type NodeLedgerService } from '../../../src/node/ledger.js';
import { listOutbox, writeOutbox } from '../../../src/ledger/outbox.js';
import { waitFor } from '../../../src/util/abort.js';
import { fromHex, sha256, toHex } from '../../../src/util/bytes.js';
import { ManualClock } from '../../../src/util/clock.js';
import type { NodeKey } from '../../../src/identity/index.js';
import { tempDir } from '../../utils/paths.js';
import { acct, env, LAYERS, NET, T0, testKey } from '../ledger/helpers.js';

const H1 = toHex(sha256('model v1'));
const H2 = toHex(sha256('model v2'));

interface TestNode {
  name: string;
  key: NodeKey;
  tally: WorkTally;
  scores: PeerScoreTable;
  l: NodeLedgerService;
}

async function startNode(hub: MemoryHub, dir: string, name: string, key: NodeKey, clock: ManualClock, opts: { genesis: boolean; tally?: WorkTally; reuse?: boolean; selfClaimed?: boolean }): Promise<TestNode> {
  const p2p = opts.reuse === true ? hub.nodes.get(name)! : hub.createNode(name);
  await p2p.start();
  const scores = new PeerScoreTable();
  const rpc = new RpcNode({ network: p2p, networkId: NET, scores });
  const tally = opts.tally ?? new WorkTally();
  if (opts.tally === undefined) {
    tally.setLayers({ start: 0, end: LAYERS });
    tally.setModelHash(H1);
  }
  const dataDir = join(dir, name);
  mkdirSync(dataDir, { recursive: true });
  const l = await startNodeLedgerService({
    network: { p2p, rpc, scores, genesis: opts.genesis },
    key,
    dataDir,
    networkId: NET,
    modelLayers: LAYERS,
    counters: tally,
    clock,
    proofCheckMs: 10,
    proofOffsetMs: 0,
    resyncMs: 0,
    // the default (witnessed) rules, except for the case that checks the proof emitter's figures through what
    // proofs pay under the pre-§2 rules (the witnessed rules pay no uptime or data from proofs; they are tested in
    // test/attacks/fresh-key.test.ts and test/integration/ledger/liveness-witness.test.ts)
    ...(opts.selfClaimed === true ? { witnessedRewards: false } : {}),
    // nor the genesis allocation: these figures are the proofs' alone (founding: test/unit/node/genesis-key.test.ts)
    emitGenesis: false,
  });
  return { name, key, tally, scores, l };
}

function proofOf(n: TestNode, id: string): LedgerEvent<ProofBody> {
  const e = decodeEvent(n.l.ledger.eventBytes(fromHex(id))!);
  assert.equal(e.body.kind, EventKind.Proof);
  return e as LedgerEvent<ProofBody>;
}

/** Advances the ledger clock one window and waits for the node's next proof. */
async function nextProof(n: TestNode, clock: ManualClock): Promise<LedgerEvent<ProofBody>> {
  const before = n.l.status().proofs.emitted;
  clock.advance(60_000);
  await waitFor(() => n.l.status().proofs.emitted > before, { timeoutMs: 5000, what: `${n.name} proves` });
  const last = n.l.status().proofs.last!;
  assert.equal(last.status, 'applied', `proof ${last.reason ?? ''}`);
  return proofOf(n, last.id);
}

describe('node ledger: proofs of neural work', () => {
  it('proves each window with the work since its last proof, within the caps, and only provable training', async () => {
    const t = tempDir('neuroshard-nledger-');
    const clock = new ManualClock(T0 + 5000);
    const hub = new MemoryHub();
    const a = await startNode(hub, t.dir, 'a', testKey(501), clock, { genesis: true, selfClaimed: true });
    try {
      // just started: no uptime yet, nothing to prove
      assert.equal(await a.l.proveNow(), undefined);
      const p1 = await nextProof(a, clock);
      assert.equal(p1.nonce, BigInt(p1.body.epoch), 'a proof’s nonce is its window (issue 11 item 6)');
      assert.equal(p1.body.uptimeMs, 60_000);
      assert.deepEqual(p1.body.layers, { start: 0, end: LAYERS });
      assert.equal(p1.body.epoch, Math.floor(clock.now() / 60_000));
      assert.equal(toHex(p1.body.modelHash), H1);
      assert.equal(p1.body.trainingTokens, 0n);
      const minted1 = a.l.ledger.status().minted;
      assert.ok(minted1 > 0n);
      assert.equal(a.l.ledger.account(acct(a.key)).balance, minted1);

      // a window of work: more inference than the cap allows, data samples, and a training step that moved the model
      a.tally.addInferenceTokens(10n ** 9n);
      a.tally.addDataSamples(100);
      a.tally.recordTrainingStep({ tokens: 4096, loss: 2.5, gradNorm: 1.25 });
      a.tally.setModelHash(H2);
      const p2 = await nextProof(a, clock);
      assert.equal(p2.nonce, BigInt(p2.body.epoch));
      assert.equal(p2.body.inferenceTokens, 5000n * 60n, 'cut to 5,000 tokens per second of uptime');
      assert.equal(p2.body.dataSamples, 100n);
      assert.equal(p2.body.trainingTokens, 4096n);
      assert.deepEqual([toHex(p2.body.modelHashBefore), toHex(p2.body.modelHashAfter)], [H1, H2]);
      assert.equal(p2.body.lossMicro, 2_500_000n);
      assert.equal(p2.body.gradNormMicro, 1_250_000n);
      assert.ok(p2.body.gradientCommitment.some((x) => x !== 0));
      assert.equal(p2.body.holderRecord.signature, p1.body.holderRecord.signature, 'the same record while nothing in it changed');
      assert.ok(a.l.ledger.status().minted > 2n * minted1, 'training and data pay on top of uptime');

      // training whose model hash did not move is not provable: the proof goes out without it
      a.tally.recordTrainingStep({ tokens: 2048, loss: 2.4, gradNorm: 1 });
      const p3 = await nextProof(a, clock);
      assert.equal(p3.body.trainingTokens, 0n);
      assert.equal(p3.body.inferenceTokens, 0n, 'work is claimed once');

      // a new span is a new record
      a.tally.setLayers({ start: 2, end: 4 });
      const p4 = await nextProof(a, clock);
      assert.deepEqual(p4.body.layers, { start: 2, end: 4 });
      assert.deepEqual(p4.body.holderRecord.span, { start: 2, end: 4 });
      assert.notEqual(p4.body.holderRecord.signature, p1.body.holderRecord.signature);

      // no layers (or a span beyond the model): no proof
      for (const span of [undefined, { start: 0, end: LAYERS + 1 }]) {
        a.tally.setLayers(span);
        clock.advance(60_000);
        assert.equal(await a.l.proveNow(), undefined);
      }
      const s = a.l.status();
      assert.equal(s.proofs.emitted, 4);
      assert.equal(s.proofs.nextNonce, (p4.nonce + 1n).toString());
      assert.equal(a.l.ledger.supplyGap(), 0n);
      assert.equal(s.void + s.rejected, 0);
    } finally {
      await a.l.stop();
      t.cleanup();
    }
  });

  it('continues its nonce sequence after a restart and does not prove a window twice', async () => {
    const t = tempDir('neuroshard-nledger-');
    const clock = new ManualClock(T0 + 5000);
    const hub = new MemoryHub();
    const key = testKey(502);
    let a = await startNode(hub, t.dir, 'a', key, clock, { genesis: true });
    try {
      await nextProof(a, clock);
      const p2 = await nextProof(a, clock);
      assert.equal(p2.nonce, BigInt(p2.body.epoch));
      await a.l.stop();
      await hub.nodes.get('a')!.stop();
      a = await startNode(hub, t.dir, 'a', key, clock, { genesis: true, tally: a.tally, reuse: true });
      assert.equal(a.l.status().proofs.lastEpoch, p2.body.epoch);
      assert.equal(await a.l.proveNow(), undefined, 'this window is proven already');
      const p3 = await nextProof(a, clock);
      assert.equal(p3.nonce, BigInt(p3.body.epoch));
      assert.ok(p3.nonce > p2.nonce);
      const st = a.l.ledger.status();
      assert.deepEqual([st.applied, st.rejected, st.void], [3, 0, 0]);
    } finally {
      await a.l.stop();
      t.cleanup();
    }
  });

  it('a joining node proves only after reconciling with a peer, and then agrees with it', async () => {
    const t = tempDir('neuroshard-nledger-');
    const clock = new ManualClock(T0 + 5000);
    const hub = new MemoryHub();
    const a = await startNode(hub, t.dir, 'a', testKey(503), clock, { genesis: true });
    let b: TestNode | undefined;
    try {
      await nextProof(a, clock);
      await nextProof(a, clock);
      hub.createNode('b');
      hub.disconnect('a', 'b');
      b = await startNode(hub, t.dir, 'b', testKey(504), clock, { genesis: false, reuse: true });
      clock.advance(60_000);
      assert.equal(await b.l.proveNow(), undefined);
      assert.equal(b.l.status().proofs.waitingForSync, true);

      hub.reconnect('a', 'b');
      await hub.nodes.get('b')!.dial('a');
      const bb = b;
      await waitFor(() => bb.l.status().sync.caughtUp && bb.l.ledger.stateHash() === a.l.ledger.stateHash(), { timeoutMs: 5000, what: 'b reconciles with a' });
      assert.ok(b.l.ledger.status().events >= 2);
      await waitFor(() => bb.l.status().proofs.emitted === 1 && a.l.status().proofs.emitted === 3, { timeoutMs: 5000, what: 'both prove this window' });
      await waitFor(() => a.l.ledger.stateHash() === bb.l.ledger.stateHash() && !a.l.ledger.replayPending() && !bb.l.ledger.replayPending(), {
        timeoutMs: 5000,
        what: 'a and b agree',
      });
      assert.equal(a.l.ledger.status().events, 4);
      // b's proof is in a's ledger, applied (under the default witnessed rules an unbonded node's proof mints nothing)
      assert.equal(a.l.ledger.eventStatus(fromHex(bb.l.status().proofs.last!.id))?.status, 'applied');
      assert.equal(a.l.ledger.account(acct(b.key)).balance, 0n);
    } finally {
      await b?.l.stop();
      await a.l.stop();
      t.cleanup();
    }
  });

  it('quiesced for a graceful stop: no proof, no outbox drain, wallet submits refused; peers\' events still arrive, so both files agree', async () => {
    // issue 12 (chaos): a node that stopped slowly kept proving after its peer had closed its ledger, and the two
    // ledger files differed by that proof. node.close() now quiesces the ledger first.
    const t = tempDir('neuroshard-nledger-');
    const clock = new ManualClock(T0 + 5000);
    const hub = new MemoryHub();
    const a = await startNode(hub, t.dir, 'a', testKey(507), clock, { genesis: true });
    let b: TestNode | undefined;
    try {
      await nextProof(a, clock);
      b = await startNode(hub, t.dir, 'b', testKey(508), clock, { genesis: false });
      await hub.nodes.get('b')!.dial('a');
      const bb = b;
      await waitFor(() => bb.l.status().sync.caughtUp && bb.l.ledger.stateHash() === a.l.ledger.stateHash(), { timeoutMs: 5000, what: 'b reconciles with a' });

      await a.l.quiesce();
      assert.equal(a.l.quiet, true);
      const queued = buildTransfer(testKey(507), env(a.l.ledger.nextNonce(testKey(507).publicKey, EventKind.Transfer), clock.now()), acct(b.key), 1n);
      writeOutbox(join(t.dir, 'a'), queued);
      await assert.rejects(ledgerSubmitter(a.l, clock).submit(queued.bytes), (e: unknown) => (e as { code?: string }).code === 'LEDGER_NOT_READY');
      const emitted = a.l.status().proofs.emitted;
      const bProofs = b.l.status().proofs.emitted;
      clock.advance(60_000); // a window is due on both
      assert.equal(await a.l.proveNow(), undefined, 'a quiesced node makes no proof');
      await waitFor(() => bb.l.status().proofs.emitted > bProofs, { timeoutMs: 5000, what: 'b proves' });
      await waitFor(() => a.l.ledger.stateHash() === bb.l.ledger.stateHash() && !a.l.ledger.replayPending(), { timeoutMs: 5000, what: "b's proof reaches quiesced a" });
      assert.equal(await a.l.service.drainOutbox(), 0, 'the outbox waits for the next start');
      assert.equal(listOutbox(join(t.dir, 'a')).length, 1);
      assert.equal(a.l.status().proofs.emitted, emitted);
      assert.equal(a.l.ledger.eventStatus(queued.id), undefined);
      // b stops first (quiesced as well), a stops later: the stored states are still equal
      await b.l.quiesce();
      await b.l.stop();
      clock.advance(60_000);
      assert.equal(await a.l.proveNow(), undefined);
      const hashA = a.l.ledger.stateHash();
      const hashB = bb.l.ledger.stateHash();
      assert.equal(hashA, hashB);
    } finally {
      await b?.l.stop();
      await a.l.stop();
      t.cleanup();
    }
  });

  it('penalises a sync peer that serves events failing verification', async () => {
    const t = tempDir('neuroshard-nledger-');
    const clock = new ManualClock(T0 + 5000);
    const hub = new MemoryHub();
    const a = await startNode(hub, t.dir, 'a', testKey(505), clock, { genesis: true });
    try {
      const rogue = hub.createNode('rogue');
      await rogue.start();
      const rpc = new RpcNode({ network: rogue, networkId: NET });
      const real = buildTransfer(testKey(506), env(0, T0), acct(a.key), NEURO);
      const forged = new Uint8Array(real.bytes);
      forged[forged.byteLength - 70] ^= 1; // inside the amount: the signature no longer matches
      await rpc.handle(methods.ledgerStatus, () => ({ stateHash: new Uint8Array(32).fill(1), events: 1n }));
      await rpc.handle(methods.ledgerRange, () => ({ events: [forged] }));
      await a.l.reconcile('rogue');
      assert.ok(a.scores.score('rogue') < 0);
      assert.equal(a.l.ledger.status().events, 0);
    } finally {
      await a.l.stop();
      t.cleanup();
    }
  });
});
