/**
 * Our summary reporter (test/utils/summary-reporter.ts) reads a child `node --test` run the same way on every Node
 * version: counts, failures and exit code, whatever the runner's default reporter is on this version.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixturePath } from '../../utils/paths.js';
import { describeRun, runNodeTest } from '../../utils/node-test-run.js';
import { fileURLToPath } from 'node:url';

const fromSource = fileURLToPath(import.meta.url).endsWith('.ts');
// The fixture compiles next to this file's compiled twin: dist/test/fixtures/… when running from dist.
const sample = fromSource ? fixturePath('node-test', 'sample.ts') : fileURLToPath(new URL('../../fixtures/node-test/sample.js', import.meta.url));

describe('node --test in a child, read through our reporter', { timeout: 120_000 }, () => {
  it('a passing file: exit 0 and its counts', () => {
    const r = runNodeTest([sample], { env: { SAMPLE_MODE: 'pass' }, timeoutMs: 60_000 });
    assert.equal(r.status, 0, describeRun(r));
    assert.deepEqual(r.summary, { tests: 2, pass: 2, fail: 0, skipped: 0, todo: 0, failures: [] });
  });

  it('a mixed file: exit 1, failed, timed-out, skipped and todo tests each counted, failures named', () => {
    const r = runNodeTest([sample], { env: { SAMPLE_MODE: 'mixed' }, timeoutMs: 60_000 });
    assert.equal(r.status, 1, describeRun(r));
    assert.ok(r.summary !== undefined, describeRun(r));
    const { failures, ...counts } = r.summary;
    assert.deepEqual(counts, { tests: 6, pass: 2, fail: 2, skipped: 1, todo: 1 });
    assert.deepEqual(failures.map((f) => f.name).sort(), ['fails with an assertion', 'times out']);
    assert.match(failures.find((f) => f.name === 'fails with an assertion')!.error, /one and one make three/);
  });

  it('a file that fails to load counts as one failed test', () => {
    const r = runNodeTest([sample], { env: { SAMPLE_MODE: 'throw' }, timeoutMs: 60_000 });
    assert.equal(r.status, 1, describeRun(r));
    assert.equal(r.summary?.fail, 1, describeRun(r));
    assert.equal(r.summary?.pass, 0, describeRun(r));
  });
});
