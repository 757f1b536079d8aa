/**
 * IEEE 754 half precision, one value at a time: the one conversion that the reference backend, the tensor wire
 * format, the pseudo-gradient codec and the GGUF writer share (identical bits everywhere: round to nearest even as
 * F16C and numpy's astype(float16) do, overflow to ±Inf, half subnormals kept, NaN stays a quiet NaN).
 */

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/** float32 → IEEE half bits. */
export function floatToHalf(v: number): number {
  cvtF32[0] = v;
  const x = cvtU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 : sign | 0x7c00; // NaN stays NaN, Inf stays Inf
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // too large: Inf
  if (e <= 0) {
    // half subnormal (or zero): value = m · 2^-24 with m = (1.mant) · 2^(e - 14 + 23) … shift right by 14 - e
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is the right result
  return sign | h;
}

/** IEEE half bits → number (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m !== 0 ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * float32 → bfloat16 bits: the high 16 bits of the float32, rounded to nearest even (as PyTorch's
 * `.to(torch.bfloat16)` does); NaN stays a quiet NaN (sign kept), ±Inf stays ±Inf, overflow past the largest
 * bfloat16 rounds to ±Inf. bf16 keeps float32's exponent range (no overflow at 65504 as half has) with 8 bits of
 * mantissa instead of 11.
 */
export function floatToBf16(v: number): number {
  cvtF32[0] = v;
  const x = cvtU32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) & 0x8000) | 0x7fc0;
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** bfloat16 bits → number (exact). */
export function bf16ToFloat(h: number): number {
  cvtU32[0] = (h & 0xffff) << 16;
  return cvtF32[0]!;
}
