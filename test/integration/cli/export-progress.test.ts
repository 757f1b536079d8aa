/**
 * `neuroshard export` as a process with stderr on a pipe: progress comes as plain lines (a start line, one per
 * quarter of the file's bytes, a closing "done" line), never terminal escapes; with --json stderr stays quiet and
 * stdout holds exactly one JSON document. (The terminal bar is tested as a pure renderer: test/unit/util/progress.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeConfig, toHfConfigJson } from '../../../src/model/config.js';
import { LlamaShard, writeSafetensors } from '../../../src/model/index.js';
import { TOKENIZER_FILE_NAME } from '../../../src/model/tokenizer/index.js';
import { createReferenceBackend } from '../../../src/tensor/index.js';
import { REPO_ROOT, tempDir } from '../../utils/paths.js';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'bin', 'neuroshard.js'), ...args], { cwd: REPO_ROOT, timeout: 300_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('neuroshard export progress', () => {
  const tmp = tempDir('ns-export-progress-');
  const hf = join(tmp.dir, 'hf');
  after(() => tmp.cleanup());
  before(() => {
    mkdirSync(hf);
    const config = makeConfig({ hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 32, intermediate_size: 128, vocab_size: 4096, max_position_embeddings: 64 });
    const m = new LlamaShard({ config, backend: createReferenceBackend(), seed: 3 });
    writeFileSync(join(hf, 'config.json'), JSON.stringify(toHfConfigJson(config)));
    writeSafetensors(join(hf, 'model.safetensors'), m.layout.entries.map((e) => ({ name: e.name, shape: [...e.shape], data: m.params.subarray(e.offset, e.offset + e.size) })));
    copyFileSync(join(REPO_ROOT, 'src', 'data', 'genesis', TOKENIZER_FILE_NAME), join(hf, TOKENIZER_FILE_NAME));
  });

  it('prints plain progress lines on a pipe', async () => {
    const out = join(tmp.dir, 'a.gguf');
    const r = await cli(['export', '--checkpoint', hf, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stderr.includes('\x1b') && !r.stderr.includes('\r'), `terminal escapes on a pipe: ${JSON.stringify(r.stderr)}`);
    const lines = r.stderr.trimEnd().split('\n').filter((l) => l.startsWith('export '));
    const pct = lines.filter((l) => /^export \d+% /.test(l)).map((l) => Number(/^export (\d+)%/.exec(l)![1]));
    assert.equal(pct[0], 0, r.stderr);
    assert.ok(pct.length >= 3, `quarter lines: ${lines.join(' | ')}`);
    assert.deepEqual([...pct].sort((a, b) => a - b), pct, 'percentages only grow');
    const size = statSync(out).size;
    const done = lines.at(-1)!;
    assert.match(done, /^export done [\d.]+ (B|KiB|MiB) in [\d.]+s$/);
    assert.equal(done.split(' ')[2], (size / 1024 / 1024 >= 1 ? (size / 1048576).toFixed(1) : (size / 1024).toFixed(1)), `${done} vs ${size} bytes`);
    assert.match(r.stdout, /GGUF f32/);
  });

  it('--json: one JSON document on stdout, nothing on stderr', async () => {
    const out = join(tmp.dir, 'b.gguf');
    const r = await cli(['export', '--checkpoint', hf, '--out', out, '--dtype', 'q8_0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const doc = JSON.parse(r.stdout) as { bytes: number; dtype: string };
    assert.equal(doc.dtype, 'q8_0');
    assert.equal(doc.bytes, statSync(out).size);
  });
});
