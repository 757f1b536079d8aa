import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  createKeystore,
  generateMnemonic,
  keyFromMnemonic,
  keystorePath,
  loadOrCreateKeystore,
  openKeystore,
  peerIdFromPublicKey,
  readKeystorePublic,
  resolvePassphrase,
  addressFromPublicKey,
} from '../../../src/identity/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';

const FAST = { n: 1 << 12, r: 8, p: 1 };

async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    if (isNeuroShardError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

describe('identity: keystore', () => {
  it('creates once with mode 0600, then loads the same key', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const data = join(dir, 'node');
      const a = await loadOrCreateKeystore(data);
      assert.equal(a.created, true);
      assert.equal(a.mnemonic?.split(' ').length, 24);
      assert.equal(statSync(keystorePath(data)).mode & 0o777, 0o600);
      assert.deepEqual(keyFromMnemonic(a.mnemonic!).publicKey, a.key.publicKey);
      const b = await loadOrCreateKeystore(data);
      assert.equal(b.created, false);
      assert.equal(b.mnemonic, undefined);
      assert.deepEqual(b.key.privateKey, a.key.privateKey);
      const pub = readKeystorePublic(data);
      assert.equal(pub.peerId, peerIdFromPublicKey(a.key.publicKey));
      assert.equal(pub.address, addressFromPublicKey(a.key.publicKey));
      assert.equal(pub.encrypted, false);
      // no temporary files left behind
      assert.deepEqual(readdirSync(data), ['keystore.json']);
    } finally {
      cleanup();
    }
  });

  it('encrypts with a passphrase: the mnemonic is not in the file, the wrong passphrase is refused', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const created = await loadOrCreateKeystore(dir, { passphrase: 'correct horse', scrypt: FAST });
      const text = readFileSync(keystorePath(dir), 'utf8');
      for (const w of created.mnemonic!.split(' ')) if (w.length > 4) assert.ok(!text.includes(` ${w} `));
      assert.ok(!text.includes(created.mnemonic!));
      assert.equal(readKeystorePublic(dir).encrypted, true);
      assert.equal(await codeOf(() => loadOrCreateKeystore(dir)), 'KEYSTORE_LOCKED');
      assert.equal(await codeOf(() => loadOrCreateKeystore(dir, { passphrase: 'wrong horse' })), 'KEYSTORE_BAD_PASSPHRASE');
      const opened = await loadOrCreateKeystore(dir, { passphrase: 'correct horse' });
      assert.deepEqual(opened.key.privateKey, created.key.privateKey);
      assert.equal(openKeystore(dir, { passphrase: 'correct horse' }).mnemonic, created.mnemonic);
    } finally {
      cleanup();
    }
  });

  it('refuses to overwrite unless forced, and refuses tampered files', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const m1 = generateMnemonic();
      createKeystore(dir, m1);
      assert.equal(await codeOf(() => createKeystore(dir, generateMnemonic())), 'KEYSTORE_EXISTS');
      const m2 = generateMnemonic();
      const k2 = createKeystore(dir, m2, { force: true });
      assert.deepEqual(openKeystore(dir).key.publicKey, k2.publicKey);

      const f = JSON.parse(readFileSync(keystorePath(dir), 'utf8')) as Record<string, unknown>;
      writeFileSync(keystorePath(dir), JSON.stringify({ ...f, mnemonic: m1 }));
      assert.equal(await codeOf(() => openKeystore(dir)), 'KEYSTORE_MISMATCH');
      writeFileSync(keystorePath(dir), JSON.stringify({ ...f, address: 'neuro1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqt3gd3s' }));
      assert.equal(await codeOf(() => readKeystorePublic(dir)), 'KEYSTORE_CORRUPT');
      writeFileSync(keystorePath(dir), '{not json');
      assert.equal(await codeOf(() => openKeystore(dir)), 'KEYSTORE_CORRUPT');
      writeFileSync(keystorePath(dir), JSON.stringify({ ...f, version: 2 }));
      assert.equal(await codeOf(() => openKeystore(dir)), 'KEYSTORE_CORRUPT');
    } finally {
      cleanup();
    }
  });

  it('finds the passphrase in --passphrase-file, then NEUROSHARD_PASSPHRASE', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'pass');
      writeFileSync(file, 'from file\nsecond line ignored\n');
      assert.equal(await resolvePassphrase({ file, env: { NEUROSHARD_PASSPHRASE: 'from env' }, prompt: false }), 'from file');
      assert.equal(await resolvePassphrase({ env: { NEUROSHARD_PASSPHRASE: 'from env' }, prompt: false }), 'from env');
      assert.equal(await resolvePassphrase({ env: {}, prompt: false }), undefined);
      assert.equal(await codeOf(() => resolvePassphrase({ file: join(dir, 'missing'), prompt: false })), 'CONFIG_INVALID');
      writeFileSync(file, '\n');
      assert.equal(await codeOf(() => resolvePassphrase({ file, prompt: false })), 'KEYSTORE_BAD_PASSPHRASE');
    } finally {
      cleanup();
    }
  });
});
