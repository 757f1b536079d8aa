import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { genesisDir } from '../../../src/data/index.js';
import { parseTokenizer, serializeTokenizer, Tokenizer, TokenizerFormatError } from '../../../src/model/tokenizer/index.js';
import { tempDir } from '../../utils/paths.js';

const committed = readFileSync(join(genesisDir(), 'neuroshard-tokenizer.json'), 'utf8');

function mutate(fn: (o: Record<string, unknown>) => void): string {
  const o = JSON.parse(committed) as Record<string, unknown>;
  fn(o);
  return JSON.stringify(o);
}

function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseTokenizer(text),
    (e: unknown) => e instanceof TokenizerFormatError && e.code === 'TOKENIZER_INVALID' && e.fault === 'config' && pattern.test(e.message),
  );
}

describe('tokenizer file format', () => {
  it('the committed file is in canonical form: parse then serialize gives the same bytes', () => {
    assert.equal(serializeTokenizer(parseTokenizer(committed)), committed);
    const head = JSON.parse(committed) as Record<string, unknown>;
    assert.equal(head.format, 'neuroshard-tokenizer');
    assert.equal(head.version, 1);
    assert.equal(head.vocab_size, 4096);
    assert.deepEqual(head.special_tokens, { pad: 0, bos: 1, eos: 2, unk: 3 });
  });

  it('serializes an empty tokenizer (bytes only)', () => {
    const text = serializeTokenizer({ merges: [], source: {} });
    assert.equal(new Tokenizer(parseTokenizer(text)).vocabSize, 266);
  });

  it('rejects malformed or inconsistent files with TOKENIZER_INVALID', () => {
    rejects('not json', /not JSON/);
    rejects('[]', /JSON object/);
    rejects(mutate((o) => (o.version = 2)), /version/);
    rejects(mutate((o) => (o.special_tokens = { pad: 1, bos: 0, eos: 2, unk: 3 })), /special_tokens/);
    rejects(mutate((o) => (o.pretokenizer = '(a+)+$')), /pretokenizer/);
    rejects(mutate((o) => (o.vocab_size = 5000)), /vocab_size/);
    rejects(mutate((o) => ((o.merges as unknown[])[0] = [10, 266])), /merge 0/); // refers to itself
    rejects(mutate((o) => ((o.merges as unknown[])[5] = [3, 10])), /merge 5/); // a special id
    rejects(mutate((o) => ((o.merges as unknown[])[7] = (o.merges as unknown[])[6])), /repeats/);
    rejects(mutate((o) => ((o.merges as unknown[])[2] = [10.5, 11])), /merge 2/);
    rejects(mutate((o) => (o.source = { x: { nested: true } })), /source/);
    rejects(' '.repeat(9 * 1024 * 1024), /limit/);
  });

  it('Tokenizer.load names the file in its errors', () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'neuroshard-tokenizer.json');
      writeFileSync(path, mutate((o) => (o.version = 9)));
      assert.throws(() => Tokenizer.load(path), (e: unknown) => e instanceof TokenizerFormatError && e.message.includes(path));
    } finally {
      cleanup();
    }
  });
});
