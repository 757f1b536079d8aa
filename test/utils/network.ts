/**
 * Real libp2p test nodes on 127.0.0.1 (createNodeNetwork): every node option set, so that a test names only what
 * it changes, and the tuning that lets many in-process nodes dial each other on one host without waiting.
 */
import type { NetworkNodeOptions, NetworkTuning } from '../../src/node/network.js';

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
