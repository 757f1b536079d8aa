/**
 * GGUF writer and reader (model/gguf.ts) and the llama mapping (model/gguf-llama.ts): the byte layout of the
 * header, alignment, Q8_0 blocks bit for bit as ggml's quantize_row_q8_0_ref writes them, F16 rounding, the RoPE
 * row permutation, GPT-2 byte-level token texts, and refusals of bad files. (llama.cpp itself loads what we write
 * in test/integration/model/gguf-llamacpp.test.ts.)
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeConfig } from '../../../src/model/config.js';
import {
  dequantizeQ8_0,
  f16BitsToF32,
  f32ToF16Bits,
  GGUF_MAGIC,
  gguf,
  GgufFormatError,
  GgufReader,
  ggufHeader,
  GgufType,
  parseGgufHeader,
  quantizeQ8_0,
  writeGguf,
} from '../../../src/model/gguf.js';
import { decodeWeightBytes, ggufTokenizerMetadata, ggufTensorName, ggufTensorType, gpt2ByteToUnicode, GgufVocabError, llamaGguf, permuteRopeRows, unpermuteRopeRows } from '../../../src/model/gguf-llama.js';
import { ParamLayout } from '../../../src/model/layout.js';
import { Tokenizer } from '../../../src/model/tokenizer/index.js';
import { tempDir } from '../../utils/paths.js';

const tmp = tempDir('neuroshard-gguf-unit-');
after(() => tmp.cleanup());

describe('Q8_0 and F16 encodings', () => {
  it('Q8_0 writes ggml blocks: f16 scale amax/127, then roundf(x/d) with halves away from zero', () => {
    const x = new Float32Array(64);
    // block 0: amax 127 → d = 1 exactly; values on .5 go away from zero
    x.set([127, -127, 2.5, -2.5, 0.49, -0.5, 3.4999, 0], 0);
    // block 1: all zeros → d = 0 and zero quants (no division by zero)
    const b = quantizeQ8_0(x);
    assert.equal(b.length, 2 * 34);
    const dv = new DataView(b.buffer);
    assert.equal(dv.getUint16(0, true), 0x3c00); // half 1.0
    assert.deepEqual(Array.from(new Int8Array(b.buffer, 2, 8)), [127, -127, 3, -3, 0, -1, 3, 0]);
    assert.equal(dv.getUint16(34, true), 0);
    assert.ok(new Int8Array(b.buffer, 36, 32).every((q) => q === 0));
  });

  it('Q8_0 uses float32 d and 1/d as ggml does, and round-trips within half a step', () => {
    const x = new Float32Array(32 * 8);
    let s = 12345;
    for (let i = 0; i < x.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      x[i] = ((s / 2 ** 32) - 0.5) * (1 + (i >> 5));
    }
    const b = quantizeQ8_0(x);
    const y = dequantizeQ8_0(b);
    for (let blk = 0; blk < 8; blk++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[blk * 32 + j]));
      const d = Math.fround(amax / 127);
      const id = Math.fround(1 / d);
      assert.equal(f16BitsToF32(new DataView(b.buffer).getUint16(blk * 34, true)), f16BitsToF32(f32ToF16Bits(d)));
      for (let j = 0; j < 32; j++) {
        const q = new Int8Array(b.buffer, blk * 34 + 2, 32)[j];
        const v = Math.fround(x[blk * 32 + j] * id);
        assert.equal(q, v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5));
        // half a step, plus the scale's own rounding to half (|q| ≤ 127 times d · 2^-11)
        assert.ok(Math.abs(y[blk * 32 + j] - x[blk * 32 + j]) <= d * 0.5 + 127 * d * 2 ** -11 + 1e-7);
      }
    }
    assert.throws(() => quantizeQ8_0(new Float32Array(33)), /multiple of 32/);
  });

  it('F16 rounds to nearest even and keeps subnormals, infinities and NaN', () => {
    assert.equal(f32ToF16Bits(1), 0x3c00);
    assert.equal(f32ToF16Bits(-2), 0xc000);
    assert.equal(f32ToF16Bits(65504), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00); // rounds up to Inf
    assert.equal(f32ToF16Bits(2 ** -24), 0x0001);
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie → even
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
    assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
    assert.equal(f16BitsToF32(0x3555), 0.333251953125);
  });
});

describe('GGUF layout', () => {
  it('writes magic, version 3, counts, typed metadata and 32-byte-aligned tensor data that the reader returns', () => {
    const path = join(tmp.dir, 'a.gguf');
    const w = new Float32Array([1, 2, 3, 4, 5, 6]);
    const q = new Float32Array(64).map((_, i) => i - 32);
    writeGguf(path, {
      metadata: [
        ['general.architecture', gguf.str('llama')],
        ['x.u32', gguf.u32(7)],
        ['x.f32', gguf.f32(0.5)],
        ['x.bool', gguf.bool(true)],
        ['x.strs', gguf.strs(['a', 'Ġb', ''])],
        ['x.i32s', gguf.i32s([-1, 2])],
      ],
      tensors: [
        { name: 'w', ne: [3, 2], type: 'F32', data: () => new Uint8Array(w.buffer) },
        { name: 'h', ne: [3, 2], type: 'F16', data: () => new Uint8Array(new Uint16Array(Array.from(w, f32ToF16Bits)).buffer) },
        { name: 'q', ne: [32, 2], type: 'Q8_0', data: () => quantizeQ8_0(q) },
      ],
    });
    const raw = readFileSync(path);
    assert.equal(raw.readUInt32LE(0), GGUF_MAGIC);
    assert.equal(raw.subarray(0, 4).toString('latin1'), 'GGUF');
    assert.equal(raw.readUInt32LE(4), 3);
    assert.equal(raw.readBigUInt64LE(8), 3n);
    assert.equal(raw.readBigUInt64LE(16), 6n);
    const r = GgufReader.open(path);
    try {
      assert.equal(r.get('general.architecture'), 'llama');
      assert.equal(r.get('x.u32'), 7);
      assert.equal(r.get('x.f32'), 0.5);
      assert.equal(r.get('x.bool'), true);
      assert.deepEqual(r.get('x.strs'), ['a', 'Ġb', '']);
      assert.deepEqual(r.get('x.i32s'), [-1, 2]);
      assert.equal(r.info.dataOffset % 32, 0);
      assert.deepEqual(r.info.tensors.map((t) => [t.name, t.type, t.offset]), [
        ['w', 0, 0],
        ['h', 1, 32], // 24 bytes padded to 32
        ['q', 8, 64],
      ]);
      assert.deepEqual(Array.from(r.readF32('w')), Array.from(w));
      assert.deepEqual(Array.from(r.readF32('h')), Array.from(w));
      assert.deepEqual(Array.from(r.readF32('q')), Array.from(dequantizeQ8_0(quantizeQ8_0(q))));
      assert.equal(raw.length, r.info.dataOffset + 64 + 68 + 28); // q8_0 68 bytes, padded to 96
    } finally {
      r.close();
    }
  });

  it('refuses a wrong magic, another version, a truncated header, data past the end, and a tensor of the wrong size', () => {
    const { header } = ggufHeader({ metadata: [['k', gguf.u32(1)]], tensors: [{ name: 't', ne: [4], type: 'F32', data: () => new Uint8Array(16) }] });
    const full = header.length + 16;
    assert.equal(parseGgufHeader(header, full).tensors.length, 1);
    const bad = header.slice();
    bad[0] = 0x00;
    assert.throws(() => parseGgufHeader(bad, full), (e: unknown) => e instanceof GgufFormatError && /not a GGUF file/.test(e.message));
    const v2 = header.slice();
    new DataView(v2.buffer).setUint32(4, 2, true);
    assert.throws(() => parseGgufHeader(v2, full), /version 2/);
    assert.throws(() => parseGgufHeader(header.subarray(0, 30), full), /header ends early/);
    assert.throws(() => parseGgufHeader(header, full - 1), /past the end/);
    const huge = header.slice();
    new DataView(huge.buffer).setBigUint64(8, 1n << 40n, true);
    assert.throws(() => parseGgufHeader(huge, full), /over the limit/);
    assert.throws(
      () => writeGguf(join(tmp.dir, 'b.gguf'), { metadata: [], tensors: [{ name: 't', ne: [4], type: 'F32', data: () => new Uint8Array(15) }] }),
      /produced 15 bytes/,
    );
    assert.throws(() => ggufHeader({ metadata: [['k', gguf.u32(1)], ['k', gguf.u32(2)]], tensors: [] }), /twice/);
    const junk = join(tmp.dir, 'junk.gguf');
    writeFileSync(junk, 'not gguf at all');
    assert.throws(() => GgufReader.open(junk), GgufFormatError);
    assert.equal(GgufType.ARRAY, 9);
  });
});

describe('llama mapping', () => {
  it('names tensors as llama.cpp does', () => {
    assert.equal(ggufTensorName('model.embed_tokens.weight'), 'token_embd.weight');
    assert.equal(ggufTensorName('model.layers.3.self_attn.q_proj.weight'), 'blk.3.attn_q.weight');
    assert.equal(ggufTensorName('model.layers.0.mlp.down_proj.weight'), 'blk.0.ffn_down.weight');
    assert.equal(ggufTensorName('model.layers.1.post_attention_layernorm.weight'), 'blk.1.ffn_norm.weight');
    assert.equal(ggufTensorName('model.norm.weight'), 'output_norm.weight');
    assert.equal(ggufTensorName('lm_head.weight'), 'output.weight');
  });

  it('permutes q/k rows from rotate-half to interleaved pairs within each head, and back', () => {
    // 2 heads of D = 4, 1 column: rows [h0: a0 a1 b0 b1 | h1: …] → [a0 b0 a1 b1 | …]
    const w = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]);
    assert.deepEqual(Array.from(permuteRopeRows(w, 2, 4, 1)), [0, 2, 1, 3, 10, 12, 11, 13]);
    const big = Float32Array.from({ length: 3 * 8 * 5 }, (_, i) => i);
    assert.deepEqual(Array.from(unpermuteRopeRows(permuteRopeRows(big, 3, 8, 5), 3, 8, 5)), Array.from(big));
  });

  it('writes our vocabulary in GPT-2 byte-level texts with merges in priority order, and refuses duplicate texts', () => {
    const b2u = gpt2ByteToUnicode();
    assert.equal(b2u[0x20], 'Ġ');
    assert.equal(b2u[0x0a], 'Ċ');
    assert.equal(b2u[0x41], 'A');
    assert.equal(new Set(b2u).size, 256);
    // merges: (' ', 't') → 266, ('h', 'e') → 267, (266, 267) → 268 = " the"
    const tok = new Tokenizer({ merges: [[10 + 0x20, 10 + 0x74], [10 + 0x68, 10 + 0x65], [266, 267]], source: {} });
    const md = new Map(ggufTokenizerMetadata(tok, 272));
    const tokens = md.get('tokenizer.ggml.tokens')!.value as string[];
    const types = md.get('tokenizer.ggml.token_type')!.value as number[];
    assert.equal(tokens.length, 272);
    assert.deepEqual(tokens.slice(0, 4), ['<|pad|>', '<|bos|>', '<|eos|>', '<|unk|>']);
    assert.equal(tokens[10 + 0x20], 'Ġ');
    assert.equal(tokens[268], 'Ġthe');
    assert.deepEqual(md.get('tokenizer.ggml.merges')!.value, ['Ġ t', 'h e', 'Ġt he']);
    assert.deepEqual(types.slice(0, 11), [3, 3, 3, 2, 3, 3, 3, 3, 3, 3, 1]);
    assert.equal(types[271], 5); // padding up to the model's vocab_size: unused
    assert.equal(md.get('tokenizer.ggml.pre')!.value, 'dbrx');
    assert.equal(md.get('tokenizer.ggml.model')!.value, 'gpt2');
    // "ab" twice: (a, b) and later ((a), (b)) cannot exist, but (a, bc)/(ab, c) can: two ids for "abc"
    const dup = new Tokenizer({ merges: [[10 + 97, 10 + 98], [10 + 98, 10 + 99], [266, 10 + 99], [10 + 97, 267]], source: {} });
    assert.throws(() => ggufTokenizerMetadata(dup, dup.vocabSize), (e: unknown) => e instanceof GgufVocabError && /268 and 269/.test(e.message));
    assert.throws(() => ggufTokenizerMetadata(tok, 100), GgufVocabError);
  });

  it('chooses tensor types per dtype (q8_0 falls back to F16 for rows not a multiple of 32) and counts decode bytes', () => {
    assert.equal(ggufTensorType('q8_0', [256]), 'F32');
    assert.equal(ggufTensorType('q8_0', [688, 256]), 'Q8_0'); // PyTorch [out, in]: rows of 256
    assert.equal(ggufTensorType('q8_0', [256, 344]), 'F16');
    assert.equal(ggufTensorType('f16', [256, 256]), 'F16');
    assert.equal(ggufTensorType('f32', [256, 256]), 'F32');
    const c = makeConfig({ hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 160, vocab_size: 300 });
    const layout = new ParamLayout(c);
    const params = new Float32Array(layout.size).map((_, i) => Math.sin(i));
    const f32 = decodeWeightBytes(c, layout, 'f32');
    assert.equal(f32, 4 * (layout.size - 300 * 64));
    assert.ok(decodeWeightBytes(c, layout, 'q8_0') < f32 / 3);
    const file = llamaGguf({ config: c, layout, params, tokenizer: new Tokenizer({ merges: [], source: {} }), dtype: 'q8_0', name: 't' });
    const names = file.tensors.map((t) => t.name);
    assert.deepEqual(names[0], 'token_embd.weight');
    assert.deepEqual(names.slice(-2), ['output_norm.weight', 'output.weight']);
    const q = file.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
    assert.deepEqual(q.ne, [64, 64]);
    assert.equal(q.type, 'Q8_0');
    const path = join(tmp.dir, 'm.gguf');
    writeGguf(path, file);
    const r = GgufReader.open(path);
    try {
      assert.equal(r.get('general.architecture'), 'llama');
      assert.equal(r.get('general.file_type'), 7);
      assert.equal(r.get('llama.block_count'), 1);
      assert.equal(r.get('llama.attention.head_count_kv'), 2);
      const e = layout.entries.find((x) => x.name === 'model.layers.0.self_attn.k_proj.weight')!;
      const back = unpermuteRopeRows(r.readF32('blk.0.attn_k.weight'), 2, 32, 64);
      const orig = params.subarray(e.offset, e.offset + e.size);
      for (let i = 0; i < orig.length; i++) assert.ok(Math.abs(back[i] - orig[i]) < 0.01, `k[${i}]`);
    } finally {
      r.close();
    }
  });
});
