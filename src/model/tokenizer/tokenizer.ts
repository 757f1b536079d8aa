/**
 * The NeuroShard tokenizer: byte-level BPE over the pre-tokeniser's pieces.
 *
 * Round trip: `decode(encode(s)) === s` for every well-formed string. A lone surrogate (ill-formed UTF-16) cannot
 * be written as UTF-8; encode replaces each one with U+FFFD, as TextEncoder does, so for any string
 * `decode(encode(s)) === toWellFormed(s)`.
 *
 * Encoding caches the ids of recently seen pieces (a bounded map, cleared when full), so running text, where most
 * pieces are repeats of common words, costs a regex match and a map lookup per piece.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { InvalidArgumentError } from '../../util/errors.js';
import { applyMerges, pairKey, type MergeTable } from './bpe.js';
import { BOS_ID, BYTE_OFFSET, EOS_ID, FIRST_MERGE_ID, MAX_TOKENIZER_FILE_BYTES } from './constants.js';
import { parseTokenizer, serializeTokenizer, TokenizerFormatError, type SourceInfo, type TokenizerSpec } from './format.js';
import { forEachPiece } from './pretokenize.js';

export interface EncodeOptions {
  /** Prepend the BOS id (default false). */
  bos?: boolean;
  /** Append the EOS id (default false). */
  eos?: boolean;
}

export interface TokenizerOptions {
  /** Most pieces kept in the encode cache (default 200,000; 0 disables it). */
  cacheSize?: number;
}

/** Pieces longer than this (in UTF-16 units) are not cached: they are rare and would crowd out the useful ones. */
const MAX_CACHED_PIECE = 64;

export class Tokenizer {
  /** Number of ids: 266 + number of merges. */
  readonly vocabSize: number;
  readonly merges: readonly (readonly [number, number])[];
  readonly source: Readonly<SourceInfo>;
  private readonly table: MergeTable = new Map();
  /** Bytes of every id; empty for special and reserved ids. */
  private readonly bytes: Uint8Array[];
  private readonly cache = new Map<string, Int32Array>();
  private readonly cacheSize: number;
  private readonly utf8 = new TextEncoder();
  private readonly utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private text: string | undefined;

  constructor(spec: TokenizerSpec, opts: TokenizerOptions = {}) {
    this.vocabSize = FIRST_MERGE_ID + spec.merges.length;
    this.merges = spec.merges.map(([a, b]) => [a, b] as const);
    this.source = { ...spec.source };
    this.cacheSize = opts.cacheSize ?? 200_000;
    this.bytes = new Array<Uint8Array>(this.vocabSize);
    for (let i = 0; i < BYTE_OFFSET; i++) this.bytes[i] = new Uint8Array(0);
    for (let b = 0; b < 256; b++) this.bytes[BYTE_OFFSET + b] = Uint8Array.of(b);
    spec.merges.forEach(([a, b], i) => {
      const id = FIRST_MERGE_ID + i;
      const key = pairKey(a, b);
      if (a >= id || b >= id || a < BYTE_OFFSET || b < BYTE_OFFSET || this.table.has(key)) {
        throw new TokenizerFormatError(`merge ${i} [${a}, ${b}] is invalid`, { merge: i });
      }
      this.table.set(key, id);
      const x = this.bytes[a];
      const y = this.bytes[b];
      const m = new Uint8Array(x.length + y.length);
      m.set(x, 0);
      m.set(y, x.length);
      this.bytes[id] = m;
    });
  }

  /** Parses a tokenizer file's content (see format.ts). */
  static fromJSON(data: string | Uint8Array, opts?: TokenizerOptions): Tokenizer {
    return new Tokenizer(parseTokenizer(data), opts);
  }

  /** Reads and parses a tokenizer file. */
  static load(path: string, opts?: TokenizerOptions): Tokenizer {
    const size = statSync(path).size;
    if (size > MAX_TOKENIZER_FILE_BYTES) throw new TokenizerFormatError(`${path} is ${size} bytes, over the ${MAX_TOKENIZER_FILE_BYTES} limit`, { path });
    try {
      return Tokenizer.fromJSON(readFileSync(path), opts);
    } catch (e) {
      if (e instanceof TokenizerFormatError) throw new TokenizerFormatError(`${path}: ${e.message}`, { path, ...e.meta });
      throw e;
    }
  }

