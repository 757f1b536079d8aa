/**
 * Direct data lanes (docs/PROTOCOL.md "Direct data lane"; issue 8 §5): between two nodes that already hold a
 * direct (not relayed) libp2p connection, RPC streams go over a plain TCP socket sealed with AES-256-GCM
 * (./lane.ts) instead of libp2p's noise + yamux, which cost ~250 µs per small round trip and ~8 ms of CPU per
 * 1 MiB. libp2p stays for discovery, the DHT, records, gossip, and as the fallback: any stream that cannot go on a
 * lane (no lane, lane refused or dead, the peer relayed) opens on libp2p exactly as before.
 *
 * Setup, over an authenticated libp2p stream of protocol `/neuroshard/<net>/lane/1.0.0` (noise bound it to the
 * peer id):
 *   client → server   0x01 · client X25519 public key (32)
 *   server → client   0x01 · server X25519 public key (32) · lane id (16 random bytes) · lane port (u16 BE)
 * Both derive the two direction keys (./aead.ts: HKDF over both peer ids, both keys and the lane id). The client
 * dials the lane port on the IP of its libp2p connection, sends the lane id and its sealed hello (frame 0); the
 * server keeps nothing per socket but a fixed 62-byte buffer and a deadline until the hello authenticates under a
 * lane id it issued (one use, expiring after `handshakeMs`), then answers with its own hello.
 *
 * Quotas: lanes per peer and in total, lane ids issued and unused (per peer and in total), unauthenticated
 * sockets at once (more are closed on accept), the hello deadline; a lane with no stream for `idleMs` closes,
 * and every lane of a peer closes when its libp2p connection goes.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { DuplexStream, HandleOptions, P2PNetwork, PeerIdString, ProtocolHandler, StreamInfo } from '../types.js';
import { LENGTH_BYTES, Opener, Sealer, TAG_BYTES, X25519_PUBLIC_BYTES, deriveLaneKeys, ephemeralKey, type LaneKeys } from './aead.js';
import { HELLO_MAGIC, SUB_HEADER_BYTES, SUB_HELLO, subFrame } from './codec.js';
import { LaneError } from './errors.js';
import { Lane, type LaneHandlerEntry, type LaneLimits } from './lane.js';
import { LaneStream } from './stream.js';
import { adoptAccepted, dialReused, type SocketReads } from './reads.js';

export interface LaneOptions extends LaneLimits {
  /** Calls to a peer go over its lane when one can be made (NodeOptions.rpcLane). */
  enabled: boolean;
  /** Address the lane listener binds (default: 127.0.0.1 when every libp2p listen address is loopback, else 0.0.0.0). */
  listenHost: string;
  /** Port of the lane listener (0: any free port; peers learn it in the setup). */
  port: number;
  maxLanesPerPeer: number;
  maxLanes: number;
  /** Lane ids issued and not used yet, in total (each peer at most maxLanesPerPeer). */
  maxPendingHandshakes: number;
  /** Sockets on the lane port that have not authenticated yet; more are closed at once. */
  maxUnauthSockets: number;
  /** A socket must authenticate (lane id and sealed hello) within this long. */
  authMs: number;
  /** The whole setup (libp2p stream, TCP dial, hellos); an issued lane id expires after it. */
  handshakeMs: number;
  /** After a failed setup or a lane that died, that peer's calls use libp2p for this long (doubling with each failure in a row, up to 10 min). */
  retryMs: number;
  /** A stream open waits this long for a lane being set up before it takes libp2p (only while no setup to that peer has failed). */
  waitMs: number;
}

export const LANE_DEFAULTS: LaneOptions = {
  enabled: true,
  listenHost: '0.0.0.0',
  port: 0,
  // a message of up to ~4 MiB (a 1 MiB request, a prefill chunk's activations) goes in one sealed frame: the far end
  // decrypts it as its reads arrive into one buffer and hands the DATA on as one view, no join (./reader.ts). The
  // sender writes it in 256 KiB pieces as they are sealed; the receiver holds at most one frame's plaintext per lane.
  maxFramePlainBytes: 4 * 1024 * 1024,
  windowBytes: 2 * 1024 * 1024,
  maxStreams: 1024,
  writeHighWaterBytes: 1024 * 1024,
  maxWriteBufferBytes: 64 * 1024 * 1024,
  openMs: 5_000,
  idleMs: 5 * 60_000,
  // a frame must arrive within 30 s + 1 s per 64 KiB of it (lane.ts frameOverdue; a 4 MiB frame: 94 s)
  frameMs: 30_000,
  frameBytesPerSec: 64 * 1024,
  maxLanesPerPeer: 2,
  maxLanes: 256,
  maxPendingHandshakes: 64,
  maxUnauthSockets: 64,
  authMs: 2_000,
  handshakeMs: 10_000,
  retryMs: 30_000,
  waitMs: 2_000,
};

