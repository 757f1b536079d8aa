/**
 * The safetensors format (https://huggingface.co/docs/safetensors), read and written without dependencies:
 *
 *   [8 bytes] N, little-endian u64          header length
 *   [N bytes] JSON header                   {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}
 *   [rest]    tensor bytes, little-endian   offsets are relative to the end of the header
 *
 * Every field of a header is validated before any byte is trusted: the header size is bounded, dtypes and shapes
 * are checked, each tensor's byte range must match its shape and lie inside the file, ranges may not overlap or
 * leave holes. A file that ends early fails with CHECKPOINT_TRUNCATED, a malformed one with CHECKPOINT_CORRUPT;
 * both name the file.
 *
 * Reading converts F32, F16 and BF16 tensors to float32 directly into a destination view (a slice of a model's
 * flat parameter buffer), one tensor at a time, so a large file is never held in memory twice.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { endianness } from 'node:os';
import { CheckpointError } from './errors.js';
import { atomicWriteFile, readExactly } from './fsutil.js';

/** dtypes of the format; the ones we can convert to float32 are FLOAT_DTYPES. */
export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

const DTYPE_BYTES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export const FLOAT_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

/** The format's own limit on the header (a real Llama-70B index header is ~100 KB). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Most tensors one file may declare. */
export const MAX_TENSORS = 1_000_000;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Byte where tensor data starts (8 + header length). */
  dataStart: number;
  fileSize: number;
}

function littleEndianHost(file: string): void {
  if (endianness() !== 'LE') throw new CheckpointError('CHECKPOINT_UNSUPPORTED', file, 'safetensors data is little-endian; this host is big-endian');
}

/**
 * Parses and validates a header. `head` holds at least the first 8 + N bytes of the file; `fileSize` is the whole
 * file's size.
 */
