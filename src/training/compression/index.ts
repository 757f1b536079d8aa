/** Compression of pseudo-gradients for the outer sync (formats in codec.ts). */
export {
  COMPRESSIONS,
  DeltaFormatError,
  ErrorFeedback,
  INT8_BLOCK,
  SPARSE_DEFAULTS,
  decodeDelta,
  encodeDelta,
  encodedBytes,
  f16ToF32,
  f32ToF16,
  isCompressionKind,
  sparseK,
  type CompressionKind,
  type CompressionOptions,
} from './codec.js';
