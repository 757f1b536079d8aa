/**
 * The real network: a libp2p 3 node behind our P2PNetwork interface.
 *
 * Transports TCP and WebSocket (plus circuit relay v2 for dialling and listening through relays), noise
 * encryption, yamux multiplexing, identify, ping, kad-dht on a private protocol id, gossipsub with StrictSign
 * message signing, autonat, an optional relay server with limits raised for bulk traffic, UPnP port mapping,
 * dcutr (opportunistic hole punching), mDNS, connection limits, a peer book persisted in the data dir, and a
 * connection gater that refuses peers the score table has banned.
 *
 * Everything network-specific arrives through options: `protocolPrefix` (e.g. "/app/<network id>") names the DHT
 * protocol and decides which peers count as members of our network; DHT namespaces carry their validators.
 */
import '../util/polyfill.js';
import { createHash } from 'node:crypto';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { autoNAT } from '@libp2p/autonat';
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { privateKeyFromRaw } from '@libp2p/crypto/keys';
import { dcutr } from '@libp2p/dcutr';
import { gossipsub, StrictSign, TopicValidatorResult, type GossipSub } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { Libp2p, PeerId, Stream, Connection, PeerInfo } from '@libp2p/interface';
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht';
import { mdns } from '@libp2p/mdns';
import { peerIdFromString } from '@libp2p/peer-id';
import { ping } from '@libp2p/ping';
import { tcp } from '@libp2p/tcp';
import { uPnPNAT } from '@libp2p/upnp-nat';
import { webSockets } from '@libp2p/websockets';
import { isMultiaddr, multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { createLibp2p } from 'libp2p';
import { linkSignals, type AbortOptions } from '../util/abort.js';
import { ConfigError, InvalidArgumentError, errorMessage } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { Bootstrapper } from './bootstrap.js';
import { contentCid } from './content-key.js';
import { NetworkError } from './errors.js';
import { openNodeDatastore, type NodeDatastore } from './datastore.js';
import { hostKey } from './peer-score.js';
import { multiaddrHost } from '../util/ip.js';
import { installFastSecp256k1 } from './fast-secp256k1.js';
import { coalesceTcpWrites } from './tcp-coalesce.js';
import { installLengthPrefixFastPath } from './length-prefix-decoder.js';
import { installYamuxLazyWindow } from './yamux-window.js';
import type { PeerScoreTable } from './peer-score.js';
import type {
  BootstrapStatus,
  DhtNamespace,
  DuplexStream,
  HandleOptions,
  OpenStreamOptions,
  P2PEvents,
  P2PNetwork,
  PeerAddressInfo,
  PeerIdString,
  ProtocolHandler,
  PubSubMessage,
  TopicValidator,
} from './types.js';

/** Most dial candidates remembered from outside (issue 11 item 13: they were kept forever, every one). */
export const MAX_EXTRA_CANDIDATES = 256;
/** A candidate from outside not named again for this long is forgotten (trackers re-announce every 20 s). */
export const EXTRA_CANDIDATE_TTL_MS = 30 * 60_000;

export interface RelayServerOptions {
  /** Peers that may hold a reservation at once. */
  maxReservations: number;
  /** Bytes one relayed connection may carry before the relay resets it (raised for tensor traffic). */
  dataLimitBytes: number;
  /** How long one relayed connection may stay open. */
  durationLimitMs: number;
  /** How long a reservation lasts before the client must renew it. */
  reservationTtlMs: number;
}

export interface ConnectionLimitOptions {
  maxConnections: number;
  /** Inbound connections per second from one IP before it is refused. */
  inboundConnectionThreshold: number;
  /** Inbound connections still in the handshake at once. */
  maxIncomingPendingConnections: number;
  dialTimeoutMs: number;
}

export interface Libp2pNetworkOptions {
  /** The node's raw 32-byte secp256k1 private key (node/ hands it over; p2p/ never reads key files). */
  privateKey: Uint8Array;
  /** Prefix of network-private protocol ids, e.g. "/app/<network id>". The DHT speaks `${prefix}/kad/1.0.0`. */
  protocolPrefix: string;
  /** Multiaddrs to listen on; an address ending in /p2p-circuit listens through that relay. */
  listen: string[];
  /** Multiaddrs to announce instead of the listen addresses (e.g. a public address behind port forwarding). */
  announce?: string[];
  /** Multiaddrs (with /p2p/<id>) to join through. */
  bootstrap?: string[];
  /**
   * True for the founder of a network: it reports `genesis` instead of waiting for peers. 'auto': found a network
   * only when the peer book is empty at start (a restarted node that knew peers rejoins them instead).
   */
  genesis: boolean | 'auto';
  /** More dial targets for each bootstrap round (e.g. peers a tracker knows); failures are logged and ignored. */
  candidateSource?: (signal: AbortSignal) => Promise<string[]>;
  /** Where the peer book persists; undefined keeps it in memory (tests). */
  dataDir?: string;
  /** LAN discovery; the service tag keeps networks apart on one LAN. */
  mdns?: { serviceTag: string; intervalMs?: number } | false;
  upnp?: boolean;
  /** Offer a circuit relay to peers that cannot be dialled directly. */
  relay?: RelayServerOptions | false;
  autonat?: boolean;
  dcutr?: boolean;
  dht?: {
    namespaces?: Record<string, DhtNamespace>;
    /** `server` answers DHT queries; `client` only asks (a node that cannot be dialled). Default server. */
    mode?: 'server' | 'client';
    /**
     * Peers asked in parallel per query, and disjoint lookup paths (S/Kademlia). kad-dht's 10/10 suits the public
     * IPFS DHT; at our sizes it turns every lookup into a flood of streams. Default 3/3.
     */
    alpha?: number;
    disjointPaths?: number;
    /** How long a provider record is kept by the peers that store it. */
    providerValidityMs?: number;
    /** How often we check which of our provider records need re-announcing, and how early before expiry. */
    reprovideIntervalMs?: number;
    reprovideThresholdMs?: number;
  };
  pubsub?: {
    /** Largest gossipsub RPC accepted from a peer. */
    maxMessageBytes?: number;
    /** Gossipsub heartbeat (mesh maintenance) interval. */
    heartbeatIntervalMs?: number;
    /**
     * Gossipsub's mesh and gossip parameters (js-gossipsub's names; absent: its defaults D 6, Dlo 4, Dhi 12, Dout 2,
     * Dlazy 6, gossipFactor 0.25, idontwantMinDataSize 512, floodPublish true). They apply to every topic of the node (heartbeats and
     * ledger events share them). Every heartbeat is forwarded to each mesh peer, so D sets the frames a node sends
     * and receives per heartbeat in the network (docs/LIMITS.md "Session 30: heartbeat fan-out, measured");
     * for experiments, not set by any node today.
     */
    mesh?: Partial<GossipMesh>;
  };
  connections?: Partial<ConnectionLimitOptions>;
  /** Yamux per-stream window and frame size: the throughput knobs. */
  yamux?: { windowBytes?: number; maxMessageBytes?: number };
  bootstrapRetry?: { baseMs?: number; maxMs?: number };
  /** Peer book entries older than this lose their addresses. */
  peerAddressTtlMs?: number;
  scores?: PeerScoreTable;
  log?: Logger;
}

const EMPTY = new Uint8Array(0);
/** Bound on adding one peer to the DHT routing table (its ping included); kad-dht's own is 10 s. */
const DHT_ADD_TIMEOUT_MS = 30_000;
/** How often a node checks for members missing from its DHT routing table (repairRoutingTable). */
export const DHT_REPAIR_MS = 5_000;

export const CONNECTION_DEFAULTS: ConnectionLimitOptions = {
  maxConnections: 300,
  inboundConnectionThreshold: 5,
  maxIncomingPendingConnections: 10,
  dialTimeoutMs: 10_000,
};

export const RELAY_DEFAULTS: RelayServerOptions = {
  maxReservations: 32,
  dataLimitBytes: 1 << 30,
  durationLimitMs: 30 * 60_000,
  reservationTtlMs: 2 * 3600_000,
};

interface Services extends Record<string, unknown> {
  identify: unknown;
  ping: unknown;
  dht: KadDHT;
  pubsub: GossipSub;
}

// Parsing a secp256k1 PeerId decompresses its public key (~0.3 ms of @noble/curves): remember parsed ids.
const PEER_ID_CACHE_MAX = 4096;
const peerIds = new Map<string, PeerId>();

/** js-gossipsub's own defaults for the parameters `pubsub.mesh` may set. */
export const GOSSIP_MESH_DEFAULTS = Object.freeze({ D: 6, Dlo: 4, Dhi: 12, Dout: 2, Dlazy: 6, gossipFactor: 0.25, idontwantMinDataSize: 512, floodPublish: true });
/** floodPublish: a node's own messages go to every subscribed peer it is connected to (true) or to its mesh only. */
export type GossipMesh = { D: number; Dlo: number; Dhi: number; Dout: number; Dlazy: number; gossipFactor: number; idontwantMinDataSize: number; floodPublish: boolean };

/**
 * The gossipsub options for `pubsub.mesh`: nothing when absent (js-gossipsub's defaults stand); else every parameter,
 * js-gossipsub's default where not given, except Dout, which defaults to the largest of 0..2 that the others allow
 * (a smaller D must not be refused for the default Dout). Checked as the gossipsub spec asks (Dout < Dlo <= D <= Dhi,
 * Dout <= D/2): js-gossipsub takes any numbers and a mesh that cannot settle grafts and prunes every heartbeat.
 */
export function meshOptions(m: Partial<GossipMesh> | undefined): GossipMesh | Record<string, never> {
  if (m === undefined) return {};
  const D = m.D ?? GOSSIP_MESH_DEFAULTS.D;
  const Dlo = m.Dlo ?? Math.min(GOSSIP_MESH_DEFAULTS.Dlo, D);
  const Dhi = m.Dhi ?? Math.max(GOSSIP_MESH_DEFAULTS.Dhi, D);
  const Dout = m.Dout ?? Math.max(0, Math.min(GOSSIP_MESH_DEFAULTS.Dout, Dlo - 1, Math.floor(D / 2)));
  const r: GossipMesh = { D, Dlo, Dhi, Dout, Dlazy: m.Dlazy ?? GOSSIP_MESH_DEFAULTS.Dlazy, gossipFactor: m.gossipFactor ?? GOSSIP_MESH_DEFAULTS.gossipFactor, idontwantMinDataSize: m.idontwantMinDataSize ?? GOSSIP_MESH_DEFAULTS.idontwantMinDataSize, floodPublish: m.floodPublish ?? GOSSIP_MESH_DEFAULTS.floodPublish };
  for (const k of ['D', 'Dlo', 'Dhi', 'Dout', 'Dlazy', 'idontwantMinDataSize'] as const) {
    if (!Number.isSafeInteger(r[k]) || r[k] < 0) throw new InvalidArgumentError(`pubsub.mesh.${k} must be a whole number >= 0, got ${r[k]}`, { [k]: r[k] });
  }
  if (typeof r.floodPublish !== 'boolean') throw new InvalidArgumentError(`pubsub.mesh.floodPublish must be a boolean, got ${String(r.floodPublish)}`, { floodPublish: r.floodPublish });
  if (!(r.gossipFactor >= 0 && r.gossipFactor <= 1)) throw new InvalidArgumentError(`pubsub.mesh.gossipFactor must be in [0, 1], got ${r.gossipFactor}`, { gossipFactor: r.gossipFactor });
  if (!(D >= 1 && Dout < Dlo && Dlo <= D && D <= Dhi && Dout <= D / 2)) {
    throw new InvalidArgumentError(`pubsub.mesh needs 1 <= D, Dout < Dlo <= D <= Dhi and Dout <= D/2; got D ${D}, Dlo ${Dlo}, Dhi ${Dhi}, Dout ${Dout}`, { D, Dlo, Dhi, Dout });
  }
  return r;
}

function toPeerId(s: string): PeerId {
  const hit = peerIds.get(s);
  if (hit !== undefined) return hit;
  let id: PeerId;
  try {
    id = peerIdFromString(s);
  } catch (e) {
    throw new InvalidArgumentError(`not a peer id: ${s}`, { peer: s, why: errorMessage(e) });
  }
  if (peerIds.size >= PEER_ID_CACHE_MAX) peerIds.delete(peerIds.keys().next().value!);
  peerIds.set(s, id);
  return id;
}

function toMultiaddr(s: string): Multiaddr {
  try {
    return multiaddr(s);
  } catch (e) {
    throw new InvalidArgumentError(`not a multiaddr: ${s}`, { addr: s, why: errorMessage(e) });
  }
}

/**
 * libp2p's failure to listen, for people: a port another process holds (a second node on the same machine with the
 * default ports, the first thing a new user meets) or one this user may not bind. libp2p's own error is a stack
 * trace that tells the operator to set `transportManager.faultTolerance`, an option of the library, not of ours.
 * Undefined for any other error.
 */
export function listenError(e: unknown): ConfigError | undefined {
  const text = errorMessage(e);
  const busy = [...text.matchAll(/^\s*(\/\S+): .*\bEADDRINUSE\b/gm)].map((m) => m[1]!);
  if (busy.length > 0) {
    return new ConfigError(
      `cannot listen on ${busy.join(' and ')}: the port is in use (another node on this machine?); pass --listen with another port, or port 0 to pick a free one (e.g. --listen /ip4/0.0.0.0/tcp/0)`,
      { addresses: busy },
      'LISTEN_ADDRESS_IN_USE',
    );
  }
  const denied = [...text.matchAll(/^\s*(\/\S+): .*\bEACCES\b/gm)].map((m) => m[1]!);
  if (denied.length > 0) {
    return new ConfigError(`cannot listen on ${denied.join(' and ')}: permission denied (ports below 1024 need privileges); pass --listen with a port above 1023`, { addresses: denied }, 'LISTEN_ADDRESS_DENIED');
  }
  return undefined;
}

/** Builds (does not start) a libp2p network. */
export async function createLibp2pNetwork(opts: Libp2pNetworkOptions): Promise<Libp2pNetwork> {
  if (!(opts.privateKey instanceof Uint8Array) || opts.privateKey.byteLength !== 32) {
    throw new InvalidArgumentError('privateKey must be the raw 32-byte secp256k1 key');
  }
  if (!/^\/[\x21-\x7e]+$/.test(opts.protocolPrefix) || opts.protocolPrefix.endsWith('/')) {
    throw new InvalidArgumentError(`protocolPrefix must look like /name/id: ${opts.protocolPrefix}`);
  }
  await installFastSecp256k1();
  // no thrown RangeError per received chunk in noise's decoder (./length-prefix-decoder.ts)
  if (process.env.NEUROSHARD_LP_FAST !== '0') installLengthPrefixFastPath();
  // one yamux window update per half window, not one per data frame (./yamux-window.ts)
  if (process.env.NEUROSHARD_YAMUX_LAZY_WINDOW !== '0') installYamuxLazyWindow();
  const listen = opts.listen.map((a) => toMultiaddr(a).toString());
  const announce = (opts.announce ?? []).map((a) => toMultiaddr(a).toString());
  const relayOnly = listen.length > 0 && listen.every((a) => a.includes('/p2p-circuit')) && announce.length === 0;
  const store = await openNodeDatastore(opts.dataDir);
  const conn = { ...CONNECTION_DEFAULTS, ...opts.connections };
  const window = opts.yamux?.windowBytes ?? 16 << 20;
  const scores = opts.scores;
  const namespaces = opts.dht?.namespaces ?? {};
  const validators: Record<string, (key: Uint8Array, value: Uint8Array) => Promise<void>> = {};
  const selectors: Record<string, (key: Uint8Array, values: Uint8Array[]) => number> = {};
  for (const [ns, rules] of Object.entries(namespaces)) {
    validators[ns] = async (key, value) => {
      await rules.validate(key, value);
    };
    selectors[ns] = (key, values) => rules.select(key, values);
  }

  const services: Record<string, (components: never) => unknown> = {
    // a loaded machine answers identify late; the default 5 s left peers unidentified (never members)
    identify: identify({ runOnLimitedConnection: true, timeout: 20_000 }),
    ping: ping({ runOnLimitedConnection: true }),
    dht: kadDHT({
      protocol: `${opts.protocolPrefix}/kad/1.0.0`,
      clientMode: opts.dht?.mode === 'client',
      peerInfoMapper: passthroughMapper,
      validators,
      selectors,
      allowQueryWithZeroPeers: true,
      // kad-dht pings a new contact before it enters the routing table (5 s minimum, the whole add capped at 10 s)
      // and never retries one that missed: on a loaded machine a node whose only contact's ping timed out kept an
      // empty routing table for good (issue 8 §5, dht_lookup_success). Longer bounds here; repairRoutingTable retries.
      onPeerConnectTimeout: DHT_ADD_TIMEOUT_MS,
      pingNewContactTimeout: { minTimeout: 10_000, maxTimeout: DHT_ADD_TIMEOUT_MS },
      alpha: opts.dht?.alpha ?? 3,
      disjointPaths: opts.dht?.disjointPaths ?? 3,
      providers: { provideValidity: Math.ceil((opts.dht?.providerValidityMs ?? 3_600_000) / 1000) },
      reprovide: {
        validity: opts.dht?.providerValidityMs ?? 3_600_000,
        interval: opts.dht?.reprovideIntervalMs ?? 600_000,
        threshold: opts.dht?.reprovideThresholdMs ?? 1_200_000,
      },
    }),
    pubsub: gossipsub({
      globalSignaturePolicy: StrictSign,
      emitSelf: false,
      allowPublishToZeroTopicPeers: true,
      ignoreDuplicatePublishError: true,
      runOnLimitedConnection: true,
      maxInboundDataLength: opts.pubsub?.maxMessageBytes ?? 1 << 20,
      heartbeatInterval: opts.pubsub?.heartbeatIntervalMs ?? 1000,
      ...meshOptions(opts.pubsub?.mesh),
      // Without a fast id gossipsub verifies the signature of every duplicate copy before deduplicating; this id
      // (a hash of the whole message) lets copies of a message we already accepted skip the signature check.
      fastMsgIdFn: (m) => createHash('sha256').update(m.from ?? EMPTY).update(m.seqno ?? EMPTY).update(m.data ?? EMPTY).update(m.signature ?? EMPTY).digest('base64'),
    }),
  };
  if (opts.autonat !== false) services.autonat = autoNAT();
  if (opts.dcutr !== false) services.dcutr = dcutr();
  if (opts.upnp === true) services.upnp = uPnPNAT();
  if (opts.relay !== undefined && opts.relay !== false) {
    const r = opts.relay;
    services.relay = circuitRelayServer({
      reservations: {
        maxReservations: r.maxReservations,
        applyDefaultLimit: true,
        defaultDataLimit: BigInt(r.dataLimitBytes),
        defaultDurationLimit: r.durationLimitMs,
        reservationTtl: r.reservationTtlMs,
      },
    });
  }

  const libp2p = (await createLibp2p({
    start: false,
    privateKey: privateKeyFromRaw(opts.privateKey),
    // a node that listens only through relays announces only its relayed addresses: an observed address of its
    // outgoing connections (identify) is nothing it listens on, and callers that tried it first timed out before
    // taking the relay (test/integration/p2p/network.test.ts, the relay-only case)
    // addresses through a relay are listened on after start (Libp2pNetwork.listenThroughRelays), not by libp2p's start
    addresses: { listen: listen.filter((a) => !a.includes('/p2p-circuit')), announce, ...(relayOnly ? { announceFilter: (addrs: Multiaddr[]) => addrs.filter((a) => a.toString().includes('/p2p-circuit')) } : {}) },
    // a reservation is a dial to the relay plus one request: bounded like any other dial (libp2p's default of 5 s
    // is half our dial timeout, and under load a listen-through-relay node failed to start while a plain dial to
    // the same relay would have succeeded: test/integration/p2p/network.test.ts, the relay case)
    transports: [tcp(), webSockets(), circuitRelayTransport({ reservationCompletionTimeout: conn.dialTimeoutMs })],
    connectionEncrypters: [noise()],
    streamMuxers: [
      yamux({
        maxMessageSize: opts.yamux?.maxMessageBytes ?? 256 << 10,
        streamOptions: {
          initialStreamWindowSize: Math.min(window, 16 << 20),
          maxStreamWindowSize: window,
          // The read buffer must hold a full window, or a slow reader gets its stream reset.
          maxReadBufferLength: window * 2,
        },
      }),
    ],
    peerDiscovery: opts.mdns !== undefined && opts.mdns !== false ? [mdns({ serviceTag: opts.mdns.serviceTag, interval: opts.mdns.intervalMs ?? 10_000 })] : [],
    datastore: store.datastore,
    // libp2p pings every connection and by default aborts it when a ping fails; on a loaded machine pings fail
    // ("too many outbound protocol streams for /ipfs/ping": the previous one is still in flight) and the abort reset
    // every stream on the connection, live inference sessions included. Liveness is ours (heartbeats); a dead peer's
    // connection closes on its own (TCP reset, yamux keep-alive).
    connectionMonitor: { abortConnectionOnPingFailure: false },
    peerStore: { maxAddressAge: opts.peerAddressTtlMs ?? 7 * 24 * 3600_000, maxPeerAge: opts.peerAddressTtlMs ?? 7 * 24 * 3600_000 },
    connectionManager: {
      maxConnections: conn.maxConnections,
      inboundConnectionThreshold: conn.inboundConnectionThreshold,
      maxIncomingPendingConnections: conn.maxIncomingPendingConnections,
      dialTimeout: conn.dialTimeoutMs,
    },
    connectionGater: {
      // a host from which several banned ids came is refused before any handshake (issue 11 item 13)
      denyInboundConnection: (conn: { remoteAddr: { toString(): string } }) => {
        const ip = ipOfMultiaddr(conn.remoteAddr.toString());
        const host = ip === undefined ? undefined : hostKey(ip);
        return host !== undefined && (scores?.isHostBanned(host) ?? false);
      },
      denyDialPeer: (peer: PeerId) => scores?.isBanned(peer.toString()) ?? false,
      denyInboundEncryptedConnection: (peer: PeerId) => scores?.isBanned(peer.toString()) ?? false,
      denyOutboundEncryptedConnection: (peer: PeerId) => scores?.isBanned(peer.toString()) ?? false,
    },
    services: services as never,
  })) as unknown as Libp2p<Services>;

  // bans follow a banned peer's host too: the table asks where the peer is connected from
  scores?.setHostResolver((peer) => {
    const conn = libp2p.getConnections().find((c) => c.remotePeer.toString() === peer && c.direction === 'inbound');
    const ip = conn === undefined ? undefined : ipOfMultiaddr(conn.remoteAddr.toString());
    return ip === undefined ? undefined : hostKey(ip);
  });
  return new Libp2pNetwork(libp2p, store, opts, (opts.bootstrap ?? []).map((a) => toMultiaddr(a).toString()));
}

/** The IP address of a direct /ip4 or /ip6 multiaddr (undefined for relayed and other addresses). */
function ipOfMultiaddr(addr: string): string | undefined {
  const h = multiaddrHost(addr);
  return h === undefined || h.kind !== 'ip' || h.relayed ? undefined : h.host;
}

export class Libp2pNetwork implements P2PNetwork {
  readonly events = new TypedEmitter<P2PEvents>();
  readonly peerId: PeerIdString;
  private readonly members = new Set<PeerIdString>();
  private readonly subscriptions = new Map<string, Set<(m: PubSubMessage) => void>>();
  private readonly bootstrapper: Bootstrapper;
  private readonly log: Logger;
  private started = false;
  private stopping: Promise<void> | undefined;
  private repairTimer: NodeJS.Timeout | undefined;
  private repairing = false;
  /** Peers requeued for the DHT routing table by repairRoutingTable (tests, bench). */
  dhtRepairs = 0;

  constructor(
    /** The underlying libp2p node, for tests and benchmarks that need to look under the hood. */
    readonly libp2p: Libp2p<Services>,
    private readonly store: NodeDatastore,
    private readonly opts: Libp2pNetworkOptions,
    private readonly bootstrapAddrs: string[],
  ) {
    this.peerId = libp2p.peerId.toString();
    this.log = opts.log ?? silentLogger;
    this.bootstrapper = new Bootstrapper({
      genesis: opts.genesis === true,
      candidates: () => this.bootstrapCandidates(),
      dial: async (target, signal) => {
        const peer = await this.dial(target, { signal });
        // an identify that timed out when the connection opened (a loaded machine) is not retried by libp2p, and a
        // later dial reuses the connection: identify it again, or the node never counts the peer as a member
        if (!this.members.has(peer)) await this.reidentify(peer, signal);
      },
      memberCount: () => this.members.size,
      retryBaseMs: opts.bootstrapRetry?.baseMs,
      retryMaxMs: opts.bootstrapRetry?.maxMs,
      dialTimeoutMs: opts.connections?.dialTimeoutMs,
      log: this.log.child('bootstrap'),
    });
    this.bootstrapper.events.on('state', (s) => this.events.emit('bootstrap:state', s));
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const l = this.libp2p;
    l.addEventListener('peer:connect', (e) => this.events.emit('peer:connect', { peer: e.detail.toString() }));
    // one socket write per message on TCP (./tcp-coalesce.ts; NEUROSHARD_TCP_COALESCE=0 leaves the library's own)
    if (process.env.NEUROSHARD_TCP_COALESCE !== '0') l.addEventListener('connection:open', (e) => coalesceTcpWrites(e.detail));
    l.addEventListener('peer:disconnect', (e) => {
      const peer = e.detail.toString();
      this.members.delete(peer);
      this.events.emit('peer:disconnect', { peer });
      this.bootstrapper.membershipChanged();
    });
    l.addEventListener('peer:identify', (e) => {
      const peer = e.detail.peerId.toString();
      const ours = e.detail.protocols.some((p) => p.startsWith(this.opts.protocolPrefix + '/'));
      if (ours && l.getConnections(e.detail.peerId).length > 0) {
        this.members.add(peer);
        this.bootstrapper.membershipChanged();
      }
    });
    l.addEventListener('peer:discovery', (e) => this.onDiscovery(e.detail));
    l.addEventListener('self:peer:update', () => this.events.emit('self:addresses', { multiaddrs: this.multiaddrs() }));
    const rt = (l.services.dht as unknown as { routingTable?: EventTarget & { size: number } }).routingTable;
    const onRt = (): void => this.events.emit('dht:peers', { size: rt?.size ?? 0 });
    rt?.addEventListener('peer:add', onRt);
    rt?.addEventListener('peer:remove', onRt);
    const ps = l.services.pubsub;
    ps.addEventListener('gossipsub:message', (e) => {
      const { msg, propagationSource } = e.detail;
      if (msg.type !== 'signed') return; // StrictSign rejects these before we see them; belt and braces
      const handlers = this.subscriptions.get(msg.topic);
      if (handlers === undefined) return;
      const m: PubSubMessage = { topic: msg.topic, from: msg.from.toString(), data: msg.data, via: propagationSource.toString() };
      for (const h of handlers) {
        try {
          h(m);
        } catch (err) {
          this.log.error('pubsub handler threw', { topic: msg.topic, error: errorMessage(err) });
        }
      }
    });
    try {
      await l.start();
    } catch (e) {
      // what did start (the peer store, the DHT) stops again, so that the process can exit or retry
      await Promise.resolve(l.stop()).catch(() => undefined);
      throw listenError(e) ?? e;
    }
    await this.listenThroughRelays();
    if (this.opts.genesis === 'auto') {
      const known = await l.peerStore.all({ filters: [(p) => p.addresses.length > 0 && !p.id.equals(l.peerId)], limit: 1 });
      this.bootstrapper.setGenesis(known.length === 0);
    }
    this.log.info('p2p started', { peerId: this.peerId, addrs: this.multiaddrs(), genesis: this.bootstrapper.genesis });
    this.bootstrapper.start();
    this.repairTimer = setInterval(() => {
      if (this.repairing || this.stopping !== undefined) return;
      this.repairing = true;
      void this.repairRoutingTable().finally(() => (this.repairing = false));
    }, DHT_REPAIR_MS);
    this.repairTimer.unref?.();
  }

  /**
   * Listens on the `…/p2p-circuit` addresses of `listen`: dials each relay first, bounded by our dial timeout, then
   * asks it for a reservation (bounded the same, see reservationCompletionTimeout). Left to libp2p's start, the
   * connection to the relay was bounded by the circuit listener's fixed 5 s, half our dial timeout: on a loaded
   * machine a relay-only node failed to start while a plain dial to the same relay would have succeeded
   * (test/integration/p2p/network.test.ts, the relay case, 6 s into it). A failure still fails start, as before.
   */
  private async listenThroughRelays(): Promise<void> {
    const addrs = this.opts.listen.map((a) => toMultiaddr(a)).filter((a) => a.toString().includes('/p2p-circuit'));
    if (addrs.length === 0) return;
    const ms = this.opts.connections?.dialTimeoutMs ?? CONNECTION_DEFAULTS.dialTimeoutMs;
    const tm = (this.libp2p as unknown as { components: { transportManager: { listen(a: Multiaddr[]): Promise<void> } } }).components.transportManager;
    await Promise.all(
      addrs.map(async (a) => {
        try {
          await this.libp2p.dial(a.decapsulate('/p2p-circuit'), { signal: AbortSignal.timeout(ms) });
          await tm.listen([a]);
        } catch (e) {
          throw new NetworkError('LISTEN_FAILED', `cannot listen through ${a.toString()}: ${errorMessage(e)}`, { addr: a.toString() }, e);
        }
      }),
    );
  }

  /**
   * Queues every connected member that serves our DHT protocol and is missing from the routing table for another
   * add (kad-dht adds a peer only when it connects or shows up in a query's answer, and gives up on it when the
   * ping before the add times out). Runs every DHT_REPAIR_MS while the table holds fewer peers than it could.
   */
  private async repairRoutingTable(): Promise<void> {
    const dht = this.libp2p.services.dht as unknown as {
      routingTable?: { size: number; find(p: unknown): Promise<unknown>; queueRoutingTableUpdate?(p: unknown, o: { activeTimeout: number }): void };
    };
    const rt = dht.routingTable;
    if (rt?.queueRoutingTableUpdate === undefined || rt.size >= Math.min(this.members.size, 20)) return;
    const kad = `${this.opts.protocolPrefix}/kad/1.0.0`;
    const seen = new Set<string>();
    for (const c of this.libp2p.getConnections()) {
      const id = c.remotePeer;
      const s = id.toString();
      if (seen.has(s) || !this.members.has(s) || c.status !== 'open') continue;
      seen.add(s);
      try {
        if ((await rt.find(id)) !== undefined) continue;
        const peer = await this.libp2p.peerStore.get(id);
        if (!peer.protocols.includes(kad)) continue; // a DHT client: not for our table
        this.dhtRepairs++;
        rt.queueRoutingTableUpdate(id, { activeTimeout: DHT_ADD_TIMEOUT_MS });
      } catch (e) {
        this.log.debug('routing table repair skipped a peer', { peer: s, error: errorMessage(e) });
      }
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.repairTimer);
    if (!this.started) {
      await this.store.close();
      return;
    }
    this.stopping ??= (async () => {
      await this.bootstrapper.stop();
      await this.libp2p.stop();
      await this.store.close();
    })();
    await this.stopping;
  }

  multiaddrs(): string[] {
    return this.libp2p.getMultiaddrs().map((m) => m.toString());
  }

  connectedPeers(): PeerIdString[] {
    return this.libp2p.getPeers().map((p) => p.toString());
  }

  /** Runs identify again on a connection to `peer` (its peer:identify event then decides membership). */
  private async reidentify(peer: PeerIdString, signal: AbortSignal | undefined): Promise<void> {
    const conn = this.libp2p.getConnections(toPeerId(peer)).find((c) => c.status === 'open');
    const svc = this.libp2p.services.identify as { identify?: (c: Connection, o?: AbortOptions) => Promise<unknown> } | undefined;
    if (conn === undefined || svc?.identify === undefined) return;
    try {
      await svc.identify(conn, signal === undefined ? {} : { signal });
    } catch (e) {
      this.log.debug('identify retry failed', { peer, error: errorMessage(e) });
    }
  }

  /** Connected peers that speak our network's protocols (identify listed one under our prefix). */
  memberPeers(): PeerIdString[] {
    return [...this.members];
  }

  /** The IPv4 address of an open direct (not relayed) TCP connection to `peer` (for its data lane: p2p/lane/). */
  directPeerIp(peer: PeerIdString): string | undefined {
    let conns: Connection[];
    try {
      conns = this.libp2p.getConnections(toPeerId(peer));
    } catch {
      return undefined;
    }
    for (const c of conns) {
      if (c.status !== 'open' || c.limits != null) continue;
      const m = /^\/ip4\/(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\/tcp\/\d+(\/p2p\/[^/]+)?$/.exec(c.remoteAddr.toString());
      if (m !== null) return m[1];
    }
    return undefined;
  }

  async peerAddresses(peer: PeerIdString): Promise<string[]> {
    try {
      const p = await this.libp2p.peerStore.get(toPeerId(peer));
      return p.addresses.map((a) => a.multiaddr.toString());
    } catch {
      return [];
    }
  }

  async dial(target: string, opts: AbortOptions = {}): Promise<PeerIdString> {
    const t = target.startsWith('/') ? toMultiaddr(target) : toPeerId(target);
    try {
      const c = await this.libp2p.dial(t, { signal: opts.signal });
      return c.remotePeer.toString();
    } catch (e) {
      throw new NetworkError('DIAL_FAILED', `dial ${target} failed: ${errorMessage(e)}`, { target }, e);
    }
  }

  async hangUp(peer: PeerIdString, opts: AbortOptions = {}): Promise<void> {
    await this.libp2p.hangUp(toPeerId(peer), { signal: opts.signal });
  }

  async addPeerAddresses(peer: PeerIdString, multiaddrs: string[]): Promise<void> {
    const id = toPeerId(peer);
    if (id.equals(this.libp2p.peerId)) return;
    const addrs = multiaddrs.map((a) => toMultiaddr(a)).map((m) => (m.getComponents().some((c) => c.name === 'p2p') ? m.decapsulateCode(421) : m));
    await this.libp2p.peerStore.merge(id, { multiaddrs: addrs });
  }

  async openStream(peer: string, protocol: string, opts: OpenStreamOptions = {}): Promise<DuplexStream> {
    const t = peer.startsWith('/') ? toMultiaddr(peer) : toPeerId(peer);
    const allowLimited = opts.allowLimited ?? true;
    try {
      const limited = allowLimited ? this.limitedConnectionTo(t) : undefined;
      if (limited !== undefined) return await limited.newStream(protocol, { signal: opts.signal, runOnLimitedConnection: true });
      return await this.libp2p.dialProtocol(t, protocol, { signal: opts.signal, runOnLimitedConnection: allowLimited });
    } catch (e) {
      const name = (e as Error)?.name;
      if (name === 'UnsupportedProtocolError') {
        throw new NetworkError('PROTOCOL_UNSUPPORTED', `peer does not speak ${protocol}`, { peer, protocol }, e);
      }
      if (opts.signal?.aborted === true || name === 'AbortError' || name === 'TimeoutError') {
        throw new NetworkError('STREAM_OPEN_ABORTED', `opening ${protocol} to ${peer} aborted: ${errorMessage(e)}`, { peer, protocol }, e);
      }
      throw new NetworkError('STREAM_OPEN_FAILED', `opening ${protocol} to ${peer} failed: ${errorMessage(e)}`, { peer, protocol }, e);
    }
  }

  /**
   * An open limited (relayed) connection to carry a new stream, where libp2p would dial instead. libp2p's dial
   * reuses only an unlimited connection, so every stream to a peer reachable only through a relay dialled a whole new
   * relayed connection (HOP to the relay, STOP to the peer, noise and yamux over it: some twenty turns through three
   * nodes), which libp2p then closed as a duplicate of the first (same remote address). Each RPC to such a peer paid
   * that dial, bounded by the dial timeout, and under load one of them ran past it (test/integration/p2p/network.test.ts,
   * the relay case). Undefined when an unlimited connection is open (libp2p's dial reuses it) or the target is a
   * direct address (a dial to it may give a direct connection: libp2p's own reason to dial).
   */
  private limitedConnectionTo(t: PeerId | Multiaddr): Connection | undefined {
    let id: PeerId | undefined;
    if (isMultiaddr(t)) {
      const comps = t.getComponents();
      if (!comps.some((c) => c.name === 'p2p-circuit')) return undefined;
      const last = comps.at(-1);
      if (last?.name !== 'p2p' || last.value === undefined) return undefined;
      id = toPeerId(last.value);
    } else {
      id = t;
    }
    const open = this.libp2p.getConnections(id).filter((c) => c.status === 'open');
    if (open.some((c) => c.limits == null)) return undefined;
    return open[0];
  }

  async handle(protocol: string, handler: ProtocolHandler, opts: HandleOptions = {}): Promise<void> {
    await this.libp2p.handle(
      protocol,
      async (stream: Stream, connection: Connection) => {
        const info = { peer: connection.remotePeer.toString(), limited: connection.limits != null, remoteAddr: connection.remoteAddr.toString() };
        try {
          await handler(stream, info);
        } catch (e) {
          // A handler must never take the node down; the stream is reset and the error logged.
          this.log.debug('protocol handler failed', { protocol, peer: info.peer, error: errorMessage(e) });
          stream.abort(e instanceof Error ? e : new Error(String(e)));
        }
      },
      { runOnLimitedConnection: true, maxInboundStreams: opts.maxInboundStreams, maxOutboundStreams: opts.maxOutboundStreams },
    );
  }

  async unhandle(protocol: string): Promise<void> {
    await this.libp2p.unhandle(protocol);
  }

  subscribe(topic: string, onMessage: (msg: PubSubMessage) => void): () => void {
    let set = this.subscriptions.get(topic);
    if (set === undefined) {
      set = new Set();
      this.subscriptions.set(topic, set);
      this.libp2p.services.pubsub.subscribe(topic);
    }
    set.add(onMessage);
    return () => {
      const s = this.subscriptions.get(topic);
      if (s === undefined) return;
      s.delete(onMessage);
      if (s.size === 0) {
        this.subscriptions.delete(topic);
        if (this.libp2p.status === 'started') this.libp2p.services.pubsub.unsubscribe(topic);
      }
    };
  }

  setTopicValidator(topic: string, validator: TopicValidator | undefined): void {
    const tv = this.libp2p.services.pubsub.topicValidators;
    if (validator === undefined) {
      tv.delete(topic);
      return;
    }
    tv.set(topic, async (propagationSource, msg) => {
      if (msg.type !== 'signed') return TopicValidatorResult.Reject;
      let r: string;
      try {
        r = await validator({ topic: msg.topic, from: msg.from.toString(), data: msg.data, via: propagationSource.toString() });
      } catch {
        r = 'reject';
      }
      return r === 'accept' ? TopicValidatorResult.Accept : r === 'ignore' ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject;
    });
  }

  async publish(topic: string, data: Uint8Array): Promise<number> {
    const r = await this.libp2p.services.pubsub.publish(topic, data);
    return r.recipients.length;
  }

  topicPeers(topic: string): PeerIdString[] {
    return this.libp2p.services.pubsub.getSubscribers(topic).map((p) => p.toString());
  }

  async dhtPut(key: Uint8Array, value: Uint8Array, opts: AbortOptions = {}): Promise<number> {
    // Our own records go through the same rules as everyone else's before they leave the node.
    const rules = this.namespaceOf(key);
    if (rules === undefined) throw new InvalidArgumentError('DHT key has no registered namespace');
    await rules.validate(key, value);
    let stored = 0;
    try {
      for await (const ev of this.libp2p.services.dht.put(key, value, { signal: opts.signal })) {
        if (ev.name === 'PEER_RESPONSE' && ev.messageName === 'PUT_VALUE') stored++;
      }
    } catch (e) {
      throw new NetworkError('DHT_PUT_FAILED', `DHT put failed: ${errorMessage(e)}`, undefined, e);
    }
    return stored;
  }

  async dhtGet(key: Uint8Array, opts: AbortOptions = {}): Promise<Uint8Array | undefined> {
    // kad-dht yields a VALUE event per peer that answered and the selector's best one last.
    let best: Uint8Array | undefined;
    try {
      for await (const ev of this.libp2p.services.dht.get(key, { signal: opts.signal })) {
        if (ev.name === 'VALUE') best = ev.value;
      }
    } catch (e) {
      if (best !== undefined) return best;
      if (opts.signal?.aborted === true) throw new NetworkError('DHT_GET_ABORTED', `DHT get aborted: ${errorMessage(e)}`, undefined, e);
      // kad-dht throws when no peer had a valid record
      this.log.debug('DHT get found nothing', { error: errorMessage(e) });
      return undefined;
    }
    return best;
  }

  /** Size of the DHT routing table (tests wait on it instead of sleeping). */
  dhtRoutingTableSize(): number {
    return (this.libp2p.services.dht as unknown as { routingTable: { size: number } }).routingTable.size;
  }

  private namespaceOf(key: Uint8Array): DhtNamespace | undefined {
    const s = new TextDecoder().decode(key);
    const ns = s.split('/')[1];
    if (!s.startsWith('/') || ns === undefined) return undefined;
    return Object.hasOwn(this.opts.dht?.namespaces ?? {}, ns) ? this.opts.dht!.namespaces![ns] : undefined;
  }

  async provide(contentKey: Uint8Array, opts: AbortOptions = {}): Promise<number> {
    let sent = 0;
    try {
      for await (const ev of this.libp2p.services.dht.provide(contentCid(contentKey), { signal: opts.signal })) {
        if (ev.name === 'PEER_RESPONSE' && ev.messageName === 'ADD_PROVIDER') sent++;
      }
    } catch (e) {
      throw new NetworkError('DHT_PROVIDE_FAILED', `DHT provide failed: ${errorMessage(e)}`, undefined, e);
    }
    return sent;
  }

  async unprovide(contentKey: Uint8Array, opts: AbortOptions = {}): Promise<void> {
    await this.libp2p.services.dht.cancelReprovide(contentCid(contentKey), { signal: opts.signal });
  }

  async findProviders(contentKey: Uint8Array, opts: AbortOptions & { limit?: number; quorum?: number } = {}): Promise<PeerAddressInfo[]> {
    const limit = opts.limit ?? 64;
    // Provider records live on the k peers closest to the key, each holding (nearly) the full set: once `quorum`
    // answers in a row named only providers we already had, more answers rarely add any. Stopping there instead
    // of walking every path cuts a lookup's streams by half or more.
    const quorum = opts.quorum ?? 3;
    const out = new Map<string, PeerAddressInfo>();
    const ac = new AbortController();
    // not AbortSignal.any: a composite that never fires is kept by Node while a listener is left on it (util/abort.ts)
    const link = opts.signal === undefined ? undefined : linkSignals(ac.signal, opts.signal);
    const signal = link?.signal ?? ac.signal;
    let answers = 0;
    try {
      for await (const ev of this.libp2p.services.dht.findProviders(contentCid(contentKey), { signal })) {
        // an answer that names providers counts towards the quorum unless it names one we did not know yet
        if (ev.name === 'PEER_RESPONSE' && ev.providers.length > 0) answers++;
        if (ev.name === 'PROVIDER') {
          if (ev.providers.some((p) => !out.has(p.id.toString()))) answers = 0;
          for (const p of ev.providers) {
            const id = p.id.toString();
            const prev = out.get(id);
            const addrs = p.multiaddrs.map((m) => m.toString());
            out.set(id, { id, multiaddrs: [...new Set([...(prev?.multiaddrs ?? []), ...addrs])] });
          }
        }
        if (out.size >= limit || (answers >= quorum && out.size > 0)) {
          ac.abort();
          break;
        }
      }
    } catch (e) {
      if (out.size === 0 && opts.signal?.aborted === true) {
        throw new NetworkError('DHT_FIND_PROVIDERS_ABORTED', `finding providers aborted: ${errorMessage(e)}`, undefined, e);
      }
      // A query that ends in an error after some results still returns what it found.
      this.log.debug('findProviders ended early', { error: errorMessage(e), found: out.size });
    } finally {
      link?.dispose();
    }
    return [...out.values()].slice(0, limit);
  }

  async findPeer(peer: PeerIdString, opts: AbortOptions = {}): Promise<PeerAddressInfo | undefined> {
    try {
      const info = await this.libp2p.peerRouting.findPeer(toPeerId(peer), { signal: opts.signal });
      return { id: info.id.toString(), multiaddrs: info.multiaddrs.map((m) => m.toString()) };
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw e;
      return undefined;
    }
  }

  bootstrapStatus(): BootstrapStatus {
    return this.bootstrapper.status();
  }

  /** Whether this node founded the network (decided at start for genesis 'auto'). */
  isGenesis(): boolean {
    return this.bootstrapper.genesis;
  }

  /** New dial candidates arrived from outside (e.g. a tracker): remember them and retry joining now. */
  async addBootstrapPeers(peers: PeerAddressInfo[]): Promise<void> {
    for (const p of peers) {
      if (p.id === this.peerId) continue;
      try {
        await this.addPeerAddresses(p.id, p.multiaddrs);
        // newest last; past the cap the oldest is forgotten (a tracker may return any number of strangers)
        this.extraCandidates.delete(p.id);
        if (this.extraCandidates.size >= MAX_EXTRA_CANDIDATES) this.extraCandidates.delete(this.extraCandidates.keys().next().value!);
        this.extraCandidates.set(p.id, Date.now());
      } catch (e) {
        this.log.debug('ignoring bad bootstrap peer', { peer: p.id, error: errorMessage(e) });
      }
    }
    this.bootstrapper.kick();
  }

  /** Dial candidates from outside (trackers), with when they were last named; bounded and aged out. */
  private readonly extraCandidates = new Map<PeerIdString, number>();

  /** Candidates from outside, after dropping those not named again within EXTRA_CANDIDATE_TTL_MS. */
  extraBootstrapCandidates(): PeerIdString[] {
    const now = Date.now();
    for (const [id, at] of this.extraCandidates) {
      if (now - at < EXTRA_CANDIDATE_TTL_MS) break; // in order of last naming: the rest are younger
      this.extraCandidates.delete(id);
    }
    return [...this.extraCandidates.keys()];
  }

  private async bootstrapCandidates(): Promise<string[]> {
    const out = new Set<string>(this.bootstrapAddrs);
    for (const id of this.extraBootstrapCandidates()) out.add(id);
    if (this.opts.candidateSource !== undefined) {
      try {
        for (const a of await this.opts.candidateSource(AbortSignal.timeout(10_000))) out.add(a);
      } catch (e) {
        this.log.debug('candidate source failed', { error: errorMessage(e) });
      }
    }
    // Peers remembered in the peer book (from this run or an earlier one) that have an address.
    const known = await this.libp2p.peerStore.all({ filters: [(p) => p.addresses.length > 0], limit: 64 });
    for (const p of known) {
      const id = p.id.toString();
      if (id === this.peerId || this.opts.scores?.isBanned(id) === true) continue;
      out.add(id);
    }
    return [...out];
  }

  private onDiscovery(info: PeerInfo): void {
    // mDNS and friends only add peers to the peer book; dial while we are short of members.
    if (this.members.size >= 8 || info.id.equals(this.libp2p.peerId)) return;
    if (this.libp2p.getConnections(info.id).length > 0) return;
    this.libp2p.dial(info.id, { signal: AbortSignal.timeout(10_000) }).catch((e: unknown) => {
      this.log.debug('dial of discovered peer failed', { peer: info.id.toString(), error: errorMessage(e) });
    });
  }
}