export function parseHeader(head: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  if (fileSize < 8 || head.byteLength < 8) throw new CheckpointError('CHECKPOINT_TRUNCATED', file, `is ${fileSize} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) throw new CheckpointError('CHECKPOINT_CORRUPT', file, `declares a ${n64}-byte header, more than the ${MAX_HEADER_BYTES} allowed`);
  const n = Number(n64);
  if (8 + n > fileSize) throw new CheckpointError('CHECKPOINT_TRUNCATED', file, `declares a ${n}-byte header but the file has ${fileSize} bytes`);
  if (head.byteLength < 8 + n) throw new CheckpointError('CHECKPOINT_TRUNCATED', file, `header needs ${8 + n} bytes, got ${head.byteLength}`);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(head.buffer, head.byteOffset + 8, n).toString('utf8'));
  } catch (e) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CheckpointError('CHECKPOINT_CORRUPT', file, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  const entries = Object.entries(json as Record<string, unknown>);
  if (entries.length > MAX_TENSORS + 1) throw new CheckpointError('CHECKPOINT_CORRUPT', file, `declares ${entries.length} entries, more than ${MAX_TENSORS}`);
  for (const [name, v] of entries) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) {
        throw new CheckpointError('CHECKPOINT_CORRUPT', file, '__metadata__ must map strings to strings');
      }
      metadata = v as Record<string, string>;
      continue;
    }
    const bad = (why: string): never => {
      throw new CheckpointError('CHECKPOINT_CORRUPT', file, `tensor ${name}: ${why}`, { tensor: name });
    };
    if (typeof v !== 'object' || v === null) bad('entry is not an object');
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) bad(`unknown dtype ${JSON.stringify(e.dtype)}`);
    const dtype = e.dtype as DType;
    if (!Array.isArray(e.shape) || e.shape.length > 16 || !e.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) bad('shape must be a list of non-negative integers');
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) bad('data_offsets must be two non-negative integers');
    const [a, b] = off as [number, number];
    const numel = shape.reduce((x, y) => x * y, 1);
    if (b < a || b - a !== numel * DTYPE_BYTES[dtype]) bad(`data_offsets [${a}, ${b}] do not hold ${numel} ${dtype} elements`);
    if (b > dataLen) {
      throw new CheckpointError('CHECKPOINT_TRUNCATED', file, `tensor ${name} ends at data byte ${b} but the file holds ${dataLen} data bytes`, { tensor: name });
    }
    tensors.set(name, { name, dtype, shape, begin: dataStart + a, end: dataStart + b });
  }
  // ranges must tile the data section exactly: no overlaps, no holes, nothing after the last tensor
  const sorted = [...tensors.values()].sort((x, y) => x.begin - y.begin || x.end - y.end);
  let at = dataStart;
  for (const t of sorted) {
    if (t.begin < at) throw new CheckpointError('CHECKPOINT_CORRUPT', file, `tensor ${t.name} overlaps the tensor before it`, { tensor: t.name });
    if (t.begin > at) throw new CheckpointError('CHECKPOINT_CORRUPT', file, `${t.begin - at} unindexed bytes before tensor ${t.name}`, { tensor: t.name });
    at = t.end;
  }
  if (at !== fileSize) throw new CheckpointError('CHECKPOINT_CORRUPT', file, `${fileSize - at} bytes after the last tensor`);
  return { file, tensors, metadata, dataStart, fileSize };
}

/** An open safetensors file: its validated header, and reads of single tensors. Close it when done. */
export class SafetensorsFile {
  readonly header: SafetensorsHeader;
  private fd: number | null;

  private constructor(fd: number, header: SafetensorsHeader) {
    this.fd = fd;
    this.header = header;
  }

  static open(path: string): SafetensorsFile {
    littleEndianHost(path);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      throw new CheckpointError('CHECKPOINT_MISSING', path, 'file not found');
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new CheckpointError('CHECKPOINT_TRUNCATED', path, `is ${size} bytes, shorter than the 8-byte header length`);
      const len = new Uint8Array(8);
      readExactly(fd, len, 0, path);
      const n = new DataView(len.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) throw new CheckpointError('CHECKPOINT_CORRUPT', path, `declares a ${n}-byte header, more than the ${MAX_HEADER_BYTES} allowed`);
      if (8 + Number(n) > size) throw new CheckpointError('CHECKPOINT_TRUNCATED', path, `declares a ${n}-byte header but the file has ${size} bytes`);
      const head = new Uint8Array(8 + Number(n));
      readExactly(fd, head, 0, path);
      return new SafetensorsFile(fd, parseHeader(head, size, path));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get file(): string {
    return this.header.file;
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (t === undefined) throw new CheckpointError('CHECKPOINT_MISMATCH', this.file, `has no tensor ${name}`, { tensor: name });
    return t;
  }

  /** Raw bytes of a tensor. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const out = new Uint8Array(t.end - t.begin);
    readExactly(this.handle(), out, t.begin, this.file);
    return out;
  }

  /**
   * Reads a floating-point tensor into `out` as float32, converting F16/BF16. `expectShape` (when given) must equal
   * the stored shape, else CHECKPOINT_MISMATCH names the tensor and both shapes.
   */
  readF32(name: string, out: Float32Array, expectShape?: readonly number[]): void {
    const t = this.info(name);
    if (expectShape !== undefined && (expectShape.length !== t.shape.length || expectShape.some((d, i) => d !== t.shape[i]))) {
      throw new CheckpointError('CHECKPOINT_MISMATCH', this.file, `tensor ${name} has shape [${t.shape.join(', ')}], expected [${expectShape.join(', ')}]`, {
        tensor: name,
        shape: t.shape,
        expected: expectShape,
      });
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (out.length !== numel) throw new CheckpointError('CHECKPOINT_MISMATCH', this.file, `tensor ${name} has ${numel} elements, destination holds ${out.length}`);
    if (t.dtype === 'F32') {
      // straight into the destination's bytes
      readExactly(this.handle(), new Uint8Array(out.buffer, out.byteOffset, out.byteLength), t.begin, this.file);
      return;
    }
    if (t.dtype !== 'F16' && t.dtype !== 'BF16') {
      throw new CheckpointError('CHECKPOINT_UNSUPPORTED', this.file, `tensor ${name} is ${t.dtype}; only F32, F16 and BF16 load as weights`, { tensor: name, dtype: t.dtype });
    }
    const raw = this.readBytes(name);
    const u16 = new Uint16Array(raw.buffer, raw.byteOffset, numel);
    if (t.dtype === 'BF16') bf16ToF32(u16, out);
    else f16ToF32(u16, out);
  }

  /** Reads a tensor of any float dtype into a new Float32Array. */
  tensorF32(name: string): Float32Array {
    const t = this.info(name);
    const out = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
    this.readF32(name, out);
    return out;
  }

  /** Reads an I32 or I64 tensor into an Int32Array (I64 values must fit int32). */
  tensorI32(name: string): Int32Array {
    const t = this.info(name);
    const raw = this.readBytes(name);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.dtype === 'I32') return new Int32Array(raw.buffer, raw.byteOffset, numel).slice();
    if (t.dtype === 'I64') {
      const v = new BigInt64Array(raw.buffer, raw.byteOffset, numel);
      const out = new Int32Array(numel);
      for (let i = 0; i < numel; i++) {
        if (v[i] < -2147483648n || v[i] > 2147483647n) throw new CheckpointError('CHECKPOINT_UNSUPPORTED', this.file, `tensor ${name}[${i}] does not fit int32`);
        out[i] = Number(v[i]);
      }
      return out;
    }
    throw new CheckpointError('CHECKPOINT_UNSUPPORTED', this.file, `tensor ${name} is ${t.dtype}, expected an integer tensor`);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private handle(): number {
    if (this.fd === null) throw new CheckpointError('CHECKPOINT_MISSING', this.file, 'file already closed');
    return this.fd;
  }
}

/** bfloat16 is the top half of a float32: shift it back. */
export function bf16ToF32(src: Uint16Array, out: Float32Array): void {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
}

/** IEEE half → float32, exact (subnormals, infinities and NaN included). */
export function f16ToF32(src: Uint16Array, out: Float32Array): void {
  const u = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: man · 2^-24, exact in float32
      out[i] = (sign !== 0 ? -1 : 1) * man * 5.960464477539063e-8;
    } else if (exp === 31) {
      u[i] = (sign | 0x7f800000 | (man << 13)) >>> 0;
    } else {
      u[i] = (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
    }
  }
}

export interface TensorToWrite {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

/**
 * The bytes of a safetensors file holding float32 tensors, as a list of chunks (header, then views of each
 * tensor's data: nothing is copied).
 */
export function safetensorsChunks(tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) throw new CheckpointError('CHECKPOINT_WRITE_FAILED', t.name, `has ${t.data.length} elements, shape [${t.shape.join(', ')}] needs ${numel}`);
    if (t.name in header) throw new CheckpointError('CHECKPOINT_WRITE_FAILED', t.name, 'tensor name appears twice');
    header[t.name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  return [len, new Uint8Array(hb.buffer, hb.byteOffset, hb.byteLength), ...tensors.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
}

/** Writes float32 tensors to `path` atomically; returns the file's SHA-256 and size. */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}, onBytes?: (n: number) => void): { sha256: string; bytes: number } {
  littleEndianHost(path);
  return atomicWriteFile(path, safetensorsChunks(tensors, metadata), onBytes);
}

/** The size of the file writeSafetensors would write (header included; the data is not copied). */
export function safetensorsBytes(tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): number {
  return safetensorsChunks(tensors, metadata).reduce((a, c) => a + c.byteLength, 0);
}
