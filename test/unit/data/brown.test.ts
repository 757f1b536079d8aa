import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detokenizeBrown, joinWords, readBrownDocuments, splitTagged } from '../../../src/data/index.js';

describe('Brown corpus reader', () => {
  it('splits word/tag at the last slash', () => {
    assert.deepEqual(splitTagged('and/or/cc'), { word: 'and/or', tag: 'cc' });
    assert.deepEqual(splitTagged('1/2/cd'), { word: '1/2', tag: 'cd' });
    assert.deepEqual(splitTagged('//in'), { word: '/', tag: 'in' });
    assert.deepEqual(splitTagged('The/at'), { word: 'The', tag: 'at' });
  });

  it('joins words with prose spacing and text quotes', () => {
    assert.equal(joinWords(['He', 'said', ',', '``', 'no', "''", '.']), 'He said, "no".');
    assert.equal(joinWords(['a', '(', 'b', ')', ';', 'c', '?', 'd', '!', 'e', ':', 'f']), 'a (b); c? d! e: f');
    assert.equal(joinWords(['the', "'", 'Met', "'", 'again', "'", 'x', "'"]), "the 'Met' again 'x'");
    assert.equal(joinWords(['Ivan', 'Allen', 'Jr.', '.']), 'Ivan Allen Jr.');
    assert.equal(joinWords(['yes', '--', 'no']), 'yes -- no');
  });

  it('turns a tagged file into paragraphs, headlines on their own', () => {
    const raw = "\n\n\tThe/at jury/nn said/vbd ./.\nIt/pps agreed/vbd ./.\n\n\nMerger/nn-hl proposed/vbn-hl\nHowever/wrb ,/, no/at ./.\n\n\t``/`` Yes/rb ''/'' ./.\n";
    assert.equal(detokenizeBrown(raw), 'The jury said. It agreed.\n\nMerger proposed\n\nHowever, no.\n\n"Yes".');
  });

  it('reads all 500 documents as clean ASCII text without tags', () => {
    const docs = readBrownDocuments();
    assert.equal(docs.length, 500);
    assert.equal(docs[0].name, 'ca01');
    assert.equal(docs[499].name, 'cr09');
    assert.deepEqual([...new Set(docs.map((d) => d.genre))].join(''), 'abcdefghjklmnpr');
    let chars = 0;
    for (const d of docs) {
      chars += d.text.length;
      assert.ok(/^[\x20-\x7e\n]+$/.test(d.text), `${d.name} has non-printable characters`);
      assert.ok(!/\/(nn|vbd|at|in|jj|np)(\s|$)/.test(d.text), `${d.name} still has tags`);
      assert.ok(!d.text.includes('``') && !d.text.includes("''"), `${d.name} has Brown quotes`);
    }
    assert.ok(chars > 5_500_000 && chars < 6_500_000, `${chars} characters`);
    assert.ok(docs[0].text.startsWith('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.\n\n'));
  });
});
