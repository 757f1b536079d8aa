/**
 * POST /api/generate: text from the network's model, through whatever `Generator` the node supplies (its own
 * worker when it holds the whole model, a chain of peers chosen by the swarm router otherwise).
 *
 * Body (JSON, every field but `prompt` optional; unknown fields are refused):
 *
 *   {"prompt": "…", "max_tokens": 64, "temperature": 1, "top_k": 50, "top_p": 0.9, "seed": 0, "stop": ["…"], "stream": false}
 *
 * A field the request leaves out takes the model's own default when the node has one (a checkpoint's
 * generation_config.json: `GenerateDefaults`), else the value shown.
 *
 * Without `stream`: one JSON answer `{"text", "tokens", "finish_reason", "route", "routes", "failovers"}`, plus `"payment"`
 * (`{"status", "reason"?, "completion_id"?, "tokens_used"?}`) when the entry node paid or tried to pay the route
 * (issue 11 §2, `--pay-inference`). With
 * `"stream": true`: Server-Sent Events, `data: {"route": [...]}` as soon as the route is chosen, one
 * `data: {"token": id, "text": "…"}` per token (the texts concatenate to the final text; a token may carry "" while
 * it could still begin a stop string or ends inside a UTF-8 character), then `data: {"done": true, "text", "tokens",
 * "finish_reason", "route", "routes", "failovers"}`; an error after the stream began is `data: {"error": {"code", "message"}}`.
 * `route` is the route as first chosen; `routes` every route that produced tokens, `[{"from_token": n, "hops":
 * [{"peerId", "span", "weights"}]}]`: the first from token 0, one more after each failover, from the index (in
 * `tokens`) of the first token the new chain produced.
 *
 * Errors: 400 for a bad body (typed code), 503 `layers_uncovered` (meta `missing`: the layer indexes nobody holds)
 * or `busy` / `not_serving`, 504 `timeout`, 500 otherwise.
 *
 * The `Generator` interface is the one the OpenAI-compatible routes and the dashboard chat call as well: keep it
 * free of HTTP.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { InvalidArgumentError, NeuroShardError, errorMessage } from '../util/errors.js';
import { onceClosed } from './closed.js';
import { cutOffSlowReader, endWithin } from './stream-budget.js';

// ───────────────────────────── the generation interface ─────────────────────────────

/** One generation request, already validated (see `parseGenerateBody`). */
export interface GenerateParams {
  /** Text to continue; the entry node encodes it with BOS. */
  prompt: string;
  /** New tokens at most (the context also ends generation). */
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** 0 keeps all. */
  topK: number;
  /** In (0, 1]. */
  topP: number;
  /** Sampling seed (unused when greedy). */
  seed: number;
  /** Generation stops before the first of these strings (the text is cut before it). */
  stop: string[];
  /**
   * 'chat': `prompt` is a rendered chat template whose special-token strings are the model's special ids and to
   * which nothing is added (the OpenAI chat route); 'text' (default): plain text, encoded with BOS.
   */
  kind?: 'text' | 'chat';
}

/** One hop of a route: a peer and the layers [start, end) it runs for this request. */
export interface RouteHop {
  peerId: string;
  span: [number, number];
  /** How the hop holds its weights (its signed HolderRecord; router/route.ts prefers chains of one format). */
  weights?: 'f32' | 'int8';
}

/**
 * A route that produced tokens: `hops` from token `fromToken` (an index in `tokens`) up to the next route's. It may
 * equal the number of tokens when a failover happened on the step that sampled the end-of-sequence token.
 */
export interface UsedRoute {
  fromToken: number;
  hops: RouteHop[];
}

/** 'stop': the end-of-sequence token or a stop string; 'length': max_tokens or the context ran out. */
export type GenerateFinishReason = 'stop' | 'length';

export interface GenerateOutput {
  /** The new text (without the prompt), cut before a matched stop string. */
  text: string;
  /** The new token ids (an end-of-sequence id is not included). */
  tokens: number[];
  finishReason: GenerateFinishReason;
  /** The route as first chosen (a local generation names this node with the whole span). */
  route: RouteHop[];
  /**
   * Every route that produced tokens, in order, the first from token 0 (router/driver.ts GenerationResult.routes).
   * Absent: `route` alone did (a generator without failover); the answer then names it from token 0.
   */
  routes?: UsedRoute[];
  /** How many times a hop was replaced during this request. */
  failovers: number;
  /** How the entry node paid the route (issue 11 §2, `--pay-inference`), when it tried. */
  payment?: GeneratePayment;
}

/** The end of a paid generation: `submitted` (the completion is in the driver's ledger), `refused` or `skipped`. */
export interface GeneratePayment {
  status: 'submitted' | 'refused' | 'skipped';
  reason?: string;
  completionId?: string;
  tokensUsed?: number;
}

