/**
 * The small peer-to-peer interface the rest of the code base talks to. Two implementations: `libp2p-node.ts` (the
 * real network: TCP/WebSocket, noise, yamux, kad-dht, gossipsub, relays) and `memory.ts` (an in-process network for
 * unit tests). Nothing here knows what the bytes mean: protocols, topics, DHT keys and validators come from the
 * caller. Peers are named by their PeerId string, addresses by their multiaddr string, so this file imports no
 * libp2p type and the API layer may depend on it.
 */
import type { AbortOptions } from '../util/abort.js';
import type { TypedEmitter } from '../util/events.js';

/** A PeerId in its canonical string form ("16Uiu2HAm…" for secp256k1 keys). */
export type PeerIdString = string;

/** A chunk read from a stream: a plain array, or a list of arrays (libp2p hands out Uint8ArrayList). */
export interface ByteChunk {
  readonly byteLength: number;
  subarray(start?: number, end?: number): Uint8Array;
}

/**
 * One bidirectional, half-closable byte stream for one protocol. The subset of the libp2p 3 stream API we rely
 * on: `send` returns false when the write buffer is full (then await `onDrain`), `close` half-closes our side and
 * waits for buffered data to leave, `abort` resets both directions at once, and iterating yields what the remote
 * sends until it closes its side (a reset makes the iteration throw).
 */
export interface DuplexStream extends AsyncIterable<Uint8Array | ByteChunk> {
  readonly protocol: string;
  send(data: Uint8Array): boolean;
  onDrain(opts?: AbortOptions): Promise<void>;
  close(opts?: AbortOptions): Promise<void>;
  abort(err: Error): void;
  /**
   * 'close' fires once both directions are done; `error` is set when the stream was reset or aborted (by either
   * side), which is how a server learns that its caller went away.
   */
  addEventListener(type: 'close', listener: (evt: { error?: Error }) => void, options?: { once?: boolean }): void;
}

export interface StreamInfo {
  /** The remote peer. */
  peer: PeerIdString;
  /** True on a relayed connection with data or time limits (circuit relay v2). */
  limited: boolean;
  /** The remote address of the connection the stream runs on. */
  remoteAddr: string;
}

export type ProtocolHandler = (stream: DuplexStream, info: StreamInfo) => void | Promise<void>;

export interface HandleOptions {
  /** Concurrent inbound streams of this protocol per connection (further ones are reset by the muxer). */
  maxInboundStreams?: number;
  /** Concurrent outbound streams of this protocol per connection. */
  maxOutboundStreams?: number;
}

export interface OpenStreamOptions extends AbortOptions {
  /** Also open the stream over a limited (relayed) connection; true for our protocols. Default true. */
  allowLimited?: boolean;
}

export interface PubSubMessage {
  topic: string;
  /** The signer of the message (gossipsub StrictSign: checked before delivery). */
  from: PeerIdString;
  data: Uint8Array;
  /** The peer that forwarded it to us (may differ from `from`). */
  via: PeerIdString;
}

/** What a topic validator decides: deliver and forward, drop silently, or drop and penalise the forwarder. */
export type ValidationResult = 'accept' | 'ignore' | 'reject';
export type TopicValidator = (msg: PubSubMessage) => ValidationResult | Promise<ValidationResult>;

/**
 * DHT record rules, per key namespace (the first path segment of the key: `/ns/…`). `validate` throws on a record
 * that must not be stored or returned; `select` returns the index of the best of several valid records.
 */
export interface DhtNamespace {
  validate(key: Uint8Array, value: Uint8Array): void | Promise<void>;
  select(key: Uint8Array, values: Uint8Array[]): number;
}

export interface PeerAddressInfo {
  id: PeerIdString;
  multiaddrs: string[];
}

/**
 * The bootstrap state a node reports:
 * - `genesis`: it founded the network (no peers were given); it still accepts and dials peers.
 * - `connecting`: it was given peers and has not reached any yet (first attempts).
 * - `retrying`: every attempt so far failed; it keeps retrying with backoff and never founds a network itself.
 * - `connected`: it has at least one connection to a peer of the network.
 * - `stopped`: the node is stopped.
 */
