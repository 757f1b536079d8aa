/**
 * Checkpoint saves show their progress (issue 10 §3): `neuroshard train` as a process with stderr on a pipe prints
 * plain lines for the save (a start line, one per quarter of the weight files' bytes, a closing "done" line whose
 * size is the two safetensors files'), never terminal escapes; with --json the save prints nothing and stdout holds
 * exactly one JSON document. (The terminal bar is tested as a pure renderer: test/unit/node/save-progress.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT, tempDir } from '../../utils/paths.js';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'bin', 'neuroshard.js'), ...args], { cwd: REPO_ROOT, timeout: 600_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const TRAIN = ['train', '--steps', '1', '--eval-every', '0', '--checkpoint-every', '0', '--threads', '1', '--log-level', 'warn'];

describe('checkpoint save progress', () => {
  const tmp = tempDir('ns-save-progress-');
  after(() => tmp.cleanup());

  it('prints plain progress lines for the save on a pipe', async () => {
    const r = await cli([...TRAIN, '--data-dir', join(tmp.dir, 'a')]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stderr.includes('\x1b') && !r.stderr.includes('\r'), `terminal escapes on a pipe: ${JSON.stringify(r.stderr)}`);
    const lines = r.stderr.trimEnd().split('\n').filter((l) => l.startsWith('saving checkpoint step 1 '));
    const pct = lines.filter((l) => /^saving checkpoint step 1 \d+% /.test(l)).map((l) => Number(/ (\d+)% /.exec(l)![1]));
    assert.equal(pct[0], 0, r.stderr);
    assert.ok(pct.length >= 3, `quarter lines: ${lines.join(' | ')}`);
    assert.deepEqual([...pct].sort((a, b) => a - b), pct, 'percentages only grow');
    const doc = JSON.parse(r.stdout) as { checkpoint: string };
    const size = statSync(join(doc.checkpoint, 'model.safetensors')).size + statSync(join(doc.checkpoint, 'optimizer.safetensors')).size;
    const done = lines.at(-1)!;
    assert.match(done, /^saving checkpoint step 1 done [\d.]+ MiB in [\d.]+s$/);
    assert.equal(done.split(' ')[5], (size / 1048576).toFixed(1), `${done} vs ${size} bytes`);
    // the save's lines come before the checkpoint's own line
    const all = r.stderr.split('\n');
    assert.ok(all.findIndex((l) => l.startsWith('saving checkpoint step 1 done')) < all.findIndex((l) => l.startsWith('checkpoint step 1 reason final')));
  });

  it('--json: the save prints nothing, stdout is one JSON document', async () => {
    const r = await cli([...TRAIN, '--data-dir', join(tmp.dir, 'b'), '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stderr.includes('saving checkpoint'), r.stderr);
    const doc = JSON.parse(r.stdout) as { step: number; checkpoint: string };
    assert.equal(doc.step, 1);
    assert.ok(statSync(join(doc.checkpoint, 'model.safetensors')).size > 0);
  });
});
