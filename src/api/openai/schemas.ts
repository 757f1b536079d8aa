/**
 * JSON schemas of the OpenAI-compatible request bodies, with size limits. Fastify validates every body against
 * them before a handler runs (with type coercion and stripping of unknown fields turned off for these routes), so a
 * handler only sees bodies of the documented shape; a failure is a 400 in OpenAI's shape naming the parameter.
 *
 * Parameters OpenAI defines that we do not implement are refused by name (400 unsupported_parameter) rather than
 * ignored, except where the value asks for nothing: `n: 1`, `logprobs: false`, penalties of 0, `user`.
 */

/** Longest prompt or message content (characters); the rendered prompt is checked again against the context. */
export const MAX_PROMPT_CHARS = 64 * 1024;
/** Most messages in one chat request. */
export const MAX_MESSAGES = 256;
/** Most content parts in one message. */
export const MAX_CONTENT_PARTS = 64;
/** Most stop strings, and the longest one (OpenAI allows 4; model/generate.ts takes 16). */
export const MAX_STOPS = 4;
export const MAX_STOP_CHARS = 256;
/** Longest model id. */
export const MAX_MODEL_ID_CHARS = 256;
/** Largest max_tokens a request may ask for (the context bounds it further). */
export const MAX_NEW_TOKENS = 32_768;

const stop = {
  anyOf: [
    { type: 'null' },
    { type: 'string', minLength: 1, maxLength: MAX_STOP_CHARS },
    { type: 'array', maxItems: MAX_STOPS, items: { type: 'string', minLength: 1, maxLength: MAX_STOP_CHARS } },
  ],
} as const;

/** `s` or null (null added to the type, so a failure names the real constraint, not an anyOf branch). */
const nullable = <T extends { type: string }>(s: T) => ({ ...s, type: [s.type, 'null'] }) as const;

/** Sampling and length fields shared by both routes. */
const common = {
  model: { type: 'string', minLength: 1, maxLength: MAX_MODEL_ID_CHARS },
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({
    type: 'object',
    additionalProperties: false,
    properties: { include_usage: { type: 'boolean' }, include_obfuscation: { type: 'boolean' } },
  }),
  max_tokens: nullable({ type: 'integer', minimum: 1, maximum: MAX_NEW_TOKENS }),
  temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  /** An extension (llama.cpp, vLLM and Ollama take it too); 0 = off. */
  top_k: nullable({ type: 'integer', minimum: 0, maximum: 1_000_000 }),
  seed: nullable({ type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 }),
  stop,
  n: { type: ['integer', 'null'], enum: [1, null] },
  presence_penalty: { type: ['number', 'null'], enum: [0, null] },
  frequency_penalty: { type: ['number', 'null'], enum: [0, null] },
  user: { type: 'string', maxLength: 256 },
} as const;

const textPart = {
  type: 'object',
  required: ['type', 'text'],
  additionalProperties: false,
  properties: { type: { type: 'string', const: 'text' }, text: { type: 'string', maxLength: MAX_PROMPT_CHARS } },
} as const;

const message = {
  type: 'object',
  required: ['role', 'content'],
  additionalProperties: false,
  properties: {
    role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant'] },
    content: {
      anyOf: [
        { type: 'string', maxLength: MAX_PROMPT_CHARS },
        { type: 'array', maxItems: MAX_CONTENT_PARTS, items: textPart },
        { type: 'null' },
      ],
    },
    name: { type: 'string', maxLength: 64 },
    refusal: { type: 'null' },
  },
} as const;

export const chatCompletionBodySchema = {
  type: 'object',
  required: ['model', 'messages'],
  additionalProperties: false,
  properties: {
    ...common,
    messages: { type: 'array', minItems: 1, maxItems: MAX_MESSAGES, items: message },
    max_completion_tokens: nullable({ type: 'integer', minimum: 1, maximum: MAX_NEW_TOKENS }),
    logprobs: { type: ['boolean', 'null'], enum: [false, null] },
  },
} as const;

export const completionBodySchema = {
  type: 'object',
  required: ['model', 'prompt'],
  additionalProperties: false,
  properties: {
    ...common,
    prompt: { type: 'string', maxLength: MAX_PROMPT_CHARS },
    echo: nullable({ type: 'boolean' }),
    logprobs: { type: 'null' },
    best_of: { type: ['integer', 'null'], enum: [1, null] },
    suffix: { type: 'null' },
  },
} as const;

export type ChatRole = 'system' | 'developer' | 'user' | 'assistant';

export interface ChatMessageIn {
  role: ChatRole;
  content: string | { type: 'text'; text: string }[] | null;
  name?: string;
}

interface CommonBody {
  model: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  n?: number | null;
  user?: string;
}

export interface ChatCompletionBody extends CommonBody {
  messages: ChatMessageIn[];
  max_completion_tokens?: number | null;
}

export interface CompletionBody extends CommonBody {
  prompt: string;
  echo?: boolean | null;
}
