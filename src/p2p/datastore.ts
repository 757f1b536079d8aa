/**
 * The libp2p datastore. The peer book (`/peers/…`: addresses, protocols, public keys of peers we met) lives on
 * disk in the data dir, so a restarted node can redial the peers it knew; everything else (DHT records and
 * provider lists, which expire and are republished by their owners) stays in memory, so a restart never serves
 * stale records from disk.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryDatastore, MountDatastore } from 'datastore-core';
import { FsDatastore } from 'datastore-fs';
import { Key, type Datastore, type KeyQuery, type Pair, type Query } from 'interface-datastore';

const PEERS_PREFIX = '/peers';

/** The on-disk part: answers queries only for the peer book, so DHT lookups never glob the disk. */
class PeerBookFsDatastore extends FsDatastore {
  override query(q: Query, options?: { signal?: AbortSignal }): Generator<Pair> | AsyncGenerator<Pair> {
    if (q.prefix !== undefined && !q.prefix.startsWith(PEERS_PREFIX)) return [][Symbol.iterator]() as unknown as Generator<Pair>;
    return super.query(q, options);
  }

  override queryKeys(q: KeyQuery, options?: { signal?: AbortSignal }): Generator<Key> | AsyncGenerator<Key> {
    if (q.prefix !== undefined && !q.prefix.startsWith(PEERS_PREFIX)) return [][Symbol.iterator]() as unknown as Generator<Key>;
    return super.queryKeys(q, options);
  }
}

export interface NodeDatastore {
  datastore: Datastore;
  close(): Promise<void>;
}

/** A datastore whose `/peers` prefix persists under `<dir>/peerstore`; `dir` undefined keeps it all in memory. */
export async function openNodeDatastore(dir: string | undefined): Promise<NodeDatastore> {
  if (dir === undefined) {
    return { datastore: new MemoryDatastore(), close: async () => {} };
  }
  const path = join(dir, 'peerstore');
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const fs = new PeerBookFsDatastore(path, { createIfMissing: true, extension: '.data' });
  await fs.open();
  const datastore = new MountDatastore([
    { prefix: new Key(PEERS_PREFIX), datastore: fs },
    { prefix: new Key('/'), datastore: new MemoryDatastore() },
  ]);
  return { datastore, close: () => fs.close() };
}
