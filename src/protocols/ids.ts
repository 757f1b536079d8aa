/**
 * Names on the wire. The network id (a hash of the genesis configuration and tokenizer) is part of every
 * protocol id, topic, DHT key and provider key, so nodes of two networks never exchange a message:
 *
 *   protocols   /neuroshard/<networkId>/<name>/<version>       (RPCs and the DHT: /neuroshard/<networkId>/kad/1.0.0)
 *               /neuroshard/<networkId>/<name>/<version>/mux/2.0.0   (unary RPCs on a reused stream: rpc/mux.ts)
 *               /neuroshard/<networkId>/lane/1.0.0             (setup of a direct data lane: p2p/lane/manager.ts)
 *   topics      /neuroshard/<networkId>/<name>/<version>       (gossipsub)
 *   DHT keys    /neuroshard/<networkId>/holder/<peerId>        (kad-dht record namespace "neuroshard")
 *   providers   <networkId>/layer/<i>                          (hashed into a CID by p2p/)
 */
import { InvalidArgumentError } from '../util/errors.js';

export const PROTOCOL_ROOT = 'neuroshard';
/** The kad-dht record namespace: the first path segment of every NeuroShard DHT key. */
export const DHT_NAMESPACE = PROTOCOL_ROOT;

// The same alphabet as HolderRecord's networkId; no '/' so it stays one path segment.
const NETWORK_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const NAME_RE = /^[a-z][a-z0-9-]{0,47}$/;
const VERSION_RE = /^\d{1,4}\.\d{1,4}\.\d{1,4}$/;

export function assertNetworkId(networkId: string): void {
  if (typeof networkId !== 'string' || !NETWORK_ID_RE.test(networkId)) {
    throw new InvalidArgumentError(`network id must be 1-128 characters of A-Z a-z 0-9 . _ -: ${JSON.stringify(networkId)}`);
  }
}

/** "/neuroshard/<networkId>": the prefix p2p/ uses for the DHT protocol and to recognise members. */
export function protocolPrefix(networkId: string): string {
  assertNetworkId(networkId);
  return `/${PROTOCOL_ROOT}/${networkId}`;
}

export function protocolId(networkId: string, name: string, version = '1.0.0'): string {
  if (!NAME_RE.test(name)) throw new InvalidArgumentError(`bad protocol name ${JSON.stringify(name)}`);
  if (!VERSION_RE.test(version)) throw new InvalidArgumentError(`bad protocol version ${JSON.stringify(version)}`);
  return `${protocolPrefix(networkId)}/${name}/${version}`;
}

/** The setup protocol of direct data lanes (p2p/lane/manager.ts). */
export function laneProtocolId(networkId: string): string {
  return protocolId(networkId, 'lane', '1.0.0');
}

export function topicId(networkId: string, name: string, version = '1'): string {
  if (!NAME_RE.test(name)) throw new InvalidArgumentError(`bad topic name ${JSON.stringify(name)}`);
  return `${protocolPrefix(networkId)}/${name}/${version}`;
}

export function heartbeatTopic(networkId: string): string {
  return topicId(networkId, 'heartbeat');
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

/** The DHT key of a holder's own record: /neuroshard/<networkId>/holder/<peerId>. */
export function holderKey(networkId: string, peerId: string): Uint8Array {
  assertNetworkId(networkId);
  return enc.encode(`/${DHT_NAMESPACE}/${networkId}/holder/${peerId}`);
}

export interface ParsedDhtKey {
  networkId: string;
  kind: string;
  /** The rest of the key after the kind: the peer id for holder keys. */
  subject: string;
}

/** Splits a NeuroShard DHT key; undefined when it is not one (wrong namespace, shape or encoding). */
export function parseDhtKey(key: Uint8Array): ParsedDhtKey | undefined {
  if (key.byteLength > 256) return undefined;
  let s: string;
  try {
    s = dec.decode(key);
  } catch {
    return undefined;
  }
  const parts = s.split('/');
  if (parts.length !== 5 || parts[0] !== '' || parts[1] !== DHT_NAMESPACE) return undefined;
  const [, , networkId, kind, subject] = parts as [string, string, string, string, string];
  if (!NETWORK_ID_RE.test(networkId) || kind.length === 0 || subject.length === 0) return undefined;
  return { networkId, kind, subject };
}

/** The provider key of layer i: "<networkId>/layer/<i>" (p2p/ hashes it into a CID). */
export function layerContentKey(networkId: string, layer: number): Uint8Array {
  assertNetworkId(networkId);
  if (!Number.isInteger(layer) || layer < 0 || layer > 65535) throw new InvalidArgumentError(`bad layer index ${layer}`);
  return enc.encode(`${networkId}/layer/${layer}`);
}
