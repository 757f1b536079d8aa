/** The node options this area adds: trackers (repeatable --tracker, config list, comma-separated env) and apiPort. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS, loadOptions } from '../../../src/node/options.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';

describe('node options: trackers and apiPort', () => {
  it('default to no trackers and port 8000', () => {
    assert.deepEqual(DEFAULTS.trackers, []);
    assert.equal(DEFAULTS.apiPort, 8000);
  });

  it('merge from config, environment and flags', () => {
    const { dir, cleanup } = tempDir();
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ trackers: ['http://a.example:3000'], apiPort: 8100 }));
      const cfg = loadOptions({ flags: { dataDir: dir }, env: {} });
      assert.deepEqual([cfg.trackers, cfg.apiPort], [['http://a.example:3000'], 8100]);
      const env = loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_TRACKERS: 'http://b.example, https://c.example/api', NEUROSHARD_API_PORT: '0' } });
      assert.deepEqual([env.trackers, env.apiPort], [['http://b.example', 'https://c.example/api'], 0]);
      const flags = loadOptions({ flags: { dataDir: dir, trackers: ['http://d.example'], apiPort: '8200' }, env: {} });
      assert.deepEqual([flags.trackers, flags.apiPort], [['http://d.example'], 8200]);
    } finally {
      cleanup();
    }
  });

  it('reject bad values with the error type of their source', () => {
    const { dir, cleanup } = tempDir();
    try {
      for (const t of [['ftp://x'], ['not a url'], ['http://user:pw@x.example'], Array.from({ length: 17 }, (_, i) => `http://t${i}.example`)]) {
        assert.throws(() => loadOptions({ flags: { dataDir: dir, trackers: t }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'), JSON.stringify(t));
      }
      for (const p of ['-1', '65536', 'x', '1.5']) {
        assert.throws(() => loadOptions({ flags: { dataDir: dir, apiPort: p }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'), p);
      }
      assert.throws(() => loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_API_PORT: 'x' } }), (e) => isNeuroShardError(e, 'CONFIG_INVALID'));
    } finally {
      cleanup();
    }
  });
});
