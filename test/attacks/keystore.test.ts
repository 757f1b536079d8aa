/**
 * Attack 12 (issue 11): keystore defaults. A node's first start wrote the 24-word mnemonic in the clear with one
 * info line; a data dir that existed before (made by hand, by a provisioning tool, by `mkdir -p` with a 022 umask)
 * kept its 0755 mode, so the ledger, logs and API keys beside the keystore were readable by every local user; and
 * NEUROSHARD_PASSPHRASE stayed in the environment, where every child process the node started inherited it.
 * Now the data dir is narrowed to 0700 and the log says so, an unencrypted key is announced loudly (a banner on
 * stderr and a warning), and the passphrase leaves the environment as soon as it has been read.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PASSPHRASE_ENV, keystorePath, readKeystorePublic, resolvePassphrase } from '../../src/identity/index.js';
import { openNodeKey } from '../../src/node/key.js';
import { createLogger } from '../../src/util/logger.js';
import { tempDir } from '../utils/paths.js';
import { tally } from './tally.js';

const posix = process.platform !== 'win32';

function capture(): { lines: string[]; banners: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, banners: [], log: createLogger({ level: 'debug', write: (l) => lines.push(l) }) };
}

/** What a child process started now would see of the passphrase. */
function childSees(): string {
  return execFileSync(process.execPath, ['-e', `process.stdout.write(process.env.${PASSPHRASE_ENV} ?? '')`], { encoding: 'utf8' });
}

describe('attack 12: keystore defaults', { skip: !posix && 'POSIX modes' }, () => {
  it('a pre-existing 0755 data dir is narrowed to 0700, and the log says so', async () => {
    const t = tempDir('neuroshard-attack-');
    try {
      const dataDir = join(t.dir, 'data');
      mkdirSync(dataDir);
      chmodSync(dataDir, 0o755);
      const c = capture();
      await openNodeKey(dataDir, undefined, { log: c.log, warn: (b) => c.banners.push(b) });
      const mode = statSync(dataDir).mode & 0o777;
      const keyMode = statSync(keystorePath(dataDir)).mode & 0o777;
      tally('keystore: data dir left readable', 1, mode & 0o077 ? 1 : 0);
      assert.equal(mode, 0o700);
      assert.equal(keyMode, 0o600);
      assert.ok(c.lines.some((l) => / warn .*data dir was readable by other users.*previousMode=755/.test(l)), c.lines.join('\n'));
    } finally {
      t.cleanup();
    }
  });

  it('a first start without a passphrase says loudly that the mnemonic is stored in the clear', async () => {
    const t = tempDir('neuroshard-attack-');
    const saved = process.env[PASSPHRASE_ENV];
    delete process.env[PASSPHRASE_ENV];
    try {
      const c = capture();
      await openNodeKey(t.dir, undefined, { log: c.log, warn: (b) => c.banners.push(b) });
      assert.equal(readKeystorePublic(t.dir).encrypted, false);
      const loud = c.banners.length === 1 && /UNENCRYPTED/.test(c.banners[0]!) && c.lines.some((l) => / warn .*UNENCRYPTED/.test(l));
      tally('keystore: silent plaintext mnemonic', 1, loud ? 0 : 1);
      assert.ok(loud, `banner and warning expected: ${c.banners.join('|')} ${c.lines.join('\n')}`);
      assert.ok(c.banners[0]!.includes(keystorePath(t.dir)));
      // every later start repeats a (shorter) warning while the key stays unencrypted
      const again = capture();
      await openNodeKey(t.dir, undefined, { log: again.log, warn: (b) => again.banners.push(b) });
      assert.ok(again.lines.some((l) => / warn .*unencrypted/.test(l)));
    } finally {
      if (saved !== undefined) process.env[PASSPHRASE_ENV] = saved;
      t.cleanup();
    }
  });

  it('NEUROSHARD_PASSPHRASE leaves the environment once read: a child process does not inherit it', async () => {
    const t = tempDir('neuroshard-attack-');
    try {
      process.env[PASSPHRASE_ENV] = 'correct horse battery staple';
      assert.equal(childSees(), 'correct horse battery staple', 'the fixture: a child inherits the environment');
      const c = capture();
      await openNodeKey(t.dir, undefined, { log: c.log, warn: (b) => c.banners.push(b) });
      assert.equal(readKeystorePublic(t.dir).encrypted, true, 'the passphrase from the environment encrypted the new key');
      const leaked = childSees();
      tally('keystore: passphrase inherited by a child', 1, leaked === '' ? 0 : 1);
      assert.equal(leaked, '');
      assert.equal(process.env[PASSPHRASE_ENV], undefined);
      assert.equal(c.banners.length, 0, 'no plaintext banner for an encrypted key');
      // and resolvePassphrase alone consumes it too (wallet commands)
      const env: NodeJS.ProcessEnv = { [PASSPHRASE_ENV]: 'another one' };
      assert.equal(await resolvePassphrase({ env, prompt: false }), 'another one');
      assert.equal(env[PASSPHRASE_ENV], undefined);
    } finally {
      delete process.env[PASSPHRASE_ENV];
      t.cleanup();
    }
  });
});
