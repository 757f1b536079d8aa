/**
 * The RPC layer's read deadlines (src/protocols/rpc/service.ts) against a stalled or trickling peer: a frame that
 * arrives one byte at a time, each byte well inside the deadline, must not keep a stream alive; the deadline runs
 * from the start of the read that waits for a whole frame. Checked on every read that has one: a one-call server's
 * first request, a bidi server's later requests, a reusable (mux) server stream while no call of it runs, and a
 * client's read of a bidi or server-stream response. And the other way: a peer that sends whole frames inside the
 * deadline, or a caller that is slow to take what it was sent, is never cut off; and after calls end (completed,
 * aborted by the caller, reset by the peer) no timer of theirs keeps the process alive.
 *
 * The trickling peer paces its bytes with an interval (it is the attack); every wait on the victim is bounded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryHub, type MemoryNetwork } from '../../src/p2p/memory.js';
import type { DuplexStream } from '../../src/p2p/types.js';
import { encodeFrame, FRAME_MESSAGE } from '../../src/protocols/rpc/frame.js';
import type { BidiMethod, MessageCodec, ServerStreamMethod, UnaryMethod } from '../../src/protocols/rpc/method.js';
import { muxProtocolOf } from '../../src/protocols/rpc/mux.js';
import { RpcNode } from '../../src/protocols/rpc/service.js';
import { waitFor } from '../../src/util/abort.js';
import { tally } from './tally.js';

const NET = 'deadlinenet';
/** The read deadline under test (ms). */
const T = 600;
/** A trickling peer sends a byte this often: 5 bytes inside every deadline. */
const DRIP = T / 5;
/** How long past its deadline a stalled stream may live on a loaded machine before this counts as a success. */
const SLACK = 4000;

const bytes: MessageCodec<Uint8Array> = { encode: (v) => v, decode: (b) => Uint8Array.from(b) };
const base = { version: '1.0.0', request: bytes, response: bytes, maxRequestBytes: 4096, maxResponseBytes: 4096, maxInboundStreams: 64, maxConcurrent: 256, maxConcurrentPerPeer: 256 };
const echoBidi: BidiMethod<Uint8Array, Uint8Array> = { ...base, name: 'dl-bidi', kind: 'bidi', timeoutMs: T, maxFrames: 100_000 };
const ticks: ServerStreamMethod<Uint8Array, Uint8Array> = { ...base, name: 'dl-stream', kind: 'server-stream', timeoutMs: T, maxFrames: 1000 };
const unary: UnaryMethod<Uint8Array, Uint8Array> = { ...base, name: 'dl-unary', kind: 'unary', timeoutMs: 10_000, requestReadMs: T };

const pace = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function node(hub: MemoryHub, id: string): Promise<MemoryNetwork> {
  const net = hub.createNode(id);
  net.inboundStreamCaps = false;
  await net.start();
  return net;
}

/** A victim serving the three methods: bidi echoes, the stream ticks every `gap` ms `n` times, unary echoes. */
async function victim(hub: MemoryHub, opts: { gap?: number; n?: number } = {}): Promise<{ net: MemoryNetwork; rpc: RpcNode }> {
  const net = await node(hub, 'victim');
  const rpc = new RpcNode({ network: net, networkId: NET, muxIdleMs: { server: T } });
  await rpc.handle(echoBidi, async function* (reqs) {
    for await (const r of reqs) yield r;
  });
  await rpc.handle(ticks, async function* (req) {
    for (let i = 0; i < (opts.n ?? 1); i++) {
      if (i > 0) await pace(opts.gap ?? 0);
      yield Uint8Array.of(i, ...req);
    }
  });
  await rpc.handle(unary, (req) => req);
  return { net, rpc };
}

/**
 * Sends `frame` one byte every DRIP ms, never its last byte, until the stream ends; resolves with how long the
 * stream lived from the first trickled byte, or rejects when it outlives `bound`.
 */
