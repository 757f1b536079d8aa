/**
 * GGUF version 3, the file format of llama.cpp and the tools built on it: a writer, a bounded reader (for tests and
 * for checking what we wrote), and the two non-trivial tensor encodings we write, F16 and Q8_0, bit for bit as ggml
 * expects them.
 *
 * Layout (all little-endian):
 *
 *   u32 magic "GGUF" · u32 version 3 · u64 tensor count · u64 metadata count
 *   metadata: (string key, u32 value type, value)*      string = u64 byte length + UTF-8 bytes, no terminator
 *                                                        array  = u32 item type + u64 count + items
 *   tensor infos: (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)*
 *   zero padding to `general.alignment` (32 unless the file says otherwise)
 *   tensor data: each tensor at its offset (relative to the start of this section), each offset aligned
 *
 * `ne` lists dimensions innermost first (ggml's order), the reverse of a PyTorch shape: a weight [out, in] is
 * ne = [in, out]; the bytes are the same row-major bytes.
 *
 * Q8_0 (ggml `block_q8_0`): blocks of 32 consecutive values along ne[0], each stored as an IEEE half scale d
 * followed by 32 int8 quants, 34 bytes a block. ggml's reference quantizer (quantize_row_q8_0_ref) is reproduced
 * exactly: amax over the block, d = amax / 127 in float32, id = 1/d (0 when d = 0), q = roundf(x · id) (halves away
 * from zero), d stored rounded to half (nearest even). ne[0] must be a multiple of 32.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { NeuroShardError } from '../util/errors.js';
import { atomicWriteFile } from './fsutil.js';
import { floatToHalf as f32ToF16Bits, halfToFloat as f16BitsToF32 } from '../tensor/half.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** Largest header (metadata + tensor infos) the reader accepts: a 256k-token vocabulary is ~10 MB. */
export const MAX_GGUF_HEADER_BYTES = 64 << 20;
/** Largest metadata array, string, tensor count and dimension count the reader accepts. */
export const GGUF_LIMITS = { maxArrayItems: 1 << 22, maxStringBytes: 1 << 20, maxTensors: 1 << 16, maxKeys: 1 << 12, maxDims: 4 } as const;

/** Metadata value types (gguf_type). */
export enum GgufType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** The ggml tensor types we write (ggml_type ids). */
export const GGML_TYPES = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPES;
/** Values per Q8_0 block. */
export const QK8_0 = 32;
/** Bytes per Q8_0 block: an f16 scale and 32 int8 quants. */
export const Q8_0_BLOCK_BYTES = 2 + QK8_0;

export type GgufScalar = number | bigint | boolean | string;
/** One metadata value: a scalar of `type`, or an array of `itemType` scalars when type is ARRAY. */
export type GgufValue = { type: Exclude<GgufType, GgufType.ARRAY>; value: GgufScalar } | { type: GgufType.ARRAY; itemType: Exclude<GgufType, GgufType.ARRAY>; value: GgufScalar[] };

/** Shorthands for building metadata. */
export const gguf = {
  u32: (value: number): GgufValue => ({ type: GgufType.UINT32, value }),
  i32: (value: number): GgufValue => ({ type: GgufType.INT32, value }),
  f32: (value: number): GgufValue => ({ type: GgufType.FLOAT32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufType.BOOL, value }),
  str: (value: string): GgufValue => ({ type: GgufType.STRING, value }),
  strs: (value: string[]): GgufValue => ({ type: GgufType.ARRAY, itemType: GgufType.STRING, value }),
  i32s: (value: number[]): GgufValue => ({ type: GgufType.ARRAY, itemType: GgufType.INT32, value }),
};

/** A GGUF file that is malformed, truncated or beyond the reader's limits (`config`: a file on disk). */
export class GgufFormatError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('GGUF_INVALID', message, { fault: 'config', meta });
  }
}

/** A tensor that cannot be written in the requested type (for example Q8_0 with ne[0] not a multiple of 32). */
export class GgufTensorTypeError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('GGUF_TENSOR_TYPE', message, { fault: 'caller', meta });
  }
}