const VERSION = 0x01;
/** Longest backoff after setups to a peer kept failing (its lane port firewalled, say). */
const MAX_RETRY_MS = 10 * 60_000;
const LANE_ID_BYTES = 16;
const MSG1_BYTES = 1 + X25519_PUBLIC_BYTES;
const MSG2_BYTES = 1 + X25519_PUBLIC_BYTES + LANE_ID_BYTES + 2;
/** The client's hello frame: length · (sub-frame header · magic) sealed · tag. */
const HELLO_FRAME_BODY = SUB_HEADER_BYTES + HELLO_MAGIC.length + TAG_BYTES;
/** What a stranger's socket may make us hold before it authenticates. */
const AUTH_BYTES = LANE_ID_BYTES + LENGTH_BYTES + HELLO_FRAME_BODY;
const EXPECTED_HELLO = subFrame(SUB_HELLO, 0, HELLO_MAGIC);

/** The node's P2P network as lanes need it: streams for the setup, the IP of a direct connection. */
export type LaneNetwork = Pick<P2PNetwork, 'peerId' | 'events' | 'openStream' | 'handle' | 'unhandle' | 'dial'> & {
  /** The IPv4 address of an open, direct (not relayed) TCP connection to `peer`; undefined when there is none. */
  directPeerIp?(peer: PeerIdString): string | undefined;
};

/** What the RPC layer asks of lanes (src/protocols/rpc/service.ts). */
export interface StreamLanes {
  /** A stream for `protocol` on a lane to `peer`, or undefined when none can be had now (use libp2p). */
  openStream(peer: PeerIdString, protocol: string, signal?: AbortSignal): Promise<DuplexStream | undefined>;
  /** True when a lane to `peer` is up. */
  hasLane(peer: PeerIdString): boolean;
  handle(protocol: string, handler: ProtocolHandler, opts?: HandleOptions): void;
  unhandle(protocol: string): void;
  /** True for a stream that runs on a lane. */
  isLaneStream(s: DuplexStream): boolean;
}

export interface LaneStats {
  lanesUp: number;
  lanesMade: number;
  setupsFailed: number;
  streamsOut: number;
  streamsIn: number;
  /** Sockets closed on accept (too many unauthenticated at once). */
  socketsRefused: number;
  /** Sockets closed before authenticating (unknown lane id, bad hello, deadline, junk). */
  authFailed: number;
  /** Handshakes refused by a quota. */
  quotaRefused: number;
  /** Lanes closed with an error (not idle or stop). */
  lanesFailed: number;
}

interface PendingLane {
  peer: PeerIdString;
  keys: LaneKeys;
  timer: NodeJS.Timeout;
}

export class LaneManager implements StreamLanes {
  private readonly o: LaneOptions;
  private readonly log: Logger;
  private server: Server | undefined;
  private started = false;
  private readonly handlers = new Map<string, LaneHandlerEntry>();
  private readonly lanes = new Map<PeerIdString, Set<Lane>>();
  private readonly pending = new Map<string, PendingLane>();
  private readonly connecting = new Map<PeerIdString, Promise<Lane | undefined>>();
  private readonly backoff = new Map<PeerIdString, number>();
  /** Failed setups in a row per connected peer (the backoff doubles with each, up to MAX_RETRY_MS). */
  private readonly failures = new Map<PeerIdString, number>();
  private readonly sockets = new Set<Socket>();
  private unauth = 0;
  private offDisconnect: (() => void) | undefined;
  private readonly counters = { lanesMade: 0, setupsFailed: 0, socketsRefused: 0, authFailed: 0, quotaRefused: 0, lanesFailed: 0, streamsOut: 0, streamsIn: 0 };

  constructor(
    private readonly network: LaneNetwork,
    /** The setup protocol id (protocols/ids.ts laneProtocolId). */
    private readonly protocol: string,
    opts: Partial<LaneOptions> = {},
    log?: Logger,
  ) {
    this.o = { ...LANE_DEFAULTS, ...opts };
    this.log = log ?? silentLogger;
  }