async function trickle(s: DuplexStream, frame: Uint8Array, bound: number): Promise<{ lived: number; sent: number }> {
  const t0 = performance.now();
  let ended = false;
  s.addEventListener('close', () => (ended = true));
  // the victim may answer with an error frame before it resets: read (and drop) whatever it sends
  void (async () => {
    try {
      for await (const _ of s);
    } catch {
      // reset: expected
    }
    ended = true;
  })();
  let sent = 0;
  const drip = setInterval(() => {
    if (ended || sent >= frame.byteLength - 1) return;
    try {
      s.send(frame.subarray(sent, sent + 1));
      sent++;
    } catch {
      ended = true;
    }
  }, DRIP);
  try {
    await waitFor(() => ended, { timeoutMs: bound, intervalMs: 5, what: 'the trickling stream is cut off' });
  } finally {
    clearInterval(drip);
  }
  return { lived: performance.now() - t0, sent };
}

/** A frame whose body is `n` bytes (below maxRequestBytes): trickled at DRIP, it would take n × DRIP ms. */
const bigFrame = (n = 3000): Uint8Array => encodeFrame(FRAME_MESSAGE, new Uint8Array(n).fill(7));

describe('attack: slow-loris against the RPC read deadlines', () => {
  it('a bidi server: after a whole first request, the next one trickled a byte per T/5 is cut off about T after its read began', async () => {
    const hub = new MemoryHub();
    const v = await victim(hub);
    const att = await node(hub, 'attacker');
    let succeeded = 0;
    const N = 6;
    for (let i = 0; i < N; i++) {
      const s = await att.openStream('victim', v.rpc.protocolOf(echoBidi));
      s.send(encodeFrame(FRAME_MESSAGE, Uint8Array.of(1, 2, 3)));
      const r = await trickle(s, bigFrame(), T + SLACK).catch(() => undefined);
      if (r === undefined) succeeded++;
      else {
        assert.ok(r.sent >= 2, `only ${r.sent} bytes trickled: the stream was cut before the trickle began`);
        assert.ok(r.lived >= T * 0.8, `cut after ${r.lived.toFixed(0)} ms, before its ${T} ms deadline`);
      }
    }
    tally('rpc: slow-loris bidi request', N, succeeded);
    assert.equal(succeeded, 0, `${succeeded} of ${N} trickling bidi streams outlived ${T + SLACK} ms`);
  });

  it('a one-call server: a first request trickled a byte per T/5 is cut off by the request read deadline', async () => {
    const hub = new MemoryHub();
    const v = await victim(hub);
    const att = await node(hub, 'attacker');
    let succeeded = 0;
    const N = 6;
    for (let i = 0; i < N; i++) {
      const s = await att.openStream('victim', i % 2 === 0 ? v.rpc.protocolOf(unary) : v.rpc.protocolOf(ticks));
      const r = await trickle(s, bigFrame(), T + SLACK).catch(() => undefined);
      if (r === undefined) succeeded++;
    }
    tally('rpc: slow-loris first request', N, succeeded);
    assert.equal(succeeded, 0);
  });

  it('a reusable (mux) server stream with no call running: a frame trickled a byte per T/5 is cut off by its idle deadline', async () => {
    const hub = new MemoryHub();
    const v = await victim(hub);
    const att = await node(hub, 'attacker');
    let succeeded = 0;
    const N = 4;
    for (let i = 0; i < N; i++) {
      const s = await att.openStream('victim', muxProtocolOf(v.rpc.protocolOf(unary)));
      // an id (5 bytes) and a piece; never completed
      const r = await trickle(s, bigFrame(), T + SLACK).catch(() => undefined);
      if (r === undefined) succeeded++;
    }
    tally('rpc: slow-loris mux stream', N, succeeded);
    assert.equal(succeeded, 0);
  });

  it('a client: a response trickled a byte per T/5 (bidi and server-stream) fails the call with TIMEOUT about T after its read began', async () => {
    const hub = new MemoryHub();
    const evil = await node(hub, 'evil');
    const caller = await node(hub, 'caller');
    const rpc = new RpcNode({ network: caller, networkId: NET });
    // the evil server reads the request, then answers a byte at a time
    const serve = async (s: DuplexStream): Promise<void> => {
      const it = s[Symbol.asyncIterator]();
      await it.next();
      const frame = bigFrame();
      for (let sent = 0; sent < frame.byteLength - 1; sent++) {
        try {
          s.send(frame.subarray(sent, sent + 1));
        } catch {
          return;
        }
        await pace(DRIP);
        if ((s as unknown as { dead?: boolean }).dead === true) return;
      }
    };
    const stops: (() => void)[] = [];
    const handler = (s: DuplexStream): void => {
      let stop = false;
      stops.push(() => (stop = true));
      s.addEventListener('close', () => (stop = true));
      void serve(s).catch(() => {}).finally(() => stop || s.abort(new Error('done')));
    };
    await evil.handle(rpc.protocolOf(echoBidi), handler);
    await evil.handle(rpc.protocolOf(ticks), handler);
    let succeeded = 0;
    const N = 4;
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      const gen = i % 2 === 0 ? rpc.bidi('evil', echoBidi, [Uint8Array.of(1)]) : rpc.serverStream('evil', ticks, Uint8Array.of(1));
      const outcome = await Promise.race([
        (async () => {
          try {
            for await (const _ of gen);
            return 'completed';
          } catch (e) {
            return (e as { code?: string }).code ?? String(e);
          }
        })(),
        pace(T + SLACK).then(() => 'still waiting'),
      ]);
      const took = performance.now() - t0;
      if (outcome !== 'TIMEOUT') succeeded++;
      assert.equal(outcome, 'TIMEOUT', `call ${i}: ${outcome} after ${took.toFixed(0)} ms`);
      assert.ok(took >= T * 0.8, `call ${i} timed out after ${took.toFixed(0)} ms, before its ${T} ms deadline`);
    }
    for (const s of stops) s();
    tally('rpc: slow-loris response', N, succeeded);
  });
});