export interface GgufTensorOut {
  name: string;
  /** ggml order: innermost first. */
  ne: number[];
  type: GgmlTypeName;
  /** The tensor's bytes in `type`, produced when the writer reaches it (so a model is never held twice). */
  data: () => Uint8Array;
}

export interface GgufFileOut {
  metadata: [string, GgufValue][];
  tensors: GgufTensorOut[];
  alignment?: number;
}

/** Bytes a tensor of `type` with `ne` takes. */
export function ggmlTensorBytes(type: GgmlTypeName, ne: readonly number[]): number {
  const n = ne.reduce((a, b) => a * b, 1);
  switch (type) {
    case 'F32':
      return 4 * n;
    case 'F16':
      return 2 * n;
    case 'Q8_0':
      if (ne[0] % QK8_0 !== 0) throw new GgufTensorTypeError(`Q8_0 needs ne[0] to be a multiple of ${QK8_0}, got ${ne[0]}`, { ne });
      return (n / QK8_0) * Q8_0_BLOCK_BYTES;
  }
}

// ---- encoding -----------------------------------------------------------------------------------------------------


/** float32 values → F16 tensor bytes. */
export function encodeF16(x: Float32Array): Uint8Array {
  const h = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) h[i] = f32ToF16Bits(x[i]);
  return new Uint8Array(h.buffer);
}

/** C roundf: halves away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/** float32 values (length a multiple of 32, rows along ne[0]) → Q8_0 blocks, as ggml's quantize_row_q8_0_ref. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % QK8_0 !== 0) throw new GgufTensorTypeError(`Q8_0 needs a multiple of ${QK8_0} values, got ${x.length}`);
  const nb = x.length / QK8_0;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const dv = new DataView(out.buffer);
  const f = Math.fround;
  for (let b = 0; b < nb; b++) {
    const base = b * QK8_0;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(x[base + j]));
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    const o = b * Q8_0_BLOCK_BYTES;
    dv.setUint16(o, f32ToF16Bits(d), true);
    for (let j = 0; j < QK8_0; j++) dv.setInt8(o + 2 + j, roundf(f(x[base + j] * id)));
  }
  return out;
}

/** Q8_0 blocks → float32 values (ggml's dequantize_row_q8_0: q · half(d)). */
export function dequantizeQ8_0(bytes: Uint8Array, out?: Float32Array): Float32Array {
  if (bytes.byteLength % Q8_0_BLOCK_BYTES !== 0) throw new GgufFormatError(`${bytes.byteLength} bytes is not a whole number of Q8_0 blocks`);
  const nb = bytes.byteLength / Q8_0_BLOCK_BYTES;
  const y = out ?? new Float32Array(nb * QK8_0);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16BitsToF32(dv.getUint16(o, true));
    for (let j = 0; j < QK8_0; j++) y[b * QK8_0 + j] = Math.fround(dv.getInt8(o + 2 + j) * d);
  }
  return y;
}

/** float32 values → bytes of `type`. */
export function encodeTensor(type: GgmlTypeName, x: Float32Array): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case 'F16':
      return encodeF16(x);
    case 'Q8_0':
      return quantizeQ8_0(x);
  }
}