export interface GenerateListener {
  /** Called once, as soon as the route is chosen (before any token). */
  onRoute?(route: RouteHop[]): void;
  /** Called for every new token with the text it adds (the texts concatenate to the final text). */
  onToken?(token: number, text: string): void;
}

/**
 * Something that turns a prompt into tokens: the node's own worker or a chain of peers. It rejects with typed
 * errors: fault `caller` for a bad request (e.g. PROMPT_TOO_LONG), code LAYERS_UNCOVERED (meta `missing: number[]`)
 * when no chain covers the model, GENERATE_BUSY when it is at its concurrency limit, ABORTED when `signal` fires.
 */
export interface Generator {
  generate(params: GenerateParams, listener: GenerateListener, signal: AbortSignal): Promise<GenerateOutput>;
}

// ───────────────────────────── body validation ─────────────────────────────

export const GENERATE_API_DEFAULTS = Object.freeze({ maxTokens: 64, temperature: 1, topK: 50, topP: 0.9, seed: 0 });

/**
 * The model's own defaults for fields a request leaves out (a checkpoint's generation_config.json, read by the node):
 * they come before GENERATE_API_DEFAULTS, and a request's own values before both.
 */
export interface GenerateDefaults {
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
}
export const GENERATE_API_LIMITS = Object.freeze({
  promptChars: 64 * 1024,
  maxTokens: 1 << 20,
  stops: 16,
  stopChars: 256,
  /** Request body bytes (a 64 Ki-character prompt may take up to 6 bytes per character as escaped JSON). */
  bodyBytes: 512 * 1024,
  /** Generations running at once through one node's API; more get 503 busy. */
  concurrent: 32,
});

const BODY_KEYS = new Set(['prompt', 'max_tokens', 'temperature', 'top_k', 'top_p', 'seed', 'stop', 'stream']);

function badBody(message: string, field: string): InvalidArgumentError {
  return new InvalidArgumentError(message, { field }, 'BAD_REQUEST');
}

function num(o: Record<string, unknown>, key: string, dflt: number, min: number, max: number, integer: boolean): number {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw badBody(`${key} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`, key);
  }
  return v;
}

/** Validates a /api/generate body (also usable by other routes that take the same fields); `model`: GenerateDefaults. */
export function parseGenerateBody(body: unknown, model: GenerateDefaults = {}): GenerateParams & { stream: boolean } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badBody('the body must be a JSON object', 'body');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!BODY_KEYS.has(k)) throw badBody(`unknown field ${JSON.stringify(k.slice(0, 64))}`, k.slice(0, 64));
  const L = GENERATE_API_LIMITS;
  if (typeof o.prompt !== 'string') throw badBody('prompt must be a string', 'prompt');
  if (o.prompt.length > L.promptChars) throw new InvalidArgumentError(`prompt longer than ${L.promptChars} characters`, { field: 'prompt' }, 'PROMPT_TOO_LONG');
  let stop: string[] = [];
  if (typeof o.stop === 'string') stop = [o.stop];
  else if (Array.isArray(o.stop)) stop = o.stop as string[];
  else if (o.stop !== undefined && o.stop !== null) throw badBody('stop must be a string or a list of strings', 'stop');
  if (stop.length > L.stops || stop.some((s) => typeof s !== 'string' || s.length === 0 || s.length > L.stopChars)) {
    throw badBody(`stop takes up to ${L.stops} non-empty strings of up to ${L.stopChars} characters`, 'stop');
  }
  if (o.stream !== undefined && o.stream !== null && typeof o.stream !== 'boolean') throw badBody('stream must be a boolean', 'stream');
  const D = GENERATE_API_DEFAULTS;
  const topP = num(o, 'top_p', model.topP ?? D.topP, 0, 1, false);
  if (!(topP > 0)) throw badBody('top_p must be in (0, 1]', 'top_p');
  return {
    prompt: o.prompt,
    maxTokens: num(o, 'max_tokens', model.maxTokens ?? D.maxTokens, 1, L.maxTokens, true),
    temperature: num(o, 'temperature', model.temperature ?? D.temperature, 0, 100, false),
    topK: num(o, 'top_k', model.topK ?? D.topK, 0, 1 << 24, true),
    topP,
    seed: num(o, 'seed', D.seed, 0, 0xffffffff, true),
    stop,
    stream: o.stream === true,
  };
}

// ───────────────────────────── the route ─────────────────────────────

/** A route of the answer, as the API names it. */
export interface UsedRouteAnswer {
  from_token: number;
  hops: RouteHop[];
}

