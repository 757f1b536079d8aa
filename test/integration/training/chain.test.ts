/**
 * Pipeline training across real libp2p nodes on 127.0.0.1 (train-stage/1.0.0), each hop on its own compute worker:
 * - a 3-stage chain ([0,1) driver, [1,3), [3,4) of a 4-layer model, f32 on the wire) gives a single node's loss and
 *   every parameter's gradient within 1e-5, and after 10 steps (warm-up, cosine, clipping active, 1F1B) the weights
 *   of 10 solo steps within 1e-5;
 * - a hop that dies mid-step (its node stops while it computes a forward): the step is abandoned on every hop (their
 *   weights and AdamW counts unchanged), the chain is re-formed with the other replica of [1,3), training goes on;
 * - hostile calls (malformed and oversized messages, wrong step ids, ops out of order, bad token ids, a chain that is
 *   not the lease holder) get typed errors and penalties, and the hop still trains its chain afterwards.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { makeConfig, ParamLayout, type LlamaConfig } from '../../../src/model/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { createNodeNetwork, type NodeNetwork } from '../../../src/node/network.js';
import { nodeChainDriver, NodeChainHop, remoteHop } from '../../../src/node/chain.js';
import { RpcError } from '../../../src/protocols/pb/node.js';
import { StageOpKind, type TrainStageRequest } from '../../../src/protocols/pb/train.js';
import { FRAME_ERROR, FRAME_MESSAGE, FrameReader, frameHeader } from '../../../src/protocols/rpc/frame.js';
import { trainStage } from '../../../src/protocols/train-stage.js';
import { ChainTrainer, OpStage, type Batch, type BatchSource, type ChainCandidate } from '../../../src/training/index.js';
import { batchOf } from '../../../src/training/pipeline/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { NeuroShardError } from '../../../src/util/errors.js';
import { Rng } from '../../../src/util/rng.js';
import { loopbackNodeOptions, LOOPBACK_TUNING } from '../../utils/network.js';

const genesis = bundledGenesis();
const cfg: LlamaConfig = makeConfig({ hidden_size: 32, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 48, vocab_size: 50, max_position_embeddings: 32 });
const L = cfg.num_hidden_layers;
const C = cfg.hidden_size;
const SEED = 5;
const B = 4;
const T = 8;
const TRAINER = { lr: 3e-3, warmupSteps: 2, decaySteps: 10, maxGradNorm: 0.5 };

interface TestNode {
  net: NodeNetwork;
  compute: ComputeClient;
  hop: NodeChainHop;
  span: { start: number; end: number };
}

async function startNode(span: { start: number; end: number }, boot: string[]): Promise<TestNode> {
  const net = await createNodeNetwork({
    networkId: genesis.networkId,
    key: keyFromPrivate(randomBytes(32)),
    options: loopbackNodeOptions({ span, bootstrap: boot, genesis: boot.length === 0, heartbeatIntervalMs: 300 }),
    tuning: LOOPBACK_TUNING,
  });
  await net.start();
  const compute = await ComputeClient.start({ threads: 1 });
  await compute.run({ type: 'initModel', config: cfg, seed: SEED, span });
  const hop = await NodeChainHop.start({ compute, network: net, config: cfg, span: () => span, limits: { leaseMs: 45_000 } });
  return { net, compute, hop, span };
}

async function stopNode(n: TestNode | undefined): Promise<void> {
  if (n === undefined) return;
  n.hop.stop();
  await n.net.stop().catch(() => {});
  await n.compute.close().catch(() => {});
}

const addr = (n: NodeNetwork): string => n.p2p.multiaddrs()[0]!;

function batch(i: number): Batch {
  const rng = new Rng(1000 + i);
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const ids = Array.from({ length: T + 1 }, () => rng.int(cfg.vocab_size));
    inputs.set(ids.slice(0, T), b * T);
    targets.set(ids.slice(1), b * T);
  }
  targets[3] = -100; // an ignored position: micro-batches count different numbers of targets
  return batchOf(inputs, targets, B, T);
}

function source(from = 0): BatchSource & { i: number } {
  return {
    i: from,
    next() {
      return batch(this.i++);
    },
    position() {
      return this.i;
    },
  };
}

/** Largest |difference| between a span's flat buffer and the whole model's, parameter by parameter (by name). */
function worst(spanBuf: Float32Array, span: { start: number; end: number }, whole: Float32Array): number {
  const sl = new ParamLayout(cfg, span);
  const wl = new ParamLayout(cfg);
  let w = 0;
  for (const e of sl.entries) {
    const a = spanBuf.subarray(e.offset, e.offset + e.size);
    const b = wl.view(whole, e.name);
    for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i]! - b[i]!));
  }
  return w;
}

