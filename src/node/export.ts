/**
 * `neuroshard export`: a checkpoint (ours, or a Hugging Face Llama directory, tied or untied) written as a GGUF file
 * of llama.cpp's `llama` architecture with the tokenizer inside (model/gguf-llama.ts says how). The weights are
 * read on this thread with the reference backend (nothing is computed, only copied, permuted and encoded), and the
 * file is written atomically: a temp file beside FILE, renamed over it when complete.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadAnyCheckpoint } from '../model/index.js';
import { writeGguf } from '../model/gguf.js';
import { type GgufDtype, GGUF_DTYPES, ggufTensorType, llamaGguf } from '../model/gguf-llama.js';
import { TOKENIZER_FILE_NAME, Tokenizer } from '../model/tokenizer/index.js';
import { createReferenceBackend } from '../tensor/index.js';
import { InvalidArgumentError } from '../util/errors.js';
import { resolveCheckpointDir, TokenizerMissingError } from './model-session.js';
import { spanText } from '../util/span-text.js';

export interface ExportGgufOptions {
  checkpoint: string;
  out: string;
  dtype: GgufDtype;
  /** A tokenizer file to use instead of the checkpoint's own. */
  tokenizer?: string;
  /** general.name (default: the checkpoint directory's name). */
  name?: string;
  /** Called with one plain line per stage. */
  progress?: (line: string) => void;
  /** Called as the file is written: bytes written so far and the file's size (a progress bar). */
  onBytes?: (written: number, total: number) => void;
}

export interface ExportGgufResult {
  out: string;
  bytes: number;
  sha256: string;
  dtype: GgufDtype;
  checkpoint: string;
  format: 'neuroshard' | 'huggingface';
  /** Tensors written per ggml type. */
  types: Record<string, number>;
  tensors: number;
}

export async function exportGguf(o: ExportGgufOptions): Promise<ExportGgufResult> {
  if (!GGUF_DTYPES.includes(o.dtype)) throw new InvalidArgumentError(`--dtype must be one of ${GGUF_DTYPES.join(', ')}`);
  const out = resolve(o.out);
  if (!existsSync(dirname(out)) || !statSync(dirname(out)).isDirectory()) throw new InvalidArgumentError(`cannot write ${out}: ${dirname(out)} is not a directory`, { out });
  if (existsSync(out) && statSync(out).isDirectory()) throw new InvalidArgumentError(`cannot write ${out}: it is a directory`, { out });
  const dir = resolveCheckpointDir(o.checkpoint);
  const say = o.progress ?? (() => {});
  say(`reading ${dir}`);
  const { config, model, verified } = loadAnyCheckpoint(dir, { backend: createReferenceBackend() });
  if (model.span.start !== 0 || model.span.end !== config.num_hidden_layers) {
    throw new InvalidArgumentError(`${dir} holds layers ${spanText(model.span)} of ${config.num_hidden_layers}; a GGUF file needs the whole model`, { dir });
  }
  const tokPath = o.tokenizer !== undefined ? resolve(o.tokenizer) : (verified?.tokenizerPath ?? (existsSync(join(dir, TOKENIZER_FILE_NAME)) ? join(dir, TOKENIZER_FILE_NAME) : null));
  if (tokPath === null) {
    throw new TokenizerMissingError(`${dir} has no ${TOKENIZER_FILE_NAME}; a GGUF file carries its tokenizer, so pass --tokenizer FILE (a Hugging Face tokenizer.json is not converted)`, { dir });
  }
  const tokenizer = Tokenizer.load(tokPath);
  const file = llamaGguf({ config, layout: model.layout, params: model.params, tokenizer, dtype: o.dtype, name: o.name ?? basename(dir) });
  const types: Record<string, number> = {};
  for (const e of model.layout.entries) {
    const t = ggufTensorType(o.dtype, e.shape);
    types[t] = (types[t] ?? 0) + 1;
  }
  say(`writing ${out} (${o.dtype}: ${Object.entries(types).map(([t, n]) => `${n} ${t}`).join(', ')})`);
  const { bytes, sha256 } = writeGguf(out, file, o.onBytes);
  return { out, bytes, sha256, dtype: o.dtype, checkpoint: dir, format: verified === null ? 'huggingface' : 'neuroshard', types, tensors: file.tensors.length };
}
