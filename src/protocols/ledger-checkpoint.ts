/**
 * Ledger finality on the wire (issue 11 §3, docs/PROTOCOL.md "## Ledger checkpoints"):
 *
 *   votes     gossip topic /neuroshard/<networkId>/ledger-checkpoint/1: one committee member's signature over a
 *             checkpoint body (JSON, at most MAX_CHECKPOINT_BYTES). The topic validator rejects what does not parse
 *             or whose signature does not verify (the forwarder loses score) and ignores, unrelayed, votes that
 *             the node's vote check refuses (not a committee member, an old sequence number).
 *   RPCs      ledger-checkpoints/1.0.0: the finalized checkpoints after a sequence number (at most 16 a call);
 *             ledger-snapshot/1.0.0: a page of the state rows at the serving node's latest checkpoint (at most
 *             2,048 rows and 4 MiB); ledger-account/1.0.0: what the serving node knows of one account's proofs
 *             (next proof nonce, last proof epoch), which a node restored from its mnemonic asks before it signs;
 *             ledger-genesis/1.0.0: the serving node's genesis key (or null while it knows none), which a joiner
 *             without one adopts on first use (node/genesis-key.ts).
 *
 * The messages are JSON with field checks at the boundary (checkpoint.ts parsers); everything received is verified
 * again by the caller before it changes anything (signatures, chain, quorum, the snapshot's hash).
 */
import { checkpointFromJson, checkpointPayload, checkpointToJson, bodyFromJson, CHECKPOINT_DOMAIN, MAX_CHECKPOINT_BYTES, sigsFromJson, type CheckpointBody, type CheckpointSignature, type SignedCheckpoint } from '../ledger/checkpoint.js';
import { verifyDomain } from '../identity/index.js';
import { PENALTY, type PeerScoreTable } from '../p2p/peer-score.js';
import type { P2PNetwork, PubSubMessage, ValidationResult } from '../p2p/types.js';
import type { AbortOptions } from '../util/abort.js';
import { fromHex } from '../util/bytes.js';
import { errorMessage, NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { topicId } from './ids.js';
import type { MessageCodec, UnaryMethod } from './rpc/method.js';
import type { RpcNode } from './rpc/service.js';

export const CHECKPOINTS_PER_CALL = 16;
export const SNAPSHOT_ROWS_PER_CALL = 2048;
const MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024;
/** A state row's key and value (row keys are "<table>:<id>"; values canonical JSON records). */
const MAX_ROW_KEY = 128;
const MAX_ROW_VALUE = 16 * 1024;

export function checkpointTopic(networkId: string): string {
  return topicId(networkId, 'ledger-checkpoint');
}

export interface CheckpointVote {
  body: CheckpointBody;
  sig: CheckpointSignature;
}

function malformed(msg: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('RPC_MALFORMED', msg);
}

/** A JSON codec whose decode runs `parse` (which throws on anything out of shape). */
function jsonCodec<T>(parse: (v: unknown) => T, toJson: (v: T) => unknown = (v) => v): MessageCodec<T> {
  return {
    encode: (v) => new TextEncoder().encode(JSON.stringify(toJson(v))),
    decode: (b) => {
      try {
        return parse(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b)));
      } catch (e) {
        throw malformed(errorMessage(e));
      }
    },
  };
}

function obj(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError('not an object');
  return v as Record<string, unknown>;
}

function uint(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TypeError(`${what}: not a non-negative integer`);
  return v;
}

export const ledgerCheckpoints: UnaryMethod<{ after: number }, { checkpoints: SignedCheckpoint[] }> = {
  name: 'ledger-checkpoints',
  version: '1.0.0',
  kind: 'unary',
  request: jsonCodec((v) => ({ after: uint(obj(v).after, 'after') })),
  response: jsonCodec(
    (v) => {
      const l = obj(v).checkpoints;
      if (!Array.isArray(l) || l.length > CHECKPOINTS_PER_CALL) throw new TypeError('checkpoints: not a list of at most 16');
      return { checkpoints: l.map(checkpointFromJson) };
    },
    (v) => ({ checkpoints: v.checkpoints.map(checkpointToJson) }),
  ),
  maxRequestBytes: 256,
  maxResponseBytes: CHECKPOINTS_PER_CALL * MAX_CHECKPOINT_BYTES,
  timeoutMs: 10_000,
  maxInboundStreams: 2,
  maxConcurrent: 16,
};

