/**
 * A node that stops gracefully tells its peers at once (protocols/heartbeat.ts `leave`): three real libp2p nodes on
 * 127.0.0.1; one stops (NodeNetwork.stop, which Node.close and SIGTERM reach); the other two mark it dead within a
 * bound far below peerDeadMs (20 s here: before the leaving heartbeat they waited that long), the route choice's view
 * leaves it out, and the same key started again is alive again in both views.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { peerHolderViews } from '../../../src/node/serving.js';
import { LatencyTable } from '../../../src/router/measure.js';
import { waitFor } from '../../../src/util/abort.js';
import { loopbackNodeOptions, startServingNet } from '../../utils/network.js';

const NETWORK_ID = 'leaving-test';
/** Time from stop() to both peers marking the leaver dead: its stop, one gossip hop, the validation (2 cores, shared). */
const BOUND_MS = 3000;

describe('a leaving heartbeat on 127.0.0.1', { timeout: 120_000 }, () => {
  const nodes: NodeNetwork[] = [];
  after(async () => {
    for (const n of nodes) await n.stop();
  });

  it('two peers see a stopped node dead at once, not after peerDeadMs; a restart with its key revives it', async () => {
    // the defaults of the loopback nodes: dead after 20 s of silence, the bound a stop without the heartbeat took
    assert.ok(loopbackNodeOptions().peerDeadMs >= 4 * BOUND_MS);
    const a = await startServingNet(NETWORK_ID, { start: 0, end: 2 }, []);
    nodes.push(a);
    const boot = [a.p2p.multiaddrs()[0]!];
    const b = await startServingNet(NETWORK_ID, { start: 2, end: 4 }, boot);
    nodes.push(b);
    const key = keyFromPrivate(randomBytes(32));
    const c = await startServingNet(NETWORK_ID, { start: 2, end: 4 }, boot, key);
    const all = (): NodeNetwork[] => [a, b, c];
    await waitFor(() => all().every((n) => all().every((m) => m === n || n.liveness.state(m.peerId) === 'alive')), { timeoutMs: 30_000, what: 'every node sees the other two alive' });
    // and c is a candidate in the route choice of a (its heartbeat names 2:4)
    assert.ok(peerHolderViews(a, new LatencyTable(), new Map()).some((v) => v.peerId === c.peerId));

    const observers = [a, b];
    const deaths = observers.map((n) => n.liveness.events.waitFor('peer:dead', { timeoutMs: BOUND_MS * 2, pred: (p) => p.peer === c.peerId }));
    const t0 = performance.now();
    await c.stop();
    const stopMs = performance.now() - t0;
    const seen = await Promise.all(deaths);
    const deadMs = performance.now() - t0;
    console.log(`stop() took ${stopMs.toFixed(0)} ms; both peers marked it dead ${deadMs.toFixed(0)} ms after stop() began`);
    assert.ok(deadMs <= BOUND_MS, `dead after ${deadMs} ms (bound ${BOUND_MS} ms; peerDeadMs ${loopbackNodeOptions().peerDeadMs})`);
    for (const [i, p] of seen.entries()) {
      assert.equal(p.state, 'dead');
      assert.equal(observers[i]!.liveness.get(c.peerId)?.leftAtMs, p.heartbeat.timestampMs, 'dead because it left');
      assert.equal(observers[i]!.liveness.isDead(c.peerId), true);
    }
    // the route choice no longer counts c (route.ts chooses over these views); b still serves 2:4
    const views = peerHolderViews(a, new LatencyTable(), new Map());
    assert.ok(!views.some((v) => v.peerId === c.peerId), JSON.stringify(views));
    assert.ok(views.some((v) => v.peerId === b.peerId));
    // a and b, which did not leave, are still alive to each other (nobody else was marked)
    assert.equal(a.liveness.state(b.peerId), 'alive');
    assert.equal(b.liveness.state(a.peerId), 'alive');

    // the same key comes back: its heartbeats are dated after its leaving one
    const again = await startServingNet(NETWORK_ID, { start: 2, end: 4 }, boot, key);
    nodes.push(again);
    await waitFor(() => observers.every((n) => n.liveness.state(c.peerId) === 'alive' && n.liveness.get(c.peerId)?.leftAtMs === undefined), { timeoutMs: 30_000, what: 'the restarted node alive again' });
  });
});
