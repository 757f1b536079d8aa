/**
 * The train-stage lease (protocols/train-stage.ts TrainStageServer) over the in-memory transport with a fake clock:
 * who may end a driver's lease on a hop, and when the hop ends it itself. The hop's compute is a recorder of the ops
 * it is asked to run (the lease logic runs no math: an abort is what matters).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { NeuroShardError } from '../../../src/util/errors.js';
import { waitFor } from '../../../src/util/abort.js';
import { releaseStage, remoteStageTransport, STAGE_SERVER_DEFAULTS, TrainStageServer, type LeaseEnd, type Span, type StageHost, type WireStageOp } from '../../../src/protocols/train-stage.js';
import { memoryRpcNode, type MemoryRpcNode } from '../../utils/memory-rpc.js';

const NET = 'train-stage-lease-test';
const L = 2;
const LEASE_MS = 300_000;
const QUIET_MS = 5_000;

interface Hop {
  server: TrainStageServer;
  /** Ops the hop's compute ran (info left out). */
  ran: WireStageOp['op'][];
  aborted: { peer: string; step: number; why: string }[];
  ended: { peer: string; why: LeaseEnd }[];
  clock: { t: number };
  span: { v: Span | undefined };
  /** The hop's view: peers it says no longer drive. */
  gone: Set<string>;
  rpc: Record<string, MemoryRpcNode>;
}

async function setup(names: string[] = ['d1', 'd2', 'stranger']): Promise<Hop> {
  const hub = new MemoryHub();
  const hopNode = await memoryRpcNode(hub, 'hop', NET);
  const ran: WireStageOp['op'][] = [];
  const clock = { t: 1_000_000 };
  const span: { v: Span | undefined } = { v: { start: 1, end: L } };
  const gone = new Set<string>();
  const host: StageHost = {
    span: () => span.v,
    numLayers: L,
    hiddenSize: 4,
    vocabSize: 8,
    contextLength: 8,
    run: (o) => {
      if (o.op !== 'info') ran.push(o.op);
      return Promise.resolve({ span: { ...span.v! }, appliedSteps: 0 });
    },
    driverGone: (peer) => gone.has(peer),
  };
  const server = new TrainStageServer(host, { ...STAGE_SERVER_DEFAULTS, leaseMs: LEASE_MS, goneQuietMs: QUIET_MS }, hopNode.scores, undefined, () => clock.t);
  await server.register(hopNode.rpc);
  const aborted: Hop['aborted'] = [];
  const ended: Hop['ended'] = [];
  server.events.on('step:aborted', (a) => aborted.push({ peer: a.peer, step: a.step, why: a.why }));
  server.events.on('lease:ended', (e) => ended.push({ peer: e.peer, why: e.why }));
  const rpc: Record<string, MemoryRpcNode> = { hop: hopNode };
  for (const n of names) rpc[n] = await memoryRpcNode(hub, n, NET);
  return { server, ran, aborted, ended, clock, span, gone, rpc };
}

/** `who`'s chain `chainId` begins step `step` on the hop (the span it believes the hop holds: [1, L) by default). */
function begin(h: Hop, who: string, chainId: string, step: number, span: Span = { start: 1, end: L }): Promise<unknown> {
  return remoteStageTransport(h.rpc[who]!.rpc, 'hop', { chainId, span, numLayers: L, hiddenSize: 4 })({ op: 'begin', step });
}

function release(h: Hop, who: string, chainId: string): Promise<void> {
  return releaseStage(h.rpc[who]!.rpc, 'hop', { chainId, span: { start: 1, end: L } });
}

const code = (c: string) => (e: unknown): boolean => e instanceof NeuroShardError && e.code === c;