describe('the RPC read deadlines do not cut off honest peers', () => {
  it('requests and responses spaced T/3 apart for over 4 T, and a caller that takes 2 T per response, are never cut off', async () => {
    const hub = new MemoryHub();
    await victim(hub, { gap: T / 2, n: 8 });
    const caller = await node(hub, 'caller');
    const rpc = new RpcNode({ network: caller, networkId: NET });
    // bidi: 14 requests T/3 apart (4.7 T in all), each echoed
    async function* spaced(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 14; i++) {
        if (i > 0) await pace(T / 3);
        yield Uint8Array.of(i);
      }
    }
    const echoed: number[] = [];
    for await (const r of rpc.bidi('victim', echoBidi, spaced())) echoed.push(r[0]!);
    assert.deepEqual(echoed, Array.from({ length: 14 }, (_, i) => i));
    // server-stream: 8 responses T/2 apart (3.5 T)
    const got: number[] = [];
    for await (const r of rpc.serverStream('victim', ticks, Uint8Array.of(9))) got.push(r[0]!);
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7]);
    // a slow consumer: everything is sent at once, the caller takes 2 T per response (no read waits meanwhile)
    const slow: number[] = [];
    for await (const r of rpc.bidi('victim', echoBidi, [Uint8Array.of(0), Uint8Array.of(1), Uint8Array.of(2)])) {
      slow.push(r[0]!);
      await pace(2 * T);
    }
    assert.deepEqual(slow, [0, 1, 2]);
    // and unary calls spaced past the mux stream's idle deadline: a new stream, or the old one, never a failure
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await rpc.call('victim', unary, Uint8Array.of(i)), Uint8Array.of(i));
      await pace(T + T / 2);
    }
  });

  it('a bidi handler may ask for its next requests without waiting for each (the AsyncIterator contract): each request once, in order', async () => {
    const hub = new MemoryHub();
    const net = await node(hub, 'victim');
    const rpc = new RpcNode({ network: net, networkId: NET });
    // pulls two requests at a time, as a handler that prefetches does (an async generator queues such calls)
    const pairs: BidiMethod<Uint8Array, Uint8Array> = { ...echoBidi, name: 'dl-pairs' };
    await rpc.handle(pairs, async function* (reqs) {
      const it = reqs[Symbol.asyncIterator]();
      for (;;) {
        const [a, b] = await Promise.all([it.next(), it.next()]);
        if (!a.done) yield a.value;
        if (!b.done) yield b.value;
        if (a.done === true || b.done === true) return;
      }
    });
    const caller = await node(hub, 'caller');
    const c = new RpcNode({ network: caller, networkId: NET });
    const sent = Array.from({ length: 9 }, (_, i) => Uint8Array.of(i));
    // all at once (the server finds them buffered), and spaced (both of the handler's reads wait at once)
    async function* spaced(): AsyncGenerator<Uint8Array> {
      for (const r of sent) {
        await pace(5);
        yield r;
      }
    }
    for (const [what, reqs] of [['at once', sent], ['spaced', spaced()]] as const) {
      const got: number[] = [];
      const ac = new AbortController();
      const bound = setTimeout(() => ac.abort(new Error('no answer in 5 s')), 5000);
      try {
        for await (const r of c.bidi('victim', pairs, reqs, { signal: ac.signal })) got.push(r[0]!);
      } finally {
        clearTimeout(bound);
      }
      assert.deepEqual(got, sent.map((x) => x[0]!), what);
    }
  });

  it('after calls complete, are aborted by the caller, or are reset by the peer, no timer of theirs keeps the process alive', async () => {
    const hub = new MemoryHub();
    const v = await victim(hub);
    const caller = await node(hub, 'caller');
    const rpc = new RpcNode({ network: caller, networkId: NET });
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    // warm up once so that lazily made timers of the nodes themselves are in the baseline
    for await (const _ of rpc.bidi('victim', echoBidi, [Uint8Array.of(1)]));
    const baseline = timers();
    // completed calls
    for (let i = 0; i < 30; i++) for await (const _ of rpc.bidi('victim', echoBidi, [Uint8Array.of(i), Uint8Array.of(i)]));
    // calls the caller aborts while their response read waits (the request iterator never ends)
    for (let i = 0; i < 30; i++) {
      const ac = new AbortController();
      const never = (async function* (): AsyncGenerator<Uint8Array> {
        yield Uint8Array.of(i);
        await new Promise<void>((r) => ac.signal.addEventListener('abort', () => r(), { once: true }));
      })();
      const it = rpc.bidi('victim', echoBidi, never, { signal: ac.signal })[Symbol.asyncIterator]();
      await it.next();
      const pending = it.next();
      ac.abort(new Error('caller gave up'));
      await assert.rejects(pending);
    }
    // streams the peer resets after a whole request, while the server's next read waits
    const att = await node(hub, 'attacker');
    for (let i = 0; i < 30; i++) {
      const s = await att.openStream('victim', v.rpc.protocolOf(echoBidi));
      s.send(encodeFrame(FRAME_MESSAGE, Uint8Array.of(i)));
      const first = s[Symbol.asyncIterator]();
      await first.next();
      s.abort(new Error('gone'));
    }
    // the victim's and the caller's streams all end; their timers go with them (bounded: well inside T)
    await waitFor(() => v.rpc.inFlight(echoBidi) === 0, { timeoutMs: 5000, what: 'every bidi handler ended' });
    await waitFor(() => timers() <= baseline, { timeoutMs: T / 2, intervalMs: 5, what: `timers back to ${baseline} (now ${timers()})` });
  });
});
