/**
 * shard-info/1.0.0: what this node holds and how busy it is. The node supplies the current values.
 */
import type { ShardInfo, ShardInfoRequest } from '../pb/node.js';
import type { UnaryHandler } from '../rpc/service.js';

export interface ShardInfoSource {
  peerId: string;
  /** Layers held, [start, end); undefined while the node holds none. */
  span(): { start: number; end: number } | undefined;
  totalLayers(): number;
  modelHash(): string;
  version(): bigint;
  freeMemoryMb(): number;
  load(): number;
}

export function shardInfoHandler(src: ShardInfoSource): UnaryHandler<ShardInfoRequest, ShardInfo> {
  return () => {
    const span = src.span();
    const total = src.totalLayers();
    return {
      peerId: src.peerId,
      span,
      totalLayers: total,
      hasEmbedding: span !== undefined && span.start === 0,
      hasLmHead: span !== undefined && span.end === total,
      modelHash: src.modelHash(),
      version: src.version(),
      freeMemoryMb: BigInt(Math.max(0, Math.floor(src.freeMemoryMb()))),
      load: Math.max(0, src.load()),
    };
  };
}