  get options(): Readonly<LaneOptions> {
    return this.o;
  }

  /** The lane listener's port (after start). */
  get port(): number | undefined {
    const a = this.server?.address();
    return a !== null && typeof a === 'object' ? a.port : undefined;
  }

  stats(): LaneStats {
    let up = 0;
    let inb = 0;
    for (const set of this.lanes.values()) {
      for (const l of set) {
        if (l.ready) up++;
        inb += l.stats.streamsIn;
      }
    }
    return { lanesUp: up, ...this.counters, streamsIn: this.counters.streamsIn + inb };
  }

  /** Lanes to `peer` (tests: to kill one's socket). */
  lanesOf(peer: PeerIdString): Lane[] {
    return [...(this.lanes.get(peer) ?? [])];
  }

  async start(): Promise<void> {
    if (this.started || !this.o.enabled) return;
    // accepted paused: ./reads.ts adopts the socket into one that reads into the shared buffer before anything is read
    const server = createServer({ noDelay: true, pauseOnConnect: true }, (s) => this.onSocket(s));
    server.maxConnections = this.o.maxLanes + this.o.maxUnauthSockets;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log.warn('lane listener failed', { error: e.message }));
    this.server = server;
    await this.network.handle(this.protocol, (stream, info) => this.serveSetup(stream, info), { maxInboundStreams: this.o.maxLanesPerPeer });
    this.offDisconnect = this.network.events.on('peer:disconnect', ({ peer }) => this.dropPeer(peer, new LaneError('LANE_CLOSED', `libp2p connection to ${peer} closed`)));
    this.started = true;
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.offDisconnect?.();
    await this.network.unhandle(this.protocol).catch(() => {});
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const set of [...this.lanes.values()]) for (const l of [...set]) l.close(new LaneError('LANE_CLOSED', 'node stopping'));
    this.lanes.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }

  handle(protocol: string, handler: ProtocolHandler, opts: HandleOptions = {}): void {
    this.handlers.set(protocol, { handler, maxInbound: opts.maxInboundStreams ?? 32 });
  }

  unhandle(protocol: string): void {
    this.handlers.delete(protocol);
  }

  hasLane(peer: PeerIdString): boolean {
    return this.laneTo(peer) !== undefined;
  }

  isLaneStream(s: DuplexStream): boolean {
    return s instanceof LaneStream;
  }

  async openStream(peer: PeerIdString, protocol: string, signal?: AbortSignal): Promise<DuplexStream | undefined> {
    if (!this.started) return undefined;
    let lane = this.laneTo(peer);
    if (lane === undefined) {
      const p = this.ensure(peer);
      if (p === undefined) return undefined;
      // after a failure the retry runs in the background: a peer whose lane port cannot be reached does not make a
      // call wait for it again
      if (this.failures.has(peer)) return undefined;
      lane = await waitBounded(p, this.o.waitMs, signal);
      if (lane === undefined || !lane.ready) return undefined;
    }
    try {
      const s = await lane.openStream(protocol, { signal });
      this.counters.streamsOut++;
      return s;
    } catch (e) {
      if (signal?.aborted === true) throw signal.reason;
      this.log.debug('lane stream open failed; libp2p instead', { peer, protocol, error: (e as Error).message });
      return undefined;
    }
  }

  /** The lane to `peer` being set up or up, starting a setup when none is (undefined: none may be tried now). */
  ensure(peer: PeerIdString): Promise<Lane | undefined> | undefined {
    if (!this.started) return undefined;
    const up = this.laneTo(peer);
    if (up !== undefined) return Promise.resolve(up);
    const c = this.connecting.get(peer);
    if (c !== undefined) return c;
    const until = this.backoff.get(peer);
    if (until !== undefined) {
      if (Date.now() < until) return undefined;
      this.backoff.delete(peer);
    }
    if (this.laneCount() >= this.o.maxLanes) return undefined;
    if (this.network.directPeerIp === undefined) return undefined;
    const p = this.connect(peer).then(
      (l) => l,
      (e: unknown) => {
        this.counters.setupsFailed++;
        this.fail(peer);
        this.log.debug('lane setup failed; libp2p for this peer', { peer, error: (e as Error).message });
        return undefined;
      },
    );
    const tracked = p.finally(() => this.connecting.delete(peer));
    this.connecting.set(peer, tracked);
    return tracked;
  }

  /** A setup failed or a lane died with an error: this peer's calls take libp2p for a while, longer each time. */
  private fail(peer: PeerIdString): void {
    const n = (this.failures.get(peer) ?? 0) + 1;
    this.failures.set(peer, n);
    this.backoff.set(peer, Date.now() + Math.min(MAX_RETRY_MS, this.o.retryMs * 2 ** Math.min(n - 1, 16)));
  }

  private laneTo(peer: PeerIdString): Lane | undefined {
    const set = this.lanes.get(peer);
    if (set === undefined) return undefined;
    for (const l of set) if (l.ready) return l;
    return undefined;
  }

  private laneCount(): number {
    let n = 0;
    for (const s of this.lanes.values()) n += s.size;
    return n;
  }

  private dropPeer(peer: PeerIdString, err: LaneError): void {
    // what we know of a peer lives as long as its connection (bounded by the connection limit)
    this.failures.delete(peer);
    this.backoff.delete(peer);
    for (const [id, p] of [...this.pending]) {
      if (p.peer !== peer) continue;
      clearTimeout(p.timer);
      this.pending.delete(id);
    }
    for (const l of this.lanesOf(peer)) l.close(err);
  }

  // ── client side ──

  private async connect(peer: PeerIdString): Promise<Lane> {
    const signal = AbortSignal.timeout(this.o.handshakeMs);
    // the first call to a peer may come before its connection: libp2p would dial it for the stream anyway
    if (this.network.directPeerIp?.(peer) === undefined) await this.network.dial(peer, { signal });
    const ip = this.network.directPeerIp?.(peer);
    if (ip === undefined) throw new LaneError('LANE_UNAVAILABLE', `no direct TCP connection to ${peer}`);
    const eph = ephemeralKey();
    const stream = await this.network.openStream(peer, this.protocol, { signal, allowLimited: false });
    let msg2: Buffer;
    try {
      const msg1 = Buffer.alloc(MSG1_BYTES);
      msg1[0] = VERSION;
      eph.publicRaw.copy(msg1, 1);
      if (!stream.send(msg1)) await stream.onDrain({ signal });
      msg2 = await readExactly(stream, MSG2_BYTES, signal);
      await stream.close({ signal });
    } catch (e) {
      stream.abort(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
    if (msg2[0] !== VERSION) throw new LaneError('LANE_HANDSHAKE', `lane setup version ${msg2[0]}`);
    const serverPublic = msg2.subarray(1, 1 + X25519_PUBLIC_BYTES);
    const laneId = msg2.subarray(1 + X25519_PUBLIC_BYTES, 1 + X25519_PUBLIC_BYTES + LANE_ID_BYTES);
    const port = msg2.readUInt16BE(MSG2_BYTES - 2);
    if (port === 0) throw new LaneError('LANE_HANDSHAKE', 'lane port 0');
    const keys = deriveLaneKeys(eph, serverPublic, { clientPeer: this.network.peerId, serverPeer: peer, clientPublic: eph.publicRaw, serverPublic, laneId });
    const { socket: sock, reads } = await dialTcp(ip, port, signal);
    if (!this.started) {
      sock.destroy();
      throw new LaneError('LANE_CLOSED', 'node stopping');
    }
    sock.write(Buffer.from(laneId));
    const lane = new Lane({
      socket: sock,
      role: 'client',
      reads,
      peer,
      remoteAddr: `/ip4/${ip}/tcp/${port}`,
      sealer: new Sealer(keys.clientToServer),
      opener: new Opener(keys.serverToClient),
      limits: this.o,
      handlerOf: (p) => this.handlers.get(p),
      onClose: (l, err) => this.onLaneClose(l, err),
    });
    this.addLane(lane);
    try {
      await lane.whenReady(signal);
    } catch (e) {
      lane.close(e instanceof LaneError ? e : new LaneError('LANE_HANDSHAKE', `no hello from ${peer}: ${(e as Error).message}`));
      throw e;
    }
    this.counters.lanesMade++;
    this.failures.delete(peer);
    return lane;
  }

  private addLane(lane: Lane): void {
    let set = this.lanes.get(lane.peer);
    if (set === undefined) this.lanes.set(lane.peer, (set = new Set()));
    set.add(lane);
  }

  private onLaneClose(lane: Lane, err: Error): void {
    const set = this.lanes.get(lane.peer);
    set?.delete(lane);
    if (set?.size === 0) this.lanes.delete(lane.peer);
    this.counters.streamsIn += lane.stats.streamsIn;
    const quiet = err instanceof LaneError && err.code === 'LANE_CLOSED' && /idle|stopping|libp2p connection/.test(err.message);
    if (!quiet && this.started) {
      // a lane that failed: this peer's calls take libp2p for a while rather than a lane that may fail again
      this.counters.lanesFailed++;
      this.fail(lane.peer);
      this.log.debug('lane closed', { peer: lane.peer, error: err.message });
    }
  }

  // ── server side ──

  /** The setup stream: the key exchange, a lane id issued for one use. */
  private async serveSetup(stream: DuplexStream, info: StreamInfo): Promise<void> {
    const refuse = (why: string): void => {
      this.counters.quotaRefused++;
      stream.abort(new LaneError('LANE_QUOTA', why));
    };
    if (info.limited) return refuse('relayed connection');
    const port = this.port;
    if (port === undefined) return refuse('no lane listener');
    let mine = 0;
    for (const p of this.pending.values()) if (p.peer === info.peer) mine++;
    const lanes = this.lanes.get(info.peer)?.size ?? 0;
    if (mine + lanes >= this.o.maxLanesPerPeer) return refuse(`${mine + lanes} lanes of ${info.peer}`);
    if (this.pending.size >= this.o.maxPendingHandshakes) return refuse(`${this.pending.size} lane setups pending`);
    if (this.laneCount() >= this.o.maxLanes) return refuse(`${this.laneCount()} lanes`);
    const signal = AbortSignal.timeout(this.o.handshakeMs);
    const msg1 = await readExactly(stream, MSG1_BYTES, signal);
    if (msg1[0] !== VERSION) throw new LaneError('LANE_HANDSHAKE', `lane setup version ${msg1[0]}`);
    const clientPublic = msg1.subarray(1);
    const eph = ephemeralKey();
    const laneId = randomBytes(LANE_ID_BYTES);
    const keys = deriveLaneKeys(eph, clientPublic, { clientPeer: info.peer, serverPeer: this.network.peerId, clientPublic, serverPublic: eph.publicRaw, laneId });
    // re-checked after the read: another setup of this peer may have taken the slot meanwhile
    if (this.pending.size >= this.o.maxPendingHandshakes) return refuse(`${this.pending.size} lane setups pending`);
    const key = laneId.toString('hex');
    const timer = setTimeout(() => this.pending.delete(key), this.o.handshakeMs);
    timer.unref();
    this.pending.set(key, { peer: info.peer, keys, timer });
    const msg2 = Buffer.alloc(MSG2_BYTES);
    msg2[0] = VERSION;
    eph.publicRaw.copy(msg2, 1);
    laneId.copy(msg2, 1 + X25519_PUBLIC_BYTES);
    msg2.writeUInt16BE(port, MSG2_BYTES - 2);
    if (!stream.send(msg2)) await stream.onDrain({ signal });
    await stream.close({ signal });
  }

  /**
   * A socket on the lane port. Until its hello authenticates it holds only a fixed AUTH_BYTES buffer and a
   * deadline; an unknown lane id, a length other than the hello's, a hello that does not open, or the deadline
   * closes it.
   */
  private onSocket(accepted: Socket): void {
    if (!this.started || this.unauth >= this.o.maxUnauthSockets) {
      this.counters.socketsRefused++;
      accepted.destroy();
      return;
    }
    const { socket: sock, reads } = adoptAccepted(accepted);
    this.unauth++;
    this.sockets.add(sock);
    const hdr = Buffer.alloc(AUTH_BYTES);
    let got = 0;
    let entry: PendingLane | undefined;
    let key = '';
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.unauth--;
      this.sockets.delete(sock);
      clearTimeout(t);
      reads.attach(undefined);
      sock.off('error', onEnd);
      sock.off('close', onEnd);
    };
    const fail = (): void => {
      if (done) return;
      finish();
      this.counters.authFailed++;
      sock.destroy();
    };
    const onEnd = (): void => fail();
    const t = setTimeout(fail, this.o.authMs);
    // a borrowed chunk (./reads.ts) is only read here: the header is copied into hdr, the rest copied for the lane
    const onData = (chunk: Buffer, owned: boolean): void => {
      if (done) return;
      const take = Math.min(chunk.length, AUTH_BYTES - got);
      chunk.copy(hdr, got, 0, take);
      got += take;
      if (entry === undefined && got >= LANE_ID_BYTES) {
        key = hdr.subarray(0, LANE_ID_BYTES).toString('hex');
        entry = this.pending.get(key);
        if (entry === undefined) return fail();
      }
      if (got >= LANE_ID_BYTES + LENGTH_BYTES && hdr.readUInt32BE(LANE_ID_BYTES) !== HELLO_FRAME_BODY) return fail();
      if (got < AUTH_BYTES) return;
      const p = entry!;
      const opener = new Opener(p.keys.clientToServer);
      try {
        const plain = opener.open([hdr.subarray(LANE_ID_BYTES + LENGTH_BYTES, AUTH_BYTES - TAG_BYTES)], hdr.subarray(AUTH_BYTES - TAG_BYTES));
        if (!plain.equals(EXPECTED_HELLO)) return fail();
      } catch {
        return fail(); // the lane id stays issued until it expires: a stranger who saw it cannot burn it
      }
      const lanes = this.lanes.get(p.peer)?.size ?? 0;
      if (lanes >= this.o.maxLanesPerPeer || this.laneCount() >= this.o.maxLanes || this.pending.get(key) !== p) {
        this.counters.quotaRefused++;
        return fail();
      }
      clearTimeout(p.timer);
      this.pending.delete(key);
      finish();
      const lane = new Lane({
        socket: sock,
        role: 'server',
        peer: p.peer,
        remoteAddr: `/ip4/${sock.remoteAddress ?? '?'}/tcp/${sock.remotePort ?? 0}`,
        sealer: new Sealer(p.keys.serverToClient),
        opener,
        limits: this.o,
        handlerOf: (pr) => this.handlers.get(pr),
        onClose: (l, err) => this.onLaneClose(l, err),
        reads,
        leftover: owned ? chunk.subarray(take) : Buffer.from(chunk.subarray(take)),
        helloSeen: true,
      });
      this.addLane(lane);
      this.counters.lanesMade++;
    };
    reads.attach(onData);
    sock.on('error', onEnd);
    sock.on('close', onEnd);
  }
}

