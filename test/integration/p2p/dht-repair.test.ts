/**
 * The DHT routing table repairs itself (issue 8 §5, dht_lookup_success): kad-dht adds a peer to its routing table only
 * when it connects (after a ping) or shows up in a query's answer, and never retries a peer whose ping timed out. On
 * a loaded machine a node whose only contact's ping missed kept an empty table for good, and every lookup from it
 * failed. The network now re-queues connected members missing from the table (Libp2pNetwork.repairRoutingTable).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { createLibp2pNetwork, DHT_REPAIR_MS, type Libp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import { peerIdFromString } from '@libp2p/peer-id';
import { protocolPrefix } from '../../../src/protocols/ids.js';
import { waitFor } from '../../../src/util/abort.js';

const NET = 'dhtrepair' + randomBytes(3).toString('hex');

async function start(boot: string[]): Promise<Libp2pNetwork> {
  const net = await createLibp2pNetwork({
    privateKey: keyFromPrivate(randomBytes(32)).privateKey,
    protocolPrefix: protocolPrefix(NET),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: boot,
    genesis: boot.length === 0,
    mdns: false,
    upnp: false,
    autonat: false,
    dcutr: false,
    bootstrapRetry: { baseMs: 200, maxMs: 2000 },
  });
  await net.start();
  return net;
}

describe('DHT routing table repair', () => {
  const nets: Libp2pNetwork[] = [];
  after(async () => {
    await Promise.all(nets.map((n) => n.stop()));
  });

  it('a member dropped from the routing table (as after a timed-out ping) is added back while it stays connected', async () => {
    const a = await start([]);
    nets.push(a);
    const b = await start([a.multiaddrs()[0]!]);
    nets.push(b);
    // generous bounds: the machine may be loaded
    await waitFor(() => b.dhtRoutingTableSize() > 0, { timeoutMs: 120_000, intervalMs: 100, what: 'b has a in its routing table' });
    const rt = (b.libp2p.services.dht as unknown as { routingTable: { remove(p: unknown): Promise<void> } }).routingTable;
    await rt.remove(peerIdFromString(a.peerId));
    assert.equal(b.dhtRoutingTableSize(), 0, 'a was removed');
    assert.ok(b.connectedPeers().includes(a.peerId), 'still connected: kad-dht itself will not add it again');
    await waitFor(() => b.dhtRoutingTableSize() > 0, { timeoutMs: 20 * DHT_REPAIR_MS, intervalMs: 100, what: 'a back in b\'s routing table' });
    assert.ok(b.dhtRepairs >= 1, 'the repair re-queued it');
  });
});
