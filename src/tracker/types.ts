/**
 * What the tracker needs to know about the records it stores, and the validator it is handed.
 *
 * The tracker may not import `protocols/` (docs/ARCHITECTURE.md §2), where the one HolderRecord implementation
 * lives. So it stores any record that has the few fields it indexes on, and the composition root (`node/tracker.ts`)
 * injects a RecordValidator that parses, verifies and serialises HolderRecords. The tracker decides the policy
 * (time bounds, which HTTP status answers which rejection); the validator knows the format.
 */

/** The fields of an announced record that the tracker indexes and checks. */
export interface TrackedRecord {
  networkId: string;
  peerId: string;
  multiaddrs: readonly string[];
  span: { start: number; end: number };
  timestampMs: number;
  expiresMs: number;
}

export type ParseRejection = 'malformed' | 'too_large';
export type VerifyRejection = 'bad_signature' | 'peer_id_invalid' | 'expired' | 'from_future' | 'too_old';

export type ParseResult<R> = { ok: true; record: R } | { ok: false; reason: ParseRejection; message: string };
export type VerifyResult = { ok: true } | { ok: false; reason: VerifyRejection; message: string };

export interface RecordValidator<R extends TrackedRecord> {
  /** Strictly parses a decoded JSON body; unknown fields are rejected, so nothing else (no secret) is stored. */
  parse(body: unknown): ParseResult<R>;
  /** Checks the clock bounds and the signature against the key inside the record's peerId. */
  verify(record: R, opts: { nowMs: number; maxSkewMs: number; maxAgeMs: number }): VerifyResult;
  /** The JSON value served by GET /peers: exactly the record's own fields. */
  toJson(record: R): unknown;
}

/**
 * The fields of a signed withdrawal (`POST /withdraw`) that the tracker checks: it removes the record held for
 * (networkId, peerId) when that record was signed at or before timestampMs.
 */
export interface TrackedWithdrawal {
  networkId: string;
  peerId: string;
  timestampMs: number;
}

export type WithdrawalVerifyRejection = 'bad_signature' | 'peer_id_invalid' | 'from_future' | 'too_old';
export type WithdrawalVerifyResult = { ok: true } | { ok: false; reason: WithdrawalVerifyRejection; message: string };

/** Injected like RecordValidator: the withdrawal's format lives with the client that signs it (protocols/). */
export interface WithdrawalValidator<W extends TrackedWithdrawal> {
  /** Strictly parses a decoded JSON body; unknown fields are rejected. */
  parse(body: unknown): ParseResult<W>;
  /** Checks the clock bounds, then the signature against the key inside peerId. */
  verify(withdrawal: W, opts: { nowMs: number; maxSkewMs: number; maxAgeMs: number }): WithdrawalVerifyResult;
}

/** Error codes of the tracker's HTTP answers: `{"error": {"code", "message"}}`. */
export type TrackerErrorCode =
  | 'malformed'
  | 'unsupported_media_type'
  | 'bad_signature'
  | 'wrong_network'
  | 'not_found'
  | 'stale'
  | 'expired'
  | 'from_future'
  | 'too_large'
  | 'rate_limited'
  | 'source_full'
  | 'address_mismatch'
  | 'full'
  | 'internal';

export interface TrackerErrorBody {
  error: { code: TrackerErrorCode; message: string };
}

export interface AnnounceResponse {
  ok: true;
  ttlMs: number;
}

export interface WithdrawResponse {
  ok: true;
  /** False when no record was held for the peer (never announced, already withdrawn, expired): a replay is harmless. */
  removed: boolean;
}

export interface PeersResponse<R = unknown> {
  peers: R[];
}

export interface HealthResponse {
  ok: true;
  entries: number;
  uptimeMs: number;
}
