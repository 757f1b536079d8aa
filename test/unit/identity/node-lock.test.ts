import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { assertNoNodeRunning, nodeLockPath, readNodeLock, writeNodeLock } from '../../../src/identity/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';

describe('identity: node.lock', () => {
  it('is written, read and released by its owner', () => {
    const { dir, cleanup } = tempDir();
    try {
      assert.equal(readNodeLock(dir), undefined);
      const release = writeNodeLock(dir, { apiPort: 8123, peerId: 'p' });
      const info = readNodeLock(dir);
      assert.equal(info?.pid, process.pid);
      assert.equal(info?.apiPort, 8123);
      assert.doesNotThrow(() => assertNoNodeRunning(dir)); // our own lock does not block us
      release();
      assert.equal(existsSync(nodeLockPath(dir)), false);
    } finally {
      cleanup();
    }
  });

  it('refuses a second live node and replaces a stale lock', () => {
    const { dir, cleanup } = tempDir();
    try {
      // a live foreign pid: our parent process (the test runner or the shell) is alive
      writeFileSync(nodeLockPath(dir), JSON.stringify({ pid: process.ppid, apiPort: 1, startedAt: '' }));
      assert.equal(readNodeLock(dir)?.pid, process.ppid);
      assert.throws(() => writeNodeLock(dir, { apiPort: 2 }), (e) => isNeuroShardError(e, 'NODE_RUNNING'));
      assert.throws(() => assertNoNodeRunning(dir), (e) => isNeuroShardError(e, 'NODE_RUNNING'));
      // a dead pid: a child that has already exited
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
      writeFileSync(nodeLockPath(dir), JSON.stringify({ pid: dead, apiPort: 1, startedAt: '' }));
      assert.equal(readNodeLock(dir), undefined);
      const release = writeNodeLock(dir, { apiPort: 3 });
      assert.equal(readNodeLock(dir)?.apiPort, 3);
      release();
      writeFileSync(nodeLockPath(dir), 'garbage');
      assert.equal(readNodeLock(dir), undefined);
    } finally {
      cleanup();
    }
  });
});
