/**
 * The node's TextGenerator for the OpenAI-compatible routes (api/openai): generation on the model this node holds
 * whole, in its compute worker, streamed token by token (generate jobs with `stream`, JobOptions.onEvent).
 *
 * - A training node serves the model it is training (generate jobs run between training steps in the same
 *   worker, so answers follow the weights as they move); it is served from the training's `start` event on.
 * - A node that holds the whole model and does not train loads the newest checkpoint of `<data-dir>/checkpoints`
 *   (ours, with its tokenizer), or initialises the genesis model from seed 0 when there is none.
 *
 * Text prompts are encoded as the model was trained (BOS first); chats are rendered with the tokenizer's
 * `chat_template` when it has one (Hugging Face tokenizer.json + tokenizer_config.json), else with
 * DEFAULT_CHAT_TEMPLATE. Stop strings are matched after every token; a match ends the worker's job at once.
 * At most `maxPending` generations wait or run at a time (the worker runs one job at a time): more are refused
 * with GENERATION_QUEUE_FULL (503), so a flood of requests queues nothing unbounded.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ChatMessage, ServedModel, TextGenerationRequest, TextGenerationResult, TextGenerator, TokenEvent } from '../api/index.js';
import type { ComputeClient } from '../compute/index.js';
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE } from '../model/chat-template.js';
import { latestCheckpoint, type LlamaConfig } from '../model/index.js';
import { HF_TOKENIZER_FILE, HfTokenizer, ourTextTokenizer, type TextTokenizer } from '../model/tokenizer/hf.js';
import { Tokenizer, TOKENIZER_FILE_NAME } from '../model/tokenizer/index.js';
import { AbortedError, InvalidArgumentError, isNeuroShardError, NeuroShardError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { CHECKPOINTS_DIR } from './model-limits.js';

/** The id the node's own model is served under. */
export const NEUROLLM_MODEL_ID = 'neurollm';

export interface ServingModel {
  id: string;
  client: ComputeClient;
  config: LlamaConfig;
  tokenizer: TextTokenizer;
  template: ChatTemplate;
  /** Unix seconds. */
  created: number;
}

export interface LocalGeneratorOptions {
  /** Most generations waiting or running at once. */
  maxPending: number;
  /** New tokens when a request gives no max_tokens (the context bounds it further). */
  defaultMaxTokens: number;
  log: Logger;
}

export class ModelNotReadyError extends NeuroShardError {
  constructor(message = 'no model is loaded on this node yet') {
    super('MODEL_NOT_READY', message, { fault: 'local' });
  }
}

export class LocalTextGenerator implements TextGenerator {
  private model: ServingModel | undefined;
  private pending = 0;

  constructor(private readonly o: LocalGeneratorOptions) {}

  /** Serves `m` from now on (undefined: nothing). */
  setModel(m: ServingModel | undefined): void {
    this.model = m;
  }

  models(): ServedModel[] {
    const m = this.model;
    return m === undefined ? [] : [{ id: m.id, created: m.created, ownedBy: 'neuroshard', contextLength: m.config.max_position_embeddings }];
  }

  private get(model: string): ServingModel {
    const m = this.model;
    if (m === undefined) throw new ModelNotReadyError();
    if (m.id !== model) throw new InvalidArgumentError(`no model ${model}`, undefined, 'MODEL_NOT_FOUND');
    return m;
  }

  renderChat(model: string, messages: ChatMessage[]): string {
    return this.get(model).template.render(messages);
  }

