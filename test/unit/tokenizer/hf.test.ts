/**
 * Hugging Face tokenizer.json files, built here (no downloads): a byte-level BPE in Llama 3's layout and a
 * SentencePiece-style BPE with byte fallback in Llama 2 / TinyLlama's layout, loaded through HfTokenizer; and our
 * own tokenizer written as tokenizer.json, which encodes exactly as ours does.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadGenesisTokenizer } from '../../../src/data/corpus.js';
import { readBrownDocuments } from '../../../src/data/brown.js';
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE } from '../../../src/model/chat-template.js';
import { bytesToUnicode, HfTokenizer, ourHfTokenizerConfig, toHfTokenizerJson } from '../../../src/model/tokenizer/hf.js';
import { PRETOKENIZE_PATTERN_SOURCE } from '../../../src/model/tokenizer/index.js';

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const LLAMA3_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

const ZEPHYR_TEMPLATE =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

/** A Llama 3-style byte-level BPE: 256 byte symbols, a few merges, special tokens after them. */
function llama3Files(): { tok: Record<string, unknown>; cfg: Record<string, unknown> } {
  const b2u = bytesToUnicode();
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[b2u[b]!] = b;
  const merges: [string, string][] = [
    ['Ġ', 'w'], // 256 "Ġw"
    ['o', 'r'], // 257 "or"
    ['Ġw', 'or'], // 258 "Ġwor"
    ['l', 'd'], // 259 "ld"
    ['Ġwor', 'ld'], // 260 "Ġworld"
    ['H', 'e'], // 261 "He"
    ['l', 'l'], // 262 "ll"
    ['He', 'll'], // 263 "Hell"
    ['Hell', 'o'], // 264 "Hello"
  ];
  let id = 256;
  for (const [a, b] of merges) vocab[a + b] = id++;
  const specials = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'];
  const added = specials.map((content, i) => ({ id: 300 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tok = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [300], tokens: ['<|begin_of_text|>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
  };
  const cfg = { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', chat_template: LLAMA3_TEMPLATE, tokenizer_class: 'PreTrainedTokenizerFast' };
  return { tok, cfg };
}

/** A Llama 2 / TinyLlama-style SentencePiece BPE: ▁ for spaces, <0xNN> byte fallback, <s> added by the post-processor. */
function llama2Files(): { tok: Record<string, unknown>; cfg: Record<string, unknown> } {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  const pieces = ['▁', 'e', 'l', 'o', 'H', 'w', 'r', 'd', 'h', 'i', '|', 'u', 's', 't', 'a', 'n', 'y', 'm', '>', '<', '\n'];
  let id = 259;
  for (const p of pieces) vocab[p] = id++;
  const merges: [string, string][] = [
    ['l', 'l'], // "ll"
    ['H', 'e'], // "He"
    ['▁', 'w'], // "▁w"
    ['He', 'll'], // "Hell"
    ['Hell', 'o'], // "Hello"
    ['o', 'r'], // "or"
    ['▁w', 'or'], // "▁wor"
    ['▁wor', 'l'], // "▁worl"
    ['▁worl', 'd'], // "▁world"
    ['▁', 'Hello'], // "▁Hello"
  ];
  for (const [a, b] of merges) vocab[a + b] = id++;
  const added = [
    { id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 2, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ];
  const tok = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
  const cfg = { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', chat_template: ZEPHYR_TEMPLATE, add_bos_token: true, legacy: false, tokenizer_class: 'LlamaTokenizer' };
  return { tok, cfg };
}

const dirs: string[] = [];
function writeDir(files: { tok: Record<string, unknown>; cfg: Record<string, unknown> }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ns-hf-tok-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(files.tok));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(files.cfg));
  return dir;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('HfTokenizer: byte-level BPE (Llama 3 layout)', () => {
  const tok = HfTokenizer.load(writeDir(llama3Files()));

  it('encodes with the merges, adds <|begin_of_text|> for text prompts, and decodes back', () => {
    assert.deepEqual(Array.from(tok.encodePrompt('Hello world', 'text')), [300, 264, 260]);
    assert.deepEqual(Array.from(tok.encode('Hello world', { addSpecialTokens: false })), [264, 260]);
    assert.equal(tok.decode([300, 264, 260]), 'Hello world');
    // bytes outside the merges: one id per byte, é is two bytes
    assert.deepEqual(Array.from(tok.encode('é!', { addSpecialTokens: false })), [0xc3, 0xa9, 0x21]);
    assert.equal(tok.decode([0xc3, 0xa9, 0x21]), 'é!');
    assert.equal(tok.vocabSize, 305);
  });

  it('renders the checkpoint chat template, whose special-token strings become their ids', () => {
    assert.deepEqual(tok.stopIds, [304]);
    const t = new ChatTemplate(tok.chatTemplate!, { bos: tok.bosToken, eos: tok.eosToken });
    const prompt = t.render([{ role: 'user', content: 'Hello world' }]);
    assert.equal(prompt, '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello world<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
    const ids = Array.from(tok.encodePrompt(prompt, 'chat'));
    assert.equal(ids[0], 300);
    assert.equal(ids[1], 302);
    assert.equal(ids.filter((i) => i === 300).length, 1, 'nothing added to a rendered chat');
    assert.ok(ids.includes(304) && ids.includes(264) && ids.includes(260));
  });
});

describe("HfTokenizer: generation_config.json's end-of-generation ids (Llama 3 Instruct names three)", () => {
  it('adds them to the stop ids, and refuses an id past the vocabulary', () => {
    const dir = writeDir(llama3Files());
    // Llama 3 Instruct: <|end_of_text|>, <|eot_id|> (the config's EOS) and a third; here 301, 304 and 302
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 300, eos_token_id: [301, 304, 302], do_sample: true, temperature: 0.6, top_p: 0.9 }));
    assert.deepEqual(HfTokenizer.load(dir).stopIds, [304, 301, 302]);
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 305 }));
    assert.throws(() => HfTokenizer.load(dir), { code: 'TOKENIZER_INVALID' });
    writeFileSync(join(dir, 'generation_config.json'), '{"eos_token_id": "x"}');
    assert.throws(() => HfTokenizer.load(dir), { code: 'GENERATION_CONFIG_INVALID' });
  });
});

