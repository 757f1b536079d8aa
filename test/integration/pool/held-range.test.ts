/**
 * Checkpoint serving by range from the compute worker (src/pool/held-range.ts, src/compute/served-params.ts), on two
 * real libp2p nodes on 127.0.0.1: the holder's checkpoint handler has no whole-span copy to serve from (its
 * WeightsSource has no `params()`), only figures and chunks read in its real compute worker.
 *
 *   1. a joiner downloads a span chunk by chunk, verified against the span hash, equal to the holder's weights;
 *   2. the holder's weights change in the middle of a stream: the stream ends with the typed error
 *      CHECKPOINT_WEIGHTS_CHANGED after chunks of the old version only, the download fails typed with nothing
 *      returned and the holder not penalised (it did nothing wrong), and the retry takes the new weights whole;
 *   3. a joiner that gives up a download while the holder's worker is busy retries at once and succeeds: the
 *      holder's handlers end at the joiner's resets and free their checkpoint slots.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { NANO, type LlamaConfig, type Span } from '../../../src/model/index.js';
import type { Libp2pNetwork } from '../../../src/p2p/libp2p-node.js';
import { PeerScoreTable } from '../../../src/p2p/peer-score.js';
import * as methods from '../../../src/protocols/methods.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { workerHeldRange, type HeldRangeReader } from '../../../src/pool/held-range.js';
import { checkpointHandler, downloadSpan, WeightsUnavailableError } from '../../../src/pool/transfer.js';
import { sliceSpan, spanHashOfParams } from '../../../src/pool/weights.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { startLoopbackLibp2p } from '../../utils/network.js';

const NET = 'heldrange01';
const CONFIG: LlamaConfig = { ...NANO };
const L = CONFIG.num_hidden_layers;
const WHOLE: Span = { start: 0, end: L };
/** Small chunks: a NANO layer (2.8 MiB) is ~45 of them, so a change lands in the middle of a stream. */
const CHUNK = 64 * 1024;

function loopbackNet(): Promise<Libp2pNetwork> {
  return startLoopbackLibp2p(NET);
}

