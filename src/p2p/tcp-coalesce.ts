/**
 * One socket write per libp2p message on TCP connections (issue 8 §5, the hop round trip's overhead).
 *
 * @libp2p/tcp 11 (`TCPSocketMultiaddrConnection.sendData`) calls `socket.write` once per buffer of the list it is
 * given, and the noise encrypter hands it each message as several buffers: the 2-byte length prefix, the encrypted
 * yamux header, the encrypted payload and the 16-byte tag. With TCP_NODELAY (libp2p's default) every one of those
 * is a syscall of its own and usually a segment of its own, and the receiver gets a `data` event, a noise decoder
 * pass and a stream push for each. Profiled on loopback (one 12x768 decode step through one hop,
 * `/tmp`-free probe in src/node/serving-bench), a round trip made 12 socket writes (6 per direction, 2 of them the
 * window update's) for 2 messages of 3 KiB.
 *
 * This corks the socket for the duration of one `sendData` call, so that Node hands the kernel all the buffers of
 * that call in one writev. Nothing else changes: the same bytes in the same order, the same backpressure answer
 * (the loop stops at the first write that says the socket's buffer is full, as the library's does).
 *
 * Installed per connection (`connection:open`), on the connection's own TCP multiaddr connection only, and only
 * when it has the fields this relies on: a newer @libp2p/tcp that renames them keeps its own behaviour.
 */
import { Socket } from 'node:net';

interface ListLike {
  byteLength: number;
  [Symbol.iterator](): Iterator<Uint8Array>;
}

interface TcpMaConn {
  socket?: unknown;
  sendData?: (data: ListLike) => { sentBytes: number; canSendMore: boolean };
}

const PATCHED = Symbol('neuroshard.tcpCoalesce');

/** Makes `connection`'s TCP socket take each message in one write; false when it is not one we know. */
export function coalesceTcpWrites(connection: unknown): boolean {
  const maConn = (connection as { maConn?: TcpMaConn } | null)?.maConn;
  if (maConn === undefined || maConn === null || typeof maConn.sendData !== 'function') return false;
  const socket = maConn.socket;
  if (!(socket instanceof Socket)) return false;
  const m = maConn as TcpMaConn & { [PATCHED]?: true };
  if (m[PATCHED] === true) return true;
  m[PATCHED] = true;
  m.sendData = (data: ListLike) => {
    let sentBytes = 0;
    let canSendMore = true;
    socket.cork();
    try {
      for (const buf of data) {
        sentBytes += buf.byteLength;
        canSendMore = socket.write(buf);
        if (!canSendMore) break;
      }
    } finally {
      socket.uncork();
    }
    return { sentBytes, canSendMore };
  };
  return true;
}
