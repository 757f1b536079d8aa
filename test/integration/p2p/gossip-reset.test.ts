/**
 * A gossipsub stream reset on a live connection (issue 12, "a joiner connected but outside gossip"). Two real libp2p
 * nodes on 127.0.0.1; one side's outbound gossipsub stream is aborted while the connection stays up. Upstream
 * gossipsub (17.1.1) never opens a stream again for a peer that stays connected, and the other side, whose inbound
 * stream ended with an error, forgets our subscriptions (see watchGossip in src/node/network.ts). The node's
 * watchdog must bring both sides back among each other's heartbeat-topic subscribers. Waits on conditions only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { createNodeNetwork, type NodeNetwork } from '../../../src/node/network.js';
import { heartbeatTopic } from '../../../src/protocols/ids.js';
import { waitFor } from '../../../src/util/abort.js';
import { LOOPBACK_TUNING, loopbackNodeOptions } from '../../utils/network.js';

const NETWORK_ID = 'itest' + randomBytes(4).toString('hex');

async function startNet(boot: string[]): Promise<NodeNetwork> {
  const net = await createNodeNetwork({
    networkId: NETWORK_ID,
    key: keyFromPrivate(randomBytes(32)),
    // heartbeats every second: the watchdog checks every max(5 s, 2 heartbeats) and acts on the 3rd miss
    options: loopbackNodeOptions({ bootstrap: boot, genesis: boot.length === 0, heartbeatIntervalMs: 1000 }),
    tuning: LOOPBACK_TUNING,
  });
  await net.start();
  return net;
}

describe('gossip after a stream reset on a live connection', { timeout: 300_000 }, () => {
  const nets: NodeNetwork[] = [];
  after(async () => {
    for (const n of nets.reverse()) await n.stop().catch(() => {});
  });

  it('the watchdog puts both peers back among the topic subscribers', async () => {
    const a = await startNet([]);
    nets.push(a);
    const b = await startNet(a.p2p.multiaddrs().filter((x) => x.includes('/tcp/')).slice(0, 1));
    nets.push(b);
    const topic = heartbeatTopic(NETWORK_ID);
    const bothSee = (): boolean => a.p2p.topicPeers(topic).includes(b.p2p.peerId) && b.p2p.topicPeers(topic).includes(a.p2p.peerId);
    await waitFor(bothSee, { timeoutMs: 60_000, intervalMs: 100, what: 'a and b subscribed to each other' });

    const conns = a.p2p.libp2p.getConnections(b.p2p.libp2p.peerId);
    const out = conns.flatMap((c) => c.streams).filter((s) => s.protocol?.includes('meshsub') === true && s.direction === 'outbound');
    assert.equal(out.length, 1, 'a holds one outbound gossipsub stream to b');
    out[0]!.abort(new Error('test: stream reset'));
    // b's inbound stream ended with an error: b drops a (upstream behaviour; the condition the watchdog exists for)
    await waitFor(() => !b.p2p.topicPeers(topic).includes(a.p2p.peerId), { timeoutMs: 30_000, intervalMs: 50, what: 'b forgets a after the reset' });
    assert.ok(a.p2p.libp2p.getConnections(b.p2p.libp2p.peerId).length > 0, 'the connection itself stays up');
    // the watchdog (3 misses, 5 s apart) hangs up and redials: both streams are opened again
    await waitFor(bothSee, { timeoutMs: 120_000, intervalMs: 200, what: 'a and b subscribed to each other again' });
    // and gossip flows again: a heartbeat from a reaches b
    let heard = false;
    const off = b.p2p.subscribe(topic, (m) => {
      if (m.from === a.p2p.peerId) heard = true;
    });
    try {
      await waitFor(() => heard, { timeoutMs: 60_000, intervalMs: 100, what: 'a heartbeat from a at b' });
    } finally {
      off();
    }
  });
});