/** A growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private readonly utf8 = new TextEncoder();

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }

  u8(v: number): void {
    this.room(1);
    this.dv.setUint8(this.length, v);
    this.length += 1;
  }

  u32(v: number): void {
    this.room(4);
    this.dv.setUint32(this.length, v, true);
    this.length += 4;
  }

  u64(v: number | bigint): void {
    this.room(8);
    this.dv.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }

  scalar(type: GgufType, v: GgufScalar): void {
    this.room(8);
    const dv = this.dv;
    const at = this.length;
    switch (type) {
      case GgufType.UINT8:
        dv.setUint8(at, Number(v));
        this.length += 1;
        return;
      case GgufType.INT8:
        dv.setInt8(at, Number(v));
        this.length += 1;
        return;
      case GgufType.UINT16:
        dv.setUint16(at, Number(v), true);
        this.length += 2;
        return;
      case GgufType.INT16:
        dv.setInt16(at, Number(v), true);
        this.length += 2;
        return;
      case GgufType.UINT32:
        dv.setUint32(at, Number(v), true);
        this.length += 4;
        return;
      case GgufType.INT32:
        dv.setInt32(at, Number(v), true);
        this.length += 4;
        return;
      case GgufType.FLOAT32:
        dv.setFloat32(at, Number(v), true);
        this.length += 4;
        return;
      case GgufType.BOOL:
        dv.setUint8(at, v === true ? 1 : 0);
        this.length += 1;
        return;
      case GgufType.UINT64:
        dv.setBigUint64(at, BigInt(v), true);
        this.length += 8;
        return;
      case GgufType.INT64:
        dv.setBigInt64(at, BigInt(v), true);
        this.length += 8;
        return;
      case GgufType.FLOAT64:
        dv.setFloat64(at, Number(v), true);
        this.length += 8;
        return;
      case GgufType.STRING:
        this.string(String(v));
        return;
      default:
        throw new GgufFormatError(`cannot write a scalar of type ${type}`);
    }
  }

  string(s: string): void {
    const b = this.utf8.encode(s);
    this.u64(b.length);
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  pad(alignment: number): void {
    while (this.length % alignment !== 0) this.u8(0);
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/** The header bytes (through the padding before tensor data) and each tensor's offset and size. */
export function ggufHeader(file: GgufFileOut): { header: Uint8Array; offsets: number[]; sizes: number[] } {
  const alignment = file.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const names = new Set<string>();
  for (const [k] of file.metadata) {
    if (names.has(k)) throw new GgufFormatError(`metadata key ${k} appears twice`);
    names.add(k);
  }
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(file.tensors.length);
  w.u64(file.metadata.length);
  for (const [key, v] of file.metadata) {
    w.string(key);
    w.u32(v.type);
    if (v.type === GgufType.ARRAY) {
      w.u32(v.itemType);
      w.u64(v.value.length);
      for (const item of v.value) w.scalar(v.itemType, item);
    } else {
      w.scalar(v.type, v.value);
    }
  }
  const offsets: number[] = [];
  const sizes: number[] = [];
  let at = 0;
  const tensorNames = new Set<string>();
  for (const t of file.tensors) {
    if (tensorNames.has(t.name)) throw new GgufFormatError(`tensor ${t.name} appears twice`);
    tensorNames.add(t.name);
    const size = ggmlTensorBytes(t.type, t.ne);
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(GGML_TYPES[t.type]);
    w.u64(at);
    offsets.push(at);
    sizes.push(size);
    at += size;
    at += (alignment - (at % alignment)) % alignment;
  }
  w.pad(alignment);
  return { header: w.bytes(), offsets, sizes };
}

/** The whole file as a sequence of chunks; each tensor's bytes are produced only when reached. */
export function* ggufChunks(file: GgufFileOut): Generator<Uint8Array> {
  const alignment = file.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const { header, sizes } = ggufHeader(file);
  yield header;
  for (let i = 0; i < file.tensors.length; i++) {
    const t = file.tensors[i];
    const b = t.data();
    if (b.byteLength !== sizes[i]) throw new GgufFormatError(`tensor ${t.name} produced ${b.byteLength} bytes, its type and shape need ${sizes[i]}`);
    yield b;
    const pad = (alignment - (b.byteLength % alignment)) % alignment;
    if (pad > 0) yield new Uint8Array(pad);
  }
}

/** The size of the file ggufChunks(file) writes, in bytes (the header is built to measure it; no tensor is encoded). */
export function ggufFileBytes(file: GgufFileOut): number {
  const alignment = file.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const { header, sizes } = ggufHeader(file);
  let n = header.byteLength;
  for (const s of sizes) n += s + ((alignment - (s % alignment)) % alignment);
  return n;
}

/**
 * Writes a GGUF file atomically (temp file + rename). Returns its SHA-256 and size. `onBytes(written, total)` is
 * called after each chunk (a progress display).
 */
export function writeGguf(path: string, file: GgufFileOut, onBytes?: (written: number, total: number) => void): { sha256: string; bytes: number } {
  if (onBytes === undefined) return atomicWriteFile(path, ggufChunks(file));
  const total = ggufFileBytes(file);
  let written = 0;
  function* counted(): Generator<Uint8Array> {
    for (const c of ggufChunks(file)) {
      yield c;
      written += c.byteLength;
      onBytes!(written, total);
    }
  }
  return atomicWriteFile(path, counted());
}