describe('HfTokenizer: SentencePiece-style BPE (Llama 2 / TinyLlama layout)', () => {
  const tok = HfTokenizer.load(writeDir(llama2Files()));
  const id = (s: string): number => tok.tokenToId(s)!;

  it('prepends ▁, merges, falls back to bytes, adds <s>, and decodes back', () => {
    assert.deepEqual(Array.from(tok.encodePrompt('Hello world', 'text')), [1, id('▁Hello'), id('▁world')]);
    assert.equal(tok.decode(tok.encodePrompt('Hello world', 'text')), 'Hello world');
    // 'é' is not in the vocabulary: its two UTF-8 bytes as <0xC3> <0xA9>
    const ids = Array.from(tok.encode('é', { addSpecialTokens: false }));
    assert.deepEqual(ids, [id('▁'), 3 + 0xc3, 3 + 0xa9]);
    assert.equal(tok.decode(ids), 'é');
  });

  it('renders the Zephyr-style template of TinyLlama chat checkpoints', () => {
    const t = new ChatTemplate(tok.chatTemplate!, { bos: tok.bosToken, eos: tok.eosToken });
    const prompt = t.render([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ]);
    assert.equal(prompt, '<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n');
    const ids = Array.from(tok.encodePrompt(prompt, 'chat'));
    assert.equal(ids.filter((i) => i === 2).length, 2, 'each </s> in the text is the eos id');
    assert.deepEqual(tok.stopIds, [2]);
  });
});

describe('our tokenizer as tokenizer.json', () => {
  it('encodes the genesis corpus exactly as our tokenizer does and decodes back', () => {
    const ours = loadGenesisTokenizer();
    const json = toHfTokenizerJson(ours, PRETOKENIZE_PATTERN_SOURCE);
    const hf = HfTokenizer.fromObjects(JSON.parse(JSON.stringify(json)) as Record<string, unknown>, ourHfTokenizerConfig(DEFAULT_CHAT_TEMPLATE));
    assert.equal(hf.vocabSize, ours.vocabSize);
    const docs = readBrownDocuments();
    const texts = [docs[0]!.text.slice(0, 20_000), docs[250]!.text.slice(0, 20_000), "Don't  stop\n\n  99,000 naïve cafés 🙂 — ok?", ''];
    for (const t of texts) {
      assert.deepEqual(Array.from(hf.encodePrompt(t, 'text')), Array.from(ours.encode(t, { bos: true })), `encodes ${JSON.stringify(t.slice(0, 40))}`);
      assert.equal(hf.decode(ours.encode(t)), t);
    }
  });
});

describe('ChatTemplate', () => {
  it('renders the default template for our models', () => {
    const t = new ChatTemplate(DEFAULT_CHAT_TEMPLATE);
    const out = t.render([
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: ' Hello there. ' },
    ]);
    assert.equal(out, 'System: You are terse.\n\nUser: Hello there.\n\nAssistant:');
  });

  it("turns a template's raise_exception into a typed caller error", () => {
    const t = new ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok");
    assert.equal(t.render([{ role: 'user', content: 'x' }]), 'ok');
    assert.throws(() => t.render([{ role: 'assistant', content: 'x' }]), (e: Error & { code?: string }) => e.code === 'CHAT_TEMPLATE_REFUSED' && /first message/.test(e.message));
  });
});
