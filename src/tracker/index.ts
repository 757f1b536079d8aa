/** The bootstrap tracker service. The HolderRecord and withdrawal validators are injected by node/tracker.ts. */
export { TrackerServer, type TrackerModules } from './server.js';
export { TRACKER_DEFAULTS, isNetworkId, trackerOptions, type TrackerOptions } from './options.js';
export { RateLimiter } from './rate-limit.js';
export type {
  AnnounceResponse,
  HealthResponse,
  ParseRejection,
  ParseResult,
  PeersResponse,
  RecordValidator,
  TrackedRecord,
  TrackerErrorBody,
  TrackerErrorCode,
  VerifyRejection,
  VerifyResult,
  TrackedWithdrawal,
  WithdrawResponse,
  WithdrawalValidator,
  WithdrawalVerifyRejection,
  WithdrawalVerifyResult,
} from './types.js';
