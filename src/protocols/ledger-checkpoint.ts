/**
 * Ledger finality on the wire (issue 11 §3, docs/PROTOCOL.md "## Ledger checkpoints"):
 *
 *   votes     gossip topic /neuroshard/<networkId>/ledger-checkpoint/2: one committee member's signature over a
 *             checkpoint body (at most MAX_CHECKPOINT_BYTES). The topic validator rejects what does not parse
 *             or whose signature does not verify (the forwarder loses score) and ignores, unrelayed, votes that
 *             the node's vote check refuses (not a committee member, an old sequence number).
 *   RPCs      ledger-checkpoints/2.0.0: the finalized checkpoints after a sequence number (at most 16 a call);
 *             ledger-snapshot/2.0.0: a page of the state rows at the serving node's latest checkpoint (at most
 *             2,048 rows and 4 MiB); ledger-account/2.0.0: what the serving node knows of one account's proofs
 *             (next proof nonce, last proof epoch), which a node restored from its mnemonic asks before it signs;
 *             ledger-genesis/2.0.0: the serving node's genesis key (or null while it knows none), which a joiner
 *             without one adopts on first use (node/genesis-key.ts).
 *
 * The messages are protobuf (src/protocols/pb/node.proto; version 2 of each id: version 1 was JSON), decoded with
 * limits on every repeated field and checked field by field at the boundary (the checkpoint.ts parsers, so one set
 * of rules); what a member signs stays the canonical JSON of the body, which the receiver rebuilds from the fields.
 * Everything received is verified again by the caller before it changes anything (signatures, chain, quorum, the
 * snapshot's hash).
 */
import { bodyFromJson, checkpointPayload, CHECKPOINT_DOMAIN, MAX_CHECKPOINT_BYTES, MAX_COMMITTEE, sigsFromJson, type CheckpointBody, type CheckpointSignature, type SignedCheckpoint } from '../ledger/checkpoint.js';
import { verifyDomain } from '../identity/index.js';
import { PENALTY, type PeerScoreTable } from '../p2p/peer-score.js';
import type { P2PNetwork, PubSubMessage, ValidationResult } from '../p2p/types.js';
import type { AbortOptions } from '../util/abort.js';
import { fromHex, toHex } from '../util/bytes.js';
import { errorMessage, NeuroShardError, PeerMisbehaviourError } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { topicId } from './ids.js';
import * as pb from './pb/node.js';
import type { MessageCodec, UnaryMethod } from './rpc/method.js';
import type { RpcNode } from './rpc/service.js';

export const CHECKPOINTS_PER_CALL = 16;
export const SNAPSHOT_ROWS_PER_CALL = 2048;
export const MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024;
/** A state row's key and value (row keys are "<table>:<id>"; values canonical JSON records), in characters. */
export const MAX_ROW_KEY = 128;
export const MAX_ROW_VALUE = 16 * 1024;
/** Protocol version of the checkpoint RPCs (1.0.0 was JSON; 2.0.0 is protobuf, src/protocols/pb/node.proto). */
const VERSION = '2.0.0';

export function checkpointTopic(networkId: string): string {
  return topicId(networkId, 'ledger-checkpoint', '2');
}

export interface CheckpointVote {
  body: CheckpointBody;
  sig: CheckpointSignature;
}

function malformed(msg: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('RPC_MALFORMED', msg);
}

/** Decode limits of a signed checkpoint's repeated fields (the committee and its signatures). */
const CHECKPOINT_LIMITS = { body: { committee: MAX_COMMITTEE }, sigs: MAX_COMMITTEE };

/**
 * A protobuf codec between the wire message W and the domain value T: `fromPb` bounds and checks every field and
 * throws on anything out of shape (the RPC layer turns that into RPC_MALFORMED, the peer's fault).
 */
function pbCodec<W, T>(
  ns: { encode(v: Partial<W>): Uint8Array; decode(b: Uint8Array, opts?: { limits?: never }): W },
  toPb: (v: T) => Partial<W>,
  fromPb: (w: W) => T,
  limits?: object,
): MessageCodec<T> {
  return {
    encode: (v) => ns.encode(toPb(v)),
    decode: (b) => {
      try {
        return fromPb(ns.decode(b, limits === undefined ? undefined : ({ limits } as { limits: never })));
      } catch (e) {
        throw malformed(errorMessage(e));
      }
    },
  };
}