  /** The canonical file text (see format.ts); equal tokenizers give equal text. */
  toJSON(): string {
    this.text ??= serializeTokenizer({ merges: this.merges.map(([a, b]) => [a, b]), source: { ...this.source } });
    return this.text;
  }

  /** SHA-256 (hex) of the canonical file text: the vocabulary's identity on the network. */
  sha256(): string {
    return createHash('sha256').update(this.toJSON()).digest('hex');
  }

  /** Token ids of `text`. */
  encode(text: string, opts: EncodeOptions = {}): Int32Array {
    let out = new Int32Array(Math.max(16, (text.length >> 1) + 2));
    let n = 0;
    const put = (id: number): void => {
      if (n === out.length) {
        const bigger = new Int32Array(out.length * 2);
        bigger.set(out);
        out = bigger;
      }
      out[n++] = id;
    };
    if (opts.bos === true) put(BOS_ID);
    forEachPiece(text, (piece) => {
      const ids = this.encodePiece(piece);
      if (n + ids.length > out.length) {
        const bigger = new Int32Array(Math.max(out.length * 2, n + ids.length));
        bigger.set(out);
        out = bigger;
      }
      out.set(ids, n);
      n += ids.length;
    });
    if (opts.eos === true) put(EOS_ID);
    return out.slice(0, n);
  }

  /** The ids of one pre-tokenised piece. The array may be shared with the cache: do not modify it. */
  encodePiece(piece: string): Int32Array {
    const hit = this.cache.get(piece);
    if (hit !== undefined) return hit;
    let ids: number[];
    let ascii = true;
    for (let i = 0; i < piece.length; i++) {
      if (piece.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      ids = new Array<number>(piece.length);
      for (let i = 0; i < piece.length; i++) ids[i] = piece.charCodeAt(i) + BYTE_OFFSET;
    } else {
      // TextEncoder writes U+FFFD (EF BF BD) for a lone surrogate: the documented lossy case.
      const b = this.utf8.encode(piece);
      ids = new Array<number>(b.length);
      for (let i = 0; i < b.length; i++) ids[i] = b[i] + BYTE_OFFSET;
    }
    const result = Int32Array.from(applyMerges(ids, this.table));
    if (this.cacheSize > 0 && piece.length <= MAX_CACHED_PIECE) {
      if (this.cache.size >= this.cacheSize) this.cache.clear();
      this.cache.set(piece, result);
    }
    return result;
  }

  /** The UTF-8 bytes `ids` stand for; special and reserved ids contribute nothing. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.idBytes(ids[i], i).length;
    const out = new Uint8Array(total);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytes[ids[i]];
      out.set(b, o);
      o += b.length;
    }
    return out;
  }

  /**
   * The text `ids` stand for. Special and reserved ids are skipped; byte sequences that are not valid UTF-8 (a
   * model may emit half a character) become U+FFFD. A leading U+FEFF is kept.
   */
  decode(ids: ArrayLike<number>): string {
    return this.utf8Decoder.decode(this.decodeBytes(ids));
  }

  /** The bytes of one id (a view: do not modify). */
  tokenBytes(id: number): Uint8Array {
    return this.idBytes(id, 0);
  }

  /** True for pad, bos, eos, unk and the reserved ids. */
  isSpecial(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < BYTE_OFFSET;
  }

  /** Drops the encode cache (for benchmarks that measure a cold start). */
  clearCache(): void {
    this.cache.clear();
  }

  private idBytes(id: number, index: number): Uint8Array {
    const b = Number.isInteger(id) ? this.bytes[id] : undefined;
    if (b === undefined) throw new InvalidArgumentError(`token id ${id} at index ${index} is not in [0, ${this.vocabSize})`, { id, index });
    return b;
  }
}

/** A well-formed copy of `s`: every lone surrogate replaced by U+FFFD (String.prototype.toWellFormed, ES2024). */
export function toWellFormed(s: string): string {
  let out = '';
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    } else if (!(c >= 0xdc00 && c <= 0xdfff)) {
      continue;
    }
    out += s.slice(last, i) + '\ufffd';
    last = i + 1;
  }
  return last === 0 ? s : out + s.slice(last);
}
