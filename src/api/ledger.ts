/**
 * The ledger routes of the local endpoint:
 *
 *   POST /api/ledger/events   {"event": base64 of a signed event}  → {"id", "status", "reason"?, "duplicate"}
 *   GET  /api/ledger/status                                         → {"stateHash", "events", "minted", "burned",
 *                                                                      "staked", "escrowed"} (`ledger status --json`)
 *
 * The node fills a LedgerSubmitter (src/node/ledger.ts `ledgerSubmitter`); this module only checks requests,
 * defines the shapes and their JSON schemas, and maps outcomes to HTTP.
 *
 * Why POST /api/ledger/events needs no authentication: the body is an event already signed by a wallet key, and
 * the node only stores it and gossips it, exactly as it would if the same bytes arrived from any peer over gossip.
 * Nothing the node does with it spends or moves anything the signature does not authorise, and a caller without the
 * key can make nothing but a duplicate or an event every verifier drops. It still refuses cross-site requests,
 * since a web page in a browser on this machine can reach 127.0.0.1: a request must be `Content-Type:
 * application/json` (an HTML form cannot send that, and a script can only after a CORS preflight, which this server
 * never answers), and any request with an `Origin` header is refused (browsers send one on every cross-origin
 * POST; the CLI and scripts send none). The Host check of server.ts already stops DNS rebinding.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NeuroShardError } from '../util/errors.js';

/**
 * What the ledger made of a submitted event: applied / rejected / void (stored, with that verdict), pending (stored,
 * verdict after a replay), dropped (not stored: it can never become valid here, or was refused at admission, e.g.
 * FUTURE or STALE). `duplicate` is true when the event was stored before (its stored verdict is reported).
 */
export type SubmitStatus = 'applied' | 'rejected' | 'void' | 'pending' | 'dropped';
export const SUBMIT_STATUSES: readonly SubmitStatus[] = ['applied', 'rejected', 'void', 'pending', 'dropped'];

export interface SubmitOutcome {
  /** Hex event id; empty when the bytes did not decode. */
  id: string;
  status: SubmitStatus;
  /** The ledger's reason code (docs/PROTOCOL.md "Verdicts and reason codes") for anything not applied. */
  reason?: string;
  duplicate: boolean;
}

/** `neuroshard ledger status --json`: amounts are decimal NEURO strings. */
export interface LedgerStatusView {
  stateHash: string;
  /** True while a deferred replay is pending: stateHash and events are not final yet. */
  replayPending?: boolean;
  events: number;
  minted: string;
  burned: string;
  staked: string;
  escrowed: string;
  /**
   * Finality (issue 11 §3): the latest signed checkpoint (null: nothing final yet) and, from a running node, the
   * state of finality: active, waiting (no checkpoint yet), stalled (no quorum: less than 2/3 of the stake online,
   * the ledger still works), off (no genesis key configured).
   */
  finalizedSeq?: number | null;
  finalizedHeight?: number | null;
  finalizedHash?: string | null;
  finalizedStateHash?: string | null;
  finality?: string;
  /**
   * Issue 11 §2, from a running node that holds layers: what its validator did since it started (node/validator.ts
   * ValidatorView: rate, sampled, reexecuted, matched, frauds, skipped, slashes, coChecks, dropped).
   */
  validator?: Record<string, number>;
}

/** Filled by the node with its running ledger service. */
export interface LedgerSubmitter {
  /** Largest signed event accepted, in bytes (the ledger's limit for any event). */
  readonly maxEventBytes: number;
  /** Stores the event in the node's ledger and publishes it to the network (what the outbox path does). */
  submit(bytes: Uint8Array): Promise<SubmitOutcome>;
  status(): LedgerStatusView;
}

/** The node's ledger is not running (yet, or any more): the routes answer 503. */
export class LedgerNotReadyError extends NeuroShardError {
  constructor() {
    super('LEDGER_NOT_READY', "the node's ledger is not running yet", { fault: 'local' });
  }
}

