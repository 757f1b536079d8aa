import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pretokenize } from '../../../src/model/tokenizer/index.js';

describe('pretokenize', () => {
  it('splits like cl100k: contractions, letter runs with a leading space, digit groups, punctuation, whitespace', () => {
    assert.deepEqual(pretokenize("Hello world, it's 12345 dollars!!  ok"), ['Hello', ' world', ',', ' it', "'s", ' ', '123', '45', ' dollars', '!!', ' ', ' ok']);
    assert.deepEqual(pretokenize("WE'LL don't"), ['WE', "'LL", ' don', "'t"]);
    assert.deepEqual(pretokenize('a\n\n  b'), ['a', '\n\n', ' ', ' b']);
    assert.deepEqual(pretokenize('"quoted" (x)'), ['"quoted', '"', ' (', 'x', ')']);
  });

  it('keeps non-Latin letters, combining marks and emoji in pieces', () => {
    assert.deepEqual(pretokenize(' 東京 café'), [' 東京', ' café']);
    assert.deepEqual(pretokenize('x\u0301'), ['x', '\u0301']);
    assert.deepEqual(pretokenize(' 👍🏽'), [' 👍🏽']);
  });

  it('pieces concatenate back to any input, ill-formed UTF-16 included', () => {
    const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ unit: anyUnit, maxLength: 80 })), (s) => {
        const pieces = pretokenize(s);
        assert.equal(pieces.join(''), s);
        for (const p of pieces) assert.ok(p.length > 0);
      }),
      { numRuns: 2000 },
    );
  });
});
