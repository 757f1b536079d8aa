/**
 * Composes the bootstrap tracker service (tracker/) with the one HolderRecord and TrackerWithdrawal implementations
 * (protocols/). The tracker may not import protocols/ (docs/ARCHITECTURE.md §2), so it takes a RecordValidator and
 * a WithdrawalValidator, and this composition root hands it the real ones. `neuroshard tracker` (cli/tracker/) reaches it through here.
 */
import { TrackerServer, type RecordValidator, type TrackerOptions, type WithdrawalValidator } from '../tracker/index.js';
import { type HolderRecord, holderRecordToJson, parseHolderRecord, verifyHolderRecord } from '../protocols/holder-record.js';
import { parseTrackerWithdrawal, type TrackerWithdrawal, verifyTrackerWithdrawal } from '../protocols/tracker-withdrawal.js';
import type { Clock } from '../util/clock.js';
import { isNeuroShardError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/** The HolderRecord parser/verifier in the shape the tracker asks for. */
export const holderRecordValidator: RecordValidator<HolderRecord> = {
  parse(body) {
    try {
      return { ok: true, record: parseHolderRecord(body) };
    } catch (e) {
      if (isNeuroShardError(e, 'HOLDER_RECORD_TOO_LARGE')) return { ok: false, reason: 'too_large', message: e.message };
      if (isNeuroShardError(e, 'HOLDER_RECORD_MALFORMED')) return { ok: false, reason: 'malformed', message: e.message };
      throw e;
    }
  },
  verify(record, opts) {
    const v = verifyHolderRecord(record, opts);
    return v.ok ? { ok: true } : { ok: false, reason: v.reason, message: v.message };
  },
  toJson: holderRecordToJson,
};

/** The TrackerWithdrawal parser/verifier in the shape the tracker asks for. */
export const trackerWithdrawalValidator: WithdrawalValidator<TrackerWithdrawal> = {
  parse(body) {
    try {
      return { ok: true, record: parseTrackerWithdrawal(body) };
    } catch (e) {
      if (isNeuroShardError(e, 'TRACKER_WITHDRAWAL_TOO_LARGE')) return { ok: false, reason: 'too_large', message: e.message };
      if (isNeuroShardError(e, 'TRACKER_WITHDRAWAL_MALFORMED')) return { ok: false, reason: 'malformed', message: e.message };
      throw e;
    }
  },
  verify: verifyTrackerWithdrawal,
};

/** A tracker that stores and serves HolderRecords. Call listen() to serve, close() to stop. */
export function createTracker(opts: Partial<TrackerOptions>, modules: { clock?: Clock; logger?: Logger } = {}): TrackerServer<HolderRecord, TrackerWithdrawal> {
  return new TrackerServer<HolderRecord, TrackerWithdrawal>(opts, { validator: holderRecordValidator, withdrawal: trackerWithdrawalValidator, ...modules });
}
