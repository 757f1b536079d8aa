/**
 * The training-record exchange between the members of an outer round (issue 11 §2; ledger/training-receipt.ts):
 *
 *   training-record/1.0.0  unary  request: the record's signed payload (trainingRecordPayload: u8 1 ‖ str networkId ‖
 *                                 the record's fields), at most 4 KiB, decoded strictly;
 *                                 response: the callee's 64-byte co-signature of exactly those bytes
 *
 * The callee signs only a payload byte-identical to the record it built itself for that round (node/training-receipts.ts);
 * otherwise it answers TRAINING_RECORD_NOT_READY (round not closed here yet: ask again) or TRAINING_RECORD_MISMATCH
 * (another view of the round), neither of which is the caller's fault. A request that does not decode is.
 */
import { decodeTrainingRecordPayload, type TrainingRecord } from '../ledger/training-receipt.js';
import { SIGNATURE_LENGTH } from '../identity/index.js';
import { PeerMisbehaviourError } from '../util/errors.js';
import type { UnaryMethod } from './rpc/method.js';

/** Largest record payload: 16 members × 33 + 16 contributions × 10 + the fixed fields, with room. */
export const MAX_RECORD_PAYLOAD_BYTES = 4 * 1024;

export interface RecordRequest {
  /** The payload bytes as received (what is signed). */
  payload: Uint8Array;
  networkId: string;
  record: TrainingRecord;
}

export const trainingRecord: UnaryMethod<RecordRequest, Uint8Array> = {
  name: 'training-record',
  version: '1.0.0',
  kind: 'unary',
  request: {
    encode: (r) => r.payload,
    decode: (b) => {
      try {
        const d = decodeTrainingRecordPayload(b);
        return { payload: b.slice(), networkId: d.networkId, record: d.record };
      } catch (e) {
        throw new PeerMisbehaviourError('RPC_MALFORMED', `training-record: ${e instanceof Error ? e.message : String(e)}`);
      }
    },
  },
  response: { encode: (s) => s, decode: (b) => b.slice() },
  maxRequestBytes: MAX_RECORD_PAYLOAD_BYTES,
  maxResponseBytes: SIGNATURE_LENGTH,
  timeoutMs: 10_000,
  // quota: a member asks once per round (and again while we are not ready)
  maxInboundStreams: 2,
  maxConcurrent: 16,
  validateResponse: (s) => {
    if (s.byteLength !== SIGNATURE_LENGTH) throw new PeerMisbehaviourError('RPC_MALFORMED', 'training-record: a co-signature is 64 bytes');
  },
};
