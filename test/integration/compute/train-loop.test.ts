/**
 * The solo training loop end to end: data from the data package's BatchStream, steps in the compute worker,
 * checkpoints written by the worker with the stream's position, then a run stopped early and resumed in a fresh
 * worker from its checkpoint: the losses after the resume are bitwise equal to an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ComputeClient, WorkerTrainStepper, batchSource, toTrainBatch } from '../../../src/compute/index.js';
import { BatchStream, type DataPosition, type ShardTokens } from '../../../src/data/batcher.js';
import { makeConfig } from '../../../src/model/config.js';
import { trainLoop, type CheckpointRequest } from '../../../src/training/index.js';
import { Rng } from '../../../src/util/rng.js';
import { tempDir } from '../../utils/paths.js';

const config = makeConfig({
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 64,
  vocab_size: 64,
  max_position_embeddings: 32,
});
const trainer = { lr: 1e-2, warmupSteps: 2, decaySteps: 12 };
const streamOpts = { batchSize: 2, seqLen: 8, seed: 42 };

function shards(): ShardTokens[] {
  const rng = new Rng(9);
  return [0, 1, 2].map((id) => ({ id, tokens: new Uint16Array(400).map(() => rng.int(64)) }));
}

async function run(opts: { client: ComputeClient; target: number; position?: DataPosition; stopAt?: number; root?: string }) {
  const stream = new BatchStream(shards(), { ...streamOpts, ...(opts.position === undefined ? {} : { position: opts.position }) });
  const losses: number[] = [];
  const ckpts: (CheckpointRequest & { dir: string })[] = [];
  const ac = new AbortController();
  const evalStream = new BatchStream(shards(), { ...streamOpts, seed: 7 });
  const evalSet = [toTrainBatch(evalStream.next()), toTrainBatch(evalStream.next())];
  const r = await trainLoop({
    stepper: new WorkerTrainStepper(opts.client),
    data: batchSource(stream),
    targetStep: opts.target,
    evalEvery: 4,
    evalBatches: () => evalSet,
    checkpointEvery: 4,
    signal: ac.signal,
    onStep: (s) => {
      losses.push(s.loss);
      if (s.step === opts.stopAt) ac.abort();
    },
    onCheckpoint: async (c) => {
      if (opts.root === undefined) return;
      const saved = await opts.client.run({ type: 'saveCheckpoint', root: opts.root, trainingState: { dataPosition: c.dataPosition } });
      ckpts.push({ ...c, dir: saved.dir });
    },
  });
  return { r, losses, ckpts };
}

describe('compute/trainLoop through the worker', () => {
  it('a run stopped early resumes from its checkpoint with bitwise-equal losses', async () => {
    const tmp = tempDir('neuroshard-loop-');
    const a = await ComputeClient.start({ threads: 1 });
    try {
      await a.run({ type: 'initModel', config, seed: 3, trainer });
      const full = await run({ client: a, target: 10 });
      assert.equal(full.r.stoppedBy, 'target');
      assert.ok(full.r.tokensPerSecond > 0, 'throughput counts the batches the worker took');
      assert.equal(full.losses.length, 10);
      assert.ok(full.r.lastValLoss !== undefined && Number.isFinite(full.r.lastValLoss));

      await a.run({ type: 'initModel', config, seed: 3, trainer });
      const first = await run({ client: a, target: 10, stopAt: 6, root: tmp.dir });
      assert.equal(first.r.stoppedBy, 'signal');
      assert.deepEqual(
        first.ckpts.map((c) => [c.step, c.reason]),
        [
          [4, 'periodic'],
          [6, 'stopped'],
        ],
      );
      for (let i = 0; i < 6; i++) assert.ok(Object.is(first.losses[i], full.losses[i]), `step ${i + 1} before the stop`);
    } finally {
      await a.close();
    }

    // a fresh worker, as after a restart of the process
    const b = await ComputeClient.start({ threads: 1 });
    try {
      const last = join(tmp.dir, readdirSync(tmp.dir).filter((d) => d.startsWith('step-')).sort().pop()!);
      const loaded = await b.run({ type: 'loadCheckpoint', dir: last, trainer });
      assert.equal(loaded.step, 6);
      const position = (loaded.trainingState as { dataPosition: DataPosition }).dataPosition;
      const rest = await run({ client: b, target: 10, position });
      assert.equal(rest.r.step, 10);
      assert.equal(rest.losses.length, 4);
      // the reference losses again in this worker (same seed, same data): steps 7..10 of an uninterrupted run
      await b.run({ type: 'initModel', config, seed: 3, trainer });
      const full = await run({ client: b, target: 10 });
      for (let i = 0; i < 4; i++) assert.ok(Object.is(rest.losses[i], full.losses[6 + i]), `step ${7 + i}: ${rest.losses[i]} vs ${full.losses[6 + i]}`);
    } finally {
      await b.close();
      tmp.cleanup();
    }
  });
});
