/**
 * Seeded, reproducible initialisation: every matrix N(0, 0.02²), every RMSNorm scale 1 (the Python original's and
 * GPT-2's scheme).
 *
 * Each tensor draws from its own generator, seeded from (seed, tensor name): a node that initialises only its span
 * gets exactly the weights a full model with the same seed has for those layers, and growth (growth.ts) draws new
 * weights for a layer the same way on every replica that holds it.
 */
import { createHash } from 'node:crypto';
import { Rng } from '../util/rng.js';
import { type ParamLayout } from './layout.js';

export const INIT_STD = 0.02;

/** A generator for (seed, name): the first 128 bits of SHA-256("neuroshard-init" ‖ seed ‖ name). */
export function tensorRng(seed: number, name: string): Rng {
  const h = createHash('sha256').update(`neuroshard-init\0${seed >>> 0}\0${name}`).digest();
  const s = new Uint32Array([h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)]);
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1; // xoshiro's one forbidden state
  return new Rng(s);
}

/** Fills `out` with N(0, std²) samples from `rng`. */
export function fillNormal(out: Float32Array, rng: Rng, std: number): void {
  for (let i = 0; i < out.length; i++) out[i] = std * rng.normal();
}

/** Initialises every tensor of `layout` in `flat`. */
export function initParams(layout: ParamLayout, flat: Float32Array, seed: number): void {
  for (const e of layout.entries) {
    const v = flat.subarray(e.offset, e.offset + e.size);
    if (e.shape.length === 1) v.fill(1);
    else fillNormal(v, tensorRng(seed, e.name), INIT_STD);
  }
}
