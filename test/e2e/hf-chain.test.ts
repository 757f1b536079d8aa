/**
 * A Hugging Face checkpoint with its own tokenizer.json and chat template, served across nodes: real
 * `neuroshard start --checkpoint DIR` processes, layers 0:1 on the genesis node (the entry, holding the embedding)
 * and 1:3 on a second node. The entry renders the checkpoint's chat template, encodes it with the special-token
 * strings as their ids (no second BOS), and stops on the tokenizer's end-of-turn token (`<|eot|>`, the
 * tokenizer_config's eos_token, not the config's eos_token_id) exactly as one node holding the whole checkpoint does:
 * same text, finish_reason and usage, through the official `openai` client.
 *
 * The checkpoint is a small untied random model written here as config.json + model.safetensors (a tied one cannot
 * be split: layer 0 and the head share the embedding), with a SentencePiece-style BPE tokenizer.json whose last ids
 * are `<|eot|>` and `<|eom|>`. Its seed is the first whose greedy answer to "user hello" says a few tokens and then
 * `<|eot|>`, and whose answer to "user hi" runs to max_tokens without an end id (searched here on the reference
 * backend, weights sharpened so that greedy choices are decisive on every engine).
 *
 * The checkpoint also ships a generation_config.json (`do_sample: false`, end ids [2, <|eom|>]): a request that leaves
 * out `temperature` samples greedily on every node that knows the network's files (SAMPLE_SEED is a seed whose
 * temperature-1 answer differs from the greedy one, so the check can fail), and the legacy completion stops on
 * `<|eom|>`, an end id that only generation_config.json names (the seed is also one whose greedy completion says
 * `<|eom|>` after a token or more). Last, joiners without the checkpoint (`--network-id`) fetch the config, download
 * their layers from the holders and carry the chain when a holder is SIGKILLed, the entry without the checkpoint still
 * answering exactly: one pinned to `--span 1:3` (replacing the checkpoint's 1:3 holder), then one with `--span auto`
 * sized by the fetched config (replacing the pinned one). The checkpoint is built by test/utils/hf-checkpoint.ts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { makeConfig } from '../../src/model/config.js';
import { generate, LlamaShard } from '../../src/model/index.js';
import { HfTokenizer } from '../../src/model/tokenizer/hf.js';
import { createReferenceBackend } from '../../src/tensor/index.js';
import { chatTemplateFor } from '../../src/node/openai.js';
import { bundledGenesis } from '../../src/node/genesis.js';
import { waitFor } from '../../src/util/abort.js';
import { killAll, LOCAL_NODE_FLAGS, startCli, type CliProcess } from '../utils/cli-process.js';
import { sentencePieceTokenizerJson, sharpen, SP_BASE_VOCAB, writeHfCheckpoint, writeHfTokenizerFiles } from '../utils/hf-checkpoint.js';
import { apiGet, bootFlag } from '../utils/serving-e2e.js';
import { tempDir } from '../utils/paths.js';

after(killAll);

/** The tokenizer's ids (test/utils/hf-checkpoint.ts) and two end-of-turn tokens after them: the model's vocabulary. */
const EOT = SP_BASE_VOCAB;
/** An end id that only generation_config.json names (as Llama 3's `<|eom_id|>`). */
const EOM = SP_BASE_VOCAB + 1;
const VOCAB = EOM + 1;

const TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['role'] }} {{ m['content'] }}</s>{% endfor %}assistant";
const COMMON = [...LOCAL_NODE_FLAGS, '--no-train', '--threads', '1'];
const STOPS = { model: 'neurollm', messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 8, temperature: 0 };
const RUNS = { ...STOPS, messages: [{ role: 'user' as const, content: 'hi' }] };
const COMPLETION = { model: 'neurollm', prompt: 'the model', max_tokens: 8, temperature: 0 };

/** The seed a sampled (temperature 1) answer to STOPS uses; chosen in `before` so that it differs from greedy. */
let SAMPLE_SEED = 0;
/** Where the greedy completion of COMPLETION says `<|eom|>` (its tokens before it are the answer); set in `before`. */
let EOM_AT = -1;

type Answer = { text: string; finish: string | null; usage: OpenAI.CompletionUsage | undefined };

async function ask(client: OpenAI): Promise<{ stops: Answer; runs: Answer; completion: Answer }> {
  const chat = async (req: typeof STOPS): Promise<Answer> => {
    const r = await client.chat.completions.create(req);
    return { text: r.choices[0]!.message.content ?? '', finish: r.choices[0]!.finish_reason, usage: r.usage };
  };
  const c = await client.completions.create(COMPLETION);
  return { stops: await chat(STOPS), runs: await chat(RUNS), completion: { text: c.choices[0]!.text, finish: c.choices[0]!.finish_reason, usage: c.usage } };
}

