/**
 * The outer sync's RPCs between the holders of a layer (DiLoCo, src/training/sync.ts decides; node/diloco.ts
 * wires). docs/PROTOCOL.md "## Training: outer sync" lists them:
 *
 *   training-contribution/1.0.0  unary  request: one signed TrainingContribution (training-contribution.ts),
 *                                       response: {"verdict"} (accepted, duplicate, too_early, late, wrong_round,
 *                                       not_holder, not_held, rejected)
 *   training-status/1.0.0        unary  request: {} ; response: the round, phase, members and the state hashes of
 *                                       the last closed rounds, the layers it trains (JSON)
 *   training-layer/1.0.0         unary  request: {"round", "layer"}; response: that layer's state after the round,
 *                                       binary: u32 n ‖ θ (n × f32 LE) ‖ u8 hasMomentum ‖ [momentum (n × f32 LE)]
 *
 * The contribution's own bytes are the message (no protobuf around them): the signed encoding is already a
 * self-delimiting, versioned format. Every JSON body is size-limited and checked field by field.
 */
import { PeerMisbehaviourError } from '../util/errors.js';
import type { MessageCodec, UnaryMethod } from './rpc/method.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Largest contribution message (the per-layer limit, fp32 of the layer plus the envelope, is checked on decode). */
export const MAX_CONTRIBUTION_MESSAGE_BYTES = 64 * MiB;
/** Largest layer state (θ and momentum, fp32): a layer of up to 8 M elements (nano's embedding is 1 M). */
export const MAX_LAYER_STATE_BYTES = 64 * MiB + 16;
export const MAX_STATUS_BYTES = 256 * KiB;
export const MAX_MEMBERS = 1024;
export const MAX_STATUS_LAYERS = 1024;
export const MAX_STATUS_HISTORY = 8;

export const SEND_VERDICTS = ['accepted', 'duplicate', 'too_early', 'late', 'wrong_round', 'not_holder', 'not_held', 'rejected'] as const;
export type WireVerdict = (typeof SEND_VERDICTS)[number];

export interface TrainingStatusMessage {
  round: number;
  phase: 'entering' | 'inner' | 'collecting';
  members: string[];
  closed: { round: number; hashes: Record<string, string> }[];
  /** The round this node entered the outer rounds at (0: it started them; absent from older nodes). */
  entered?: number;
  /** The layers it trains in the rounds (absent from older nodes). */
  layers?: string[];
  /**
   * A pipeline chain stage's last round boundary: the chain step it closed after, the round it begins next (a hop's
   * proposal, a driver's decision) and whether it drives (training/rounds.ts ChainBoundary; absent on a node that
   * trains alone, and from older nodes); `driver`: whose step counter `step` counts (a driver's own id, a hop's
   * driver's; absent from older nodes).
   */
  chain?: { step: number; next: number; drives: boolean; driver?: string };
  /** Inner steps it counted since it started (grows with every step; absent from older nodes). */
  steps?: number;
}

export interface LayerRequest {
  round: number;
  layer: string;
}

export interface LayerStateMessage {
  theta: Float32Array;
  buf: Float32Array | null;
}

function malformed(msg: string): PeerMisbehaviourError {
  return new PeerMisbehaviourError('RPC_MALFORMED', msg);
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function jsonCodec<T>(check: (x: unknown) => T): MessageCodec<T> {
  return {
    encode: (v) => enc.encode(JSON.stringify(v)),
    decode: (b) => {
      let x: unknown;
      try {
        x = JSON.parse(dec.decode(b));
      } catch {
        throw malformed('not JSON');
      }
      return check(x);
    },
  };
}

const bytesCodec: MessageCodec<Uint8Array> = { encode: (v) => v, decode: (b) => b.slice() };

const ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const HEX64 = /^[0-9a-f]{64}$/;

function isRound(x: unknown, min = -1): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= min;
}

function obj(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw malformed(`${what}: not an object`);
  return x as Record<string, unknown>;
}

