/**
 * Content keys for DHT provider records. kad-dht announces providers of CIDs; we name content by arbitrary bytes
 * (the caller's key, e.g. a namespaced string) and hash them into a CIDv1 (raw codec, sha2-256).
 */
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';
import { sha256 } from '../util/bytes.js';

const RAW_CODEC = 0x55;
const SHA2_256 = 0x12;

export function contentCid(contentKey: Uint8Array): CID {
  return CID.createV1(RAW_CODEC, Digest.create(SHA2_256, sha256(contentKey)));
}
