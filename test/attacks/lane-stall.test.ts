/**
 * A keyed lane peer that begins a frame and never finishes it (session 23 review of session 22's reader).
 *
 * Since session 22 a lane takes frames of up to 4 MiB (LANE_DEFAULTS.maxFramePlainBytes; 256 KiB before) and its
 * reader (src/p2p/lane/reader.ts) allocates the frame's whole plaintext as soon as the 4 length bytes are in
 * (Opener.begin). Nothing bounds how long a frame may stay incomplete: the lane's only timer is the idle close, and
 * it neither runs while a stream is open (an inference session's stream is open for a whole generation) nor counts a
 * frame in progress. So a peer with one open stream that sends a length and then nothing holds 4 MiB of this node's
 * memory per lane for as long as it keeps the TCP connection (2 lanes per peer, 256 in all: 1 GiB from 128 keys,
 * resident once the peer sends the bytes short of the tag). Fixed by the lead: the lane's frame deadline
 * (LaneLimits.frameMs, lane.ts frameOverdue).
 *
 *
 * And a stream that does not read (an RPC server reads a call's request, then runs it): each DATA of more than 512
 * bytes is queued for its reader as a view of the frame's plaintext, so a peer that puts 600 bytes for that stream
 * beside 1 MiB for a stream that reads (or any other sub-frames) in each frame has the whole frame kept for 600 bytes
 * of the stream's window: the 2 MiB window then bounds the stream's payload, not the memory it holds (up to ~3,500
 * frames, 3.5 GiB with 1 MiB frames, 14 GiB with 4 MiB ones; session 22 raised the frame cap from 256 KiB).
 *
 * Only public behaviour: a Lane over a stand-in socket whose 'data' chunks the test delivers, with our own Sealer on
 * the peer's side (as test/attacks/lane-inplace.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { DuplexStream } from '../../src/p2p/types.js';
import { describe, it } from 'node:test';
import { LENGTH_BYTES, Opener, Sealer, TAG_BYTES } from '../../src/p2p/lane/aead.js';
import { HELLO_MAGIC, SUB_DATA, SUB_HELLO, SUB_OPEN, subFrame } from '../../src/p2p/lane/codec.js';
import { Lane, type LaneLimits } from '../../src/p2p/lane/lane.js';
import { LANE_DEFAULTS } from '../../src/p2p/lane/manager.js';
import { waitFor } from '../../src/util/abort.js';

/** What a Lane needs of its socket, with the 'data' chunks delivered by the test. */
class StandInSocket extends EventEmitter {
  destroyed = false;
  writableLength = 0;
  setNoDelay(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  write(_b: Uint8Array, cb?: (e?: Error | null) => void): boolean {
    cb?.();
    return true;
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      queueMicrotask(() => this.emit('close'));
    }
    return this;
  }
  deliver(bytes: Uint8Array): void {
    const b = Buffer.allocUnsafeSlow(bytes.byteLength);
    b.set(bytes);
    this.emit('data', b);
  }
}

const IDLE_MS = 200;

