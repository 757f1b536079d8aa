/**
 * The OpenAI-compatible API as users reach it: the official `openai` npm client against real `neuroshard start`
 * processes (a node holding the whole genesis model, not training, so its weights stay fixed): the model list,
 * chat completions without and with streaming (the same text at temperature 0), legacy completions, a bad request
 * (400), an unknown model (404), the rate limit (429); and a node exposed with --api-host, which refuses a missing
 * or wrong API key (401) and serves a key made by `neuroshard apikey create`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { cliJson, killAll, LOCAL_NODE_FLAGS, startCli, type CliProcess } from '../utils/cli-process.js';
import { tempDir } from '../utils/paths.js';

after(killAll);

const NODE_FLAGS = [...LOCAL_NODE_FLAGS, '--no-train', '--threads', '1'];

async function startNode(args: string[]): Promise<{ node: CliProcess; v1: string }> {
  const node = startCli(['start', ...NODE_FLAGS, ...args]);
  const m = await node.waitLine(/OpenAI-compatible API at (\S+);/, 120_000);
  // the API answers 503 until the layer pool has placed and loaded the node's span (it logs "holding layers")
  await node.waitLine(/holding layers/, 120_000);
  return { node, v1: m[1]! };
}

async function stop(node: CliProcess): Promise<void> {
  node.child.kill('SIGTERM');
  assert.equal(await node.exited, 0, node.err.slice(-2000));
}

/** The error a client call rejects with. */
async function apiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `expected an APIError, got ${String(e)}`);
    return e;
  }
  assert.fail('the call succeeded');
}

