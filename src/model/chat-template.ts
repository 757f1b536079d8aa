/**
 * Chat formatting: a list of messages → the prompt text a model continues. A checkpoint's own `chat_template`
 * (tokenizer_config.json, Jinja) is rendered with `@huggingface/jinja`, Hugging Face's JavaScript Jinja for chat
 * templates, with the variables transformers passes (`messages`, `bos_token`, `eos_token`,
 * `add_generation_prompt`; the library provides `raise_exception`).
 *
 * Our own models (trained on plain prose, no special chat tokens) use DEFAULT_CHAT_TEMPLATE: each message on its
 * own paragraph as `Role: content`, ending with `Assistant:` for the model to continue:
 *
 * ```text
 * System: You are terse.
 *
 * User: Hello there.
 *
 * Assistant:
 * ```
 *
 * BOS is added by the tokenizer (encodePrompt 'text' semantics for our tokenizer), not written in the template.
 */
import { Template } from '@huggingface/jinja';
import { InvalidArgumentError } from '../util/errors.js';

export const DEFAULT_CHAT_TEMPLATE =
  '{%- for message in messages -%}' +
  "{{ message['role'] | capitalize + ': ' + message['content'] | trim + '\\n\\n' }}" +
  '{%- endfor -%}' +
  "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}";

/** Longest template accepted (characters); real ones are a few kilobytes. */
export const MAX_CHAT_TEMPLATE_CHARS = 256 * 1024;
/** Longest rendered prompt (characters). */
export const MAX_RENDERED_CHARS = 1 << 20;

export interface ChatTemplateMessage {
  role: string;
  content: string;
  name?: string;
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    private readonly tokens: { bos: string; eos: string } = { bos: '', eos: '' },
  ) {
    if (source.length > MAX_CHAT_TEMPLATE_CHARS) throw new InvalidArgumentError(`a chat template is at most ${MAX_CHAT_TEMPLATE_CHARS} characters`);
    this.template = new Template(source);
  }

  /** The prompt for `messages`, ending where the assistant's answer starts. A template's raise_exception is a caller error. */
  render(messages: readonly ChatTemplateMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    let out: string;
    try {
      out = this.template.render({
        messages: messages.map((m) => ({ ...m })),
        bos_token: this.tokens.bos,
        eos_token: this.tokens.eos,
        add_generation_prompt: opts.addGenerationPrompt ?? true,
      });
    } catch (e) {
      // the library's raise_exception (templates call it to refuse, e.g., roles out of order) throws a plain Error
      throw new InvalidArgumentError(`the chat template refused the messages: ${(e as Error).message.slice(0, 300)}`, undefined, 'CHAT_TEMPLATE_REFUSED');
    }
    if (out.length > MAX_RENDERED_CHARS) throw new InvalidArgumentError(`the rendered chat is over ${MAX_RENDERED_CHARS} characters`, undefined, 'PROMPT_TOO_LONG');
    return out;
  }
}
