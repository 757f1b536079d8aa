import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeShard, encodeShard, shardFileBytes, ShardFormatError } from '../../../src/data/index.js';

function bad(bytes: Uint8Array, expect: { tokens: number; vocabSize: number }, pattern: RegExp): void {
  assert.throws(() => decodeShard(bytes, expect), (e: unknown) => e instanceof ShardFormatError && e.code === 'SHARD_INVALID' && e.fault === 'peer' && pattern.test(e.message));
}

describe('shard file format', () => {
  it('round-trips ids with the documented header', () => {
    const ids = [0, 1, 2, 4095, 300, 10];
    const bytes = encodeShard(ids, 4096);
    assert.equal(bytes.byteLength, shardFileBytes(ids.length));
    assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), 'NSTK');
    const dv = new DataView(bytes.buffer);
    assert.deepEqual([dv.getUint16(4, true), dv.getUint16(6, true), dv.getUint32(8, true), dv.getUint32(12, true)], [1, 2, 6, 4096]);
    assert.equal(dv.getUint16(16 + 2 * 3, true), 4095); // little-endian uint16 ids
    assert.deepEqual([...decodeShard(bytes, { tokens: 6, vocabSize: 4096 })], ids);
  });

  it('rejects truncated, foreign, mismatched and out-of-vocabulary shards', () => {
    const good = encodeShard([10, 11, 12], 4096);
    const e = { tokens: 3, vocabSize: 4096 };
    bad(good.subarray(0, 10), e, /shorter than its header/);
    bad(good.subarray(0, good.length - 1), e, /bytes, expected/);
    const magic = good.slice();
    magic[0] = 0;
    bad(magic, e, /NSTK/);
    bad(good, { tokens: 4, vocabSize: 4096 }, /holds 3 tokens, expected 4/);
    bad(good, { tokens: 3, vocabSize: 8000 }, /vocabulary is 4096/);
    const outOfRange = good.slice();
    new DataView(outOfRange.buffer).setUint16(16, 5000, true);
    bad(outOfRange, e, /outside the vocabulary/);
    assert.throws(() => encodeShard([4096], 4096), RangeError);
  });
});
