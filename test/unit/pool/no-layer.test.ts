/**
 * A node whose offered memory holds no layer is told so once, with the memory that would hold one (session 29's
 * walkthrough: `--memory-mb 12` on the nano model logged only "the layer pool found no span for this node yet" every
 * 10 s).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NANO } from '../../../src/model/index.js';
import { layersFor, minMemoryForOneLayerMb, noLayerMessage } from '../../../src/pool/capacity.js';

describe('memory that holds no layer', () => {
  it('the least memory that holds one layer is exactly where layersFor turns 1, f32 and int8', () => {
    for (const w of ['f32', 'int8'] as const) {
      const need = minMemoryForOneLayerMb(NANO, w);
      assert.equal(layersFor(NANO, need, w), 1, w);
      assert.equal(layersFor(NANO, need - 1, w), 0, w);
    }
  });

  it('names --memory-mb when it is the cap, the free memory otherwise, and the MiB that would do; nothing when a layer fits', () => {
    const need = minMemoryForOneLayerMb(NANO);
    const capped = noLayerMessage(NANO, layersFor(NANO, 12), 12, 12);
    assert.ok(capped !== undefined);
    assert.match(capped, new RegExp(`^--memory-mb 12 holds no layer of this model: one takes ${need} MiB .*give it --memory-mb ${need} or more, or pass --span none`));
    const short = noLayerMessage(NANO, 0, 3, undefined);
    assert.match(short ?? '', /^the free memory less the 512 MiB reserve \(3 MiB\) holds no layer/);
    assert.equal(noLayerMessage(NANO, layersFor(NANO, need), need, need), undefined);
  });
});
