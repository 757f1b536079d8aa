/**
 * Tokenizer throughput for `npm run bench` (JSON key `tokenizer_mb_s`, section `tokenizer`, discovered by
 * scripts/bench.mjs through `benchSections`): encodes genesis text (the validation documents first, then training
 * documents up to `bytes`) with an empty encode cache, so the figure includes filling the cache, and reports UTF-8
 * megabytes (10^6 bytes) per second of wall time on one thread. The section reports the median of 3 runs.
 */
import { type Tokenizer } from '../model/tokenizer/index.js';
import { readBrownDocuments } from './brown.js';
import { loadGenesisTokenizer } from './corpus.js';
import { genesisDocuments } from './genesis.js';

export interface TokenizerBench {
  /** UTF-8 MB (10^6 bytes) encoded per second. */
  mbPerS: number;
  bytes: number;
  tokens: number;
  seconds: number;
}

export function benchTokenizer(opts: { bytes?: number; tokenizer?: Tokenizer } = {}): TokenizerBench {
  const target = opts.bytes ?? 4_000_000;
  const { val, train } = genesisDocuments(readBrownDocuments());
  // Validation text first (never seen by the learner), then training text until the target size.
  const texts: string[] = [];
  let bytes = 0;
  for (const d of [...val, ...train]) {
    if (bytes >= target) break;
    texts.push(d.text);
    bytes += Buffer.byteLength(d.text, 'utf8');
  }
  const tok = opts.tokenizer ?? loadGenesisTokenizer();
  tok.clearCache();
  let tokens = 0;
  const t0 = process.hrtime.bigint();
  for (const t of texts) tokens += tok.encode(t).length;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mbPerS: bytes / 1e6 / seconds, bytes, tokens, seconds };
}

/** The bench section scripts/bench.mjs runs (see its header for the contract). */
export const benchSections = [
  {
    name: 'tokenizer',
    keys: ['tokenizer_mb_s'],
    run: ({ quick, log }: { quick: boolean; log: (line: string) => void }): Promise<{ tokenizer_mb_s: number }> => {
      const tokenizer = loadGenesisTokenizer();
      const runs = [0, 1, 2].map(() => benchTokenizer({ bytes: quick ? 200_000 : 4_000_000, tokenizer }));
      for (const r of runs) log(`encoded ${(r.bytes / 1e6).toFixed(2)} MB into ${r.tokens} tokens in ${r.seconds.toFixed(3)} s: ${r.mbPerS.toFixed(2)} MB/s`);
      const median = runs.map((r) => r.mbPerS).sort((a, b) => a - b)[1];
      return Promise.resolve({ tokenizer_mb_s: Math.round(median * 100) / 100 });
    },
  },
];
