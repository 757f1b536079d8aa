import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS, envName, loadOptions } from '../../src/node/options.js';
import { isNeuroShardError } from '../../src/util/errors.js';
import { tempDir } from '../utils/paths.js';

describe('options', () => {
  it('merges defaults < config.json < env < flags', () => {
    const { dir, cleanup } = tempDir();
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ logLevel: 'debug', threads: 3 }));
      const fromFile = loadOptions({ flags: { dataDir: dir }, env: {} });
      assert.equal(fromFile.logLevel, 'debug');
      assert.equal(fromFile.threads, 3);
      const fromEnv = loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_THREADS: '5' } });
      assert.equal(fromEnv.threads, 5);
      assert.equal(fromEnv.logLevel, 'debug');
      const fromFlag = loadOptions({ flags: { dataDir: dir, threads: '7' }, env: { NEUROSHARD_THREADS: '5' } });
      assert.equal(fromFlag.threads, 7);
    } finally {
      cleanup();
    }
  });

  it('takes the data dir from the environment', () => {
    const { dir, cleanup } = tempDir();
    try {
      assert.equal(loadOptions({ env: { NEUROSHARD_DATA_DIR: dir } }).dataDir, dir);
      assert.equal(loadOptions({ env: {} }).dataDir, DEFAULTS.dataDir);
    } finally {
      cleanup();
    }
  });

  it('rejects bad values with a typed error naming the option and its source', () => {
    const { dir, cleanup } = tempDir();
    try {
      assert.throws(() => loadOptions({ flags: { dataDir: dir, threads: '0' }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT') && /threads.*flag/.test(e.message));
      assert.throws(() => loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_LOG_LEVEL: 'loud' } }), (e) => isNeuroShardError(e, 'CONFIG_INVALID') && /logLevel.*env/.test(e.message));
      writeFileSync(join(dir, 'config.json'), '{"nope": 1}');
      assert.throws(() => loadOptions({ flags: { dataDir: dir }, env: {} }), (e) => isNeuroShardError(e, 'CONFIG_INVALID') && /unknown option "nope"/.test(e.message));
      writeFileSync(join(dir, 'config.json'), '{not json');
      assert.throws(() => loadOptions({ flags: { dataDir: dir }, env: {} }), (e) => isNeuroShardError(e, 'CONFIG_INVALID'));
    } finally {
      cleanup();
    }
  });

  it('maps option names to environment variables', () => {
    assert.equal(envName('logLevel'), 'NEUROSHARD_LOG_LEVEL');
    assert.equal(envName('dataDir'), 'NEUROSHARD_DATA_DIR');
  });
});