  async generate(model: string, req: TextGenerationRequest, opts: { signal: AbortSignal; onToken?: (e: TokenEvent) => void }): Promise<TextGenerationResult> {
    const m = this.get(model);
    const prompt = m.tokenizer.encodePrompt(req.prompt, req.kind);
    const ctx = m.config.max_position_embeddings;
    if (prompt.length === 0) throw new InvalidArgumentError('the prompt encodes to no tokens', undefined, 'PROMPT_EMPTY');
    if (prompt.length >= ctx) {
      throw new InvalidArgumentError(`This model's maximum context length is ${ctx} tokens; the prompt has ${prompt.length}.`, { tokens: prompt.length, context: ctx }, 'PROMPT_TOO_LONG');
    }
    let maxTokens = req.maxTokens ?? Math.min(this.o.defaultMaxTokens, ctx - prompt.length);
    if (req.maxTokens !== null && prompt.length + req.maxTokens > ctx) {
      throw new InvalidArgumentError(
        `This model's maximum context length is ${ctx} tokens. However, you requested ${prompt.length + req.maxTokens} tokens (${prompt.length} in the prompt, ${req.maxTokens} for the completion).`,
        { tokens: prompt.length, context: ctx },
        'PROMPT_TOO_LONG',
      );
    }
    maxTokens = Math.max(1, maxTokens);
    if (this.pending >= this.o.maxPending) {
      throw new NeuroShardError('GENERATION_QUEUE_FULL', `${this.pending} generations are already waiting or running on this node; retry shortly`, { fault: 'local' });
    }
    this.pending++;
    const stopped = new AbortController();
    const onAbort = (): void => stopped.abort();
    opts.signal.addEventListener('abort', onAbort, { once: true });
    const tokens: number[] = [];
    let text = '';
    let stopAt = -1;
    try {
      const stopIds = [...new Set([m.config.eos_token_id, ...m.tokenizer.stopIds])];
      let result: { finishReason: 'stop' | 'length' } | undefined;
      try {
        result = await m.client.run(
          { type: 'generate', prompt: prompt.slice(), maxTokens, temperature: req.temperature, topK: req.topK, topP: req.topP, seed: req.seed >>> 0, stopIds, stream: true },
          {
            signal: stopped.signal,
            onEvent: (e) => {
              if (e.type !== 'token' || stopAt >= 0 || stopped.signal.aborted) return;
              tokens.push(e.token);
              text = m.tokenizer.decode(tokens);
              stopAt = firstStop(text, req.stop);
              if (stopAt >= 0) {
                stopped.abort(); // a stop string: the worker stops at its next token
                return;
              }
              opts.onToken?.({ token: e.token, text });
            },
          },
        );
      } catch (e) {
        if (!(isNeuroShardError(e, 'ABORTED') && stopAt >= 0 && !opts.signal.aborted)) throw e;
      }
      if (opts.signal.aborted) throw new AbortedError('the client went away');
      if (stopAt >= 0) return { text: text.slice(0, stopAt), completionTokens: tokens.length, promptTokens: prompt.length, finishReason: 'stop' };
      return { text, completionTokens: tokens.length, promptTokens: prompt.length, finishReason: result!.finishReason };
    } finally {
      this.pending--;
      opts.signal.removeEventListener('abort', onAbort);
    }
  }
}

function firstStop(text: string, stop: readonly string[]): number {
  let at = -1;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** The tokenizer that goes with a checkpoint directory: its tokenizer.json (HF), else ours, else `fallback`. */
export function tokenizerFor(dir: string | null, fallbackPath: string): TextTokenizer {
  if (dir !== null && existsSync(join(dir, HF_TOKENIZER_FILE))) return HfTokenizer.load(dir);
  const ours = dir !== null && existsSync(join(dir, TOKENIZER_FILE_NAME)) ? join(dir, TOKENIZER_FILE_NAME) : fallbackPath;
  return ourTextTokenizer(Tokenizer.load(ours));
}

/** The chat template of a tokenizer: its own, else ours. */
export function chatTemplateFor(tok: TextTokenizer): ChatTemplate {
  return new ChatTemplate(tok.chatTemplate ?? DEFAULT_CHAT_TEMPLATE, { bos: tok.bosToken, eos: tok.eosToken });
}

/**
 * For a whole-model node that does not train: loads the newest checkpoint of `<dataDir>/checkpoints` into
 * `client`, or initialises `genesisConfig` from seed 0 when there is none.
 */
export async function loadServingModel(client: ComputeClient, dataDir: string, genesis: { config: LlamaConfig; tokenizerPath: string }, now: () => number): Promise<ServingModel> {
  const latest = latestCheckpoint(join(dataDir, CHECKPOINTS_DIR));
  let config: LlamaConfig;
  let tokenizerDir: string | null = null;
  if (latest !== null) {
    const r = await client.run({ type: 'loadCheckpoint', dir: latest });
    if (r.span.start !== 0 || r.span.end !== r.config.num_hidden_layers) {
      throw new NeuroShardError('CHECKPOINT_PARTIAL', `${latest} holds layers [${r.span.start}, ${r.span.end}) only; serving needs the whole model`, { fault: 'config' });
    }
    config = r.config;
    tokenizerDir = r.tokenizerPath === null ? latest : dirname(r.tokenizerPath);
  } else {
    await client.run({ type: 'initModel', config: genesis.config, seed: 0 });
    config = genesis.config;
  }
  return servingModel(client, config, tokenizerFor(tokenizerDir, genesis.tokenizerPath), now);
}

export function servingModel(client: ComputeClient, config: LlamaConfig, tokenizer: TextTokenizer, now: () => number): ServingModel {
  if (tokenizer.vocabSize > config.vocab_size) {
    throw new NeuroShardError('VOCAB_MISMATCH', `the tokenizer has ${tokenizer.vocabSize} ids, more than the model's vocab_size ${config.vocab_size}`, { fault: 'config' });
  }
  return { id: NEUROLLM_MODEL_ID, client, config, tokenizer, template: chatTemplateFor(tokenizer), created: Math.floor(now() / 1000) };
}
