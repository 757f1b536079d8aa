/**
 * The OpenAI-compatible routes, registered as one encapsulated fastify plugin under /v1 (its own body limit, schema
 * validator, error and not-found handlers, so the /api routes keep theirs):
 *
 * - `GET /v1/models`, `GET /v1/models/:model`
 * - `POST /v1/chat/completions`: messages rendered with the model's chat template, then generated
 * - `POST /v1/completions`: a plain text prompt continued
 *
 * Both POST routes take `stream` (Server-Sent Events: `data: {chunk}` per text delta, a last chunk with
 * `finish_reason`, with `stream_options.include_usage` a usage chunk with empty `choices`, then `data: [DONE]`).
 * Access (API keys, rate limits) runs in an onRequest hook given by the server (access.ts).
 */
import { randomBytes } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isNeuroShardError, errorMessage } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import type { ChatMessage, ServedModel, TextGenerationRequest, TextGenerationResult, TextGenerator } from './backend.js';
import { DeltaStream } from './delta.js';
import { badRequest, fromValidation, modelNotFound, OpenAiError, sendOpenAiError, tooLarge, unavailable } from './errors.js';
import { chatCompletionBodySchema, completionBodySchema, MAX_PROMPT_CHARS, type ChatCompletionBody, type CompletionBody } from './schemas.js';
import { onceClosed } from '../closed.js';
import { cutOffSlowReader, endWithin } from '../stream-budget.js';

