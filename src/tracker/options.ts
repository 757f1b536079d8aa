/**
 * Tracker options and their defaults, in one place. The tracker is a separate service from the node, so its
 * options live here rather than in node/options.ts; the CLI maps flags onto them.
 */
import { InvalidArgumentError } from '../util/errors.js';

export interface TrackerOptions {
  host: string;
  /** 0 picks a free port (tests); the bound port is reported by listen(). */
  port: number;
  /** SQLite file; ':memory:' keeps nothing (tests). */
  dbPath: string;
  /** A record is served for this long after its last announce; also the ttlMs the tracker answers. */
  ttlMs: number;
  /** How far in the future an announced record's timestamp may be, and how old it may be. */
  maxSkewMs: number;
  /** Request body limit of POST /announce. */
  maxBodyBytes: number;
  /** Cap on stored records (all networks together). */
  maxEntries: number;
  /** Cap on records announced from one source IP: one machine cannot fill the table with fresh keys. */
  maxEntriesPerSource: number;
  /**
   * Cap on records announced from one network prefix (an IPv6 /48, an IPv4 /24): a site or a rented /48 holds
   * 65,536 /64 sources, each under maxEntriesPerSource, and could otherwise fill the table alone.
   */
  maxEntriesPerPrefix: number;
  /**
   * Accept records whose multiaddrs name a host by DNS. Off by default: a name can point anywhere, so it would let
   * an announcer aim every newcomer's dials at a third party.
   */
  allowDnsAddrs: boolean;
  /** Token bucket per source IP for POST /announce: burst size and refill per second. */
  announceBurst: number;
  announcePerSec: number;
  /** Token bucket per source IP for GET requests. */
  queryBurst: number;
  queryPerSec: number;
  /** Sources tracked by the rate limiter at once (memory bound; the longest-idle source is forgotten first). */
  maxRateLimitSources: number;
  /** GET /peers: default and largest `limit`. */
  defaultPeersLimit: number;
  maxPeersLimit: number;
  /** When non-empty, only records of these network ids are accepted. */
  networks: string[];
}

export const TRACKER_DEFAULTS: TrackerOptions = {
  host: '0.0.0.0',
  port: 3000,
  dbPath: ':memory:',
  ttlMs: 60_000,
  maxSkewMs: 60_000,
  maxBodyBytes: 8 * 1024,
  maxEntries: 10_000,
  maxEntriesPerSource: 256,
  maxEntriesPerPrefix: 512,
  allowDnsAddrs: false,
  // A node re-announces every 20 s; a burst of 20 and one per second covers ~20 nodes behind one NAT address.
  announceBurst: 20,
  announcePerSec: 1,
  queryBurst: 60,
  queryPerSec: 5,
  maxRateLimitSources: 100_000,
  defaultPeersLimit: 50,
  maxPeersLimit: 200,
  networks: [],
};

const NETWORK_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;

export function isNetworkId(s: string): boolean {
  return NETWORK_ID_RE.test(s);
}

/** Merges and validates options (programmatic callers; the CLI has already checked its flags). */
export function trackerOptions(partial: Partial<TrackerOptions> = {}): TrackerOptions {
  const o: TrackerOptions = { ...TRACKER_DEFAULTS, ...partial };
  const int = (k: keyof TrackerOptions, min: number, max: number): void => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      throw new InvalidArgumentError(`tracker option ${k} must be an integer in ${min}..${max}`, { option: k });
    }
  };
  int('port', 0, 65535);
  int('ttlMs', 1000, 3_600_000);
  int('maxSkewMs', 0, 3_600_000);
  int('maxBodyBytes', 512, 1 << 20);
  int('maxEntries', 1, 10_000_000);
  int('maxEntriesPerSource', 1, 10_000_000);
  int('maxEntriesPerPrefix', 1, 10_000_000);
  if (typeof o.allowDnsAddrs !== 'boolean') throw new InvalidArgumentError('tracker option allowDnsAddrs must be a boolean', { option: 'allowDnsAddrs' });
  int('announceBurst', 1, 1_000_000);
  int('queryBurst', 1, 1_000_000);
  int('maxRateLimitSources', 1, 10_000_000);
  int('maxPeersLimit', 1, 10_000);
  int('defaultPeersLimit', 1, o.maxPeersLimit);
  for (const k of ['announcePerSec', 'queryPerSec'] as const) {
    if (!Number.isFinite(o[k]) || o[k] <= 0) throw new InvalidArgumentError(`tracker option ${k} must be a positive number`, { option: k });
  }
  if (typeof o.host !== 'string' || o.host.length === 0 || o.host.length > 255) throw new InvalidArgumentError('tracker option host must be a host name or address');
  if (typeof o.dbPath !== 'string' || o.dbPath.length === 0) throw new InvalidArgumentError('tracker option dbPath must be a path');
  for (const n of o.networks) if (!isNetworkId(n)) throw new InvalidArgumentError(`invalid network id ${JSON.stringify(n)}`, { option: 'networks' });
  return o;
}
