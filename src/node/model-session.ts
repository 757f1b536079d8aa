/**
 * A whole model loaded into a compute worker from a checkpoint directory, for the one-shot model commands
 * (`neuroshard generate`, `neuroshard eval`).
 *
 * `--checkpoint DIR` may name:
 * - one of our checkpoints (checkpoint.json present): loaded and verified inside the worker (sizes, SHA-256, layer
 *   hashes), so the event loop never holds the weights;
 * - a Hugging Face Llama directory written by other tools (config.json + model.safetensors, F32/F16/BF16, tied or
 *   untied): read here (model/checkpoint.ts loadHfModel) and handed to the worker as one transferred buffer;
 * - a folder of checkpoints (`<data-dir>/checkpoints`): its newest complete one.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ComputeClient } from '../compute/index.js';
import { CHECKPOINT_FILES, latestCheckpoint, loadHfModel, type LlamaConfig } from '../model/index.js';
import { HF_TOKENIZER_FILE, HfTokenizer, ourTextTokenizer, type TextTokenizer } from '../model/tokenizer/hf.js';
import { TOKENIZER_FILE_NAME, Tokenizer } from '../model/tokenizer/index.js';
import { selectBackend } from '../tensor/index.js';
import { NeuroShardError } from '../util/errors.js';
import { spanText } from '../util/span-text.js';

/** The checkpoint the user named does not exist or holds nothing loadable. */
export class CheckpointNotFoundError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('CHECKPOINT_MISSING', message, { fault: 'caller', meta });
  }
}

/** The checkpoint has no tokenizer file, and text needs one. */
export class TokenizerMissingError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('TOKENIZER_MISSING', message, { fault: 'config', meta });
  }
}

/**
 * The directory to load for `spec`: itself when it is a checkpoint (ours or Hugging Face's), else its newest
 * `step-*` checkpoint. Fails with CheckpointNotFoundError naming what was looked for.
 */
export function resolveCheckpointDir(spec: string): string {
  if (spec.length === 0 || spec.length > 4096 || spec.includes('\0')) throw new CheckpointNotFoundError('the checkpoint path must be a non-empty path of at most 4096 characters');
  const dir = resolve(spec);
  if (!existsSync(dir)) throw new CheckpointNotFoundError(`no checkpoint at ${dir}: the directory does not exist`, { dir });
  if (!statSync(dir).isDirectory()) throw new CheckpointNotFoundError(`${dir} is not a directory (a checkpoint is a directory)`, { dir });
  if (existsSync(join(dir, CHECKPOINT_FILES.manifest)) || existsSync(join(dir, CHECKPOINT_FILES.config))) return dir;
  const latest = latestCheckpoint(dir);
  if (latest !== null) return latest;
  throw new CheckpointNotFoundError(`${dir} holds no checkpoint: neither ${CHECKPOINT_FILES.manifest} nor ${CHECKPOINT_FILES.config}, nor complete step-* checkpoints`, { dir });
}

export interface ModelSession {
  client: ComputeClient;
  config: LlamaConfig;
  /** The directory actually loaded. */
  dir: string;
  format: 'neuroshard' | 'huggingface';
  /** Training step of our checkpoints; null for foreign ones. */
  step: number | null;
  /** The tokenizer file that goes with the model (ours, or a Hugging Face tokenizer.json), or null when there is none. */
  tokenizerPath: string | null;
  /**
   * Loads the tokenizer (TokenizerMissingError when there is none; checked against the model's vocabulary). A
   * Hugging Face directory's tokenizer.json (with its tokenizer_config.json) is used before our own file.
   */
  tokenizer(): TextTokenizer;
  close(): Promise<void>;
}

export interface OpenModelOptions {
  threads?: number;
}

/** Loads `spec` (see resolveCheckpointDir) into a fresh compute worker. */
export async function openModelSession(spec: string, opts: OpenModelOptions = {}): Promise<ModelSession> {
  const dir = resolveCheckpointDir(spec);
  const ours = existsSync(join(dir, CHECKPOINT_FILES.manifest));
  // Foreign weights are read before the worker starts: a bad directory fails fast and starts nothing.
  let foreign: { config: LlamaConfig; params: Float32Array } | undefined;
  if (!ours) {
    const { backend } = await selectBackend({ backend: 'reference' });
    const { config, model } = loadHfModel(dir, { backend });
    foreign = { config, params: model.params };
  }
  const client = await ComputeClient.start(opts.threads === undefined ? {} : { threads: opts.threads });
  try {
    let config: LlamaConfig;
    let step: number | null = null;
    let tokenizerPath: string | null = null;
    if (foreign === undefined) {
      const r = await client.run({ type: 'loadCheckpoint', dir });
      if (r.span.start !== 0 || r.span.end !== r.config.num_hidden_layers) {
        throw new NeuroShardError('CHECKPOINT_PARTIAL', `${dir} holds layers ${spanText(r.span)} of ${r.config.num_hidden_layers}; generation and evaluation need the whole model`, {
          fault: 'caller',
          meta: { dir, span: r.span },
        });
      }
      config = r.config;
      step = r.step;
      tokenizerPath = r.tokenizerPath;
    } else {
      await client.run({ type: 'initModel', config: foreign.config, params: foreign.params });
      config = foreign.config;
      const hf = join(dir, HF_TOKENIZER_FILE);
      const t = join(dir, TOKENIZER_FILE_NAME);
      tokenizerPath = existsSync(hf) ? hf : existsSync(t) ? t : null;
    }
    let tok: TextTokenizer | undefined;
    return {
      client,
      config,
      dir,
      format: ours ? 'neuroshard' : 'huggingface',
      step,
      tokenizerPath,
      tokenizer() {
        if (tok !== undefined) return tok;
        if (tokenizerPath === null) {
          throw new TokenizerMissingError(`${dir} has no ${TOKENIZER_FILE_NAME}: text cannot be encoded for this model (pass token ids instead)`, { dir });
        }
        const t = basename(tokenizerPath) === HF_TOKENIZER_FILE ? HfTokenizer.load(dirname(tokenizerPath)) : ourTextTokenizer(Tokenizer.load(tokenizerPath));
        if (t.vocabSize > config.vocab_size) {
          throw new TokenizerMissingError(`${tokenizerPath} has ${t.vocabSize} ids, more than the model's vocab_size ${config.vocab_size}`, { file: tokenizerPath });
        }
        tok = t;
        return t;
      },
      close: () => client.close(),
    };
  } catch (e) {
    await client.close();
    throw e;
  }
}
