/**
 * The /v1 routes on a real ApiServer (fastify inject) over a scripted TextGenerator (the real one, on the compute
 * worker, is driven by test/e2e/openai.test.ts): response and chunk shapes, schema errors, 404/413/401/429/503,
 * stop strings never leaking into a stream, the exposed mode's keys and its /api fence, CORS.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ApiServer, type ApiServerOptions } from '../../../src/api/server.js';
import { apiKeysPath, createApiKey, readApiKeys, revokeApiKey } from '../../../src/api/keys.js';
import type { ChatMessage, TextGenerationRequest, TextGenerationResult, TextGenerator, TokenEvent } from '../../../src/api/openai/backend.js';
import { DeltaStream } from '../../../src/api/openai/delta.js';
import { RateLimiter } from '../../../src/api/rate-limit.js';
import { tempDir } from '../../utils/paths.js';

const STATUS = { status: () => ({ peerId: 'p', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }), peers: () => [] };
const HOST = { host: '127.0.0.1:8000' };

/** Emits `pieces` one token each (cumulative text), honouring stop strings the way the node's generator does. */
class ScriptedGenerator implements TextGenerator {
  last: { req: TextGenerationRequest; messages?: ChatMessage[] } | undefined;
  constructor(
    private readonly pieces: string[],
    private readonly served = true,
  ) {}
  models() {
    return this.served ? [{ id: 'm1', created: 1_700_000_000, ownedBy: 'neuroshard', contextLength: 128 }] : [];
  }
  renderChat(_model: string, messages: ChatMessage[]): string {
    this.last = { req: undefined as never, messages };
    return messages.map((m) => `${m.role}: ${m.content}`).join('\n');
  }
  async generate(_model: string, req: TextGenerationRequest, opts: { signal: AbortSignal; onToken?: (e: TokenEvent) => void }): Promise<TextGenerationResult> {
    this.last = { ...this.last, req };
    let text = '';
    let n = 0;
    const max = req.maxTokens ?? this.pieces.length;
    for (const p of this.pieces.slice(0, max)) {
      text += p;
      n++;
      const at = Math.min(...req.stop.map((s) => text.indexOf(s)).filter((i) => i >= 0));
      if (Number.isFinite(at)) return { text: text.slice(0, at), completionTokens: n, promptTokens: 5, finishReason: 'stop' };
      opts.onToken?.({ token: n, text });
      await Promise.resolve();
    }
    return { text, completionTokens: n, promptTokens: 5, finishReason: n < this.pieces.length ? 'length' : 'stop' };
  }
}

function server(gen: TextGenerator, opts: Partial<ApiServerOptions> = {}, extra: { dataDir?: string; now?: () => number } = {}): ApiServer {
  return new ApiServer({ port: 0, ...opts }, { status: STATUS, openai: gen, ...extra });
}

/** The `data:` payloads of an SSE body. */
function events(body: string): string[] {
  return body
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => b.slice(6));
}

const servers: ApiServer[] = [];
const tmp = tempDir('ns-openai-unit-');
after(async () => {
  for (const s of servers) await s.close();
  tmp.cleanup();
});
function track(s: ApiServer): ApiServer {
  servers.push(s);
  return s;
}

