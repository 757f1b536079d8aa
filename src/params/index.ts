/**
 * Constants shared across the code base. This folder imports nothing. Values that a node operator may change
 * live in `src/node/options.ts` with their defaults; values here are protocol or format constants.
 */
export const PACKAGE_NAME = 'neuroshard';
export const PACKAGE_VERSION = '0.1.0';

/** Default state directory of a node, relative to the user's home. */
export const DEFAULT_DATA_DIR_NAME = '.neuroshard';

/** Environment variable prefix for options (`NEUROSHARD_LOG_LEVEL`, `NEUROSHARD_THREADS`, …). */
export const ENV_PREFIX = 'NEUROSHARD_';

/**
 * Closed outer rounds every training holder keeps (the window: the newest ones; training/keep.ts). A protocol
 * constant: a joiner's weights download (pool/rounds.ts) assumes every holder keeps this many.
 */
export const KEPT_ROUNDS = 4;
