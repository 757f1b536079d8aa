/**
 * Errors of the OpenAI-compatible routes, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
 * The status codes follow OpenAI's use of them:
 *
 * | status | type | code | when |
 * | --- | --- | --- | --- |
 * | 400 | invalid_request_error | invalid_value, unsupported_parameter, … | a body that fails its schema or asks for what we do not do |
 * | 401 | invalid_request_error | invalid_api_key | no key or a wrong key where keys are required |
 * | 404 | invalid_request_error | model_not_found | an unknown model (or route) |
 * | 413 | invalid_request_error | request_too_large | a body over the size limit |
 * | 429 | requests | rate_limit_exceeded | the key's request budget is spent (Retry-After says when to come back) |
 * | 503 | server_error | model_unavailable, overloaded | no model served yet, or the generation queue is full |
 */
import type { FastifyReply } from 'fastify';
import { NeuroShardError, type Fault } from '../../util/errors.js';

export type OpenAiErrorType = 'invalid_request_error' | 'requests' | 'server_error';

export interface OpenAiErrorBody {
  error: { message: string; type: OpenAiErrorType; param: string | null; code: string | null };
}

export class OpenAiError extends NeuroShardError {
  readonly status: number;
  readonly type: OpenAiErrorType;
  readonly param: string | null;
  readonly openAiCode: string | null;
  /** Seconds, sent as Retry-After (429, 503). */
  readonly retryAfterS: number | undefined;

  constructor(status: number, message: string, opts: { type?: OpenAiErrorType; param?: string | null; code?: string | null; retryAfterS?: number } = {}) {
    const fault: Fault = status >= 500 ? 'local' : 'caller';
    super(`OPENAI_${status}`, message, { fault });
    this.status = status;
    this.type = opts.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = opts.param ?? null;
    this.openAiCode = opts.code ?? null;
    this.retryAfterS = opts.retryAfterS;
  }

  body(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.openAiCode } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = 'invalid_value'): OpenAiError =>
  new OpenAiError(400, message, { param, code });

export const modelNotFound = (model: string): OpenAiError =>
  new OpenAiError(404, `The model \`${model.slice(0, 200)}\` does not exist or you do not have access to it.`, { param: 'model', code: 'model_not_found' });

export const invalidApiKey = (message: string): OpenAiError => new OpenAiError(401, message, { code: 'invalid_api_key' });

export const rateLimited = (retryAfterS: number, limitPerMin: number): OpenAiError =>
  new OpenAiError(429, `Rate limit reached: ${limitPerMin} requests per minute for this key. Retry after ${retryAfterS} s.`, {
    type: 'requests',
    code: 'rate_limit_exceeded',
    retryAfterS,
  });

export const tooManyConcurrent = (limit: number): OpenAiError =>
  new OpenAiError(429, `This key has ${limit} requests in flight, the most one key may have at once. Retry when one has ended.`, {
    type: 'requests',
    code: 'rate_limit_exceeded',
    retryAfterS: 1,
  });

export const tooLarge = (limitBytes: number): OpenAiError =>
  new OpenAiError(413, `The request body is larger than ${limitBytes} bytes.`, { code: 'request_too_large' });

export const unavailable = (message: string, code = 'model_unavailable', retryAfterS = 5): OpenAiError => new OpenAiError(503, message, { code, retryAfterS });

export function sendOpenAiError(reply: FastifyReply, e: OpenAiError): FastifyReply {
  if (e.retryAfterS !== undefined) void reply.header('retry-after', String(e.retryAfterS));
  return reply.code(e.status).type('application/json; charset=utf-8').send(e.body());
}

/** Parameters accepted only at the value that asks for nothing (n=1, penalties 0, logprobs off). */
const NEUTRAL_ONLY = new Set(['presence_penalty', 'frequency_penalty', 'logprobs']);

/** OpenAI's error for what fastify's schema validation reports (`err.validation`, ajv errors). */
export function fromValidation(errors: readonly { instancePath?: string; keyword?: string; message?: string; params?: Record<string, unknown> }[]): OpenAiError {
  const first = errors[0];
  if (first === undefined) return badRequest('The request body is invalid.');
  let param = (first.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
  const extra = first.params?.additionalProperty;
  if (first.keyword === 'additionalProperties' && typeof extra === 'string') {
    const name = param === '' ? extra : `${param}.${extra}`;
    return badRequest(`Unrecognized request argument supplied: ${name.slice(0, 100)}`, name.slice(0, 100), 'unsupported_parameter');
  }
  const missing = first.params?.missingProperty;
  if (first.keyword === 'required' && typeof missing === 'string') {
    const name = param === '' ? missing : `${param}.${missing}`;
    return badRequest(`Missing required parameter: '${name.slice(0, 100)}'.`, name.slice(0, 100), 'missing_required_parameter');
  }
  if (param === '') param = 'body';
  if (first.keyword === 'enum' && (param === 'n' || param === 'best_of')) return badRequest(`Only ${param}=1 is supported.`, param, 'unsupported_value');
  if (first.keyword === 'enum' && NEUTRAL_ONLY.has(param)) return badRequest(`Unsupported value for '${param}': this server implements only its neutral value.`, param, 'unsupported_value');
  const why = first.keyword === 'type' ? typeMessage(first.params?.type) : undefined;
  return badRequest(`Invalid value for '${param.slice(0, 100)}': ${(why ?? first.message ?? 'invalid').slice(0, 200)}.`, param.slice(0, 100));
}

const TYPE_NAMES: Record<string, string> = { integer: 'an integer', number: 'a number', string: 'a string', boolean: 'a boolean', object: 'an object', array: 'an array', null: 'null' };

/** ajv's type error in words: "must be an integer or null" where ajv says "must be integer,null". */
function typeMessage(type: unknown): string | undefined {
  const types = Array.isArray(type) ? type : typeof type === 'string' ? type.split(',') : [];
  const names = types.map((t) => TYPE_NAMES[String(t)]);
  if (names.length === 0 || names.some((n) => n === undefined)) return undefined;
  return `must be ${names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]!}`}`;
}