/** `p`'s value, or undefined after `ms`; the signal's reason when it fires. */
async function waitBounded<T>(p: Promise<T>, ms: number, signal?: AbortSignal): Promise<T | undefined> {
  if (signal?.aborted === true) throw signal.reason;
  let t: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((resolve) => (t = setTimeout(() => resolve(undefined), ms))),
      new Promise<never>((_, reject) => {
        if (signal === undefined) return;
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(t);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
}

/** Exactly `n` bytes from a setup stream (more is a protocol error). */
async function readExactly(stream: DuplexStream, n: number, signal: AbortSignal): Promise<Buffer> {
  const onAbort = (): void => stream.abort(signal.reason instanceof Error ? signal.reason : new Error('lane setup timed out'));
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const parts: Buffer[] = [];
    let got = 0;
    for await (const chunk of stream) {
      const c = chunk instanceof Uint8Array ? chunk : chunk.subarray();
      got += c.byteLength;
      if (got > n) throw new LaneError('LANE_HANDSHAKE', `lane setup message longer than ${n} bytes`);
      parts.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      if (got === n) return Buffer.concat(parts, n);
    }
    throw new LaneError('LANE_HANDSHAKE', `lane setup message cut at ${got} of ${n} bytes`);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function dialTcp(host: string, port: number, signal: AbortSignal): Promise<{ socket: Socket; reads: SocketReads }> {
  return new Promise((resolve, reject) => {
    const { socket: sock, reads } = dialReused({ host, port, noDelay: true });
    const onAbort = (): void => {
      sock.destroy();
      reject(new LaneError('LANE_UNAVAILABLE', `lane dial to ${host}:${port} timed out`));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      sock.off('error', onError);
      resolve({ socket: sock, reads });
    });
    const onError = (e: Error): void => {
      signal.removeEventListener('abort', onAbort);
      reject(new LaneError('LANE_UNAVAILABLE', `lane dial to ${host}:${port} failed: ${e.message}`, undefined, e));
    };
    sock.once('error', onError);
  });
}
