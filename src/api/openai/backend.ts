/**
 * What the OpenAI-compatible routes need from the node: the models it serves, how a model formats a chat, and
 * text generation with a token callback (for streaming). The node fills it (src/node/openai.ts) over whatever
 * generates: today the local whole-model worker.
 */

export interface ServedModel {
  /** The id clients name in `model`. */
  id: string;
  /** Unix seconds (OpenAI's `created`). */
  created: number;
  ownedBy: string;
  /** Tokens of context (prompt + completion). */
  contextLength: number;
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string;
  name?: string;
}

export interface TextGenerationRequest {
  /** The text to continue. */
  prompt: string;
  /**
   * 'chat': `prompt` is a rendered chat template (special tokens written in it, such as `<s>`, are the model's
   * special ids and nothing is added); 'text': plain text, encoded as the model was trained (BOS first).
   */
  kind: 'chat' | 'text';
  /** New tokens at most; null: as many as the context leaves (capped by the server). */
  maxTokens: number | null;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  /** 0 = off. */
  topK: number;
  seed: number;
  /** Strings that end the text (cut before them). */
  stop: string[];
}

export interface TokenEvent {
  /** The new token id. */
  token: number;
  /** The decoded text of all new tokens so far (may end in U+FFFD while a character is incomplete). */
  text: string;
}

export interface TextGenerationResult {
  /** The new text, cut before a matched stop string. */
  text: string;
  /** Tokens generated (counted in usage). */
  completionTokens: number;
  promptTokens: number;
  finishReason: 'stop' | 'length';
}

export interface TextGenerator {
  /** The models served now; empty while none is loaded (routes answer 503). */
  models(): ServedModel[];
  /** The prompt for `messages` under the model's chat template (typed caller error when the template refuses them). */
  renderChat(model: string, messages: ChatMessage[]): string | Promise<string>;
  generate(model: string, req: TextGenerationRequest, opts: { signal: AbortSignal; onToken?: (e: TokenEvent) => void }): Promise<TextGenerationResult>;
  /**
   * The model's own sampling defaults (a checkpoint's generation_config.json), used where a request leaves a setting
   * out; a setting absent here falls back to OpenAI's default (temperature 1, top_p 1, no top_k).
   */
  samplingDefaults?(model: string): { temperature?: number; topP?: number; topK?: number };
}