describe('attack: a keyed lane peer that begins a frame and never finishes it', () => {
  it(
    'a frame begun and not finished is cut off: the lane does not hold its 4 MiB plaintext while a stream stays open',
    async () => {
      const c2s = randomBytes(32);
      const sock = new StandInSocket();
      let opened = 0;
      let closedWith: Error | undefined;
      // the idle close at IDLE_MS, and a frame deadline as short (no allowance for a slow sender's bytes)
      const limits: LaneLimits = { ...LANE_DEFAULTS, idleMs: IDLE_MS, frameMs: IDLE_MS, frameBytesPerSec: Number.POSITIVE_INFINITY };
      const lane = new Lane({
        socket: sock as unknown as Socket,
        role: 'server',
        peer: 'attacker',
        remoteAddr: 'stand-in',
        sealer: new Sealer(randomBytes(32)),
        opener: new Opener(c2s),
        limits,
        // a handler that keeps its stream open and reads nothing (an open inference session between two steps)
        handlerOf: (p) => (p === '/sink' ? { handler: () => void opened++, maxInbound: 4 } : undefined),
        onClose: (_l, e) => (closedWith = e),
      });
      try {
        const peer = new Sealer(c2s);
        sock.deliver(Buffer.concat(peer.seal([subFrame(SUB_HELLO, 0, HELLO_MAGIC), subFrame(SUB_OPEN, 1, Buffer.from('/sink'))])));
        await waitFor(() => opened === 1, { timeoutMs: 5_000, what: 'the stream opened' });
        // the length of the largest frame the lane takes, then nothing more
        const ab0 = process.memoryUsage().arrayBuffers;
        const len = Buffer.alloc(LENGTH_BYTES);
        len.writeUInt32BE(limits.maxFramePlainBytes + TAG_BYTES);
        sock.deliver(len);
        const pinned = process.memoryUsage().arrayBuffers - ab0;
        const t0 = Date.now();
        // 15 idle periods: far past any deadline at that scale
        await waitFor(() => closedWith !== undefined, { timeoutMs: 15 * IDLE_MS, intervalMs: 10, what: 'the lane cut off' }).catch(() => {});
        process.stdout.write(`lane stall: 4 bytes sent pinned ${(pinned / 2 ** 20).toFixed(2)} MiB; lane ${closedWith === undefined ? 'still open' : `closed (${closedWith.message})`} after ${Date.now() - t0} ms\n`);
        assert.ok(closedWith !== undefined, `a 4-byte frame length pinned ${(pinned / 2 ** 20).toFixed(2)} MiB and the lane was still open ${Date.now() - t0} ms later (idle close ${IDLE_MS} ms)`);
      } finally {
        lane.close();
      }
    },
  );

  it(
    "a stream that does not read holds about its window's worth of memory, not every frame its small DATA came in",
    async () => {
      const c2s = randomBytes(32);
      const sock = new StandInSocket();
      let hold: DuplexStream | undefined;
      let collected = 0;
      const collect = async (s: DuplexStream): Promise<void> => {
        for await (const c of s) collected += (c as Uint8Array).byteLength;
      };
      const lane = new Lane({
        socket: sock as unknown as Socket,
        role: 'server',
        peer: 'attacker',
        remoteAddr: 'stand-in',
        sealer: new Sealer(randomBytes(32)),
        opener: new Opener(c2s),
        limits: LANE_DEFAULTS,
        handlerOf: (p) =>
          p === '/hold' ? { handler: (s: DuplexStream) => void (hold = s), maxInbound: 4 } : p === '/collect' ? { handler: collect, maxInbound: 4 } : undefined,
        onClose: () => {},
      });
      try {
        const peer = new Sealer(c2s);
        sock.deliver(Buffer.concat(peer.seal([subFrame(SUB_HELLO, 0, HELLO_MAGIC), subFrame(SUB_OPEN, 1, Buffer.from('/hold')), subFrame(SUB_OPEN, 3, Buffer.from('/collect'))])));
        await waitFor(() => hold !== undefined, { timeoutMs: 5_000, what: 'the streams opened' });
        const frames = 24;
        const small = Buffer.alloc(600, 1);
        const big = Buffer.alloc(1 << 20, 2);
        for (let f = 0; f < frames; f++) {
          sock.deliver(Buffer.concat(peer.seal([subFrame(SUB_DATA, 1, small), subFrame(SUB_DATA, 3, big)])));
          // the reading stream takes its MiB (its window comes back) before the next frame
          await waitFor(() => collected === (f + 1) * big.length, { timeoutMs: 10_000, intervalMs: 1, what: 'the reading stream took its data' });
        }
        // what the stream that did not read holds: the buffers behind the chunks queued for it
        const held = new Set<ArrayBufferLike>();
        let payload = 0;
        const it = hold![Symbol.asyncIterator]();
        while (payload < frames * small.length) {
          const n = await it.next();
          if (n.done === true) break;
          const c = n.value as Uint8Array;
          payload += c.byteLength;
          held.add(c.buffer);
        }
        let heldBytes = 0;
        for (const b of held) heldBytes += b.byteLength;
        process.stdout.write(`lane views: ${payload} bytes queued for a stream that did not read held ${(heldBytes / 2 ** 20).toFixed(1)} MiB\n`);
        assert.equal(payload, frames * small.length);
        assert.ok(heldBytes <= 4 * payload + 64 * 1024, `${payload} bytes of a stream's window held ${(heldBytes / 2 ** 20).toFixed(1)} MiB of frames (window ${LANE_DEFAULTS.windowBytes / 2 ** 20} MiB)`);
      } finally {
        lane.close();
      }
    },
  );
});
