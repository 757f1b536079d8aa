/**
 * The libp2p datastore. The peer book (`/peers/…`: addresses, protocols, public keys of peers we met) lives on
 * disk in the data dir, so a restarted node can redial the peers it knew; everything else (DHT records and
 * provider lists, which expire and are republished by their owners) stays in memory, so a restart never serves
 * stale records from disk.
 *
 * Everything a stranger can make us store has a quota (issue 11, attack 10: kad-dht stores any valid self-signed
 * record and any provider announcement, with no bound and no sweep of records): DHT records held for others, provider
 * entries per content key (one key per layer), per provider peer and in all, and peer-book entries. A put past a
 * quota is refused (DHT_QUOTA); replacing an entry already held always succeeds, so holders can refresh theirs.
 * Records and provider entries not refreshed within their longest lifetime are swept on later writes.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryDatastore, MountDatastore } from 'datastore-core';
import { FsDatastore } from 'datastore-fs';
import { Key, type Datastore, type KeyQuery, type Pair, type Query } from 'interface-datastore';
import { NetworkError } from './errors.js';

const PEERS_PREFIX = '/peers';
const RECORD_PREFIX = '/dht/record/';
const PROVIDER_PREFIX = '/dht/provider/';

export interface DhtStoreLimits {
  /** DHT records held for others, all signers together (a holder record key has one signer). Default 20,000. */
  maxRecords: number;
  /** Provider entries of one content key (one layer). Default 512. */
  maxProvidersPerKey: number;
  /** Content keys one provider peer may be listed under (the layers it holds). Default 1,024. */
  maxKeysPerProvider: number;
  /** Provider entries in all. Default 100,000. */
  maxProviderEntries: number;
  /** Peer-book entries (keys under /peers; a peer has a few). Default 50,000. */
  maxPeerBookEntries: number;
  /** A record not re-put for this long is swept (a holder record lives 24 h at most). Default 24 h. */
  recordMaxAgeMs: number;
  /** A provider entry not refreshed for this long is swept. Default 2 h (kad-dht's own validity is 1 h). */
  providerMaxAgeMs: number;
  /** Sweeps run on writes at most this often. Default 60 s. */
  sweepIntervalMs: number;
}

export const DHT_STORE_LIMITS: DhtStoreLimits = {
  maxRecords: 20_000,
  maxProvidersPerKey: 512,
  maxKeysPerProvider: 1_024,
  maxProviderEntries: 100_000,
  maxPeerBookEntries: 50_000,
  recordMaxAgeMs: 24 * 3600_000,
  providerMaxAgeMs: 2 * 3600_000,
  sweepIntervalMs: 60_000,
};

function quota(what: string, max: number): NetworkError {
  return new NetworkError('DHT_QUOTA', `refused to store: ${what} (at most ${max})`, { max });
}

/**
 * The in-memory part of the datastore with the quotas above. Entries are tracked in order of their last write, so
 * a sweep stops at the first entry young enough to keep.
 */
export class QuotaMemoryDatastore extends MemoryDatastore {
  private readonly limits: DhtStoreLimits;
  private readonly now: () => number;
  /** key → last write time, in order of last write. */
  private readonly records = new Map<string, number>();
  private readonly providers = new Map<string, number>();
  private readonly perKey = new Map<string, number>();
  private readonly perProvider = new Map<string, number>();
  private lastSweep = -Infinity;
  /** Puts refused by a quota, for tests and status. */
  refused = 0;

  constructor(limits: Partial<DhtStoreLimits> = {}, now: () => number = Date.now) {
    super();
    this.limits = { ...DHT_STORE_LIMITS, ...limits };
    this.now = now;
  }

  get recordCount(): number {
    return this.records.size;
  }

  get providerCount(): number {
    return this.providers.size;
  }

  override put(key: Key, val: Uint8Array, options?: { signal?: AbortSignal }): ReturnType<MemoryDatastore['put']> {
    const k = key.toString();
    const now = this.now();
    this.maybeSweep(now);
    if (k.startsWith(RECORD_PREFIX)) {
      if (!this.records.has(k) && this.records.size >= this.limits.maxRecords) throw this.refuse('DHT records held for others', this.limits.maxRecords);
      this.records.delete(k);
      this.records.set(k, now);
    } else if (k.startsWith(PROVIDER_PREFIX)) {
      const p = parseProvider(k);
      if (p !== undefined && !this.providers.has(k)) {
        if (this.providers.size >= this.limits.maxProviderEntries) throw this.refuse('provider entries', this.limits.maxProviderEntries);
        if ((this.perKey.get(p.key) ?? 0) >= this.limits.maxProvidersPerKey) throw this.refuse('providers of one key', this.limits.maxProvidersPerKey);
        if ((this.perProvider.get(p.peer) ?? 0) >= this.limits.maxKeysPerProvider) throw this.refuse('keys of one provider', this.limits.maxKeysPerProvider);
        this.perKey.set(p.key, (this.perKey.get(p.key) ?? 0) + 1);
        this.perProvider.set(p.peer, (this.perProvider.get(p.peer) ?? 0) + 1);
      }
      this.providers.delete(k);
      this.providers.set(k, now);
    }
    return super.put(key, val, options);
  }

