import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MemoryHub, type MemoryNetwork } from '../../../src/p2p/memory.js';
import { PeerScoreTable } from '../../../src/p2p/peer-score.js';
import { echoHandler } from '../../../src/protocols/handlers/echo.js';
import { shardInfoHandler } from '../../../src/protocols/handlers/shard-info.js';
import * as methods from '../../../src/protocols/methods.js';
import * as pb from '../../../src/protocols/pb/node.js';
import { RemoteRpcError, RpcTransportError, RpcViolationError } from '../../../src/protocols/rpc/errors.js';
import { FRAME_ERROR, FRAME_MESSAGE, FrameReader, encodeFrame, frameHeader } from '../../../src/protocols/rpc/frame.js';
import type { UnaryMethod } from '../../../src/protocols/rpc/method.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { fp32Tensor, tensorToPb, toFloat32 } from '../../../src/protocols/tensor-wire.js';
import { NeuroShardError, isNeuroShardError } from '../../../src/util/errors.js';

const NET = 'testnet01';

interface Pair {
  a: MemoryNetwork;
  b: MemoryNetwork;
  ra: RpcNode;
  rb: RpcNode;
  scoresB: PeerScoreTable;
  scoresA: PeerScoreTable;
}

async function pair(): Promise<Pair> {
  const hub = new MemoryHub();
  const a = hub.createNode('peerA');
  const b = hub.createNode('peerB');
  await a.start();
  await b.start();
  const scoresA = new PeerScoreTable();
  const scoresB = new PeerScoreTable();
  const ra = new RpcNode({ network: a, networkId: NET, scores: scoresA });
  const rb = new RpcNode({ network: b, networkId: NET, scores: scoresB });
  await rb.handle(methods.echo, echoHandler);
  return { a, b, ra, rb, scoresA, scoresB };
}

/** Sends raw bytes on the echo protocol of b and collects what comes back (or the stream error). */
async function raw(p: Pair, bytes: Uint8Array[], protocol = p.rb.protocolOf(methods.echo)): Promise<{ frames: Uint8Array[]; error?: Error }> {
  const s = await p.a.openStream('peerB', protocol);
  for (const b of bytes) s.send(b);
  await s.close();
  const frames: Uint8Array[] = [];
  try {
    const r = new FrameReader(s);
    for (;;) {
      const f = await r.next(1 << 20);
      if (f === undefined) break;
      frames.push(Uint8Array.of(f.kind, ...f.body));
    }
    return { frames };
  } catch (e) {
    return { frames, error: e as Error };
  }
}

function errorCodeOf(frame: Uint8Array | undefined): string | undefined {
  if (frame === undefined || frame[0] !== FRAME_ERROR) return undefined;
  return pb.RpcError.decode(frame.subarray(1)).code;
}

async function echoStillWorks(p: Pair): Promise<void> {
  const r = await p.ra.call('peerB', methods.echo, { payload: Uint8Array.of(7), replyWithTensor: false });
  assert.deepEqual([...r.payload], [7]);
}

