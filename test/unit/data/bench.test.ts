import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchTokenizer } from '../../../src/data/index.js';
import { benchSections } from '../../../src/data/bench.js';

describe('tokenizer bench', () => {
  it('reports MB/s over genesis text (the figure itself belongs to npm run bench)', () => {
    const r = benchTokenizer({ bytes: 200_000 });
    assert.ok(r.bytes >= 200_000 && r.tokens > r.bytes / 8 && r.tokens < r.bytes / 2, JSON.stringify(r));
    assert.ok(Number.isFinite(r.mbPerS) && r.mbPerS > 0);
  });

  it('provides the tokenizer_mb_s section for scripts/bench.mjs', async () => {
    const lines: string[] = [];
    const section = benchSections.find((s) => s.name === 'tokenizer')!;
    const out = await section.run({ quick: true, log: (l) => lines.push(l) });
    assert.deepEqual(Object.keys(out), section.keys);
    assert.ok(out.tokenizer_mb_s > 0);
    assert.equal(lines.length, 3);
  });
});
