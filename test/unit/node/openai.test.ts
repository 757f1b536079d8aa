/**
 * OpenAiGenerator (src/node/openai.ts) over a scripted Generator: usage counts the prompt as the entry node encodes
 * it (BOS + text), the OpenAI context check, the default max_tokens, cumulative token texts for streaming, the
 * bound on generations in flight, 503 while there is no generator. And the API options' parsing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GenerateListener, GenerateOutput, GenerateParams, Generator } from '../../../src/api/index.js';
import { loadGenesisTokenizer } from '../../../src/data/corpus.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { ourTextTokenizer } from '../../../src/model/tokenizer/hf.js';
import { generateDefaultsOf, OpenAiGenerator } from '../../../src/node/openai.js';
import { loadOptions } from '../../../src/node/options.js';

class Scripted implements Generator {
  calls: GenerateParams[] = [];
  release: (() => void) | undefined;
  constructor(private readonly pieces: string[], private readonly hold = false) {}
  async generate(p: GenerateParams, l: GenerateListener): Promise<GenerateOutput> {
    this.calls.push(p);
    if (this.hold) await new Promise<void>((r) => (this.release = r));
    this.pieces.forEach((t, i) => l.onToken?.(100 + i, t));
    return { text: this.pieces.join(''), tokens: this.pieces.map((_, i) => 100 + i), finishReason: 'length', route: [], failovers: 0 };
  }
}

const tok = ourTextTokenizer(loadGenesisTokenizer());
const config = bundledGenesis().config;
const req = { prompt: 'The jury', kind: 'text' as const, maxTokens: 5, temperature: 0, topP: 1, topK: 0, seed: 3, stop: ['x'] };

describe('OpenAiGenerator', () => {
  it('passes the request on, counts prompt tokens with BOS and gives cumulative texts', async () => {
    const g = new Scripted(['A', 'B', 'C']);
    const o = new OpenAiGenerator({ generator: () => g, config, tokenizer: tok, created: 1, maxPending: 2, defaultMaxTokens: 256 });
    assert.deepEqual(o.models().map((m) => [m.id, m.contextLength]), [['neurollm', config.max_position_embeddings]]);
    const seen: string[] = [];
    const r = await o.generate('neurollm', req, { signal: new AbortController().signal, onToken: (e) => seen.push(e.text) });
    assert.deepEqual(seen, ['A', 'AB', 'ABC']);
    assert.deepEqual(r, { text: 'ABC', completionTokens: 3, promptTokens: tok.encodePrompt('The jury', 'text').length, finishReason: 'length' });
    assert.equal(tok.encodePrompt('The jury', 'text')[0], 1, 'BOS first');
    assert.deepEqual(g.calls[0], { prompt: 'The jury', kind: 'text', maxTokens: 5, temperature: 0, topK: 0, topP: 1, seed: 3, stop: ['x'] });
    // no max_tokens: what the context leaves, at most the default
    await o.generate('neurollm', { ...req, maxTokens: null }, { signal: new AbortController().signal });
    assert.equal(g.calls[1]!.maxTokens, Math.min(256, config.max_position_embeddings - r.promptTokens));
    // the chat template of our model
    assert.equal(o.renderChat('neurollm', [{ role: 'user', content: 'Hi' }]), 'User: Hi\n\nAssistant:');
  });

  it('refuses prompt + max_tokens beyond the context, more than maxPending at once, and answers MODEL_NOT_READY without a generator', async () => {
    const g = new Scripted(['A'], true);
    const o = new OpenAiGenerator({ generator: () => g, config, tokenizer: tok, created: 1, maxPending: 1, defaultMaxTokens: 256 });
    const signal = new AbortController().signal;
    await assert.rejects(o.generate('neurollm', { ...req, maxTokens: config.max_position_embeddings }, { signal }), { code: 'PROMPT_TOO_LONG' });
    const first = o.generate('neurollm', req, { signal });
    await assert.rejects(o.generate('neurollm', req, { signal }), { code: 'GENERATION_QUEUE_FULL' });
    g.release!();
    await first;
    const none = new OpenAiGenerator({ generator: () => undefined, config, tokenizer: tok, created: 1, maxPending: 1, defaultMaxTokens: 256 });
    assert.deepEqual(none.models(), []);
    await assert.rejects(none.generate('neurollm', req, { signal }), { code: 'MODEL_NOT_READY' });
  });
});

describe("OpenAiGenerator: the model's generation_config.json defaults", () => {
  it('offers its sampling defaults to the routes and takes max_new_tokens as the default length', async () => {
    const g = new Scripted(['A']);
    const o = new OpenAiGenerator({ generator: () => g, config, tokenizer: tok, created: 1, maxPending: 2, defaultMaxTokens: 256, sampling: { temperature: 0, topK: 7, maxNewTokens: 9 } });
    assert.deepEqual(o.samplingDefaults(), { temperature: 0, topK: 7 });
    await o.generate('neurollm', { ...req, maxTokens: null }, { signal: new AbortController().signal });
    assert.equal(g.calls[0]!.maxTokens, 9);
    const plain = new OpenAiGenerator({ generator: () => g, config, tokenizer: tok, created: 1, maxPending: 2, defaultMaxTokens: 256 });
    assert.deepEqual(plain.samplingDefaults(), {});
    // a request's own length always wins
    await o.generate('neurollm', { ...req, maxTokens: 3 }, { signal: new AbortController().signal });
    assert.equal(g.calls[1]!.maxTokens, 3);
  });

  it('takes max_length less the prompt as the default length, within what the context leaves', async () => {
    const g = new Scripted(['A']);
    const signal = new AbortController().signal;
    const promptTokens = tok.encodePrompt(req.prompt, 'text').length;
    const ctx = config.max_position_embeddings;
    const o = (maxLength: number): OpenAiGenerator => new OpenAiGenerator({ generator: () => g, config, tokenizer: tok, created: 1, maxPending: 2, defaultMaxTokens: 256, sampling: { maxLength } });
    await o(promptTokens + 20).generate('neurollm', { ...req, maxTokens: null }, { signal });
    assert.equal(g.calls.at(-1)!.maxTokens, 20);
    // past the context: what the context leaves (not the 256 fallback, not max_length)
    await o(ctx * 4).generate('neurollm', { ...req, maxTokens: null }, { signal });
    assert.equal(g.calls.at(-1)!.maxTokens, ctx - promptTokens);
  });

  it("gives POST /api/generate the file's sampling settings and max_new_tokens (not max_length)", () => {
    assert.deepEqual(generateDefaultsOf({ temperature: 0, topP: 0.9, topK: 5, maxNewTokens: 7 }), { temperature: 0, topP: 0.9, topK: 5, maxTokens: 7 });
    assert.deepEqual(generateDefaultsOf({ maxLength: 4096 }), {});
    assert.deepEqual(generateDefaultsOf({}), {});
  });
});

describe('API options', () => {
  it('parse --api-host, --api-cors and --api-rate-limit, and refuse bad values', () => {
    const o = loadOptions({ flags: { dataDir: '/tmp/ns-none', apiHost: '0.0.0.0', apiCorsOrigins: ['http://localhost:3000'], apiRateLimit: '5' }, env: {} });
    assert.equal(o.apiHost, '0.0.0.0');
    assert.deepEqual(o.apiCorsOrigins, ['http://localhost:3000']);
    assert.equal(o.apiRateLimit, 5);
    const d = loadOptions({ flags: { dataDir: '/tmp/ns-none' }, env: {} });
    assert.equal(d.apiHost, '127.0.0.1');
    assert.deepEqual(d.apiCorsOrigins, []);
    assert.throws(() => loadOptions({ flags: { dataDir: '/tmp/ns-none', apiHost: 'example.com' }, env: {} }), /apiHost/);
    assert.throws(() => loadOptions({ flags: { dataDir: '/tmp/ns-none', apiCorsOrigins: ['http://x.com/path'] }, env: {} }), /apiCorsOrigins/);
    assert.throws(() => loadOptions({ flags: { dataDir: '/tmp/ns-none', apiRateLimit: '-1' }, env: {} }), /apiRateLimit/);
    assert.deepEqual(loadOptions({ flags: { dataDir: '/tmp/ns-none' }, env: { NEUROSHARD_API_CORS_ORIGINS: 'http://a.b,https://c.d:8443' } }).apiCorsOrigins, ['http://a.b', 'https://c.d:8443']);
  });
});
