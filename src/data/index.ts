/**
 * Genesis data: the bundled Brown corpus, manifests, verified shard loading and batching.
 *
 * What `neuroshard train --corpus DIR|URL` needs:
 *
 * ```ts
 * const corpus = await openCorpus(flags.corpus, { cacheDir: join(dataDir, 'corpus'), signal }); // undefined = bundled
 * corpus.tokenizer;                                    // the manifest's tokenizer, SHA-256 checked
 * const stream = await corpus.trainStream({ nodeId, batchSize: 8, seqLen: 256, seed, position });
 * const { inputs, labels } = stream.next();            // Int32Array [B·S] each; labels = inputs shifted by one
 * const position = stream.position();                  // JSON: store in the checkpoint, pass back to resume
 * const val = await corpus.validationBatches({ batchSize: 8, seqLen: 256 });
 * const baseline = await corpus.unigramBaseline();     // nats/token, the loss to beat
 * corpus.events.on('shard:rejected', (e) => …);       // a shard's bytes failed their SHA-256 and were dropped
 * ```
 *
 * Formats: manifest.ts (manifest.json), shard-format.ts (shard files), the tokenizer file in
 * src/model/tokenizer/format.ts. How the genesis files are made: genesis.ts; regenerate them with
 * `node scripts/build-genesis.mjs`.
 */
export { openCorpus, Corpus, loadGenesisTokenizer, bundledManifestPath, type CorpusEvents, type OpenCorpusOptions, type ShardOrigin, type TrainStreamOptions } from './corpus.js';
export { BatchStream, sequentialBatches, deriveSeed, type Batch, type BatchStreamOptions, type DataPosition, type ShardTokens } from './batcher.js';
export { assignShards } from './assign.js';
export { unigramCrossEntropy } from './unigram.js';
export { benchTokenizer, type TokenizerBench } from './bench.js';
export {
  parseManifest,
  serializeManifest,
  ManifestError,
  MANIFEST_FILE_NAME,
  MANIFEST_FORMAT,
  MANIFEST_FORMAT_VERSION,
  MAX_MANIFEST_BYTES,
  MAX_SHARDS,
  MAX_SHARD_TOKENS,
  type GenesisManifest,
  type ShardEntry,
  type ShardSplit,
} from './manifest.js';
export { decodeShard, encodeShard, shardFileBytes, ShardFormatError, SHARD_FORMAT_VERSION, SHARD_HEADER_BYTES, SHARD_MAGIC } from './shard-format.js';
export { ShardIntegrityError, DataFetchError } from './errors.js';
export { corpusSource, DirSource, HttpSource, type CorpusSource, type ReadOptions } from './source.js';
export { readBrownDocuments, detokenizeBrown, joinWords, splitTagged, brownLocation, type BrownDocument } from './brown.js';
export {
  buildGenesisShards,
  genesisDocuments,
  learnGenesisTokenizer,
  GENESIS_MIN_FREQUENCY,
  GENESIS_NAME,
  GENESIS_SEED,
  GENESIS_VOCAB_SIZE,
  SHARD_TOKENS,
  VALIDATION_DOCUMENTS,
  type GenesisShard,
} from './genesis.js';
export { genesisDir, packageRoot } from './paths.js';