export type BootstrapState = 'genesis' | 'connecting' | 'retrying' | 'connected' | 'stopped';

export interface BootstrapStatus {
  state: BootstrapState;
  /** Dial rounds that reached nobody since the last connection. */
  failedRounds: number;
  /** Unix ms of the next retry round, when `state` is `retrying`. */
  nextAttemptAt?: number;
  lastError?: string;
}

export interface P2PEvents {
  'peer:connect': { peer: PeerIdString };
  'peer:disconnect': { peer: PeerIdString };
  'bootstrap:state': BootstrapStatus;
  /** The DHT routing table changed size (tests and the registry wait for the first DHT peer). */
  'dht:peers': { size: number };
  /** Our externally visible addresses changed (a relay reservation, UPnP mapping, autonat result). */
  'self:addresses': { multiaddrs: string[] };
}

/** The peer-to-peer network as the rest of the node sees it. */
export interface P2PNetwork {
  readonly peerId: PeerIdString;
  readonly events: TypedEmitter<P2PEvents>;

  start(): Promise<void>;
  /** Closes every connection and stops all services. Idempotent. */
  stop(): Promise<void>;

  /** Addresses others can dial us on (listen + announce + relay addresses), each ending in /p2p/<our id>. */
  multiaddrs(): string[];
  /** Peers we hold an open connection to. */
  connectedPeers(): PeerIdString[];
  /** Known addresses of a peer (from identify, the DHT or the peer store). */
  peerAddresses(peer: PeerIdString): Promise<string[]>;

  /** Opens a connection to a multiaddr (with /p2p/<id>) or a known peer id; returns the remote peer id. */
  dial(target: string, opts?: AbortOptions): Promise<PeerIdString>;
  hangUp(peer: PeerIdString, opts?: AbortOptions): Promise<void>;
  /** Remembers addresses for a peer (e.g. from the tracker), so `dial(peerId)` and stream opens find it. */
  addPeerAddresses(peer: PeerIdString, multiaddrs: string[]): Promise<void>;

  /** Opens a stream for `protocol` to a peer (dialling it if needed). */
  openStream(peer: PeerIdString | string, protocol: string, opts?: OpenStreamOptions): Promise<DuplexStream>;
  handle(protocol: string, handler: ProtocolHandler, opts?: HandleOptions): Promise<void>;
  unhandle(protocol: string): Promise<void>;

  subscribe(topic: string, onMessage: (msg: PubSubMessage) => void): () => void;
  setTopicValidator(topic: string, validator: TopicValidator | undefined): void;
  /** Publishes a signed message; resolves with the number of peers it was sent to. */
  publish(topic: string, data: Uint8Array): Promise<number>;
  /** Peers known to be subscribed to a topic. */
  topicPeers(topic: string): PeerIdString[];

  /**
   * Stores a record under `key` (validated with the namespace's rules locally first); resolves with the number of
   * other peers that stored it (0 while we know no DHT peer: the record then lives only with us).
   */
  dhtPut(key: Uint8Array, value: Uint8Array, opts?: AbortOptions): Promise<number>;
  /** The best valid record under `key`, or undefined when there is none. */
  dhtGet(key: Uint8Array, opts?: AbortOptions): Promise<Uint8Array | undefined>;
  /**
   * Announces that we provide the content named by `contentKey` (any bytes; hashed into a CID); resolves with the
   * number of other peers that took the provider record.
   */
  provide(contentKey: Uint8Array, opts?: AbortOptions): Promise<number>;
  /** Stops re-announcing a provided content key. */
  unprovide(contentKey: Uint8Array, opts?: AbortOptions): Promise<void>;
  /**
   * Providers of `contentKey`, at most `limit` (default 64). The lookup stops once `quorum` (default 3) answers
   * in a row named only providers already found.
   */
  findProviders(contentKey: Uint8Array, opts?: AbortOptions & { limit?: number; quorum?: number }): Promise<PeerAddressInfo[]>;
  findPeer(peer: PeerIdString, opts?: AbortOptions): Promise<PeerAddressInfo | undefined>;

  bootstrapStatus(): BootstrapStatus;
}
