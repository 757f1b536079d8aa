/**
 * The network part of the node's composition: from the node options and the node key it builds the libp2p node
 * (p2p/), the RPC layer with its built-in handlers, heartbeats and liveness, the DHT layer registry, and (when
 * trackers are configured) the tracker client, and wires them together:
 *
 *   - the DHT validates NeuroShard records with the HolderRecord rules (protocols/dht-records.ts);
 *   - the registry skips peers the liveness tracker knows to be dead, and re-publishes on (re)joining;
 *   - tracker results feed the bootstrapper; our signed record is what the tracker client announces, and a signed
 *     withdrawal is what it sends those trackers on stop (first thing in stop(), while the network is still up);
 *   - a leaving heartbeat tells the peers we stop (`leave`, which stop() runs first when the node did not): they
 *     mark us dead at once rather than after peerDeadMs of silence (protocols/heartbeat.ts);
 *   - the peer score table is shared by RPC (penalties) and libp2p's connection gater (bans).
 *
 * A node founds a network only when told to (`--genesis`), or when it was given neither bootstrap peers nor
 * trackers and its peer book (persisted in the data dir) is empty; otherwise it dials what it knows, keeps
 * retrying with backoff, and reports `connecting`/`retrying` — it never founds a second network by accident.
 */
import '../util/polyfill.js';
import { freemem } from 'node:os';
import { keyFromPrivate, type NodeKey } from '../identity/index.js';
import { holderRecordAddrs } from '../ledger/work.js';
import { createLibp2pNetwork, RELAY_DEFAULTS, type GossipMesh, type Libp2pNetwork, type Libp2pNetworkOptions } from '../p2p/libp2p-node.js';
import { LaneManager, type LaneOptions } from '../p2p/lane/manager.js';
import { PeerScoreTable } from '../p2p/peer-score.js';
import type { BootstrapStatus } from '../p2p/types.js';
import { holderRecordNamespace } from '../protocols/dht-records.js';
import { echoHandler } from '../protocols/handlers/echo.js';
import { shardInfoHandler } from '../protocols/handlers/shard-info.js';
import { HeartbeatService, type HeartbeatSource } from '../protocols/heartbeat.js';
import { dialAddresses, encodeHolderRecord, freshHolderRecord, type HolderCapacity, type HolderRecord, type LayerSpan } from '../protocols/holder-record.js';
import { DHT_NAMESPACE, heartbeatTopic, laneProtocolId, protocolPrefix } from '../protocols/ids.js';
import { KNOWN_MAX, LayerRegistry } from '../protocols/layer-registry.js';
import { LivenessTracker, type PeerLiveness } from '../protocols/liveness.js';
import * as methods from '../protocols/methods.js';
import { RpcNode } from '../protocols/rpc/service.js';
import { TrackerClient } from '../protocols/tracker-client.js';
import { signTrackerWithdrawal } from '../protocols/tracker-withdrawal.js';
import { systemClock, type Clock } from '../util/clock.js';
import { errorMessage, NeuroShardError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { DEFAULTS, type NodeOptions } from './options.js';

/** The node options this module reads. */
export type NetworkNodeOptions = Pick<
  NodeOptions,
  | 'dataDir'
  | 'listen'
  | 'announce'
  | 'bootstrap'
  | 'trackers'
  | 'genesis'
  | 'mdns'
  | 'upnp'
  | 'relay'
  | 'relayDataLimitMb'
  | 'relayDurationS'
  | 'maxConnections'
  | 'heartbeatIntervalMs'
  | 'peerStaleMs'
  | 'peerDeadMs'
> & {
  /** A span held from the start (`--span a:b`); undefined when the layer pool decides later, or never. */
  span: LayerSpan | undefined;
  /** The node will hold layers later (`--span auto`): trackers hear from it once holdSpan is called. */
  holdsLayersLater?: boolean;
  /** Unary RPCs reuse streams (NodeOptions.rpcStreamReuse); default DEFAULTS.rpcStreamReuse. */
  rpcStreamReuse?: boolean;
  /** RPC streams over direct data lanes (NodeOptions.rpcLane, lanePort); defaults in DEFAULTS. */
  rpcLane?: boolean;
  lanePort?: number;
};

/** Knobs that are not node options: tests shorten them, the benchmark widens them. */
export interface NetworkTuning {
  /** Keep the peer book in memory instead of `<dataDir>/peerstore`. */
  ephemeralPeerStore: boolean;
  /** Register the echo RPC (tests, benchmarks). */
  echo: boolean;
  /** Lifetime and re-publish period of our HolderRecord in the DHT. */
  recordTtlMs: number;
  republishMs: number;
  /** Bootstrap retry backoff. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Inbound connections per second from one IP (raise for many nodes on 127.0.0.1). */
  inboundConnectionThreshold: number;
  maxIncomingPendingConnections: number;
  dialTimeoutMs: number;
  /** Gossipsub mesh heartbeat. */
  pubsubHeartbeatMs: number;
  /** Gossipsub's mesh degree and gossip parameters (p2p/libp2p-node.ts `pubsub.mesh`); absent: js-gossipsub's. */
  pubsubMesh?: Partial<GossipMesh>;
  /** Yamux stream window (throughput). */
  yamuxWindowBytes: number;
  autonat: boolean;
  dcutr: boolean;
  /** DHT server or client; default server, client for a node that listens only through relays. */
  dhtMode?: 'server' | 'client';
  /** The whole Libp2pNetworkOptions escape hatch, applied last. */
  libp2p: Partial<Libp2pNetworkOptions>;
  /** Lane limits over LANE_DEFAULTS (tests shorten the retry). */
  lane: Partial<LaneOptions>;
}

export const NETWORK_TUNING_DEFAULTS: NetworkTuning = {
  ephemeralPeerStore: false,
  echo: false,
  recordTtlMs: 10 * 60_000,
  republishMs: 3 * 60_000,
  retryBaseMs: 1000,
  retryMaxMs: 60_000,
  inboundConnectionThreshold: 5,
  maxIncomingPendingConnections: 10,
  dialTimeoutMs: 10_000,
  pubsubHeartbeatMs: 1000,
  yamuxWindowBytes: 16 << 20,
  autonat: true,
  dcutr: true,
  libp2p: {},
  lane: {},
};

export interface NodeNetworkInit {
  networkId: string;
  key: NodeKey;
  options: NetworkNodeOptions;
  tuning?: Partial<NetworkTuning>;
  /** Current figures for heartbeats and shard info; defaults read the OS and the held span. */
  status?: Partial<HeartbeatSource> & { capacity?: () => HolderCapacity; totalLayers?: () => number; modelHash?: () => string; version?: () => bigint };
  clock?: Clock;
  log?: Logger;
}

export interface NetworkStatus {
  peerId: string;
  networkId: string;
  addresses: string[];
  bootstrap: BootstrapStatus;
  connectedPeers: number;
  span: LayerSpan | undefined;
  peers: PeerLiveness[];
}

export interface NodeNetwork {
  readonly networkId: string;
  readonly peerId: string;
  readonly p2p: Libp2pNetwork;
  readonly rpc: RpcNode;
  /** Direct data lanes (undefined when `rpcLane` is off). */
  readonly lanes: LaneManager | undefined;
  readonly scores: PeerScoreTable;
  readonly liveness: LivenessTracker;
  readonly heartbeat: HeartbeatService;
  readonly registry: LayerRegistry;
  readonly tracker: TrackerClient | undefined;
  /** True when this node founded the network (final once started). */
  readonly genesis: boolean;
  start(): Promise<void>;
  /**
   * Tells the peers we are leaving (one signed heartbeat with `leaving` set; no heartbeat after it), waiting at most
   * LEAVE_PUBLISH_TIMEOUT_MS for it to go out; at once without peers or when not started. Connections stay up, so
   * the node can finish what it is doing while new routes already avoid it. Never rejects.
   */
  leave(): Promise<void>;
  /** Graceful leave: say so (`leave`), stop announcing, withdraw, close connections. */
  stop(): Promise<void>;
  /** Holds (and announces) a new span of layers. */
  holdSpan(span: LayerSpan): Promise<void>;
  /** A freshly signed HolderRecord of ours (what trackers are told). */
  signedRecord(): HolderRecord;
  /** Feeds verified holder records (e.g. from a tracker) to the bootstrapper and the peer book. */
  addPeers(records: HolderRecord[]): Promise<void>;
  status(): NetworkStatus;
}

/** Where the lane listener binds: loopback when libp2p listens only there (tests, benches), else every IPv4 address. */
function laneHost(listen: readonly string[]): string {
  return listen.length > 0 && listen.every((a) => a.startsWith('/ip4/127.')) ? '127.0.0.1' : '0.0.0.0';
}

export async function createNodeNetwork(init: NodeNetworkInit): Promise<NodeNetwork> {
  const { networkId, key, options: o } = init;
  const t: NetworkTuning = { ...NETWORK_TUNING_DEFAULTS, ...init.tuning };
  const clock = init.clock ?? systemClock;
  const log = init.log ?? silentLogger;
  const scores = new PeerScoreTable({ clock });
  // Founding needs --genesis, or no bootstrap peer, no tracker and an empty peer book (decided at start).
  const genesis: boolean | 'auto' = o.genesis ? true : o.bootstrap.length === 0 && o.trackers.length === 0 ? 'auto' : false;
  const relayOnly = o.listen.length > 0 && o.listen.every((a) => a.endsWith('/p2p-circuit'));
  // keyFromPrivate re-derives the public key: a key whose halves disagree fails here, not on the wire
  const nodeKey = keyFromPrivate(key.privateKey);

  let tracker: TrackerClient | undefined;
  let selfPeerId = '';
  const p2pOpts: Libp2pNetworkOptions = {
    privateKey: nodeKey.privateKey,
    protocolPrefix: protocolPrefix(networkId),
    listen: o.listen,
    announce: o.announce,
    bootstrap: o.bootstrap,
    genesis,
    dataDir: t.ephemeralPeerStore ? undefined : o.dataDir,
    mdns: o.mdns ? { serviceTag: `_ns-${networkId.slice(0, 16).replace(/[^A-Za-z0-9-]/g, '-')}._udp.local` } : false,
    upnp: o.upnp,
    relay: o.relay ? { ...RELAY_DEFAULTS, dataLimitBytes: o.relayDataLimitMb * 1024 * 1024, durationLimitMs: o.relayDurationS * 1000 } : false,
    autonat: t.autonat,
    dcutr: t.dcutr,
    dht: { namespaces: { [DHT_NAMESPACE]: holderRecordNamespace({ networkId, clock }) }, mode: t.dhtMode ?? (relayOnly ? 'client' : 'server') },
    pubsub: { heartbeatIntervalMs: t.pubsubHeartbeatMs, ...(t.pubsubMesh === undefined ? {} : { mesh: t.pubsubMesh }) },
    connections: {
      maxConnections: o.maxConnections,
      inboundConnectionThreshold: t.inboundConnectionThreshold,
      maxIncomingPendingConnections: t.maxIncomingPendingConnections,
      dialTimeoutMs: t.dialTimeoutMs,
    },
    yamux: { windowBytes: t.yamuxWindowBytes },
    bootstrapRetry: { baseMs: t.retryBaseMs, maxMs: t.retryMaxMs },
    candidateSource: o.trackers.length === 0 ? undefined : (signal) => tracker!.candidates({ exclude: selfPeerId, signal }),
    scores,
    log: log.child('p2p'),
    ...t.libp2p,
  };
  const p2p = await createLibp2pNetwork(p2pOpts);
  selfPeerId = p2p.peerId;
  const lanes = (o.rpcLane ?? DEFAULTS.rpcLane)
    ? new LaneManager(p2p, laneProtocolId(networkId), { listenHost: laneHost(o.listen), port: o.lanePort ?? DEFAULTS.lanePort, ...t.lane }, log.child('lane'))
    : undefined;
  const rpc = new RpcNode({ network: p2p, networkId, scores, log: log.child('rpc'), reuseStreams: o.rpcStreamReuse ?? DEFAULTS.rpcStreamReuse, lanes });
  const liveness = new LivenessTracker({ staleMs: o.peerStaleMs, deadMs: o.peerDeadMs, clock });
  const capacity = init.status?.capacity ?? (() => ({ memoryMb: Math.floor(freemem() / (1 << 20)), tokensPerSec: 0 }));
  // how we hold our weights: signed into our HolderRecord (which placement and route choice trust) and in heartbeats
  const weights = init.status?.weights ?? ((): 'f32' | 'int8' => 'f32');
  const registry = new LayerRegistry({
    network: p2p,
    networkId,
    key: nodeKey,
    self: () => ({ multiaddrs: p2p.multiaddrs(), capacity: capacity(), weights: weights() }),
    isDead: (peer) => liveness.isDead(peer),
    isAlive: (peer) => liveness.state(peer) === 'alive',
    // peers seen serving (liveness `keep`, wired by node/serving.ts) whose heartbeats cover the layer: asked first
    known: (layer) => liveness.keptHolders(layer, KNOWN_MAX),
    fetchDirect: async (peer, signal) => (await rpc.call(peer, methods.holderRecord, {}, { signal })).record,
    recordTtlMs: t.recordTtlMs,
    republishMs: t.republishMs,
    clock,
    log: log.child('registry'),
  });
  const span = (): LayerSpan | undefined => registry.heldSpan() ?? o.span ?? undefined;
  const hbSource: HeartbeatSource = {
    span: init.status?.span ?? span,
    load: init.status?.load ?? (() => 0),
    freeMemoryMb: init.status?.freeMemoryMb ?? (() => freemem() / (1 << 20)),
    trainingStep: init.status?.trainingStep ?? (() => 0n),
    weights,
  };
  const heartbeat = new HeartbeatService({ network: p2p, networkId, liveness, source: hbSource, intervalMs: o.heartbeatIntervalMs, clock, log: log.child('heartbeat') });
  const signedRecord = (): HolderRecord => {
    const s = span() ?? { start: 0, end: 1 };
    return freshHolderRecord(nodeKey, { networkId, multiaddrs: holderRecordAddrs(p2p.multiaddrs(), p2p.peerId), span: s, capacity: capacity(), weights: weights() }, clock.now(), t.recordTtlMs);
  };
  if (o.trackers.length > 0) {
    // A HolderRecord names a span, so only a node that holds layers announces; every node asks for peers.
    tracker = new TrackerClient(
      { trackers: o.trackers, networkId },
      {
        record: o.span === undefined && o.holdsLayersLater !== true ? undefined : () => signedRecord(),
        withdrawal: o.span === undefined && o.holdsLayersLater !== true ? undefined : () => signTrackerWithdrawal(nodeKey, { networkId, timestampMs: clock.now() }),
        clock,
        logger: log.child('tracker'),
      },
    );
    tracker.on('peers:found', ({ peers }) => void addPeers(peers));
  }
  const addPeers = async (records: HolderRecord[]): Promise<void> => {
    const infos = records.filter((r) => r.peerId !== p2p.peerId && r.networkId === networkId).map((r) => ({ id: r.peerId, multiaddrs: tracker?.dialAddresses(r) ?? dialAddresses(r) }));
    await p2p.addBootstrapPeers(infos);
  };

  let started = false;
  let unsubBootstrap: (() => void) | undefined;
  /** Set once `leave` ran: it runs once (stop() runs it too). */
  let left = false;
  const net: NodeNetwork = {
    networkId,
    peerId: p2p.peerId,
    p2p,
    rpc,
    lanes,
    scores,
    liveness,
    heartbeat,
    registry,
    tracker,
    get genesis() {
      return p2p.isGenesis();
    },
    async start() {
      if (started) return;
      started = true;
      left = false;
      await p2p.start();
      // a lane listener that cannot start (port taken) leaves the node on libp2p alone
      await lanes?.start().catch((e: unknown) => log.warn('lane listener did not start; RPCs use libp2p only', { error: errorMessage(e) }));
      await rpc.handle(
        methods.shardInfo,
        shardInfoHandler({
          peerId: p2p.peerId,
          span,
          totalLayers: init.status?.totalLayers ?? (() => span()?.end ?? 0),
          modelHash: init.status?.modelHash ?? (() => ''),
          version: init.status?.version ?? (() => 0n),
          freeMemoryMb: hbSource.freeMemoryMb,
          load: hbSource.load,
        }),
      );
      await rpc.handle(methods.holderRecord, () => {
        const rec = registry.currentRecord();
        if (rec === undefined) throw new NeuroShardError('NOT_HOLDING', 'this node holds no layers', { fault: 'caller' });
        return { record: encodeHolderRecord(rec) };
      });
      if (t.echo) await rpc.handle(methods.echo, echoHandler);
      heartbeat.start();
      const stopGossipWatch = watchGossip(p2p, heartbeatTopic(networkId), Math.max(5000, 2 * o.heartbeatIntervalMs), log);
      // a banned peer loses its connections too (the gater refuses new ones until the ban ends)
      const offBan = scores.events.on('peer:banned', ({ peer, reason }) => {
        log.warn('banning a misbehaving peer', { peer, reason });
        void p2p.hangUp(peer).catch(() => {});
      });
      // (re)joining: our record and provider entries may only have reached ourselves so far
      const offState = p2p.events.on('bootstrap:state', (s) => {
        if (s.state === 'connected') void registry.publishNow().catch(() => {});
      });
      // the first DHT peer: until now our record and provider entries only reached ourselves
      let dhtPeers = 0;
      const offDht = p2p.events.on('dht:peers', ({ size }) => {
        if (dhtPeers === 0 && size > 0) void registry.publishNow().catch(() => {});
        dhtPeers = size;
      });
      unsubBootstrap = () => {
        stopGossipWatch();
        offState();
        offDht();
        offBan();
      };
      if (o.span != null) {
        await registry.announce(o.span).catch((e: unknown) => log.warn('announcing our span failed', { error: errorMessage(e) }));
      }
      // a node whose span comes later announces to trackers from its first holdSpan on
      if (o.span !== undefined || o.holdsLayersLater !== true) tracker?.start();
      log.info('network up', { peerId: p2p.peerId, networkId, genesis: p2p.isGenesis(), addresses: p2p.multiaddrs() });
    },
    async leave() {
      if (!started || left) return;
      left = true;
      const t0 = clock.now();
      const sent = await heartbeat.leave();
      if (sent) log.info('told our peers we are leaving', { ms: clock.now() - t0 });
    },
    async stop() {
      if (!started) {
        await p2p.stop();
        return;
      }
      // first, while every connection is up: peers stop routing to us now, not after peerDeadMs
      await net.leave();
      started = false;
      unsubBootstrap?.();
      await tracker?.stop();
      heartbeat.stop();
      await registry.withdraw();
      await rpc.close();
      await lanes?.stop();
      await p2p.stop();
    },
    holdSpan: async (s) => {
      await registry.announce(s);
      if (started) tracker?.start();
    },
    signedRecord,
    addPeers,
    status: () => ({
      peerId: p2p.peerId,
      networkId,
      addresses: p2p.multiaddrs(),
      bootstrap: p2p.bootstrapStatus(),
      connectedPeers: p2p.connectedPeers().length,
      span: span(),
      peers: liveness.snapshot(),
    }),
  };
  return net;
}

/**
 * Reconnects member peers that gossip never reached. Found by scripts/chaos.mjs: a joiner that connected while the
 * machine was loaded kept a libp2p connection to the genesis node (identified, RPC worked) but neither side had the
 * other among the heartbeat topic's subscribers, for minutes: no heartbeats either way, so the joiner's pool waited
 * for "heartbeats that name a holder" forever and nobody else learned of it. A member missing from the topic's
 * subscribers on `strikes` checks in a row is hung up and dialled again, which makes gossipsub start over.
 *
 * The cause is upstream, in @libp2p/gossipsub 17.1.1's stream management (read in node_modules, not patched here):
 * - it opens its one outbound stream per peer only when the registrar reports a connection after identify
 *   (`onPeerConnected`) or when the peer opens an inbound stream to us (`onIncomingStream`); `createOutboundStream`
 *   skips a peer that already has one, and logs and forgets a `newStream` that fails (negotiation timing out on a
 *   loaded machine);
 * - so with two connections to one peer (both sides dialled at once: the tracker, the pool and bootstrap each dial)
 *   the stream lives on whichever was identified first; when that connection closes (pruned, or dropped by a link
 *   cut or a partition while the other survives), the stream closes, its entry goes, and nothing opens another
 *   while the other connection stays up; a stream reset on a live connection (a stalled yamux window under load)
 *   ends the same way;
 * - and the other side, seeing its inbound stream end with an error, treats it as a disconnect (`handlePeerReadStream
 *   Error` → `onPeerDisconnected` → `removePeer`): it forgets our subscriptions and closes its own outbound stream
 *   to us, so neither side has the other.
 * Upstream: ChainSafe/js-libp2p-gossipsub#456 ("GossipSub treats Stream reset as Peer Disconnect": streams are only
 * created on connect or an inbound stream, never re-established while connected), and libp2p/js-libp2p#3531, which
 * removes closed outbound streams so a *reconnect* creates a new one and names "re-establishing a stream that closes
 * while its connection stays open" as a follow-up it leaves open. Hence the hang-up: a fresh connection is the one
 * event that makes gossipsub open both streams again. Remove this watchdog once upstream re-opens streams itself.
 */
function watchGossip(p2p: Libp2pNetwork, topic: string, everyMs: number, log: Logger, strikes = 3): () => void {
  const missing = new Map<string, number>();
  let busy = false;
  const check = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const subs = new Set(p2p.topicPeers(topic));
      const members = p2p.memberPeers();
      for (const peer of missing.keys()) if (!members.includes(peer)) missing.delete(peer);
      for (const peer of members) {
        if (subs.has(peer)) {
          missing.delete(peer);
          continue;
        }
        const n = (missing.get(peer) ?? 0) + 1;
        if (n < strikes) {
          missing.set(peer, n);
          continue;
        }
        missing.delete(peer);
        log.info('a connected peer is not in the gossip mesh: reconnecting', { peer });
        await p2p.hangUp(peer, { signal: AbortSignal.timeout(10_000) }).catch(() => {});
        await p2p.dial(peer, { signal: AbortSignal.timeout(10_000) }).catch((e: unknown) => log.debug('redial after a gossip reset failed', { peer, error: errorMessage(e) }));
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void check(), everyMs);
  timer.unref?.();
  return () => clearInterval(timer);
}