/** The JSON answer (and the SSE `done` event without `done`). */
export function generateAnswer(r: GenerateOutput): {
  text: string;
  tokens: number[];
  finish_reason: GenerateFinishReason;
  route: RouteHop[];
  routes: UsedRouteAnswer[];
  failovers: number;
  payment?: { status: string; reason?: string; completion_id?: string; tokens_used?: number };
} {
  const p = r.payment;
  const payment = p === undefined ? undefined : { status: p.status, ...(p.reason === undefined ? {} : { reason: p.reason }), ...(p.completionId === undefined ? {} : { completion_id: p.completionId }), ...(p.tokensUsed === undefined ? {} : { tokens_used: p.tokensUsed }) };
  const routes = (r.routes ?? [{ fromToken: 0, hops: r.route }]).map((u) => ({ from_token: u.fromToken, hops: u.hops }));
  return { text: r.text, tokens: r.tokens, finish_reason: r.finishReason, route: r.route, routes, failovers: r.failovers, ...(payment === undefined ? {} : { payment }) };
}

/** HTTP status and API code of a generation error. */
export function generateErrorStatus(e: unknown): { status: number; code: string; message: string; missing?: number[] } {
  if (!(e instanceof NeuroShardError)) return { status: 500, code: 'internal', message: 'internal error' };
  const message = e.message.slice(0, 500);
  if (e.code === 'LAYERS_UNCOVERED') {
    const missing = Array.isArray(e.meta?.missing) ? (e.meta.missing as number[]).slice(0, 1024) : [];
    return { status: 503, code: 'layers_uncovered', message, missing };
  }
  if (e.code === 'GENERATE_BUSY' || e.code === 'RPC_BUSY') return { status: 503, code: 'busy', message };
  if (e.code === 'NOT_SERVING') return { status: 503, code: 'not_serving', message };
  if (e.code === 'TIMEOUT') return { status: 504, code: 'timeout', message };
  if (e.fault === 'caller') return { status: 400, code: e.code.toLowerCase(), message };
  return { status: 500, code: e.code.toLowerCase(), message };
}

type SendError = (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;

/**
 * Registers POST /api/generate. `generator` is asked on every request (it may change as the node's span does);
 * `defaults`: the model's own defaults for fields a request leaves out.
 */
export function registerGenerateRoutes(app: FastifyInstance, generator: () => Generator | undefined, sendError: SendError, defaults: GenerateDefaults = {}): void {
  let running = 0;
  app.post('/api/generate', { bodyLimit: GENERATE_API_LIMITS.bodyBytes }, async (req, reply) => {
    let p: ReturnType<typeof parseGenerateBody>;
    try {
      p = parseGenerateBody(req.body, defaults);
    } catch (e) {
      const s = generateErrorStatus(e);
      return sendError(reply, s.status, s.code, s.message);
    }
    const gen = generator();
    if (gen === undefined) return sendError(reply, 503, 'not_serving', 'this node cannot generate yet (no model and no route)');
    if (running >= GENERATE_API_LIMITS.concurrent) return sendError(reply, 503, 'busy', `${GENERATE_API_LIMITS.concurrent} generations are running; retry later`);
    running++;
    // the client going away stops the generation (and frees its sessions on every hop): its response or its socket
    // closing, whichever comes first (a pipelined request's response never closes when the client goes: ./closed.ts)
    const ac = new AbortController();
    const stopWatching = onceClosed(req, reply, () => {
      if (!reply.raw.writableFinished) ac.abort();
    });
    try {
      if (!p.stream) {
        try {
          const r = await gen.generate(p, {}, ac.signal);
          return reply.code(200).type('application/json; charset=utf-8').send(generateAnswer(r));
        } catch (e) {
          const s = generateErrorStatus(e);
          const body: Record<string, unknown> = { code: s.code, message: s.message };
          if (s.missing !== undefined) body.missing = s.missing;
          return reply.code(s.status).type('application/json; charset=utf-8').send({ error: body });
        }
      }
      // Server-Sent Events: headers go out only with the first event, so that an error before it is a plain answer
      let started = false;
      const write = (o: unknown): void => {
        if (!started) {
          started = true;
          reply.hijack();
          reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        }
        if (!reply.raw.destroyed) reply.raw.write(`data: ${JSON.stringify(o)}\n\n`);
      };
      try {
        const onToken = (token: number, text: string): void => {
          write({ token, text });
          // a client that stopped reading: cut off (the close aborts the generation and frees its sessions)
          cutOffSlowReader(reply.raw);
        };
        const r = await gen.generate(p, { onRoute: (route) => write({ route }), onToken }, ac.signal);
        write({ done: true, ...generateAnswer(r) });
      } catch (e) {
        const s = generateErrorStatus(e);
        if (!started) {
          const body: Record<string, unknown> = { code: s.code, message: s.message };
          if (s.missing !== undefined) body.missing = s.missing;
          return reply.code(s.status).type('application/json; charset=utf-8').send({ error: body });
        }
        write({ error: { code: s.code, message: s.message } });
        if (s.status === 500) req.log.error({ err: errorMessage(e) }, 'generate failed');
      }
      endWithin(reply.raw, undefined);
      return reply;
    } finally {
      running--;
      stopWatching();
    }
  });
}