describe('rpc: unary calls', () => {
  it('echoes a payload and an fp32 tensor, bytes intact', async () => {
    const p = await pair();
    const x = new Float32Array([1.5, -2, 3.25, 0, 1e-7, -1e9]);
    const res = await p.ra.call('peerB', methods.echo, { payload: Uint8Array.of(1, 2, 3), tensor: tensorToPb(fp32Tensor(x, [2, 3])), replyWithTensor: true });
    assert.deepEqual([...res.payload], [1, 2, 3]);
    assert.equal(res.receivedBytes, 3n + 24n);
    assert.deepEqual(res.tensor?.shape, [2, 3]);
    assert.deepEqual([...toFloat32({ dtype: 'fp32', shape: [2, 3], data: res.tensor!.data })], [...x]);
  });

  it('serves shard info from the node', async () => {
    const p = await pair();
    await p.rb.handle(
      methods.shardInfo,
      shardInfoHandler({ peerId: 'peerB', span: () => ({ start: 0, end: 4 }), totalLayers: () => 8, modelHash: () => 'abc', version: () => 3n, freeMemoryMb: () => 1024.7, load: () => 0.5 }),
    );
    const info = await p.ra.call('peerB', methods.shardInfo, {});
    assert.deepEqual(info.span, { start: 0, end: 4 });
    assert.equal(info.hasEmbedding, true);
    assert.equal(info.hasLmHead, false);
    assert.equal(info.freeMemoryMb, 1024n);
  });

  it('carries a typed error from the remote handler', async () => {
    const p = await pair();
    await p.rb.handle(methods.shardInfo, () => {
      throw new NeuroShardError('NOT_READY', 'still loading', { fault: 'local' });
    });
    await assert.rejects(p.ra.call('peerB', methods.shardInfo, {}), (e: unknown) => {
      assert.ok(e instanceof RemoteRpcError);
      assert.equal(e.code, 'NOT_READY');
      assert.equal(e.remoteFault, 'local');
      assert.equal(e.fault, 'peer');
      return true;
    });
    // a plain exception becomes RPC_INTERNAL without leaking its message
    await p.rb.handle(methods.shardInfo, () => {
      throw new Error('secret internal detail');
    });
    await assert.rejects(p.ra.call('peerB', methods.shardInfo, {}), (e: unknown) => {
      assert.ok(e instanceof RemoteRpcError);
      assert.equal(e.code, 'RPC_INTERNAL');
      assert.ok(!e.message.includes('secret'));
      return true;
    });
  });

  it('reports an unregistered method as unavailable', async () => {
    const p = await pair();
    await assert.rejects(p.ra.call('peerB', methods.shardInfo, {}), (e: unknown) => e instanceof RpcTransportError && e.code === 'RPC_UNAVAILABLE');
  });

  it('times out a call whose handler never answers, and aborts the handler', async () => {
    const p = await pair();
    let handlerAborted: Promise<void> | undefined;
    await p.rb.handle(methods.shardInfo, (_req, ctx) => {
      handlerAborted = new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      return new Promise<never>(() => {});
    });
    await assert.rejects(p.ra.call('peerB', methods.shardInfo, {}, { timeoutMs: 100 }), (e: unknown) => isNeuroShardError(e, 'TIMEOUT'));
    assert.ok(handlerAborted !== undefined);
    await handlerAborted; // resolves when the server notices (its own deadline, 5 s, or the reset)
  });

  it('aborts a call when the caller aborts', async () => {
    const p = await pair();
    await p.rb.handle(methods.shardInfo, () => new Promise<never>(() => {}));
    const ac = new AbortController();
    const call = p.ra.call('peerB', methods.shardInfo, {}, { signal: ac.signal });
    ac.abort();
    await assert.rejects(call, (e: unknown) => isNeuroShardError(e, 'ABORTED'));
  });

  it('refuses to send a request over the limit (caller fault, nothing sent)', async () => {
    const p = await pair();
    const big = new Uint8Array(methods.echo.maxRequestBytes + 1);
    await assert.rejects(p.ra.call('peerB', methods.echo, { payload: big, replyWithTensor: false }), (e: unknown) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
  });

  it('reads an error answer up to the error limit even when the method answers in a few bytes (no penalty)', async () => {
    // A method whose responses are tiny (an ack) still gets honest errors of a few hundred bytes. Reading them under
    // the response limit made "not ready" an RPC_OVERSIZED violation: a penalty, and after a few, a ban.
    const p = await pair();
    const tiny: UnaryMethod<pb.ShardInfoRequest, pb.ShardInfo> = { ...methods.shardInfo, name: 'tiny-info', maxResponseBytes: 16 };
    await p.rb.handle(tiny, () => {
      throw new NeuroShardError('NOT_READY', `round 7 is not open here yet: ${'x'.repeat(200)}`, { fault: 'local' });
    });
    for (let i = 0; i < 5; i++) {
      await assert.rejects(p.ra.call('peerB', tiny, {}), (e: unknown) => e instanceof RemoteRpcError && e.code === 'NOT_READY');
    }
    assert.equal(p.scoresA.score('peerB'), 0);
    // a MESSAGE frame is still held to the method's own limit
    const big: UnaryMethod<pb.ShardInfoRequest, pb.ShardInfo> = { ...methods.shardInfo, name: 'big-info', maxResponseBytes: 16 };
    await p.b.handle(p.rb.protocolOf(big), async (s) => {
      for await (const _ of s) break;
      s.send(encodeFrame(FRAME_MESSAGE, pb.ShardInfo.encode({ peerId: 'p'.repeat(100), totalLayers: 1, hasEmbedding: false, hasLmHead: false, modelHash: '', version: 0n, freeMemoryMb: 0n, load: 0 })));
      await s.close();
    });
    await assert.rejects(p.ra.call('peerB', big, {}), (e: unknown) => e instanceof RpcViolationError && e.code === 'RPC_OVERSIZED');
    assert.ok(p.scoresA.score('peerB') < 0);
  });

  it('answers RPC_BUSY past the concurrency limit', async () => {
    const p = await pair();
    const m: UnaryMethod<pb.ShardInfoRequest, pb.ShardInfo> = { ...methods.shardInfo, maxConcurrent: 1 };
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    await p.rb.handle(m, async () => {
      entered();
      await gate;
      return { peerId: 'peerB', totalLayers: 1, hasEmbedding: false, hasLmHead: false, modelHash: '', version: 0n, freeMemoryMb: 0n, load: 0 };
    });
    const first = p.ra.call('peerB', m, {});
    await inHandler;
    await assert.rejects(p.ra.call('peerB', m, {}), (e: unknown) => e instanceof RemoteRpcError && e.code === 'RPC_BUSY');
    release();
    assert.equal((await first).peerId, 'peerB');
  });
});

describe('rpc: hostile input never crashes the server', () => {
  it('rejects an oversized frame from its length prefix, penalises, keeps serving', async () => {
    const p = await pair();
    const header = frameHeader(FRAME_MESSAGE, methods.echo.maxRequestBytes + 1);
    const r = await raw(p, [header, new Uint8Array(1000)]);
    assert.ok(r.error !== undefined || errorCodeOf(r.frames[0]) === 'RPC_OVERSIZED');
    assert.ok(p.scoresB.score('peerA') < 0);
    await echoStillWorks(p);
  });

  it('answers an undecodable message with RPC_MALFORMED', async () => {
    const p = await pair();
    // field 1 (bytes) announcing 100 bytes with 2 present
    const r = await raw(p, [encodeFrame(FRAME_MESSAGE, Uint8Array.of(0x0a, 100, 1, 2))]);
    assert.equal(errorCodeOf(r.frames[0]), 'RPC_MALFORMED');
    assert.ok(p.scoresB.score('peerA') < 0);
    await echoStillWorks(p);
  });

  it('answers a tensor whose bytes do not match its shape with RPC_BAD_TENSOR', async () => {
    const p = await pair();
    const body = pb.EchoRequest.encode({ payload: new Uint8Array(0), tensor: { dtype: pb.DType.FP32, shape: [4, 4], data: new Uint8Array(12), scale: 0 } });
    const r = await raw(p, [encodeFrame(FRAME_MESSAGE, body)]);
    assert.equal(errorCodeOf(r.frames[0]), 'RPC_BAD_TENSOR');
    await echoStillWorks(p);
  });

  it('rejects a truncated frame, an unknown frame kind, an ERROR frame from a client and an empty stream', async () => {
    const p = await pair();
    const full = encodeFrame(FRAME_MESSAGE, pb.EchoRequest.encode({ payload: Uint8Array.of(1, 2, 3) }));
    const cases: Uint8Array[][] = [[full.subarray(0, full.length - 1)], [Uint8Array.of(2, 0x07, 0)], [encodeFrame(FRAME_ERROR, new Uint8Array(2))], [], [Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x01)]];
    for (const c of cases) {
      const before = p.scoresB.score('peerA');
      const r = await raw(p, c);
      assert.ok(r.frames.length === 0 || r.frames[0]![0] === FRAME_ERROR, 'no MESSAGE reply to garbage');
      assert.ok(p.scoresB.score('peerA') < before, `penalised for case ${c.map((x) => x.length).join(',')}`);
    }
    await echoStillWorks(p);
  });

  it('survives random bytes (property)', async () => {
    const p = await pair();
    // huge scores are irrelevant here: forgive between runs so the peer is never banned
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 }), async (chunks) => {
        await raw(p, chunks);
        return true;
      }),
      { numRuns: 60 },
    );
    const fresh = await pair();
    await echoStillWorks(fresh);
  });

  it('bans a peer that keeps misbehaving, then refuses its calls', async () => {
    const p = await pair();
    for (let i = 0; i < 6; i++) await raw(p, [encodeFrame(FRAME_MESSAGE, Uint8Array.of(0x0a, 100))]);
    assert.ok(p.scoresB.isBanned('peerA'));
    await assert.rejects(p.ra.call('peerB', methods.echo, { payload: Uint8Array.of(1), replyWithTensor: false }), (e: unknown) => isNeuroShardError(e));
  });

  it('a transport failure is not misbehaviour: no penalty for an unsupported protocol, an unreachable peer or our own deadline', async () => {
    const p = await pair();
    const other: UnaryMethod<pb.ShardInfoRequest, pb.ShardInfo> = { ...methods.shardInfo, name: 'not-served' };
    await assert.rejects(p.ra.call('peerB', other, {}), (e: unknown) => e instanceof RpcTransportError && e.code === 'RPC_UNAVAILABLE');
    await assert.rejects(p.ra.call('peerZ', methods.echo, { payload: Uint8Array.of(1), replyWithTensor: false }), (e: unknown) => e instanceof RpcTransportError && e.code === 'RPC_UNAVAILABLE');
    // our deadline fired while the stream was being opened (a loaded machine): the open's STREAM_OPEN_ABORTED used to
    // count as the peer's misbehaviour, and honest peers were banned
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(p.ra.call('peerB', methods.echo, { payload: Uint8Array.of(1), replyWithTensor: false }, { signal: ac.signal }));
    assert.equal(p.scoresA.score('peerB'), 0);
    assert.equal(p.scoresA.score('peerZ'), 0);
    await echoStillWorks(p);
  });

  it('the client penalises a server that answers garbage', async () => {
    const p = await pair();
    const bad: UnaryMethod<pb.ShardInfoRequest, pb.ShardInfo> = { ...methods.shardInfo, name: 'bad-info' };
    await p.b.handle(p.rb.protocolOf(bad), async (s) => {
      for await (const _ of s) break;
      s.send(encodeFrame(FRAME_MESSAGE, Uint8Array.of(0x0a, 50)));
      await s.close();
    });
    await assert.rejects(p.ra.call('peerB', bad, {}), (e: unknown) => e instanceof RpcViolationError && e.code === 'RPC_MALFORMED');
    assert.ok(p.scoresA.score('peerB') < 0);
  });
});

