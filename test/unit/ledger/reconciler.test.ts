/**
 * ledger/reconciler.ts: what a reconciliation with a peer does given our and its ledger-status summaries (nothing,
 * a full sync, a tail sync and then maybe a full one, a re-queued sync that paused on its budget), when we count as
 * caught up, and whom it penalises, with callbacks in place of the LedgerService and the network.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Reconciler, TAIL_SYNC_MAX_PAGES, type ReconcilerOptions } from '../../../src/ledger/reconciler.js';
import { silentLogger } from '../../../src/util/logger.js';

interface SyncCall {
  peer: string;
  tail: boolean;
  maxPages?: number;
}

interface Rig {
  r: Reconciler;
  ours: { stateHash: string; events: number; replayPending: boolean };
  peers: Map<string, { stateHash: string; events: number }>;
  syncs: SyncCall[];
  prepared: string[];
  penalties: { peer: string; count: number; reason: string }[];
  abort: AbortController;
}

/**
 * A peer's sync brings us to its summary (a full sync always; a tail sync only when `tailReaches` is set), or pauses
 * on its budget when `pause` holds the peer; `drops` are the reasons of events the sync drops.
 */
function rig(o: { tailReaches?: boolean; pause?: Set<string>; drops?: Map<string, (string | undefined)[]>; fail?: Map<string, Error> } = {}): Rig {
  const ours = { stateHash: 'h0', events: 0, replayPending: false };
  const peers = new Map<string, { stateHash: string; events: number }>();
  const syncs: SyncCall[] = [];
  const prepared: string[] = [];
  const penalties: { peer: string; count: number; reason: string }[] = [];
  const listeners = new Set<(reason: string | undefined) => void>();
  const abort = new AbortController();
  const opts: ReconcilerOptions = {
    self: 'me',
    ours: () => ({ ...ours }),
    theirs: async (peer) => {
      const p = peers.get(peer);
      if (p === undefined) throw new Error(`unknown peer ${peer}`);
      return { ...p };
    },
    prepare: async (peer) => {
      prepared.push(peer);
    },
    syncFrom: async (peer, so) => {
      const tail = so.from !== undefined;
      syncs.push({ peer, tail, ...(so.maxPages !== undefined ? { maxPages: so.maxPages } : {}) });
      for (const reason of o.drops?.get(peer) ?? []) for (const fn of listeners) fn(reason);
      const err = o.fail?.get(peer);
      if (err !== undefined) throw err;
      if (o.pause?.has(peer) === true) {
        o.pause.delete(peer);
        return { complete: false };
      }
      if (!tail || o.tailReaches === true) Object.assign(ours, peers.get(peer));
      return { complete: true };
    },
    onSyncDropped: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    penalise: (peer, count, reason) => penalties.push({ peer, count, reason }),
    unavailable: () => false,
    tailSyncMs: 60_000,
    signal: abort.signal,
    clock: { now: () => 1_704_067_200_000 },
    log: silentLogger,
  };
  return { r: new Reconciler(opts), ours, peers, syncs, prepared, penalties, abort };
}

