/**
 * POST /api/generate's defaults (src/api/generate.ts): a field the request leaves out takes the model's own default
 * (a checkpoint's generation_config.json, `GenerateDefaults`), else the route's documented one; a request's own value
 * always wins. On a real ApiServer (fastify inject) over a generator that records what it was asked.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { GENERATE_API_DEFAULTS, parseGenerateBody, type GenerateDefaults, type GenerateParams, type Generator } from '../../../src/api/generate.js';
import { ApiServer } from '../../../src/api/server.js';

const STATUS = { status: () => ({ peerId: 'p', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }), peers: () => [] };
const HOST = { host: '127.0.0.1:8000' };

class Recording implements Generator {
  last: GenerateParams | undefined;
  async generate(p: GenerateParams): Promise<{ text: string; tokens: number[]; finishReason: 'stop'; route: []; failovers: number }> {
    this.last = p;
    return { text: '', tokens: [], finishReason: 'stop', route: [], failovers: 0 };
  }
}

const servers: ApiServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function asked(defaults: GenerateDefaults | undefined, body: Record<string, unknown>): Promise<GenerateParams> {
  const gen = new Recording();
  const api = new ApiServer({ port: 0 }, { status: STATUS, generator: () => gen, ...(defaults === undefined ? {} : { generateDefaults: defaults }) });
  servers.push(api);
  const r = await api.app.inject({ method: 'POST', url: '/api/generate', headers: HOST, payload: body });
  assert.equal(r.statusCode, 200, r.body);
  return gen.last!;
}

const pick = (p: GenerateParams): number[] => [p.maxTokens, p.temperature, p.topK, p.topP];

describe('POST /api/generate defaults', () => {
  it("takes the model's defaults for fields the request leaves out, else the route's own", async () => {
    const D = GENERATE_API_DEFAULTS;
    assert.deepEqual(pick(await asked(undefined, { prompt: 'x' })), [D.maxTokens, D.temperature, D.topK, D.topP]);
    const model = { maxTokens: 9, temperature: 0, topK: 3, topP: 0.8 };
    assert.deepEqual(pick(await asked(model, { prompt: 'x' })), [9, 0, 3, 0.8]);
    // a model default for some fields only: the rest keep the route's
    assert.deepEqual(pick(await asked({ temperature: 0 }, { prompt: 'x' })), [D.maxTokens, 0, D.topK, D.topP]);
  });

  it("a request's own values always win, null counting as left out", async () => {
    const model = { maxTokens: 9, temperature: 0, topK: 3, topP: 0.8 };
    assert.deepEqual(pick(await asked(model, { prompt: 'x', max_tokens: 2, temperature: 1.5, top_k: 0, top_p: 1 })), [2, 1.5, 0, 1]);
    assert.deepEqual(pick(await asked(model, { prompt: 'x', temperature: null })), [9, 0, 3, 0.8]);
  });

  it('validates the request against the same bounds whatever the defaults', () => {
    assert.throws(() => parseGenerateBody({ prompt: 'x', top_p: 0 }, { topP: 0.5 }), { code: 'BAD_REQUEST' });
    assert.throws(() => parseGenerateBody({ prompt: 'x', temperature: -1 }, { temperature: 0 }), { code: 'BAD_REQUEST' });
    assert.equal(parseGenerateBody({ prompt: 'x' }, { temperature: 0 }).seed, GENERATE_API_DEFAULTS.seed);
  });
});