describe('/v1 routes', () => {
  it('lists the models and answers a chat completion in OpenAI shape', async () => {
    const gen = new ScriptedGenerator(['Hel', 'lo', ' there']);
    const api = track(server(gen));
    const m = await api.app.inject({ method: 'GET', url: '/v1/models', headers: HOST });
    assert.deepEqual(m.json(), { object: 'list', data: [{ id: 'm1', object: 'model', created: 1_700_000_000, owned_by: 'neuroshard', context_length: 128 }] });
    const r = await api.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: HOST,
      payload: { model: 'm1', messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }], max_completion_tokens: 2, temperature: 0, seed: 7 },
    });
    assert.equal(r.statusCode, 200, r.body);
    const j = r.json();
    assert.match(j.id, /^chatcmpl-[0-9a-f]{24}$/);
    assert.equal(j.object, 'chat.completion');
    assert.deepEqual(j.choices, [{ index: 0, message: { role: 'assistant', content: 'Hello', refusal: null }, logprobs: null, finish_reason: 'length' }]);
    assert.deepEqual(j.usage, { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
    assert.deepEqual(gen.last?.messages, [{ role: 'user', content: 'ab' }]);
    assert.equal(gen.last?.req.maxTokens, 2);
    assert.equal(gen.last?.req.temperature, 0);
    assert.equal(gen.last?.req.seed, 7);
    assert.equal(gen.last?.req.kind, 'chat');
  });

  it('streams chat chunks that add up to the text, then finish_reason, usage and [DONE]', async () => {
    const api = track(server(new ScriptedGenerator(['Hel', 'lo', ' there', '!'])));
    const r = await api.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: HOST,
      payload: { model: 'm1', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true } },
    });
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    const ev = events(r.body);
    assert.equal(ev.at(-1), '[DONE]');
    const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, 'Hello there!');
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
    assert.deepEqual(chunks.at(-1).choices, []);
    assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
  });

  it("fills settings a request leaves out from the model's defaults (generation_config.json), else OpenAI's", async () => {
    const gen = new ScriptedGenerator(['a']);
    const withDefaults = Object.assign(gen, { samplingDefaults: () => ({ temperature: 0, topP: 0.9, topK: 40 }) });
    const api = track(server(withDefaults));
    const ask = async (extra: Record<string, unknown>): Promise<TextGenerationRequest> => {
      const r = await api.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: HOST, payload: { model: 'm1', messages: [{ role: 'user', content: 'x' }], ...extra } });
      assert.equal(r.statusCode, 200, r.body);
      return gen.last!.req;
    };
    assert.deepEqual(((r) => [r.temperature, r.topP, r.topK])(await ask({})), [0, 0.9, 40]);
    assert.deepEqual(((r) => [r.temperature, r.topP, r.topK])(await ask({ temperature: 1.2, top_p: 0.5 })), [1.2, 0.5, 40]);
    const c = await api.app.inject({ method: 'POST', url: '/v1/completions', headers: HOST, payload: { model: 'm1', prompt: 'p' } });
    assert.equal(c.statusCode, 200);
    assert.equal(gen.last!.req.temperature, 0);
    // a generator without defaults: OpenAI's
    const plain = new ScriptedGenerator(['a']);
    const api2 = track(server(plain));
    await api2.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: HOST, payload: { model: 'm1', messages: [{ role: 'user', content: 'x' }] } });
    assert.deepEqual(((r) => [r.temperature, r.topP, r.topK])(plain.last!.req), [1, 1, 0]);
  });

  it('never streams any part of a stop string', async () => {
    const api = track(server(new ScriptedGenerator(['The', ' end', ' EN', 'D here'])));
    const r = await api.app.inject({ method: 'POST', url: '/v1/completions', headers: HOST, payload: { model: 'm1', prompt: 'p', stream: true, stop: ' END', max_tokens: 10 } });
    const chunks = events(r.body).slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), 'The end');
    assert.ok(chunks.every((c) => !c.choices[0].text.includes(' E')), 'the held-back " EN" never went out');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    assert.equal(chunks[0].object, 'text_completion');
  });

  it('answers legacy completions (default max_tokens 16, echo)', async () => {
    const gen = new ScriptedGenerator(['a', 'b']);
    const api = track(server(gen));
    const r = await api.app.inject({ method: 'POST', url: '/v1/completions', headers: HOST, payload: { model: 'm1', prompt: 'Q:', echo: true } });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().choices[0].text, 'Q:ab');
    assert.equal(gen.last?.req.maxTokens, 16);
    assert.equal(gen.last?.req.kind, 'text');
    assert.equal(gen.last?.req.temperature, 1);
  });

  it('refuses bad bodies with 400 naming the parameter (no coercion, no silently ignored fields)', async () => {
    const api = track(server(new ScriptedGenerator(['x'])));
    const post = (payload: unknown) => api.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: HOST, payload: payload as object });
    const cases: [unknown, string, string][] = [
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], temperature: '0.5' }, 'temperature', 'invalid_value'],
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], temperature: 3 }, 'temperature', 'invalid_value'],
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], n: 2 }, 'n', 'unsupported_value'],
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], tools: [] }, 'tools', 'unsupported_parameter'],
      [{ model: 'm1', messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role', 'invalid_value'],
      [{ model: 'm1', messages: [] }, 'messages', 'invalid_value'],
      [{ model: 'm1' }, 'messages', 'missing_required_parameter'],
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', 'invalid_value'],
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], max_tokens: 0 }, 'max_tokens', 'invalid_value'],
    ];
    for (const [payload, param, code] of cases) {
      const r = await post(payload);
      assert.equal(r.statusCode, 400, JSON.stringify(payload));
      const e = r.json().error;
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, param, JSON.stringify(payload) + ' ' + r.body);
      assert.equal(e.code, code, r.body);
      assert.equal(typeof e.message, 'string');
    }
    // ajv's type errors in words (before: "must be integer,null", "must be boolean,null", "must be object")
    const words: [unknown, string][] = [
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], max_tokens: '8' }, "Invalid value for 'max_tokens': must be an integer or null."],
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, "Invalid value for 'stream': must be a boolean or null."],
      [{ model: 'm1', messages: [{ role: 'user', content: 'x' }], temperature: '0.5' }, "Invalid value for 'temperature': must be a number or null."],
    ];
    for (const [payload, message] of words) assert.equal((await post(payload)).json().error.message, message);
    const nullBody = await api.app.inject({ method: 'POST', url: '/v1/completions', headers: { ...HOST, 'content-type': 'application/json' }, payload: 'null' });
    assert.equal(nullBody.json().error.message, "Invalid value for 'body': must be an object.");
    const notJson = await api.app.inject({ method: 'POST', url: '/v1/completions', headers: { ...HOST, 'content-type': 'application/json' }, payload: '{' });
    assert.equal(notJson.statusCode, 400);
    assert.equal(notJson.json().error.type, 'invalid_request_error');
  });

  it('404 for an unknown model or URL, 413 for a large body, 503 with no model', async () => {
    const api = track(server(new ScriptedGenerator(['x']), { maxBodyBytes: 2048 }));
    const nf = await api.app.inject({ method: 'POST', url: '/v1/completions', headers: HOST, payload: { model: 'gpt-4o', prompt: 'x' } });
    assert.equal(nf.statusCode, 404);
    assert.deepEqual(nf.json().error, { message: 'The model `gpt-4o` does not exist or you do not have access to it.', type: 'invalid_request_error', param: 'model', code: 'model_not_found' });
    const url = await api.app.inject({ method: 'GET', url: '/v1/nothing', headers: HOST });
    assert.equal(url.statusCode, 404);
    assert.equal(url.json().error.code, 'unknown_url');
    const big = await api.app.inject({ method: 'POST', url: '/v1/completions', headers: HOST, payload: { model: 'm1', prompt: 'x'.repeat(4000) } });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, 'request_too_large');
    const none = track(server(new ScriptedGenerator(['x'], false)));
    const r = await none.app.inject({ method: 'POST', url: '/v1/completions', headers: HOST, payload: { model: 'm1', prompt: 'x' } });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().error.type, 'server_error');
    assert.ok(Number(r.headers['retry-after']) > 0);
  });

  it('429 past the rate limit, with Retry-After; the budget refills with time', async () => {
    let t = 1_000_000;
    const api = track(server(new ScriptedGenerator(['x']), { rateLimitPerMin: 2 }, { now: () => t }));
    const get = () => api.app.inject({ method: 'GET', url: '/v1/models', headers: HOST });
    assert.equal((await get()).statusCode, 200);
    assert.equal((await get()).statusCode, 200);
    const r = await get();
    assert.equal(r.statusCode, 429);
    assert.equal(r.json().error.code, 'rate_limit_exceeded');
    assert.equal(r.json().error.type, 'requests');
    assert.equal(r.headers['retry-after'], '30');
    t += 30_000;
    assert.equal((await get()).statusCode, 200);
  });

  it('on a loopback server, refuses Host headers that are not the loopback (DNS rebinding) and sends no CORS headers', async () => {
    const api = track(server(new ScriptedGenerator(['x'])));
    const r = await api.app.inject({ method: 'GET', url: '/v1/models', headers: { host: 'evil.example:8000', origin: 'http://evil.example' } });
    assert.equal(r.statusCode, 403);
    const ok = await api.app.inject({ method: 'GET', url: '/v1/models', headers: { ...HOST, origin: 'http://localhost:3000' } });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.headers['access-control-allow-origin'], undefined);
  });

  it('sends CORS headers and answers preflights only for configured origins', async () => {
    const api = track(server(new ScriptedGenerator(['x']), { corsOrigins: ['http://localhost:3000'] }));
    const pre = await api.app.inject({ method: 'OPTIONS', url: '/v1/chat/completions', headers: { ...HOST, origin: 'http://localhost:3000', 'access-control-request-method': 'POST' } });
    assert.equal(pre.statusCode, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'http://localhost:3000');
    assert.match(String(pre.headers['access-control-allow-headers']), /authorization/);
    const other = await api.app.inject({ method: 'GET', url: '/v1/models', headers: { ...HOST, origin: 'http://other:1' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
  });
});

describe('exposed API (--api-host)', () => {
  it('requires a key from the 0600 key file on /v1, and keeps /api to this machine', async () => {
    const dir = tmp.dir;
    const { key, record } = createApiKey(dir, { name: 'laptop' });
    assert.match(key, /^nsk-[A-Za-z0-9_-]{43}$/);
    assert.equal(statSync(apiKeysPath(dir)).mode & 0o777, 0o600);
    assert.ok(!JSON.stringify(readApiKeys(dir)).includes(key.slice(4)), 'the file holds only the hash');
    const api = track(server(new ScriptedGenerator(['x']), { host: '0.0.0.0' }, { dataDir: dir }));
    const remote = { remoteAddress: '192.0.2.7' };
    const get = (headers: Record<string, string>) => api.app.inject({ method: 'GET', url: '/v1/models', headers: { host: 'node.example:8000', ...headers }, ...remote });
    const missing = await get({});
    assert.equal(missing.statusCode, 401);
    assert.equal(missing.json().error.code, 'invalid_api_key');
    assert.equal((await get({ authorization: 'Bearer nsk-' + 'A'.repeat(43) })).statusCode, 401);
    assert.equal((await get({ authorization: `Bearer ${key}` })).statusCode, 200);
    const apiRoute = await api.app.inject({ method: 'GET', url: '/api/status', headers: { host: 'node.example:8000', authorization: `Bearer ${key}` }, ...remote });
    assert.equal(apiRoute.statusCode, 403);
    const local = await api.app.inject({ method: 'GET', url: '/api/status', headers: HOST });
    assert.equal(local.statusCode, 200);
    // revoking takes effect on the running server (the file is re-read when it changes)
    assert.equal(revokeApiKey(dir, record.id)?.name, 'laptop');
    assert.equal((await get({ authorization: `Bearer ${key}` })).statusCode, 401);
  });

  it('gives each key its own budget (per-key rateLimitPerMin)', async () => {
    const dir = tempDir('ns-openai-keys-');
    try {
      const a = createApiKey(dir.dir, { name: 'a', rateLimitPerMin: 1 });
      const b = createApiKey(dir.dir, { name: 'b' });
      const api = track(server(new ScriptedGenerator(['x']), { host: '0.0.0.0', rateLimitPerMin: 100 }, { dataDir: dir.dir, now: () => 5 }));
      const get = (key: string) => api.app.inject({ method: 'GET', url: '/v1/models', headers: { host: 'h', authorization: `Bearer ${key}` }, remoteAddress: '192.0.2.8' });
      assert.equal((await get(a.key)).statusCode, 200);
      assert.equal((await get(a.key)).statusCode, 429);
      assert.equal((await get(b.key)).statusCode, 200);
    } finally {
      dir.cleanup();
    }
  });

  it('refuses to expose without a data dir for keys, and to bind a name', () => {
    assert.throws(() => server(new ScriptedGenerator(['x']), { host: '0.0.0.0' }), /API keys/);
    assert.throws(() => server(new ScriptedGenerator(['x']), { host: 'example.com' }, { dataDir: tmp.dir }), /IP address/);
  });
});

describe('DeltaStream', () => {
  it('holds back a possible stop prefix and an incomplete character, and sends the rest at the end', () => {
    const d = new DeltaStream(['</s>', 'STOP']);
    assert.equal(d.push('Hi'), 'Hi');
    assert.equal(d.push('Hi <'), ' ');
    assert.equal(d.push('Hi </'), '');
    assert.equal(d.push('Hi </b>'), '</b>');
    assert.equal(d.push('Hi </b> caf\ufffd'), ' caf');
    assert.equal(d.push('Hi </b> café ST'), 'é ');
    assert.equal(d.push('Hi </b> café STOP and more'), '');
    assert.ok(d.stopped);
    assert.equal(d.finish('Hi </b> café '), 'ST'.slice(0, 0));
  });

  it('sends everything with no stop strings', () => {
    const d = new DeltaStream([]);
    assert.equal(d.push('a'), 'a');
    assert.equal(d.push('ab'), 'b');
    assert.equal(d.finish('abc'), 'c');
  });
});

describe('RateLimiter', () => {
  it('allows a burst of perMin, then one per 60/perMin seconds', () => {
    let t = 0;
    const l = new RateLimiter(() => t);
    for (let i = 0; i < 3; i++) assert.ok(l.take('k', 3).ok);
    const no = l.take('k', 3);
    assert.equal(no.ok, false);
    assert.equal(no.retryAfterS, 20);
    t = 20_000;
    assert.ok(l.take('k', 3).ok);
    assert.equal(l.take('k', 3).ok, false);
    assert.ok(l.take('other', 3).ok);
  });
});
