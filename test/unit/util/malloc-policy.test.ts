/**
 * The C heap's policy for large buffers (src/util/malloc-policy.ts, addon src/tensor/native/heap.cc): glibc takes
 * it where the addon is built; NEUROSHARD_MALLOC_POLICY=off leaves the heap as it is; out-of-range thresholds are
 * refused by the addon, not passed to mallopt.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MALLOC_POLICY, setMallocPolicy } from '../../../src/util/malloc-policy.js';
import { findPackageRoot } from '../../../src/util/package-root.js';

const built = existsSync(join(findPackageRoot() ?? '.', 'build', 'Release', 'neuroshard_heap.node'));
const glibc = process.platform === 'linux' && (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime !== undefined;

describe('malloc policy', () => {
  it('is taken by glibc where the addon is built', { skip: built && glibc ? false : 'no heap addon or not glibc' }, () => {
    assert.equal(setMallocPolicy(), true);
    assert.equal(setMallocPolicy({ ...MALLOC_POLICY }), true);
    assert.throws(() => setMallocPolicy({ mmapThresholdBytes: 64 * 1024 * 1024, trimThresholdBytes: 0 }), RangeError);
  });

  it('NEUROSHARD_MALLOC_POLICY=off changes nothing', () => {
    const was = process.env.NEUROSHARD_MALLOC_POLICY;
    process.env.NEUROSHARD_MALLOC_POLICY = 'off';
    try {
      assert.equal(setMallocPolicy(), null);
    } finally {
      if (was === undefined) delete process.env.NEUROSHARD_MALLOC_POLICY;
      else process.env.NEUROSHARD_MALLOC_POLICY = was;
    }
  });
});
