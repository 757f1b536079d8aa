/**
 * Reusable unary streams (src/protocols/rpc/mux.ts) on the in-memory transport: many calls on one stream, answers
 * out of order, deadlines and aborts that reach the handler, a peer that dies mid-call, the fallback to a stream
 * per call for a peer that does not speak the protocol, per-peer slots, and bad frames.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkError } from '../../../src/p2p/errors.js';
import { MemoryHub, type MemoryNetwork } from '../../../src/p2p/memory.js';
import { PeerScoreTable } from '../../../src/p2p/peer-score.js';
import * as methods from '../../../src/protocols/methods.js';
import type * as pb from '../../../src/protocols/pb/node.js';
import { RemoteRpcError, RpcTransportError } from '../../../src/protocols/rpc/errors.js';
import { FRAME_CANCEL, FRAME_ERROR, FRAME_MESSAGE, FRAME_PART, FrameReader, encodeFrame, frameHeader } from '../../../src/protocols/rpc/frame.js';
import type { UnaryMethod } from '../../../src/protocols/rpc/method.js';
import { MUX_KINDS, MUX_MAX_PARTIAL, MUX_MAX_REQUEST_BYTES, MUX_PIECE_BYTES, MuxAssembler, MuxWriter, encodeMuxFrame, muxProtocolOf, splitId } from '../../../src/protocols/rpc/mux.js';
import type { DuplexStream } from '../../../src/p2p/types.js';
import { RpcNode, type CallContext } from '../../../src/protocols/rpc/service.js';
import { AbortedError, PeerMisbehaviourError, TimeoutError } from '../../../src/util/errors.js';
import * as pbm from '../../../src/protocols/pb/node.js';

const NET = 'testnet01';

/** A unary method over echo's messages whose handler the test steers by the payload's first byte. */
const steered: UnaryMethod<pb.EchoRequest, pb.EchoResponse> = {
  ...methods.echo,
  name: 'mux-test',
  timeoutMs: 5_000,
  maxConcurrent: 8,
  maxConcurrentPerPeer: 3,
  maxInboundStreams: 4,
  validateRequest: (r) => {
    if (r.payload[0] === 9) throw new PeerMisbehaviourError('RPC_MALFORMED', 'payload 9 is refused');
  },
  validateResponse: undefined,
};

interface Harness {
  hub: MemoryHub;
  a: MemoryNetwork;
  b: MemoryNetwork;
  ra: RpcNode;
  rb: RpcNode;
  scoresB: PeerScoreTable;
  /** Mux and one-call stream opens from a to b. */
  opens: { mux: number; plain: number };
  /** Release the slow calls (payload[0] = 1). */
  release(): void;
  /** Handler executions that saw their signal fire. */
  aborted: number;
  started: number;
}

async function harness(opts: { reuse?: boolean; clientIdleMs?: number; openDelayMs?: number } = {}): Promise<Harness> {
  const hub = new MemoryHub();
  const a = hub.createNode('peerA');
  const b = hub.createNode('peerB');
  await a.start();
  await b.start();
  const opens = { mux: 0, plain: 0 };
  const open = a.openStream.bind(a);
  a.openStream = async (peer, protocol, o) => {
    if (protocol.endsWith('/mux/2.0.0')) opens.mux++;
    else opens.plain++;
    if (opts.openDelayMs !== undefined) await new Promise((r) => setTimeout(r, opts.openDelayMs));
    return open(peer, protocol, o);
  };
  const scoresB = new PeerScoreTable();
  const ra = new RpcNode({ network: a, networkId: NET, reuseStreams: opts.reuse ?? true, muxIdleMs: { client: opts.clientIdleMs } });
  const rb = new RpcNode({ network: b, networkId: NET, scores: scoresB });
  let gate: () => void = () => {};
  let gatePromise = new Promise<void>((r) => (gate = r));
  const h: Harness = {
    hub,
    a,
    b,
    ra,
    rb,
    scoresB,
    opens,
    aborted: 0,
    started: 0,
    release: () => {
      gate();
      gatePromise = new Promise<void>((r) => (gate = r));
    },
  };
  await rb.handle(steered, async (req: pb.EchoRequest, ctx: CallContext) => {
    h.started++;
    if (req.payload[0] === 1) {
      const g = gatePromise;
      await new Promise<void>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          h.aborted++;
          reject(ctx.signal.reason);
        });
        void g.then(resolve);
      });
    }
    return { payload: req.payload, receivedBytes: BigInt(req.payload.byteLength) };
  });
  return h;
}

