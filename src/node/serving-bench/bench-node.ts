/**
 * The libp2p nodes of the serving benches (bench.ts and the two-process hop, hop-2p.ts): one shape, bench tuning (no
 * discovery, an ephemeral peer store), heartbeats at a chosen pace.
 */
import { randomBytes } from 'node:crypto';
import { keyFromPrivate } from '../../identity/index.js';
import type { HopCompute } from '../../protocols/inference.js';
import { createNodeNetwork, NETWORK_TUNING_DEFAULTS, type NodeNetwork } from '../network.js';
import { DEFAULTS as OPTION_DEFAULTS } from '../options.js';

const TUNING = { ephemeralPeerStore: true, inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 100, retryBaseMs: 200, retryMaxMs: 2000, pubsubHeartbeatMs: 300, autonat: false, dcutr: false };

/**
 * Background rates of the nodes. 'fast' (heartbeats every second, gossipsub's every 300 ms) lets the failover
 * section see liveness change quickly. 'deployed' is a node's defaults (options.ts heartbeats every 5 s, gossipsub's
 * heartbeat every second): the chain and batch sections time decoding, and with 'fast' the five nodes of a 4-hop
 * chain, all in this process on a 2-core machine, spent ~100 ms of CPU a second on gossip and its signatures
 * (measured while the chain idled), taken from the hops' compute on the same cores: about 5 ms a token at 20 tok/s,
 * which a node on its own machine never pays for four others.
 */
export type Pace = 'fast' | 'deployed';
export const PACE: Record<Pace, { heartbeatIntervalMs: number; peerStaleMs: number; peerDeadMs: number; pubsubHeartbeatMs: number }> = {
  fast: { heartbeatIntervalMs: 1000, peerStaleMs: 5000, peerDeadMs: 20_000, pubsubHeartbeatMs: 300 },
  deployed: { heartbeatIntervalMs: OPTION_DEFAULTS.heartbeatIntervalMs, peerStaleMs: OPTION_DEFAULTS.peerStaleMs, peerDeadMs: OPTION_DEFAULTS.peerDeadMs, pubsubHeartbeatMs: NETWORK_TUNING_DEFAULTS.pubsubHeartbeatMs },
};

/** Lanes in the serving sections: the node's default (off), set with NEUROSHARD_RPC_LANE=1 or =0 (A/B runs). */
export const BENCH_LANE = process.env.NEUROSHARD_RPC_LANE === undefined ? OPTION_DEFAULTS.rpcLane : process.env.NEUROSHARD_RPC_LANE !== '0';

/** One bench node on 127.0.0.1 (a genesis node when `boot` is empty). */
export async function net(networkId: string, boot: string[], span?: { start: number; end: number }, pace: Pace = 'fast', rpcLane: boolean = BENCH_LANE): Promise<NodeNetwork> {
  const p = PACE[pace];
  const n = await createNodeNetwork({
    networkId,
    key: keyFromPrivate(randomBytes(32)),
    options: {
      dataDir: '/nonexistent',
      listen: ['/ip4/127.0.0.1/tcp/0'],
      announce: [],
      bootstrap: boot,
      trackers: [],
      genesis: boot.length === 0,
      mdns: false,
      upnp: false,
      relay: false,
      relayDataLimitMb: 256,
      relayDurationS: 600,
      maxConnections: 200,
      span,
      rpcLane,
      heartbeatIntervalMs: p.heartbeatIntervalMs,
      peerStaleMs: p.peerStaleMs,
      peerDeadMs: p.peerDeadMs,
    },
    tuning: { ...TUNING, pubsubHeartbeatMs: p.pubsubHeartbeatMs },
  });
  await n.start();
  return n;
}

/** The identity hop [1, 2) of width C: protocol overhead only (the one-process rig, bench.ts openHop, and the child of hop-2p.ts). */
export function identityHop(C: number): HopCompute {
  return {
    span: () => ({ start: 1, end: 2 }),
    numLayers: 3,
    hiddenSize: C,
    vocabSize: 10,
    contextLength: 1 << 16,
    kvBytesPerPosition: () => 0,
    open: async () => {},
    step: async (_id, input) => ({ hidden: input.hidden! }),
    close: async () => {},
  };
}
