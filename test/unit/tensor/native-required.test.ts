/**
 * CI builds the native addons at `npm ci` and must run on them: with NEUROSHARD_REQUIRE_NATIVE=1 (set by .ci/run) a
 * missing or broken addon fails here instead of letting the native tests skip and the engine fall back quietly.
 * That covers the compute addon and the lane's AES-GCM one (`neuroshard_aead`, which builds to an empty module where
 * OpenSSL's headers are missing: the lane then falls back to node:crypto and test/unit/p2p/lane-aead skips its cases).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aeadBackend } from '../../../src/p2p/lane/aead.js';
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

  it('gives the lane its OpenSSL AES-GCM context when NEUROSHARD_REQUIRE_NATIVE=1', (t) => {
    if (process.env.NEUROSHARD_REQUIRE_NATIVE !== '1') {
      t.skip('NEUROSHARD_REQUIRE_NATIVE is not set (only .ci/run requires the native addons)');
      return;
    }
    const b = aeadBackend();
    assert.equal(b.backend, 'openssl', `lane cipher fell back to node:crypto: ${b.why ?? ''}`);
  });
});