const req = (...bytes: number[]): pb.EchoRequest => ({ payload: Uint8Array.from(bytes), replyWithTensor: false });

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('rpc mux: one stream carries many unary calls', () => {
  it('answers 200 concurrent calls on one stream, each with its own payload', async () => {
    const h = await harness();
    const res = await Promise.all(Array.from({ length: 200 }, (_, i) => h.ra.call('peerB', steered, req(0, i & 0xff, i >> 8))));
    res.forEach((r, i) => assert.deepEqual([...r.payload], [0, i & 0xff, i >> 8]));
    // some calls may have gone out while the first open was pending: they waited on the same open
    assert.equal(h.opens.mux, 1, 'one reusable stream for every call');
    assert.equal(h.opens.plain, 0);
    assert.equal(h.ra.openChannels('peerB'), 1);
    await h.ra.call('peerB', steered, req(0));
    assert.equal(h.opens.mux, 1, 'later calls reuse it');
  });

  it('a slow call does not hold up the others (answers come back out of order)', async () => {
    const h = await harness();
    const slow = h.ra.call('peerB', steered, req(1, 7));
    await until(() => h.started === 1, 'the slow call to start');
    for (let i = 0; i < 20; i++) assert.deepEqual([...(await h.ra.call('peerB', steered, req(0, i))).payload], [0, i]);
    h.release();
    assert.deepEqual([...(await slow).payload], [1, 7]);
    assert.equal(h.opens.mux, 1);
  });

  it('a call past its deadline fails with TimeoutError, its handler is aborted, the stream stays usable', async () => {
    const h = await harness();
    await assert.rejects(h.ra.call('peerB', steered, req(1), { timeoutMs: 150 }), (e: unknown) => e instanceof TimeoutError);
    await until(() => h.aborted === 1, 'the CANCEL to abort the handler');
    assert.equal(h.rb.inFlight(steered, 'peerA'), 0, 'its slot is free again');
    assert.deepEqual([...(await h.ra.call('peerB', steered, req(0, 3))).payload], [0, 3]);
    assert.equal(h.opens.mux, 1, 'no new stream after a deadline');
  });

  it("a caller's abort fails the call with AbortedError and aborts the handler", async () => {
    const h = await harness();
    const ac = new AbortController();
    const p = h.ra.call('peerB', steered, req(1), { signal: ac.signal });
    await until(() => h.started === 1, 'the call to start');
    ac.abort(new AbortedError('caller gave up'));
    await assert.rejects(p, (e: unknown) => e instanceof AbortedError);
    await until(() => h.aborted === 1, 'the handler to see the abort');
  });

  it('a peer that dies mid-call fails the calls in flight with a NetworkError at once; the next call opens a new stream', async () => {
    const h = await harness();
    const inflight = [h.ra.call('peerB', steered, req(1), { timeoutMs: 60_000 }), h.ra.call('peerB', steered, req(1), { timeoutMs: 60_000 })];
    await until(() => h.started === 2, 'both calls to start');
    const t0 = Date.now();
    await h.b.stop();
    for (const p of inflight) {
      await assert.rejects(p, (e: unknown) => e instanceof RpcTransportError && e instanceof NetworkError && e.code === 'RPC_STREAM_RESET');
    }
    assert.ok(Date.now() - t0 < 5_000, 'failed at once, not at the deadline');
    assert.equal(h.ra.openChannels('peerB'), 0);
    await h.b.start();
    assert.deepEqual([...(await h.ra.call('peerB', steered, req(0, 5))).payload], [0, 5]);
    assert.equal(h.opens.mux, 2, 'a new stream after the old one died');
  });

  it('falls back to a stream per call for a peer that does not speak the reusable protocol, and remembers it', async () => {
    const h = await harness();
    // an older node: only the one-call protocol
    await h.b.unhandle(muxProtocolOf(h.rb.protocolOf(steered)));
    for (let i = 0; i < 5; i++) assert.deepEqual([...(await h.ra.call('peerB', steered, req(0, i))).payload], [0, i]);
    assert.equal(h.opens.mux, 1, 'asked once');
    assert.equal(h.opens.plain, 5, 'then a stream per call');
    // and an old client (no reuse) against a new server keeps working
    const old = new RpcNode({ network: h.a, networkId: NET });
    assert.deepEqual([...(await old.call('peerB', steered, req(0, 9, 9))).payload], [0, 9, 9]);
  });

  it('a peer that serves the method under neither protocol for a moment (between sessions) is not remembered as an older node', async () => {
    const h = await harness();
    // b stops serving the method (a training session ends before the next begins): both protocols are gone
    await h.rb.unhandle(steered);
    await assert.rejects(h.ra.call('peerB', steered, req(0, 1)), (e: unknown) => e instanceof RpcTransportError && e.meta?.reason === 'unsupported-protocol');
    // b serves it again: the next calls reuse one stream at once (before: a stream per call for 10 min)
    await h.rb.handle(steered, (r: pb.EchoRequest) => ({ payload: r.payload, receivedBytes: BigInt(r.payload.byteLength) }));
    const mux = h.opens.mux;
    for (let i = 0; i < 3; i++) assert.deepEqual([...(await h.ra.call('peerB', steered, req(0, i))).payload], [0, i]);
    assert.equal(h.opens.mux, mux + 1, 'one reusable stream opened');
    assert.equal(h.ra.openChannels('peerB'), 1);
  });

  it('two versions of one method to one peer go out on streams of their own, each judged by its own version', async () => {
    // hop-transcript/1.0.0 and 2.0.0 share a name: keyed by name alone, a 1.0.0 call after a 2.0.0 call went out on
    // the 2.0.0 stream, failed its validation as RPC_MALFORMED and got the honest caller penalised (session 28)
    const h = await harness();
    const v2: UnaryMethod<pb.EchoRequest, pb.EchoResponse> = {
      ...steered,
      version: '2.0.0',
      validateRequest: (r) => {
        if (r.payload[0] !== 2) throw new PeerMisbehaviourError('RPC_MALFORMED', 'version 2 takes payload 2 only');
      },
    };
    await h.rb.handle(v2, (r: pb.EchoRequest) => ({ payload: Uint8Array.from([...r.payload, 0xff]), receivedBytes: 0n }));
    for (let i = 0; i < 3; i++) {
      assert.deepEqual([...(await h.ra.call('peerB', v2, req(2))).payload], [2, 0xff], 'v2 answered by its handler');
      assert.deepEqual([...(await h.ra.call('peerB', steered, req(0, i))).payload], [0, i], 'v1 answered by its handler');
    }
    assert.equal(h.opens.mux, 2, 'one reusable stream per version');
    assert.equal(h.ra.openChannels('peerB'), 2);
    assert.equal(h.scoresB.score('peerA'), 0, 'nobody penalised');
  });

  it('closes an idle stream, and the server then holds nothing for it', async () => {
    const h = await harness({ clientIdleMs: 50 });
    await h.ra.call('peerB', steered, req(0));
    assert.equal(h.ra.openChannels('peerB'), 1);
    await until(() => h.ra.openChannels('peerB') === 0, 'the idle stream to close');
    await until(() => (h.rb as unknown as { served: Map<string, unknown> }).served.size === 0, 'the server to let go of it');
    await h.ra.call('peerB', steered, req(0));
    assert.equal(h.opens.mux, 2);
  });
});