export const ledgerSnapshot: UnaryMethod<{ seq: number; after: string }, { rows: [string, string][] }> = {
  name: 'ledger-snapshot',
  version: '1.0.0',
  kind: 'unary',
  request: jsonCodec((v) => {
    const o = obj(v);
    if (typeof o.after !== 'string' || o.after.length > MAX_ROW_KEY) throw new TypeError('after: not a row key');
    return { seq: uint(o.seq, 'seq'), after: o.after };
  }),
  response: jsonCodec((v) => {
    const rows = obj(v).rows;
    if (!Array.isArray(rows) || rows.length > SNAPSHOT_ROWS_PER_CALL) throw new TypeError('rows: not a list of at most 2048');
    let prev = '';
    return {
      rows: rows.map((r: unknown) => {
        if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== 'string' || typeof r[1] !== 'string') throw new TypeError('row: not [key, value]');
        if (r[0].length > MAX_ROW_KEY || r[1].length > MAX_ROW_VALUE) throw new TypeError('row: too large');
        if (r[0] <= prev) throw new TypeError('rows: not in ascending key order');
        prev = r[0];
        return [r[0], r[1]] as [string, string];
      }),
    };
  }),
  maxRequestBytes: 512,
  maxResponseBytes: MAX_SNAPSHOT_BYTES,
  timeoutMs: 30_000,
  maxInboundStreams: 2,
  maxConcurrent: 4,
};

export const ledgerAccount: UnaryMethod<{ account: string }, { nextProofNonce: string; lastEpoch: number }> = {
  name: 'ledger-account',
  version: '1.0.0',
  kind: 'unary',
  request: jsonCodec((v) => {
    const a = obj(v).account;
    if (typeof a !== 'string' || !/^[0-9a-f]{66}$/.test(a)) throw new TypeError('account: not a public key');
    return { account: a };
  }),
  response: jsonCodec((v) => {
    const o = obj(v);
    if (typeof o.nextProofNonce !== 'string' || !/^[0-9]{1,20}$/.test(o.nextProofNonce) || BigInt(o.nextProofNonce) > 0xffff_ffff_ffff_ffffn) throw new TypeError('nextProofNonce');
    if (typeof o.lastEpoch !== 'number' || !Number.isSafeInteger(o.lastEpoch) || o.lastEpoch < -1) throw new TypeError('lastEpoch');
    return { nextProofNonce: o.nextProofNonce, lastEpoch: o.lastEpoch };
  }),
  maxRequestBytes: 256,
  maxResponseBytes: 256,
  timeoutMs: 5_000,
  maxInboundStreams: 2,
  maxConcurrent: 32,
};

export const ledgerGenesis: UnaryMethod<Record<string, never>, { genesisKey: string | null }> = {
  name: 'ledger-genesis',
  version: '1.0.0',
  kind: 'unary',
  request: jsonCodec((v) => {
    obj(v);
    return {};
  }),
  response: jsonCodec((v) => {
    const k = obj(v).genesisKey;
    if (k !== null && (typeof k !== 'string' || !/^0[23][0-9a-f]{64}$/.test(k))) throw new TypeError('genesisKey: not a compressed public key or null');
    return { genesisKey: k };
  }),
  maxRequestBytes: 64,
  maxResponseBytes: 256,
  timeoutMs: 5_000,
  maxInboundStreams: 2,
  maxConcurrent: 32,
};

/** What the node serves and checks; node/checkpoint.ts fills it from its ledger. */
export interface CheckpointSource {
  checkpointsAfter(seq: number, limit: number): SignedCheckpoint[];
  snapshotPage(seq: number, after: string, limit: number): [string, string][] | undefined;
  /** Proof nonce and epoch of the signer with this public key (hex). */
  account(publicKeyHex: string): { nextProofNonce: bigint; lastEpoch: number };
  /** Whether to deliver and relay a vote whose signature verified ('ignore': not a member, an old sequence). */
  voteCheck(v: CheckpointVote): ValidationResult;
  /** The network's genesis key this node uses (hex), or undefined while it knows none. */
  genesisKey?(): string | undefined;
}

export function encodeVote(v: CheckpointVote): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ body: (checkpointToJson({ body: v.body, sigs: [] }) as { body: unknown }).body, sig: v.sig }));
}

/** Parses a vote; throws a TypeError when malformed. */
export function decodeVote(b: Uint8Array): CheckpointVote {
  if (b.byteLength > MAX_CHECKPOINT_BYTES) throw new TypeError('vote too large');
  const o = obj(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b)));
  return { body: bodyFromJson(o.body), sig: sigsFromJson([o.sig])[0]! };
}

export class CheckpointP2P {
  readonly topic: string;
  readonly stats = { votesAccepted: 0, votesIgnored: 0, votesRejected: 0 };
  private src: CheckpointSource | undefined;
  private off: (() => void) | undefined;
  private readonly log: Logger;

  constructor(private readonly o: { p2p: P2PNetwork; rpc: RpcNode; networkId: string; scores?: PeerScoreTable; log?: Logger }) {
    this.topic = checkpointTopic(o.networkId);
    this.log = o.log ?? silentLogger;
  }

