/**
 * Typed RPC errors. Codes (stable; tests and callers match on them):
 *
 * peer faults (the remote broke the protocol; its score drops):
 *   RPC_OVERSIZED        a frame longer than its message type allows
 *   RPC_MALFORMED        a frame or message that does not decode, or a field out of range
 *   RPC_BAD_TENSOR       a tensor whose bytes do not match its dtype and shape
 *   RPC_UNKNOWN_FRAME    a frame kind we do not know
 *   RPC_TRUNCATED        the stream ended inside a frame, or before the message we were owed
 *   RPC_PROTOCOL         frames in the wrong order, too many frames
 * transport (nobody's proven fault):
 *   RPC_STREAM_RESET     the remote reset the stream
 *   RPC_UNAVAILABLE      the peer could not be reached or does not speak the protocol (version)
 * remote handler errors arrive as RemoteRpcError with the remote's own code (e.g. RPC_BUSY, RPC_NO_HANDLER,
 * RPC_INTERNAL, or an application code), and local deadlines/aborts as TimeoutError / AbortedError.
 */
import { NetworkError } from '../../p2p/errors.js';
import { NeuroShardError, PeerMisbehaviourError, type Fault } from '../../util/errors.js';

export const RPC_CODES = [
  'RPC_OVERSIZED',
  'RPC_MALFORMED',
  'RPC_BAD_TENSOR',
  'RPC_UNKNOWN_FRAME',
  'RPC_TRUNCATED',
  'RPC_PROTOCOL',
] as const;
export type RpcViolationCode = (typeof RPC_CODES)[number];

/** The remote broke the protocol. */
export class RpcViolationError extends PeerMisbehaviourError {
  constructor(code: RpcViolationCode, message: string, meta?: Record<string, unknown>) {
    super(code, message, meta);
  }
}

/**
 * The stream could not be used: reset by the remote, or the peer unreachable / not speaking the protocol. A
 * NetworkError (fault: peer): calls in flight on a reused stream that dies fail with one (RPC_STREAM_RESET).
 */
export class RpcTransportError extends NetworkError {
  constructor(code: 'RPC_STREAM_RESET' | 'RPC_UNAVAILABLE', message: string, meta?: Record<string, unknown>, cause?: unknown) {
    super(code, message, meta, cause);
  }
}

/**
 * An error the remote handler reported in an ERROR frame. `code` is the remote's code. The fault is translated to
 * our point of view: when the remote says the caller was wrong, that is our (local) fault; anything else is the
 * peer's.
 */
export class RemoteRpcError extends NeuroShardError {
  readonly remote = true;
  readonly remoteFault: Fault;
  constructor(code: string, message: string, remoteFault: Fault, meta?: Record<string, unknown>) {
    super(code, message, { fault: remoteFault === 'caller' ? 'local' : 'peer', meta: { ...meta, remoteFault } });
    this.remoteFault = remoteFault;
  }
}

/** Server-side: the handler is at its concurrency limit. */
export class RpcBusyError extends NeuroShardError {
  constructor(method: string) {
    super('RPC_BUSY', `${method}: too many calls in flight, retry later`, { fault: 'local' });
  }
}
