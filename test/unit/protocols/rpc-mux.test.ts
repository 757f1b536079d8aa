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
import { FRAME_CANCEL, FRAME_ERROR, FRAME_MESSAGE, FrameReader, encodeFrame, frameHeader } from '../../../src/protocols/rpc/frame.js';
import type { UnaryMethod } from '../../../src/protocols/rpc/method.js';
import { MUX_KINDS, encodeMuxFrame, muxProtocolOf, splitId } from '../../../src/protocols/rpc/mux.js';
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

async function harness(opts: { reuse?: boolean; clientIdleMs?: number } = {}): Promise<Harness> {
  const hub = new MemoryHub();
  const a = hub.createNode('peerA');
  const b = hub.createNode('peerB');
  await a.start();
  await b.start();
  const opens = { mux: 0, plain: 0 };
  const open = a.openStream.bind(a);
  a.openStream = async (peer, protocol, o) => {
    if (protocol.endsWith('/mux/1.0.0')) opens.mux++;
    else opens.plain++;
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
