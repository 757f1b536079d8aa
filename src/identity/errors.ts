/**
 * Typed errors of the identity module. Codes are stable strings; callers match on `code`, never on message text.
 */
import { ConfigError, InvalidArgumentError, PeerMisbehaviourError } from '../util/errors.js';

/** A mnemonic that is not a valid BIP39 English phrase (wrong word, wrong checksum, wrong length). */
export class InvalidMnemonicError extends InvalidArgumentError {
  constructor(message: string) {
    super(message, undefined, 'MNEMONIC_INVALID');
  }
}

/** A `neuro1…` address with a bad checksum, prefix or length: almost always a typo. */
export class InvalidAddressError extends InvalidArgumentError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super(message, meta, 'ADDRESS_INVALID');
  }
}

/**
 * A PeerId string that is malformed, or names a key that is not secp256k1. Raised as a peer fault because ids
 * normally arrive from the network; a CLI caller rewraps it when the id came from the user.
 */
export class InvalidPeerIdError extends PeerMisbehaviourError {
  constructor(code: 'PEER_ID_INVALID' | 'PEER_ID_NOT_SECP256K1', message: string, meta?: Record<string, unknown>) {
    super(code, message, meta);
  }
}

/** The keystore file is missing, corrupt, locked (encrypted with no passphrase given) or inconsistent. */
export class KeystoreError extends ConfigError {
  constructor(
    code: 'KEYSTORE_CORRUPT' | 'KEYSTORE_LOCKED' | 'KEYSTORE_EXISTS' | 'KEYSTORE_MISSING' | 'KEYSTORE_MISMATCH',
    message: string,
    meta?: Record<string, unknown>,
  ) {
    super(message, meta, code);
  }
}

/** The passphrase does not open the keystore (AES-GCM authentication failed). */
export class BadPassphraseError extends InvalidArgumentError {
  constructor(message = 'wrong passphrase for the keystore') {
    super(message, undefined, 'KEYSTORE_BAD_PASSPHRASE');
  }
}
