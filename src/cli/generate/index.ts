/**
 * `neuroshard generate`: text from a checkpoint (src/node/generate.ts does the work). Prints the prompt and its
 * continuation, or with --json one object:
 *
 *   {"text": " the continuation", "tokens": [412, 9, …], "finish_reason": "length"}
 *
 * `tokens` are the new token ids (the prompt's are not included). Through a running node (no --checkpoint) the
 * object also has `route` (as first chosen), `routes` (`[{"from_token", "hops"}]`: every route that produced tokens,
 * from which token on) and `failovers`, as POST /api/generate answers them; without --json they go to stderr, one
 * line per route. Errors: {"error": {"code", "message"}} on stderr,
 * exit code 1.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKPOINTS_DIR, GENERATE_MAX_PROMPT_CHARS, GENERATE_MAX_STOP_CHARS, GENERATE_MAX_STOPS } from '../../node/model-limits.js';
import { loadOptions } from '../../node/options.js';
import { intFlag, numberFlag, stringFlag, stringListFlag, UsageError, type Command } from '../command.js';
import { withJsonErrors } from '../json-error.js';
import { ApiClient } from '../../api/client.js';
import type { RouteHop, UsedRoute } from '../../api/generate.js';
import { runningNodeClient } from '../local-endpoint.js';
import { spanText } from '../../util/span-text.js';
import { NeuroShardError } from '../../util/errors.js';

export const GENERATE_DEFAULTS = Object.freeze({ maxTokens: 64, temperature: 1, topK: 50, topP: 0.9, seed: 0 });

/** `abcdefgh[0:4] → 12345678[4:8]`: a route's hops by the last 8 characters of their peer ids. */
export function formatHops(hops: readonly RouteHop[]): string {
  return hops.map((h) => `${h.peerId.slice(-8)}[${spanText({ start: h.span[0], end: h.span[1] })}]`).join(' → ');
}

/**
 * What stderr says after a generation through a node: the token count and, per route that produced tokens, the token
 * indexes it produced (`tokens 0-9 through … ; tokens 10-31 through …`), then the failovers.
 */
