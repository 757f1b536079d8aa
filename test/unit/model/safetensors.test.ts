/**
 * safetensors: round trip, F16/BF16 conversion, and every malformed header refused with the file named
 * (truncated, oversized header, bad JSON, bad dtype, offsets that do not match the shape, overlaps, holes, trailing
 * bytes).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bf16ToF32, f16ToF32, parseHeader, SafetensorsFile, writeSafetensors } from '../../../src/model/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';

const tmp = tempDir('neuroshard-st-');
after(() => tmp.cleanup());

/** A file from a raw header object and data bytes. */
function raw(header: unknown, data: Uint8Array, declared?: number): Uint8Array {
  const h = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declared ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function refuses(bytes: Uint8Array, code: string, re: RegExp): void {
  assert.throws(
    () => parseHeader(bytes, bytes.length, 'bad.safetensors'),
    (e) => isNeuroShardError(e, code) && /bad\.safetensors/.test((e as Error).message) && re.test((e as Error).message),
  );
}

describe('safetensors', () => {
  it('round-trips float32 tensors and metadata', () => {
    const p = join(tmp.dir, 'a.safetensors');
    const a = Float32Array.from([1, -2, 3.5, 1e-30, 7, 8]);
    const b = Float32Array.from([0.25]);
    writeSafetensors(
      p,
      [
        { name: 'x.weight', shape: [2, 3], data: a },
        { name: 'y', shape: [1], data: b },
      ],
      { format: 'pt' },
    );
    // the header is padded to 8 bytes, as the format recommends
    const n = Number(readFileSync(p).readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.header.metadata, { format: 'pt' });
    assert.deepEqual(f.info('x.weight').shape, [2, 3]);
    assert.deepEqual(f.tensorF32('x.weight'), a);
    assert.deepEqual(f.tensorF32('y'), b);
    assert.throws(() => f.readF32('x.weight', new Float32Array(6), [3, 2]), (e) => isNeuroShardError(e, 'CHECKPOINT_MISMATCH') && /\[2, 3\], expected \[3, 2\]/.test((e as Error).message));
    assert.throws(() => f.info('z'), (e) => isNeuroShardError(e, 'CHECKPOINT_MISMATCH'));
    f.close();
  });

  it('converts F16 and BF16 exactly', () => {
    const h = Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0x3555]);
    const out = new Float32Array(h.length);
    f16ToF32(h, out);
    assert.deepEqual(Array.from(out.subarray(0, 7)), [1, -2, 2 ** -24, 65504, Infinity, -Infinity, -0]);
    assert.ok(Math.abs(out[7] - 0.333251953125) < 1e-12);
    const nan = new Float32Array(1);
    f16ToF32(Uint16Array.of(0x7e00), nan);
    assert.ok(Number.isNaN(nan[0]));
    const bf = new Float32Array(3);
    bf16ToF32(Uint16Array.from([0x3f80, 0xc040, 0x3eaa]), bf);
    assert.deepEqual(Array.from(bf), [1, -3, 0.33203125]);
  });

  it('refuses malformed files, naming them', () => {
    const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    refuses(new Uint8Array(4), 'CHECKPOINT_TRUNCATED', /shorter than/);
    refuses(raw(ok, new Uint8Array(8), 1e9), 'CHECKPOINT_CORRUPT', /header/);
    refuses(raw(ok, new Uint8Array(8), 5000), 'CHECKPOINT_TRUNCATED', /header/);
    refuses(raw(ok, new Uint8Array(4)), 'CHECKPOINT_TRUNCATED', /tensor w ends/);
    refuses(raw(ok, new Uint8Array(12)), 'CHECKPOINT_CORRUPT', /after the last tensor/);
    refuses(raw({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), 'CHECKPOINT_CORRUPT', /unknown dtype/);
    refuses(raw({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), 'CHECKPOINT_CORRUPT', /do not hold 3 F32/);
    refuses(raw({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } }, new Uint8Array(8)), 'CHECKPOINT_CORRUPT', /shape/);
    refuses(
      raw(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
      'CHECKPOINT_CORRUPT',
      /overlaps/,
    );
    refuses(raw({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), 'CHECKPOINT_CORRUPT', /unindexed/);
    refuses(raw({ __metadata__: { a: 1 } }, new Uint8Array(0)), 'CHECKPOINT_CORRUPT', /__metadata__/);
    const badJson = raw(ok, new Uint8Array(8));
    badJson[9] = 0x7b; // '{{'
    refuses(badJson, 'CHECKPOINT_CORRUPT', /JSON/);
  });

  it('a truncated file on disk fails to open with the path in the message', () => {
    const p = join(tmp.dir, 'cut.safetensors');
    writeSafetensors(p, [{ name: 'w', shape: [100], data: new Float32Array(100) }]);
    const full = readFileSync(p);
    writeFileSync(p, full.subarray(0, full.length - 10));
    assert.throws(() => SafetensorsFile.open(p), (e) => isNeuroShardError(e, 'CHECKPOINT_TRUNCATED') && (e as Error).message.includes(p));
    assert.throws(() => SafetensorsFile.open(join(tmp.dir, 'nope.safetensors')), (e) => isNeuroShardError(e, 'CHECKPOINT_MISSING'));
  });

  it('integer tensors read as int32; other dtypes do not load as weights', () => {
    const p = join(tmp.dir, 'i.safetensors');
    const i64 = new BigInt64Array([5n, -3n]);
    writeFileSync(p, raw({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] }, b: { dtype: 'U8', shape: [1], data_offsets: [16, 17] } }, new Uint8Array([...new Uint8Array(i64.buffer), 9])));
    const f = SafetensorsFile.open(p);
    assert.deepEqual(Array.from(f.tensorI32('ids')), [5, -3]);
    assert.throws(() => f.tensorF32('b'), (e) => isNeuroShardError(e, 'CHECKPOINT_UNSUPPORTED') && /U8/.test((e as Error).message));
    f.close();
  });
});
