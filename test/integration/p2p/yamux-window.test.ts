/**
 * Yamux window updates once half the window is used (src/p2p/yamux-window.ts, installed by every node and by this test), on two real libp2p nodes on
 * 127.0.0.1: small request/response messages no longer cost a WINDOW_UPDATE frame each, and flow control still
 * holds: a transfer many windows long, read slowly, arrives whole and in order, and the sender never has more than
 * a window in flight.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Libp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import { installYamuxLazyWindow, uninstallYamuxLazyWindow, yamuxLazyWindowInstalled } from '../../../src/p2p/yamux-window.js';
import type { DuplexStream } from '../../../src/p2p/types.js';
import { protocolPrefix } from '../../../src/protocols/ids.js';
import { readN, startLoopbackLibp2p } from '../../utils/network.js';

const NETWORK = 'yamuxwin-' + randomBytes(3).toString('hex');
const PREFIX = protocolPrefix(NETWORK);
/** A small window (256 KiB, yamux's initial one) so that a few MiB cross many window cycles. */
const WINDOW = 256 * 1024;

/** A bare loopback node on this test's own protocol prefix with the small window. */
const node = (): Promise<Libp2pNetwork> => startLoopbackLibp2p(NETWORK, { yamux: { windowBytes: WINDOW } });

/** Counts the yamux frames a node sends on its connection (window updates without flags, data bytes). */
function countFrames(net: Libp2pNetwork): { windowUpdates: () => number; dataBytes: () => number } {
  const conn = net.libp2p.getConnections()[0]!;
  // every frame leaves through the muxer's send (streams hold a bound sendFrame, so this is the one place to look)
  const muxer = (conn as unknown as { muxer: { send(d: Uint8Array | { subarray(a?: number, b?: number): Uint8Array }): boolean } }).muxer;
  const orig = muxer.send.bind(muxer);
  let updates = 0;
  let data = 0;
  muxer.send = (d): boolean => {
    // yamux header: version, type, flags (u16), stream id (u32), length (u32), big-endian
    const h = d.subarray(0, 12);
    const v = new DataView(h.buffer, h.byteOffset, 12);
    const type = h[1];
    const flags = v.getUint16(2);
    const stream = v.getUint32(4);
    if (type === 1 && stream !== 0 && flags === 0) updates++; // WindowUpdate without SYN/ACK/FIN/RST
    if (type === 0) data += v.getUint32(8);
    return orig(d);
  };
  return { windowUpdates: () => updates, dataBytes: () => data };
}

describe('yamux: window updates at half the window', { timeout: 120_000 }, () => {
  let a: Libp2pNetwork;
  let b: Libp2pNetwork;
  let peer: string;
  before(async () => {
    installYamuxLazyWindow();
    a = await node();
    b = await node();
    peer = await b.dial(a.multiaddrs()[0]!);
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    uninstallYamuxLazyWindow();
  });

  it('installs once', () => {
    assert.equal(yamuxLazyWindowInstalled(), true);
  });

  it('200 small request/response messages send no per-message window update', async () => {
    const proto = `${PREFIX}/echo/1`;
    await a.handle(proto, async (stream) => {
      for await (const c of stream) stream.send(c instanceof Uint8Array ? c : c.subarray());
    });
    const s = await b.openStream(peer, proto);
    const it = s[Symbol.asyncIterator]();
    const sentByA = countFrames(a);
    const sentByB = countFrames(b);
    const msg = new Uint8Array(3072).fill(9);
    for (let i = 0; i < 200; i++) {
      s.send(msg);
      const back = await readN(it, msg.byteLength);
      assert.equal(back[0], 9);
    }
    s.abort(new Error('done'));
    // 200 × 3 KiB = 600 KiB each way through a 256 KiB window: an update each time half the window is used (about
    // 5), not one per message (200)
    const updates = sentByA.windowUpdates() + sentByB.windowUpdates();
    assert.ok(updates >= 2, `flow control must still restore the window (got ${updates} updates)`);
    assert.ok(updates <= 16, `${updates} window updates for 400 messages`);
  });

  it('a transfer of 24 windows, read slowly, arrives whole and in order (flow control holds)', async () => {
    const proto = `${PREFIX}/sink/1`;
    const total = 24 * WINDOW;
    const payload = randomBytes(total);
    let received: Uint8Array | undefined;
    const done = new Promise<void>((resolve, reject) => {
      void a.handle(proto, async (stream: DuplexStream) => {
        try {
          const it = stream[Symbol.asyncIterator]();
          const out = new Uint8Array(total);
          let got = 0;
          while (got < total) {
            const r = await it.next();
            if (r.done === true) break;
            const c = r.value instanceof Uint8Array ? r.value : r.value.subarray();
            out.set(c, got);
            got += c.byteLength;
            if (got % 7 === 0) await new Promise((t) => setImmediate(t)); // a slow reader now and then
          }
          received = out.subarray(0, got);
          stream.send(new Uint8Array([1]));
          await stream.close();
          resolve();
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    const s = await b.openStream(peer, proto);
    const sentByB = countFrames(b);
    for (let off = 0; off < total; off += 64 * 1024) {
      if (!s.send(payload.subarray(off, Math.min(total, off + 64 * 1024)))) await s.onDrain({ signal: AbortSignal.timeout(60_000) });
    }
    await s.close({ signal: AbortSignal.timeout(60_000) });
    await done;
    assert.equal(received?.byteLength, total);
    assert.ok(Buffer.from(received!).equals(payload), 'the bytes arrive unchanged and in order');
    // every byte crossed as data frames once (libp2p's own pings and identify may add a few hundred bytes beside it)
    assert.ok(sentByB.dataBytes() >= total && sentByB.dataBytes() < total + 64 * 1024, `${sentByB.dataBytes()} data bytes sent for ${total}`);
  });
});