export function formatRoutes(r: { tokens: readonly number[]; finishReason: string; route: readonly RouteHop[]; routes?: readonly UsedRoute[]; failovers: number }): string {
  const routes = r.routes ?? [{ fromToken: 0, hops: r.route }];
  const n = r.tokens.length;
  const through =
    routes.length === 1
      ? `through ${formatHops(routes[0]!.hops)}`
      : routes
          .map((u, i) => {
            const end = (routes[i + 1]?.fromToken ?? n) - 1;
            const which = u.fromToken > end ? `from token ${u.fromToken} (the end)` : u.fromToken === end ? `token ${u.fromToken}` : `tokens ${u.fromToken}-${end}`;
            return `${which} through ${formatHops(u.hops)}`;
          })
          .join('; ');
  return `${n} tokens (${r.finishReason}) ${through}${r.failovers > 0 ? `, ${r.failovers} failover(s)` : ''}`;
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'continue a prompt through the node running on the data dir, or from a checkpoint (--checkpoint DIR)',
  flags: {
    checkpoint: { type: 'string', value: 'DIR', description: 'a checkpoint directory, or a folder of them (its newest); default: the node running on the data dir (its model or a chain of peers), else <data-dir>/checkpoints' },
    prompt: { type: 'string', value: 'TEXT', description: 'the text to continue (required; encoded with BOS)' },
    'max-tokens': { type: 'string', value: 'N', description: `new tokens at most (default ${GENERATE_DEFAULTS.maxTokens}; the context also ends generation)` },
    temperature: { type: 'string', value: 'T', description: `sampling temperature; 0 is greedy (default ${GENERATE_DEFAULTS.temperature})` },
    'top-k': { type: 'string', value: 'K', description: `sample among the K most likely tokens; 0 keeps all (default ${GENERATE_DEFAULTS.topK})` },
    'top-p': { type: 'string', value: 'P', description: `nucleus: the smallest set of tokens with probability ≥ P, in (0, 1] (default ${GENERATE_DEFAULTS.topP})` },
    stop: { type: 'string', multiple: true, value: 'STR', description: `stop before this string (up to ${GENERATE_MAX_STOPS})` },
    seed: { type: 'string', value: 'S', description: `sampling seed (default ${GENERATE_DEFAULTS.seed})` },
    json: { type: 'boolean', description: 'print {"text", "tokens", "finish_reason"} (through a node also "route", "routes", "failovers")' },
  },
  async run(flags, _positionals, io) {
    const opts = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir'), logLevel: stringFlag(flags, 'log-level'), threads: stringFlag(flags, 'threads') } });
    const prompt = stringFlag(flags, 'prompt');
    if (prompt === undefined) throw new UsageError('--prompt is required');
    if (prompt.length > GENERATE_MAX_PROMPT_CHARS) throw new UsageError(`--prompt takes at most ${GENERATE_MAX_PROMPT_CHARS} characters`);
    const maxTokens = intFlag(flags, 'max-tokens', GENERATE_DEFAULTS.maxTokens, 1, 1 << 20);
    const temperature = numberFlag(flags, 'temperature', GENERATE_DEFAULTS.temperature, 0, 100);
    const topK = intFlag(flags, 'top-k', GENERATE_DEFAULTS.topK, 0, 1 << 24);
    const topP = numberFlag(flags, 'top-p', GENERATE_DEFAULTS.topP, 0, 1, { minOpen: true });
    const seed = intFlag(flags, 'seed', GENERATE_DEFAULTS.seed, 0, 0xffffffff);
    const stop = stringListFlag(flags, 'stop');
    if (stop.length > GENERATE_MAX_STOPS || stop.some((s) => s.length === 0 || s.length > GENERATE_MAX_STOP_CHARS)) {
      throw new UsageError(`--stop takes up to ${GENERATE_MAX_STOPS} non-empty strings of up to ${GENERATE_MAX_STOP_CHARS} characters`);
    }
    const given = stringFlag(flags, 'checkpoint');
    const checkpoint = given ?? join(opts.dataDir, CHECKPOINTS_DIR);
    // without --checkpoint, a node running on the data dir answers (POST /api/generate): its model or a chain of peers
    const node = given === undefined ? runningNodeClient(opts.dataDir) : undefined;
    if (node !== undefined) {
      return withJsonErrors(io, async () => {
        const client = new ApiClient({ port: node.opts.port, timeoutMs: 600_000 });
        const r = await client.generate({ prompt, maxTokens, temperature, topK, topP, seed, stop });
        if (flags.json === true) {
          const routes = (r.routes ?? [{ fromToken: 0, hops: r.route }]).map((u) => ({ from_token: u.fromToken, hops: u.hops }));
          io.stdout(JSON.stringify({ text: r.text, tokens: r.tokens, finish_reason: r.finishReason, route: r.route, routes, failovers: r.failovers }) + '\n');
        } else {
          io.stdout(prompt + r.text + '\n');
          io.stderr(formatRoutes(r) + '\n');
        }
        return 0;
      }, flags.json === true);
    }
    return withJsonErrors(io, async () => {
      // neither a node nor a checkpoint: say both, since README sends people here for "the node on the data dir"
      if (given === undefined && !existsSync(checkpoint)) {
        throw new NeuroShardError(
          'CHECKPOINT_MISSING',
          `no node is running on ${opts.dataDir} and it holds no checkpoint (${checkpoint} does not exist): start a node there (neuroshard start --data-dir ${opts.dataDir}) or pass --checkpoint DIR`,
          { fault: 'caller', meta: { dir: checkpoint } },
        );
      }
      const { generateText } = await import('../../node/generate.js'); // loaded only when the command runs
      const r = await generateText({ checkpoint, prompt, maxTokens, temperature, topK, topP, seed, stop, threads: opts.threads });
      if (flags.json === true) {
        io.stdout(JSON.stringify({ text: r.text, tokens: r.tokens, finish_reason: r.finishReason }) + '\n');
      } else {
        io.stdout(prompt + r.text + '\n');
        io.stderr(`${r.tokens.length} tokens (${r.finishReason}), ${r.decodeTokensPerSecond.toFixed(1)} tokens/s, from ${r.checkpoint}\n`);
      }
      return 0;
    }, flags.json === true);
  },
};
