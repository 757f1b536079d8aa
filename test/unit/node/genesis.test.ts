import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { presetConfig } from '../../../src/model/index.js';
import { bundledGenesis, canonicalJson, networkIdOf } from '../../../src/node/genesis.js';

describe('genesis network id', () => {
  const tok = new TextEncoder().encode('tokenizer');
  const man = new TextEncoder().encode('manifest');

  it('is stable for the bundled genesis and has the documented form', () => {
    const g = bundledGenesis();
    assert.match(g.networkId, /^ns1-[0-9a-f]{32}$/);
    assert.equal(bundledGenesis().networkId, g.networkId);
  });

  it('ignores key order but changes with any field of the config, the tokenizer or the manifest', () => {
    const c = presetConfig('nano');
    const reordered = Object.fromEntries(Object.entries(c).reverse()) as typeof c;
    assert.equal(canonicalJson(c), canonicalJson(reordered));
    const id = networkIdOf(c, tok, man);
    assert.equal(networkIdOf(reordered, tok, man), id);
    assert.notEqual(networkIdOf({ ...c, rope_theta: 500000 }, tok, man), id);
    assert.notEqual(networkIdOf(c, new TextEncoder().encode('tokenizer2'), man), id);
    assert.notEqual(networkIdOf(c, tok, new TextEncoder().encode('manifest2')), id);
  });
});
