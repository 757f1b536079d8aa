/**
 * Composes the bootstrap tracker service (tracker/) with the one HolderRecord implementation (protocols/). The
 * tracker may not import protocols/ (docs/ARCHITECTURE.md §2), so it takes a RecordValidator, and this composition
 * root hands it the real one. `neuroshard tracker` (cli/tracker/) reaches it through here.
 */
import { TrackerServer, type RecordValidator, type TrackerOptions } from '../tracker/index.js';
import { type HolderRecord, holderRecordToJson, parseHolderRecord, verifyHolderRecord } from '../protocols/holder-record.js';
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

/** A tracker that stores and serves HolderRecords. Call listen() to serve, close() to stop. */
export function createTracker(opts: Partial<TrackerOptions>, modules: { clock?: Clock; logger?: Logger } = {}): TrackerServer<HolderRecord> {
  return new TrackerServer<HolderRecord>(opts, { validator: holderRecordValidator, ...modules });
}
