/**
 * Errors of the data layer. Fault follows who supplied the bytes: `peer` for a download (the server sent
 * something wrong), `config` for a local corpus folder or a committed file that does not match, `local` for our
 * own cache.
 */
import { NeuroShardError, type Fault } from '../util/errors.js';

/** A shard (or tokenizer) whose bytes do not match the manifest's SHA-256 after every retry: never trained on. */
export class ShardIntegrityError extends NeuroShardError {
  constructor(message: string, fault: Fault, meta?: Record<string, unknown>) {
    super('SHARD_INTEGRITY', message, { fault, meta });
  }
}

/** A download failed: HTTP status, too large, network error. */
export class DataFetchError extends NeuroShardError {
  constructor(message: string, fault: Fault, meta?: Record<string, unknown>, cause?: unknown) {
    super('DATA_FETCH_FAILED', message, { fault, meta, cause });
  }
}
