/**
 * A stream's read deadline (src/protocols/rpc/deadline.ts, issue 8 session 21): one timer per stream instead of a
 * setTimeout armed and cleared around every frame read. The fake-clock cases pin the timing exactly (a read that
 * still waits is cut `ms` after it began, however many reads came before it, with one or two timers in all); the
 * network cases check that the RPC layer still cuts a stalled peer off on each of its streams: a bidi server that
 * stops answering, a bidi client that stops sending without closing, and a reusable unary stream left silent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryHub } from '../../../src/p2p/memory.js';
import * as methods from '../../../src/protocols/methods.js';
import type * as pb from '../../../src/protocols/pb/node.js';
import { RequestQueue } from '../../../src/protocols/inference.js';
import { ReadDeadline, type DeadlineClock } from '../../../src/protocols/rpc/deadline.js';
import { FRAME_MESSAGE, FrameReader, encodeFrame } from '../../../src/protocols/rpc/frame.js';
import type { BidiMethod } from '../../../src/protocols/rpc/method.js';
import { MUX_KINDS, encodeMuxFrame, muxProtocolOf } from '../../../src/protocols/rpc/mux.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { waitFor } from '../../../src/util/abort.js';
import { isNeuroShardError, type TimeoutError } from '../../../src/util/errors.js';

/** A clock the test moves by hand; timers fire in order as it passes their times. */
class FakeClock implements DeadlineClock {
  t = 0;
  /** setTimeout calls so far. */
  armed = 0;
  private nextId = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    this.armed++;
    const id = ++this.nextId;
    this.timers.set(id, { at: this.t + ms, fn });
    this.refed.add(id);
    return id;
  }

  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
    this.refed.delete(h);
  }

  /** Timers that keep the process alive. */
  readonly refed = new Set<unknown>();

  ref(h: unknown, on: boolean): void {
    if (on) this.refed.add(h);
    else this.refed.delete(h);
  }

  get pending(): number {
    return this.timers.size;
  }

  advance(to: number): void {
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= to && (first === undefined || e[1].at < first[1].at)) first = e;
      if (first === undefined) break;
      this.timers.delete(first[0]);
      this.refed.delete(first[0]);
      this.t = first[1].at;
      first[1].fn();
    }
    this.t = to;
  }
}

function rig(busy?: () => boolean): { clock: FakeClock; d: ReadDeadline; fired: TimeoutError[] } {
  const clock = new FakeClock();
  const fired: TimeoutError[] = [];
  const d = new ReadDeadline((e) => fired.push(e), (ms) => `test read: nothing received for ${ms} ms`, busy, clock);
  return { clock, d, fired };
}

describe('ReadDeadline (fake clock)', () => {
  it('cuts a read that still waits exactly ms after it began, after a thousand quick reads, with two timers in all', () => {
    const { clock, d, fired } = rig();
    for (let i = 0; i < 1000; i++) {
      clock.advance(i * 0.05);
      d.start(100);
      clock.advance(i * 0.05 + 0.02);
      d.stop();
    }
    assert.equal(clock.armed, 1, 'one timer for all the quick reads');
    clock.advance(60);
    d.start(100); // this read stalls
    clock.advance(159.999);
    assert.equal(fired.length, 0, 'not before its own deadline (the first timer re-armed for the rest)');
    clock.advance(160);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]!.code, 'TIMEOUT');
    assert.equal(fired[0]!.message, 'test read: nothing received for 100 ms');
    assert.equal(d.expired, fired[0]);
    assert.equal(clock.armed, 2);
    assert.equal(clock.pending, 0);
  });

  it('never fires while no read waits, and a timer that finds none is not re-armed', () => {
    const { clock, d, fired } = rig();
    d.start(50);
    assert.equal(clock.refed.size, 1, 'a waiting read keeps the process alive');
    clock.advance(10);
    d.stop();
    assert.equal(clock.refed.size, 0, 'the timer left armed between reads does not');
    assert.equal(clock.pending, 1);
    clock.advance(10_000); // a long pause between frames is no stall: the timer fired, found no read, went away
    assert.equal(fired.length, 0);
    assert.equal(clock.pending, 0);
    d.start(50);
    clock.advance(10_049);
    assert.equal(fired.length, 0);
    clock.advance(10_050);
    assert.equal(fired.length, 1);
  });

  it('a read with a shorter deadline than the armed timer gets a timer of its own', () => {
    const { clock, d, fired } = rig();
    d.start(5_000); // e.g. a first request's read deadline, then the method's idle gap
    d.stop();
    d.start(100);
    clock.advance(99);
    assert.equal(fired.length, 0);
    clock.advance(100);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]!.message, 'test read: nothing received for 100 ms');
  });

  it('busy() holds the stream for another ms at a time; idle again, it is cut', () => {
    let busy = true;
    const { clock, d, fired } = rig(() => busy);
    d.start(100);
    clock.advance(350);
    assert.equal(fired.length, 0, 'held while busy');
    busy = false;
    clock.advance(399);
    assert.equal(fired.length, 0, 'the hold runs its full ms');
    clock.advance(400);
    assert.equal(fired.length, 1);
  });

  it('dispose() clears the timer and ends all deadlines; once expired it stays expired', () => {
    const { clock, d, fired } = rig();
    d.start(100);
    assert.equal(clock.pending, 1);
    d.dispose();
    assert.equal(clock.pending, 0);
    d.start(100);
    clock.advance(1_000);
    assert.equal(fired.length, 0);

    const r = rig();
    r.d.start(10);
    r.clock.advance(10);
    assert.equal(r.fired.length, 1);
    r.d.start(10); // the stream is already reset: no second expiry
    r.clock.advance(100);
    assert.equal(r.fired.length, 1);
  });
});

