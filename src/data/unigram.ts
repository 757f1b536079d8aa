/**
 * The unigram baseline: the cross-entropy (nats per token) of the validation tokens under the training tokens'
 * unigram distribution with add-one (Laplace) smoothing over the whole vocabulary,
 * p(t) = (count(t) + 1) / (N + V). A language model that has learned nothing beyond token frequencies scores
 * this; val loss below it is learning from context. (Smoothing keeps a token unseen in training finite; with
 * 1.6 M training tokens and V = 4,096 its effect on the figure is small.)
 */
import { InvalidArgumentError } from '../util/errors.js';

export function unigramCrossEntropy(train: readonly Uint16Array[], val: readonly Uint16Array[], vocabSize: number): number {
  if (!Number.isInteger(vocabSize) || vocabSize < 1) throw new InvalidArgumentError(`vocabSize must be a positive integer, got ${vocabSize}`);
  const counts = new Float64Array(vocabSize);
  let n = 0;
  for (const s of train) {
    for (let i = 0; i < s.length; i++) {
      if (s[i] >= vocabSize) throw new InvalidArgumentError(`token ${s[i]} outside the vocabulary of ${vocabSize}`);
      counts[s[i]]++;
    }
    n += s.length;
  }
  const logDenominator = Math.log(n + vocabSize);
  let sum = 0;
  let m = 0;
  for (const s of val) {
    for (let i = 0; i < s.length; i++) {
      if (s[i] >= vocabSize) throw new InvalidArgumentError(`token ${s[i]} outside the vocabulary of ${vocabSize}`);
      sum += logDenominator - Math.log(counts[s[i]] + 1);
    }
    m += s.length;
  }
  if (m === 0) throw new InvalidArgumentError('no validation tokens');
  return sum / m;
}