describe('rpc: streaming calls', () => {
  it('server-streams checkpoint chunks in order', async () => {
    const p = await pair();
    await p.rb.handle(methods.checkpoint, async function* (req) {
      for (let i = 0; i < 5; i++) yield { name: 'w', offset: BigInt(i * 3), totalSize: 15n, data: Uint8Array.of(i, i, i), modelHash: req.modelHash, sha256: new Uint8Array(0) };
    });
    const got: number[] = [];
    for await (const c of p.ra.serverStream('peerB', methods.checkpoint, { modelHash: 'h1', offset: 0n })) {
      assert.equal(c.modelHash, 'h1');
      got.push(c.data[0]!);
    }
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
  });

  it('stops the server when the client stops reading early', async () => {
    const p = await pair();
    let stopped!: () => void;
    const serverStopped = new Promise<void>((r) => (stopped = r));
    await p.rb.handle(methods.checkpoint, async function* (_req, ctx) {
      try {
        for (let i = 0; ; i++) {
          if (ctx.signal.aborted) return;
          yield { name: 'w', offset: 0n, totalSize: 1n << 40n, data: Uint8Array.of(1), modelHash: '', sha256: new Uint8Array(0) };
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        stopped();
      }
    });
    let n = 0;
    for await (const _ of p.ra.serverStream('peerB', methods.checkpoint, { modelHash: '', offset: 0n })) if (++n === 3) break;
    await serverStopped;
  });

  it('runs a bidirectional inference stream', async () => {
    const p = await pair();
    await p.rb.handle(methods.inferenceStream, async function* (reqs) {
      for await (const r of reqs) yield { requestId: r.requestId, nextToken: r.tokens.reduce((a, b) => a + b, 0), processedTokens: r.tokens.length, tokens: [] };
    });
    const reqs = [1, 2, 3].map((i) => ({ sessionId: 's', requestId: `r${i}`, tokens: [i, i], positionOffset: i, endSession: false, chunks: [], maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0 }));
    const out: string[] = [];
    for await (const r of p.ra.bidi('peerB', methods.inferenceStream, reqs)) out.push(`${r.requestId}:${r.nextToken}`);
    assert.deepEqual(out, ['r1:2', 'r2:4', 'r3:6']);
  });

  it('a remote error ends a stream with the typed error', async () => {
    const p = await pair();
    await p.rb.handle(methods.inferenceStream, async function* (reqs) {
      for await (const r of reqs) {
        if (r.requestId === 'r2') throw new NeuroShardError('SESSION_GONE', 'no such session', { fault: 'caller' });
        yield { requestId: r.requestId, processedTokens: 0, tokens: [] };
      }
    });
    const reqs = [1, 2, 3].map((i) => ({ sessionId: 's', requestId: `r${i}`, tokens: [], positionOffset: 0, endSession: false, chunks: [], maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0 }));
    const out: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const r of p.ra.bidi('peerB', methods.inferenceStream, reqs)) out.push(r.requestId);
      })(),
      (e: unknown) => e instanceof RemoteRpcError && e.code === 'SESSION_GONE' && e.fault === 'local',
    );
    assert.deepEqual(out, ['r1']);
  });
});
