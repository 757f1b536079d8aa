/**
 * `npm run bench` section `nano_train` (JSON key `nano_train_tok_s`, discovered by scripts/bench.mjs through
 * `benchSections`): training tokens/s of the nano preset as `neuroshard train` runs it, that is the solo loop
 * (training/loop.ts) on the main thread driving the compute worker (native backend, all cores), batches of
 * 8 sequences × 128 tokens (NEUROLLM_BATCH; nano's context is 256) cut from the bundled genesis corpus, NeuroLLM's
 * AdamW and schedule. Unlike the `train` section (a fixed random batch, the PyTorch anchor's protocol) it counts
 * everything the command does per step: drawing the batch, moving it to the worker, the step itself.
 *
 * Protocol as the other sections: 2 warm-up steps, then the median of 3 repetitions of 5 steps.
 */
import { availableParallelism } from 'node:os';
import { BenchSkip, type BenchSection } from '../compute/bench.js';
import { ComputeClient, WorkerTrainStepper, batchSource } from '../compute/index.js';
import { openCorpus } from '../data/index.js';
import { NEUROLLM_BATCH, presetConfig } from '../model/index.js';
import { trainLoop } from '../training/index.js';
import { isNeuroShardError } from '../util/errors.js';
import { SOLO_NODE_ID, TINY_CONFIG } from './train.js';

export const nanoTrainSection: BenchSection = {
  name: 'nano_train',
  keys: ['nano_train_tok_s'],
  async run({ quick, log }) {
    const config = quick ? TINY_CONFIG : presetConfig('nano');
    const batchSize = NEUROLLM_BATCH.batchSize;
    const seqLen = Math.min(NEUROLLM_BATCH.seqLen, config.max_position_embeddings);
    const p = quick ? { warmup: 1, reps: 1, steps: 2 } : { warmup: 2, reps: 3, steps: 5 };
    let client: ComputeClient;
    try {
      client = await ComputeClient.start({ backend: quick ? 'auto' : 'native', threads: availableParallelism() });
    } catch (e) {
      if (isNeuroShardError(e, 'BACKEND_UNAVAILABLE')) throw new BenchSkip(e.message);
      throw e;
    }
    try {
      const corpus = await openCorpus(undefined);
      const data = batchSource(await corpus.trainStream({ nodeId: SOLO_NODE_ID, batchSize, seqLen, seed: 0 }));
      const total = p.warmup + p.reps * p.steps;
      const init = await client.run({ type: 'initModel', config, seed: 0, trainer: { decaySteps: total } });
      log(`engine: ${client.info?.description ?? '?'}`);
      log(`model: ${quick ? 'tiny' : 'nano'}, ${(init.paramCount / 1e6).toFixed(2)} M params, batch ${batchSize}×${seqLen} from ${corpus.location}`);
      const stepper = new WorkerTrainStepper(client);
      await trainLoop({ stepper, data, targetStep: p.warmup });
      const rates: number[] = [];
      for (let r = 0; r < p.reps; r++) {
        const res = await trainLoop({ stepper, data, targetStep: p.warmup + (r + 1) * p.steps });
        rates.push(res.tokensPerSecond);
        log(`nano train rep ${r}: ${res.tokensPerSecond.toFixed(0)} tok/s (loss ${res.lastLoss.toFixed(3)})`);
      }
      rates.sort((a, b) => a - b);
      return { nano_train_tok_s: Math.round(rates[Math.floor(rates.length / 2)]) };
    } finally {
      await client.close();
    }
  },
};

export const benchSections: BenchSection[] = [nanoTrainSection];
