/**
 * A smaller gossipsub mesh still delivers (docs/LIMITS.md "Session 30: heartbeat fan-out, measured"): six real
 * nodes on 127.0.0.1, every pair connected, with `pubsubMesh` D 2 (Dlo 1, Dhi 3) instead of js-gossipsub's 6/4/12.
 * Each node's heartbeat mesh settles within [Dlo, Dhi] (with the defaults every node meshes with all five others),
 * every node hears every other's heartbeats, and ledger-like messages on a second topic reach every other node.
 * Waits on conditions only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { createNodeNetwork, type NodeNetwork } from '../../../src/node/network.js';
import { heartbeatTopic, topicId } from '../../../src/protocols/ids.js';
import { waitFor } from '../../../src/util/abort.js';
import { LOOPBACK_TUNING, loopbackNodeOptions } from '../../utils/network.js';

const NETWORK_ID = 'itest' + randomBytes(4).toString('hex');
const N = 6;
const MESH = { D: 2, Dlo: 1, Dhi: 3 };

describe('gossip with a smaller mesh', { timeout: 300_000 }, () => {
  const nets: NodeNetwork[] = [];
  after(async () => {
    await Promise.all(nets.map((n) => n.stop().catch(() => {})));
  });

  it('meshes stay within Dlo..Dhi, heartbeats and ledger-like messages reach every node', async () => {
    const got = new Map<number, Set<string>>();
    const topic = topicId(NETWORK_ID, 'meshprobe');
    for (let i = 0; i < N; i++) {
      const boot = i === 0 ? [] : nets[0]!.p2p.multiaddrs().filter((x) => x.includes('/tcp/')).slice(0, 1);
      const net = await createNodeNetwork({
        networkId: NETWORK_ID,
        key: keyFromPrivate(randomBytes(32)),
        options: loopbackNodeOptions({ bootstrap: boot, genesis: i === 0, heartbeatIntervalMs: 500 }),
        tuning: { ...LOOPBACK_TUNING, pubsubMesh: MESH },
      });
      await net.start();
      nets.push(net);
      const seen = new Set<string>();
      got.set(i, seen);
      net.p2p.subscribe(topic, (m) => seen.add(Buffer.from(m.data).toString('hex')));
    }
    for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) await nets[i]!.p2p.dial(nets[j]!.p2p.multiaddrs()[0]!, { signal: AbortSignal.timeout(30_000) });
    for (const n of nets) assert.equal((n.p2p.libp2p.services.pubsub as unknown as { opts: { D: number } }).opts.D, MESH.D);

    const hb = heartbeatTopic(NETWORK_ID);
    // getMeshPeers is js-gossipsub's, not in the PubSub interface libp2p types the service with
    const meshes = (t: string): number[] => nets.map((n) => (n.p2p.libp2p.services.pubsub as unknown as { getMeshPeers(topic: string): string[] }).getMeshPeers(t).length);
    await waitFor(() => meshes(hb).every((m) => m >= MESH.Dlo && m <= MESH.Dhi) && meshes(topic).every((m) => m >= MESH.Dlo && m <= MESH.Dhi), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: `every mesh within ${MESH.Dlo}..${MESH.Dhi}`,
    });
    const alive = (n: NodeNetwork): number => n.liveness.snapshot().filter((p) => p.state === 'alive').length;
    await waitFor(() => nets.every((n) => alive(n) === N - 1), { timeoutMs: 60_000, intervalMs: 100, what: 'every node hears every other' });

    // ledger-like messages: two from each node, each must reach the five others
    const sent: { from: number; hex: string }[] = [];
    for (let k = 0; k < 2; k++) {
      for (let i = 0; i < N; i++) {
        const m = randomBytes(300);
        sent.push({ from: i, hex: m.toString('hex') });
        await nets[i]!.p2p.publish(topic, m);
      }
    }
    const missing = (): number => sent.reduce((s, x) => s + [...got].filter(([i, seen]) => i !== x.from && !seen.has(x.hex)).length, 0);
    await waitFor(() => missing() === 0, { timeoutMs: 30_000, intervalMs: 50, what: 'every message at every other node' });
    assert.equal(missing(), 0);
  });
});
