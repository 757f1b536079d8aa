/**
 * Session 24's receive side of the direct data lane (docs/PROTOCOL.md "Direct data lane"): lane sockets read into one
 * reused buffer of the process (src/p2p/lane/reads.ts), so a chunk is valid only while the reader has it
 * (src/p2p/lane/reader.ts copies or decrypts out of it and keeps no view); an accepted socket is adopted into one
 * with `onread` and takes over the server's count of it; and a request's CLOSE rides in its DATA's sealed frame.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Opener, Sealer, aeadBackend, setAeadBackendForTests } from '../../../src/p2p/lane/aead.js';
import { Lane, type LaneLimits } from '../../../src/p2p/lane/lane.js';
import { LANE_DEFAULTS } from '../../../src/p2p/lane/manager.js';
import { READ_BUFFER_BYTES, adoptAccepted, dialReused, type SocketReads } from '../../../src/p2p/lane/reads.js';
import { SealedFrameReader } from '../../../src/p2p/lane/reader.js';
import { canSendParts } from '../../../src/p2p/lane/stream.js';
import type { DuplexStream } from '../../../src/p2p/types.js';
import { FRAME_MESSAGE, FrameReader, frameHeader } from '../../../src/protocols/rpc/frame.js';

// the shared read buffer is the default (src/p2p/lane/reads.ts reusedReads; NEUROSHARD_LANE_READS=fresh turns it off)
delete process.env.NEUROSHARD_LANE_READS;

const backends = (['openssl', 'node'] as const).filter((b) => {
  if (b === 'node') return true;
  setAeadBackendForTests(undefined);
  return aeadBackend().backend === 'openssl';
});
after(() => setAeadBackendForTests(undefined));

describe('lane reader on borrowed chunks (one reused read buffer)', () => {
  for (const backend of backends) {
    it(`[${backend}] frames read through one buffer that is overwritten after every read come out intact`, () => {
      setAeadBackendForTests(backend);
      const k = randomBytes(32);
      const sealer = new Sealer(k);
      // small frames (whole in one read: decrypted in place when the chunk is owned), large ones (over many reads)
      const msgs = [1, 40, 600, 5_000, 36_864, 200_000, 3, 70_000, 1 << 20, 17].map((n) => randomBytes(n));
      const wire = Buffer.concat(msgs.flatMap((m) => sealer.seal([m])));
      const reader = new SealedFrameReader(new Opener(k), (4 << 20) + 16);
      const shared = Buffer.alloc(64 * 1024);
      const got: Buffer[] = [];
      // reads of varying sizes, as a socket delivers them, each into the same buffer
      const sizes = [7, 64 * 1024, 1, 13, 40_000, 64 * 1024, 300];
      for (let o = 0, i = 0; o < wire.length; i++) {
        const n = Math.min(sizes[i % sizes.length]!, wire.length - o);
        wire.copy(shared, 0, o, o + n);
        reader.push(shared.subarray(0, n), (plain) => (got.push(plain), true), false);
        shared.fill(0xa5); // the next read writes over it
        o += n;
      }
      assert.equal(got.length, msgs.length);
      for (let i = 0; i < msgs.length; i++) {
        assert.notEqual(got[i]!.buffer, shared.buffer, `frame ${i} is a view of the read buffer`);
        assert.ok(got[i]!.equals(msgs[i]!), `frame ${i} (${msgs[i]!.length} bytes) changed after its read buffer was reused`);
      }
    });
  }
});

async function listen(handler: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ pauseOnConnect: true }, handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

function connections(server: Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('lane sockets reading into the shared buffer', () => {
  it('an accepted socket is adopted (reads borrowed) and the server counts it until it closes', async () => {
    const adopted: { socket: Socket; reads: SocketReads }[] = [];
    const { server, port } = await listen((s) => adopted.push(adoptAccepted(s)));
    const dialled = dialReused({ host: '127.0.0.1', port });
    try {
      await new Promise<void>((r) => dialled.socket.once('connect', () => r()));
      await until('the accept', () => adopted.length === 1);
      const srv = adopted[0]!;
      assert.equal(srv.reads.reused, true);
      assert.equal(dialled.reads.reused, true);
      // bytes both ways, copied out of each borrowed chunk as it arrives
      const toServer: Buffer[] = [];
      const toClient: Buffer[] = [];
      srv.reads.attach((c, owned) => toServer.push(owned ? c : Buffer.from(c)));
      dialled.reads.attach((c, owned) => toClient.push(owned ? c : Buffer.from(c)));
      const up = randomBytes(3 * READ_BUFFER_BYTES + 5);
      const down = randomBytes(100_000);
      dialled.socket.write(up);
      srv.socket.write(down);
      await until('the bytes', () => Buffer.concat(toServer).length === up.length && Buffer.concat(toClient).length === down.length);
      assert.ok(Buffer.concat(toServer).equals(up));
      assert.ok(Buffer.concat(toClient).equals(down));
      assert.ok(srv.reads.borrowed > 0 && dialled.reads.borrowed > 0);
      // the adopted socket holds the server's count of the connection: it goes when the socket does
      assert.equal(await connections(server), 1);
      srv.socket.destroy();
      dialled.socket.destroy();
      await until('the count to drop', async () => (await connections(server)) === 0);
    } finally {
      dialled.socket.destroy();
      for (const a of adopted) a.socket.destroy();
      server.close();
    }
  });

  it('with NEUROSHARD_LANE_READS=fresh Node\'s own buffers are kept (chunks owned)', async () => {
    process.env.NEUROSHARD_LANE_READS = 'fresh';
    try {
        const adopted: { socket: Socket; reads: SocketReads }[] = [];
        const { server, port } = await listen((s) => adopted.push(adoptAccepted(s)));
        const dialled = dialReused({ host: '127.0.0.1', port });
        await new Promise<void>((r) => dialled.socket.once('connect', () => r()));
        await until('the accept', () => adopted.length === 1);
        assert.equal(adopted[0]!.reads.reused, false);
        assert.equal(dialled.reads.reused, false);
        const owned: boolean[] = [];
        adopted[0]!.reads.attach((_c, o) => owned.push(o));
        dialled.socket.write(Buffer.alloc(1000, 1));
        await until('a chunk', () => owned.length > 0);
        assert.ok(owned.every((o) => o));
        dialled.socket.destroy();
        adopted[0]!.socket.destroy();
        await new Promise<void>((r) => server.close(() => r()));
    } finally {
      delete process.env.NEUROSHARD_LANE_READS;
    }
  });
});

async function readAll(s: DuplexStream): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(Buffer.from(c instanceof Uint8Array ? c : c.subarray()));
  return Buffer.concat(out);
}

/** Two lanes over one TCP connection whose both ends read into the shared buffer (as LaneManager makes them). */
async function reusedLanePair(limits: LaneLimits = LANE_DEFAULTS): Promise<{ client: Lane; server: Lane; read: Promise<{ body: Uint8Array; reader: FrameReader }>[]; closeAll: () => Promise<void> }> {
  const adopted: { socket: Socket; reads: SocketReads }[] = [];
  const { server: tcp, port } = await listen((s) => adopted.push(adoptAccepted(s)));
  const dialled = dialReused({ host: '127.0.0.1', port });
  await new Promise<void>((r) => dialled.socket.once('connect', () => r()));
  await until('the accept', () => adopted.length === 1);
  const c2s = randomBytes(32);
  const s2c = randomBytes(32);
  const echo = async (s: DuplexStream): Promise<void> => {
    for await (const c of s) {
      const b = c instanceof Uint8Array ? c : c.subarray();
      if (!s.send(b)) await s.onDrain();
    }
    await s.close();
  };
  // '/read': one RPC frame read off the stream (rpc/frame.ts FrameReader), as a server reads a request
  const read: Promise<{ body: Uint8Array; reader: FrameReader }>[] = [];
  const readOne = (s: DuplexStream): void => {
    const reader = new FrameReader(s);
    read.push(reader.next(64 << 20).then((f) => ({ body: f!.body, reader })));
  };
  const handlerOf = (p: string) => (p === '/echo' ? { handler: echo, maxInbound: 64 } : p === '/read' ? { handler: readOne, maxInbound: 4 } : undefined);
  const client = new Lane({ socket: dialled.socket, reads: dialled.reads, role: 'client', peer: 'S', remoteAddr: 's', sealer: new Sealer(c2s), opener: new Opener(s2c), limits, handlerOf, onClose: () => {} });
  const server = new Lane({ socket: adopted[0]!.socket, reads: adopted[0]!.reads, role: 'server', peer: 'C', remoteAddr: 'c', sealer: new Sealer(s2c), opener: new Opener(c2s), limits, handlerOf, onClose: () => {} });
  await client.whenReady();
  await server.whenReady();
  const closeAll = async (): Promise<void> => {
    client.close();
    server.close();
    await new Promise<void>((r) => tcp.close(() => r()));
  };
  return { client, server, read, closeAll };
}