/** A uint64 field as a safe JS number. */
function safeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TypeError(`${what}: out of range`);
  return Number(v);
}

function hexOf(b: Uint8Array, bytes: number, what: string): string {
  if (b.byteLength !== bytes) throw new TypeError(`${what}: ${b.byteLength} bytes, not ${bytes}`);
  return toHex(b);
}

export function bodyToPb(b: CheckpointBody): pb.CheckpointBody {
  return {
    networkId: b.networkId,
    seq: BigInt(b.seq),
    cutMs: BigInt(b.cutMs),
    height: BigInt(b.height),
    stateHash: fromHex(b.stateHash) as Uint8Array<ArrayBuffer>,
    eventsRoot: fromHex(b.eventsRoot) as Uint8Array<ArrayBuffer>,
    prev: fromHex(b.prev) as Uint8Array<ArrayBuffer>,
    committee: b.committee.map((m) => ({ account: fromHex(m.account) as Uint8Array<ArrayBuffer>, stake: m.stake.toString() })),
  };
}

/** The body of a received checkpoint or vote, checked field by field (bodyFromJson's rules: one set of rules). */
export function bodyFromPb(w: pb.CheckpointBody | undefined): CheckpointBody {
  if (w === undefined) throw new TypeError('checkpoint: no body');
  return bodyFromJson({
    networkId: w.networkId,
    seq: safeNumber(w.seq, 'seq'),
    cutMs: safeNumber(w.cutMs, 'cutMs'),
    height: safeNumber(w.height, 'height'),
    stateHash: hexOf(w.stateHash, 32, 'stateHash'),
    eventsRoot: hexOf(w.eventsRoot, 32, 'eventsRoot'),
    prev: hexOf(w.prev, 32, 'prev'),
    committee: w.committee.map((m) => ({ account: hexOf(m.account, 20, 'committee account'), stake: m.stake })),
  });
}

function sigToPb(s: CheckpointSignature): pb.CheckpointSig {
  return { key: fromHex(s.key) as Uint8Array<ArrayBuffer>, sig: fromHex(s.sig) as Uint8Array<ArrayBuffer> };
}

function sigsFromPb(l: pb.CheckpointSig[]): CheckpointSignature[] {
  return sigsFromJson(l.map((s) => ({ key: hexOf(s.key, 33, 'signer key'), sig: hexOf(s.sig, 64, 'signature') })));
}

export function checkpointToPb(cp: SignedCheckpoint): pb.SignedCheckpoint {
  return { body: bodyToPb(cp.body), sigs: cp.sigs.map(sigToPb) };
}

export function checkpointFromPb(w: pb.SignedCheckpoint): SignedCheckpoint {
  return { body: bodyFromPb(w.body), sigs: sigsFromPb(w.sigs) };
}

export const ledgerCheckpoints: UnaryMethod<{ after: number }, { checkpoints: SignedCheckpoint[] }> = {
  name: 'ledger-checkpoints',
  version: VERSION,
  kind: 'unary',
  request: pbCodec(pb.LedgerCheckpointsRequest, (v: { after: number }) => ({ after: BigInt(v.after) }), (w) => ({ after: safeNumber(w.after, 'after') })),
  response: pbCodec(
    pb.LedgerCheckpointsResponse,
    (v: { checkpoints: SignedCheckpoint[] }) => ({ checkpoints: v.checkpoints.map(checkpointToPb) }),
    (w) => ({ checkpoints: w.checkpoints.map(checkpointFromPb) }),
    { checkpoints: CHECKPOINTS_PER_CALL, checkpoints$: CHECKPOINT_LIMITS },
  ),
  maxRequestBytes: 64,
  maxResponseBytes: CHECKPOINTS_PER_CALL * MAX_CHECKPOINT_BYTES,
  timeoutMs: 10_000,
  maxInboundStreams: 2,
  maxConcurrent: 16,
};

/** Checks a received snapshot page: bounded rows in strictly ascending key order. */
function rowsFromPb(rows: pb.SnapshotRow[]): [string, string][] {
  let prev = '';
  return rows.map((r) => {
    if (r.key.length === 0 || r.key.length > MAX_ROW_KEY || r.value.length > MAX_ROW_VALUE) throw new TypeError('row: empty key or too large');
    if (r.key <= prev) throw new TypeError('rows: not in ascending key order');
    prev = r.key;
    return [r.key, r.value];
  });
}