// ---- reading ------------------------------------------------------------------------------------------------------

export interface GgufTensorInfo {
  name: string;
  ne: number[];
  /** ggml type id. */
  type: number;
  /** Offset from the start of the data section. */
  offset: number;
}

export interface GgufFileInfo {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the tensor data section. */
  dataOffset: number;
  fileSize: number;
}

class ByteReader {
  at = 0;
  private readonly dv: DataView;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private readonly b: Uint8Array,
    private readonly file: string,
  ) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private need(n: number): void {
    if (this.at + n > this.b.byteLength) throw new GgufFormatError(`${this.file}: header ends early (need ${n} bytes at ${this.at}, have ${this.b.byteLength - this.at})`);
  }

  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  u64(limit: number, what: string): number {
    this.need(8);
    const v = this.dv.getBigUint64(this.at, true);
    this.at += 8;
    if (v > BigInt(limit)) throw new GgufFormatError(`${this.file}: ${what} is ${v}, over the limit ${limit}`);
    return Number(v);
  }

  string(): string {
    const n = this.u64(GGUF_LIMITS.maxStringBytes, 'a string length');
    this.need(n);
    let s: string;
    try {
      s = this.utf8.decode(this.b.subarray(this.at, this.at + n));
    } catch {
      throw new GgufFormatError(`${this.file}: a string at ${this.at} is not UTF-8`);
    }
    this.at += n;
    return s;
  }

  scalar(type: number): GgufScalar {
    const dv = this.dv;
    const sizes: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    if (type === GgufType.STRING) return this.string();
    const n = sizes[type];
    if (n === undefined) throw new GgufFormatError(`${this.file}: unknown value type ${type}`);
    this.need(n);
    const at = this.at;
    this.at += n;
    switch (type as GgufType) {
      case GgufType.UINT8:
        return dv.getUint8(at);
      case GgufType.INT8:
        return dv.getInt8(at);
      case GgufType.UINT16:
        return dv.getUint16(at, true);
      case GgufType.INT16:
        return dv.getInt16(at, true);
      case GgufType.UINT32:
        return dv.getUint32(at, true);
      case GgufType.INT32:
        return dv.getInt32(at, true);
      case GgufType.FLOAT32:
        return dv.getFloat32(at, true);
      case GgufType.BOOL:
        return dv.getUint8(at) !== 0;
      case GgufType.UINT64:
        return dv.getBigUint64(at, true);
      case GgufType.INT64:
        return dv.getBigInt64(at, true);
      default:
        return dv.getFloat64(at, true);
    }
  }
}