describe('checkpoint served by range from the compute worker (two libp2p nodes)', { timeout: 300_000 }, () => {
  let compute: ComputeClient;
  let holderNet: Libp2pNetwork;
  let joinerNet: Libp2pNetwork;
  let holderRpc: RpcNode;
  let joinerRpc: RpcNode;
  let scores: PeerScoreTable;
  let holder = '';
  /** Called before each range read the holder serves (the test's hook into the middle of a stream). */
  let beforeRead: (n: number) => Promise<void> = () => Promise.resolve();
  let reads = 0;

  before(async () => {
    compute = await ComputeClient.start({ threads: 1 });
    await compute.run({ type: 'initModel', config: CONFIG, seed: 7, span: WHOLE });
    holderNet = await loopbackNet();
    joinerNet = await loopbackNet();
    holderRpc = new RpcNode({ network: holderNet, networkId: NET, scores: new PeerScoreTable() });
    scores = new PeerScoreTable();
    joinerRpc = new RpcNode({ network: joinerNet, networkId: NET, scores });
    const range = workerHeldRange(compute, () => WHOLE);
    const hooked: HeldRangeReader = {
      digest: (want) => range.digest(want),
      read: async (want, offset, length, version, signal) => {
        await beforeRead(++reads);
        return range.read(want, offset, length, version, signal);
      },
    };
    // no params(): nothing but the range reader to serve from
    await holderRpc.handle(methods.checkpoint, checkpointHandler({ config: () => CONFIG, held: () => WHOLE, heldRange: hooked }, CHUNK));
    holder = holderNet.peerId;
    await joinerNet.dial(holderNet.multiaddrs()[0]!);
  });

  after(async () => {
    await joinerRpc?.close().catch(() => {});
    await holderRpc?.close().catch(() => {});
    for (const n of [joinerNet, holderNet]) await n?.stop().catch(() => {});
    await compute?.close();
  });

  it('a joiner downloads a span served by range, verified, equal to the holder weights', async () => {
    const flat = (await compute.run({ type: 'getParams' })).params;
    const span = { start: 1, end: L };
    const want = sliceSpan(CONFIG, WHOLE, flat, span);
    reads = 0;
    const d = await downloadSpan({ rpc: joinerRpc, scores }, { config: CONFIG, span, holdersOf: () => [holder] });
    assert.equal(d.hash, spanHashOfParams(CONFIG, span, want));
    assert.deepEqual(d.params, want);
    assert.deepEqual(d.sources, [holder]);
    assert.equal(d.retries, 0);
    // one range read per chunk of every unit (units are one layer each: their chunks are counted unit by unit)
    let chunks = 0;
    for (let l = 1; l < L; l++) chunks += Math.ceil(sliceSpan(CONFIG, WHOLE, flat, { start: l, end: l + 1 }).byteLength / CHUNK);
    assert.equal(reads, chunks);
    assert.equal(scores.score(holder), new PeerScoreTable().score(holder), 'the holder was not penalised');
  });

  it('weights that change mid-stream: a typed error after old-version chunks only, no half download, no penalty, a clean retry takes the new weights', async () => {
    const oldFlat = (await compute.run({ type: 'getParams' })).params;
    const newFlat = oldFlat.map((x) => x * 0.5);
    const unit = { start: 2, end: 3 };
    const oldHash = spanHashOfParams(CONFIG, unit, sliceSpan(CONFIG, WHOLE, oldFlat, unit));
    // change the holder's weights (a real setParams in its worker) before its 4th range read
    const changeAt = (at: number) => async (n: number): Promise<void> => {
      if (n === at) await compute.run({ type: 'setParams', params: newFlat.slice() });
    };

    // 1. the raw stream: three chunks of the old weights, then CHECKPOINT_WEIGHTS_CHANGED
    reads = 0;
    beforeRead = changeAt(4);
    const got: Uint8Array[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of joinerRpc.serverStream(holder, methods.checkpoint, { modelHash: '', span: unit, offset: 0n }, { timeoutMs: 30_000 })) {
          assert.equal(c.modelHash, oldHash, 'every chunk names the figures the stream started with');
          got.push(c.data);
        }
      })(),
      (e) => isNeuroShardError(e) && e.code === 'CHECKPOINT_WEIGHTS_CHANGED',
    );
    assert.equal(got.length, 3);
    const oldBytes = new Uint8Array(sliceSpan(CONFIG, WHOLE, oldFlat, unit).buffer);
    assert.deepEqual(Buffer.concat(got), Buffer.from(oldBytes.subarray(0, 3 * CHUNK)), 'the chunks sent are the old weights, not a mix');

    // a stream that names the figures it agreed on, after the weights moved: refused before any chunk
    const late: Uint8Array[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of joinerRpc.serverStream(holder, methods.checkpoint, { modelHash: oldHash, span: unit, offset: 0n }, { timeoutMs: 30_000 })) late.push(c.data);
      })(),
      (e) => isNeuroShardError(e) && e.code === 'CHECKPOINT_WEIGHTS_CHANGED',
    );
    assert.equal(late.length, 0);

    // 2. a download across the change: typed failure, nothing returned, the holder not penalised
    await compute.run({ type: 'setParams', params: oldFlat.slice() });
    const span = { start: 0, end: L };
    reads = 0;
    beforeRead = changeAt(10);
    const before = scores.score(holder);
    await assert.rejects(downloadSpan({ rpc: joinerRpc, scores }, { config: CONFIG, span, holdersOf: () => [holder] }), (e) => e instanceof WeightsUnavailableError);
    assert.ok(reads >= 10, 'the change happened while units were streaming');
    assert.equal(scores.score(holder), before, 'a holder whose weights changed is not penalised');

    // 3. the retry, at once: the new weights, whole and verified (the holder's handlers of the failed download ended
    // at the joiner's resets and freed its checkpoint slots: the next case)
    beforeRead = () => Promise.resolve();
    const d = await downloadSpan({ rpc: joinerRpc, scores }, { config: CONFIG, span, holdersOf: () => [holder] });
    assert.equal(d.hash, spanHashOfParams(CONFIG, span, newFlat));
    assert.deepEqual(d.params, newFlat);
    assert.equal(d.hash, (await compute.run({ type: 'modelHash' })).hash);
  });

  it('a joiner that gives up a download retries at once and gets the span: the holder frees its slots at the resets, not when its queued range reads leave the worker', async () => {
    const flat = (await compute.run({ type: 'getParams' })).params;
    // The holder's worker turns busy mid-download (a long job: a training step, a swap) and the joiner gives up. The
    // holder's two checkpoint handlers (2 slots per peer) wait on range reads queued behind that job. Before the fix
    // they held their slots until those reads came out of the worker, and the retry's heads got RPC_BUSY at once: the
    // retry failed with "holders of layer 0 do not agree" (no head answered)
    const BUSY_MS = 6000;
    const giveUp = new AbortController();
    let busy: Promise<unknown> | undefined;
    reads = 0;
    beforeRead = (n) => {
      if (n === 5) {
        busy = compute.run({ type: 'spin', ms: BUSY_MS });
        giveUp.abort(new Error('the joiner gives up'));
      }
      return Promise.resolve();
    };
    const t0 = performance.now();
    await assert.rejects(downloadSpan({ rpc: joinerRpc, scores }, { config: CONFIG, span: WHOLE, holdersOf: () => [holder], signal: giveUp.signal }));
    beforeRead = () => Promise.resolve();
    assert.ok(busy !== undefined, 'the worker turned busy mid-download');
    // at once: no wait for the holder's handlers; the heads queue in the worker behind the busy job and are answered
    const d = await downloadSpan({ rpc: joinerRpc, scores }, { config: CONFIG, span: WHOLE, holdersOf: () => [holder] });
    const waited = performance.now() - t0;
    assert.equal(d.hash, spanHashOfParams(CONFIG, WHOLE, flat));
    assert.deepEqual(d.params, flat);
    assert.equal(d.retries, 0);
    assert.equal(scores.score(holder), new PeerScoreTable().score(holder), 'the holder was not penalised');
    // the retry's heads waited for the busy worker, not for a slot: it ends after the busy job, well inside the heads'
    // 15-s deadline
    assert.ok(waited >= BUSY_MS - 1000, `the retry ran behind the busy worker (${waited.toFixed(0)} ms)`);
    await busy;
  });
});
