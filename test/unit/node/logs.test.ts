import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { lastLines } from '../../../src/cli/logs/index.js';
import { NodeLog, nodeLogPath } from '../../../src/node/logs.js';
import { tempDir } from '../../utils/paths.js';

describe('NodeLog', () => {
  it('appends lines to <data-dir>/logs/node.log (0600), keeps a ring of recent ones, and rotates at its size bound', () => {
    const t = tempDir('ns-log-');
    try {
      const log = new NodeLog(t.dir, { maxFileBytes: 300, ringLines: 3, maxLineChars: 90 });
      for (let i = 0; i < 10; i++) log.write(`line ${i} ${'x'.repeat(20)}`);
      log.note('node/train', 'eval step 5 val_loss 4.0000');
      log.write('y'.repeat(120));
      log.close();
      const path = nodeLogPath(t.dir);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.ok(statSync(path).size <= 300, 'the live file stays under its bound');
      assert.ok(readFileSync(path + '.1', 'utf8').includes('line'), 'the previous file was kept as node.log.1');
      const ring = log.ring.toArray();
      assert.equal(ring.length, 3);
      assert.match(ring[1]!, /^\d{4}-\d\d-\d\dT.* info {2}node\/train: eval step 5/);
      assert.equal(ring[2], 'y'.repeat(90) + '…', 'long lines are cut');
      const { lines } = lastLines(path, 2);
      assert.equal(lines.length, 2);
      assert.equal(lines[1], 'y'.repeat(90) + '…');
    } finally {
      t.cleanup();
    }
  });
});
