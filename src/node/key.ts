/**
 * The node's key at start: opens `<data-dir>/keystore.json` (asking for the passphrase when it is encrypted) or
 * creates one on first start, and hardens what surrounds it (issue 11, item 12):
 * - the data dir is narrowed to 0700 even when it already existed with a wider mode, and the log says so;
 * - a keystore written or opened without a passphrase is announced loudly: the mnemonic in it is the wallet;
 * - NEUROSHARD_PASSPHRASE is removed from the environment, so worker threads and child processes never inherit it.
 */
import { PASSPHRASE_ENV, keystoreExists, keystorePath, loadOrCreateKeystore, readKeystorePublic, resolvePassphrase, scrubPassphraseEnv, secureDataDir, type NodeKey } from '../identity/index.js';
import type { Logger } from '../util/logger.js';

/** The warning printed when a node creates its key without a passphrase. */
export function unencryptedKeyWarning(path: string): string {
  return [
    '************************************************************************',
    'WARNING: the node key was written UNENCRYPTED (no passphrase was given).',
    `  ${path} holds the 24-word mnemonic in the clear: anyone who can read`,
    '  it controls this node and its NEURO wallet.',
    `  Encrypt it: stop the node, then set ${PASSPHRASE_ENV} or pass`,
    '  --passphrase-file and run `neuroshard wallet import --force` with the mnemonic',
    '  from `neuroshard wallet export`; back the mnemonic up offline.',
    '************************************************************************',
  ].join('\n');
}

export interface OpenNodeKeyModules {
  log: Logger;
  /** Where the loud warning goes (default stderr). */
  warn?: (text: string) => void;
}

export async function openNodeKey(dataDir: string, given: string | undefined, m: OpenNodeKeyModules): Promise<NodeKey> {
  const { log } = m;
  const warn = m.warn ?? ((t: string) => process.stderr.write(t + '\n'));
  try {
    const dir = secureDataDir(dataDir);
    if (dir.tightened) {
      log.warn('the data dir was readable by other users: its mode is now 0700', { dataDir, previousMode: dir.previousMode.toString(8) });
    }
    if (keystoreExists(dataDir)) {
      const pub = readKeystorePublic(dataDir);
      const passphrase = pub.encrypted ? (given ?? (await resolvePassphrase({ promptText: 'keystore passphrase: ' }))) : undefined;
      const r = await loadOrCreateKeystore(dataDir, passphrase === undefined ? {} : { passphrase });
      if (!r.encrypted) log.warn('the node key is stored unencrypted', { keystore: keystorePath(dataDir) });
      return r.key;
    }
    // A first start never blocks on a prompt: it encrypts only when a passphrase was supplied unattended.
    const passphrase = given ?? (await resolvePassphrase({ prompt: false }));
    const r = await loadOrCreateKeystore(dataDir, passphrase === undefined ? {} : { passphrase });
    if (r.encrypted) {
      log.info('created a new node key (encrypted); back up its 24-word mnemonic with `neuroshard wallet export`', { keystore: keystorePath(dataDir) });
    } else {
      log.warn('created a new node key UNENCRYPTED: the mnemonic is stored in the clear', { keystore: keystorePath(dataDir) });
      warn(unencryptedKeyWarning(keystorePath(dataDir)));
    }
    return r.key;
  } finally {
    scrubPassphraseEnv();
  }
}
