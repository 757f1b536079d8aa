/**
 * `neuroshard chat`: an interactive prompt through the local node's POST /api/generate, the reply streamed token by
 * token. The conversation carries over: each turn sends the transcript so far (the model is a plain language model,
 * so the transcript is the context it continues), cut to its last `--context-chars` characters; `/reset` starts a
 * new conversation, `/exit` or Ctrl-D leaves. Input lines are kept in `<data-dir>/chat_history` (arrow keys recall
 * them; 0600, last 500 lines).
 *
 * Without a terminal on stdin each input line is one turn; `--prompt TEXT` runs a single turn. `--json` prints one
 * JSON document at the end, {"turns": [{"prompt", "reply", "tokens", "finish_reason"}]}, instead of streaming.
 * Ctrl-C during a reply stops it and ends the chat with exit code 0; that turn keeps the text streamed so far, with
 * `"finish_reason": "interrupted"`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { NodeUnreachableError } from '../../api/client.js';
import { GenerateStreamError, streamGenerate, type GenerateDone } from '../../api/generate-client.js';
import { loadOptions } from '../../node/options.js';
import { NeuroShardError } from '../../util/errors.js';
import { intFlag, numberFlag, stringFlag, UsageError, type Command, type CommandIO } from '../command.js';
import { LOCAL_ENDPOINT_FLAGS, resolveApiPort } from '../local-endpoint.js';

const HISTORY_FILE = 'chat_history';
const HISTORY_LINES = 500;

export class GenerateFailedError extends NeuroShardError {
  constructor(code: string, message: string) {
    super('GENERATE_FAILED', `${code}: ${message}`, { fault: 'local', meta: { code } });
  }
}

interface Turn {
  prompt: string;
  reply: string;
  tokens: number;
  finish_reason: string;
}

export const chatCommand: Command = {
  name: 'chat',
  summary: 'chat with the model through the local node, the reply streamed token by token',
  flags: {
    prompt: { type: 'string', value: 'TEXT', description: 'one turn with this prompt, then exit' },
    'max-tokens': { type: 'string', value: 'N', description: 'new tokens per reply (default 128)' },
    temperature: { type: 'string', value: 'T', description: 'sampling temperature, 0 = greedy (default 0.8)' },
    'top-k': { type: 'string', value: 'K', description: 'sample among the K likeliest tokens, 0 = all (default 50)' },
    'top-p': { type: 'string', value: 'P', description: 'nucleus sampling mass in (0, 1] (default 0.9)' },
    seed: { type: 'string', value: 'S', description: 'sampling seed (default 0)' },
    'context-chars': { type: 'string', value: 'N', description: 'characters of the conversation sent as context (default 2000)' },
    'api-port': LOCAL_ENDPOINT_FLAGS['api-port']!,
    json: { type: 'boolean', description: 'print {"turns": [...]} at the end instead of streaming' },
  },
  async run(flags, positionals, io) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}; use --prompt TEXT`);
    const sampling = {
      max_tokens: intFlag(flags, 'max-tokens', 128, 1, 1 << 20),
      temperature: numberFlag(flags, 'temperature', 0.8, 0, 100),
      top_k: intFlag(flags, 'top-k', 50, 0, 1 << 24),
      top_p: numberFlag(flags, 'top-p', 0.9, 0, 1, { minOpen: true }),
      seed: intFlag(flags, 'seed', 0, 0, 0xffffffff),
    };
    const contextChars = intFlag(flags, 'context-chars', 2000, 0, 64 * 1024);
    const json = flags.json === true;
    const base = `http://127.0.0.1:${resolveApiPort(flags)}`;
    const { dataDir } = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir') } });
    const turns: Turn[] = [];
    let transcript = '';

    const turn = async (input: string): Promise<void> => {
      const prompt = (transcript === '' ? input : `${transcript}\n${input}`).slice(-Math.max(contextChars, input.length));
      const ac = new AbortController();
      const onAbort = (): void => ac.abort();
      io.signal.addEventListener('abort', onAbort, { once: true });
      let done: GenerateDone;
      let partial = '';
      let streamed = 0;
      try {
        done = await streamGenerate(base, { prompt, ...sampling }, (t) => ((partial += t), streamed++, json ? undefined : io.stdout(t)), ac.signal);
      } catch (e) {
        // Ctrl-C (or SIGTERM) during a reply ends the chat cleanly: what streamed so far is the turn's reply
        if (io.signal.aborted) {
          if (!json) io.stdout('\n');
          turns.push({ prompt: input, reply: partial, tokens: streamed, finish_reason: 'interrupted' });
          return;
        }
        if (e instanceof GenerateStreamError) throw new GenerateFailedError(e.code, e.message);
        throw new NodeUnreachableError(`no node answers at ${base} (is it running? is --api-port right?): ${(e as Error).message}`, { url: base });
      } finally {
        io.signal.removeEventListener('abort', onAbort);
      }
      if (!json) io.stdout('\n');
      transcript = `${prompt}${done.text}`;
      turns.push({ prompt: input, reply: done.text, tokens: done.tokens.length, finish_reason: done.finish_reason });
    };

    const single = stringFlag(flags, 'prompt');
    if (single !== undefined) {
      await turn(single);
    } else {
      await repl(io, join(dataDir, HISTORY_FILE), json, async (line) => {
        if (io.signal.aborted) return;
        if (line === '/reset') {
          transcript = '';
          if (!json) io.stderr('(new conversation)\n');
          return;
        }
        await turn(line);
      });
    }
    if (json) io.stdout(JSON.stringify({ turns }) + '\n');
    return 0;
  },
};

/** Reads lines (a prompt with history on a terminal) and runs each; ends on /exit, EOF or Ctrl-C. */
async function repl(io: CommandIO, historyPath: string, quiet: boolean, onLine: (line: string) => Promise<void>): Promise<void> {
  const tty = process.stdin.isTTY === true;
  const history = tty ? loadHistory(historyPath) : [];
  const rl = createInterface({ input: process.stdin, output: tty ? process.stderr : undefined, terminal: tty, history, historySize: HISTORY_LINES });
  const closed = new Promise<void>((resolve) => rl.once('close', resolve));
  io.signal.addEventListener('abort', () => rl.close(), { once: true });
  if (tty && !quiet) io.stderr('chat with the node; /reset starts over, /exit or Ctrl-D leaves\n');
  const prompt = (): void => {
    if (tty) rl.prompt();
  };
  rl.setPrompt('> ');
  prompt();
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '/exit' || line === '/quit') break;
      if (line !== '') await onLine(line);
      prompt();
    }
  } finally {
    rl.close();
    await closed;
    if (tty) saveHistory(historyPath, (rl as unknown as { history: string[] }).history ?? []);
  }
}

function loadHistory(path: string): string[] {
  try {
    if (!existsSync(path)) return [];
    // readline keeps the newest first
    return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').slice(-HISTORY_LINES).reverse();
  } catch {
    return [];
  }
}

function saveHistory(path: string, newestFirst: string[]): void {
  try {
    writeFileSync(path, newestFirst.slice(0, HISTORY_LINES).reverse().join('\n') + '\n', { mode: 0o600 });
  } catch {
    // history is a convenience: a read-only data dir must not fail the chat
  }
}
