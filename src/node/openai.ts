/**
 * The node's TextGenerator for the OpenAI-compatible routes (api/openai), built on the same `Generator` that
 * serves POST /api/generate (api/generate.ts; node/serving.ts: this node's worker when it holds the whole model, a
 * chain of peers chosen by the router otherwise), so both routes answer through one path.
 *
 * What it adds on top of the Generator: the served model's id and context (`neurollm`, the genesis config), chat
 * formatting (the tokenizer's `chat_template` when it has one, else DEFAULT_CHAT_TEMPLATE), prompt-token counts
 * for `usage` (the tokenizer the entry node encodes with: BOS + text), OpenAI's context check (prompt + max_tokens
 * within the context: else 400), a default max_tokens, and a bound on generations in flight through /v1
 * (GENERATION_QUEUE_FULL → 503).
 *
 * Prompts go to the Generator with their kind: 'text' (legacy completions) is encoded with BOS; 'chat' is a rendered
 * template whose special-token strings (`<s>`, `<|start_header_id|>`, …) become their ids with nothing added
 * (TextTokenizer.encodePrompt). With our tokenizer both are BOS + text (the default template writes no special
 * tokens). A node started with `--checkpoint DIR` encodes with the checkpoint's own tokenizer (checkpointTokenizer:
 * its tokenizer.json and chat template) and its generator stops on the tokenizer's stop ids too (node/serving.ts
 * modelViewOf), as `neuroshard generate --checkpoint` does on one node. A node on such a network without the
 * checkpoint (`--network-id`) does the same with the files it fetched from peers (node/network-model.ts). The
 * checkpoint's generation_config.json adds stop ids (through the tokenizer) and the sampling defaults of requests
 * that leave them out (`sampling`; model/generation-config.ts).
 */
