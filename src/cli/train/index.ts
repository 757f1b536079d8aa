/**
 * `neuroshard train`: solo training of NeuroLLM on a genesis corpus (src/node/train.ts does the work). Progress on
 * stderr; the last line on stdout is the result as JSON:
 *
 *   {"step": 2000, "train_loss": 4.61, "val_loss": 4.83, "tokens_per_s": 6120.5, "checkpoint": "/…/step-0000002000"}
 *
 * Ctrl-C or SIGTERM stops after the step in flight, saves a checkpoint and exits 0; a rerun continues to --steps.
 */
import { loadOptions } from '../../node/options.js';
import { SaveProgress, TrainProgress } from '../../node/progress.js';
import { progressMode } from '../../util/progress.js';
import { createLogger } from '../../util/logger.js';
import { intFlag, stringFlag, UsageError, type Command } from '../command.js';
import { withJsonErrors } from '../json-error.js';

export const TRAIN_DEFAULTS = Object.freeze({ steps: 2000, evalEvery: 250, checkpointEvery: 500 });

export const trainCommand: Command = {
  name: 'train',
  summary: 'train NeuroLLM on the genesis corpus on this machine (resumes from <data-dir>/checkpoints)',
  flags: {
    preset: { type: 'string', value: 'NAME', description: "model shape: nano (default), a ladder rung such as 6x384, or tiny (tests)" },
    corpus: { type: 'string', value: 'DIR|URL', description: 'genesis manifest: a folder, manifest file or http(s) URL (default: the bundled corpus)' },
    steps: { type: 'string', value: 'N', description: `target step: a rerun resumes from the newest checkpoint and continues to N (default ${TRAIN_DEFAULTS.steps})` },
    'eval-every': { type: 'string', value: 'K', description: `validation loss every K steps; 0 turns validation off (default ${TRAIN_DEFAULTS.evalEvery})` },
    'checkpoint-every': { type: 'string', value: 'K', description: `checkpoint every K steps; 0 only at the end and on Ctrl-C (default ${TRAIN_DEFAULTS.checkpointEvery})` },
    seed: { type: 'string', value: 'S', description: 'seed of the initial weights and the data order (default 0)' },
    'batch-size': { type: 'string', value: 'B', description: 'sequences per step (default 8)' },
    'seq-len': { type: 'string', value: 'T', description: "tokens per sequence (default 128, at most the model's context)" },
    'val-batches': { type: 'string', value: 'N', description: 'validate on at most N batches (default: the whole held-out shard)' },
    json: { type: 'boolean', description: 'stdout is always one JSON document (training progress goes to stderr); --json also silences the checkpoint-save progress' },
  },
  async run(flags, _positionals, io) {
    const opts = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir'), logLevel: stringFlag(flags, 'log-level'), threads: stringFlag(flags, 'threads') } });
    const targetStep = intFlag(flags, 'steps', TRAIN_DEFAULTS.steps, 0, 1_000_000_000);
    const evalEvery = intFlag(flags, 'eval-every', TRAIN_DEFAULTS.evalEvery, 0, 1_000_000_000);
    const checkpointEvery = intFlag(flags, 'checkpoint-every', TRAIN_DEFAULTS.checkpointEvery, 0, 1_000_000_000);
    const seed = flags.seed === undefined ? undefined : intFlag(flags, 'seed', 0, 0, 0xffffffff);
    const batchSize = flags['batch-size'] === undefined ? undefined : intFlag(flags, 'batch-size', 8, 1, 1024);
    const seqLen = flags['seq-len'] === undefined ? undefined : intFlag(flags, 'seq-len', 128, 1, 1 << 20);
    const valBatches = flags['val-batches'] === undefined ? undefined : intFlag(flags, 'val-batches', 1, 1, 1_000_000);
    const preset = stringFlag(flags, 'preset');
    if (preset !== undefined && !/^[a-z0-9]{1,32}$/.test(preset)) throw new UsageError('--preset must be a preset name such as nano');
    const corpus = stringFlag(flags, 'corpus');
    if (corpus !== undefined && (corpus.length === 0 || corpus.length > 4096)) throw new UsageError('--corpus must be a folder, manifest file or URL of at most 4096 characters');

    const log = createLogger({ level: opts.logLevel, module: 'neuroshard' });
    return withJsonErrors(io, async () => {
      const { trainSolo } = await import('../../node/train.js'); // loaded only when the command runs
      let progress: TrainProgress | undefined;
      // checkpoint saves: a bar on a terminal, plain lines otherwise, nothing under --json
      const saves = new SaveProgress({ mode: progressMode(flags.json === true, process.stderr.isTTY === true), write: io.stderr });
      const r = await trainSolo({
        dataDir: opts.dataDir,
        threads: opts.threads,
        targetStep,
        evalEvery,
        checkpointEvery,
        ...(preset === undefined ? {} : { preset }),
        ...(corpus === undefined ? {} : { corpus }),
        ...(seed === undefined ? {} : { seed }),
        ...(batchSize === undefined ? {} : { batchSize }),
        ...(seqLen === undefined ? {} : { seqLen }),
        ...(valBatches === undefined ? {} : { valBatches }),
        signal: io.signal,
        logger: log,
        onEvent: (e) => {
          switch (e.type) {
            case 'start': {
              const c = e.config;
              io.stderr(
                `${e.resumedFrom === null ? 'training' : `resuming from ${e.resumedFrom}:`} ${c.num_hidden_layers} layers × ${c.hidden_size} ` +
                  `(${(e.paramCount / 1e6).toFixed(2)} M parameters), batch ${e.batchSize}×${e.seqLen}, step ${e.step} → ${e.targetStep}\n` +
                  `corpus ${e.corpus}; unigram baseline ${e.unigramBaseline.toFixed(3)} nats/token; ${e.valTokens} validation tokens; ${e.backend}\n`,
              );
              progress = new TrainProgress({ write: io.stderr, tty: process.stderr.isTTY === true, startStep: e.step, targetStep: e.targetStep });
              break;
            }
            case 'step':
              progress?.onStep(e);
              if (!e.applied) progress?.line(`step ${e.step} skipped: not finite (${e.nonFinite.slice(0, 3).join(', ')}); weights unchanged`);
              break;
            case 'eval':
              progress?.onEval(e);
              break;
            case 'checkpoint:progress':
              saves.onProgress(e);
              break;
            case 'checkpoint':
              saves.saved();
              progress?.onCheckpoint(e);
              break;
          }
        },
      }).finally(() => saves.abandon()); // a failed save ends its bar's line
      progress?.done();
      const how = r.stoppedBy === 'signal' ? `stopped at step ${r.step}; rerun the same command to continue to ${targetStep}` : `reached step ${r.step}`;
      const rate = r.tokensPerSecond > 0 ? `, ${Math.round(r.tokensPerSecond)} tokens/s` : '';
      io.stderr(`${how}${rate}; checkpoint ${r.checkpoint ?? '(none)'}${r.valLoss === null || r.unigramBaseline === null ? '' : `; val loss ${r.valLoss.toFixed(4)} vs unigram ${r.unigramBaseline.toFixed(4)}`}\n`);
      io.stdout(
        JSON.stringify({
          step: r.step,
          train_loss: r.trainLoss,
          val_loss: r.valLoss,
          tokens_per_s: Math.round(r.tokensPerSecond * 10) / 10,
          checkpoint: r.checkpoint,
        }) + '\n',
      );
      return 0;
    }, flags.json === true);
  },
};
