/**
 * The libp2p PeerId of the node key. libp2p derives the id of a secp256k1 key as the identity multihash of its
 * protobuf-encoded public key (37 bytes, so no SHA-256), printed base58btc: "16Uiu2HAm…". We let @libp2p/crypto and
 * @libp2p/peer-id compute it, so the id always equals what the libp2p node built from the same private key reports.
 */
import { privateKeyFromRaw, publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey as libp2pPeerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { InvalidPeerIdError } from './errors.js';
import type { NodeKey } from './mnemonic.js';
import { isValidPublicKey, PUBLIC_KEY_LENGTH } from './sign.js';

/** Longest PeerId string we parse (a secp256k1 id is 53 characters; RSA ids are longer and rejected anyway). */
const MAX_PEER_ID_LENGTH = 128;

const idCache = new Map<string, string>();
const pubCache = new Map<string, Uint8Array>();
const CACHE_MAX = 16384;

function remember<V>(m: Map<string, V>, k: string, v: V): void {
  if (m.size >= CACHE_MAX) m.delete(m.keys().next().value!);
  m.set(k, v);
}

/** The PeerId string of a 33-byte compressed secp256k1 public key. */
export function peerIdFromPublicKey(pub: Uint8Array): string {
  const k = Buffer.from(pub.buffer, pub.byteOffset, pub.byteLength).toString('hex');
  const hit = idCache.get(k);
  if (hit !== undefined) return hit;
  if (pub.byteLength !== PUBLIC_KEY_LENGTH || !isValidPublicKey(pub)) {
    throw new InvalidPeerIdError('PEER_ID_INVALID', 'public key must be a 33-byte compressed secp256k1 point');
  }
  const id = libp2pPeerIdFromPublicKey(publicKeyFromRaw(pub)).toString();
  remember(idCache, k, id);
  return id;
}

/**
 * The 33-byte compressed public key inside a secp256k1 PeerId string. Throws InvalidPeerIdError with code
 * PEER_ID_INVALID for a malformed string, PEER_ID_NOT_SECP256K1 for an Ed25519/RSA/URL id.
 */
export function publicKeyFromPeerId(peerId: string): Uint8Array {
  return new Uint8Array(peerIdKey(peerId));
}

/**
 * publicKeyFromPeerId without the copy, for checks that only read the key (issue 11 §4: the ledger parses the
 * peerId of every proof's HolderRecord twice, and each copy was an ArrayBuffer of its own). The array is the
 * cache's own entry: the caller must not write into it nor keep it.
 */
export function publicKeyViewFromPeerId(peerId: string): Uint8Array {
  return peerIdKey(peerId);
}

function peerIdKey(peerId: string): Uint8Array {
  if (typeof peerId !== 'string' || peerId.length === 0 || peerId.length > MAX_PEER_ID_LENGTH) {
    throw new InvalidPeerIdError('PEER_ID_INVALID', 'peer id must be a non-empty string of at most 128 characters');
  }
  const hit = pubCache.get(peerId);
  if (hit !== undefined) return hit;
  let parsed: ReturnType<typeof peerIdFromString>;
  try {
    parsed = peerIdFromString(peerId);
  } catch (e) {
    throw new InvalidPeerIdError('PEER_ID_INVALID', `malformed peer id: ${(e as Error).message}`, { peerId });
  }
  if (parsed.type !== 'secp256k1') {
    throw new InvalidPeerIdError('PEER_ID_NOT_SECP256K1', `peer id is a ${parsed.type} id; NeuroShard nodes use secp256k1 keys`, { peerId });
  }
  const raw = new Uint8Array(parsed.publicKey.raw);
  if (raw.byteLength !== PUBLIC_KEY_LENGTH) throw new InvalidPeerIdError('PEER_ID_INVALID', 'peer id does not hold a compressed secp256k1 key', { peerId });
  // Canonical form only: "the same key, spelled differently" would otherwise be two nodes.
  if (parsed.toString() !== peerId) throw new InvalidPeerIdError('PEER_ID_INVALID', 'peer id is not in canonical base58btc form', { peerId });
  remember(pubCache, peerId, raw);
  return raw;
}

/** The @libp2p/crypto private key object for the libp2p factory (node/ hands it to p2p/). */
export function libp2pPrivateKey(key: NodeKey): PrivateKey {
  return privateKeyFromRaw(key.privateKey);
}
