/**
 * Replication through the LedgerNetwork interface (in-memory hub): gossip, sync of a node that missed it,
 * agreement of the state hashes, and the outbox.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildTransfer } from '../../../src/ledger/build.js';
import { decodeEvent, EventKind } from '../../../src/ledger/events.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { MemoryLedgerHub } from '../../../src/ledger/memory-network.js';
import { listOutbox, outboxMaxNonce, readOutcome, writeOutbox } from '../../../src/ledger/outbox.js';
import { LedgerService, startNodeLedger } from '../../../src/ledger/service.js';
import { waitFor } from '../../../src/util/abort.js';
import { ManualClock } from '../../../src/util/clock.js';
import { tempDir } from '../../utils/paths.js';
import { acct, env, LAYERS, NET, T0, testKey, uptimeProof } from './helpers.js';

function node(dir: string, hub: MemoryLedgerHub, name: string, clock: ManualClock, keyIndex: number) {
  const dataDir = join(dir, name);
  mkdirSync(dataDir, { recursive: true });
  const ledger = new Ledger({ path: join(dataDir, 'ledger.db'), networkId: NET, modelLayers: LAYERS, checkInvariant: true });
  const network = hub.join(name);
  const key = testKey(keyIndex);
  const service = new LedgerService({ ledger, network, clock, dataDir, outboxPollMs: 20 });
  return { ledger, network, service, key, dataDir };
}

describe('ledger service', () => {
  it('spreads events by gossip, and a node that missed them catches up by sync to the same state hash', async () => {
    const t = tempDir('neuroshard-svc-');
    const clock = new ManualClock(T0 + 1000);
    const hub = new MemoryLedgerHub();
    const nodes = ['a', 'b', 'c'].map((n, i) => node(t.dir, hub, n, clock, 21 + i));
    try {
      for (const n of nodes) n.service.start();
      const [a, b, c] = nodes as [typeof nodes[0], typeof nodes[0], typeof nodes[0]];
      c.network.partitioned = true;
      const ids: string[] = [];
      // every event below is within the live window of this wall clock (at most 5 min old, 60 s ahead)
      clock.set(T0 + 270_000);
      for (let w = 0; w < 5; w++) {
        for (const n of [a, b]) ids.push((await n.service.submit(uptimeProof(n.key, T0 + w * 60_000))).id);
      }
      ids.push((await a.service.submit(buildTransfer(a.key, env(1, T0 + 5 * 60_000), acct(c.key), NEURO / 10_000n).bytes)).id);
      // Both a and b may hold a late event (the other's proof of the same window, sorting before their own) whose
      // deferred replay has not run yet: a hash is final only once no replay is pending.
      const settled = (l: Ledger): boolean => {
        const s = l.status();
        return !s.replayPending && s.events === ids.length;
      };
      await waitFor(() => settled(a.ledger) && settled(b.ledger), { timeoutMs: 5000, what: 'a and b hold every event, replays done' });
      assert.equal(b.ledger.stateHash(), a.ledger.stateHash());
      assert.equal(c.ledger.status().events, 0);

      c.network.partitioned = false;
      // each ingest names the event's kind (review2: listeners for one kind read no other back by id)
      const kinds = new Map<string, number | undefined>();
      const off = c.service.on('ledger:ingested', ({ result, kind }) => kinds.set(result.id, kind));
      const added = await c.service.syncAll();
      off();
      assert.equal(added, ids.length);
      assert.deepEqual(
        ids.map((id) => kinds.get(id)),
        ids.map((id) => decodeEvent(a.ledger.eventBytes(Buffer.from(id, 'hex'))!).body.kind),
      );
      assert.equal(kinds.get(ids[ids.length - 1]!), EventKind.Transfer);
      assert.equal(c.ledger.stateHash(), a.ledger.stateHash());
      assert.equal(c.ledger.account(acct(c.key)).balance, NEURO / 10_000n);
      // a second sync adds nothing
      assert.equal(await c.service.syncAll(), 0);
      // stale gossip is not admitted live (it arrives by sync instead)
      clock.set(T0 + 60 * 60_000);
      const late = uptimeProof(a.key, T0 + 30 * 60_000);
      const seen = b.service.waitFor('ledger:ingested', { timeoutMs: 5000, pred: (p) => p.source === 'gossip' });
      await a.network.publish(late);
      const got = await seen;
      assert.deepEqual([got.result.status, got.result.reason, got.kind], ['dropped', 'STALE', decodeEvent(late).body.kind]);
    } finally {
      for (const n of nodes) {
        n.service.stop();
        n.ledger.close();
      }
      t.cleanup();
    }
  });

  it("answers our own event with the verdict of the replay pending when it came, not 'pending' (session 29)", async () => {
    // a chaos run's `wallet stake` answered `pending` while late gossip waited for its coalesced replay, and the
    // operator's bootstrap took it for a failure: a submitter now gets the verdict that replay reaches
    const t = tempDir('neuroshard-svc-');
    const clock = new ManualClock(T0 + 270_000);
    const hub = new MemoryLedgerHub();
    const a = node(t.dir, hub, 'a', clock, 31);
    const b = testKey(32);
    try {
      a.service.start();
      assert.equal((await a.service.submit(uptimeProof(a.key, T0 + 60_000))).status, 'applied');
      // late gossip: sorts before the tip, stored with its replay deferred
      const late = a.ledger.ingest(uptimeProof(b, T0), { ingress: 'gossip', nowMs: clock.now(), deferReplay: true });
      assert.equal(late.status, 'pending');
      assert.equal(a.ledger.replayPending(), true);
      const r = await a.service.submit(buildTransfer(a.key, env(1, T0 + 120_000), acct(b), NEURO / 10_000n).bytes);
      assert.equal(r.status, 'applied', `our transfer: ${JSON.stringify(r)}`);
      assert.equal(a.ledger.replayPending(), false);
      assert.equal(a.ledger.eventStatus(Buffer.from(late.id, 'hex'))?.status, 'applied');
    } finally {
      a.service.stop();
      a.ledger.close();
      t.cleanup();
    }
  });

  it('publishes the outbox when it starts, and reports an event that waited past the live window as STALE (never re-signed)', async () => {
    const t = tempDir('neuroshard-outbox-');
    const clock = new ManualClock(T0);
    const hub = new MemoryLedgerHub();
    const a = node(t.dir, hub, 'a', clock, 31);
    const b = node(t.dir, hub, 'b', clock, 32);
    try {
      // fund a
      a.ledger.ingest(uptimeProof(a.key, T0 - 120_000));
      b.ledger.ingest(uptimeProof(a.key, T0 - 120_000));
      // two wallet events written while the node was down; the first is an hour old by the time it starts
      const old = buildTransfer(a.key, env(1, T0), acct(b.key), 1n);
      writeOutbox(a.dataDir, old);
      const fresh = buildTransfer(a.key, env(2, T0 + 3_600_000), acct(b.key), 2n);
      writeOutbox(a.dataDir, fresh);
      assert.equal(outboxMaxNonce(a.dataDir, a.key.publicKey, EventKind.Transfer), 2n);
      clock.set(T0 + 3_600_000 + 1000);
      b.service.start();
      a.service.start();
      await waitFor(() => listOutbox(a.dataDir).length === 0, { timeoutMs: 5000, what: 'outbox drained' });
      const o1 = readOutcome(a.dataDir, Buffer.from(old.id).toString('hex'));
      const o2 = readOutcome(a.dataDir, Buffer.from(fresh.id).toString('hex'));
      assert.deepEqual([o1?.status, o1?.reason, o1?.publishedId], ['dropped', 'STALE', undefined]);
      assert.equal(a.ledger.eventStatus(old.id), undefined, 'the stale event is not stored');
      assert.equal(o2?.status, 'applied');
      await waitFor(() => b.ledger.account(acct(b.key)).balance === 2n, { timeoutMs: 5000, what: 'b sees the fresh transfer by gossip' });
      await waitFor(() => !a.ledger.replayPending() && !b.ledger.replayPending(), { timeoutMs: 5000, what: 'replays done' });
      assert.equal(b.ledger.stateHash(), a.ledger.stateHash());
    } finally {
      a.service.stop();
      b.service.stop();
      a.ledger.close();
      b.ledger.close();
      t.cleanup();
    }
  });

  it('startNodeLedger opens the data dir ledger and syncs from the known peers at start', async () => {
    const t = tempDir('neuroshard-start-');
    // after the three windows below: sync does not admit events from more than 60 s in the future
    const clock = new ManualClock(T0 + 180_000);
    const hub = new MemoryLedgerHub();
    const b = node(t.dir, hub, 'b', clock, 41);
    let stop: (() => void) | undefined;
    try {
      b.service.start();
      for (let w = 0; w < 3; w++) b.ledger.ingest(uptimeProof(b.key, T0 + w * 60_000));
      const dataDir = join(t.dir, 'a');
      const a = await startNodeLedger({ dataDir, networkId: NET, modelLayers: LAYERS, network: hub.join('a'), clock });
      stop = a.stop;
      assert.equal(a.ledger.status().events, 3);
      assert.equal(a.ledger.stateHash(), b.ledger.stateHash());
    } finally {
      stop?.();
      b.service.stop();
      b.ledger.close();
      t.cleanup();
    }
  });
});