describe('rpc mux: the server keeps its limits', () => {
  it('one peer pipelining calls gets RPC_BUSY past its per-peer slots; another peer still gets a slot', async () => {
    const h = await harness();
    const c = h.hub.createNode('peerC');
    await c.start();
    const rc = new RpcNode({ network: c, networkId: NET, reuseStreams: true });
    const calls = Array.from({ length: 6 }, () => h.ra.call('peerB', steered, req(1)).then(() => 'ok', (e: unknown) => (e instanceof RemoteRpcError ? e.code : String(e))));
    await until(() => h.started === 3, 'three calls to run');
    assert.equal(h.rb.inFlight(steered, 'peerA'), 3, 'maxConcurrentPerPeer');
    const other = rc.call('peerB', steered, req(1));
    await until(() => h.started === 4, "the other peer's call to run");
    h.release();
    const out = await Promise.all(calls);
    assert.equal(out.filter((x) => x === 'ok').length, 3);
    assert.equal(out.filter((x) => x === 'RPC_BUSY').length, 3);
    await other;
  });

  it('penalises an undecodable or invalid request, answers it with an error, and serves the next one', async () => {
    const h = await harness();
    const s = await h.a.openStream('peerB', muxProtocolOf(h.rb.protocolOf(steered)));
    const good = pbm.EchoRequest.encode(req(0, 1));
    s.send(encodeMuxFrame(FRAME_MESSAGE, 1, Uint8Array.of(0xff, 0xff, 0xff)));
    s.send(encodeMuxFrame(FRAME_MESSAGE, 2, pbm.EchoRequest.encode(req(9))));
    s.send(encodeMuxFrame(FRAME_MESSAGE, 3, good));
    const r = new FrameReader(s, MUX_KINDS);
    const got = new Map<number, { kind: number; code?: string }>();
    for (let i = 0; i < 3; i++) {
      const f = (await r.next(1 << 20))!;
      const [id, body] = splitId(f.body);
      got.set(id, { kind: f.kind, code: f.kind === FRAME_ERROR ? pbm.RpcError.decode(body).code : undefined });
    }
    assert.equal(got.get(1)?.code, 'RPC_MALFORMED');
    assert.equal(got.get(2)?.kind, FRAME_ERROR, 'validateRequest refused it');
    assert.equal(got.get(3)?.kind, FRAME_MESSAGE);
    assert.ok(h.scoresB.score('peerA') < 0, 'the caller was penalised');
    s.abort(new Error('done'));
  });

  for (const [what, bytes] of [
    ['an oversized frame', [frameHeader(FRAME_MESSAGE, steered.maxRequestBytes + 64)]],
    ['an unknown frame kind', [encodeFrame(0x07, Uint8Array.of(1, 2))]],
    ['a frame without an id', [encodeFrame(FRAME_MESSAGE, new Uint8Array(0))]],
    ['a duplicate id in flight', [encodeMuxFrame(FRAME_MESSAGE, 4, pbm.EchoRequest.encode(req(1))), encodeMuxFrame(FRAME_MESSAGE, 4, pbm.EchoRequest.encode(req(1)))]],
    ['an ERROR frame from the client', [encodeMuxFrame(FRAME_ERROR, 1, new Uint8Array(0))]],
    ['a CANCEL with a payload', [encodeMuxFrame(FRAME_CANCEL, 1, Uint8Array.of(1))]],
    ['a frame longer than a piece', [frameHeader(FRAME_MESSAGE, MUX_PIECE_BYTES + 64)]],
    [`more than ${MUX_MAX_PARTIAL} messages begun at once`, Array.from({ length: MUX_MAX_PARTIAL + 1 }, (_, i) => encodeMuxFrame(FRAME_PART, i + 1, Uint8Array.of(10, 3)))],
    ['a request over the reusable limit sent as pieces', Array.from({ length: MUX_MAX_REQUEST_BYTES / MUX_PIECE_BYTES + 1 }, () => encodeMuxFrame(FRAME_PART, 1, new Uint8Array(MUX_PIECE_BYTES)))],
    ['a PART for a call in flight', [encodeMuxFrame(FRAME_MESSAGE, 4, pbm.EchoRequest.encode(req(1))), encodeMuxFrame(FRAME_PART, 4, Uint8Array.of(10))]],
  ] as const) {
    it(`resets the stream and penalises the caller on ${what}`, async () => {
      const h = await harness();
      const s = await h.a.openStream('peerB', muxProtocolOf(h.rb.protocolOf(steered)));
      for (const b of bytes) s.send(b);
      const r = new FrameReader(s, MUX_KINDS);
      await assert.rejects(async () => {
        for (;;) if ((await r.next(1 << 20)) === undefined) throw new Error('closed cleanly');
      }, (e: unknown) => (e as Error).name === 'StreamResetError');
      assert.ok(h.scoresB.score('peerA') < 0);
      h.release();
      // the node itself is fine: a fresh client is served
      assert.deepEqual([...(await h.ra.call('peerB', steered, req(0, 1))).payload], [0, 1]);
    });
  }

  it('a server answering with a broken frame is penalised and the calls on the stream fail with a NetworkError', async () => {
    const hub = new MemoryHub();
    const a = hub.createNode('peerA');
    const rogue = hub.createNode('rogue');
    await a.start();
    await rogue.start();
    const scoresA = new PeerScoreTable();
    const ra = new RpcNode({ network: a, networkId: NET, scores: scoresA, reuseStreams: true });
    const protocol = muxProtocolOf(ra.protocolOf(steered));
    await rogue.handle(protocol, async (stream) => {
      const r = new FrameReader(stream, MUX_KINDS);
      await r.next(1 << 20);
      stream.send(encodeMuxFrame(FRAME_MESSAGE, 77, new Uint8Array(0))); // an id never sent
    });
    await assert.rejects(ra.call('rogue', steered, req(0)), (e: unknown) => e instanceof NetworkError && (e as RpcTransportError).code === 'RPC_STREAM_RESET');
    assert.ok(scoresA.score('rogue') < 0);
  });
});

