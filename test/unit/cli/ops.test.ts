/**
 * The CLI's shared contract, in process through main(): `--help` (exit 0) and an unknown flag (exit 2) on every
 * command, and `config get|set|list|unset` on a real data dir.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { COMMANDS } from '../../../src/cli/commands.js';
import { main } from '../../../src/cli/main.js';
import { tempDir } from '../../utils/paths.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), signal: new AbortController().signal });
  return { code, out, err };
}

async function json(args: string[]): Promise<unknown> {
  const r = await cli(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
  return JSON.parse(r.out);
}

describe('every command', () => {
  it('answers --help with exit 0 and an unknown flag with exit 2', async () => {
    for (const c of COMMANDS) {
      const h = await cli([c.name, '--help']);
      assert.equal(h.code, 0, `${c.name} --help`);
      assert.match(h.out, new RegExp(`usage: neuroshard ${c.name}`));
      const bad = await cli([c.name, '--no-such-flag']);
      assert.equal(bad.code, 2, `${c.name} --no-such-flag: ${bad.err}`);
    }
  });
  it('the operator commands are registered', () => {
    for (const name of ['chat', 'swarm', 'logs', 'stop', 'config']) assert.ok(COMMANDS.some((c) => c.name === name), name);
  });
});

describe('neuroshard config', () => {
  const d = tempDir('ns-config-');
  after(() => d.cleanup());
  const prev = process.env.NEUROSHARD_THREADS;
  delete process.env.NEUROSHARD_THREADS;
  after(() => {
    if (prev !== undefined) process.env.NEUROSHARD_THREADS = prev;
  });

  it('sets a validated value in config.json, gets it with its source, lists all, and unsets it', async () => {
    const set = (await json(['config', 'set', 'threads', '3', '--json', '--data-dir', d.dir])) as { key: string; value: number };
    assert.deepEqual([set.key, set.value], ['threads', 3]);
    assert.equal(statSync(join(d.dir, 'config.json')).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(join(d.dir, 'config.json'), 'utf8')), { threads: 3 });
    assert.deepEqual(await json(['config', 'get', 'threads', '--json', '--data-dir', d.dir]), { key: 'threads', value: 3, source: 'config' });
    assert.equal((await cli(['config', 'get', 'threads', '--data-dir', d.dir])).out, '3\n');
    await json(['config', 'set', 'trackers', 'http://127.0.0.1:3000,http://127.0.0.1:3001', '--data-dir', d.dir, '--json']);
    const list = (await json(['config', 'list', '--json', '--data-dir', d.dir])) as { options: { key: string; value: unknown; source: string }[] };
    assert.deepEqual(
      list.options.find((o) => o.key === 'trackers'),
      { key: 'trackers', value: ['http://127.0.0.1:3000', 'http://127.0.0.1:3001'], source: 'config' },
    );
    assert.equal(list.options.find((o) => o.key === 'apiPort')?.source, 'default');
    // a bad value or an unknown key is bad usage (exit 2) and leaves the file as it was
    const bad = await cli(['config', 'set', 'threads', 'many', '--data-dir', d.dir]);
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /threads/);
    assert.equal((await cli(['config', 'set', 'nope', '1', '--data-dir', d.dir])).code, 2);
    assert.equal((await cli(['config', 'set', 'dataDir', '/x', '--data-dir', d.dir])).code, 2);
    assert.equal((await cli(['config', 'frob', '--data-dir', d.dir])).code, 2);
    assert.equal((JSON.parse(readFileSync(join(d.dir, 'config.json'), 'utf8')) as { threads: number }).threads, 3);
    const unset = (await json(['config', 'unset', 'threads', '--json', '--data-dir', d.dir])) as { removed: boolean };
    assert.equal(unset.removed, true);
    assert.equal(((await json(['config', 'get', 'threads', '--json', '--data-dir', d.dir])) as { source: string }).source, 'default');
  });
});

describe('neuroshard logs and stop without a node', () => {
  const d = tempDir('ns-nolog-');
  after(() => d.cleanup());
  it('exit 1 with a typed error when there is no log or no node', async () => {
    const logs = await cli(['logs', '--data-dir', d.dir]);
    assert.equal(logs.code, 1);
    assert.match(logs.err, /NO_LOG/);
    const stop = await cli(['stop', '--data-dir', d.dir]);
    assert.equal(stop.code, 1);
    assert.match(stop.err, /NODE_NOT_RUNNING/);
  });
});
