/**
 * Tensors on the wire: dtype + shape + raw little-endian bytes, never JSON numbers and never an object graph.
 * Every tensor that arrives from a peer is checked here: a known dtype, rank ≤ 8, and exactly
 * product(shape) × sizeof(dtype) bytes. fp16, bf16 and int8 are conversions at the edge (the engine computes in fp32).
 */
import { PeerMisbehaviourError } from '../util/errors.js';
import { DType, type Tensor as PbTensor } from './pb/node.js';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from '../tensor/half.js';

export type WireDType = 'fp32' | 'fp16' | 'bf16' | 'int8' | 'int32';

export interface WireTensor {
  dtype: WireDType;
  /** Row-major dimensions. */
  shape: number[];
  /** product(shape) × bytesPerElement(dtype) little-endian bytes. May be an unaligned view into a frame. */
  data: Uint8Array;
  /** int8 only: value = int8 × scale. */
  scale?: number;
}

export const MAX_TENSOR_RANK = 8;
const MAX_DIM = 2 ** 31 - 1;

const BYTES: Record<WireDType, number> = { fp32: 4, fp16: 2, bf16: 2, int8: 1, int32: 4 };
const TO_PB: Record<WireDType, DType> = { fp32: DType.FP32, fp16: DType.FP16, bf16: DType.BF16, int8: DType.INT8, int32: DType.INT32 };
const FROM_PB: Partial<Record<DType, WireDType>> = {
  [DType.FP32]: 'fp32',
  [DType.FP16]: 'fp16',
  [DType.BF16]: 'bf16',
  [DType.INT8]: 'int8',
  [DType.INT32]: 'int32',
};

export function bytesPerElement(dtype: WireDType): number {
  return BYTES[dtype];
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class BadTensorError extends PeerMisbehaviourError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('RPC_BAD_TENSOR', message, meta);
  }
}

/** Checks a tensor's shape against its bytes; throws BadTensorError. */
export function checkTensor(t: WireTensor, what = 'tensor'): void {
  if (!(t.dtype in BYTES)) throw new BadTensorError(`${what}: unknown dtype`);
  if (t.shape.length > MAX_TENSOR_RANK) throw new BadTensorError(`${what}: rank ${t.shape.length} > ${MAX_TENSOR_RANK}`);
  // The product of the non-zero dimensions is bounded too: a zero-element tensor must not name huge dimensions
  // that code sizing buffers from the shape (before looking at the bytes) would trust.
  let nonZero = 1;
  for (const d of t.shape) {
    if (!Number.isInteger(d) || d < 0 || d > MAX_DIM) throw new BadTensorError(`${what}: bad dimension ${d}`);
    if (d > 0) nonZero *= d;
  }
  if (nonZero > MAX_DIM) throw new BadTensorError(`${what}: shape [${t.shape.join(',')}] names more than ${MAX_DIM} elements`);
  const want = elementCount(t.shape) * BYTES[t.dtype];
  if (t.data.byteLength !== want) {
    throw new BadTensorError(`${what}: ${t.data.byteLength} bytes for shape [${t.shape.join(',')}] ${t.dtype} (want ${want})`);
  }
  if (t.dtype === 'int8' && (t.scale === undefined || !Number.isFinite(t.scale) || t.scale <= 0)) {
    throw new BadTensorError(`${what}: int8 tensor needs a positive finite scale`);
  }
}

export function tensorToPb(t: WireTensor): PbTensor {
  checkTensor(t);
  return { dtype: TO_PB[t.dtype], shape: t.shape, data: t.data as Uint8Array<ArrayBuffer>, scale: t.scale ?? 0 };
}

/** Validates and converts a decoded protobuf tensor; `undefined` (field absent) throws unless `optional`. */
export function tensorFromPb(p: PbTensor | undefined, what: string): WireTensor;
export function tensorFromPb(p: PbTensor | undefined, what: string, optional: true): WireTensor | undefined;
export function tensorFromPb(p: PbTensor | undefined, what: string, optional = false): WireTensor | undefined {
  if (p === undefined) {
    if (optional) return undefined;
    throw new BadTensorError(`${what}: missing`);
  }
  const dtype = FROM_PB[p.dtype];
  if (dtype === undefined) throw new BadTensorError(`${what}: dtype ${String(p.dtype)} is not allowed`);
  const t: WireTensor = { dtype, shape: p.shape, data: p.data };
  if (dtype === 'int8') t.scale = p.scale;
  checkTensor(t, what);
  return t;
}