describe('DiLoCo options', () => {
  it('defaults to H = 500, outer lr 0.7, momentum 0.9, trimmed mean, int8, quorum 2/3, and validates them', () => {
    const { dir, cleanup } = tempDir();
    try {
      const o = loadOptions({ flags: { dataDir: dir }, env: {} });
      assert.deepEqual([o.innerSteps, o.outerLr, o.outerMomentum, o.aggregator, o.compress, o.outerQuorum], [500, 0.7, 0.9, 'trimmed-mean', 'int8', 2 / 3]);
      const f = loadOptions({ flags: { dataDir: dir, outerLr: '0.5', aggregator: 'krum', compress: 'sparse', outerQuorum: '1' }, env: {} });
      assert.deepEqual([f.outerLr, f.aggregator, f.compress, f.outerQuorum], [0.5, 'krum', 'sparse', 1]);
      assert.throws(() => loadOptions({ flags: { dataDir: dir, outerMomentum: '1' }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
      assert.throws(() => loadOptions({ flags: { dataDir: dir, aggregator: 'avg' }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
      assert.throws(() => loadOptions({ flags: { dataDir: dir, outerQuorum: '0' }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'));
    } finally {
      cleanup();
    }
  });
});

describe('pipeline options (--micro-batches, --pipeline-schedule, --stage-timeout-ms)', () => {
  it('default to 4 micro-batches under 1F1B with a 120 s stage deadline, take flags, and refuse bad values', () => {
    const { dir, cleanup } = tempDir();
    try {
      const o = loadOptions({ flags: { dataDir: dir }, env: {} });
      assert.deepEqual([o.microBatches, o.pipelineSchedule, o.stageTimeoutMs], [4, '1f1b', 120_000]);
      const f = loadOptions({ flags: { dataDir: dir, microBatches: '8', pipelineSchedule: 'gpipe', stageTimeoutMs: '30000' }, env: {} });
      assert.deepEqual([f.microBatches, f.pipelineSchedule, f.stageTimeoutMs], [8, 'gpipe', 30_000]);
      for (const bad of [{ microBatches: '0' }, { microBatches: '257' }, { microBatches: '2.5' }, { pipelineSchedule: 'zero-bubble' }, { stageTimeoutMs: '10' }]) {
        assert.throws(() => loadOptions({ flags: { dataDir: dir, ...bad }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT'), JSON.stringify(bad));
      }
    } finally {
      cleanup();
    }
  });
});

describe('paid inference (--pay-inference)', () => {
  it("defaults to auto, takes off, and refuses anything else", () => {
    const { dir, cleanup } = tempDir();
    try {
      assert.equal(loadOptions({ flags: { dataDir: dir }, env: {} }).payInference, 'auto');
      assert.equal(loadOptions({ flags: { dataDir: dir, payInference: 'off' }, env: {} }).payInference, 'off');
      assert.equal(loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_PAY_INFERENCE: 'off' } }).payInference, 'off');
      assert.throws(() => loadOptions({ flags: { dataDir: dir, payInference: 'sometimes' }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT') && /payInference/.test(e.message));
    } finally {
      cleanup();
    }
  });
});

describe('route exploration (--route-explore)', () => {
  it('defaults to the router share 0.05, takes 0 (off) from a flag or the environment, and refuses values outside [0, 1]', async () => {
    const { ROUTE_DEFAULTS } = await import('../../src/router/index.js');
    const { dir, cleanup } = tempDir();
    try {
      assert.equal(DEFAULTS.routeExplore, ROUTE_DEFAULTS.explore);
      assert.equal(loadOptions({ flags: { dataDir: dir }, env: {} }).routeExplore, 0.05);
      assert.equal(loadOptions({ flags: { dataDir: dir, routeExplore: '0' }, env: {} }).routeExplore, 0);
      assert.equal(loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_ROUTE_EXPLORE: '0.2' } }).routeExplore, 0.2);
      for (const bad of ['-0.1', '1.5', 'often']) assert.throws(() => loadOptions({ flags: { dataDir: dir, routeExplore: bad }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT') && /routeExplore/.test(e.message));
    } finally {
      cleanup();
    }
  });

  it('hop-to-hop pushes (--hop-push, session 29): off by default, on from a flag or the environment, and the driver gets it', async () => {
    const { DRIVER_DEFAULTS } = await import('../../src/router/index.js');
    const { dir, cleanup } = tempDir();
    try {
      assert.equal(DEFAULTS.hopPush, false);
      assert.equal(DRIVER_DEFAULTS.push, false);
      assert.equal(loadOptions({ flags: { dataDir: dir }, env: {} }).hopPush, false);
      assert.equal(loadOptions({ flags: { dataDir: dir, hopPush: true }, env: {} }).hopPush, true);
      assert.equal(loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_HOP_PUSH: '1' } }).hopPush, true);
      assert.throws(() => loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_HOP_PUSH: 'sometimes' } }), (e) => isNeuroShardError(e, 'CONFIG_INVALID') && /hopPush/.test(e.message));
      // session 30: auto, from the flag (`--hop-push auto`) or the environment
      assert.equal(loadOptions({ flags: { dataDir: dir, hopPush: 'auto' }, env: {} }).hopPush, 'auto');
      assert.equal(loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_HOP_PUSH: 'auto' } }).hopPush, 'auto');
    } finally {
      cleanup();
    }
  });

  it('bounds the folders of checkpoints moved aside: keep at least 1, a byte cap in MiB or 0 (session 29)', () => {
    const { dir, cleanup } = tempDir();
    try {
      const d = loadOptions({ flags: { dataDir: dir }, env: {} });
      assert.deepEqual([d.checkpointsAsideKeep, d.checkpointsAsideMaxMb], [3, 0]);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ checkpointsAsideKeep: 5 }));
      const o = loadOptions({ flags: { dataDir: dir }, env: { [envName('checkpointsAsideMaxMb')]: '2048' } });
      assert.deepEqual([o.checkpointsAsideKeep, o.checkpointsAsideMaxMb], [5, 2048]);
      assert.throws(() => loadOptions({ flags: { dataDir: dir, checkpointsAsideKeep: '0' }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT') && /checkpointsAsideKeep/.test(e.message));
      assert.throws(() => loadOptions({ flags: { dataDir: dir }, env: { NEUROSHARD_CHECKPOINTS_ASIDE_MAX_MB: '-1' } }), (e) => isNeuroShardError(e) && /checkpointsAsideMaxMb.*env/.test(e.message));
    } finally {
      cleanup();
    }
  });
});

describe('options a new user gets wrong (session 29 walkthrough)', () => {
  it('a config.json key with a typo names the nearest option', () => {
    const { dir, cleanup } = tempDir();
    try {
      writeFileSync(join(dir, 'config.json'), '{"spna": "0:2"}');
      assert.throws(() => loadOptions({ flags: { dataDir: dir }, env: {} }), (e) => isNeuroShardError(e, 'CONFIG_INVALID') && /unknown option "spna" \(did you mean [^)]*"span"\?\)/.test(e.message));
      writeFileSync(join(dir, 'config.json'), '{"zzzzzzzzzz": 1}');
      assert.throws(() => loadOptions({ flags: { dataDir: dir }, env: {} }), (e) => isNeuroShardError(e, 'CONFIG_INVALID') && /unknown option "zzzzzzzzzz"; `neuroshard config unset zzzzzzzzzz` removes it$/.test(e.message));
    } finally {
      cleanup();
    }
  });

  it('a data dir that is a file is a typed error naming it, from a flag or the environment', () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'not-a-folder');
      writeFileSync(file, 'x');
      assert.throws(() => loadOptions({ flags: { dataDir: file }, env: {} }), (e) => isNeuroShardError(e, 'INVALID_ARGUMENT') && e.message.includes(`${file} is a file, not a folder`));
      assert.throws(() => loadOptions({ env: { NEUROSHARD_DATA_DIR: file } }), (e) => isNeuroShardError(e, 'CONFIG_INVALID') && e.message.includes('is a file, not a folder'));
      assert.equal(loadOptions({ flags: { dataDir: join(dir, 'fresh') }, env: {} }).dataDir, join(dir, 'fresh'));
    } finally {
      cleanup();
    }
  });
});
