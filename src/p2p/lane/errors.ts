/**
 * Typed errors of the direct data lane (./lane.ts). Codes (stable; tests match on them):
 *
 * peer faults (the other end broke the lane protocol; the lane is closed, the caller falls back to libp2p):
 *   LANE_AUTH        a frame whose tag does not verify: tampered, replayed, reordered, dropped or under another key
 *   LANE_OVERSIZED   a frame length over the cap, announced before its body is buffered
 *   LANE_MALFORMED   a frame too short to hold a tag, a sub-frame that does not parse, an unknown sub-frame type
 *   LANE_TRUNCATED   the socket ended inside a frame
 *   LANE_PROTOCOL    sub-frames out of order (data for an unknown stream, past the granted window, a duplicate open)
 *   LANE_HANDSHAKE   the key exchange or the hello failed (bad key, wrong lane id, too slow)
 * transport (nobody's proven fault):
 *   LANE_CLOSED      the lane is closed (socket error, idle, the libp2p connection went, node stopping)
 *   LANE_QUOTA       a quota refused a lane or a stream (per peer, in total, pending handshakes)
 *   LANE_UNAVAILABLE no lane can be made to this peer (relayed connection, no direct address, dial failed)
 */
import { NetworkError } from '../errors.js';

export type LaneErrorCode =
  | 'LANE_AUTH'
  | 'LANE_OVERSIZED'
  | 'LANE_MALFORMED'
  | 'LANE_TRUNCATED'
  | 'LANE_PROTOCOL'
  | 'LANE_HANDSHAKE'
  | 'LANE_CLOSED'
  | 'LANE_QUOTA'
  | 'LANE_UNAVAILABLE';

/** A lane failed. A NetworkError (fault: peer): callers treat it as a dead connection and fall back to libp2p. */
export class LaneError extends NetworkError {
  declare readonly code: LaneErrorCode;
  constructor(code: LaneErrorCode, message: string, meta?: Record<string, unknown>, cause?: unknown) {
    super(code, message, meta, cause);
  }
}

/** True for the codes that mean the other end broke the protocol (not a plain transport failure). */
export function isLaneViolation(e: unknown): boolean {
  return e instanceof LaneError && e.code !== 'LANE_CLOSED' && e.code !== 'LANE_QUOTA' && e.code !== 'LANE_UNAVAILABLE';
}
