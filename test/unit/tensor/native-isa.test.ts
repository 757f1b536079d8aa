/**
 * Runs the native-vs-reference parity suite (parity.test.ts) once per lower ISA path this CPU can run, each in a
 * child process with NEUROSHARD_NATIVE_ISA set, so that one `npm test` on an AVX-512 machine checks the AVX2 and
 * portable kernels too (the in-process run of parity.test.ts covers the best path). Also runs the portable path
 * with our own GEMM when OpenBLAS would otherwise take over there.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend, type NativeIsa } from '../../../src/tensor/backends/native.js';
import { describeRun, runNodeTest } from '../../utils/node-test-run.js';

const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
const parityFile = join(dirname(here), fromSource ? 'parity.test.ts' : 'parity.test.js');

let detected: NativeIsa | undefined;
let reason = '';
try {
  detected = loadNativeBackend().info().detectedIsa;
} catch (e) {
  reason = e instanceof Error ? e.message : String(e);
}
const skip = detected === undefined ? `native addon not loaded: ${reason}` : !existsSync(parityFile) ? `${parityFile} not found` : false;

function runParity(env: Record<string, string>): void {
  // Judged by the child's exit code and our own reporter's counts, not by the runner's default output (TAP on
  // Node 20 and 22, the spec reporter on 24).
  const r = runNodeTest([parityFile], { env, timeoutMs: 300_000 });
  assert.equal(r.status, 0, `parity with ${JSON.stringify(env)} failed: ${describeRun(r)}`);
  assert.ok(r.summary !== undefined, `the parity run printed no summary: ${describeRun(r)}`);
  assert.ok(r.summary.pass > 0, `the parity suite ran tests: ${describeRun(r)}`);
  assert.equal(r.summary.fail, 0, describeRun(r));
  assert.equal(r.summary.skipped, 0, `the parity suite was not skipped: ${describeRun(r)}`);
}

describe('native parity on every ISA path', { skip }, () => {
  const lower: NativeIsa[] = detected === 'avx512' ? ['avx2', 'portable'] : detected === 'avx2' ? ['portable'] : [];
  for (const isa of lower) {
    it(`parity.test with NEUROSHARD_NATIVE_ISA=${isa}`, () => runParity({ NEUROSHARD_NATIVE_ISA: isa }));
  }
  it('parity.test on the portable path with our own GEMM (NEUROSHARD_NATIVE_GEMM=own)', () =>
    runParity({ NEUROSHARD_NATIVE_ISA: 'portable', NEUROSHARD_NATIVE_GEMM: 'own' }));
});
