/**
 * An in-process P2PNetwork for unit tests: nodes on one MemoryHub reach each other instantly, streams are in-memory
 * duplex pairs with the libp2p stream semantics we rely on (half-close, reset, iteration), pubsub delivers to every
 * started subscriber, and one shared DHT applies the same namespace validators and selectors as the real one.
 * Failure injection: `hub.disconnect(a, b)` and stopping a node.
 */
import type { AbortOptions } from '../util/abort.js';
import { throwIfAborted } from '../util/abort.js';
import { toHex } from '../util/bytes.js';
import { InvalidArgumentError } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { NetworkError } from './errors.js';
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

/** libp2p's default maxInboundStreams for a protocol handler registered without one. */
const DEFAULT_MAX_INBOUND_STREAMS = 32;

/** The error a reader sees when the other side reset the stream. */
export class StreamResetError extends Error {
  override name = 'StreamResetError';
}

/** One end of an in-memory stream. */
export class MemoryStream implements DuplexStream {
  private readonly queue: Uint8Array[] = [];
  private remoteEnded = false;
  private writeClosed = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  remote!: MemoryStream;
  /** Bytes sent from this end (tests assert on traffic). */
  bytesSent = 0;
  private readonly closeListeners: ((evt: { error?: Error }) => void)[] = [];
  private closed = false;

  constructor(readonly protocol: string) {}

  static pair(protocol: string): [MemoryStream, MemoryStream] {
    const a = new MemoryStream(protocol);
    const b = new MemoryStream(protocol);
    a.remote = b;
    b.remote = a;
    return [a, b];
  }

  send(data: Uint8Array): boolean {
    if (this.failure !== undefined) throw this.failure;
    if (this.writeClosed) throw new Error('stream closed for writing');
    this.bytesSent += data.byteLength;
    this.remote.push(data.slice());
    return true;
  }

  async onDrain(opts: AbortOptions = {}): Promise<void> {
    throwIfAborted(opts.signal, 'drain');
  }

  async close(_opts: AbortOptions = {}): Promise<void> {
    if (this.writeClosed || this.failure !== undefined) return;
    this.writeClosed = true;
    this.remote.endFromRemote();
    this.maybeClosed();
  }

  addEventListener(type: 'close', listener: (evt: { error?: Error }) => void): void {
    if (type === 'close') this.closeListeners.push(listener);
  }

  private emitClose(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.closeListeners.splice(0)) l(error === undefined ? {} : { error });
  }

  private maybeClosed(): void {
    if (this.writeClosed && this.remoteEnded) this.emitClose();
    if (this.remote.writeClosed && this.remote.remoteEnded) this.remote.emitClose();
  }

  abort(err: Error): void {
    if (this.failure !== undefined) return;
    this.fail(err);
    this.remote.fail(new StreamResetError('stream reset by remote'));
  }

  get aborted(): boolean {
    return this.failure !== undefined;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.queue.length > 0) {
        yield this.queue.shift()!;
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.remoteEnded) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  private push(data: Uint8Array): void {
    if (this.failure !== undefined) return;
    this.queue.push(data);
    this.wake?.();
  }

  private endFromRemote(): void {
    this.remoteEnded = true;
    this.wake?.();
  }

  private fail(err: Error): void {
    this.failure = err;
    this.queue.length = 0;
    this.wake?.();
    this.emitClose(err);
  }
}

interface StoredRecord {
  value: Uint8Array;
}

/** The shared medium of a set of memory nodes. */
export class MemoryHub {
  readonly nodes = new Map<PeerIdString, MemoryNetwork>();
  readonly records = new Map<string, StoredRecord>();
  readonly providers = new Map<string, Set<PeerIdString>>();
  private readonly cut = new Set<string>();

  constructor(readonly namespaces: Record<string, DhtNamespace> = {}) {}

