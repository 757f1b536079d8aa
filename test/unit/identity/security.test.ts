/**
 * Adversarial review of the key files: a keystore.json is accepted only in the one form we write, and node.lock is
 * never taken from a node that is starting.
 */
import assert from 'node:assert/strict';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createKeystore, generateMnemonic, keystorePath, nodeLockPath, openKeystore, readNodeLock, writeNodeLock } from '../../../src/identity/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';

const FAST = { n: 1 << 12, r: 8, p: 1 };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return isNeuroShardError(e) ? e.code : `untyped ${(e as Error).name}: ${(e as Error).message}`;
  }
  return 'no error';
}

function editCrypto(dir: string, f: (c: Record<string, unknown> & { kdfparams: Record<string, unknown> }) => void): void {
  const file = JSON.parse(readFileSync(keystorePath(dir), 'utf8')) as { crypto: Record<string, unknown> & { kdfparams: Record<string, unknown> } };
  f(file.crypto);
  writeFileSync(keystorePath(dir), JSON.stringify(file));
}

describe('identity security: keystore', () => {
  it('refuses a keystore whose AES-GCM tag was cut short (GCM would check only the bytes left)', () => {
    const { dir, cleanup } = tempDir();
    try {
      createKeystore(dir, generateMnemonic(), { passphrase: 'pw', scrypt: FAST });
      editCrypto(dir, (c) => (c.tag = Buffer.from(c.tag as string, 'base64').subarray(0, 4).toString('base64')));
      assert.equal(codeOf(() => openKeystore(dir, { passphrase: 'pw' })), 'KEYSTORE_CORRUPT');
    } finally {
      cleanup();
    }
  });

  it('refuses scrypt parameters it would not write (not a power of two, or gigabytes of memory) without running scrypt', () => {
    const { dir, cleanup } = tempDir();
    try {
      createKeystore(dir, generateMnemonic(), { passphrase: 'pw', scrypt: FAST });
      const original = readFileSync(keystorePath(dir), 'utf8');
      for (const kp of [{ n: 3000 }, { n: 1 << 20, r: 32 }, { n: 1 << 17, r: 8, p: 16 }]) {
        writeFileSync(keystorePath(dir), original);
        editCrypto(dir, (c) => Object.assign(c.kdfparams, kp));
        assert.equal(codeOf(() => openKeystore(dir, { passphrase: 'pw' })), 'KEYSTORE_CORRUPT', JSON.stringify(kp));
      }
      writeFileSync(keystorePath(dir), original);
      editCrypto(dir, (c) => (c.iv = Buffer.alloc(4).toString('base64')));
      assert.equal(codeOf(() => openKeystore(dir, { passphrase: 'pw' })), 'KEYSTORE_CORRUPT', 'a 4-byte iv');
    } finally {
      cleanup();
    }
  });
});

describe('identity security: node.lock', () => {
  it('does not take a lock file that another node has just created and not yet filled in', () => {
    const { dir, cleanup } = tempDir();
    try {
      writeFileSync(nodeLockPath(dir), ''); // the instant between another node's O_EXCL create and its write
      assert.equal(codeOf(() => writeNodeLock(dir, { apiPort: 1 })), 'NODE_LOCK_BUSY');
      // an unreadable lock left long ago (a crash, a full disk) is stale and replaced
      const past = new Date(Date.now() - 60_000);
      utimesSync(nodeLockPath(dir), past, past);
      const release = writeNodeLock(dir, { apiPort: 2 });
      assert.equal(readNodeLock(dir)?.apiPort, 2);
      release();
    } finally {
      cleanup();
    }
  });
});
