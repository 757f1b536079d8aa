/**
 * Limits and names of the model commands, in a module of their own (no imports) so that the CLI can validate
 * flags without loading the model, data and compute code until a model command actually runs.
 */

/** Folder of the checkpoints inside the data dir. */
export const CHECKPOINTS_DIR = 'checkpoints';

/** Longest prompt accepted (characters), before it is encoded and checked against the context. */
export const GENERATE_MAX_PROMPT_CHARS = 64 * 1024;
/** Most stop strings, and the longest one. */
export const GENERATE_MAX_STOPS = 16;
export const GENERATE_MAX_STOP_CHARS = 256;

/** Largest --text file read (bytes): encoding runs at about 1 MB/s and scoring at a few thousand tokens/s. */
export const EVAL_MAX_TEXT_BYTES = 4 << 20;
/** Most ids --ids takes. */
export const EVAL_MAX_IDS = 100_000;