export interface OpenAiRoutesOptions {
  generator: TextGenerator;
  /** Largest request body (bytes). */
  maxBodyBytes: number;
  /** Runs first on every /v1 request (keys, rate limits). */
  access?: (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;
  log: Logger;
  /** Unix ms (tests pin it). */
  now?: () => number;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function registerOpenAiRoutes(app: FastifyInstance, o: OpenAiRoutesOptions): void {
  void app.register(
    async (v1) => {
      const now = o.now ?? Date.now;
      const access = o.access;
      if (access !== undefined) v1.addHook('onRequest', async (req, reply) => access(req, reply));
      v1.setErrorHandler((err: FastifyError, req, reply) => {
        if (err instanceof OpenAiError) return sendOpenAiError(reply, err);
        if (err.validation !== undefined) return sendOpenAiError(reply, fromValidation(err.validation));
        if (err.statusCode === 413) return sendOpenAiError(reply, tooLarge(o.maxBodyBytes));
        if (err.statusCode === 415) return sendOpenAiError(reply, badRequest('Content-Type must be application/json.', null, 'unsupported_media_type'));
        if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
          return sendOpenAiError(reply, badRequest(err.message.slice(0, 300), null, null));
        }
        o.log.error('openai request failed', { url: req.url.slice(0, 200), err: err.message });
        return sendOpenAiError(reply, new OpenAiError(500, 'The server had an error while processing your request.'));
      });
      v1.setNotFoundHandler((req, reply) =>
        sendOpenAiError(reply, new OpenAiError(404, `Unknown request URL: ${req.method} ${req.url.split('?')[0]!.slice(0, 100)}.`, { code: 'unknown_url' })),
      );

      const modelOut = (m: ServedModel) => ({ id: m.id, object: 'model', created: m.created, owned_by: m.ownedBy, context_length: m.contextLength });
      const findModel = (id: string): ServedModel => {
        const models = o.generator.models();
        if (models.length === 0) throw unavailable('No model is loaded on this node yet.');
        const m = models.find((x) => x.id === id);
        if (m === undefined) throw modelNotFound(id);
        return m;
      };

      v1.get('/models', async () => ({ object: 'list', data: o.generator.models().map(modelOut) }));
      v1.get<{ Params: { model: string } }>('/models/:model', async (req) => modelOut(findModel(req.params.model)));

      v1.post<{ Body: ChatCompletionBody }>('/chat/completions', { bodyLimit: o.maxBodyBytes, schema: { body: chatCompletionBodySchema } }, async (req, reply) => {
        const body = req.body;
        const model = findModel(body.model);
        const messages: ChatMessage[] = body.messages.map((m) => {
          const content = m.content === null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('');
          return m.name === undefined ? { role: m.role, content } : { role: m.role, content, name: m.name };
        });
        if (messages.reduce((n, m) => n + m.content.length, 0) > MAX_PROMPT_CHARS) {
          throw badRequest(`The messages hold more than ${MAX_PROMPT_CHARS} characters.`, 'messages', 'context_length_exceeded');
        }
        let prompt: string;
        try {
          prompt = await o.generator.renderChat(model.id, messages);
        } catch (e) {
          throw toOpenAiError(e, 'messages');
        }
        const request = genRequest(body, prompt, 'chat', body.max_completion_tokens ?? body.max_tokens ?? null, o.generator.samplingDefaults?.(body.model));
        const id = 'chatcmpl-' + randomBytes(12).toString('hex');
        const created = Math.floor(now() / 1000);
        const base = { id, object: 'chat.completion.chunk', created, model: model.id, system_fingerprint: null };
        if (body.stream === true) {
          const includeUsage = body.stream_options?.include_usage === true;
          const u = includeUsage ? { usage: null } : {};
          return streamOut(req, reply, model.id, request, 'messages', {
            first: () => ({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], ...u }),
            delta: (text) => ({ ...base, choices: [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }], ...u }),
            last: (r) => ({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: r.finishReason }], ...u }),
            usage: includeUsage ? (r) => ({ ...base, choices: [], usage: usageOf(r) }) : undefined,
          });
        }
        const r = await run(model.id, request, req, reply, 'messages');
        return {
          id,
          object: 'chat.completion',
          created,
          model: model.id,
          choices: [{ index: 0, message: { role: 'assistant', content: r.text, refusal: null }, logprobs: null, finish_reason: r.finishReason }],
          usage: usageOf(r),
          system_fingerprint: null,
        };
      });

      v1.post<{ Body: CompletionBody }>('/completions', { bodyLimit: o.maxBodyBytes, schema: { body: completionBodySchema } }, async (req, reply) => {
        const body = req.body;
        const model = findModel(body.model);
        const request = genRequest(body, body.prompt, 'text', body.max_tokens ?? 16, o.generator.samplingDefaults?.(body.model));
        const id = 'cmpl-' + randomBytes(12).toString('hex');
        const created = Math.floor(now() / 1000);
        const base = { id, object: 'text_completion', created, model: model.id, system_fingerprint: null };
        const echo = body.echo === true ? body.prompt : '';
        if (body.stream === true) {
          const includeUsage = body.stream_options?.include_usage === true;
          const u = includeUsage ? { usage: null } : {};
          const choice = (text: string, finish: string | null) => ({ ...base, choices: [{ text, index: 0, logprobs: null, finish_reason: finish }], ...u });
          return streamOut(req, reply, model.id, request, 'prompt', {
            first: echo === '' ? undefined : () => choice(echo, null),
            delta: (text) => choice(text, null),
            last: (r) => choice('', r.finishReason),
            usage: includeUsage ? (r) => ({ ...base, choices: [], usage: usageOf(r) }) : undefined,
          });
        }
        const r = await run(model.id, request, req, reply, 'prompt');
        return { ...base, choices: [{ text: echo + r.text, index: 0, logprobs: null, finish_reason: r.finishReason }], usage: usageOf(r) };
      });

      /**
       * Runs a generation that ends when the client goes away: its socket or its response closing, whichever comes
       * first, also when that happened before this runs (../closed.ts). A listener on the socket's 'close' alone missed
       * a client that left while its request was formatted: the generation ran to its end for nobody (session 27,
       * test/attacks/api-gone).
       */
      async function run(model: string, request: TextGenerationRequest, req: FastifyRequest, reply: FastifyReply, param: string, onToken?: (e: { token: number; text: string }) => void): Promise<TextGenerationResult> {
        const ac = new AbortController();
        const stopWatching = onceClosed(req, reply, () => {
          if (!reply.raw.writableFinished) ac.abort();
        });
        try {
          return await o.generator.generate(model, request, onToken === undefined ? { signal: ac.signal } : { signal: ac.signal, onToken });
        } catch (e) {
          throw toOpenAiError(e, param);
        } finally {
          stopWatching();
        }
      }

      interface ChunkMakers {
        first?: () => unknown;
        delta: (text: string) => unknown;
        last: (r: TextGenerationResult) => unknown;
        usage?: (r: TextGenerationResult) => unknown;
      }

      async function streamOut(req: FastifyRequest, reply: FastifyReply, model: string, request: TextGenerationRequest, param: string, make: ChunkMakers): Promise<FastifyReply> {
        // Headers go out only with the first token: an error before it (a prompt too long, a busy node) is still an
        // ordinary HTTP error. After that, an error is sent as one `data: {"error": …}` event.
        let open = false;
        const raw = reply.raw;
        const send = (o: unknown): void => {
          if (raw.destroyed) return;
          if (!open) {
            open = true;
            reply.hijack();
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(reply.getHeaders())) if (typeof v === 'string' || typeof v === 'number') headers[k] = String(v);
            raw.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
            if (make.first !== undefined) raw.write(`data: ${JSON.stringify(make.first())}\n\n`);
          }
          if (o !== undefined) raw.write(`data: ${JSON.stringify(o)}\n\n`);
        };
        const ds = new DeltaStream(request.stop);
        let r: TextGenerationResult;
        try {
          r = await run(model, request, req, reply, param, (e) => {
            if (raw.destroyed) return;
            const d = ds.push(e.text);
            if (d !== '') send(make.delta(d));
            else if (!open) send(undefined);
            // a client that stopped reading: cut off (the socket's close aborts the generation: stream-budget.ts)
            cutOffSlowReader(raw);
          });
        } catch (e) {
          if (!open) throw e;
          const err = e instanceof OpenAiError ? e : toOpenAiError(e, param);
          endWithin(raw, `data: ${JSON.stringify(err.body())}\n\n`);
          return reply;
        }
        const rest = ds.finish(r.text);
        if (rest !== '') send(make.delta(rest));
        send(make.last(r));
        if (make.usage !== undefined) send(make.usage(r));
        endWithin(raw, 'data: [DONE]\n\n');
        return reply;
      }

      function toOpenAiError(e: unknown, param: string): OpenAiError {
        if (e instanceof OpenAiError) return e;
        if (isNeuroShardError(e)) {
          if (e.code === 'PROMPT_TOO_LONG') return badRequest(e.message, param, 'context_length_exceeded');
          // the node has no model or no route yet (layers uncovered, training not started), or its worker restarted
          if (['MODEL_NOT_READY', 'NOT_SERVING', 'LAYERS_UNCOVERED', 'COMPUTE_STATE', 'COMPUTE_WORKER_CRASHED'].includes(e.code)) return unavailable(e.message.slice(0, 500));
          if (['GENERATION_QUEUE_FULL', 'GENERATE_BUSY', 'RPC_BUSY'].includes(e.code)) return unavailable(e.message.slice(0, 500), 'overloaded', 2);
          if (e.code === 'TIMEOUT') return unavailable(e.message.slice(0, 500), 'timeout', 2);
          if (e.code === 'ABORTED') return new OpenAiError(499 as number, 'The client closed the request.', { code: 'client_closed' });
          if (e.fault === 'caller') return badRequest(e.message.slice(0, 500), param);
        }
        o.log.error('generation failed', { err: errorMessage(e) });
        return new OpenAiError(500, 'The server had an error while processing your request.');
      }
    },
    { prefix: '/v1' },
  );
}

function usageOf(r: TextGenerationResult): Usage {
  return { prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens };
}

function genRequest(
  body: ChatCompletionBody | CompletionBody,
  prompt: string,
  kind: 'chat' | 'text',
  maxTokens: number | null,
  defaults: { temperature?: number; topP?: number; topK?: number } = {},
): TextGenerationRequest {
  const stop = body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    prompt,
    kind,
    maxTokens,
    // the model's own defaults (generation_config.json), else OpenAI's: temperature 1, top_p 1
    temperature: body.temperature ?? defaults.temperature ?? 1,
    topP: body.top_p ?? defaults.topP ?? 1,
    topK: body.top_k ?? defaults.topK ?? 0,
    // a request without a seed still samples reproducibly per request, but differently each time
    seed: body.seed ?? randomBytes(4).readUInt32LE(0),
    stop,
  };
}