/** A stream that records what is sent (one write per entry) and never pushes back. */
function recorder(): { stream: DuplexStream; frames(): Promise<{ kind: number; id: number; bytes: number }[]>; bytes(): Uint8Array[] } {
  const sent: Uint8Array[] = [];
  const stream = {
    protocol: 'rec',
    send: (d: Uint8Array) => {
      sent.push(d.slice());
      return true;
    },
    onDrain: async () => {},
    close: async () => {},
    abort: () => {},
    addEventListener: () => {},
    async *[Symbol.asyncIterator]() {},
  } as unknown as DuplexStream;
  return {
    stream,
    bytes: () => sent,
    frames: async () => {
      const r = new FrameReader(
        (async function* () {
          yield* sent;
        })(),
        MUX_KINDS,
      );
      const out: { kind: number; id: number; bytes: number }[] = [];
      for (;;) {
        const f = await r.next(1 << 30);
        if (f === undefined) return out;
        const [id, p] = splitId(f.body);
        out.push({ kind: f.kind, id, bytes: p.byteLength });
      }
    },
  };
}

describe('rpc mux: large messages go in pieces and do not hold up the others', () => {
  it('a small message queued behind a large one is written after at most one piece of it, and the large one reassembles', async () => {
    const rec = recorder();
    const w = new MuxWriter(rec.stream, 5_000, new AbortController().signal);
    const big = new Uint8Array(10 * MUX_PIECE_BYTES + 17).map((_, i) => i * 7);
    const bigDone = w.write(FRAME_MESSAGE, 1, big);
    const smallDone = w.write(FRAME_MESSAGE, 2, Uint8Array.of(42));
    await Promise.all([bigDone, smallDone]);
    const frames = await rec.frames();
    assert.ok(frames.every((f) => f.bytes <= MUX_PIECE_BYTES), 'no frame longer than a piece');
    const small = frames.findIndex((f) => f.id === 2);
    assert.ok(small >= 0 && small <= 1, `the small message went out as frame ${small}, behind at most one piece`);
    assert.equal(frames.filter((f) => f.id === 1).length, 11);
    assert.equal(frames.filter((f) => f.id === 1).at(-1)?.kind, FRAME_MESSAGE, 'the last piece is the MESSAGE frame');
    // the receiving side's assembler gives back the same bytes
    const asm = new MuxAssembler();
    const r = new FrameReader(
      (async function* () {
        yield* rec.bytes();
      })(),
      MUX_KINDS,
    );
    let whole: Uint8Array | undefined;
    for (;;) {
      const f = await r.next(1 << 30);
      if (f === undefined) break;
      const [id, p] = splitId(f.body);
      const m = asm.add(f.kind, id, p, 1 << 30);
      if (id === 1 && m !== undefined) whole = m.body;
    }
    assert.deepEqual(whole, big);
    assert.equal(asm.bufferedBytes, 0);
  });

  it(`begins at most ${MUX_MAX_PARTIAL} large messages at once; small ones pass them all`, async () => {
    const rec = recorder();
    const w = new MuxWriter(rec.stream, 5_000, new AbortController().signal);
    const writes: Promise<void>[] = [];
    for (let id = 1; id <= MUX_MAX_PARTIAL + 4; id++) writes.push(w.write(FRAME_MESSAGE, id, new Uint8Array(3 * MUX_PIECE_BYTES)));
    writes.push(w.write(FRAME_MESSAGE, 99, Uint8Array.of(1)));
    await Promise.all(writes);
    const frames = await rec.frames();
    const open = new Set<number>();
    let most = 0;
    for (const f of frames) {
      if (f.kind === FRAME_PART) open.add(f.id);
      else open.delete(f.id);
      most = Math.max(most, open.size);
    }
    assert.equal(most, MUX_MAX_PARTIAL);
    assert.ok(frames.findIndex((f) => f.id === 99) <= MUX_MAX_PARTIAL, 'the small message went out in the first round');
    // and the receiving side accepts that stream of frames
    const asm = new MuxAssembler();
    let done = 0;
    for (const f of frames) if (asm.add(f.kind, f.id, new Uint8Array(f.bytes), 1 << 30) !== undefined) done++;
    assert.equal(done, MUX_MAX_PARTIAL + 5);
  });

  it('dropping a message half sent stops its pieces (a CANCEL must follow); one never begun is forgotten silently', async () => {
    const rec = recorder();
    let release: () => void = () => {};
    const slow = { ...rec.stream, send: (d: Uint8Array) => (rec.stream.send(d), false), onDrain: () => new Promise<void>((r) => (release = r)) } as DuplexStream;
    const w = new MuxWriter(slow, 5_000, new AbortController().signal);
    const a = w.write(FRAME_MESSAGE, 1, new Uint8Array(5 * MUX_PIECE_BYTES));
    const b = w.write(FRAME_MESSAGE, 2, new Uint8Array(5 * MUX_PIECE_BYTES));
    await until(() => rec.bytes().length > 0, 'the first piece');
    assert.equal(w.drop(1), true, 'call 1 had a piece sent');
    assert.equal(w.drop(2), false, 'call 2 had nothing sent');
    for (let i = 0; i < 10; i++) {
      release();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all([a, b]);
    // call 1's piece that was being written when it was dropped is finished (a frame is never cut), nothing more
    assert.deepEqual(await rec.frames(), [{ kind: FRAME_PART, id: 1, bytes: MUX_PIECE_BYTES }]);
    assert.equal(w.queued, 0);
  });

  it('the assembler refuses a message past its limit and too many begun at once', () => {
    const asm = new MuxAssembler(3);
    asm.add(FRAME_PART, 1, new Uint8Array(10), 15);
    assert.throws(() => asm.add(FRAME_MESSAGE, 1, new Uint8Array(10), 15), (e: unknown) => (e as PeerMisbehaviourError).code === 'RPC_OVERSIZED');
    asm.add(FRAME_PART, 2, new Uint8Array(1), 15);
    asm.add(FRAME_PART, 3, new Uint8Array(1), 15);
    assert.throws(() => asm.add(FRAME_PART, 4, new Uint8Array(1), 15), (e: unknown) => (e as PeerMisbehaviourError).code === 'RPC_PROTOCOL');
    asm.drop(2);
    assert.equal(asm.add(FRAME_PART, 4, new Uint8Array(1), 15), undefined, 'a dropped message frees its place');
  });

  it('a 900-KiB request and answer go over the shared stream; a request over the limit takes a stream of its own', async () => {
    const h = await harness();
    const mid = new Uint8Array(900 * 1024).map((_, i) => i % 251);
    mid[0] = 0;
    const [r1, r2] = await Promise.all([h.ra.call('peerB', steered, { payload: mid, replyWithTensor: false }), h.ra.call('peerB', steered, req(0, 5))]);
    assert.deepEqual(r1.payload, mid);
    assert.deepEqual([...r2.payload], [0, 5]);
    assert.deepEqual(h.opens, { mux: 1, plain: 0 });
    const big = new Uint8Array(MUX_MAX_REQUEST_BYTES + 1024);
    const r3 = await h.ra.call('peerB', steered, { payload: big, replyWithTensor: false });
    assert.equal(r3.payload.byteLength, big.byteLength);
    assert.deepEqual(h.opens, { mux: 1, plain: 1 });
    assert.equal(h.scoresB.score('peerA'), 0, 'nobody was penalised');
  });
});

describe('rpc: an answer deadline counted from the written request (CallOptions.answerTimeoutMs)', () => {
  for (const reuse of [true, false]) {
    it(`${reuse ? 'reused stream' : 'stream per call'}: a slow stream open is not counted; a slow answer is`, async () => {
      const h = await harness({ reuse, openDelayMs: 600 });
      // the open takes 600 ms, the answer is immediate: within a 300-ms answer deadline
      const t0 = Date.now();
      assert.deepEqual([...(await h.ra.call('peerB', steered, req(0, 7), { answerTimeoutMs: 300 })).payload], [0, 7]);
      assert.ok(Date.now() - t0 >= 600, 'the open was slow');
      // an answer held back (payload[0] = 1) past the deadline fails with TimeoutError, and the handler is aborted
      await assert.rejects(h.ra.call('peerB', steered, req(1), { answerTimeoutMs: 300 }), (e: unknown) => e instanceof TimeoutError && /no answer within 300 ms/.test((e as Error).message));
      await until(() => h.aborted === 1, 'the handler to see the abort');
      h.release();
    });
  }
});
