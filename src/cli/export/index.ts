/**
 * `neuroshard export --checkpoint DIR --format gguf --out FILE [--dtype f32|f16|q8_0]`: a checkpoint as a file
 * other tools open (src/node/export.ts does the work). GGUF is the only format today: llama.cpp's `llama`
 * architecture with the tokenizer inside, loadable by llama.cpp and the tools built on it. With --json one object:
 *
 *   {"out": "/abs/model.gguf", "format": "gguf", "dtype": "q8_0", "bytes": 5734400, "sha256": "…", "tensors": 39,
 *    "types": {"F32": 9, "Q8_0": 26, "F16": 4}}
 *
 * Errors: {"error": {"code", "message"}} on stderr, exit code 1; bad usage exit code 2.
 */
import { join } from 'node:path';
import { CHECKPOINTS_DIR } from '../../node/model-limits.js';
import { loadOptions } from '../../node/options.js';
import { stringFlag, UsageError, type Command } from '../command.js';
import { withJsonErrors } from '../json-error.js';
import { progressMode, ProgressReporter } from '../../util/progress.js';

const FORMATS = ['gguf'] as const;
const DTYPES = ['f32', 'f16', 'q8_0'] as const;
/** Longest path or name accepted on the command line. */
const MAX_ARG_CHARS = 4096;

export const exportCommand: Command = {
  name: 'export',
  summary: 'write a checkpoint as a file other tools load (GGUF for llama.cpp)',
  flags: {
    checkpoint: { type: 'string', value: 'DIR', description: 'a checkpoint directory (ours or a Hugging Face Llama), or a folder of them (its newest); default <data-dir>/checkpoints' },
    format: { type: 'string', value: 'FMT', description: 'output format: gguf (default gguf)' },
    out: { type: 'string', value: 'FILE', description: 'the file to write (required; replaced atomically)' },
    dtype: { type: 'string', value: 'T', description: 'f32 | f16 | q8_0: weight type; norms stay f32 (default f32)' },
    tokenizer: { type: 'string', value: 'FILE', description: "a neuroshard-tokenizer.json to include (default: the checkpoint's own)" },
    name: { type: 'string', value: 'NAME', description: 'general.name in the file (default: the checkpoint directory name)' },
    json: { type: 'boolean', description: 'print {"out", "format", "dtype", "bytes", "sha256", "tensors", "types"}' },
  },
  async run(flags, _positionals, io) {
    const opts = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir'), logLevel: stringFlag(flags, 'log-level'), threads: stringFlag(flags, 'threads') } });
    const format = stringFlag(flags, 'format') ?? 'gguf';
    if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}`);
    const dtype = stringFlag(flags, 'dtype') ?? 'f32';
    if (!(DTYPES as readonly string[]).includes(dtype)) throw new UsageError(`--dtype must be one of ${DTYPES.join(', ')}`);
    const out = stringFlag(flags, 'out');
    if (out === undefined || out.length === 0) throw new UsageError('--out FILE is required');
    const tokenizer = stringFlag(flags, 'tokenizer');
    const name = stringFlag(flags, 'name');
    for (const [k, v] of [['out', out], ['tokenizer', tokenizer], ['name', name]] as const) {
      if (v !== undefined && (v.length > MAX_ARG_CHARS || v.includes('\0'))) throw new UsageError(`--${k} takes at most ${MAX_ARG_CHARS} characters`);
    }
    const checkpoint = stringFlag(flags, 'checkpoint') ?? join(opts.dataDir, CHECKPOINTS_DIR);
    const json = flags.json === true;
    return withJsonErrors(io, async () => {
      const { exportGguf } = await import('../../node/export.js'); // loaded only when the command runs
      // the file's bytes as they are written: a bar on a terminal, plain lines otherwise, nothing under --json
      let bar: ProgressReporter | undefined;
      const mode = progressMode(json, process.stderr.isTTY === true);
      let r;
      try {
        r = await exportGguf({
          checkpoint,
          out,
          dtype: dtype as (typeof DTYPES)[number],
          ...(tokenizer === undefined ? {} : { tokenizer }),
          ...(name === undefined ? {} : { name }),
          progress: json ? undefined : (line) => io.stderr(line + '\n'),
          onBytes: (written, total) => {
            bar ??= new ProgressReporter({ mode, write: io.stderr, label: 'export', total, unit: 'bytes' });
            bar.update(written, total);
          },
        });
        bar?.finish();
      } catch (e) {
        bar?.abandon();
        throw e;
      }
      if (json) {
        io.stdout(JSON.stringify({ out: r.out, format, dtype: r.dtype, bytes: r.bytes, sha256: r.sha256, tensors: r.tensors, types: r.types }) + '\n');
      } else {
        io.stdout(`${r.out}: GGUF ${r.dtype}, ${r.tensors} tensors, ${(r.bytes / 1048576).toFixed(1)} MiB, sha256 ${r.sha256} (from ${r.checkpoint})\n`);
      }
      return 0;
    }, flags.json === true);
  },
};
