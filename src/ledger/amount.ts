/**
 * NEURO amounts: bigint base units with 18 decimals. Decimal strings parse and print exactly; no floating point
 * touches an amount anywhere. Rounding in the ledger is explicit: floor for payouts, ceil for charges.
 */
import { InvalidArgumentError } from '../util/errors.js';

export const DECIMALS = 18;
/** 1 NEURO in base units. */
export const NEURO = 10n ** 18n;
/** Fixed-point scale of multipliers and rates (1.0 = WAD). */
export const WAD = 10n ** 18n;
/** The largest amount an event may carry: 2^96 - 1 base units (about 7.9e10 NEURO). */
export const MAX_AMOUNT = (1n << 96n) - 1n;

const AMOUNT_RE = /^(0|[1-9][0-9]{0,29})(?:\.([0-9]{1,18}))?$/;

/**
 * Parses a decimal NEURO string ("12", "0.5", "1.000000000000000001") into base units. Rejects signs, exponents,
 * spaces, more than 18 decimals and values above MAX_AMOUNT with InvalidArgumentError (code AMOUNT_INVALID).
 */
export function parseAmount(s: string): bigint {
  if (typeof s !== 'string' || s.length > 64) throw new InvalidArgumentError('amount must be a decimal string', undefined, 'AMOUNT_INVALID');
  const m = AMOUNT_RE.exec(s);
  if (m === null) throw new InvalidArgumentError(`not a NEURO amount: ${JSON.stringify(s)} (digits, optionally "." and up to 18 decimals)`, undefined, 'AMOUNT_INVALID');
  const whole = BigInt(m[1]!);
  const frac = BigInt((m[2] ?? '').padEnd(DECIMALS, '0'));
  const v = whole * NEURO + frac;
  if (v > MAX_AMOUNT) throw new InvalidArgumentError(`amount ${s} is larger than the maximum, ${formatAmount(MAX_AMOUNT)}`, undefined, 'AMOUNT_INVALID');
  return v;
}

/** Prints base units as a decimal NEURO string without trailing zeros: 1500000000000000000n → "1.5". */
export function formatAmount(v: bigint): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const whole = a / NEURO;
  const frac = a % NEURO;
  let s = whole.toString();
  if (frac !== 0n) s += '.' + frac.toString().padStart(DECIMALS, '0').replace(/0+$/, '');
  return neg ? '-' + s : s;
}

/** floor(a·b / d) for non-negative operands. */
export function mulDivFloor(a: bigint, b: bigint, d: bigint): bigint {
  return (a * b) / d;
}

/** ceil(a·b / d) for non-negative operands. */
export function mulDivCeil(a: bigint, b: bigint, d: bigint): bigint {
  const n = a * b;
  return (n + d - 1n) / d;
}

export function minBig(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

export function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
