/**
 * What the ledger needs from the rest of the node, as interfaces: the network (gossip and sync) and the check of
 * an embedded HolderRecord's signature. Unit tests use the in-memory doubles (`memory-network.ts`,
 * `localHolderRecordVerifier`); node/ wires them to libp2p (issue #4) and to src/protocols/holder-record.ts.
 */
import type { AbortOptions } from '../util/abort.js';
import type { LedgerEvent } from './events.js';
import type { EmbeddedHolderRecord } from './holder.js';

/**
 * Checks that a HolderRecord's signature is the low-S secp256k1 signature of the key inside its peerId over the
 * record's canonical encoding (domain "neuroshard/holder-record/v1"). It must not look at the wall clock: the
 * ledger checks the record's validity period against the proof's timestamp itself. Its verdict must depend on the
 * record alone: the ledger caches acceptances by payload and signature.
 *
 * Its verdict is part of the ledger's validity rules, so every node must give the same one. Wire the ledger's own
 * `localHolderRecordVerifier` (signature only). protocols/' verifyHolderRecord would also work
 * (`{ verifySignature: (r) => verifyHolderRecord(r, { nowMs: r.timestampMs, maxSkewMs: 0 }).ok }`) but adds its
 * field rules, such as the canonical multiaddr spelling of @multiformats/multiaddr, to ledger validity: a proof a
 * new library version spells differently would then be valid on some nodes only.
 */
export interface HolderRecordVerifier {
  verifySignature(record: EmbeddedHolderRecord): boolean;
}

/** What a node answers when a peer syncs ledger events from it. */
export interface LedgerSyncHandler {
  /** Up to `limit` stored events in canonical order strictly after the order key `after` (null: from the start). */
  range(after: Uint8Array | null, limit: number): Uint8Array[];
  /** The stored events among `ids` (32-byte event ids), in any order. */
  byIds(ids: Uint8Array[]): Uint8Array[];
}

/** Limits a LedgerNetwork implementation must enforce on the sync protocol. */
export const LEDGER_SYNC_LIMITS = {
  /** Events per range page. */
  maxRange: 512,
  /** Ids per byIds request. */
  maxIds: 256,
  /** Bytes of one event on the wire (a slash event with its evidence is the largest). */
  maxEventBytes: 48 * 1024,
  /** Deadline of one sync call. */
  callTimeoutMs: 10_000,
  /**
   * Pages one syncFrom takes from a peer before it stops (256 × 512 = 131,072 events); the next sync with that
   * peer resumes where it stopped. A peer that keeps sending full pages cannot hold a sync forever.
   */
  maxPagesPerSync: 256,
  /** Wall time one syncFrom may take before it stops (and resumes next time). */
  maxSyncMs: 5 * 60_000,
  /**
   * Sync pages stored per SQLite transaction (LedgerService.syncFrom): a commit's fixed cost is paid once for these
   * pages. A crash loses at most these pages (fetched again at the next start), never part of one.
   */
  commitPages: 4,
  /**
   * Sync pages fetched (and handed to the verify pool) ahead of the pages being stored: the workers check the next
   * commit's pages during a commit. Pages ahead count toward maxHeldBytes with the held ones.
   */
  aheadPages: 4,
  /**
   * Bytes of fetched, not yet stored sync pages (held and ahead) at which the held ones are stored, whatever
   * commitPages says, and no further page is asked for.
   */
  maxHeldBytes: 16 * 1024 * 1024,
  /** What a held event counts beside its wire bytes toward maxHeldBytes (its decoded objects and result). */
  heldEventBytes: 1024,
} as const;

/**
 * The network as the ledger sees it: a gossip topic for new events, and request/response sync with peers.
 * Implementations deliver raw event bytes; the ledger validates everything itself.
 */
export interface LedgerNetwork {
  /** Broadcasts a signed event on the ledger gossip topic. */
  publish(event: Uint8Array, opts?: AbortOptions): Promise<void>;
  /** Calls `handler` for every event arriving by gossip (not for our own publishes). Returns unsubscribe. */
  subscribe(handler: (event: Uint8Array, from: string) => void): () => void;
  /** Peers that can currently be asked for sync. */
  syncPeers(): string[];
  /** Asks `peer` for a page of events after `after` in canonical order. Must honour opts.signal and a deadline. */
  fetchRange(peer: string, after: Uint8Array | null, limit: number, opts: AbortOptions): Promise<Uint8Array[]>;
  /**
   * fetchRange for an implementation that decodes the page to check it (order, cursor: protocols/ledger-sync.ts):
   * the page with what it decoded, so that the sync ingests those events instead of decoding each again
   * (LedgerService.syncFrom; issue 11 §4). Optional: without it the sync calls fetchRange.
   */
  fetchRangeDecoded?(peer: string, after: Uint8Array | null, limit: number, opts: AbortOptions): Promise<DecodedRangePage>;
  /** Asks `peer` for the events with these ids. */
  fetchByIds(peer: string, ids: Uint8Array[], opts: AbortOptions): Promise<Uint8Array[]>;
  /** Serves our own store to peers. Returns a function that stops serving. */
  serve(handler: LedgerSyncHandler): () => void;
}

/** A sync page and events.ts decodeEvents of it (fetchRangeDecoded). */
export interface DecodedRangePage {
  /** The wire bytes, as fetchRange returns them. */
  events: Uint8Array[];
  /** decodeEvents(events): each entry's decoded event (views of one private copy of the page), or its DecodeError. */
  decoded: (LedgerEvent | Error)[];
}
