/**
 * Where a lane socket's bytes are read into (docs/PROTOCOL.md "Direct data lane", session 24).
 *
 * By default Node reads a socket into a fresh 64 KiB buffer per read: a 1 MiB request arrives as ~16 of them, each
 * external memory that drives V8's collections (the server's GC of them and of the frame's plaintext swung the 1 MiB
 * lane call's CPU most in session 23). A lane socket is instead read into ONE buffer of this process
 * (`READ_BUFFER_BYTES`, net's documented `onread` option), reused for every read of every lane socket: the lane's
 * reader (./reader.ts) takes what it needs out of a chunk before the callback returns (ciphertext decrypted into the
 * frame's own plaintext, length and tag bytes copied) and never keeps a view of it. That is safe because the event
 * loop reads one socket at a time and calls back synchronously: libuv fills the buffer, the callback runs to its end,
 * and only then does any socket read into it again. A chunk handed on is therefore `owned: false` ("borrowed":
 * valid only during the call). That mode is the default since session 27 (`NEUROSHARD_LANE_READS=fresh` turns it off,
 * see `reusedReads`); then, and where the socket cannot be adopted, Node's fresh buffers are used and chunks are
 * `owned: true` (the reader may decrypt a frame in place in them).
 *
 * Accepted sockets: `net.Server` has no `onread` option, so the lane listener accepts with `pauseOnConnect` (nothing
 * read yet) and wraps the accepted socket's handle in a new `net.Socket` that has one (`adoptAccepted`). That uses
 * two fields that Node does not document (`_handle`, `_server`); when they are not there the accepted socket is
 * used as it is, with fresh reads (`owned: true`), so a future Node changes the speed, not the behaviour.
 */
import { Socket, type SocketConstructorOpts, type TcpSocketConnectOpts } from 'node:net';

/** The one read buffer of this process: a 1 MiB frame arrives in ~4 reads instead of ~16. */
export const READ_BUFFER_BYTES = 256 * 1024;

let shared: Buffer | undefined;

function readBuffer(): Buffer {
  shared ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  return shared;
}

/**
 * Whether lane sockets read into the shared buffer: yes unless NEUROSHARD_LANE_READS=fresh. Opt-in from session 24
 * (the lead's quiet pairs then: no gain at 1 MiB, docs/LIMITS.md "Session 24: 1 MiB on the lane, receive side"), the
 * default since session 27: with it a lane also decrypts a large message's DATA straight into the RPC reader's body
 * (reader.ts FramePlacer), which halves the server's CPU for 16 MiB calls with 4 in flight, and the lead's alternating
 * pairs of the p2p-rpc section (3 pairs, load 1.6–4.9) read better on every figure: 1 MiB lane ratio 0.44–0.48
 * against 0.29–0.41, 16 MiB server CPU per call 22 against 45–48 ms, 16 MiB MiB/s 434–499 against 257–265
 * (docs/LIMITS.md "Session 27: the lead's runs"). The accepted socket's adoption leans on fields Node does not
 * document; without them the socket keeps fresh reads (`adoptAccepted`).
 */
export function reusedReads(): boolean {
  return process.env.NEUROSHARD_LANE_READS !== 'fresh';
}

/** What a chunk's receiver gets: `owned` false when the chunk is the shared read buffer (valid only during the call). */
export type ChunkSink = (chunk: Buffer, owned: boolean) => void;

/**
 * A lane socket's reads. Chunks go to the attached sink; a chunk that arrives while none is attached (between the
 * listener's authentication and the lane taking the socket over: never, as both happen in one callback, but kept
 * safe) is copied and handed over when one attaches.
 */
export class SocketReads {
  private sink: ChunkSink | undefined;
  private held: Buffer[] = [];
  /** Chunks handed on from the shared buffer (tests: the reused path ran). */
  borrowed = 0;

  constructor(
    readonly socket: Socket,
    /** True when the socket reads into the shared buffer (chunks borrowed); false: Node's fresh buffers (owned). */
    readonly reused: boolean,
  ) {
    if (!reused) socket.on('data', (c: Buffer) => this.give(c, true));
  }

  /** Sends every chunk from now on to `sink` (undefined: none; chunks are held, copied). */
  attach(sink: ChunkSink | undefined): void {
    this.sink = sink;
    if (sink === undefined) return;
    // one at a time: a sink that hands over to another (the listener's to the lane's) leaves the rest for it
    while (this.held.length > 0 && this.sink === sink) sink(this.held.shift()!, true);
  }

  /** The `onread` callback: `n` bytes at the start of the shared buffer. */
  readonly onRead = (n: number, buf: Buffer): void => {
    this.borrowed++;
    this.give(buf.subarray(0, n), false);
  };

  private give(chunk: Buffer, owned: boolean): void {
    if (this.sink !== undefined) this.sink(chunk, owned);
    else this.held.push(owned ? chunk : Buffer.from(chunk));
  }
}

/** `net.connect` options reading into the shared buffer; the sink is attached later (`SocketReads`). */
export function dialReused(opts: TcpSocketConnectOpts): { socket: Socket; reads: SocketReads } {
  if (!reusedReads()) {
    const socket = new Socket();
    socket.connect(opts);
    return { socket, reads: new SocketReads(socket, false) };
  }
  // the callback runs only once the socket reads (after connect), when `reads` is set
  const socket = new Socket({ onread: { buffer: readBuffer(), callback: (n: number, b: Uint8Array) => reads.onRead(n, b as Buffer) } } as SocketConstructorOpts);
  const reads = new SocketReads(socket, true);
  socket.connect(opts);
  return { socket, reads };
}

interface NetInternals {
  _handle?: unknown;
  _server?: unknown;
  server?: unknown;
}

/**
 * A socket the lane listener accepted with `pauseOnConnect` (nothing read yet), as a socket reading into the shared
 * buffer: its handle moves to a new `net.Socket` made with `onread`, which takes over the server's count of the
 * connection (`maxConnections`, `close`). Falls back to the accepted socket itself, resumed, with fresh reads.
 */
export function adoptAccepted(accepted: Socket): { socket: Socket; reads: SocketReads } {
  const a = accepted as unknown as NetInternals;
  const handle = a._handle;
  if (!reusedReads() || handle === null || typeof handle !== 'object' || !('readStart' in handle) || !('useUserBuffer' in handle) || accepted.destroyed) {
    accepted.resume();
    return { socket: accepted, reads: new SocketReads(accepted, false) };
  }
  // the callback runs only once the new socket reads (a later turn of the event loop), when `reads` is set
  const socket = new Socket({
    handle,
    readable: true,
    writable: true,
    onread: { buffer: readBuffer(), callback: (n: number, b: Uint8Array) => reads.onRead(n, b as Buffer) },
  } as SocketConstructorOpts);
  const reads = new SocketReads(socket, true);
  const s = socket as unknown as NetInternals;
  s._server = a._server;
  s.server = a.server;
  // the old object lets go of the handle and of the server's count (its destroy closes nothing now)
  a._server = null;
  a.server = null;
  a._handle = null;
  accepted.destroy();
  return { socket, reads };
}