export const ledgerSnapshot: UnaryMethod<{ seq: number; after: string }, { rows: [string, string][] }> = {
  name: 'ledger-snapshot',
  version: VERSION,
  kind: 'unary',
  request: pbCodec(
    pb.LedgerSnapshotRequest,
    (v: { seq: number; after: string }) => ({ seq: BigInt(v.seq), after: v.after }),
    (w) => {
      if (w.after.length > MAX_ROW_KEY) throw new TypeError('after: not a row key');
      return { seq: safeNumber(w.seq, 'seq'), after: w.after };
    },
  ),
  response: pbCodec(
    pb.LedgerSnapshotPage,
    (v: { rows: [string, string][] }) => ({ rows: v.rows.map(([key, value]) => ({ key, value })) }),
    (w) => ({ rows: rowsFromPb(w.rows) }),
    { rows: SNAPSHOT_ROWS_PER_CALL },
  ),
  maxRequestBytes: 256,
  maxResponseBytes: MAX_SNAPSHOT_BYTES,
  timeoutMs: 30_000,
  maxInboundStreams: 2,
  maxConcurrent: 4,
};

export const ledgerAccount: UnaryMethod<{ account: string }, { nextProofNonce: string; lastEpoch: number }> = {
  name: 'ledger-account',
  version: VERSION,
  kind: 'unary',
  request: pbCodec(
    pb.LedgerAccountRequest,
    (v: { account: string }) => ({ publicKey: fromHex(v.account) as Uint8Array<ArrayBuffer> }),
    (w) => ({ account: hexOf(w.publicKey, 33, 'public key') }),
  ),
  response: pbCodec(
    pb.LedgerAccountResponse,
    (v: { nextProofNonce: string; lastEpoch: number }) => ({ nextProofNonce: BigInt(v.nextProofNonce), lastEpoch: BigInt(v.lastEpoch) }),
    (w) => {
      if (w.lastEpoch < -1n || w.lastEpoch > BigInt(Number.MAX_SAFE_INTEGER)) throw new TypeError('lastEpoch: out of range');
      return { nextProofNonce: w.nextProofNonce.toString(), lastEpoch: Number(w.lastEpoch) };
    },
  ),
  maxRequestBytes: 64,
  maxResponseBytes: 64,
  timeoutMs: 5_000,
  maxInboundStreams: 2,
  maxConcurrent: 32,
};

export const ledgerGenesis: UnaryMethod<Record<string, never>, { genesisKey: string | null }> = {
  name: 'ledger-genesis',
  version: VERSION,
  kind: 'unary',
  request: pbCodec(pb.LedgerGenesisRequest, () => ({}), () => ({})),
  response: pbCodec(
    pb.LedgerGenesisResponse,
    (v: { genesisKey: string | null }) => (v.genesisKey === null ? {} : { genesisKey: fromHex(v.genesisKey) as Uint8Array<ArrayBuffer> }),
    (w) => {
      if (w.genesisKey === undefined) return { genesisKey: null };
      const k = hexOf(w.genesisKey, 33, 'genesisKey');
      if (!/^0[23]/.test(k)) throw new TypeError('genesisKey: not a compressed public key');
      return { genesisKey: k };
    },
  ),
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
  return pb.CheckpointVote.encode({ body: bodyToPb(v.body), sig: sigToPb(v.sig) });
}

/** Parses a vote; throws a TypeError when malformed. */
export function decodeVote(b: Uint8Array): CheckpointVote {
  if (b.byteLength > MAX_CHECKPOINT_BYTES) throw new TypeError('vote too large');
  const w = pb.CheckpointVote.decode(b, { limits: { body: { committee: MAX_COMMITTEE } } });
  if (w.sig === undefined) throw new TypeError('vote: no signature');
  return { body: bodyFromPb(w.body), sig: sigsFromPb([w.sig])[0]! };
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
      // keep the answer under its size limit: cut the page where the bytes run out (the caller asks again after
      // it). A row costs its UTF-8 bytes plus at most 12 bytes of protobuf tags and lengths.
      let bytes = 16;
      let n = 0;
      for (; n < rows.length; n++) {
        const add = Buffer.byteLength(rows[n]![0]) + Buffer.byteLength(rows[n]![1]) + 12;
        if (bytes + add > MAX_SNAPSHOT_BYTES) break;
        bytes += add;
      }
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