/** A fp32 tensor viewing the array's bytes (no copy). */
export function fp32Tensor(a: Float32Array, shape: number[]): WireTensor {
  const t: WireTensor = { dtype: 'fp32', shape, data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) };
  checkTensor(t);
  return t;
}

export function int32Tensor(a: Int32Array, shape: number[]): WireTensor {
  const t: WireTensor = { dtype: 'int32', shape, data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) };
  checkTensor(t);
  return t;
}

function aligned(data: Uint8Array, n: number): ArrayBuffer {
  // A view into a received frame may sit at any offset: copy into a fresh, aligned buffer when needed.
  if (data.byteOffset % n === 0) return data.buffer as ArrayBuffer;
  return data.slice().buffer;
}

/** The tensor's values as fp32 (converting fp16 and int8; a view when the bytes are aligned fp32). */
export function toFloat32(t: WireTensor): Float32Array {
  const n = elementCount(t.shape);
  switch (t.dtype) {
    case 'fp32': {
      const off = t.data.byteOffset % 4 === 0 ? t.data.byteOffset : 0;
      return new Float32Array(aligned(t.data, 4), off, n);
    }
    case 'fp16': {
      const off = t.data.byteOffset % 2 === 0 ? t.data.byteOffset : 0;
      const h = new Uint16Array(aligned(t.data, 2), off, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]!);
      return out;
    }
    case 'bf16': {
      const off = t.data.byteOffset % 2 === 0 ? t.data.byteOffset : 0;
      const h = new Uint16Array(aligned(t.data, 2), off, n);
      const out = new Float32Array(n);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = h[i]! << 16; // exact: bf16 is the high half of a float32
      return out;
    }
    case 'int8': {
      const q = new Int8Array(t.data.buffer, t.data.byteOffset, n);
      const s = t.scale ?? 1;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = q[i]! * s;
      return out;
    }
    case 'int32': {
      const off = t.data.byteOffset % 4 === 0 ? t.data.byteOffset : 0;
      return Float32Array.from(new Int32Array(aligned(t.data, 4), off, n));
    }
  }
}

export function toInt32(t: WireTensor): Int32Array {
  if (t.dtype !== 'int32') throw new BadTensorError(`expected an int32 tensor, got ${t.dtype}`);
  const off = t.data.byteOffset % 4 === 0 ? t.data.byteOffset : 0;
  return new Int32Array(aligned(t.data, 4), off, elementCount(t.shape));
}

/** fp32 → fp16 (round to nearest even), as a tensor. */
export function fp16Tensor(a: Float32Array, shape: number[]): WireTensor {
  const h = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) h[i] = floatToHalf(a[i]!);
  const t: WireTensor = { dtype: 'fp16', shape, data: new Uint8Array(h.buffer) };
  checkTensor(t);
  return t;
}

/** fp32 → bf16 (round to nearest even), as a tensor. */
export function bf16Tensor(a: Float32Array, shape: number[]): WireTensor {
  const h = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) h[i] = floatToBf16(a[i]!);
  const t: WireTensor = { dtype: 'bf16', shape, data: new Uint8Array(h.buffer) };
  checkTensor(t);
  return t;
}

/** Activations between hops in the dtype a node sends (`--wire`). */
export function activationTensor(a: Float32Array, shape: number[], wire: 'f32' | 'f16' | 'bf16'): WireTensor {
  return wire === 'f16' ? fp16Tensor(a, shape) : wire === 'bf16' ? bf16Tensor(a, shape) : fp32Tensor(a, shape);
}

/** fp32 → int8 with one symmetric scale (max |x| / 127). */
export function int8Tensor(a: Float32Array, shape: number[]): WireTensor {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  const scale = m > 0 && Number.isFinite(m) ? m / 127 : 1;
  const q = new Int8Array(a.length);
  for (let i = 0; i < a.length; i++) q[i] = Math.max(-127, Math.min(127, Math.round(a[i]! / scale)));
  const t: WireTensor = { dtype: 'int8', shape, data: new Uint8Array(q.buffer), scale };
  checkTensor(t);
  return t;
}

export { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat };
