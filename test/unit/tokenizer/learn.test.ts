import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { countPieces, learnMerges, learnTokenizer, pretokenize } from '../../../src/model/tokenizer/index.js';

/** Reference learner: recounts every pair from scratch at every step (slow, obviously correct). */
function naiveLearn(pieces: Map<string, number>, numMerges: number, minFrequency = 2): [number, number][] {
  return naiveLearnWithCuts(pieces, numMerges, minFrequency).merges;
}

/** The reference learner's merges and its final cut of every piece. */
function naiveLearnWithCuts(pieces: Map<string, number>, numMerges: number, minFrequency = 2): { merges: [number, number][]; cuts: Map<string, number[]> } {
  const words = [...pieces].map(([p, c]) => ({ p, ids: [...new TextEncoder().encode(p)].map((b) => b + 10), c }));
  const merges: [number, number][] = [];
  while (merges.length < numMerges) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i < w.ids.length - 1; i++) {
      const k = `${w.ids[i]},${w.ids[i + 1]}`;
      counts.set(k, (counts.get(k) ?? 0) + w.c);
    }
    let best: [number, number] | undefined;
    let bestCount = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split(',').map(Number) as [number, number];
      if (c > bestCount || (c === bestCount && best !== undefined && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestCount = c;
      }
    }
    if (best === undefined || bestCount < minFrequency) break;
    const id = 266 + merges.length;
    merges.push(best);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.ids.length; i++) {
        if (i < w.ids.length - 1 && w.ids[i] === best[0] && w.ids[i + 1] === best[1]) {
          out.push(id);
          i++;
        } else out.push(w.ids[i]);
      }
      w.ids = out;
    }
  }
  return { merges, cuts: new Map(words.map((w) => [w.p, w.ids])) };
}

describe('learnMerges', () => {
  it('learns the most frequent pair first and breaks ties by the smallest ids', () => {
    // "ab" ×3 and "cd" ×3 tie at 3: (a,b) = (107,108) wins over (c,d) = (109,110).
    const { merges, counts } = learnMerges(new Map([['ab', 3], ['cd', 3]]), { numMerges: 5 });
    assert.deepEqual(merges, [[107, 108], [109, 110]]);
    assert.deepEqual(counts, [3, 3]);
  });

  it('stops below the minimum frequency', () => {
    const { merges } = learnMerges(new Map([['xy', 1]]), { numMerges: 5 });
    assert.deepEqual(merges, []);
  });

  it('matches a from-scratch reference learner on random corpora', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', 'é'), minLength: 1, maxLength: 10 }), fc.integer({ min: 1, max: 9 })), { maxLength: 25 }), fc.integer({ min: 0, max: 40 }), (list, n) => {
        const pieces = new Map<string, number>();
        for (const [p, c] of list) pieces.set(p, (pieces.get(p) ?? 0) + c);
        assert.deepEqual(learnMerges(pieces, { numMerges: n }).merges, naiveLearn(pieces, n));
      }),
      { numRuns: 300 },
    );
  });

  it('does not depend on the order pieces are listed in', () => {
    const text = 'the cat sat on the mat; the hat that sat is flat, and that is that '.repeat(3);
    const a = countPieces([text]);
    const b = new Map([...a].reverse());
    assert.deepEqual(learnMerges(a, { numMerges: 30 }), learnMerges(b, { numMerges: 30 }));
  });

  it('encoding a training piece reproduces the learner’s cut of it', () => {
    const text = 'lower lowest newer newest wider widest low new wide slower aaaa aaa '.repeat(4) + 'lowerer widen';
    for (const n of [5, 12, 30]) {
      const tok = learnTokenizer([text], { vocabSize: 266 + n });
      const { merges, cuts } = naiveLearnWithCuts(countPieces([text]), n);
      assert.deepEqual(tok.merges, merges);
      for (const p of new Set(pretokenize(text))) assert.deepEqual([...tok.encode(p)], cuts.get(p), `piece ${JSON.stringify(p)} after ${n} merges`);
    }
  });
});
