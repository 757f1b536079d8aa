/**
 * Issue 11 item 6: nonce reuse by an honest node. A node restored from its mnemonic with a lost ledger.db that
 * meets only a peer holding nothing of its key used to count itself caught up (the empty ledger's hash is public,
 * so the hashes match) and sign its next proof with nonce 0, which its key had used: on every ledger that holds
 * the key's history that proof is void (equivocation), and the key is slashable. The test first shows that the old
 * rule (caught up on equal hashes, nonce = the local ledger's next) leads there, then that the node now signs
 * nonces its key never used, and that once it meets the history every one of its proofs stands.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildProof } from '../../src/ledger/build.js';
import { EventKind } from '../../src/ledger/events.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { caughtUpWith } from '../../src/ledger/reconcile.js';
import { MemoryHub } from '../../src/p2p/memory.js';
import { PeerScoreTable } from '../../src/p2p/peer-score.js';
import { RpcNode } from '../../src/protocols/rpc/service.js';
import { startNodeLedgerService, WorkTally, type NodeLedgerService } from '../../src/node/ledger.js';
import { waitFor } from '../../src/util/abort.js';
import { sha256, toHex } from '../../src/util/bytes.js';
import { ManualClock } from '../../src/util/clock.js';
import { accountIdFromPublicKey, type NodeKey } from '../../src/identity/index.js';
import { tempDir } from '../utils/paths.js';
import { tally } from './tally.js';
import { env, holderRecord, LAYERS, NET, T0, testKey } from './helpers.js';

const WAIT = { timeoutMs: 20_000, intervalMs: 10 };

async function startNode(hub: MemoryHub, dir: string, name: string, key: NodeKey, clock: ManualClock, opts: { genesis: boolean; proofs?: boolean }): Promise<NodeLedgerService> {
  const p2p = hub.createNode(name);
  await p2p.start();
  const scores = new PeerScoreTable();
  const rpc = new RpcNode({ network: p2p, networkId: NET, scores });
  const tally = new WorkTally();
  tally.setLayers({ start: 0, end: LAYERS });
  tally.setModelHash(toHex(sha256('model')));
  const dataDir = join(dir, name);
  mkdirSync(dataDir, { recursive: true });
  // emitGenesis off: nonces are under test, and q below holds a copy of a's ledger.db without its network.json (the
  // genesis key), so a Genesis event in it would be judged by a key q does not know (test/unit/node/genesis-key.test.ts)
  return startNodeLedgerService({ network: { p2p, rpc, scores, genesis: opts.genesis }, key, dataDir, networkId: NET, modelLayers: LAYERS, counters: tally, clock, proofCheckMs: 10, proofOffsetMs: 0, resyncMs: 0, proofs: opts.proofs, emitGenesis: false });
}

describe('item 6: a node restored with a lost ledger.db', () => {
  it('never signs a nonce its key used, even when it meets only an empty peer first', async () => {
    const t = tempDir('neuroshard-restore-');
    const clock = new ManualClock(T0 + 5000);
    const hub = new MemoryHub();
    const K = testKey(9601);
    const nodes: NodeLedgerService[] = [];
    try {
      // the key's history: two proofs by older software (sequential nonces 0 and 1), then two by this one
      const a = await startNode(hub, t.dir, 'a', K, clock, { genesis: true });
      nodes.push(a);
      for (const [i, ts] of [T0 - 3 * 60_000, T0 - 2 * 60_000].entries()) {
        assert.equal(a.ledger.ingest(buildProof(K, env(i, ts), { uptimeMs: 60_000, holderRecord: holderRecord(K, { start: 0, end: LAYERS }, ts) }).bytes).status, 'applied');
      }
      for (let w = 0; w < 2; w++) {
        const before = a.status().proofs.emitted;
        clock.advance(60_000);
        await waitFor(() => a.status().proofs.emitted > before, { ...WAIT, what: 'a proves' });
      }
      const used = new Set(a.ledger.history(accountOf(K)).filter((h) => h.kind === 'proof').map((h) => String(h.nonce)));
      assert.equal(used.size, 4);
      await a.stop();
      await hub.nodes.get('a')!.stop();
      nodes.length = 0;

      // the machine is lost; the mnemonic restores K on a fresh data dir. The first peer it meets holds nothing.
      const p = await startNode(hub, t.dir, 'p', testKey(9602), clock, { genesis: false, proofs: false });
      nodes.push(p);
      const r = await startNode(hub, t.dir, 'r', K, clock, { genesis: false });
      nodes.push(r);
      await hub.nodes.get('r')!.dial('p');
      await waitFor(() => r.status().sync.caughtUp, { ...WAIT, what: 'r reconciles with the empty peer' });

      // the old bug, reproduced: equal (empty) hashes count as caught up, and the next nonce the local ledger
      // gives is 0, which K used; a proof with it is void wherever K's history is known
      const rs = r.ledger.status();
      assert.equal(caughtUpWith({ ...rs }, { stateHash: p.ledger.stateHash(), events: 0 }), true);
      const oldNonce = r.ledger.nextNonce(K.publicKey, EventKind.Proof);
      assert.equal(oldNonce, 0n);
      assert.ok(used.has(oldNonce.toString()), 'the old rule picks a used nonce');
      {
        mkdirSync(join(t.dir, 'demo'));
        copyFileSync(join(t.dir, 'a', 'ledger.db'), join(t.dir, 'demo', 'ledger.db'));
        const hist = new Ledger({ path: join(t.dir, 'demo', 'ledger.db'), networkId: NET, modelLayers: LAYERS });
        const now = clock.now() + 60_000;
        const oldRule = buildProof(K, env(oldNonce, now), { uptimeMs: 60_000, holderRecord: holderRecord(K, { start: 0, end: LAYERS }, now) });
        assert.deepEqual(hist.ingest(oldRule.bytes).status, 'void', 'what the old rule signed is void on the history');
        hist.close();
      }

      // now: r proves with nonces K never used
      const signed: bigint[] = [];
      for (let w = 0; w < 2; w++) {
        const before = r.status().proofs.emitted;
        clock.advance(60_000);
        await waitFor(() => r.status().proofs.emitted > before, { ...WAIT, what: 'r proves' });
        signed.push(BigInt(r.status().proofs.last!.nonce));
      }
      // then it meets a peer holding K's history (a copy of the lost machine's ledger)
      mkdirSync(join(t.dir, 'q'), { recursive: true });
      copyFileSync(join(t.dir, 'a', 'ledger.db'), join(t.dir, 'q', 'ledger.db'));
      const q = await startNode(hub, t.dir, 'q', testKey(9603), clock, { genesis: false, proofs: false });
      nodes.push(q);
      await hub.nodes.get('r')!.dial('q');
      await hub.nodes.get('p')!.dial('q');
      await waitFor(() => [r, p].every((n) => n.ledger.stateHash() === q.ledger.stateHash() && !n.ledger.replayPending()) && q.ledger.status().events === r.ledger.status().events, {
        ...WAIT,
        what: 'r, p and q agree',
      });
      const reused = signed.filter((n) => used.has(n.toString())).length;
      const history = q.ledger.history(accountOf(K)).filter((h) => h.kind === 'proof');
      const notApplied = history.filter((h) => h.status !== 'applied').length;
      tally('restored node nonce reuse', signed.length, reused + notApplied);
      assert.equal(reused, 0, `nonces ${signed.join(', ')} against used ${[...used].join(', ')}`);
      assert.equal(history.length, 6);
      assert.equal(notApplied, 0, 'every proof of K, old and new, stands');
      assert.equal(q.ledger.status().void, 0);
    } finally {
      for (const n of nodes) await n.stop();
      t.cleanup();
    }
  });
});

function accountOf(k: NodeKey): Uint8Array {
  return accountIdFromPublicKey(k.publicKey);
}