export const submitOutcomeSchema = {
  type: 'object',
  required: ['id', 'status', 'duplicate'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: SUBMIT_STATUSES },
    reason: { type: 'string' },
    duplicate: { type: 'boolean' },
  },
} as const;

export const ledgerStatusSchema = {
  type: 'object',
  required: ['stateHash', 'events', 'minted', 'burned', 'staked', 'escrowed'],
  additionalProperties: false,
  properties: {
    stateHash: { type: 'string' },
    replayPending: { type: 'boolean' },
    events: { type: 'integer' },
    minted: { type: 'string' },
    burned: { type: 'string' },
    staked: { type: 'string' },
    escrowed: { type: 'string' },
    finalizedSeq: { type: ['integer', 'null'] },
    finalizedHeight: { type: ['integer', 'null'] },
    finalizedHash: { type: ['string', 'null'] },
    finalizedStateHash: { type: ['string', 'null'] },
    finality: { type: 'string' },
    validator: { type: 'object', additionalProperties: { type: 'number' } },
  },
} as const;

/** Characters of the padded base64 of `n` bytes. */
export function base64Length(n: number): number {
  return 4 * Math.ceil(n / 3);
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
/** Room in the body for `{"event": ""}` and whitespace around the base64 text. */
const BODY_OVERHEAD = 256;

type ErrorSender = (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;

export function registerLedgerRoutes(app: FastifyInstance, ledger: LedgerSubmitter, sendError: ErrorSender): void {
  const maxB64 = base64Length(ledger.maxEventBytes);

  /** Refuses cross-site requests before the body is read (see the file comment). */
  const sameMachineOnly = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (req.headers.origin !== undefined) return sendError(reply, 403, 'forbidden_origin', 'requests from web pages (with an Origin header) are refused');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') return sendError(reply, 415, 'unsupported_media_type', 'send the body as application/json');
    return undefined;
  };

  app.post(
    '/api/ledger/events',
    { bodyLimit: maxB64 + BODY_OVERHEAD, onRequest: sameMachineOnly, schema: { response: { 200: submitOutcomeSchema } } },
    async (req, reply) => {
      const bytes = eventBytes(req.body, ledger.maxEventBytes);
      if (!(bytes instanceof Uint8Array)) return sendError(reply, bytes.status, bytes.code, bytes.message);
      try {
        return await ledger.submit(bytes);
      } catch (e) {
        if (e instanceof LedgerNotReadyError) return sendError(reply, 503, 'not_ready', e.message);
        throw e;
      }
    },
  );

  app.get('/api/ledger/status', { schema: { response: { 200: ledgerStatusSchema } } }, async (_req, reply) => {
    try {
      return ledger.status();
    } catch (e) {
      if (e instanceof LedgerNotReadyError) return sendError(reply, 503, 'not_ready', e.message);
      throw e;
    }
  });
}

interface Refusal {
  status: number;
  code: string;
  message: string;
}

/**
 * The event bytes of a request body `{"event": "<canonical padded base64>"}`, or why not. Strict: no other key, no
 * URL-safe alphabet, no whitespace, no stray bits in the last character.
 */
function eventBytes(body: unknown, maxBytes: number): Uint8Array | Refusal {
  const bad = (message: string): Refusal => ({ status: 400, code: 'bad_request', message });
  const tooLarge: Refusal = { status: 413, code: 'too_large', message: `event is larger than ${maxBytes} bytes` };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('body must be a JSON object {"event": base64}');
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'event') return bad('body must have exactly one key, "event"');
  const b64 = (body as { event: unknown }).event;
  if (typeof b64 !== 'string' || b64.length === 0) return bad('event must be a non-empty base64 string');
  if (b64.length > base64Length(maxBytes)) return tooLarge;
  if (b64.length % 4 !== 0 || !BASE64_RE.test(b64)) return bad('event is not padded base64');
  const buf = Buffer.from(b64, 'base64');
  if (buf.toString('base64') !== b64) return bad('event is not canonical base64');
  if (buf.byteLength > maxBytes) return tooLarge;
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