  /** Registers the RPC handlers and the vote validator, and delivers accepted votes to `onVote`. */
  async start(src: CheckpointSource, onVote: (v: CheckpointVote, from: string) => void): Promise<void> {
    this.src = src;
    const serving = (): CheckpointSource => {
      if (this.src === undefined) throw new NeuroShardError('LEDGER_NOT_SERVING', 'this node serves no ledger', { fault: 'local' });
      return this.src;
    };
    await this.o.rpc.handle(ledgerCheckpoints, (req) => ({ checkpoints: serving().checkpointsAfter(req.after, CHECKPOINTS_PER_CALL) }));
    await this.o.rpc.handle(ledgerSnapshot, (req) => {
      const rows = serving().snapshotPage(req.seq, req.after, SNAPSHOT_ROWS_PER_CALL);
      if (rows === undefined) throw new NeuroShardError('LEDGER_SNAPSHOT_GONE', `no snapshot for checkpoint ${req.seq} here`, { fault: 'peer' });
      // keep the answer under its size limit: cut the page where the bytes run out (the caller asks again after it)
      let bytes = 64;
      let n = 0;
      while (n < rows.length && bytes + rows[n]![0].length + rows[n]![1].length * 2 + 16 < MAX_SNAPSHOT_BYTES) bytes += rows[n]![0].length + rows[n++]![1].length * 2 + 16;
      return { rows: rows.slice(0, n) };
    });
    await this.o.rpc.handle(ledgerAccount, (req) => {
      const a = serving().account(req.account);
      return { nextProofNonce: a.nextProofNonce.toString(), lastEpoch: a.lastEpoch };
    });
    await this.o.rpc.handle(ledgerGenesis, () => ({ genesisKey: serving().genesisKey?.() ?? null }));
    this.o.p2p.setTopicValidator(this.topic, (m) => this.validate(m));
    this.off = this.o.p2p.subscribe(this.topic, (m) => {
      try {
        onVote(decodeVote(m.data), m.from);
      } catch (e) {
        this.log.debug('vote not delivered', { error: errorMessage(e) });
      }
    });
  }

  async stop(): Promise<void> {
    this.off?.();
    this.off = undefined;
    this.src = undefined;
    this.o.p2p.setTopicValidator(this.topic, undefined);
    for (const m of [ledgerCheckpoints, ledgerSnapshot, ledgerAccount, ledgerGenesis]) await this.o.rpc.unhandle(m).catch(() => {});
  }

  private validate(m: PubSubMessage): ValidationResult {
    let v: CheckpointVote;
    try {
      v = decodeVote(m.data);
      if (!verifyDomain(fromHex(v.sig.key), CHECKPOINT_DOMAIN, checkpointPayload(v.body), fromHex(v.sig.sig))) throw new TypeError('bad signature');
    } catch (e) {
      this.stats.votesRejected++;
      this.o.scores?.penalise(m.via, PENALTY.malformed, `checkpoint vote: ${errorMessage(e)}`);
      return 'reject';
    }
    const r = this.src?.voteCheck(v) ?? 'ignore';
    if (r === 'accept') this.stats.votesAccepted++;
    else this.stats.votesIgnored++;
    return r;
  }

  async publishVote(v: CheckpointVote): Promise<void> {
    await this.o.p2p.publish(this.topic, encodeVote(v));
  }

  fetchCheckpoints(peer: string, after: number, opts: AbortOptions = {}): Promise<SignedCheckpoint[]> {
    return this.o.rpc.call(peer, ledgerCheckpoints, { after }, { signal: opts.signal }).then((r) => r.checkpoints);
  }

  async fetchSnapshotPage(peer: string, seq: number, after: string, opts: AbortOptions = {}): Promise<[string, string][]> {
    return (await this.o.rpc.call(peer, ledgerSnapshot, { seq, after }, { signal: opts.signal })).rows;
  }

  /** The peer's genesis key (hex), or undefined when it knows none. */
  async fetchGenesisKey(peer: string, opts: AbortOptions = {}): Promise<string | undefined> {
    return (await this.o.rpc.call(peer, ledgerGenesis, {}, { signal: opts.signal })).genesisKey ?? undefined;
  }

  async fetchAccount(peer: string, publicKeyHex: string, opts: AbortOptions = {}): Promise<{ nextProofNonce: bigint; lastEpoch: number }> {
    const r = await this.o.rpc.call(peer, ledgerAccount, { account: publicKeyHex }, { signal: opts.signal });
    return { nextProofNonce: BigInt(r.nextProofNonce), lastEpoch: r.lastEpoch };
  }
}
