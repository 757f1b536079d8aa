/**
 * The OpenAI-compatible API across nodes, as users reach it: the official `openai` npm client against the node
 * holding the embedding (layers 0:2 of the seeded genesis model) of a chain of real `neuroshard start` processes,
 * with layers 2:4 on two replicas. Every answer at temperature 0 is compared with the text of one whole-model node
 * serving the same weights (started alone first, then stopped): models, chat (non-streaming and streaming), legacy
 * completions, a 400 and a 404; and a streamed chat during which the replica serving 2:4 is SIGKILLed: the stream
 * completes with the same text through a failover to the other replica (the entry logs "replacing a hop").
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { waitFor } from '../../src/util/abort.js';
import { killAll, killGroup, LOCAL_NODE_FLAGS, startCli, type CliProcess } from '../utils/cli-process.js';
import { apiGet, bootFlag } from '../utils/serving-e2e.js';
import { tempDir } from '../utils/paths.js';

after(killAll);

const COMMON = [...LOCAL_NODE_FLAGS, '--no-train', '--threads', '1'];
const CHAT = { model: 'neurollm', messages: [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Tell me about the city.' }], max_tokens: 24, temperature: 0 };
const COMPLETION = { model: 'neurollm', prompt: 'The jury said', max_tokens: 16, temperature: 0 };
// long enough that the kill after the 10th delta lands while the chain still generates (the entry may run ahead of the reader)
const LONG_CHAT = { ...CHAT, max_tokens: 200 };

function clientFor(v1: string): OpenAI {
  return new OpenAI({ baseURL: v1, apiKey: 'not-needed-on-loopback', maxRetries: 0, timeout: 180_000 });
}

async function v1Of(p: CliProcess): Promise<string> {
  return (await p.waitLine(/OpenAI-compatible API at (\S+);/, 300_000))[1]!;
}

interface Reference {
  chat: string;
  chatFinish: string | null;
  completion: string;
  longChat: string;
}

async function streamedChat(client: OpenAI, req: typeof CHAT, onDelta?: (n: number) => void): Promise<{ text: string; finish: string | null }> {
  const stream = await client.chat.completions.create({ ...req, stream: true });
  let text = '';
  let finish: string | null = null;
  let n = 0;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (c?.delta.content) {
      text += c.delta.content;
      onDelta?.(++n);
    }
    if (c?.finish_reason) finish = c.finish_reason;
  }
  return { text, finish };
}

describe('OpenAI-compatible API across a chain of neuroshard start processes', () => {
  const root = tempDir('ns-openai-chain-');
  let ref: Reference;
  let entry: CliProcess;
  let client: OpenAI;
  const replicas: { proc: CliProcess; peerId: string }[] = [];
  after(() => {
    if (process.env.CHAIN_DEBUG) console.log(entry?.err, replicas.map((r) => r.proc.err).join('\n----\n'));
    killAll();
    root.cleanup();
  });

  before(async () => {
    // 1. the reference: one node holding the whole seeded genesis model, alone (no bootstrap), then stopped
    const whole = startCli(['start', '--data-dir', join(root.dir, 'whole'), ...COMMON], {}, { detached: true });
    const wholeV1 = await v1Of(whole);
    await whole.waitLine(/holding layers span=0:4/, 300_000);
    const wc = clientFor(wholeV1);
    const chat = await wc.chat.completions.create(CHAT);
    const completion = await wc.completions.create(COMPLETION);
    const longChat = await wc.chat.completions.create(LONG_CHAT);
    ref = { chat: chat.choices[0]!.message.content!, chatFinish: chat.choices[0]!.finish_reason, completion: completion.choices[0]!.text, longChat: longChat.choices[0]!.message.content! };
    assert.ok(ref.chat.length > 0 && ref.completion.length > 0);
    assert.ok(longChat.usage!.completion_tokens >= 30, `the long reference has ${longChat.usage!.completion_tokens} tokens: too short to kill a hop during it`);
    whole.child.kill('SIGTERM');
    assert.equal(await whole.exited, 0, whole.err.slice(-2000));

    // 2. the chain: the genesis node holds 0:2 (the embedding) and is the entry; two replicas hold 2:4
    entry = startCli(['start', '--data-dir', join(root.dir, 'a'), ...COMMON, '--genesis', '--span', '0:2', '--hop-timeout-ms', '15000'], {}, { detached: true });
    const v1 = await v1Of(entry);
    await entry.waitLine(/holding layers span=0:2/, 300_000);
    const url = v1.replace(/\/v1$/, '');
    const boot = await bootFlag(url);
    const procs = ['b', 'c'].map((n) => startCli(['start', '--data-dir', join(root.dir, n), ...COMMON, '--span', '2:4', ...boot], {}, { detached: true }));
    for (const proc of procs) {
      await proc.waitLine(/holding layers span=2:4/, 300_000);
      const peerId = (await proc.waitLine(/node up peerId=(\w+)/, 10_000))[1]!;
      replicas.push({ proc, peerId });
    }
    // the entry routes over peers whose heartbeats name their span (a busy node may not answer a poll: "not yet")
    await waitFor(
      async () => ((await apiGet(url, '/api/peers')) as { peers: { liveness: string; span: unknown }[] } | undefined)?.peers.filter((p) => (p.liveness === 'alive' || p.liveness === 'stale') && p.span !== null).length === 2,
      { timeoutMs: 300_000, intervalMs: 1000, what: 'both 2:4 replicas seen from the entry' },
    );
    client = clientFor(v1);
  });

  it('lists the model', async () => {
    assert.deepEqual(
      (await client.models.list()).data.map((m) => m.id),
      ['neurollm'],
    );
  });

  it('answers a chat with the whole-model text, and streams the same text, over two hops', async () => {
    const mark = entry.err.length;
    const full = await client.chat.completions.create(CHAT);
    assert.equal(full.choices[0]!.message.content, ref.chat);
    assert.equal(full.choices[0]!.finish_reason, ref.chatFinish);
    // the route the entry chose: itself for 0:2, a replica for 2:4
    const route = /openai generation route hops="([^"]+)"/.exec(entry.err.slice(mark));
    assert.ok(route !== null, 'the entry logged the route');
    assert.match(route[1]!, /\[0:2\] -> \w+\[2:4\]$/);
    const streamed = await streamedChat(client, CHAT);
    assert.equal(streamed.text, ref.chat);
    assert.equal(streamed.finish, ref.chatFinish);
  });

  it('answers legacy completions with the whole-model text, streamed or not', async () => {
    const r = await client.completions.create(COMPLETION);
    assert.equal(r.choices[0]!.text, ref.completion);
    const s = await client.completions.create({ ...COMPLETION, stream: true });
    let text = '';
    for await (const c of s) text += c.choices[0]?.text ?? '';
    assert.equal(text, ref.completion);
  });

  it('refuses a bad request with 400 and an unknown model with 404', async () => {
    const bad = await client.chat.completions.create({ ...CHAT, temperature: 7 }).then(
      () => assert.fail('accepted temperature 7'),
      (e: unknown) => e,
    );
    assert.ok(bad instanceof OpenAI.APIError);
    assert.equal(bad.status, 400);
    assert.equal(bad.param, 'temperature');
    const missing = await client.chat.completions.create({ ...CHAT, model: 'gpt-4o' }).then(
      () => assert.fail('accepted an unknown model'),
      (e: unknown) => e,
    );
    assert.ok(missing instanceof OpenAI.APIError);
    assert.equal(missing.status, 404);
    assert.equal(missing.code, 'model_not_found');
  });

  it('a streamed chat survives SIGKILL of the 2:4 replica it runs on: same text through a failover', async () => {
    const mark = entry.err.length;
    let killed: string | undefined;
    const { text, finish } = await streamedChat(client, LONG_CHAT, (n) => {
      if (n !== 10) return;
      // the route is logged as soon as it is chosen, before the first token
      const m = /openai generation route hops="[^"]*?(\w+)\[2:4\]"/.exec(entry.err.slice(mark));
      assert.ok(m !== null, 'the route was logged before the 10th delta');
      const victim = replicas.find((r) => r.peerId === m[1]);
      assert.ok(victim !== undefined, `the 2:4 hop ${m[1]} is one of the replicas`);
      killGroup(victim.proc);
      killed = victim.peerId;
    });
    assert.ok(killed !== undefined, 'a replica was killed during the stream');
    assert.equal(text, ref.longChat, 'the stream completed with the whole-model text');
    assert.ok(finish === 'length' || finish === 'stop');
    const failover = /replacing a hop .*peer=(\w+)/.exec(entry.err.slice(mark));
    assert.ok(failover !== null, 'the entry failed over');
    assert.equal(failover[1], killed);
  });
});