  createNode(peerId: PeerIdString, opts: { genesis?: boolean } = {}): MemoryNetwork {
    if (this.nodes.has(peerId)) throw new InvalidArgumentError(`duplicate memory node ${peerId}`);
    const n = new MemoryNetwork(this, peerId, opts.genesis ?? false);
    this.nodes.set(peerId, n);
    return n;
  }

  /** Makes a and b unreachable to each other (both directions) and drops their connection. */
  disconnect(a: PeerIdString, b: PeerIdString): void {
    this.cut.add(pairKey(a, b));
    this.nodes.get(a)?.dropConnection(b);
    this.nodes.get(b)?.dropConnection(a);
  }

  reconnect(a: PeerIdString, b: PeerIdString): void {
    this.cut.delete(pairKey(a, b));
  }

  reachable(a: PeerIdString, b: PeerIdString): MemoryNetwork | undefined {
    if (this.cut.has(pairKey(a, b))) return undefined;
    const n = this.nodes.get(b);
    return n?.running === true ? n : undefined;
  }

  namespaceOf(key: Uint8Array): DhtNamespace | undefined {
    const s = new TextDecoder().decode(key);
    const ns = s.split('/')[1];
    if (!s.startsWith('/') || ns === undefined || !Object.hasOwn(this.namespaces, ns)) return undefined;
    return this.namespaces[ns];
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

export class MemoryNetwork implements P2PNetwork {
  readonly events = new TypedEmitter<P2PEvents>();
  running = false;
  private readonly handlers = new Map<string, ProtocolHandler>();
  /** maxInboundStreams per protocol, enforced per (protocol, remote peer) as libp2p's registrar does per connection. */
  private readonly inboundLimits = new Map<string, number>();
  private readonly inboundOpen = new Map<string, number>();
  /**
   * Whether this node resets inbound streams past a protocol's maxInboundStreams (default true). libp2p applies the
   * cap per connection, and a peer may open several connections: attack tests lift it to model that peer.
   */
  inboundStreamCaps = true;
  private readonly subs = new Map<string, Set<(m: PubSubMessage) => void>>();
  private readonly validators = new Map<string, TopicValidator>();
  private readonly connections = new Set<PeerIdString>();
  private readonly provided = new Set<string>();
  private status: BootstrapStatus;

  constructor(
    private readonly hub: MemoryHub,
    readonly peerId: PeerIdString,
    private readonly genesis: boolean,
  ) {
    this.status = { state: genesis ? 'genesis' : 'connecting', failedRounds: 0 };
  }

  async start(): Promise<void> {
    this.running = true;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const p of [...this.connections]) {
      this.dropConnection(p);
      this.hub.nodes.get(p)?.dropConnection(this.peerId);
    }
    this.setStatus({ state: 'stopped', failedRounds: 0 });
  }

  multiaddrs(): string[] {
    return [`/memory/${this.peerId}`];
  }

  connectedPeers(): PeerIdString[] {
    return [...this.connections];
  }

  async peerAddresses(peer: PeerIdString): Promise<string[]> {
    return this.hub.nodes.has(peer) ? [`/memory/${peer}`] : [];
  }

  async dial(target: string, opts: AbortOptions = {}): Promise<PeerIdString> {
    throwIfAborted(opts.signal, 'dial');
    const id = target.startsWith('/memory/') ? target.slice('/memory/'.length) : target;
    this.connect(id);
    return id;
  }

  async hangUp(peer: PeerIdString): Promise<void> {
    this.dropConnection(peer);
    this.hub.nodes.get(peer)?.dropConnection(this.peerId);
  }

  async addPeerAddresses(): Promise<void> {}

  async openStream(peer: string, protocol: string, opts: OpenStreamOptions = {}): Promise<DuplexStream> {
    // as libp2p-node.ts reports it: a stream open that our own signal aborted
    if (opts.signal?.aborted === true) throw new NetworkError('STREAM_OPEN_ABORTED', `opening ${protocol} to ${peer} aborted`, { peer, protocol });
    const remote = this.connect(peer.startsWith('/memory/') ? peer.slice('/memory/'.length) : peer);
    const h = remote.handlers.get(protocol);
    if (h === undefined) throw new NetworkError('PROTOCOL_UNSUPPORTED', `peer does not speak ${protocol}`, { peer, protocol });
    const [local, far] = MemoryStream.pair(protocol);
    // past the protocol's maxInboundStreams the remote resets the new stream, as libp2p does: callers that open
    // more streams to one peer than it accepts must see that here too, not only on real connections
    const key = `${protocol}\u0000${this.peerId}`;
    const open = remote.inboundOpen.get(key) ?? 0;
    if (remote.inboundStreamCaps && open >= (remote.inboundLimits.get(protocol) ?? DEFAULT_MAX_INBOUND_STREAMS)) {
      queueMicrotask(() => far.abort(new Error(`too many inbound ${protocol} streams`)));
      return local;
    }
    remote.inboundOpen.set(key, open + 1);
    far.addEventListener('close', () => {
      const n = (remote.inboundOpen.get(key) ?? 1) - 1;
      if (n <= 0) remote.inboundOpen.delete(key);
      else remote.inboundOpen.set(key, n);
    });
    const info = { peer: this.peerId, limited: false, remoteAddr: `/memory/${this.peerId}` };
    queueMicrotask(() => {
      Promise.resolve()
        .then(() => h(far, info))
        .catch((e: unknown) => far.abort(e instanceof Error ? e : new Error(String(e))));
    });
    return local;
  }

  async handle(protocol: string, handler: ProtocolHandler, opts?: HandleOptions): Promise<void> {
    this.handlers.set(protocol, handler);
    if (opts?.maxInboundStreams === undefined) this.inboundLimits.delete(protocol);
    else this.inboundLimits.set(protocol, opts.maxInboundStreams);
  }

  async unhandle(protocol: string): Promise<void> {
    this.handlers.delete(protocol);
  }

  subscribe(topic: string, onMessage: (msg: PubSubMessage) => void): () => void {
    let s = this.subs.get(topic);
    if (s === undefined) {
      s = new Set();
      this.subs.set(topic, s);
    }
    s.add(onMessage);
    return () => {
      this.subs.get(topic)?.delete(onMessage);
      if (this.subs.get(topic)?.size === 0) this.subs.delete(topic);
    };
  }

  setTopicValidator(topic: string, validator: TopicValidator | undefined): void {
    if (validator === undefined) this.validators.delete(topic);
    else this.validators.set(topic, validator);
  }

  async publish(topic: string, data: Uint8Array): Promise<number> {
    if (!this.running) throw new NetworkError('NOT_STARTED', 'network is not started');
    let n = 0;
    for (const node of this.hub.nodes.values()) {
      if (node === this || this.hub.reachable(this.peerId, node.peerId) === undefined) continue;
      if (!node.subs.has(topic)) continue;
      n++;
      await node.deliver({ topic, from: this.peerId, data: data.slice(), via: this.peerId });
    }
    return n;
  }

  /** Delivers a message as if it arrived from the network (tests use it to inject forged messages). */
  async deliver(msg: PubSubMessage): Promise<void> {
    const v = this.validators.get(msg.topic);
    if (v !== undefined && (await v(msg)) !== 'accept') return;
    for (const h of this.subs.get(msg.topic) ?? []) h(msg);
  }

  topicPeers(topic: string): PeerIdString[] {
    return [...this.hub.nodes.values()].filter((n) => n !== this && n.running && n.subs.has(topic)).map((n) => n.peerId);
  }

  async dhtPut(key: Uint8Array, value: Uint8Array, opts: AbortOptions = {}): Promise<number> {
    throwIfAborted(opts.signal, 'dht put');
    const ns = this.hub.namespaceOf(key);
    if (ns === undefined) throw new InvalidArgumentError('DHT key has no registered namespace');
    await ns.validate(key, value);
    const k = toHex(key);
    const prev = this.hub.records.get(k);
    if (prev !== undefined) {
      let prevValid = true;
      try {
        await ns.validate(key, prev.value);
      } catch {
        prevValid = false;
      }
      if (prevValid && ns.select(key, [value, prev.value]) !== 0) return this.othersRunning();
    }
    this.hub.records.set(k, { value: value.slice() });
    return this.othersRunning();
  }

  /** How many other started nodes share the hub (what a put or provide "reached"). */
  private othersRunning(): number {
    let n = 0;
    for (const node of this.hub.nodes.values()) if (node !== this && node.running) n++;
    return n;
  }

  async dhtGet(key: Uint8Array, opts: AbortOptions = {}): Promise<Uint8Array | undefined> {
    throwIfAborted(opts.signal, 'dht get');
    const ns = this.hub.namespaceOf(key);
    const r = this.hub.records.get(toHex(key));
    if (ns === undefined || r === undefined) return undefined;
    try {
      await ns.validate(key, r.value);
    } catch {
      return undefined;
    }
    return r.value.slice();
  }

  async provide(contentKey: Uint8Array, opts: AbortOptions = {}): Promise<number> {
    throwIfAborted(opts.signal, 'provide');
    const k = toHex(contentKey);
    let s = this.hub.providers.get(k);
    if (s === undefined) {
      s = new Set();
      this.hub.providers.set(k, s);
    }
    s.add(this.peerId);
    this.provided.add(k);
    return this.othersRunning();
  }

  async unprovide(contentKey: Uint8Array): Promise<void> {
    const k = toHex(contentKey);
    this.provided.delete(k);
    this.hub.providers.get(k)?.delete(this.peerId);
  }

  async findProviders(contentKey: Uint8Array, opts: AbortOptions & { limit?: number; quorum?: number } = {}): Promise<PeerAddressInfo[]> {
    throwIfAborted(opts.signal, 'find providers');
    const s = this.hub.providers.get(toHex(contentKey)) ?? new Set();
    return [...s].slice(0, opts.limit ?? 64).map((id) => ({ id, multiaddrs: [`/memory/${id}`] }));
  }

  async findPeer(peer: PeerIdString): Promise<PeerAddressInfo | undefined> {
    return this.hub.nodes.has(peer) ? { id: peer, multiaddrs: [`/memory/${peer}`] } : undefined;
  }

  bootstrapStatus(): BootstrapStatus {
    return { ...this.status };
  }

  private connect(peer: PeerIdString): MemoryNetwork {
    if (!this.running) throw new NetworkError('NOT_STARTED', 'network is not started');
    const remote = this.hub.reachable(this.peerId, peer);
    if (remote === undefined) throw new NetworkError('DIAL_FAILED', `peer ${peer} is not reachable`, { peer });
    if (!this.connections.has(peer)) {
      this.connections.add(peer);
      remote.connections.add(this.peerId);
      this.events.emit('peer:connect', { peer });
      remote.events.emit('peer:connect', { peer: this.peerId });
      if (!this.genesis) this.setStatus({ state: 'connected', failedRounds: 0 });
      if (!remote.genesis) remote.setStatus({ state: 'connected', failedRounds: 0 });
    }
    return remote;
  }

  /** @internal */
  dropConnection(peer: PeerIdString): void {
    if (!this.connections.delete(peer)) return;
    this.events.emit('peer:disconnect', { peer });
    if (this.connections.size === 0 && !this.genesis && this.running) this.setStatus({ state: 'connecting', failedRounds: 0 });
  }

  private setStatus(s: BootstrapStatus): void {
    if (s.state === this.status.state) return;
    this.status = s;
    this.events.emit('bootstrap:state', { ...s });
  }
}
