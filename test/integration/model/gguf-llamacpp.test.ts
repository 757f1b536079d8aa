/**
 * An exported GGUF runs in llama.cpp (node-llama-cpp 3.21.1, installed on first use into scripts/llamacpp: a
 * failed install fails this file, it is never skipped) with our tokens:
 *
 * - llama.cpp tokenizes text exactly as our tokenizer does (`tokenizer.ggml.pre = dbrx`, gpt2 vocabulary): a mixed
 *   sample, a many-script Unicode sample and 20 Brown documents;
 * - f32: llama.cpp's greedy continuation equals ours, token for token, for an untied GQA model (our checkpoint) and
 *   for a tied Hugging Face directory exported through the CLI;
 * - f16 and q8_0: teacher-forced agreement (llama.cpp's argmax after our prompt + our greedy tokens so far) is
 *   measured and bounded below;
 * - the same weights written WITHOUT the q/k RoPE permutation give other tokens: the permutation is what makes
 *   llama.cpp's interleaved RoPE compute our rotate-half model;
 * - the bench's `llamacpp` section runs in its quick form and fills its keys, decode_bound_share included (no timing is asserted).
 *
 * The models are small random ones, sharpened (embedding and LM head ×4, q/k ×6, other matrices ×2) so that greedy
 * choices are decisive and attention depends on positions: with N(0, 0.02²) weights the top two logits differ by
 * less than float rounding between engines, and the residual stream ignores attention (so RoPE would not show).
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openLlamaCppModel, type LlamaCppModel } from '../../../src/compute/llamacpp/anchor.js';
import { loadGenesisTokenizer, readBrownDocuments } from '../../../src/data/index.js';
import { makeConfig, toHfConfigJson, type LlamaConfig } from '../../../src/model/config.js';
import { GgufReader, writeGguf } from '../../../src/model/gguf.js';
import { llamaGguf } from '../../../src/model/gguf-llama.js';
import { generate, LlamaShard, saveCheckpoint, writeSafetensors } from '../../../src/model/index.js';
import { TOKENIZER_FILE_NAME } from '../../../src/model/tokenizer/index.js';
import { exportGguf } from '../../../src/node/export.js';
import { createReferenceBackend, selectBackend, type Backend } from '../../../src/tensor/index.js';
import { REPO_ROOT, tempDir } from '../../utils/paths.js';

const TOKENIZER = join(REPO_ROOT, 'src', 'data', 'genesis', TOKENIZER_FILE_NAME);
const TEXT = 'The jury said it did find that many of Georgia\'s registration and election laws "are outmoded".\n\n  Numbers 12345, émigrés, naïve café — ok? Yes!!\ttab\r\nend';
/** Many scripts, emoji with a skin-tone modifier, a ligature, non-ASCII digits, no-break/em/line-separator spaces, a BOM, NEL. */
const UNICODE = 'Ünïcödé ΑΒΓ δέλτα Привет мир 你好世界 こんにちは 한국어 العربية हिन्दी 🙂👍🏽 ﬁ ½ ² ٣ x\u00a0y\u2003z \u2028 \ufeffbom \u0085nel';
const PROMPT_TEXT = "The jury said it did find that many of Georgia's registration and election laws";
const NEW_TOKENS = 48;