// ── the RPC layer on an in-memory network ──

const NET = 'testnet01';

/** inference-stream's messages with a short idle gap. */
const quick: BidiMethod<pb.InferenceRequest, pb.InferenceResponse> = { ...methods.inferenceStream, name: 'deadline-test', timeoutMs: 150, requestReadMs: 150 };

/** `p`, or a failure after `ms` (a deadline that never fires must fail the test, not hang it). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

function req(i: number): pb.InferenceRequest {
  return { sessionId: 's', requestId: `r${i}`, tokens: [i], positionOffset: 0, endSession: false, chunks: [], maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0 };
}

async function pair(opts: { serverIdleMs?: number } = {}): Promise<{ hub: MemoryHub; ra: RpcNode; rb: RpcNode; a: ReturnType<MemoryHub['createNode']> }> {
  const hub = new MemoryHub();
  const a = hub.createNode('peerA');
  const b = hub.createNode('peerB');
  await a.start();
  await b.start();
  const ra = new RpcNode({ network: a, networkId: NET });
  const rb = new RpcNode({ network: b, networkId: NET, muxIdleMs: { server: opts.serverIdleMs } });
  return { hub, ra, rb, a };
}

describe('rpc read deadlines on streams', () => {
  it('a bidi server that stops answering is cut off by the client after the idle gap (after answers that came in time)', async () => {
    const p = await pair();
    await p.rb.handle(quick, async function* (reqs) {
      for await (const r of reqs) {
        if (r.requestId === 'r3') await new Promise(() => {}); // stalls for good
        yield { requestId: r.requestId, processedTokens: 0, tokens: [] };
      }
    });
    const got: string[] = [];
    let stalledAt = 0;
    const t0 = performance.now();
    await assert.rejects(
      within(
        (async () => {
          for await (const r of p.ra.bidi('peerB', quick, [1, 2, 3, 4].map(req))) {
            got.push(r.requestId);
            stalledAt = performance.now();
          }
        })(),
        5_000,
        'the client cutting off a silent server',
      ),
      (e: unknown) => isNeuroShardError(e, 'TIMEOUT') && /deadline-test response: nothing received for 150 ms/.test((e as Error).message),
    );
    const waited = performance.now() - stalledAt;
    assert.deepEqual(got, ['r1', 'r2']);
    assert.ok(waited >= 145, `cut after ${waited.toFixed(1)} ms, not before the gap`);
    assert.ok(performance.now() - t0 < 5_000);
  });

  it('a bidi client that sends a request and then stalls (no close) is cut off by the server, whose handler ends', async () => {
    const p = await pair();
    let handlerError: unknown;
    let handled = 0;
    await p.rb.handle(quick, async function* (reqs) {
      try {
        for await (const r of reqs) {
          handled++;
          yield { requestId: r.requestId, processedTokens: 0, tokens: [] };
        }
      } catch (e) {
        handlerError = e;
        throw e;
      }
    });
    const s = await p.a.openStream('peerB', p.rb.protocolOf(quick));
    let reset: Error | undefined;
    s.addEventListener('close', (evt) => (reset = evt.error));
    const t0 = performance.now();
    s.send(encodeFrame(FRAME_MESSAGE, quick.request.encode(req(1))));
    await waitFor(() => handlerError !== undefined, { timeoutMs: 5_000, what: 'the server to give up on the silent client' });
    const waited = performance.now() - t0;
    assert.equal(handled, 1);
    assert.ok(isNeuroShardError(handlerError, 'TIMEOUT'), String(handlerError));
    assert.match((handlerError as Error).message, /deadline-test request: nothing received for 150 ms/);
    assert.ok(waited >= 145, `cut after ${waited.toFixed(1)} ms`);
    await waitFor(() => reset !== undefined, { timeoutMs: 5_000, what: 'the stream to be reset' });
  });

  it('a reusable unary stream left silent is reset by the server, but not while a call of it runs', async () => {
    const p = await pair({ serverIdleMs: 150 });
    const slow = { ...methods.echo, name: 'deadline-mux', timeoutMs: 5_000 };
    // the call's work takes 400 ms (well past the idle deadline): the stream is busy, not idle, meanwhile
    await p.rb.handle(slow, async (r) => {
      await new Promise<void>((res) => setTimeout(res, 400));
      return { payload: r.payload, receivedBytes: BigInt(r.payload.byteLength) };
    });
    const s = await p.a.openStream('peerB', muxProtocolOf(p.rb.protocolOf(slow)));
    let closedAt = 0;
    let reset: Error | undefined;
    s.addEventListener('close', (evt) => {
      reset = evt.error;
      closedAt = performance.now();
    });
    const t0 = performance.now();
    s.send(encodeMuxFrame(FRAME_MESSAGE, 1, slow.request.encode({ payload: Uint8Array.of(1), replyWithTensor: false })));
    const reader = new FrameReader(s, MUX_KINDS);
    const answer = await within(reader.next(1 << 16), 5_000, 'the answer');
    const answeredAt = performance.now();
    assert.equal(answer?.kind, FRAME_MESSAGE, 'the call was answered on the stream, not cut by the idle deadline');
    assert.equal(closedAt, 0);
    assert.ok(answeredAt - t0 >= 395);
    await assert.rejects(within(reader.next(1 << 16), 5_000, 'the reset'), (e: unknown) => !/not within/.test(String(e)));
    await waitFor(() => closedAt !== 0, { timeoutMs: 5_000, what: 'the idle stream to be reset' });
    assert.ok(reset instanceof Error);
    assert.ok(closedAt - answeredAt < 2_000, `reset ${(closedAt - answeredAt).toFixed(0)} ms after the answer`);
  });
});

describe('RequestQueue (the hop session\'s requests, hand-written iterator)', () => {
  it('hands out pushed requests in order, resolves a waiting read directly, and ends', async () => {
    const q = new RequestQueue();
    q.push(req(1));
    q.push(req(2));
    assert.equal((await q.next()).value?.requestId, 'r1');
    assert.equal((await q.next()).value?.requestId, 'r2');
    const waiting = q.next();
    q.push(req(3));
    assert.equal((await waiting).value?.requestId, 'r3');
    const last = q.next();
    q.end();
    assert.equal((await last).done, true);
    assert.equal((await q.next()).done, true);
  });

  it('drains what was pushed before end(); return() forgets the rest', async () => {
    const q = new RequestQueue();
    q.push(req(1));
    q.end();
    const got: string[] = [];
    for await (const r of q) got.push(r.requestId);
    assert.deepEqual(got, ['r1']);
    const q2 = new RequestQueue();
    q2.push(req(1));
    q2.push(req(2));
    for await (const r of q2) {
      assert.equal(r.requestId, 'r1');
      break; // return()
    }
    assert.equal((await q2.next()).done, true);
  });

  it('overlapping reads each get their own request, in order, and end() settles every one still waiting', async () => {
    const q = new RequestQueue();
    const a = q.next();
    const b = q.next();
    const c = q.next();
    q.push(req(1));
    q.push(req(2));
    q.end();
    assert.equal((await a).value?.requestId, 'r1');
    assert.equal((await b).value?.requestId, 'r2');
    assert.equal((await c).done, true);
  });
});
