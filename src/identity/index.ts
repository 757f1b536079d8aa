/**
 * The node's one identity: a BIP39 mnemonic → one secp256k1 key, which is at once the libp2p PeerId, the wallet
 * address and the signer of proofs and ledger events. Formats and test vectors: docs/PROTOCOL.md "## Identity".
 */
export { DERIVATION_PATH, checkMnemonic, generateMnemonic, keyFromMnemonic, keyFromPrivate, normalizeMnemonic, type NodeKey } from './mnemonic.js';
export { PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH, clearVerifyKeyCache, domainTag, isLowS, isValidPublicKey, malleate, signDomain, signingDigest, verifyBackend, verifyDomain, verifyDomainDigest, verifyDomainOpenssl, verifyKeyCacheSize } from './sign.js';
export { libp2pPrivateKey, peerIdFromPublicKey, publicKeyFromPeerId, publicKeyViewFromPeerId } from './peer-id.js';
export { ADDRESS_BYTES, ADDRESS_LENGTH, ADDRESS_PREFIX, accountIdFromPublicKey, addressFromAccountId, addressFromPublicKey, isAddress, parseAddress } from './address.js';
export {
  DEFAULT_SCRYPT,
  KEYSTORE_FILE,
  PASSPHRASE_ENV,
  createKeystore,
  keystoreExists,
  keystorePath,
  loadOrCreateKeystore,
  openKeystore,
  promptHidden,
  readKeystorePublic,
  resolvePassphrase,
  scrubPassphraseEnv,
  secureDataDir,
  writeFileAtomic,
  type KeystoreOptions,
  type KeystorePublic,
  type PassphraseSources,
  type ScryptParams,
} from './keystore.js';
export { BadPassphraseError, InvalidAddressError, InvalidMnemonicError, InvalidPeerIdError, KeystoreError } from './errors.js';
export { NODE_LOCK_FILE, NodeRunningError, assertNoNodeRunning, nodeLockPath, readNodeLock, writeNodeLock, type NodeLockInfo } from './node-lock.js';