describe('chain training over libp2p', () => {
  let a: TestNode; // driver [0, 1)
  let b: TestNode; // [1, 3)
  let b2: TestNode; // replica of [1, 3)
  let c: TestNode; // [3, 4)
  let ref: ComputeClient; // the whole model, solo

  before(async () => {
    a = await startNode({ start: 0, end: 1 }, []);
    b = await startNode({ start: 1, end: 3 }, [addr(a.net)]);
    b2 = await startNode({ start: 1, end: 3 }, [addr(a.net)]);
    c = await startNode({ start: 3, end: L }, [addr(a.net)]);
    ref = await ComputeClient.start({ threads: 1 });
    await ref.run({ type: 'initModel', config: cfg, seed: SEED, trainer: TRAINER });
    await waitFor(() => a.net.liveness.snapshot().filter((p) => p.state === 'alive').length >= 3, { timeoutMs: 120_000, intervalMs: 100, what: 'three alive hops' });
  });
  after(async () => {
    for (const n of [a, b, b2, c]) await stopNode(n);
    await ref?.close();
  });

  const cand = (n: TestNode, cost = 0): ChainCandidate => ({ peer: n.net.peerId, span: n.span, cost });

  it('a 3-stage step gives the single node\'s loss and every gradient (1e-5); 10 steps give its weights (1e-5)', async () => {
    // gradients of one step: the whole model as one stage in the reference worker
    const bt0 = batch(0);
    const whole = new OpStage({ start: 0, end: L }, L, (o) => ref.run({ type: 'stage', o }, { copy: true }));
    await whole.beginStep(0);
    const f = await whole.forward(0, 0, bt0.inputs.data, B, T, bt0.targets.data, 1);
    await whole.backward(0, 0, null);
    await whole.gradSumSquares(0);
    const wholeGrads = await whole.grads();
    await whole.abortStep(0);

    // the chain, with a look at each hop's summed gradients before it applies them
    const chainId = 'exact';
    const hops = [a, b, c].map((n) =>
      n === a ? { peer: a.net.peerId, span: a.span, stage: new OpStage(a.span, L, (o) => a.compute.run({ type: 'stage', o }, { copy: true })) } : remoteHop(a.net, n.net.peerId, n.span, { chainId, config: cfg }),
    );
    const grads: Float32Array[] = [];
    for (const [i, h] of hops.entries()) {
      const st = h.stage;
      const apply = st.applyStep.bind(st);
      st.applyStep = async (step, x) => {
        if (step === 0) grads[i] = (await [a, b, c][i]!.compute.run({ type: 'stage', o: { op: 'grads' } })).grads!;
        return apply(step, x);
      };
    }
    const trainer = new ChainTrainer({
      self: a.net.peerId,
      local: hops[0]!.stage as OpStage,
      data: source(0),
      pipeline: { microBatches: 2, schedule: '1f1b', trainer: TRAINER },
      formChain: () => Promise.resolve(hops),
    });
    // a step abandoned on the way (a deadline on a loaded machine) left nothing applied: it is retried with the same
    // batch and step id, as the driver's inner loop does, and exactness holds all the same
    const abandoned: string[] = [];
    trainer.events.on('abandoned', (x) => abandoned.push(x.error));
    const step = async (): Promise<Awaited<ReturnType<ChainTrainer['trainStep']>>> => {
      for (let i = 0; i < 5; i++) {
        const r = await trainer.trainStep();
        if (r !== null) return r;
      }
      throw new Error(`5 attempts abandoned: ${abandoned.join(' | ')}`);
    };
    const r0 = await step();
    assert.ok(r0 !== null && r0.applied);
    assert.ok(Math.abs(r0.loss - f.loss!) < 1e-5, `loss ${r0.loss} vs ${f.loss}`);
    for (const [i, n] of [a, b, c].entries()) {
      const w = worst(grads[i]!, n.span, wholeGrads);
      assert.ok(w < 1e-5, `hop ${i}: worst gradient difference ${w}`);
    }
    const solo0 = await ref.run({ type: 'trainStep', inputs: batch(0).inputs.data, targets: batch(0).targets.data, B, T });
    assert.ok(Math.abs(solo0.gradNorm - r0.gradNorm) < 1e-5 * solo0.gradNorm);

    let clipped = r0.clipScale < 1 ? 1 : 0;
    for (let i = 1; i < 10; i++) {
      const p = await step();
      const s = await ref.run({ type: 'trainStep', inputs: batch(i).inputs.data, targets: batch(i).targets.data, B, T });
      assert.ok(p !== null && p.applied);
      assert.equal(p.lr, s.lr);
      assert.ok(Math.abs(p.gradNorm - s.gradNorm) < 1e-5 * s.gradNorm, `step ${i}: norm ${p.gradNorm} vs ${s.gradNorm}`);
      if (p.clipScale < 1) clipped++;
    }
    assert.ok(clipped > 0, 'clipping was exercised');
    const soloW = (await ref.run({ type: 'getParams' })).params;
    for (const n of [a, b, c]) {
      const w = worst((await n.compute.run({ type: 'getParams' })).params, n.span, soloW);
      assert.ok(w < 1e-5, `[${n.span.start}, ${n.span.end}): worst weight difference after 10 steps ${w}`);
      assert.equal((await n.compute.run({ type: 'stage', o: { op: 'info' } })).appliedSteps, 10);
    }
    assert.equal(b.hop.inner!.appliedSteps(), 10, 'the passive hop counted its steps');
    const ev = await trainer.evaluate([batch(50)]);
    const es = await ref.run({ type: 'evalLoss', inputs: batch(50).inputs.data, targets: batch(50).targets.data, B, T });
    assert.ok(Math.abs(ev.loss - es.loss) < 1e-5);
  });

  it('a hop that dies mid-step: the step is abandoned on every hop, the chain re-forms with the replica, training goes on', async () => {
    const driver = nodeChainDriver({
      compute: a.compute,
      network: a.net,
      config: cfg,
      span: a.span,
      data: source(100),
      pipeline: { microBatches: 2, schedule: 'gpipe', trainer: TRAINER },
      candidates: () => [cand(b, 0), cand(b2, 1), cand(c, 0)],
      stepTimeoutMs: 60_000,
      retryMs: 200,
    });
    const r1 = await driver.innerSteps(2);
    assert.equal(r1.applied, 2);
    assert.deepEqual(driver.chain()?.map((h) => h.peer), [a.net.peerId, b.net.peerId, c.net.peerId]);
    const before = await Promise.all([a, c].map(async (n) => ({ params: (await n.compute.run({ type: 'getParams' })).params, applied: (await n.compute.run({ type: 'stage', o: { op: 'info' } })).appliedSteps })));
    // b dies while it computes its first forward of the next step
    let killed = false;
    const kill = (): void => {
      if (killed) return;
      killed = true;
      void b.net.stop();
    };
    const origRun = b.compute.run.bind(b.compute);
    b.compute.run = ((job: Parameters<typeof origRun>[0], opts?: Parameters<typeof origRun>[1]) => {
      if (job.type === 'stage' && job.o.op === 'forward') kill();
      return origRun(job, opts);
    }) as typeof origRun;
    const abandoned: (string | null)[] = [];
    driver.events.on('abandoned', (x) => abandoned.push(x.peer));
    // the abandoned step left a and c untouched: check before any later step applies, on the first abandon
    const snapshot = new Promise<{ params: Float32Array; applied: number }[]>((res) => {
      driver.events.once('abandoned', () => {
        void Promise.all([a, c].map(async (n) => ({ params: (await n.compute.run({ type: 'getParams' })).params, applied: (await n.compute.run({ type: 'stage', o: { op: 'info' } })).appliedSteps }))).then(res);
      });
    });
    const r2 = await driver.innerSteps(3);
    assert.ok(killed, 'the hop was stopped mid-step');
    assert.equal(r2.applied, 3);
    assert.ok(r2.abandoned >= 1);
    assert.equal(abandoned[0], b.net.peerId, 'the dead hop was blamed');
    const mid = await snapshot;
    for (const [i, s] of mid.entries()) {
      assert.equal(s.applied, before[i]!.applied, 'no AdamW step on a surviving hop during the abandoned step');
      assert.deepEqual(s.params, before[i]!.params, 'no half-applied update');
    }
    assert.deepEqual(driver.chain()?.map((h) => h.peer), [a.net.peerId, b2.net.peerId, c.net.peerId], 're-formed with the replica');
    assert.equal((await b2.compute.run({ type: 'stage', o: { op: 'info' } })).appliedSteps, 3);
    assert.equal((await c.compute.run({ type: 'stage', o: { op: 'info' } })).appliedSteps, 10 + 5);
  });

  describe('hostile calls to a hop', () => {
    // two attackers with no layers (each stays under the ban threshold of -100 here)
    let x1: NodeNetwork;
    let x2: NodeNetwork;
    before(async () => {
      const start = async (): Promise<NodeNetwork> => {
        const n = await createNodeNetwork({ networkId: genesis.networkId, key: keyFromPrivate(randomBytes(32)), options: loopbackNodeOptions({ bootstrap: [addr(a.net)], heartbeatIntervalMs: 300 }), tuning: LOOPBACK_TUNING });
        await n.start();
        return n;
      };
      x1 = await start();
      x2 = await start();
    });
    after(async () => {
      await x1?.stop();
      await x2?.stop();
    });
    const base = (over: Partial<TrainStageRequest> = {}): TrainStageRequest => ({ chainId: 'evil', step: 0n, op: StageOpKind.INFO, microBatch: 0, gradScale: 1, lr: 0, clipScale: 1, spanStart: 3, spanEnd: L, ...over });
    const call = (from: NodeNetwork, to: TestNode, req: TrainStageRequest): Promise<unknown> => from.rpc.call(addr(to.net), trainStage, req, { timeoutMs: 20_000 });
    const rejects = async (p: Promise<unknown>, code: string): Promise<void> => {
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof NeuroShardError && e.code === code, `want ${code}, got ${String((e as NeuroShardError).code)}: ${(e as Error).message}`);
        return true;
      });
    };
    const f32 = (shape: number[], bytes?: number) => ({ dtype: 1, shape, data: new Uint8Array(bytes ?? shape.reduce((x, y) => x * y, 1) * 4) });
    const i32 = (shape: number[], v = 1) => ({ dtype: 4, shape, data: new Uint8Array(new Int32Array(shape.reduce((x, y) => x * y, 1)).fill(v).buffer) });

    it('malformed and oversized messages, bad ids, wrong step ids and out-of-order ops: typed errors and penalties, no crash', async () => {
      // the previous test's chain lets go of the last stage first (its lease lapses)
      await waitFor(() => c.hop.server.holder() === undefined, { timeoutMs: 180_000, intervalMs: 100, what: 'the last chain\'s lease to lapse' });
      // x1 → the last stage: malformed messages, a wrong span, the step machine
      await rejects(call(x1, c, base({ op: StageOpKind.BEGIN, input: f32([2, T, C], 7) })), 'RPC_BAD_TENSOR');
      await rejects(call(x1, c, base({ op: StageOpKind.BEGIN, input: { dtype: 2, shape: [1], data: new Uint8Array(4) } })), 'RPC_MALFORMED');
      await rejects(call(x1, c, base({ op: StageOpKind.BEGIN, spanStart: 2 })), 'WRONG_SPAN');
      await rejects(call(x1, c, base({ op: StageOpKind.FORWARD, step: 7n })), 'WRONG_STEP');
      await call(x1, c, base({ op: StageOpKind.BEGIN, step: 7n }));
      await rejects(call(x1, c, base({ op: StageOpKind.FORWARD, step: 8n, input: f32([1, T, C]), targets: i32([1, T]) })), 'WRONG_STEP');
      await rejects(call(x1, c, base({ op: StageOpKind.APPLY, step: 7n, lr: 1e-3 })), 'WRONG_STEP');
      await rejects(call(x1, c, base({ op: StageOpKind.SUM_SQUARES, step: 7n })), 'WRONG_STEP');
      await rejects(call(x1, c, base({ op: StageOpKind.BACKWARD, step: 7n, microBatch: 0 })), 'WRONG_STEP');
      // another driver while x1 holds the lease (checked right after x1's last call: the lease lapses after
      // `leaseMs` without one, and the slow steps below, a raw frame and a wait for its penalty, come after)
      await rejects(call(x2, c, base({ chainId: 'other', op: StageOpKind.BEGIN, step: 9n })), 'RPC_BUSY');
      await call(x1, c, base({ op: StageOpKind.ABORT, step: 7n }));
      // a message larger than the method allows: our client refuses to send it; sent raw, the hop refuses it from
      // its length prefix (RPC_OVERSIZED, penalised) before reading the body
      await rejects(call(x1, c, base({ op: StageOpKind.FORWARD, step: 7n, input: f32([(70 << 20) / (C * 4), 1, C]) })), 'INVALID_ARGUMENT');
      const s = await x2.p2p.openStream(addr(c.net), x2.rpc.protocolOf(trainStage as never), { signal: AbortSignal.timeout(60_000) });
      s.send(frameHeader(FRAME_MESSAGE, trainStage.maxRequestBytes + 1));
      s.send(new Uint8Array(1000));
      await s.close().catch(() => {});
      let code: string | undefined;
      try {
        const f = await new FrameReader(s).next(1 << 20);
        if (f !== undefined && f.kind === FRAME_ERROR) code = RpcError.decode(f.body).code;
      } catch {
        code = 'reset';
      }
      assert.ok(code === 'RPC_OVERSIZED' || code === 'reset', `oversized frame answered ${code}`);
      await waitFor(() => c.net.scores.score(x2.peerId) < -20, { timeoutMs: 30_000, intervalMs: 50, what: 'the oversized frame to be penalised' });
      assert.ok(c.net.scores.score(x1.peerId) <= -80, `x1 was penalised (score ${c.net.scores.score(x1.peerId)})`);
      assert.ok((c.hop.server.refused.get('WRONG_STEP') ?? 0) >= 5);

      // x2 → the first stage: token ids outside the vocabulary, hidden states where ids belong, too many positions,
      // a micro-batch index past the limit
      const first = { spanStart: 0, spanEnd: 1 };
      await call(x2, a, base({ ...first, op: StageOpKind.BEGIN, step: 1n }));
      await rejects(call(x2, a, base({ ...first, op: StageOpKind.FORWARD, step: 1n, input: i32([1, T], cfg.vocab_size) })), 'BAD_STAGE_INPUT');
      await rejects(call(x2, a, base({ ...first, op: StageOpKind.FORWARD, step: 1n, input: f32([1, T, C]) })), 'BAD_STAGE_INPUT');
      await rejects(call(x2, a, base({ ...first, op: StageOpKind.FORWARD, step: 1n, input: i32([1, 64]) })), 'BAD_STAGE_INPUT');
      await rejects(call(x2, a, base({ ...first, op: StageOpKind.FORWARD, step: 1n, microBatch: 100_000, input: i32([1, T]) })), 'BAD_STAGE_INPUT');
      await call(x2, a, base({ ...first, op: StageOpKind.ABORT, step: 1n }));
      assert.ok(a.net.scores.score(x2.peerId) <= -60, `x2 was penalised (score ${a.net.scores.score(x2.peerId)})`);
      // both hops still answer
      await call(x2, c, base({ op: StageOpKind.INFO }));
    });

    it('after all that, the hop trains a chain again once the hostile lease lapses', async () => {
      await waitFor(() => c.hop.server.holder() === undefined, { timeoutMs: 180_000, intervalMs: 100, what: 'the hostile lease to lapse' });
      const driver = nodeChainDriver({ compute: a.compute, network: a.net, config: cfg, span: a.span, data: source(200), pipeline: { microBatches: 1, schedule: '1f1b', trainer: TRAINER }, candidates: () => [cand(b2), cand(c)], retryMs: 200 });
      const errors: string[] = [];
      driver.events.on('abandoned', (x) => errors.push(x.error));
      const r = await driver.innerSteps(1).catch((e: unknown) => {
        throw new Error(`${String(e)}; abandoned: ${errors.slice(0, 3).join(' | ')}`);
      });
      assert.equal(r.applied, 1);
      assert.ok(Number.isFinite(r.meanLoss));
    });
  });
});
