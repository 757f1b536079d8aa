/**
 * Fixed id layout of the NeuroShard byte-level BPE (the Python original's layout, kept so its numbers read the
 * same): 0 pad, 1 bos, 2 eos, 3 unk, 4–9 reserved, bytes 0x00–0xff → ids 10–265, learned merges from 266 on, in
 * the order they were learned.
 */
export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const UNK_ID = 3;
/** Ids 4–9: reserved for future special tokens; never produced by encode, skipped by decode. */
export const FIRST_RESERVED_ID = 4;
export const LAST_RESERVED_ID = 9;
/** Id of byte value b is BYTE_OFFSET + b. */
export const BYTE_OFFSET = 10;
/** The first merge's id: 10 special ids + 256 bytes. */
export const FIRST_MERGE_ID = 266;
/** Ids are stored as uint16 in shards, so a vocabulary never exceeds 65,536 ids. */
export const MAX_VOCAB_SIZE = 65_536;

export const SPECIAL_TOKENS = { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID, unk: UNK_ID } as const;

/** Name of the only pre-tokenizer format version 1 knows (see pretokenize.ts). */
export const PRETOKENIZER_NAME = 'neuroshard-cl100k-v1';
/** `format` field of a tokenizer file. */
export const TOKENIZER_FORMAT = 'neuroshard-tokenizer';
export const TOKENIZER_FORMAT_VERSION = 1;
/** The file name a tokenizer is saved under, in the genesis folder and in checkpoints. */
export const TOKENIZER_FILE_NAME = 'neuroshard-tokenizer.json';
/** Largest tokenizer file we parse (a 65,536-id vocabulary is about 1 MB of JSON). */
export const MAX_TOKENIZER_FILE_BYTES = 8 * 1024 * 1024;
