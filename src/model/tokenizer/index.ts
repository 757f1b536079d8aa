/**
 * The NeuroShard tokenizer: byte-level BPE with a cl100k-style pre-tokeniser, 0 pad, 1 bos, 2 eos, 3 unk,
 * 4–9 reserved, bytes at 10–265, merges from 266. One JSON file per vocabulary (`neuroshard-tokenizer.json`,
 * format in format.ts).
 *
 * ```ts
 * const tok = Tokenizer.load('neuroshard-tokenizer.json');
 * const ids = tok.encode('Hello world', { bos: true }); // Int32Array
 * tok.decode(ids) === 'Hello world';                       // specials are skipped
 * tok.vocabSize;                                           // 4096 for the genesis vocabulary
 * ```
 *
 * `decode(encode(s)) === s` for every well-formed string; a lone surrogate is encoded as U+FFFD (what TextEncoder
 * does), so in general `decode(encode(s)) === toWellFormed(s)`. Learning is deterministic (learn.ts documents the
 * tie-breaking rule).
 *
 * The genesis vocabulary itself (learned from the Brown corpus) is loaded through `src/data`
 * (`loadGenesisTokenizer()`), which owns the committed file.
 */
export {
  BOS_ID,
  BYTE_OFFSET,
  EOS_ID,
  FIRST_MERGE_ID,
  FIRST_RESERVED_ID,
  LAST_RESERVED_ID,
  MAX_TOKENIZER_FILE_BYTES,
  MAX_VOCAB_SIZE,
  PAD_ID,
  PRETOKENIZER_NAME,
  SPECIAL_TOKENS,
  TOKENIZER_FILE_NAME,
  TOKENIZER_FORMAT,
  TOKENIZER_FORMAT_VERSION,
  UNK_ID,
} from './constants.js';
export { Tokenizer, toWellFormed, type EncodeOptions, type TokenizerOptions } from './tokenizer.js';
export { parseTokenizer, serializeTokenizer, TokenizerFormatError, type SourceInfo, type TokenizerSpec } from './format.js';
export { countPieces, learnMerges, learnTokenizer, type LearnOptions, type LearnResult, type LearnTokenizerOptions } from './learn.js';
export { forEachPiece, pretokenize, PRETOKENIZE_PATTERN_SOURCE } from './pretokenize.js';
export { applyMerges, applyMergesHeap, applyMergesScan, pairKey, type MergeTable } from './bpe.js';
