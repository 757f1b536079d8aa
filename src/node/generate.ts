/**
 * `neuroshard generate`: text from a checkpoint, decoded with the KV cache in the compute worker.
 *
 * The prompt is encoded with BOS (training documents start with one) and without EOS; generation stops at EOS,
 * after `maxTokens` new tokens, when the context is full, or at the first stop string. Temperature 0 is greedy
 * (argmax, deterministic); otherwise sampling is seeded, so the same seed gives the same text.
 *
 * Stop strings are matched on the decoded text here, after the worker returns (the worker holds no tokenizer): the
 * worker may decode up to `maxTokens` tokens past a stop string, which costs time but never changes the answer.
 * The result matches model/generate.ts with `stop`: `tokens` end with the token that completed the stop string
 * and `text` is cut before it.
 */
import { InvalidArgumentError } from '../util/errors.js';
import { GENERATE_MAX_PROMPT_CHARS, GENERATE_MAX_STOP_CHARS, GENERATE_MAX_STOPS } from './model-limits.js';
import { openModelSession } from './model-session.js';

export interface GenerateRunOptions {
  checkpoint: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  stop: string[];
  threads?: number;
}

export interface GenerateRunResult {
  /** The new text (without the prompt), cut before a matched stop string. */
  text: string;
  /** The new token ids. */
  tokens: number[];
  /** 'stop': EOS or a stop string; 'length': maxTokens or the context ran out. */
  finishReason: 'stop' | 'length';
  promptTokens: number;
  /** Decoding speed after the first token (tokens/s), 0 when fewer than two tokens came. */
  decodeTokensPerSecond: number;
  checkpoint: string;
}

export function checkGenerateOptions(o: GenerateRunOptions): void {
  if (typeof o.prompt !== 'string' || o.prompt.length > GENERATE_MAX_PROMPT_CHARS) {
    throw new InvalidArgumentError(`the prompt must be a string of at most ${GENERATE_MAX_PROMPT_CHARS} characters`, undefined, 'PROMPT_TOO_LONG');
  }
  if (o.stop.length > GENERATE_MAX_STOPS || o.stop.some((s) => s.length === 0 || s.length > GENERATE_MAX_STOP_CHARS)) {
    throw new InvalidArgumentError(`--stop takes up to ${GENERATE_MAX_STOPS} non-empty strings of up to ${GENERATE_MAX_STOP_CHARS} characters`);
  }
}

/** Where the first stop string starts in `text`, or −1. */
function firstStop(text: string, stop: readonly string[]): number {
  let at = -1;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

export async function generateText(o: GenerateRunOptions): Promise<GenerateRunResult> {
  checkGenerateOptions(o);
  const session = await openModelSession(o.checkpoint, o.threads === undefined ? {} : { threads: o.threads });
  try {
    const tok = session.tokenizer();
    const prompt = tok.encodePrompt(o.prompt, 'text');
    const ctx = session.config.max_position_embeddings;
    if (prompt.length >= ctx) {
      throw new InvalidArgumentError(`the prompt encodes to ${prompt.length} tokens (with BOS); the model's context holds ${ctx}, and at least one must be left to generate`, { tokens: prompt.length, context: ctx }, 'PROMPT_TOO_LONG');
    }
    const r = await session.client.run({
      type: 'generate',
      prompt: prompt.slice(),
      maxTokens: o.maxTokens,
      temperature: o.temperature,
      topK: o.topK,
      topP: o.topP,
      seed: o.seed,
      stopIds: [...new Set([session.config.eos_token_id, ...tok.stopIds])],
    });
    let tokens = Array.from(r.tokens);
    let text = tok.decode(tokens);
    let finishReason = r.finishReason;
    if (o.stop.length > 0 && firstStop(text, o.stop) >= 0) {
      // the shortest prefix of tokens whose text holds a stop string (model/generate.ts checks after each token)
      for (let n = 1; n <= tokens.length; n++) {
        const t = tok.decode(tokens.slice(0, n));
        const at = firstStop(t, o.stop);
        if (at >= 0) {
          tokens = tokens.slice(0, n);
          text = t.slice(0, at);
          finishReason = 'stop';
          break;
        }
      }
    }
    const decodeTokensPerSecond = r.tokens.length > 1 && r.decodeMs > 0 ? ((r.tokens.length - 1) * 1000) / r.decodeMs : 0;
    return { text, tokens, finishReason, promptTokens: prompt.length, decodeTokensPerSecond, checkpoint: session.dir };
  } finally {
    await session.close();
  }
}
