/**
 * Which network a node is on (node/network-model.ts): the id commits to a checkpoint's config and tokenizer files,
 * an own-format checkpoint of the bundled shape and tokenizer keeps the bundled id, a --network-id that contradicts
 * the checkpoint is refused, and a --network-id without the checkpoint means fetching the files from peers.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { toHfConfigJson } from '../../../src/model/config.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import { resolveNetworkModel } from '../../../src/node/network-model.js';
import { loadOptions } from '../../../src/node/options.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';

describe('the network of a node', () => {
  const g = bundledGenesis();

  it('commits to the checkpoint’s config and tokenizer files; the bundled shape and tokenizer keep the bundled id', () => {
    const tmp = tempDir('ns-netmodel-');
    try {
      const own = join(tmp.dir, 'own');
      mkdirSync(own);
      writeFileSync(join(own, 'config.json'), JSON.stringify(toHfConfigJson(g.config)));
      assert.equal(resolveNetworkModel({ checkpoint: own, networkId: undefined }, g).networkId, g.networkId, 'no tokenizer: the bundled one');
      copyFileSync(g.tokenizerPath, join(own, 'neuroshard-tokenizer.json'));
      assert.equal(resolveNetworkModel({ checkpoint: own, networkId: undefined }, g).networkId, g.networkId, 'the bundled tokenizer copied in');

      const hf = join(tmp.dir, 'hf');
      mkdirSync(hf);
      writeFileSync(join(hf, 'config.json'), JSON.stringify(toHfConfigJson(g.config)));
      writeFileSync(join(hf, 'tokenizer.json'), '{"model":{"type":"BPE"}}');
      writeFileSync(join(hf, 'tokenizer_config.json'), '{"chat_template":"A"}');
      const a = resolveNetworkModel({ checkpoint: hf, networkId: undefined }, g);
      assert.notEqual(a.networkId, g.networkId);
      assert.deepEqual(a.files?.files.map((f) => f.name), ['tokenizer.json', 'tokenizer_config.json']);
      // another chat template: another network
      writeFileSync(join(hf, 'tokenizer_config.json'), '{"chat_template":"B"}');
      const b = resolveNetworkModel({ checkpoint: hf, networkId: undefined }, g);
      assert.notEqual(b.networkId, a.networkId);
      assert.equal(resolveNetworkModel({ checkpoint: hf, networkId: b.networkId }, g).networkId, b.networkId);
      assert.throws(() => resolveNetworkModel({ checkpoint: hf, networkId: a.networkId }, g), (e: unknown) => isNeuroShardError(e) && e.code === 'CONFIG_INVALID');

      const joiner = resolveNetworkModel({ checkpoint: undefined, networkId: b.networkId }, g);
      assert.deepEqual([joiner.networkId, joiner.fetch, joiner.files], [b.networkId, true, undefined]);
      const plain = resolveNetworkModel({ checkpoint: undefined, networkId: undefined }, g);
      assert.deepEqual([plain.networkId, plain.fetch], [g.networkId, false]);
    } finally {
      tmp.cleanup();
    }
  });

  it('--network-id is validated', () => {
    const tmp = tempDir('ns-netmodel-opts-');
    try {
      const id = 'ns1-' + 'a'.repeat(32);
      assert.equal(loadOptions({ flags: { dataDir: tmp.dir, networkId: id }, env: {} }).networkId, id);
      assert.equal(loadOptions({ flags: { dataDir: tmp.dir }, env: {} }).networkId, undefined);
      for (const bad of ['ns1-xyz', 'ns1-' + 'A'.repeat(32), 'ns2-' + 'a'.repeat(32)]) {
        assert.throws(() => loadOptions({ flags: { dataDir: tmp.dir, networkId: bad }, env: {} }), (e: unknown) => isNeuroShardError(e) && e.code === 'INVALID_ARGUMENT', bad);
      }
    } finally {
      tmp.cleanup();
    }
  });
});
