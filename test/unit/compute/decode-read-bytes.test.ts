/**
 * The bytes a batch-1 decode step reads (src/compute/llamacpp/bench.ts decodeReadBytes, the denominator of the
 * bench's `decode_bound_share`): every weight once, the head float32 in both formats, int8 at the shard's block
 * size with its float32 scales, and the KV at the timed steps' mean context.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeReadBytes } from '../../../src/compute/llamacpp/bench.js';
import { decodeWeightBytes } from '../../../src/model/gguf-llama.js';
import { ParamLayout } from '../../../src/model/layout.js';
import { presetConfig } from '../../../src/model/presets.js';
import { LlamaShard } from '../../../src/model/shard.js';
import { createReferenceBackend } from '../../../src/tensor/index.js';

describe('decodeReadBytes', () => {
  it('f32: the GGUF weight count plus the one embedding row, then the KV at the mean context', () => {
    for (const name of ['nano', '12x768']) {
      const c = presetConfig(name);
      const b = decodeReadBytes(c, 'f32', 8, 64);
      // decodeWeightBytes counts every tensor but the embedding (untied presets): matrices, norms, head
      assert.equal(b.matrices + b.head + b.small - 4 * c.hidden_size, decodeWeightBytes(c, new ParamLayout(c), 'f32'));
      // steps attend 9..72 positions: 40.5 on average, K and V of every layer, float32
      assert.equal(b.kv, 4 * c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim * 40.5);
      assert.equal(b.total, b.matrices + b.head + b.small + b.kv);
    }
  });

  it('int8: codes plus one float32 scale per block (32, or 16 where 32 does not divide K); the head stays float32', () => {
    const c = presetConfig('12x768');
    const f = decodeReadBytes(c, 'f32', 8, 64);
    const q = decodeReadBytes(c, 'int8', 8, 64);
    assert.equal(q.matrices, (f.matrices / 4) * (1 + 4 / 32)); // 12x768: every K (768, 2048) a multiple of 32
    assert.equal(q.head, f.head);
    assert.equal(q.kv, f.kv);
    const n = presetConfig('nano');
    const nf = decodeReadBytes(n, 'f32', 8, 64).matrices / 4;
    const down = n.hidden_size * n.intermediate_size * n.num_hidden_layers;
    // nano's FFN width 688 is not a multiple of 32: the down matrix (K = 688) has blocks of 16
    assert.equal(n.intermediate_size % 32 === 0, false);
    assert.equal(decodeReadBytes(n, 'int8', 8, 64).matrices, (nf - down) * (1 + 4 / 32) + down * (1 + 4 / 16));
  });

  it('LlamaShard.decodeReadArrays (what the bench\'s bound reads) holds the counted bytes but the embedding row and the KV', () => {
    const c = presetConfig('nano');
    const f32 = new LlamaShard({ config: c, backend: createReferenceBackend(), seed: 0 });
    for (const [shard, w] of [
      [f32, 'f32'],
      [f32.quantized(), 'int8'],
    ] as const) {
      const arrays = shard.decodeReadArrays();
      const bytes = arrays.reduce((s, x) => s + x.byteLength, 0);
      const b = decodeReadBytes(c, w, 8, 64);
      // int8: codes and scales padded to 64 bytes apart in one buffer, but each view holds exactly its own
      assert.equal(bytes, b.matrices + b.head + b.small - 4 * c.hidden_size, w);
      // views of the shard's own memory, no copies: the head is the one the step reads
      assert.equal(new Set(arrays).size, arrays.length);
      // the same bytes merged into back-to-back ranges: every array inside exactly one range, gaps ≤ 64 bytes
      const ranges = shard.decodeReadRanges();
      assert.ok(ranges.length < arrays.length, `${w}: ${ranges.length} ranges of ${arrays.length} arrays`);
      const inside = (a: { buffer: ArrayBufferLike; byteOffset: number; byteLength: number }, r: Uint8Array): boolean =>
        a.buffer === r.buffer && a.byteOffset >= r.byteOffset && a.byteOffset + a.byteLength <= r.byteOffset + r.byteLength;
      for (const a of arrays) assert.equal(ranges.filter((r) => inside(a, r)).length, 1);
      const covered = ranges.reduce((s, r) => s + r.byteLength, 0);
      assert.ok(covered >= bytes && covered <= bytes + 64 * arrays.length, `${w}: ${covered} vs ${bytes}`);
      if (w === 'f32') assert.equal(ranges.length, 1, 'f32: the layers, the final norm and the head lie back to back in params');
    }
  });
});