export function checkStatus(x: unknown): TrainingStatusMessage {
  const o = obj(x, 'training-status');
  if (!isRound(o.round)) throw malformed('training-status.round');
  if (o.phase !== 'entering' && o.phase !== 'inner' && o.phase !== 'collecting') throw malformed('training-status.phase');
  if (!Array.isArray(o.members) || o.members.length > MAX_MEMBERS || !o.members.every((m) => typeof m === 'string' && ID_RE.test(m))) throw malformed('training-status.members');
  if (!Array.isArray(o.closed) || o.closed.length > MAX_STATUS_HISTORY) throw malformed('training-status.closed');
  const closed = o.closed.map((c) => {
    const e = obj(c, 'training-status.closed[]');
    if (!isRound(e.round)) throw malformed('training-status.closed[].round');
    const h = obj(e.hashes, 'training-status.closed[].hashes');
    const keys = Object.keys(h);
    if (keys.length > MAX_STATUS_LAYERS) throw malformed('training-status: too many layers');
    const hashes: Record<string, string> = {};
    for (const k of keys) {
      const v = h[k];
      if (!ID_RE.test(k) || typeof v !== 'string' || !HEX64.test(v)) throw malformed('training-status: bad layer hash');
      hashes[k] = v;
    }
    return { round: e.round as number, hashes };
  });
  if (o.entered !== undefined && !isRound(o.entered, 0)) throw malformed('training-status.entered');
  if (o.steps !== undefined && !isRound(o.steps, 0)) throw malformed('training-status.steps');
  if (o.layers !== undefined && (!Array.isArray(o.layers) || o.layers.length > MAX_STATUS_LAYERS || !o.layers.every((l) => typeof l === 'string' && ID_RE.test(l)))) throw malformed('training-status.layers');
  let chain: TrainingStatusMessage['chain'];
  if (o.chain !== undefined) {
    const c = obj(o.chain, 'training-status.chain');
    if (!isRound(c.step, 0) || !isRound(c.next, 0) || typeof c.drives !== 'boolean') throw malformed('training-status.chain');
    if (c.driver !== undefined && (typeof c.driver !== 'string' || !ID_RE.test(c.driver))) throw malformed('training-status.chain.driver');
    chain = { step: c.step, next: c.next, drives: c.drives, ...(c.driver === undefined ? {} : { driver: c.driver as string }) };
  }
  return {
    round: o.round,
    phase: o.phase,
    members: o.members as string[],
    closed,
    ...(o.entered === undefined ? {} : { entered: o.entered as number }),
    ...(o.layers === undefined ? {} : { layers: o.layers as string[] }),
    ...(chain === undefined ? {} : { chain }),
    ...(o.steps === undefined ? {} : { steps: o.steps as number }),
  };
}

export function checkLayerRequest(x: unknown): LayerRequest {
  const o = obj(x, 'training-layer');
  if (!isRound(o.round) || typeof o.layer !== 'string' || !ID_RE.test(o.layer)) throw malformed('training-layer: bad round or layer');
  return { round: o.round, layer: o.layer };
}

export function encodeLayerState(s: LayerStateMessage): Uint8Array {
  const n = s.theta.length;
  const out = new Uint8Array(4 + 4 * n + 1 + (s.buf === null ? 0 : 4 * n));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, n, true);
  let o = 4;
  for (let i = 0; i < n; i++, o += 4) dv.setFloat32(o, s.theta[i]!, true);
  dv.setUint8(o++, s.buf === null ? 0 : 1);
  if (s.buf !== null) for (let i = 0; i < n; i++, o += 4) dv.setFloat32(o, s.buf[i]!, true);
  return out;
}

export function decodeLayerState(b: Uint8Array): LayerStateMessage {
  if (b.byteLength < 5) throw malformed('training-layer: truncated');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = dv.getUint32(0, true);
  if (b.byteLength < 4 + 4 * n + 1) throw malformed('training-layer: truncated');
  const has = dv.getUint8(4 + 4 * n);
  if ((has !== 0 && has !== 1) || b.byteLength !== 4 + 4 * n + 1 + has * 4 * n) throw malformed('training-layer: bad length');
  const read = (off: number): Float32Array => {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = dv.getFloat32(off + 4 * i, true);
    return x;
  };
  return { theta: read(4), buf: has === 1 ? read(4 + 4 * n + 1) : null };
}

export const trainingContribution: UnaryMethod<Uint8Array, { verdict: WireVerdict }> = {
  name: 'training-contribution',
  version: '1.0.0',
  kind: 'unary',
  request: bytesCodec,
  response: jsonCodec((x) => {
    const o = obj(x, 'training-contribution response');
    if (!SEND_VERDICTS.includes(o.verdict as WireVerdict)) throw malformed('training-contribution: unknown verdict');
    return { verdict: o.verdict as WireVerdict };
  }),
  maxRequestBytes: MAX_CONTRIBUTION_MESSAGE_BYTES,
  maxResponseBytes: 256,
  timeoutMs: 60_000,
  // quota: a peer sends one contribution per layer per round; a few at a time per connection
  maxInboundStreams: 8,
  maxConcurrent: 32,
};

export const trainingStatus: UnaryMethod<Record<string, never>, TrainingStatusMessage> = {
  name: 'training-status',
  version: '1.0.0',
  kind: 'unary',
  request: jsonCodec(() => ({})),
  response: jsonCodec(checkStatus),
  maxRequestBytes: 16,
  maxResponseBytes: MAX_STATUS_BYTES,
  timeoutMs: 10_000,
  maxInboundStreams: 4,
  maxConcurrent: 64,
};

export const trainingLayer: UnaryMethod<LayerRequest, Uint8Array> = {
  name: 'training-layer',
  version: '1.0.0',
  kind: 'unary',
  request: jsonCodec(checkLayerRequest),
  response: bytesCodec,
  maxRequestBytes: 256,
  maxResponseBytes: MAX_LAYER_STATE_BYTES,
  timeoutMs: 60_000,
  maxInboundStreams: 2,
  maxConcurrent: 4,
  validateResponse: (r) => {
    decodeLayerState(r);
  },
};