/** Parses a GGUF header from its first bytes (at least through the tensor infos). */
export function parseGgufHeader(head: Uint8Array, fileSize: number, file = 'gguf'): GgufFileInfo {
  const r = new ByteReader(head, file);
  const magic = r.u32();
  if (magic !== GGUF_MAGIC) throw new GgufFormatError(`${file}: not a GGUF file (magic 0x${magic.toString(16)})`);
  const version = r.u32();
  if (version !== GGUF_VERSION) throw new GgufFormatError(`${file}: GGUF version ${version}; this reader knows version ${GGUF_VERSION}`);
  const nTensors = r.u64(GGUF_LIMITS.maxTensors, 'the tensor count');
  const nKeys = r.u64(GGUF_LIMITS.maxKeys, 'the metadata count');
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKeys; i++) {
    const key = r.string();
    if (metadata.has(key)) throw new GgufFormatError(`${file}: metadata key ${key} appears twice`);
    const type = r.u32();
    if (type === GgufType.ARRAY) {
      const itemType = r.u32();
      if (itemType === GgufType.ARRAY) throw new GgufFormatError(`${file}: nested arrays (key ${key}) are not supported`);
      const n = r.u64(GGUF_LIMITS.maxArrayItems, `the length of ${key}`);
      const value: GgufScalar[] = new Array<GgufScalar>(n);
      for (let j = 0; j < n; j++) value[j] = r.scalar(itemType);
      metadata.set(key, { type: GgufType.ARRAY, itemType, value });
    } else {
      metadata.set(key, { type, value: r.scalar(type) } as GgufValue);
    }
  }
  const al = metadata.get('general.alignment');
  const alignment = al === undefined ? GGUF_DEFAULT_ALIGNMENT : Number(al.value);
  if (!Number.isInteger(alignment) || alignment < 1 || alignment > 1 << 20 || (alignment & (alignment - 1)) !== 0) {
    throw new GgufFormatError(`${file}: general.alignment ${String(al?.value)} is not a power of two`);
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.string();
    const nd = r.u32();
    if (nd < 1 || nd > GGUF_LIMITS.maxDims) throw new GgufFormatError(`${file}: tensor ${name} has ${nd} dimensions`);
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) ne.push(r.u64(Number.MAX_SAFE_INTEGER, `a dimension of ${name}`));
    const type = r.u32();
    const offset = r.u64(Number.MAX_SAFE_INTEGER, `the offset of ${name}`);
    if (offset % alignment !== 0) throw new GgufFormatError(`${file}: tensor ${name} is at offset ${offset}, not a multiple of ${alignment}`);
    tensors.push({ name, ne, type, offset });
  }
  const dataOffset = r.at + ((alignment - (r.at % alignment)) % alignment);
  for (const t of tensors) {
    const name = (Object.keys(GGML_TYPES) as GgmlTypeName[]).find((k) => GGML_TYPES[k] === t.type);
    if (name === undefined) continue; // a type we do not decode: its bounds are not checked here
    const end = dataOffset + t.offset + ggmlTensorBytes(name, t.ne);
    if (end > fileSize) throw new GgufFormatError(`${file}: tensor ${t.name} ends at ${end}, past the end of the file (${fileSize})`);
  }
  return { version, metadata, tensors, alignment, dataOffset, fileSize };
}

/** An open GGUF file: its parsed header and reads of single tensors as float32. */
export class GgufReader {
  private constructor(
    private fd: number | null,
    readonly info: GgufFileInfo,
    readonly file: string,
  ) {}

  static open(path: string): GgufReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      throw new GgufFormatError(`${path}: file not found`);
    }
    try {
      const size = fstatSync(fd).size;
      const head = new Uint8Array(Math.min(size, MAX_GGUF_HEADER_BYTES));
      readExact(fd, head, 0, path);
      return new GgufReader(fd, parseGgufHeader(head, size, path), path);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** A metadata value's scalar (or array of scalars), undefined when absent. */
  get(key: string): GgufScalar | GgufScalar[] | undefined {
    return this.info.metadata.get(key)?.value;
  }

  tensor(name: string): GgufTensorInfo {
    const t = this.info.tensors.find((x) => x.name === name);
    if (t === undefined) throw new GgufFormatError(`${this.file}: no tensor ${name}`);
    return t;
  }

  /** Raw bytes of a tensor. */
  readBytes(name: string): Uint8Array {
    const t = this.tensor(name);
    const type = (Object.keys(GGML_TYPES) as GgmlTypeName[]).find((k) => GGML_TYPES[k] === t.type);
    if (type === undefined) throw new GgufFormatError(`${this.file}: tensor ${name} has ggml type ${t.type}, which this reader does not decode`);
    const out = new Uint8Array(ggmlTensorBytes(type, t.ne));
    if (this.fd === null) throw new GgufFormatError(`${this.file}: reader is closed`);
    readExact(this.fd, out, this.info.dataOffset + t.offset, this.file);
    return out;
  }

  /** A tensor decoded to float32 (F32, F16 or Q8_0). */
  readF32(name: string): Float32Array {
    const t = this.tensor(name);
    const b = this.readBytes(name);
    if (t.type === GGML_TYPES.F32) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    if (t.type === GGML_TYPES.F16) {
      const h = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = f16BitsToF32(h[i]);
      return out;
    }
    return dequantizeQ8_0(b);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function readExact(fd: number, out: Uint8Array, position: number, file: string): void {
  let off = 0;
  while (off < out.byteLength) {
    const n = readSync(fd, out, off, out.byteLength - off, position + off);
    if (n === 0) throw new GgufFormatError(`${file}: ends early at ${position + off}`);
    off += n;
  }
}

export { f32ToF16Bits, f16BitsToF32 };