describe('OpenAI-compatible API (official openai client, neuroshard start)', () => {
  const a = tempDir('ns-openai-e2e-');
  let node: CliProcess;
  let client: OpenAI;
  before(async () => {
    const s = await startNode(['--data-dir', a.dir, '--api-rate-limit', '40']);
    node = s.node;
    client = new OpenAI({ baseURL: s.v1, apiKey: 'not-needed-on-loopback', maxRetries: 0, timeout: 120_000 });
  });
  after(async () => {
    if (node !== undefined && node.child.exitCode === null) await stop(node);
    a.cleanup();
  });

  it('lists the model', async () => {
    const models = await client.models.list();
    const ids = models.data.map((m) => m.id);
    assert.deepEqual(ids, ['neurollm']);
    assert.equal(models.data[0]!.owned_by, 'neuroshard');
  });

  it('answers a chat, and streams the same text at temperature 0, with usage as the last chunk', async () => {
    const req = { model: 'neurollm', messages: [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Tell me about the city.' }], max_tokens: 12, temperature: 0 };
    const full = await client.chat.completions.create(req);
    const choice = full.choices[0]!;
    assert.equal(full.object, 'chat.completion');
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.ok(choice.message.content!.length > 0);
    assert.ok(choice.finish_reason === 'length' || choice.finish_reason === 'stop');
    assert.ok(full.usage!.prompt_tokens > 5);
    assert.ok(full.usage!.completion_tokens >= 1 && full.usage!.completion_tokens <= 12);
    assert.equal(full.usage!.total_tokens, full.usage!.prompt_tokens + full.usage!.completion_tokens);

    const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let deltas = 0;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      const c = chunk.choices[0];
      if (c !== undefined) {
        if (c.delta.content) {
          text += c.delta.content;
          deltas++;
        }
        if (c.finish_reason !== null) finish = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, choice.message.content, 'streamed text equals the non-streamed text');
    assert.ok(deltas >= 2, `the text came in ${deltas} deltas`);
    assert.equal(finish, choice.finish_reason);
    assert.deepEqual(usage, full.usage);
  });

  it('answers legacy completions, streamed or not, with stop strings honoured', async () => {
    const r = await client.completions.create({ model: 'neurollm', prompt: 'The jury said', max_tokens: 10, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    const text = r.choices[0]!.text;
    assert.ok(text.length > 0);
    const s = await client.completions.create({ model: 'neurollm', prompt: 'The jury said', max_tokens: 10, temperature: 0, stream: true });
    let streamed = '';
    for await (const c of s) streamed += c.choices[0]?.text ?? '';
    assert.equal(streamed, text);
    // a stop string taken from the greedy text itself: the answer ends right before it
    const words = text.trim().split(/\s+/);
    if (words.length >= 2) {
      const stopWord = ' ' + words[1]!;
      const cut = await client.completions.create({ model: 'neurollm', prompt: 'The jury said', max_tokens: 10, temperature: 0, stop: [stopWord] });
      assert.equal(cut.choices[0]!.text, text.slice(0, text.indexOf(stopWord)));
      assert.equal(cut.choices[0]!.finish_reason, 'stop');
    }
  });

  it('seeded sampling repeats with the same seed', async () => {
    const req = { model: 'neurollm', prompt: 'It was', max_tokens: 8, temperature: 1, top_p: 0.9, seed: 42 };
    const x = await client.completions.create(req);
    const y = await client.completions.create(req);
    assert.equal(x.choices[0]!.text, y.choices[0]!.text);
  });

  it('refuses a bad request with 400 and an unknown model with 404, in OpenAI error shape', async () => {
    const bad = await apiError(client.chat.completions.create({ model: 'neurollm', messages: [{ role: 'user', content: 'x' }], temperature: 7 }));
    assert.equal(bad.status, 400);
    assert.equal(bad.type, 'invalid_request_error');
    assert.equal(bad.param, 'temperature');
    const n = await apiError(client.chat.completions.create({ model: 'neurollm', messages: [{ role: 'user', content: 'x' }], n: 2 }));
    assert.equal(n.status, 400);
    assert.equal(n.param, 'n');
    const long = await apiError(client.completions.create({ model: 'neurollm', prompt: 'x', max_tokens: 100_000 }));
    assert.equal(long.status, 400);
    const missing = await apiError(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }));
    assert.equal(missing.status, 404);
    assert.equal(missing.code, 'model_not_found');
    assert.equal(missing.param, 'model');
  });

  it('answers 429 with Retry-After once the rate limit is spent', async () => {
    let limited: InstanceType<typeof OpenAI.APIError> | undefined;
    for (let i = 0; i < 200 && limited === undefined; i++) {
      try {
        await client.models.list();
      } catch (e) {
        if (e instanceof OpenAI.APIError) limited = e;
        else throw e;
      }
    }
    assert.ok(limited !== undefined, 'no 429 within 200 requests at 40 per minute');
    assert.equal(limited.status, 429);
    assert.equal(limited.code, 'rate_limit_exceeded');
    assert.ok(Number(limited.headers?.get('retry-after')) >= 1);
  });
});

describe('exposed OpenAI-compatible API (--api-host, API keys)', () => {
  const b = tempDir('ns-openai-e2e-exposed-');
  after(() => b.cleanup());

  it('refuses a missing or wrong key (401) and serves a key from `neuroshard apikey create`', async () => {
    const created = (await cliJson(['apikey', 'create', '--name', 'e2e', '--json', '--data-dir', b.dir])) as { key: string; id: string };
    assert.match(created.key, /^nsk-/);
    const listed = (await cliJson(['apikey', 'list', '--json', '--data-dir', b.dir])) as { keys: { id: string; name: string }[] };
    assert.deepEqual(
      listed.keys.map((k) => k.name),
      ['e2e'],
    );
    assert.ok(!JSON.stringify(listed).includes(created.key), 'list never shows a key');
    // 127.0.0.2 is on the loopback interface but is not the default address: the API runs in exposed mode
    const { node, v1 } = await startNode(['--data-dir', b.dir, '--api-host', '127.0.0.2']);
    try {
      assert.match(v1, /^http:\/\/127\.0\.0\.2:\d+\/v1$/);
      const wrong = await apiError(new OpenAI({ baseURL: v1, apiKey: 'nsk-wrong', maxRetries: 0 }).models.list());
      assert.equal(wrong.status, 401);
      assert.equal(wrong.code, 'invalid_api_key');
      const none = await fetch(`${v1}/models`);
      assert.equal(none.status, 401);
      assert.equal(((await none.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
      const client = new OpenAI({ baseURL: v1, apiKey: created.key, maxRetries: 0, timeout: 120_000 });
      assert.deepEqual(
        (await client.models.list()).data.map((m) => m.id),
        ['neurollm'],
      );
      const chat = await client.chat.completions.create({ model: 'neurollm', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0 });
      assert.ok(chat.choices[0]!.message.content!.length > 0);
      // the /api routes stay on 127.0.0.1 only
      const status = await fetch(v1.replace(/\/v1$/, '/api/status'));
      assert.equal(status.status, 403);
      // a revoked key stops working on the running node
      await cliJson(['apikey', 'revoke', created.id, '--json', '--data-dir', b.dir]);
      assert.equal((await apiError(client.models.list())).status, 401);
    } finally {
      await stop(node);
    }
  });
});