describe('Reconciler (ledger/reconciler.ts)', () => {
  it('an equal summary is caught up without a sync; a different one syncs in full and then is caught up', async () => {
    const g = rig();
    g.peers.set('a', { stateHash: 'h0', events: 0 });
    await g.r.reconcile('a', 'full');
    assert.deepEqual(g.syncs, []);
    assert.deepEqual(g.prepared, ['a'], 'genesis key and checkpoints are learned before comparing');
    assert.equal(g.r.stats.caughtUp, true);
    assert.equal(g.r.stats.runs, 0);

    const h = rig();
    h.peers.set('b', { stateHash: 'h9', events: 9 });
    await h.r.reconcile('b', 'full');
    assert.deepEqual(h.syncs, [{ peer: 'b', tail: false }]);
    assert.equal(h.r.stats.caughtUp, true, 'a complete sync holds everything the peer had');
    assert.deepEqual({ runs: h.r.stats.runs, lastPeer: h.r.stats.lastPeer }, { runs: 1, lastPeer: 'b' });
  });

  it('the same hash while our replay is pending: no sync and not caught up (the hash is not final yet)', async () => {
    const g = rig();
    g.ours.replayPending = true;
    g.peers.set('a', { stateHash: 'h0', events: 0 });
    await g.r.reconcile('a', 'full');
    assert.equal(g.syncs.length, 0, 'nothing to pull: wait for the replay');
    assert.equal(g.r.stats.caughtUp, false);
  });

  it('a tail job pulls the last tailSyncMs only; a full sync follows only when the peer still knows more', async () => {
    const reached = rig({ tailReaches: true });
    reached.peers.set('a', { stateHash: 'h5', events: 5 });
    await reached.r.reconcile('a', 'tail');
    assert.deepEqual(reached.syncs, [{ peer: 'a', tail: true, maxPages: TAIL_SYNC_MAX_PAGES }]);
    assert.equal(reached.r.stats.caughtUp, true);

    const older = rig({ tailReaches: false });
    older.peers.set('a', { stateHash: 'h5', events: 5 });
    await older.r.reconcile('a', 'tail');
    assert.deepEqual(
      older.syncs.map((s) => s.tail),
      [true, false],
      'the difference is older than the tail: full sync',
    );
    assert.equal(older.r.stats.caughtUp, true);

    const fewer = rig({ tailReaches: false });
    fewer.ours.events = 7;
    fewer.peers.set('a', { stateHash: 'h5', events: 5 });
    await fewer.r.reconcile('a', 'tail');
    assert.equal(fewer.syncs.length, 1, 'the peer knows no more than we do: no full sync');
  });

  it('a sync paused on its budget is queued again behind the other peers', async () => {
    const g = rig({ pause: new Set(['a']) });
    g.peers.set('a', { stateHash: 'ha', events: 3 });
    g.peers.set('b', { stateHash: 'hb', events: 4 });
    g.r.enqueue('a', 'full');
    g.r.enqueue('b', 'full');
    g.r.enqueue('me', 'full');
    await g.r.drained();
    assert.deepEqual(
      g.syncs.map((s) => s.peer),
      ['a', 'b', 'a'],
      'a resumes after b; ourselves never',
    );
  });

  it('penalises a peer once per sync for garbage, not for admission or state drops, and also when the sync fails', async () => {
    const drops = new Map<string, (string | undefined)[]>([
      ['a', ['BAD_SIGNATURE', 'BAD_SIGNATURE', 'STALE', undefined]],
      ['b', ['STALE', 'FUTURE', 'QUOTA']],
      ['c', ['MALFORMED']],
    ]);
    const g = rig({ drops, fail: new Map([['c', new Error('connection reset')]]) });
    for (const p of ['a', 'b', 'c']) g.peers.set(p, { stateHash: `h${p}`, events: 1 });
    await g.r.reconcile('a', 'full');
    await g.r.reconcile('b', 'full');
    await assert.rejects(g.r.reconcile('c', 'full'), /connection reset/);
    assert.deepEqual(g.penalties, [
      { peer: 'a', count: 2, reason: 'BAD_SIGNATURE' },
      { peer: 'c', count: 1, reason: 'MALFORMED' },
    ]);
  });

  it('failures are counted; stop drops queued jobs', async () => {
    const g = rig();
    g.r.enqueue('x', 'full'); // unknown peer: theirs() throws
    await g.r.drained();
    assert.equal(g.r.stats.failures, 1);
    g.peers.set('a', { stateHash: 'ha', events: 1 });
    g.peers.set('b', { stateHash: 'hb', events: 1 });
    g.r.enqueue('a', 'full');
    g.r.enqueue('b', 'full');
    await g.r.stop();
    g.r.enqueue('a', 'full');
    await g.r.drained();
    assert.ok(g.syncs.length <= 1, `at most the job already running ran (${g.syncs.length})`);
    assert.equal(g.r.queued, 0);
  });
});
