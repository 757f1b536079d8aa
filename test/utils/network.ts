/**
 * Real libp2p test nodes on 127.0.0.1 (createNodeNetwork): every node option set, so that a test names only what
 * it changes, and the tuning that lets many in-process nodes dial each other on one host without waiting.
 */
import { randomBytes } from 'node:crypto';
import { keyFromPrivate, type NodeKey } from '../../src/identity/index.js';
import { createNodeNetwork, type NetworkNodeOptions, type NetworkTuning, type NodeNetwork } from '../../src/node/network.js';
import { createLibp2pNetwork, type Libp2pNetwork, type Libp2pNetworkOptions } from '../../src/p2p/libp2p-node.js';
import { protocolPrefix } from '../../src/protocols/ids.js';

/**
 * A node listening on a free 127.0.0.1 TCP port, with no discovery beyond what the test passes (no mDNS, UPnP,
 * bootstrap peers or trackers), no relay service and no layers; `over` replaces any field.
 */
export function loopbackNodeOptions(over: Partial<NetworkNodeOptions> = {}): NetworkNodeOptions {
  return {
    dataDir: '/nonexistent',
    listen: ['/ip4/127.0.0.1/tcp/0'],
    announce: [],
    bootstrap: [],
    trackers: [],
    genesis: false,
    mdns: false,
    upnp: false,
    relay: false,
    relayDataLimitMb: 256,
    relayDurationS: 600,
    maxConnections: 200,
    span: undefined,
    heartbeatIntervalMs: 1000,
    peerStaleMs: 5000,
    peerDeadMs: 20_000,
    ...over,
  };
}

/**
 * Peer book in memory; no per-IP inbound rate limit to speak of (every node shares 127.0.0.1); quick bootstrap
 * retries and gossipsub heartbeats; no AutoNAT or hole punching (nothing to learn on loopback).
 */
export const LOOPBACK_TUNING: Readonly<Partial<NetworkTuning>> = Object.freeze({
  ephemeralPeerStore: true,
  inboundConnectionThreshold: 1000,
  maxIncomingPendingConnections: 100,
  retryBaseMs: 200,
  retryMaxMs: 2000,
  pubsubHeartbeatMs: 300,
  autonat: false,
  dcutr: false,
});

/**
 * A started loopback node for the multi-node training tests: holds `span`, joins through `boot` (founds the network
 * when empty), and heartbeats every 500 ms (stale after 5 s, dead after 15 s) so that round membership settles fast.
 */
export async function startTrainingNet(networkId: string, key: NodeKey, span: { start: number; end: number }, boot: string[]): Promise<NodeNetwork> {
  const net = await createNodeNetwork({
    networkId,
    key,
    options: loopbackNodeOptions({ span, bootstrap: boot, genesis: boot.length === 0, heartbeatIntervalMs: 500, peerStaleMs: 5000, peerDeadMs: 15_000 }),
    tuning: LOOPBACK_TUNING,
  });
  await net.start();
  return net;
}

/**
 * A started loopback node for the serving tests: holds `span` (none when undefined), joins through `boot` (founds
 * the network when empty) with `key` (a fresh one by default), and heartbeats every 300 ms so that the registry
 * settles fast.
 */
export async function startServingNet(
  networkId: string,
  span: { start: number; end: number } | undefined,
  boot: string[],
  key: NodeKey = keyFromPrivate(randomBytes(32)),
): Promise<NodeNetwork> {
  const net = await createNodeNetwork({
    networkId,
    key,
    options: loopbackNodeOptions({ span, bootstrap: boot, genesis: boot.length === 0, heartbeatIntervalMs: 300 }),
    tuning: LOOPBACK_TUNING,
  });
  await net.start();
  return net;
}

/**
 * A started bare libp2p node (createLibp2pNetwork, no node around it) on a free 127.0.0.1 port with a fresh key:
 * no mDNS, UPnP, AutoNAT or hole punching; `over` replaces any field.
 */
export async function startLoopbackLibp2p(networkId: string, over: Partial<Libp2pNetworkOptions> = {}): Promise<Libp2pNetwork> {
  const net = await createLibp2pNetwork({
    privateKey: randomBytes(32),
    protocolPrefix: protocolPrefix(networkId),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    genesis: true,
    mdns: false,
    upnp: false,
    autonat: false,
    dcutr: false,
    ...over,
  });
  await net.start();
  return net;
}

/**
 * Reads exactly n bytes from a libp2p stream's iterator (chunks may be Uint8Arrays or Uint8ArrayLists), failing the
 * test if the stream ends first.
 */
export async function readN(it: AsyncIterator<Uint8Array | { byteLength: number; subarray(): Uint8Array }>, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await it.next();
    if (r.done === true) throw new Error(`stream ended after ${got} of ${n} bytes`);
    const c = r.value instanceof Uint8Array ? r.value : r.value.subarray();
    out.set(c, got);
    got += c.byteLength;
  }
  return out;
}
