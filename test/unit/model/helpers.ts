/**
 * Shared helpers of the model tests: tiny configs, deterministic inputs, error metrics, and the backends to run on
 * (the reference backend always; the native one too when its addon loads here).
 */
import { makeConfig, type LlamaConfig } from '../../../src/model/index.js';
import { createReferenceBackend, tryLoadNativeBackend, type Backend } from '../../../src/tensor/index.js';
import { Rng } from '../../../src/util/rng.js';

/** A tiny model with every dimension distinct: C 32, 3 layers, 4 heads / 2 KV heads of 8, FFN 48, V 50. */
export function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return makeConfig({
    hidden_size: 32,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 48,
    vocab_size: 50,
    max_position_embeddings: 32,
    ...over,
  });
}

export function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(vocab));
}

/** max|a − b| / max|b| (0 when both are all zero). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return m === 0 ? d : d / m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

export const reference: Backend = createReferenceBackend();

/** The backends to check against: reference, plus native when it loads. */
export async function testBackends(): Promise<{ name: string; backend: Backend }[]> {
  const out = [{ name: 'reference', backend: reference }];
  const n = await tryLoadNativeBackend({ threads: 1 });
  if (n.ok) out.push({ name: 'native', backend: n.backend });
  return out;
}