function sharpened(config: LlamaConfig, backend: Backend, seed: number): LlamaShard {
  const model = new LlamaShard({ config, backend, seed });
  for (const e of model.layout.entries) {
    if (e.shape.length < 2) continue;
    // decisive logits (embedding, head), attention that looks at positions (q, k), and layers that matter (the rest)
    const scale = /embed_tokens|lm_head/.test(e.name) ? 4 : /[qk]_proj/.test(e.name) ? 6 : 2;
    const w = model.params.subarray(e.offset, e.offset + e.size);
    for (let i = 0; i < w.length; i++) w[i] *= scale;
  }
  return model;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'bin', 'neuroshard.js'), ...args], { cwd: REPO_ROOT, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function prefixAgreement(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

describe('GGUF export in llama.cpp (node-llama-cpp)', { timeout: 20 * 60_000 }, () => {
  const tmp = tempDir('neuroshard-gguf-');
  const tok = loadGenesisTokenizer();
  let backend: Backend;
  // untied, grouped-query (4 query heads over 2 KV heads), FFN 344 (not a multiple of 32: its down projection
  // falls back to F16 in a q8_0 file)
  const config = makeConfig({ hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 344, vocab_size: 4096, max_position_embeddings: 256 });
  let model: LlamaShard;
  let ckptDir: string;
  let prompt: number[];
  let ours: number[];
  const open: LlamaCppModel[] = [];
  const load = async (path: string): Promise<LlamaCppModel> => {
    const m = await openLlamaCppModel(path, { threads: 1, contextSize: 256, log: (l) => console.log(l) });
    open.push(m);
    return m;
  };

  before(async () => {
    backend = (await selectBackend({ backend: 'auto', threads: 1 })).backend;
    model = sharpened(config, backend, 7);
    ckptDir = saveCheckpoint({ root: join(tmp.dir, 'ckpt'), step: 1, model: { config, layout: model.layout, params: model.params }, tokenizerPath: TOKENIZER }).dir;
    prompt = Array.from(tok.encode(PROMPT_TEXT, { bos: true }));
    ours = generate(model, prompt, { maxTokens: NEW_TOKENS, temperature: 0, stopIds: [] }).tokens;
    assert.equal(ours.length, NEW_TOKENS);
    assert.ok(new Set(ours).size > 10, 'the reference continuation should not be one repeated token');
  });

  after(async () => {
    for (const m of open) await m.close();
    tmp.cleanup();
  });

  it('f32: llama.cpp tokenizes like us and continues greedily with exactly our tokens', async () => {
    const out = join(tmp.dir, 'f32.gguf');
    const r = await exportGguf({ checkpoint: ckptDir, out, dtype: 'f32' });
    assert.deepEqual(r.types, { F32: 21 });
    const m = await load(out);
    assert.deepEqual(m.tokenize(TEXT), Array.from(tok.encode(TEXT)), 'tokenization differs');
    assert.equal(m.detokenize(Array.from(tok.encode(TEXT))), TEXT);
    assert.deepEqual(m.tokenize(UNICODE), Array.from(tok.encode(UNICODE)), 'tokenization of the Unicode sample differs');
    // 20 Brown documents (~66k tokens; all 500, 1.65 M tokens, were checked by hand the same way)
    for (const d of readBrownDocuments().slice(0, 20)) assert.deepEqual(m.tokenize(d.text), Array.from(tok.encode(d.text)), `tokenization of ${d.name} differs`);
    const g = await m.greedy(prompt, NEW_TOKENS);
    assert.deepEqual(g.tokens, ours, `llama.cpp agreed on the first ${prefixAgreement(g.tokens, ours)} tokens only`);
    assert.deepEqual(await m.predictNext(prompt, ours), ours);
  });

  it('f16 and q8_0: teacher-forced agreement with our f32 model (measured)', async () => {
    const measured: Record<string, { teacherForced: number; freeRunPrefix: number }> = {};
    for (const dtype of ['f16', 'q8_0'] as const) {
      const out = join(tmp.dir, `${dtype}.gguf`);
      const r = await exportGguf({ checkpoint: ckptDir, out, dtype });
      assert.deepEqual(r.types, dtype === 'f16' ? { F32: 5, F16: 16 } : { F32: 5, Q8_0: 14, F16: 2 });
      const m = await load(out);
      const pred = await m.predictNext(prompt, ours);
      const tf = pred.filter((x, i) => x === ours[i]).length / ours.length;
      const free = prefixAgreement((await m.greedy(prompt, NEW_TOKENS)).tokens, ours);
      measured[dtype] = { teacherForced: tf, freeRunPrefix: free };
    }
    console.log(`agreement with our f32 greedy tokens (${NEW_TOKENS} positions): ${JSON.stringify(measured)}`);
    // measured here: f16 1.0 (48/48 free-running too); q8_0 ≥ 0.97 teacher-forced, its free-running continuation
    // leaving ours within a few tokens on this random model (near-tied logits compound)
    assert.ok(measured.f16.teacherForced >= 0.95, `f16 agreement ${measured.f16.teacherForced}`);
    assert.ok(measured.q8_0.teacherForced >= 0.85, `q8_0 agreement ${measured.q8_0.teacherForced}`);
  });

  it('without the q/k RoPE permutation llama.cpp computes another function', async () => {
    const out = join(tmp.dir, 'unpermuted.gguf');
    writeGguf(out, llamaGguf({ config, layout: model.layout, params: model.params, tokenizer: tok, dtype: 'f32', name: 'unpermuted', ropePermute: false }));
    const m = await load(out);
    const pred = await m.predictNext(prompt, ours);
    const agree = pred.filter((x, i) => x === ours[i]).length;
    console.log(`unpermuted q/k: llama.cpp agrees with our next token at ${agree}/${ours.length} positions`);
    assert.ok(agree < ours.length * 0.9, `unpermuted weights still agreed on ${agree}/${ours.length}: the test model cannot tell RoPE conventions apart`);
  });

  it('a tied Hugging Face checkpoint exports through the CLI and runs with our tokens', async () => {
    const hf = join(tmp.dir, 'hf-tied');
    mkdirSync(hf);
    const tied = makeConfig({ hidden_size: 96, num_hidden_layers: 2, num_attention_heads: 3, num_key_value_heads: 1, head_dim: 32, intermediate_size: 256, vocab_size: 4096, max_position_embeddings: 128, tie_word_embeddings: true });
    const tm = sharpened(tied, createReferenceBackend(), 11);
    writeFileSync(join(hf, 'config.json'), JSON.stringify(toHfConfigJson(tied)));
    writeSafetensors(join(hf, 'model.safetensors'), tm.layout.entries.map((e) => ({ name: e.name, shape: [...e.shape], data: tm.params.subarray(e.offset, e.offset + e.size) })));
    copyFileSync(TOKENIZER, join(hf, TOKENIZER_FILE_NAME));
    const out = join(tmp.dir, 'tied.gguf');
    const r = await cli(['export', '--checkpoint', hf, '--format', 'gguf', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { out: string; format: string; dtype: string; tensors: number };
    assert.equal(j.format, 'gguf');
    assert.equal(j.dtype, 'f32');
    const g = GgufReader.open(out);
    try {
      assert.ok(!g.info.tensors.some((t) => t.name === 'output.weight'), 'a tied model has no output.weight');
      assert.equal(j.tensors, g.info.tensors.length);
      assert.equal(g.get('llama.attention.key_length'), 32);
    } finally {
      g.close();
    }
    const want = generate(tm, prompt, { maxTokens: 32, temperature: 0, stopIds: [] }).tokens;
    const m = await load(out);
    const got = await m.greedy(prompt, 32);
    assert.deepEqual(got.tokens, want, `llama.cpp agreed on the first ${prefixAgreement(got.tokens, want)} tokens only`);
  });

  it('bad usage exits 2; a missing checkpoint or tokenizer exits 1 with a JSON error', async () => {
    const out = join(tmp.dir, 'x.gguf');
    assert.equal((await cli(['export', '--checkpoint', ckptDir, '--out', out, '--dtype', 'q4_0'])).code, 2);
    assert.equal((await cli(['export', '--checkpoint', ckptDir, '--out', out, '--format', 'onnx'])).code, 2);
    assert.equal((await cli(['export', '--checkpoint', ckptDir])).code, 2);
    const missing = await cli(['export', '--checkpoint', join(tmp.dir, 'nope'), '--out', out, '--json']);
    assert.equal(missing.code, 1);
    assert.equal((JSON.parse(missing.stderr.trim().split('\n').pop()!) as { error: { code: string } }).error.code, 'CHECKPOINT_MISSING');
    const bare = join(tmp.dir, 'bare');
    mkdirSync(bare);
    writeFileSync(join(bare, 'config.json'), JSON.stringify(toHfConfigJson(config)));
    writeSafetensors(join(bare, 'model.safetensors'), model.layout.entries.map((e) => ({ name: e.name, shape: [...e.shape], data: model.params.subarray(e.offset, e.offset + e.size) })));
    const noTok = await cli(['export', '--checkpoint', bare, '--out', out, '--json']);
    assert.equal(noTok.code, 1);
    assert.equal((JSON.parse(noTok.stderr.trim().split('\n').pop()!) as { error: { code: string } }).error.code, 'TOKENIZER_MISSING');
  });

  it('the bench section runs (npm run bench -- --quick --only llamacpp) and fills its keys', () => {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'bench.mjs'), '--quick', '--only', 'llamacpp', '--no-torch'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 600_000,
      env: { ...process.env, NEUROSHARD_BENCH_THREADS: '1' },
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const json = JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as Record<string, Record<string, Record<string, unknown>>>;
    const tiny = json.llamacpp_decode_tok_s?.tiny as { f32: number; q8_0: number } | undefined;
    assert.ok(tiny !== undefined && tiny.f32 > 0 && tiny.q8_0 > 0, r.stdout);
    assert.ok((json.llamacpp_decode_ratio.tiny as { f32: number }).f32 > 0);
    assert.ok((json.decode_bandwidth.read_gb_s as unknown as number) > 0);
    // session 18: the share against the read bound sampled before each run, with the bytes a step reads
    const share = json.decode_bound_share?.tiny as Record<string, { share: { median: number }; bound_gb_s: { min: number }; read_mb: Record<string, number> }> | undefined;
    assert.ok(share !== undefined, r.stdout);
    for (const k of ['f32', 'int8']) {
      assert.ok(share[k].share.median > 0 && share[k].bound_gb_s.min > 0, r.stdout);
      assert.ok(share[k].read_mb.total > share[k].read_mb.matrices && share[k].read_mb.kv > 0, r.stdout);
    }
  });
});