  override delete(key: Key, options?: { signal?: AbortSignal }): ReturnType<MemoryDatastore['delete']> {
    this.forget(key.toString());
    return super.delete(key, options);
  }

  /** Removes records and provider entries not written within their longest lifetime. */
  sweep(now = this.now()): number {
    this.lastSweep = now;
    let n = 0;
    for (const [map, maxAge] of [[this.records, this.limits.recordMaxAgeMs], [this.providers, this.limits.providerMaxAgeMs]] as const) {
      for (const [k, at] of map) {
        if (now - at < maxAge) break;
        this.forget(k);
        void super.delete(new Key(k));
        n++;
      }
    }
    return n;
  }

  private maybeSweep(now: number): void {
    if (now - this.lastSweep >= this.limits.sweepIntervalMs) this.sweep(now);
  }

  private refuse(what: string, max: number): NetworkError {
    this.refused++;
    return quota(what, max);
  }

  private forget(k: string): void {
    if (this.records.delete(k)) return;
    if (!this.providers.delete(k)) return;
    const p = parseProvider(k);
    if (p === undefined) return;
    const dec = (m: Map<string, number>, x: string): void => {
      const c = (m.get(x) ?? 1) - 1;
      if (c <= 0) m.delete(x);
      else m.set(x, c);
    };
    dec(this.perKey, p.key);
    dec(this.perProvider, p.peer);
  }
}

/** The content key and provider peer of a provider entry key (/dht/provider/<key>/<peer>). */
function parseProvider(k: string): { key: string; peer: string } | undefined {
  const rest = k.slice(PROVIDER_PREFIX.length).split('/');
  if (rest.length !== 2) return undefined;
  return { key: rest[0]!, peer: rest[1]! };
}

/** The on-disk part: answers queries only for the peer book, so DHT lookups never glob the disk. */
class PeerBookFsDatastore extends FsDatastore {
  /** Entries written since open, beyond which new ones are refused (the peer book is on disk: a stranger's fresh
   * ids, each announced as a DHT provider, must not fill it). Counted per process; a restart starts again. */
  private written = new Set<string>();
  constructor(path: string, init: ConstructorParameters<typeof FsDatastore>[1], private readonly maxEntries: number) {
    super(path, init);
  }

  override async put(key: Key, val: Uint8Array, options?: { signal?: AbortSignal }): Promise<Key> {
    const k = key.toString();
    if (!this.written.has(k)) {
      if (this.written.size >= this.maxEntries) throw quota('peer-book entries', this.maxEntries);
      this.written.add(k);
    }
    return super.put(key, val, options);
  }

  /**
   * Reads ignore the caller's abort signal. The peer store's merge reads the stored entry and, when the read throws
   * anything but not-found, writes the new fields alone over it; kad-dht merges its routing-table tag with a job
   * signal that aborts at shutdown, so an aborted read wiped a peer's addresses from the book and a restarted node
   * founded a network of its own (CI, integration/p2p/bootstrap). A read of one small local file needs no abort.
   */
  override async get(key: Key): Promise<Uint8Array> {
    return super.get(key);
  }

  override async delete(key: Key, options?: { signal?: AbortSignal }): Promise<void> {
    this.written.delete(key.toString());
    return super.delete(key, options);
  }

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

/**
 * A datastore whose `/peers` prefix persists under `<dir>/peerstore`; `dir` undefined keeps it all in memory. DHT
 * records and provider entries held for others are under the quotas of `limits`.
 */
export async function openNodeDatastore(dir: string | undefined, limits: Partial<DhtStoreLimits> = {}): Promise<NodeDatastore & { memory: QuotaMemoryDatastore }> {
  const memory = new QuotaMemoryDatastore(limits);
  if (dir === undefined) {
    return { datastore: memory, memory, close: async () => {} };
  }
  const path = join(dir, 'peerstore');
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const fs = new PeerBookFsDatastore(path, { createIfMissing: true, extension: '.data' }, limits.maxPeerBookEntries ?? DHT_STORE_LIMITS.maxPeerBookEntries);
  await fs.open();
  const datastore = new MountDatastore([
    { prefix: new Key(PEERS_PREFIX), datastore: fs },
    { prefix: new Key('/'), datastore: memory },
  ]);
  return { datastore, memory, close: () => fs.close() };
}