describe('train-stage lease', () => {
  it('only the lease holder releases its lease: a stranger cannot free it; the holder\'s release aborts its step and frees the hop', async () => {
    const h = await setup();
    await begin(h, 'd1', 'a:1', 0);
    await assert.rejects(begin(h, 'd2', 'b:1', 0), code('RPC_BUSY'));
    // a stranger (another authenticated peer) names the holder's chain: refused, nothing changes
    await assert.rejects(release(h, 'stranger', 'a:1'), code('NOT_LEASE_HOLDER'));
    await assert.rejects(release(h, 'd2', 'a:1'), code('NOT_LEASE_HOLDER'));
    assert.deepEqual(h.server.holder(), { peer: 'd1', chainId: 'a:1', step: 0 });
    assert.deepEqual(h.ran, ['begin']);
    await assert.rejects(begin(h, 'd2', 'b:1', 0), code('RPC_BUSY'));
    // the holder gives it back: its step in flight is aborted here, and the next driver takes the hop at once
    await release(h, 'd1', 'a:1');
    assert.equal(h.server.holder(), undefined);
    assert.deepEqual(h.ran, ['begin', 'abort']);
    assert.deepEqual(h.aborted, [{ peer: 'd1', step: 0, why: 'released' }]);
    assert.deepEqual(h.ended, [{ peer: 'd1', why: 'released' }]);
    await begin(h, 'd2', 'b:1', 0);
    assert.equal(h.server.holder()?.peer, 'd2');
    // no one was penalised: a release by a non-holder is an honest race (the lease moved on under it)
    for (const p of ['d1', 'd2', 'stranger']) assert.equal(h.rpc.hop!.scores.score(p), 0, p);
    h.server.stop();
  });

  it('a late release of an older chain of the driver leaves its newer chain\'s lease; with no lease a release does nothing', async () => {
    const h = await setup();
    await release(h, 'd1', 'a:1');
    assert.equal(h.server.holder(), undefined);
    await begin(h, 'd1', 'a:1', 0);
    await begin(h, 'd1', 'a:2', 0); // the driver's re-formed chain takes its lease over
    await release(h, 'd1', 'a:1');
    assert.deepEqual(h.server.holder(), { peer: 'd1', chainId: 'a:2', step: 0 });
    await release(h, 'd1', 'a:2');
    assert.equal(h.server.holder(), undefined);
    h.server.stop();
  });

  it('a driver the view says is gone loses its lease at the next driver\'s begin once it has been quiet for goneQuietMs', async () => {
    const h = await setup();
    await begin(h, 'd1', 'a:1', 3);
    // quiet, but the view says it still drives: busy until the lease lapses
    h.clock.t += QUIET_MS * 10;
    await assert.rejects(begin(h, 'd2', 'b:1', 0), code('RPC_BUSY'));
    // the view says it moved off layer 0 (or died), but it called us a moment ago: a driver that calls is alive
    await begin(h, 'd1', 'a:1', 4);
    h.gone.add('d1');
    h.clock.t += QUIET_MS - 1;
    await assert.rejects(begin(h, 'd2', 'b:1', 0), code('RPC_BUSY'));
    h.clock.t += 1;
    await begin(h, 'd2', 'b:1', 0);
    assert.equal(h.server.holder()?.peer, 'd2');
    // step 3 was replaced by the driver's own step 4, which the gone driver's lease took with it
    assert.deepEqual(h.aborted, [
      { peer: 'd1', step: 3, why: 'replaced' },
      { peer: 'd1', step: 4, why: 'driver-gone' },
    ]);
    assert.deepEqual(h.ended, [{ peer: 'd1', why: 'driver-gone' }]);
    h.server.stop();
  });

  it('a lease ends when the hop\'s span moves, and when it lapses', async () => {
    const h = await setup();
    await begin(h, 'd1', 'a:1', 0);
    h.span.v = { start: 0, end: 1 };
    await begin(h, 'd2', 'b:1', 0, { start: 0, end: 1 });
    assert.equal(h.server.holder()?.peer, 'd2');
    assert.deepEqual(h.ended, [{ peer: 'd1', why: 'span-moved' }]);
    h.clock.t += LEASE_MS;
    await begin(h, 'd1', 'a:2', 0, { start: 0, end: 1 });
    assert.deepEqual(h.ended.at(-1), { peer: 'd2', why: 'lease-expired' });
    h.server.stop();
  });

  it('a pause waiting for a gone driver\'s step in flight resolves once the view says it is gone (no lease lapse)', async () => {
    const h = await setup();
    await begin(h, 'd1', 'a:1', 7);
    let paused = false;
    const p = h.server.pause().then(() => (paused = true));
    // far short of the lease's lapse (the fake clock never gets there): only the view can end it; the server's
    // timer (every 250 ms of real time here) checks it
    h.clock.t += QUIET_MS;
    assert.equal(paused, false);
    h.gone.add('d1');
    await waitFor(() => paused, { timeoutMs: 30_000, intervalMs: 20, what: 'the pause to end' }); // a real 250 ms timer: a starved process (load 37 on 2 cores) needed > 5 s
    await p;
    assert.equal(h.server.holder(), undefined);
    assert.deepEqual(h.aborted, [{ peer: 'd1', step: 7, why: 'driver-gone' }]);
    h.server.stop();
  });

  it('a paused hop says which drivers asked it for a step since the pause began (a driver not at its boundary); a resume or the next pause forgets', async () => {
    const h = await setup();
    await begin(h, 'd1', 'a:1', 3);
    // the step ends (the driver's abort: the lease is idle), then the hop pauses at its boundary
    await remoteStageTransport(h.rpc.d1!.rpc, 'hop', { chainId: 'a:1', span: { start: 1, end: L }, numLayers: L, hiddenSize: 4 })({ op: 'abort', step: 3 });
    await h.server.pause();
    assert.equal(h.server.askedWhilePaused('d1'), false, 'nobody asked yet');
    await assert.rejects(begin(h, 'd1', 'a:1', 4), code('STAGE_PAUSED'));
    assert.equal(h.server.askedWhilePaused('d1'), true, 'its driver asked for the next step');
    // another driver is refused as busy (the lease is d1's): it is not the hop's driver and is not recorded
    await assert.rejects(begin(h, 'd2', 'b:1', 0), code('RPC_BUSY'));
    assert.equal(h.server.askedWhilePaused('d2'), false);
    h.server.resume();
    assert.equal(h.server.askedWhilePaused('d1'), false, 'forgotten at the resume');
    await h.server.pause();
    assert.equal(h.server.askedWhilePaused('d1'), false, 'a new pause starts empty');
    h.server.resume();
    h.server.stop();
  });
});
