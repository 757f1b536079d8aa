/**
 * A whole span's layers of one decode step in one backend call (session 23, issue 10: the decode step's serial
 * parts). Backend.decodeLayer runs one layer as one pool job; a batch-1 step of 12 layers then pays 12 returns to JS,
 * 12 N-API calls with their argument checks, 12 job openings (the pool's helper joining each anew) and the
 * layer-independent preparation 12 times. `decodeLayers` runs L consecutive layers as one job of L × 10 phases:
 * layer l reads res[l] and writes res[l + 1]. The tasks are decodeLayer's, in the same order, on the same data, so
 * the result has the same bits (test/unit/model/decode-layers.test.ts).
 *
 * An optional capability of the native backend only, so it lives beside the Backend interface rather than in it:
 * `decodeLayersOf(backend)` returns the call where the backend has it.
 */
import type { Backend, Int8Layout } from './backend.js';

export interface DecodeLayersArgs {
  /** Layers (≥ 1). */
  L: number;
  /** Rows (sequences), 1..DECODE_LAYER_MAX_ROWS. */
  B: number;
  /** L + 1 distinct arrays of at least [B, C]: layer l's x is res[l], its out res[l + 1]. */
  res: readonly Float32Array[];
  /**
   * 10·L entries, layer l's at 10·l: inNorm, postNorm, qkv, o, gateUp, down (Float32Array, or the int8 codes as
   * Int8Array) and, int8 only, the scales of qkv, o, gateUp, down (null for float32).
   */
  layers: readonly (Float32Array | Int8Array | null)[];
  /** L·B caches, layer l's row b at l·B + b, [maxS[b], KV, D] each. */
  kCache: readonly Float32Array[];
  vCache: readonly Float32Array[];
  /** Scratch of decodeLayerScratch(B, C, H, KV, D, F) floats. */
  ws: Float32Array;
  C: number;
  H: number;
  KV: number;
  D: number;
  F: number;
  /** Row b's position and its cache's capacity, [B] each (the same for every layer). */
  pos: Int32Array;
  maxS: Int32Array;
  /** int8 only: [4·L] weights per scale of each layer's qkv, o, gateUp, down (every layer's the same); null for float32. */
  blockSizes: Int32Array | null;
  int8Layout?: Int8Layout;
  eps: number;
  theta: number;
  /**
   * The span's head, in the same job after the last layer: xf [B, C] = rmsnorm(res[L]; norm), rstd [B], logits
   * [B, V] = xf · wᵀ (w float32 [V, C]): the bits of rmsnormForward and gemm for B ≤ 8 rows.
   */
  head?: { norm: Float32Array; w: Float32Array; xf: Float32Array; rstd: Float32Array; logits: Float32Array; V: number };
}

export interface DecodeLayersBackend {
  decodeLayers(a: DecodeLayersArgs): void;
}

/** The backend's decodeLayers, bound, or undefined where it has none (the reference backend, an older addon). */
export function decodeLayersOf(be: Backend): ((a: DecodeLayersArgs) => void) | undefined {
  const f = (be as Partial<DecodeLayersBackend> & { readonly hasDecodeLayers?: boolean }).decodeLayers;
  if (typeof f !== 'function' || (be as { readonly hasDecodeLayers?: boolean }).hasDecodeLayers === false) return undefined;
  return f.bind(be) as (a: DecodeLayersArgs) => void;
}
