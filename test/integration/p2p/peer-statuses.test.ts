/**
 * `GET /api/peers` (and `neuroshard peers`) names each peer's addresses from the peer book of a real libp2p node:
 * until session 29 the node wired `addresses: []`, so `neuroshard peers` printed `-` in every row.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { peerStatuses } from '../../../src/node/node.js';
import type { Libp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import type { PeerLiveness } from '../../../src/protocols/liveness.js';
import { startLoopbackLibp2p } from '../../utils/network.js';

describe('the peers view', () => {
  const nets: Libp2pNetwork[] = [];
  after(async () => {
    for (const n of nets) await n.stop();
  });

  it("lists a dialled peer's listen address, its span and liveness; a peer the book does not know has none", async () => {
    const a = await startLoopbackLibp2p('peers-view');
    nets.push(a);
    const b = await startLoopbackLibp2p('peers-view');
    nets.push(b);
    await a.dial(b.multiaddrs()[0]!);
    const heard = (peer: string, span: { start: number; end: number } | undefined): PeerLiveness => ({
      peer,
      state: 'alive',
      lastSeenMs: 1_700_000_000_000,
      heartbeat: { peerId: peer, span, load: 0, freeMemoryMb: 0, trainingStep: 0n, timestampMs: 1_700_000_000_000, seq: 1n },
    });
    const unknown = '16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi';
    const view = await peerStatuses([heard(b.peerId, { start: 0, end: 2 }), heard(unknown, undefined)], (p) => a.peerAddresses(p));
    const bListen = b.multiaddrs()[0]!.replace(/\/p2p\/.*$/, '');
    assert.ok(view[0]!.addresses.includes(bListen), `${JSON.stringify(view[0]!.addresses)} lacks ${bListen}`);
    assert.deepEqual({ ...view[0]!, addresses: [] }, { peerId: b.peerId, addresses: [], span: { start: 0, end: 2 }, liveness: 'alive', lastSeenMs: 1_700_000_000_000 });
    assert.deepEqual(view[1], { peerId: unknown, addresses: [], span: null, liveness: 'alive', lastSeenMs: 1_700_000_000_000 });
    const failing = await peerStatuses([heard(b.peerId, undefined)], () => Promise.reject(new Error('peer store closed')));
    assert.deepEqual(failing[0]!.addresses, []);
  });
});
