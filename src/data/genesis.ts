/**
 * The genesis corpus: how the committed tokenizer and manifest are made from the Brown corpus, deterministically.
 *
 * 1. Read the 500 Brown documents in file-name order (brown.ts) and shuffle them with the seeded Rng
 *    (GENESIS_SEED): the files are grouped by genre, and a shard should not be all newspaper or all fiction.
 * 2. The first VALIDATION_DOCUMENTS documents of that order are the validation set; the rest are training.
 * 3. The tokenizer is learned from the training documents only (so validation text is never seen, not even by the
 *    vocabulary): 4,096 ids, minimum pair frequency 2 (tokenizer/learn.ts for the tie-breaking rule).
 * 4. Each document becomes [BOS] + ids + [EOS]. The validation documents form shard 0 (split "val"); the
 *    training documents, concatenated, are cut every SHARD_TOKENS tokens into shards 1…n (the last one shorter).
 *
 * Every step is integer or exact, so any machine rebuilds the same bytes: `test/integration/data/genesis-rebuild`
 * checks the committed files against a rebuild. Shard files are not committed: they are regenerated from the
 * corpus package into a cache folder at first use (about a second) and checked against the manifest's SHA-256.
 * This keeps binary blobs out of the repository while the manifest still pins every byte.
 */
import { createHash } from 'node:crypto';
import { learnTokenizer, TOKENIZER_FILE_NAME, type Tokenizer } from '../model/tokenizer/index.js';
import { Rng } from '../util/rng.js';
import { brownLocation, readBrownDocuments, BROWN_PACKAGE, type BrownDocument } from './brown.js';
import { MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, type GenesisManifest, type ShardEntry } from './manifest.js';
import { encodeShard, SHARD_FORMAT_VERSION } from './shard-format.js';

/** Seed of the document shuffle. */
export const GENESIS_SEED = 0x4e455552; // "NEUR"
/** Documents held out for validation (4 % of 500, about one shard). */
export const VALIDATION_DOCUMENTS = 20;
/** Tokens per training shard. */
export const SHARD_TOKENS = 65_536;
/** Vocabulary of the genesis tokenizer (the nano preset's vocab_size). */
export const GENESIS_VOCAB_SIZE = 4096;
export const GENESIS_MIN_FREQUENCY = 2;
export const GENESIS_NAME = 'brown-v1';

/** Documents in shuffled order, split into validation and training. */
export function genesisDocuments(docs: BrownDocument[] = readBrownDocuments()): { val: BrownDocument[]; train: BrownDocument[] } {
  const order = new Rng(GENESIS_SEED).shuffle(docs.map((_, i) => i));
  const shuffled = order.map((i) => docs[i]);
  return { val: shuffled.slice(0, VALIDATION_DOCUMENTS), train: shuffled.slice(VALIDATION_DOCUMENTS) };
}

/** Provenance recorded in the tokenizer and the manifest. */
export function genesisSource(): Record<string, string | number> {
  return {
    corpus: `${BROWN_PACKAGE}@${brownLocation().version}`,
    seed: GENESIS_SEED,
    validation_documents: VALIDATION_DOCUMENTS,
  };
}

/** Learns the genesis tokenizer from scratch (seconds). */
export function learnGenesisTokenizer(docs?: BrownDocument[]): Tokenizer {
  const { train } = genesisDocuments(docs);
  return learnTokenizer(
    train.map((d) => d.text),
    {
      vocabSize: GENESIS_VOCAB_SIZE,
      minFrequency: GENESIS_MIN_FREQUENCY,
      source: { ...genesisSource(), training_documents: train.length, min_frequency: GENESIS_MIN_FREQUENCY },
    },
  );
}

export interface GenesisShard {
  entry: ShardEntry;
  /** The shard file's bytes (shard-format.ts). */
  bytes: Uint8Array;
}

/** Tokenizes the corpus into shard files and their manifest, with the given tokenizer. */
export function buildGenesisShards(tokenizer: Tokenizer, docs?: BrownDocument[]): { manifest: GenesisManifest; shards: GenesisShard[] } {
  const { val, train } = genesisDocuments(docs);
  const encodeDocs = (list: BrownDocument[]): Uint16Array => {
    const parts = list.map((d) => tokenizer.encode(d.text, { bos: true, eos: true }));
    const out = new Uint16Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const pieces: { split: 'train' | 'val'; tokens: Uint16Array }[] = [{ split: 'val', tokens: encodeDocs(val) }];
  const trainTokens = encodeDocs(train);
  for (let o = 0; o < trainTokens.length; o += SHARD_TOKENS) pieces.push({ split: 'train', tokens: trainTokens.subarray(o, o + SHARD_TOKENS) });

  const shards: GenesisShard[] = pieces.map((p, id) => {
    const bytes = encodeShard(p.tokens, tokenizer.vocabSize);
    return {
      bytes,
      entry: {
        id,
        file: `shard-${String(id).padStart(4, '0')}.bin`,
        split: p.split,
        tokens: p.tokens.length,
        bytes: bytes.byteLength,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      },
    };
  });
  const manifest: GenesisManifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_FORMAT_VERSION,
    name: GENESIS_NAME,
    shard_format: SHARD_FORMAT_VERSION,
    tokenizer: { file: TOKENIZER_FILE_NAME, sha256: tokenizer.sha256(), vocab_size: tokenizer.vocabSize },
    source: { ...genesisSource(), documents: val.length + train.length },
    total_tokens: shards.reduce((n, s) => n + s.entry.tokens, 0),
    shards: shards.map((s) => s.entry),
  };
  return { manifest, shards };
}
