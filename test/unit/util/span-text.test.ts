/** How a span is written for people: `a:b`, half-open, as typed after `--span` (CLI, dashboard). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadOptions } from '../../../src/node/options.js';
import { spanText } from '../../../src/util/span-text.js';

describe('spanText', () => {
  it('writes a:b, half-open, and none for no layers', () => {
    assert.equal(spanText({ start: 0, end: 4 }), '0:4');
    assert.equal(spanText({ start: 3, end: 4 }), '3:4');
    assert.equal(spanText(null), 'none');
    assert.equal(spanText(undefined), 'none');
  });

  it('is what --span reads back', () => {
    const span = { start: 3, end: 7 };
    assert.deepEqual(loadOptions({ flags: { span: spanText(span) }, env: {} }).span, span);
  });
});
