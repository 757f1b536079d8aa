/**
 * A real node fills `HolderView.block` (route choice's exploration draws per address block) from the address its
 * connection to the holder runs over (issue 12): two libp2p nodes on 127.0.0.1, the holder heartbeats its span, and
 * the other node's route-choice view of it names the block 'ip4 127.0.0.1', whatever address the holder announces.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { createNodeNetwork, type NodeNetwork } from '../../../src/node/network.js';
import { observedBlocks, peerHolderViews } from '../../../src/node/serving.js';
import { LatencyTable } from '../../../src/router/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { loopbackNodeOptions, LOOPBACK_TUNING } from '../../utils/network.js';

const genesis = bundledGenesis();

async function startNet(span: { start: number; end: number } | undefined, boot: string[], announce: string[] = []): Promise<NodeNetwork> {
  const net = await createNodeNetwork({
    networkId: genesis.networkId,
    key: keyFromPrivate(randomBytes(32)),
    options: loopbackNodeOptions({ span, bootstrap: boot, genesis: boot.length === 0, heartbeatIntervalMs: 300, announce }),
    tuning: LOOPBACK_TUNING,
  });
  await net.start();
  return net;
}

describe('route choice view: the address block a holder is connected from', () => {
  const nets: NodeNetwork[] = [];
  after(async () => {
    for (const n of nets.reverse()) await n.stop().catch(() => {});
  });

  it('names the holder by the block of its connection (IPv4 /24), not by the address it announces', { timeout: 60_000 }, async () => {
    const entry = await startNet(undefined, []);
    nets.push(entry);
    // the holder announces an address in another block; its connection to the entry runs over 127.0.0.1
    const holder = await startNet({ start: 0, end: 2 }, [entry.p2p.multiaddrs()[0]!], ['/ip4/203.0.113.9/tcp/4001']);
    nets.push(holder);
    const latency = new LatencyTable();
    await waitFor(() => peerHolderViews(entry, latency, new Map()).some((v) => v.peerId === holder.peerId), { timeoutMs: 30_000, intervalMs: 100, what: "the holder's heartbeat at the entry" });
    const view = peerHolderViews(entry, latency, new Map()).find((v) => v.peerId === holder.peerId)!;
    assert.equal(view.block, 'ip4 127.0.0');
    assert.equal(observedBlocks(entry).get(holder.peerId), 'ip4 127.0.0');
    // a peer the entry has no connection to has no block (route choice counts it as a block of its own)
    assert.equal(observedBlocks(entry).get('16Uiu2HAmNotConnected'), undefined);
  });
});