import type { ChatMessage, GenerateDefaults, Generator, ServedModel, TextGenerationRequest, TextGenerationResult, TextGenerator, TokenEvent } from '../api/index.js';
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE } from '../model/chat-template.js';
import type { LlamaConfig } from '../model/index.js';
import { defaultNewTokens, type SamplingDefaults } from '../model/generation-config.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HF_TOKENIZER_FILE, HfTokenizer, ourTextTokenizer, type TextTokenizer } from '../model/tokenizer/hf.js';
import { TOKENIZER_FILE_NAME, Tokenizer } from '../model/tokenizer/index.js';
import { InvalidArgumentError, NeuroShardError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { spanText } from '../util/span-text.js';

/**
 * POST /api/generate's defaults from a generation_config.json: its sampling settings and max_new_tokens (max_length
 * needs the prompt's token count, which that route does not take: it keeps its own 64 then).
 */
export function generateDefaultsOf(s: SamplingDefaults): GenerateDefaults {
  return {
    ...(s.temperature === undefined ? {} : { temperature: s.temperature }),
    ...(s.topP === undefined ? {} : { topP: s.topP }),
    ...(s.topK === undefined ? {} : { topK: s.topK }),
    ...(s.maxNewTokens === undefined ? {} : { maxTokens: s.maxNewTokens }),
  };
}

/** The id the network's model is served under. */
export const NEUROLLM_MODEL_ID = 'neurollm';

export interface OpenAiGeneratorInit {
  /** Asked per request (undefined: the node cannot generate yet → 503). */
  generator: () => Generator | undefined;
  config: LlamaConfig;
  tokenizer: TextTokenizer;
  /** Unix seconds, OpenAI's `created` of the model. */
  created: number;
  /** Generations in flight through /v1 at once. */
  maxPending: number;
  /** New tokens when a request names no max_tokens (the context bounds it further). */
  defaultMaxTokens: number;
  /** Each /v1 generation's route is logged (info) as it is chosen: an operator sees which peers served a request. */
  log?: Logger;
  /**
   * The model's generation_config.json defaults (model/generation-config.ts): sampling settings a request leaves out,
   * and new tokens when it names none (max_new_tokens, or max_length less the prompt, instead of defaultMaxTokens).
   */
  sampling?: SamplingDefaults;
}

export class ModelNotReadyError extends NeuroShardError {
  constructor(message = 'this node cannot generate yet (no model and no route)') {
    super('MODEL_NOT_READY', message, { fault: 'local' });
  }
}

/**
 * The tokenizer a `--checkpoint DIR` node encodes with: the directory's Hugging Face tokenizer.json (with its
 * tokenizer_config.json: chat template, EOS/end-of-turn stops) before our own tokenizer file; undefined when the
 * directory has neither (the bundled genesis tokenizer is used). Checked against the model's vocabulary.
 */
export function checkpointTokenizer(dir: string, config: LlamaConfig): TextTokenizer | undefined {
  const hf = join(dir, HF_TOKENIZER_FILE);
  const ours = join(dir, TOKENIZER_FILE_NAME);
  const tok = existsSync(hf) ? HfTokenizer.load(dir) : existsSync(ours) ? ourTextTokenizer(Tokenizer.load(ours)) : undefined;
  if (tok !== undefined && tok.vocabSize > config.vocab_size) {
    throw new InvalidArgumentError(`--checkpoint ${dir}: its tokenizer has ${tok.vocabSize} ids, more than the model's vocab_size ${config.vocab_size}`, { dir }, 'TOKENIZER_MISMATCH');
  }
  return tok;
}

/** The chat template of a tokenizer: its own, else ours. */
export function chatTemplateFor(tok: TextTokenizer): ChatTemplate {
  return new ChatTemplate(tok.chatTemplate ?? DEFAULT_CHAT_TEMPLATE, { bos: tok.bosToken, eos: tok.eosToken });
}

export class OpenAiGenerator implements TextGenerator {
  private readonly template: ChatTemplate;
  private pending = 0;

  constructor(private readonly o: OpenAiGeneratorInit) {
    this.template = chatTemplateFor(o.tokenizer);
  }

  models(): ServedModel[] {
    if (this.o.generator() === undefined) return [];
    return [{ id: NEUROLLM_MODEL_ID, created: this.o.created, ownedBy: 'neuroshard', contextLength: this.o.config.max_position_embeddings }];
  }

  samplingDefaults(): { temperature?: number; topP?: number; topK?: number } {
    const { temperature, topP, topK } = this.o.sampling ?? {};
    return { ...(temperature === undefined ? {} : { temperature }), ...(topP === undefined ? {} : { topP }), ...(topK === undefined ? {} : { topK }) };
  }

  renderChat(_model: string, messages: ChatMessage[]): string {
    return this.template.render(messages);
  }

  async generate(_model: string, req: TextGenerationRequest, opts: { signal: AbortSignal; onToken?: (e: TokenEvent) => void }): Promise<TextGenerationResult> {
    const gen = this.o.generator();
    if (gen === undefined) throw new ModelNotReadyError();
    const promptTokens = this.o.tokenizer.encodePrompt(req.prompt, req.kind).length;
    const ctx = this.o.config.max_position_embeddings;
    if (promptTokens >= ctx) {
      throw new InvalidArgumentError(`This model's maximum context length is ${ctx} tokens; the prompt has ${promptTokens}.`, { tokens: promptTokens, context: ctx }, 'PROMPT_TOO_LONG');
    }
    if (req.maxTokens !== null && promptTokens + req.maxTokens > ctx) {
      throw new InvalidArgumentError(
        `This model's maximum context length is ${ctx} tokens. However, you requested ${promptTokens + req.maxTokens} tokens (${promptTokens} in the prompt, ${req.maxTokens} for the completion).`,
        { tokens: promptTokens, context: ctx },
        'PROMPT_TOO_LONG',
      );
    }
    const maxTokens = Math.max(1, req.maxTokens ?? Math.min(defaultNewTokens(this.o.sampling ?? {}, promptTokens, this.o.defaultMaxTokens), ctx - promptTokens));
    if (this.pending >= this.o.maxPending) {
      throw new NeuroShardError('GENERATION_QUEUE_FULL', `${this.pending} generations are already running through /v1 on this node; retry shortly`, { fault: 'local' });
    }
    this.pending++;
    try {
      let text = '';
      const r = await gen.generate(
        { prompt: req.prompt, kind: req.kind, maxTokens, temperature: req.temperature, topK: req.topK, topP: req.topP, seed: req.seed >>> 0, stop: req.stop },
        {
          onRoute: (route) => (this.o.log ?? silentLogger).info('openai generation route', { hops: route.map((h) => `${h.peerId}[${spanText({ start: h.span[0], end: h.span[1] })}]`).join(' -> ') }),
          onToken: (token, piece) => {
            text += piece;
            opts.onToken?.({ token, text });
          },
        },
        opts.signal,
      );
      return { text: r.text, completionTokens: r.tokens.length, promptTokens, finishReason: r.finishReason };
    } finally {
      this.pending--;
    }
  }
}
