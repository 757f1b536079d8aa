import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { loadGenesisTokenizer } from '../../../src/data/index.js';
import { BOS_ID, EOS_ID, PAD_ID, Tokenizer, toWellFormed, UNK_ID } from '../../../src/model/tokenizer/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const tok = loadGenesisTokenizer();

/** Strings rich in what breaks tokenizers: emoji (with modifiers and ZWJ), CJK, combining marks, BOM, controls. */
const tricky = fc.string({
  unit: fc.oneof(
    fc.constantFrom('👍', '🏽', '\u200d', '👩‍👩‍👧', '🇫🇷', '東', '京', '한', '語', '\u0301', '\u0308', 'e', 'a', ' ', '\n', '\t', '\ufeff', '\u0000', "'", 'ſ', 'İ', '€', '1', '.'),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 3 }),
  ),
  maxLength: 60,
});

describe('Tokenizer (genesis vocabulary)', () => {
  it('has the documented id layout', () => {
    assert.equal(tok.vocabSize, 4096);
    assert.equal(tok.merges.length, 4096 - 266);
    assert.deepEqual([PAD_ID, BOS_ID, EOS_ID, UNK_ID], [0, 1, 2, 3]);
    for (let b = 0; b < 256; b++) assert.deepEqual([...tok.tokenBytes(10 + b)], [b]);
    for (let id = 0; id < 10; id++) assert.equal(tok.tokenBytes(id).length, 0);
    assert.deepEqual([...tok.encode('A')], [10 + 65]);
  });

  it('round-trips every well-formed string', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 100 }), tricky, fc.string({ unit: 'grapheme-composite', maxLength: 40 })), (s) => {
        assert.equal(tok.decode(tok.encode(s)), s);
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips fixed hard cases, a leading BOM included', () => {
    for (const s of ['', ' ', '\ufeffstart', '👩‍👩‍👧 family', 'naïve café', 'e\u0301\u0301', '東京は晴れ', "it's  12345\r\n\ttab", 'x'.repeat(10_000), ' '.repeat(5000)]) {
      assert.equal(tok.decode(tok.encode(s)), s);
    }
  });

  it('replaces lone surrogates by U+FFFD: decode(encode(s)) === toWellFormed(s)', () => {
    assert.equal(tok.decode(tok.encode('a\ud800b')), 'a\ufffdb');
    assert.equal(tok.decode(tok.encode('\udc00')), '\ufffd');
    assert.equal(tok.decode(tok.encode('\ud83d\ude00\ud83d')), '😀\ufffd');
    const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(fc.string({ unit: fc.oneof(anyUnit, fc.constantFrom('\ud800', '\udfff', 'a', '😀')), maxLength: 50 }), (s) => {
        assert.equal(tok.decode(tok.encode(s)), toWellFormed(s));
      }),
      { numRuns: 2000 },
    );
  });

  it('adds BOS/EOS only when asked and decode skips special ids', () => {
    const plain = [...tok.encode('Hello there.')];
    assert.deepEqual([...tok.encode('Hello there.', { bos: true, eos: true })], [BOS_ID, ...plain, EOS_ID]);
    assert.equal(tok.decode([BOS_ID, ...plain, PAD_ID, 5, EOS_ID]), 'Hello there.');
    assert.ok(tok.isSpecial(EOS_ID) && !tok.isSpecial(10));
  });

  it('compresses English text with the learned merges', () => {
    const text = 'The jury said it did find that many of the registration and election laws were outmoded.';
    const ids = tok.encode(text);
    assert.ok(ids.length < text.length / 3, `${ids.length} tokens for ${text.length} characters`);
    assert.ok([...ids].every((id) => id >= 10 && id < 4096));
  });

  it('gives the same ids with and without the encode cache', () => {
    const cold = Tokenizer.fromJSON(tok.toJSON(), { cacheSize: 0 });
    const tiny = Tokenizer.fromJSON(tok.toJSON(), { cacheSize: 3 });
    fc.assert(
      fc.property(fc.oneof(tricky, fc.string({ unit: 'binary', maxLength: 60 })), (s) => {
        const want = [...tok.encode(s)];
        assert.deepEqual([...cold.encode(s)], want);
        assert.deepEqual([...tiny.encode(s)], want);
        assert.deepEqual([...tok.encode(s)], want); // second call, from the cache
      }),
      { numRuns: 500 },
    );
  });

  it('decoding an id outside the vocabulary is a caller error', () => {
    for (const bad of [4096, -1, 1.5, NaN]) {
      assert.throws(() => tok.decode([10, bad]), (e: unknown) => isNeuroShardError(e, 'INVALID_ARGUMENT') && e.fault === 'caller');
    }
  });

  it('decodes a cut-off multi-byte character as U+FFFD', () => {
    const ids = [...tok.encode('€')]; // 3 bytes, no merges in an English vocabulary
    assert.equal(ids.length, 3);
    assert.equal(tok.decode(ids.slice(0, 2)), '\ufffd');
    assert.deepEqual([...tok.decodeBytes(ids)], [0xe2, 0x82, 0xac]);
  });

  it('has a stable identity: file text and SHA-256 survive a reload', () => {
    const again = Tokenizer.fromJSON(tok.toJSON());
    assert.equal(again.toJSON(), tok.toJSON());
    assert.equal(again.sha256(), tok.sha256());
    assert.match(tok.sha256(), /^[0-9a-f]{64}$/);
  });
});

describe('toWellFormed', () => {
  it('replaces only unpaired surrogates', () => {
    assert.equal(toWellFormed('ok😀'), 'ok😀');
    assert.equal(toWellFormed('\udc00\ud800'), '\ufffd\ufffd');
    assert.equal(toWellFormed('\ud800\udc00\ud800'), '\ud800\udc00\ufffd');
  });
});
