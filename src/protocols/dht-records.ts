/**
 * DHT record rules for the "neuroshard" key namespace. The only record kind today is a holder's own HolderRecord
 * under /neuroshard/<networkId>/holder/<peerId>: one signer per key, so holders never overwrite each other.
 *
 * The validator runs on every record a node stores for others, every record it returns and every record it reads,
 * and rejects: keys of another network or of an unknown kind, undecodable or oversized values, a record whose
 * peerId is not the key's (mis-keyed), a bad signature (forged or tampered), an expired record, and a record
 * signed too far in the future. The selector prefers the freshest valid record (latest timestamp, then latest
 * expiry); an invalid record is never selected.
 *
 * Per address block (./address-block.ts: an IPv4 /24, an IPv6 /48), records of at most `perBlock` distinct peers
 * are accepted at a time (each counted until its record expires); a record of one more peer of a full block is
 * rejected (`DHT_BLOCK_QUOTA`, not a misbehaviour of whoever passed it on) and never selected. Issue 12: fresh keys
 * cost nothing, so a flood of holder records from a few subnets is bounded by its subnets.
 */
import { createHash } from 'node:crypto';
import type { DhtNamespace } from '../p2p/types.js';
import { systemClock, type Clock } from '../util/clock.js';
import { NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { BlockQuota, recordBlock } from './address-block.js';
import { decodeHolderRecord, verifyHolderRecord, type HolderRecord } from './holder-record.js';
import { parseDhtKey } from './ids.js';

export interface HolderNamespaceOptions {
  networkId: string;
  /** Allowed clock skew between a record's signer and us. Default 60 s. */
  maxSkewMs?: number;
  clock?: Clock;
  /** Distinct peers per address block whose records are accepted at once. Default DHT_RECORDS_PER_BLOCK. */
  perBlock?: number;
}

/**
 * 64: a /24 is 254 hosts; a household, an office or a small hosting subnet rarely runs more holders than this, and
 * a flood needs 10× the honest holders of a layer to eclipse it (docs/SCALE.md), i.e. that many blocks. Tests on
 * 127.0.0.1 run at most a few dozen nodes in one block.
 */
export const DHT_RECORDS_PER_BLOCK = 64;
/** Peers the quota tracks in all (about 100 bytes each). */
const QUOTA_MAX_ENTRIES = 65_536;

function reject(code: string, message: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError(code, `DHT record rejected: ${message}`);
}

/** Decodes and checks a record stored under `key`; throws PeerMisbehaviourError. */
export function checkHolderRecord(key: Uint8Array, value: Uint8Array, opts: Required<Omit<HolderNamespaceOptions, 'clock' | 'perBlock'>> & { nowMs: number }): HolderRecord {
  const k = parseDhtKey(key);
  if (k === undefined) throw reject('DHT_KEY_MALFORMED', 'not a NeuroShard key');
  if (k.networkId !== opts.networkId) throw reject('DHT_WRONG_NETWORK', `key of network ${k.networkId}`);
  if (k.kind !== 'holder') throw reject('DHT_KEY_UNKNOWN', `unknown record kind ${k.kind.slice(0, 32)}`);
  const rec = decodeHolderRecord(value);
  if (rec.networkId !== opts.networkId) throw reject('DHT_WRONG_NETWORK', 'record of another network');
  if (rec.peerId !== k.subject) throw reject('DHT_MISKEYED', `record of ${rec.peerId} stored under ${k.subject}`);
  const v = verifyHolderRecord(rec, { nowMs: opts.nowMs, maxSkewMs: opts.maxSkewMs });
  if (!v.ok) throw reject(v.reason === 'expired' ? 'DHT_RECORD_EXPIRED' : v.reason === 'bad_signature' ? 'DHT_RECORD_FORGED' : 'DHT_RECORD_INVALID', v.message);
  return rec;
}

/** Most memoised verdicts (each ~4.6 KiB at worst). */
const MEMO_MAX = 2048;

export function holderRecordNamespace(opts: HolderNamespaceOptions): DhtNamespace {
  const clock = opts.clock ?? systemClock;
  const base = { networkId: opts.networkId, maxSkewMs: opts.maxSkewMs ?? 60_000 };
  // A DHT query sees the same record from many peers, and the selector checks them all again: remember which
  // (key, value) pairs verified, so a signature is checked once. Only the clock checks are repeated.
  const memo = new Map<string, HolderRecord>();
  const quota = new BlockQuota({ perBlock: opts.perBlock ?? DHT_RECORDS_PER_BLOCK, maxEntries: QUOTA_MAX_ENTRIES });
  const admitted = (rec: HolderRecord, nowMs: number): boolean => quota.admit(recordBlock(rec.multiaddrs), rec.peerId, rec.expiresMs, nowMs);
  const check = (key: Uint8Array, value: Uint8Array, nowMs: number): HolderRecord => {
    const id = createHash('sha256').update(key).update(value).digest('base64');
    const hit = memo.get(id);
    if (hit !== undefined) {
      if (hit.expiresMs <= nowMs) throw reject('DHT_RECORD_EXPIRED', `record expired ${nowMs - hit.expiresMs} ms ago`);
      if (hit.timestampMs > nowMs + base.maxSkewMs) throw reject('DHT_RECORD_INVALID', 'record signed in the future');
      return hit;
    }
    const rec = checkHolderRecord(key, value, { ...base, nowMs });
    if (memo.size >= MEMO_MAX) memo.delete(memo.keys().next().value!);
    memo.set(id, rec);
    return rec;
  };
  return {
    validate(key, value) {
      const nowMs = clock.now();
      const rec = check(key, value, nowMs);
      if (!admitted(rec, nowMs)) throw new NeuroShardError('DHT_BLOCK_QUOTA', `DHT record rejected: ${recordBlock(rec.multiaddrs)} already has records of ${opts.perBlock ?? DHT_RECORDS_PER_BLOCK} peers`);
    },
    select(key, values) {
      let best = -1;
      let bestRec: HolderRecord | undefined;
      const nowMs = clock.now();
      for (let i = 0; i < values.length; i++) {
        let rec: HolderRecord;
        try {
          rec = check(key, values[i]!, nowMs);
        } catch {
          continue;
        }
        if (!admitted(rec, nowMs)) continue;
        if (bestRec === undefined || rec.timestampMs > bestRec.timestampMs || (rec.timestampMs === bestRec.timestampMs && rec.expiresMs > bestRec.expiresMs)) {
          best = i;
          bestRec = rec;
        }
      }
      // kad-dht wants an index even when nothing is valid; 0 is then rejected again by the validator on use.
      return best < 0 ? 0 : best;
    },
  };
}
