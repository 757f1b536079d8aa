/**
 * `routes` in POST /api/generate's answer (issue 8: after a failover, which chain produced which tokens): the JSON
 * answer and the SSE `done` event name them `[{"from_token", "hops"}]`; a generator that does not report them (no
 * failover: its own worker) gets its route from token 0; the JS client (ApiClient) checks and reads them; the CLI
 * prints one line part per route. On a real ApiServer over a generator that answers what the test gives it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ApiClient } from '../../../src/api/client.js';
import { generateAnswer, type GenerateOutput, type Generator } from '../../../src/api/generate.js';
import { ApiServer } from '../../../src/api/server.js';
import { formatRoutes } from '../../../src/cli/generate/index.js';

const STATUS = { status: () => ({ peerId: 'p', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }), peers: () => [] };
const A = { peerId: 'peer-aaaaaaaa', span: [0, 2] as [number, number], weights: 'f32' as const };
const B = { peerId: 'peer-bbbbbbbb', span: [2, 4] as [number, number], weights: 'f32' as const };
const B2 = { peerId: 'peer-cccccccc', span: [2, 4] as [number, number], weights: 'f32' as const };
const FAILED_OVER: GenerateOutput = { text: 'abcde', tokens: [1, 2, 3, 4, 5], finishReason: 'length', route: [A, B], routes: [{ fromToken: 0, hops: [A, B] }, { fromToken: 3, hops: [A, B2] }], failovers: 1 };

const servers: ApiServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function serve(out: GenerateOutput): Promise<{ api: ApiServer; client: ApiClient }> {
  const gen: Generator = { generate: async (_p, l) => (l.onRoute?.(out.route), out) };
  const api = new ApiServer({ port: 0 }, { status: STATUS, generator: () => gen });
  servers.push(api);
  const { url } = await api.listen();
  return { api, client: new ApiClient({ port: Number(new URL(url).port) }) };
}

const params = { prompt: 'x', maxTokens: 5, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] };

describe('routes in the generate answer', () => {
  it('the JSON answer and the SSE done event carry every route, from which token on', async () => {
    const { api } = await serve(FAILED_OVER);
    const want = [{ from_token: 0, hops: [A, B] }, { from_token: 3, hops: [A, B2] }];
    const json = await api.app.inject({ method: 'POST', url: '/api/generate', headers: { host: '127.0.0.1:8000' }, payload: { prompt: 'x' } });
    assert.deepEqual(JSON.parse(json.body).routes, want);
    assert.deepEqual(JSON.parse(json.body).route, [A, B], 'route: as first chosen');
    const sse = await api.app.inject({ method: 'POST', url: '/api/generate', headers: { host: '127.0.0.1:8000' }, payload: { prompt: 'x', stream: true } });
    const events = sse.body.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => JSON.parse(b.slice(6)));
    assert.equal(events.at(-1).done, true);
    assert.deepEqual(events.at(-1).routes, want);
  });

  it('a generator that reports no routes: its route produced every token', () => {
    const out = { text: '', tokens: [9], finishReason: 'stop' as const, route: [A], failovers: 0 };
    assert.deepEqual(generateAnswer(out).routes, [{ from_token: 0, hops: [A] }]);
  });

  it('the JS client reads them, and refuses routes out of order', async () => {
    const { client } = await serve(FAILED_OVER);
    const r = await client.generate(params);
    assert.deepEqual(r.routes, FAILED_OVER.routes);
    for (const routes of [
      [{ fromToken: 1, hops: [A, B] }],
      [{ fromToken: 0, hops: [A, B] }, { fromToken: 0, hops: [A, B2] }],
      [{ fromToken: 0, hops: [A, B] }, { fromToken: 6, hops: [A, B2] }],
      [],
    ]) {
      const bad = await serve({ ...FAILED_OVER, routes });
      await assert.rejects(bad.client.generate(params), { code: 'API_BAD_RESPONSE' }, JSON.stringify(routes));
    }
  });

  it('the CLI names the tokens each route produced', () => {
    assert.equal(formatRoutes(FAILED_OVER), '5 tokens (length) tokens 0-2 through aaaaaaaa[0:2] → bbbbbbbb[2:4]; tokens 3-4 through aaaaaaaa[0:2] → cccccccc[2:4], 1 failover(s)');
    assert.equal(formatRoutes({ ...FAILED_OVER, routes: [FAILED_OVER.routes![0]!], failovers: 0 }), '5 tokens (length) through aaaaaaaa[0:2] → bbbbbbbb[2:4]');
    // a failover on the step that sampled the end-of-sequence token: that route produced no token of the answer
    assert.equal(formatRoutes({ ...FAILED_OVER, routes: [FAILED_OVER.routes![0]!, { fromToken: 4, hops: [A, B2] }, { fromToken: 5, hops: [A, B] }], failovers: 2 }), '5 tokens (length) tokens 0-3 through aaaaaaaa[0:2] → bbbbbbbb[2:4]; token 4 through aaaaaaaa[0:2] → cccccccc[2:4]; from token 5 (the end) through aaaaaaaa[0:2] → bbbbbbbb[2:4], 2 failover(s)');
  });
});
