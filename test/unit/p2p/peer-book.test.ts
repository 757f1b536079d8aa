/**
 * The on-disk peer book keeps a peer's addresses through the peer store's merges, including one whose abort signal
 * has fired: kad-dht tags routing-table peers with a job signal that aborts at shutdown, and the peer store treats a
 * failed read as "no entry" and writes the tag alone over the addresses (the CI failure of integration/p2p/bootstrap:
 * a restarted node found an empty peer book and founded a network of its own).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { persistentPeerStore } from '@libp2p/peer-store';
import { TypedEventEmitter } from '@libp2p/interface';
import type { ComponentLogger, Logger } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { Key } from 'interface-datastore';
import '../../../src/util/polyfill.js';
import { openNodeDatastore } from '../../../src/p2p/datastore.js';
import { tempDir } from '../../utils/paths.js';

/** A logger that drops everything (the peer store logs through one). */
function quietLogger(): ComponentLogger {
  const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false, newScope: () => log }) as unknown as Logger;
  return { forComponent: () => log };
}

describe('peer book on disk', () => {
  const dirs: (() => void)[] = [];
  after(() => dirs.forEach((d) => d()));

  it('a read with an aborted signal still returns the stored entry', async () => {
    const t = tempDir();
    dirs.push(t.cleanup);
    const store = await openNodeDatastore(t.dir);
    const key = new Key('/peers/abc');
    await store.datastore.put(key, new Uint8Array([1, 2, 3]));
    const ac = new AbortController();
    ac.abort();
    assert.deepEqual(new Uint8Array(await store.datastore.get(key, { signal: ac.signal })), new Uint8Array([1, 2, 3]));
    await store.close();
  });

  it("a peer-store merge under an aborted signal keeps the peer's addresses, on disk across a reopen", async () => {
    const t = tempDir();
    dirs.push(t.cleanup);
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
    // the shutdown lands while the merge reads the stored entry (after it took the peer's lock): the first read
    // of an armed store fires the signal, then reads
    const ac = new AbortController();
    let armed = false;
    const open = async () => {
      const ds = await openNodeDatastore(t.dir);
      const inner = ds.datastore;
      const datastore = Object.assign(Object.create(inner) as typeof inner, {
        get: (k: Key, o?: { signal?: AbortSignal }) => {
          if (armed) {
            armed = false;
            ac.abort();
          }
          return inner.get(k, o);
        },
      });
      const ps = persistentPeerStore({ peerId: self, datastore, events: new TypedEventEmitter(), logger: quietLogger() });
      return { ds, ps };
    };
    const first = await open();
    await first.ps.merge(other, { multiaddrs: [multiaddr('/ip4/127.0.0.1/tcp/4001')], protocols: ['/x/1'] });
    armed = true;
    // what kad-dht's routing table does on peer add, with its job's signal
    await first.ps.merge(other, { tags: { 'kad-peer': { value: 1 } } }, { signal: ac.signal }).catch(() => {});
    assert.equal(ac.signal.aborted, true, 'the signal fired inside the merge');
    await first.ds.close();
    const second = await open();
    const peer = await second.ps.get(other);
    assert.deepEqual(peer.addresses.map((a) => a.multiaddr.toString()), ['/ip4/127.0.0.1/tcp/4001']);
    assert.deepEqual(peer.protocols, ['/x/1']);
    await second.ds.close();
  });
});