describe('lanes over reused reads', () => {
  it('many streams of mixed sizes at once are echoed byte for byte', async () => {
    const p = await reusedLanePair();
    try {
      const sizes = [1, 100, 511, 513, 4096, 36_864, 65_536, 200_000, 1 << 20, 3 << 20, 7, 90_000];
      const msgs = sizes.map((n) => randomBytes(n));
      const backs = await Promise.all(
        msgs.map(async (m, i) => {
          const s = await p.client.openStream('/echo');
          const back = readAll(s);
          // half in one piece, half in small writes (many small DATA in one frame)
          if (i % 2 === 0) {
            if (!s.send(m)) await s.onDrain();
          } else {
            for (let o = 0; o < m.length; o += 1000) if (!s.send(m.subarray(o, o + 1000))) await s.onDrain();
          }
          await s.close();
          return back;
        }),
      );
      for (let i = 0; i < msgs.length; i++) assert.ok(backs[i]!.equals(msgs[i]!), `stream ${i} (${sizes[i]} bytes)`);
    } finally {
      await p.closeAll();
    }
  });

  it('a lane over reused reads places (session 27): a 12 MiB RPC body is decrypted into its reader\'s buffer, not joined', async () => {
    const p = await reusedLanePair();
    try {
      assert.equal(p.server.placing, true);
      const body = randomBytes(12 << 20);
      const s = await p.client.openStream('/read');
      if (!s.send(frameHeader(FRAME_MESSAGE, body.length))) await s.onDrain();
      if (!s.send(body)) await s.onDrain();
      await s.close();
      const { body: got, reader } = await p.read[0]!;
      assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(body));
      // the first window copied, the rest decrypted in place (before: all of it copied in the join)
      assert.ok(reader.reserved.copied <= LANE_DEFAULTS.windowBytes, `${reader.reserved.copied} bytes copied`);
      assert.equal(reader.reserved.copied + reader.reserved.inPlace, body.length);
      assert.ok(p.server.stats.bytesPlaced >= body.length - LANE_DEFAULTS.windowBytes);
    } finally {
      await p.closeAll();
    }
  });

  it('a request and its CLOSE queued in one turn go in one sealed frame; the far end then sends no WINDOW for it', async () => {
    const p = await reusedLanePair();
    try {
      for (let i = 0; i < 4; i++) {
        const s = await p.client.openStream('/echo');
        assert.ok(canSendParts(s));
        const back = readAll(s);
        const framesBefore = p.client.stats.framesOut;
        const body = randomBytes(1 << 20);
        // as rpc/frame.ts writeFramePartsAndClose does: the DATA, then the close, in the same turn
        const ok = s.sendParts([Buffer.from([0, 1, 2]), body]);
        await s.close();
        assert.equal(p.client.stats.framesOut - framesBefore, 1, 'DATA and CLOSE in one sealed frame');
        if (!ok) await s.onDrain();
        const got = await back;
        assert.equal(got.length, body.length + 3);
        assert.ok(got.subarray(3).equals(body));
      }
      assert.equal(p.server.stats.windowsOut, 0, 'no WINDOW for requests the far end read whole after their CLOSE');
    } finally {
      await p.closeAll();
    }
  });
});
