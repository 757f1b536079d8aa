import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_VERSION } from '../../src/params/index.js';
import { REPO_ROOT, tempDir } from '../utils/paths.js';

const exec = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec('npx', ['neuroshard', ...args], { cwd: REPO_ROOT, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('neuroshard CLI (npx)', () => {
  it('--version prints the package version', async () => {
    const r = await cli(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), PACKAGE_VERSION);
  });

  it('--help lists the commands; each command has --help', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /start/);
    const s = await cli(['start', '--help']);
    assert.equal(s.code, 0);
    assert.match(s.stdout, /usage: neuroshard start/);
  });

  it('exits 2 on bad usage', async () => {
    assert.equal((await cli(['no-such-command'])).code, 2);
    const r = await cli(['start', '--no-such-flag']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no-such-flag/);
  });
});

describe('neuroshard with its stdout closed early (`… | head -2`)', () => {
  it('stops writing and exits with its own code, no EPIPE stack trace', async () => {
    const d = tempDir('ns-epipe-');
    try {
      const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'neuroshard.js'), 'config', 'list', '--data-dir', d.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      // the reader goes away before the command writes anything: its first write meets EPIPE
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /EPIPE|\n\s+at /);
    } finally {
      d.cleanup();
    }
  });
});