function clientFor(v1: string): OpenAI {
  return new OpenAI({ baseURL: v1, apiKey: 'not-needed-on-loopback', maxRetries: 0, timeout: 180_000 });
}

async function v1Of(p: CliProcess): Promise<string> {
  return (await p.waitLine(/OpenAI-compatible API at (\S+);/, 300_000))[1]!;
}

describe('a Hugging Face chat checkpoint served across nodes', () => {
  const root = tempDir('ns-hf-chain-');
  const dir = join(root.dir, 'ckpt');
  let single: Awaited<ReturnType<typeof ask>>;
  let entry: CliProcess;
  let client: OpenAI;
  let networkId: string;
  let bare: CliProcess;
  let bareV1: string;
  let bHolder: CliProcess;
  after(() => {
    if (process.env.CHAIN_DEBUG) console.log(entry?.err, bare?.err);
    killAll();
    root.cleanup();
  });

  before(async () => {
    writeHfTokenizerFiles(dir, {
      tokenizer: sentencePieceTokenizerJson(['<|eot|>', '<|eom|>']),
      tokenizerConfig: { bos_token: '<s>', eos_token: '<|eot|>', unk_token: '<unk>', chat_template: TEMPLATE },
    });
    const tok = HfTokenizer.load(dir);
    const completionIds = Array.from(tok.encodePrompt(COMPLETION.prompt, 'text'));
    const idsOf = (content: string): number[] => Array.from(tok.encodePrompt(chatTemplateFor(tok).render([{ role: 'user', content }]), 'chat'));
    const config = makeConfig({ hidden_size: 64, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 32, intermediate_size: 128, vocab_size: VOCAB, max_position_embeddings: 64, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 });
    let model: LlamaShard | undefined;
    for (let seed = 1; seed <= 2000 && model === undefined; seed++) {
      const m = new LlamaShard({ config, backend: createReferenceBackend(), seed });
      sharpen(m);
      const greedy = (ids: number[]): number[] => Array.from(generate(m, ids, { maxTokens: 8, temperature: 0, stopIds: [] }).tokens);
      const a = greedy(idsOf('hello'));
      const at = a.indexOf(EOT);
      if (at < 2 || at > 5 || a.slice(0, at).some((t) => t === 2 || t === EOM)) continue;
      const b = greedy(idsOf('hi'));
      if (b.includes(EOT) || b.includes(2) || b.includes(EOM)) continue;
      const c = greedy(completionIds);
      const cm = c.indexOf(EOM);
      if (cm < 1 || cm >= COMPLETION.max_tokens || c.slice(0, cm).some((t) => t === 2 || t === EOT)) continue;
      EOM_AT = cm;
      model = m;
    }
    assert.ok(model !== undefined, 'no seed gives the wanted answers');
    const found = model;
    // an answer ends at the first end id: config.json's, the tokenizer's <|eot|>, generation_config.json's <|eom|>
    const stopAt = (t: number[]): number[] => {
      const end = t.findIndex((x) => x === 2 || x === EOT || x === EOM);
      return end < 0 ? t : t.slice(0, end);
    };
    const greedyHello = stopAt(Array.from(generate(found, idsOf('hello'), { maxTokens: 8, temperature: 0, stopIds: [] }).tokens));
    for (let s = 1; s <= 200 && SAMPLE_SEED === 0; s++) {
      const sampled = stopAt(Array.from(generate(found, idsOf('hello'), { maxTokens: 8, temperature: 1, seed: s, stopIds: [] }).tokens));
      if (sampled.join() !== greedyHello.join()) SAMPLE_SEED = s;
    }
    assert.ok(SAMPLE_SEED > 0, 'no seed samples an answer other than the greedy one');
    writeHfCheckpoint(dir, model, { generationConfig: { bos_token_id: 1, eos_token_id: [2, EOM], do_sample: false, transformers_version: '4.46.0' } });

    // one node holding the whole checkpoint: the reference
    const whole = startCli(['start', '--data-dir', join(root.dir, 'whole'), ...COMMON, '--genesis', '--checkpoint', dir], {}, { detached: true });
    const wv1 = await v1Of(whole);
    await whole.waitLine(/holding layers span=0:3/, 300_000);
    single = await ask(clientFor(wv1));
    console.log(`one node: ${JSON.stringify(single)}`);
    whole.child.kill('SIGTERM');
    assert.equal(await whole.exited, 0, whole.err.slice(-2000));

    // the chain: the genesis node holds 0:1 (the embedding) and is the entry; a second node holds 1:3
    entry = startCli(['start', '--data-dir', join(root.dir, 'a'), ...COMMON, '--genesis', '--checkpoint', dir, '--span', '0:1'], {}, { detached: true });
    const v1 = await v1Of(entry);
    await entry.waitLine(/holding layers span=0:1/, 300_000);
    const url = v1.replace(/\/v1$/, '');
    const b = startCli(['start', '--data-dir', join(root.dir, 'b'), ...COMMON, '--checkpoint', dir, '--span', '1:3', ...(await bootFlag(url))], {}, { detached: true });
    await b.waitLine(/holding layers span=1:3/, 300_000);
    bHolder = b;
    await waitFor(
      async () => ((await apiGet(url, '/api/peers')) as { peers: { liveness: string; span: unknown }[] } | undefined)?.peers.some((p) => (p.liveness === 'alive' || p.liveness === 'stale') && p.span !== null) === true,
      { timeoutMs: 300_000, intervalMs: 1000, what: 'the 1:3 holder seen from the entry' },
    );
    client = clientFor(v1);

    // an entry without the checkpoint: it holds no layers and knows only the network id (which commits to the
    // checkpoint's config and tokenizer files); it fetches them from the genesis node, verified, and serves with them
    networkId = ((await apiGet(url, '/api/status')) as { networkId: string }).networkId;
    assert.match(networkId, /^ns1-[0-9a-f]{32}$/);
    assert.notEqual(networkId, bundledGenesis().networkId, 'the network id commits to the HF checkpoint');
    bare = startCli(['start', '--data-dir', join(root.dir, 'bare'), ...COMMON, '--span', 'none', '--network-id', networkId, ...(await bootFlag(url))], {}, { detached: true });
    bareV1 = await v1Of(bare);
    await bare.waitLine(/model files of the network fetched and verified/, 300_000);
    const bareUrl = bareV1.replace(/\/v1$/, '');
    await waitFor(
      async () => ((await apiGet(bareUrl, '/api/peers')) as { peers: { liveness: string; span: { start: number; end: number } | null }[] } | undefined)?.peers.filter((p) => (p.liveness === 'alive' || p.liveness === 'stale') && p.span !== null).length === 2,
      { timeoutMs: 300_000, intervalMs: 1000, what: 'both holders seen from the entry without the checkpoint' },
    );
  });

  it('the single node applies the template (special tokens as ids, one BOS) and stops on <|eot|>', () => {
    const tok = HfTokenizer.load(dir);
    const ids = Array.from(tok.encodePrompt(chatTemplateFor(tok).render(STOPS.messages), 'chat'));
    assert.equal(ids.filter((i) => i === 1).length, 1, 'one BOS');
    assert.ok(ids.includes(2), '</s> in the template is its id');
    assert.equal(single.stops.usage!.prompt_tokens, ids.length);
    // a few tokens, then <|eot|>: the answer stops there (the stop token is neither counted nor shown)
    assert.equal(single.stops.finish, 'stop');
    assert.ok(single.stops.usage!.completion_tokens >= 2 && single.stops.usage!.completion_tokens <= 5, JSON.stringify(single.stops));
    assert.equal(single.runs.finish, 'length');
    assert.ok(single.runs.text.length > 0);
  });

  it("the single node stops on <|eom|>, an end id that only the checkpoint's generation_config.json names", () => {
    // config.json's eos_token_id is 2 and the tokenizer's eos_token <|eot|>: only generation_config.json lists <|eom|>
    assert.deepEqual([single.completion.finish, single.completion.usage!.completion_tokens], ['stop', EOM_AT], JSON.stringify(single.completion));
  });

  it('the entry of the chain answers exactly as the single node: template, special tokens, stops, usage', async () => {
    const mark = entry.err.length;
    const chain = await ask(client);
    assert.deepEqual(chain, single);
    const route = /openai generation route hops="([^"]+)"/.exec(entry.err.slice(mark));
    assert.ok(route !== null, 'the entry logged its route');
    assert.match(route[1]!, /\[0:1\] -> \w+\[1:3\]$/);
  });

  it("takes the checkpoint's generation_config.json defaults: no temperature in the request → greedy (do_sample false)", async () => {
    const { temperature: _, ...noTemperature } = STOPS;
    const r = await client.chat.completions.create({ ...noTemperature, seed: SAMPLE_SEED });
    assert.equal(r.choices[0]!.message.content, single.stops.text);
  });

  it('streams the same text, ending with the same finish_reason', async () => {
    for (const [req, want] of [[STOPS, single.stops], [RUNS, single.runs]] as const) {
      let text = '';
      let finish: string | null = null;
      for await (const c of await client.chat.completions.create({ ...req, stream: true })) {
        text += c.choices[0]?.delta.content ?? '';
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      assert.deepEqual([text, finish], [want.text, want.finish]);
    }
  });

  it('an entry without the checkpoint (--span none --network-id) fetches the tokenizer and template from peers and answers exactly as the single node', async () => {
    const mark = bare.err.length;
    const c = clientFor(bareV1);
    assert.deepEqual(await ask(c), single);
    const route = /openai generation route hops="([^"]+)"/.exec(bare.err.slice(mark));
    assert.ok(route !== null, 'the entry logged its route');
    assert.match(route[1]!, /\w+\[0:1\] -> \w+\[1:3\]$/);
    let text = '';
    for await (const ch of await c.chat.completions.create({ ...STOPS, stream: true })) text += ch.choices[0]?.delta.content ?? '';
    assert.equal(text, single.stops.text);
    // the fetched generation_config.json: no temperature → greedy
    const { temperature: _, ...noTemperature } = STOPS;
    const r = await c.chat.completions.create({ ...noTemperature, seed: SAMPLE_SEED });
    assert.equal(r.choices[0]!.message.content, single.stops.text);
  });

  /** Starts a node without the checkpoint (`--network-id`) that joins through the entry without it. */
  async function joiner(name: string, span: string[]): Promise<{ p: CliProcess; peerId: string; span: [number, number] }> {
    const p = startCli(['start', '--data-dir', join(root.dir, name), ...COMMON, '--network-id', networkId, ...span, ...(await bootFlag(bareV1.replace(/\/v1$/, '')))], {}, { detached: true });
    await p.waitLine(/model files of the network fetched and verified/, 300_000);
    const held = await p.waitLine(/holding layers span=(\d+):(\d+) source=(\w+)/, 300_000);
    // a node without the checkpoint has no weights of its own: they came from the holders
    assert.equal(held[3], 'peers', held[0]);
    const url = (await p.waitLine(/OpenAI-compatible API at (\S+);/, 300_000))[1]!.replace(/\/v1$/, '');
    const peerId = ((await apiGet(url, '/api/status')) as { peerId: string }).peerId;
    const bareUrl = bareV1.replace(/\/v1$/, '');
    await waitFor(
      async () => ((await apiGet(bareUrl, '/api/peers')) as { peers: { peerId: string; liveness: string; span: unknown }[] } | undefined)?.peers.some((x) => x.peerId === peerId && x.liveness === 'alive' && x.span !== null) === true,
      { timeoutMs: 300_000, intervalMs: 1000, what: `the ${name} joiner seen holding layers from the entry without the checkpoint` },
    );
    return { p, peerId, span: [Number(held[1]), Number(held[2])] };
  }

  /** SIGKILLs `dead`, then asks the entry without the checkpoint twice: the single node's answers, `served` on the route. */
  async function carries(dead: CliProcess, served: string): Promise<void> {
    dead.child.kill('SIGKILL');
    const mark = bare.err.length;
    const c = clientFor(bareV1);
    // the first answer may fail over from the dead holder; every answer is the single node's
    assert.deepEqual(await ask(c), single);
    assert.deepEqual(await ask(c), single);
    // a one-hop route is logged without quotes (hops=peer[0:3]), a longer one quoted
    const routes = [...bare.err.slice(mark).matchAll(/openai generation route hops=(?:"([^"]+)"|(\S+))/g)].map((m) => m[1] ?? m[2]!);
    assert.ok(routes.some((r) => r.includes(served)), `the joiner served: ${routes.join(' | ')}`);
  }

  let pinned: CliProcess;

  it('a joiner without the checkpoint pinned to --span 1:3 downloads those layers and carries the chain when the checkpoint holder of 1:3 dies', async () => {
    const j = await joiner('pinned', ['--span', '1:3']);
    assert.deepEqual(j.span, [1, 3]);
    pinned = j.p;
    await carries(bHolder, `${j.peerId}[1:3]`);
  });

  it('a joiner without the checkpoint (--span auto) takes a span by the fetched config, and carries the chain when the pinned joiner dies', async () => {
    const j = await joiner('auto', []);
    const [start, end] = j.span;
    // the fetched config has 3 layers (the bundled genesis model has 4): the span is sized by it, and covers 1:3
    assert.equal(end, 3, `${start}:${end}`);
    assert.ok(start <= 1, `${start}:${end}`);
    await carries(pinned, j.peerId);
  });
});
