import { NeuroShardError } from '../util/errors.js';

/**
 * A network operation failed: a dial, a stream open, a DHT query. Codes: DIAL_FAILED, PROTOCOL_UNSUPPORTED,
 * STREAM_OPEN_FAILED, STREAM_OPEN_ABORTED, DHT_PUT_FAILED, DHT_GET_ABORTED, DHT_PROVIDE_FAILED,
 * DHT_FIND_PROVIDERS_ABORTED, NOT_STARTED. The fault is the peer's (or the network's), never the caller's.
 */
export class NetworkError extends NeuroShardError {
  constructor(code: string, message: string, meta?: Record<string, unknown>, cause?: unknown) {
    super(code, message, { fault: 'peer', meta, cause });
  }
}
