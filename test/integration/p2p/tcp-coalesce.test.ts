/**
 * One socket write per libp2p message on TCP (src/p2p/tcp-coalesce.ts, installed by every Libp2pNetwork), on two
 * real libp2p nodes on 127.0.0.1: a small message (noise length prefix, encrypted yamux header, payload, tag) leaves
 * in one write syscall instead of four, and bytes still arrive whole and in order, a transfer many socket buffers
 * long included (the backpressure path).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Libp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import { coalesceTcpWrites } from '../../../src/p2p/tcp-coalesce.js';
import type { DuplexStream } from '../../../src/p2p/types.js';
import { protocolPrefix } from '../../../src/protocols/ids.js';
import { readN, startLoopbackLibp2p } from '../../utils/network.js';
import { waitFor } from '../../../src/util/abort.js';

const NETWORK = 'tcpco-' + randomBytes(3).toString('hex');
const PREFIX = protocolPrefix(NETWORK);

/** A bare loopback node on this test's own protocol prefix. */
const node = (): Promise<Libp2pNetwork> => startLoopbackLibp2p(NETWORK);

/** The TCP socket under a node's (only) connection, with a count of the write syscalls Node makes on it. */
function socketWrites(net: Libp2pNetwork): { socket: Socket; writes: () => number } {
  const conn = net.libp2p.getConnections()[0]!;
  const socket = (conn as unknown as { maConn: { socket: Socket } }).maConn.socket;
  assert.ok(socket instanceof Socket, 'the connection runs on a net.Socket');
  // both _write (one buffer) and _writev (a corked batch) end in one syscall each
  const s = socket as unknown as { _writeGeneric: (...a: unknown[]) => unknown };
  const orig = s._writeGeneric.bind(socket);
  let n = 0;
  s._writeGeneric = (...a: unknown[]) => {
    n++;
    return orig(...a);
  };
  return { socket, writes: () => n };
}

describe('tcp: one socket write per libp2p message', { timeout: 180_000 }, () => {
  let a: Libp2pNetwork;
  let b: Libp2pNetwork;
  let peer: string;
  before(async () => {
    a = await node();
    b = await node();
    peer = await b.dial(a.multiaddrs()[0]!);
    // the listener registers its end of the connection a moment after the dialer's dial resolves
    await waitFor(() => a.libp2p.getConnections().length > 0, { timeoutMs: 60_000, what: 'the listener sees the connection' });
    const proto = `${PREFIX}/echo/1`;
    await a.handle(proto, async (stream: DuplexStream) => {
      for await (const c of stream) {
        if (!stream.send(c instanceof Uint8Array ? c : c.subarray())) await stream.onDrain();
      }
      await stream.close();
    });
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
  });

  it('is installed on both ends of a real connection (fails if @libp2p/tcp renames what it relies on)', () => {
    for (const n of [a, b]) {
      const conn = n.libp2p.getConnections()[0];
      assert.ok(conn !== undefined);
      assert.equal(coalesceTcpWrites(conn), true);
    }
  });

  it('200 echoed 3 KiB messages: at most one write per message and window update, bytes intact', async () => {
    const s = await b.openStream(peer, `${PREFIX}/echo/1`);
    const it = s[Symbol.asyncIterator]();
    const msg = new Uint8Array(3072);
    for (let i = 0; i < 20; i++) {
      s.send(msg);
      await readN(it, msg.byteLength);
    }
    const wb = socketWrites(b);
    const wa = socketWrites(a);
    for (let i = 0; i < 200; i++) {
      msg.fill(i & 0xff);
      s.send(msg);
      const back = await readN(it, msg.byteLength);
      assert.ok(back.every((x) => x === (i & 0xff)), `message ${i} came back altered`);
    }
    await s.close();
    // per message each way: one noise message with the data, and (yamux 8) one with a window update; without
    // coalescing that is 4 + 2 writes (length prefix, header, payload and tag each written on their own)
    const perMessage = (wa.writes() + wb.writes()) / 400;
    assert.ok(perMessage <= 3, `${perMessage.toFixed(2)} socket writes per message`);
  });

  it('16 MiB in one go arrives whole and in order (socket backpressure with corked writes)', async () => {
    const s = await b.openStream(peer, `${PREFIX}/echo/1`);
    const it = s[Symbol.asyncIterator]();
    const payload = randomBytes(16 << 20);
    const reading = readN(it, payload.byteLength);
    for (let off = 0; off < payload.byteLength; off += 1 << 20) {
      if (!s.send(payload.subarray(off, off + (1 << 20)))) await s.onDrain();
    }
    const back = await reading;
    assert.ok(Buffer.from(back).equals(payload), 'the echoed bytes differ');
    await s.close();
  });
});
