/**
 * The native addon for tests that need it: loaded once, or the reason it could not be, as node:test's `skip` option
 * (CI sets NEUROSHARD_REQUIRE_NATIVE=1, and unit/tensor/native-required.test fails there when the addon is missing,
 * so a skip here cannot hide a missing build on CI).
 */
import { loadNativeBackend, type NativeBackend } from '../../src/tensor/backends/native.js';

export function nativeForTest(): { nb: NativeBackend | undefined; skip: string | false } {
  try {
    return { nb: loadNativeBackend(), skip: false };
  } catch (e) {
    return { nb: undefined, skip: `native addon not loaded: ${e instanceof Error ? e.message : String(e)}` };
  }
}
