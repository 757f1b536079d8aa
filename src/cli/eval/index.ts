/**
 * `neuroshard eval`: mean next-token cross-entropy (nats) and perplexity of a checkpoint on a text file or on
 * token ids (src/node/eval.ts does the work). With --json one object:
 *
 *   {"loss": 4.8123, "perplexity": 123.0, "tokens": 511}
 *
 * where `tokens` counts the predicted positions. Errors: {"error": {"code", "message"}} on stderr, exit code 1.
 */
import { join } from 'node:path';
import type { EvalInput } from '../../node/eval.js';
import { CHECKPOINTS_DIR, EVAL_MAX_IDS, EVAL_MAX_TEXT_BYTES } from '../../node/model-limits.js';
import { loadOptions } from '../../node/options.js';
import { stringFlag, UsageError, type Command } from '../command.js';
import { withJsonErrors } from '../json-error.js';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'score a checkpoint on text or token ids: loss (nats/token) and perplexity',
  flags: {
    checkpoint: { type: 'string', value: 'DIR', description: 'a checkpoint directory, or a folder of them (its newest); default <data-dir>/checkpoints' },
    text: { type: 'string', value: 'FILE', description:  `a UTF-8 text file (at most ${EVAL_MAX_TEXT_BYTES >> 20} MiB), encoded with BOS and without EOS by the checkpoint's tokenizer` },
    ids: { type: 'string', value: '1,2,3', description: `token ids, used verbatim (no tokenizer needed; at most ${EVAL_MAX_IDS})` },
    json: { type: 'boolean', description: 'print {"loss", "perplexity", "tokens"}' },
  },
  async run(flags, _positionals, io) {
    const opts = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir'), logLevel: stringFlag(flags, 'log-level'), threads: stringFlag(flags, 'threads') } });
    const text = stringFlag(flags, 'text');
    const ids = stringFlag(flags, 'ids');
    if ((text === undefined) === (ids === undefined)) throw new UsageError('give exactly one of --text FILE and --ids 1,2,3');
    const checkpoint = stringFlag(flags, 'checkpoint') ?? join(opts.dataDir, CHECKPOINTS_DIR);
    return withJsonErrors(io, async () => {
      const { evaluateCheckpoint, parseIds } = await import('../../node/eval.js'); // loaded only when the command runs
      // --ids content errors (not numbers, too many, out of range) are runtime errors with a JSON report
      const input: EvalInput = text !== undefined ? { textFile: text } : { ids: parseIds(ids!) };
      const r = await evaluateCheckpoint({ checkpoint, input, threads: opts.threads });
      if (flags.json === true) {
        io.stdout(JSON.stringify({ loss: r.loss, perplexity: r.perplexity, tokens: r.tokens }) + '\n');
      } else {
        io.stdout(`loss ${r.loss.toFixed(4)} nats/token, perplexity ${r.perplexity.toFixed(2)}, over ${r.tokens} predicted tokens (${r.windows} window${r.windows === 1 ? '' : 's'}) of ${r.checkpoint}\n`);
      }
      return 0;
    }, flags.json === true);
  },
};
