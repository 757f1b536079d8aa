/**
 * CI builds the native addon at `npm ci` and must run on it: with NEUROSHARD_REQUIRE_NATIVE=1 (set by .ci/run) a
 * missing or broken addon fails here instead of letting the native tests skip and the engine fall back quietly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { selectBackend } from '../../../src/tensor/index.js';

describe('native backend in CI', () => {
  it('is built and selected when NEUROSHARD_REQUIRE_NATIVE=1', async (t) => {
    if (process.env.NEUROSHARD_REQUIRE_NATIVE !== '1') {
      t.skip('NEUROSHARD_REQUIRE_NATIVE is not set (only .ci/run requires the native backend)');
      return;
    }
    const sel = await selectBackend({ backend: 'auto' });
    assert.equal(sel.backend.name, 'native', `engine fell back: ${sel.fallbackReason ?? sel.line}`);
    assert.match(sel.line, /native/);
  });
});
