/**
 * Checkpoint-save progress: saveCheckpoint reports the bytes of its weight files as they are written (ending at
 * exactly their size), and SaveProgress renders them as a bar on a terminal, plain lines otherwise, nothing silent.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeConfig } from '../../../src/model/config.js';
import { LlamaShard, saveCheckpoint } from '../../../src/model/index.js';
import { SaveProgress } from '../../../src/node/progress.js';
import { createReferenceBackend } from '../../../src/tensor/index.js';
import { tempDir } from '../../utils/paths.js';

describe('checkpoint save progress', () => {
  it('saveCheckpoint reports bytes up to the weight files’ exact size', () => {
    const tmp = tempDir('ns-save-progress-u-');
    try {
      const config = makeConfig({ hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 16, intermediate_size: 64, vocab_size: 128, max_position_embeddings: 16 });
      const m = new LlamaShard({ config, backend: createReferenceBackend(), seed: 1 });
      const n = m.layout.size;
      const seen: [number, number][] = [];
      const saved = saveCheckpoint({ root: tmp.dir, step: 3, model: m, optimizer: { m: new Float32Array(n), v: new Float32Array(n), step: 3 }, onProgress: (d, t) => seen.push([d, t]) });
      const size = statSync(join(saved.dir, 'model.safetensors')).size + statSync(join(saved.dir, 'optimizer.safetensors')).size;
      assert.deepEqual(seen[0], [0, size]);
      assert.deepEqual(seen.at(-1), [size, size]);
      assert.ok(seen.length > 3);
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]![0] >= seen[i - 1]![0], 'only grows');
    } finally {
      tmp.cleanup();
    }
  });

  it('a bar on a terminal, plain lines otherwise, nothing when silent', () => {
    let t = 0;
    const run = (mode: 'tty' | 'plain' | 'silent'): string => {
      let out = '';
      const p = new SaveProgress({ mode, write: (s) => (out += s), now: () => t });
      const total = 4 << 20;
      for (let d = 0; d <= total; d += 1 << 20) {
        t += 200;
        p.onProgress({ step: 7, done: d, total });
      }
      p.saved();
      return out;
    };
    const plain = run('plain');
    assert.deepEqual(plain.trimEnd().split('\n').map((l) => l.replace(/ in [\d.]+s$/, '')), [
      'saving checkpoint step 7 0% 0 B/4.0 MiB',
      'saving checkpoint step 7 25% 1.0/4.0 MiB',
      'saving checkpoint step 7 50% 2.0/4.0 MiB',
      'saving checkpoint step 7 75% 3.0/4.0 MiB',
      'saving checkpoint step 7 done 4.0 MiB',
    ]);
    const tty = run('tty');
    assert.ok(tty.includes('\r\x1b[2K'), 'redrawn in place');
    assert.match(tty, /saving checkpoint step 7 \[#+\] 100% 4\.0\/4\.0 MiB .*\n$/);
    assert.equal(run('silent'), '');
  });
});
