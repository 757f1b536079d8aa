/**
 * POST /api/generate over the node's own worker (a one-hop route): the JSON and SSE shapes of the issue, the same
 * tokens as the worker's `generate` job (the code behind `neuroshard generate`) greedy and seeded, stop strings,
 * bad bodies, and no session left behind in the worker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiServer } from '../../../src/api/index.js';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { genesisModelView, NodeGenerator } from '../../../src/node/serving.js';

const genesis = bundledGenesis();
const L = genesis.config.num_hidden_layers;

async function post(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

async function postStream(url: string, body: unknown): Promise<any[]> {
  const res = await fetch(`${url}/api/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body as object, stream: true }) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => JSON.parse(b.slice(6)));
}

describe('POST /api/generate on a node holding the whole model', () => {
  let compute: ComputeClient;
  let api: ApiServer;
  let url: string;
  let gen: NodeGenerator;
  const model = genesisModelView(genesis);

  before(async () => {
    compute = await ComputeClient.start({ threads: 1 });
    await compute.run({ type: 'initModel', config: genesis.config, seed: 0 });
    gen = new NodeGenerator({ compute, genesis, selfPeerId: 'self-peer', localSpan: () => ({ start: 0, end: L }) });
    api = new ApiServer({ port: 0 }, { status: { status: () => { throw new Error('unused'); }, peers: () => [] }, generator: () => gen });
    url = (await api.listen()).url;
  });
  after(async () => {
    await api.close();
    await compute.close();
  });

  const reference = async (prompt: string, o: { maxTokens: number; temperature: number; topK: number; topP: number; seed: number }): Promise<number[]> => {
    const r = await compute.run({ type: 'generate', prompt: Int32Array.from(model.encode(prompt)), ...o, stopIds: [genesis.config.eos_token_id] });
    return Array.from(r.tokens);
  };

  it('answers greedy JSON with the tokens of the generate job', async () => {
    const want = await reference('The jury said', { maxTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0 });
    const { status, json } = await post(url, { prompt: 'The jury said', max_tokens: 24, temperature: 0 });
    assert.equal(status, 200);
    assert.deepEqual(Object.keys(json).sort(), ['failovers', 'finish_reason', 'route', 'routes', 'text', 'tokens']);
    assert.deepEqual(json.tokens, want);
    assert.equal(json.text, model.decode(want));
    assert.deepEqual(json.route, [{ peerId: 'self-peer', span: [0, L], weights: 'f32' }]);
    assert.deepEqual(json.routes, [{ from_token: 0, hops: json.route }], 'no failover: the one route produced every token');
    assert.equal(json.failovers, 0);
    assert.equal(json.finish_reason, want.length === 24 ? 'length' : 'stop');
  });

  it('streams route, one event per token, then done; seeded sampling matches the generate job', async () => {
    const o = { maxTokens: 20, temperature: 0.9, topK: 40, topP: 0.95, seed: 7 };
    const want = await reference('It was a', o);
    const events = await postStream(url, { prompt: 'It was a', max_tokens: 20, temperature: 0.9, top_k: 40, top_p: 0.95, seed: 7 });
    assert.deepEqual(events[0], { route: [{ peerId: 'self-peer', span: [0, L], weights: 'f32' }] });
    const tokens = events.slice(1, -1);
    assert.ok(tokens.every((e) => Number.isInteger(e.token) && typeof e.text === 'string'));
    assert.deepEqual(tokens.map((e) => e.token), want);
    const done = events.at(-1);
    assert.equal(done.done, true);
    assert.deepEqual(done.tokens, want);
    assert.equal(tokens.map((e) => e.text).join(''), done.text);
    assert.equal(done.failovers, 0);
    assert.deepEqual(done.routes, [{ from_token: 0, hops: events[0].route }]);
  });

  it('cuts the text before a stop string and says stop', async () => {
    const base = await post(url, { prompt: 'The', max_tokens: 30, temperature: 0 });
    const full: string = base.json.text;
    assert.ok(full.length > 4, 'some text to cut');
    const stop = full.slice(3, 5);
    const r = await post(url, { prompt: 'The', max_tokens: 30, temperature: 0, stop: [stop] });
    assert.equal(r.status, 200);
    assert.equal(r.json.finish_reason, 'stop');
    assert.equal(r.json.text, full.slice(0, full.indexOf(stop)));
    const events = await postStream(url, { prompt: 'The', max_tokens: 30, temperature: 0, stop });
    assert.equal(events.slice(1, -1).map((e) => e.text).join(''), r.json.text);
  });

  it('answers 400 with a typed error to bad bodies', async () => {
    for (const body of [{}, { prompt: 3 }, { prompt: 'x', max_tokens: 0 }, { prompt: 'x', temperature: -1 }, { prompt: 'x', top_p: 0 }, { prompt: 'x', stop: [''] }, { prompt: 'x', bogus: 1 }, { prompt: 'x', stream: 'yes' }, [1, 2]]) {
      const r = await post(url, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(typeof r.json.error.code, 'string');
    }
    const long = await post(url, { prompt: 'a '.repeat(40_000) });
    assert.equal(long.status, 400);
    assert.equal(long.json.error.code, 'prompt_too_long');
  });

  it('leaves no session in the worker', async () => {
    // closing is fire-and-forget after the answer: wait for the worker to have run the close jobs
    await compute.run({ type: 'ping' });
    const l = await compute.run({ type: 'sessionList' });
    assert.deepEqual(l.ids, []);
    assert.equal(l.kvBytes, 0);
  });
});
