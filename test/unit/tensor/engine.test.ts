/**
 * Backend selection: native when it loads, otherwise the reference backend with one line saying why.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackendUnavailableError, selectBackend, tryLoadNativeBackend } from '../../../src/tensor/index.js';

const native = await tryLoadNativeBackend();

describe('selectBackend', () => {
  it('auto: native when it loads, else reference with the reason, as one line', async () => {
    const sel = await selectBackend();
    assert.ok(!sel.line.includes('\n'));
    if (native.ok) {
      assert.equal(sel.backend.name, 'native');
      assert.equal(sel.line, `engine: ${sel.backend.description}`);
      assert.equal(sel.fallbackReason, undefined);
    } else {
      assert.equal(sel.backend.name, 'reference');
      assert.equal(sel.line, `engine: reference TypeScript backend (native addon not loaded: ${native.reason})`);
      assert.equal(sel.fallbackReason, native.reason);
      assert.ok(native.reason.length > 0);
    }
  });

  it('reference on request', async () => {
    const sel = await selectBackend({ backend: 'reference' });
    assert.equal(sel.backend.name, 'reference');
    assert.equal(sel.backend.threads, 1);
    assert.ok(sel.line.startsWith('engine: reference TypeScript backend'));
  });

  it('native required: the native backend, or a typed error when it cannot load', async () => {
    if (native.ok) {
      const sel = await selectBackend({ backend: 'native', threads: 1 });
      assert.equal(sel.backend.name, 'native');
      assert.equal(sel.backend.threads, 1);
    } else {
      await assert.rejects(selectBackend({ backend: 'native' }), (e: unknown) => e instanceof BackendUnavailableError && e.code === 'BACKEND_UNAVAILABLE');
    }
  });
});
