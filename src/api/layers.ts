/**
 * GET /api/layers: which peers hold each layer of the network's model, as this node sees them (heartbeats for
 * liveness, holder records for speed; itself included when it holds the layer), the smallest number of live
 * (alive or stale) holders over all layers, and this node's model hash (empty while it holds no layers): the one its
 * heartbeats and holder record announce, which on a training node moves with its weights (refreshed every 20 s).
 *
 *   {"layers": [{"layer": i, "holders": [{"peerId", "state", "tokensPerSec"}]}], "replicasMin": n, "modelHash": "…"}
 *
 * The node fills a LayersProvider from its layer pool; until the pool has started the route answers 503.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { NeuroShardError } from '../util/errors.js';

export type HolderState = 'alive' | 'stale' | 'dead';
export const HOLDER_STATES: readonly HolderState[] = ['alive', 'stale', 'dead'];

export interface LayersView {
  layers: { layer: number; holders: { peerId: string; state: HolderState; tokensPerSec: number }[] }[];
  replicasMin: number;
  modelHash: string;
}

export interface LayersProvider {
  /** Undefined while the pool is not running yet. */
  layers(): LayersView | undefined;
}

export const layersViewSchema = {
  type: 'object',
  required: ['layers', 'replicasMin', 'modelHash'],
  additionalProperties: false,
  properties: {
    layers: {
      type: 'array',
      items: {
        type: 'object',
        required: ['layer', 'holders'],
        additionalProperties: false,
        properties: {
          layer: { type: 'integer' },
          holders: {
            type: 'array',
            items: {
              type: 'object',
              required: ['peerId', 'state', 'tokensPerSec'],
              additionalProperties: false,
              properties: { peerId: { type: 'string' }, state: { type: 'string', enum: HOLDER_STATES }, tokensPerSec: { type: 'number' } },
            },
          },
        },
      },
    },
    replicasMin: { type: 'integer' },
    modelHash: { type: 'string' },
  },
} as const;

type SendError = (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;

export function registerLayersRoutes(app: FastifyInstance, provider: LayersProvider, sendError: SendError): void {
  app.get('/api/layers', { schema: { response: { 200: layersViewSchema } } }, async (_req, reply) => {
    const v = provider.layers();
    if (v === undefined) return sendError(reply, 503, 'pool_not_ready', 'the layer pool has not started yet');
    return v;
  });
}

/** Limits of an answer the client accepts. */
const MAX_LAYERS = 65_536;
const MAX_HOLDERS = 10_000;

function bad(message: string): NeuroShardError {
  return new NeuroShardError('API_BAD_RESPONSE', `GET /api/layers: ${message}`, { fault: 'peer' });
}

/** Strict check of a GET /api/layers answer (the CLI's client). */
export function checkLayersView(v: unknown): LayersView {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('not an object');
  const o = v as Record<string, unknown>;
  if (!Array.isArray(o.layers) || o.layers.length > MAX_LAYERS) throw bad('layers must be a bounded list');
  if (!Number.isSafeInteger(o.replicasMin) || typeof o.modelHash !== 'string' || o.modelHash.length > 128) throw bad('bad replicasMin or modelHash');
  const layers = o.layers.map((l: unknown, i) => {
    if (typeof l !== 'object' || l === null) throw bad(`layers[${i}] is not an object`);
    const x = l as Record<string, unknown>;
    if (!Number.isSafeInteger(x.layer) || !Array.isArray(x.holders) || x.holders.length > MAX_HOLDERS) throw bad(`layers[${i}] is malformed`);
    const holders = x.holders.map((h: unknown, j) => {
      const y = (typeof h === 'object' && h !== null ? h : {}) as Record<string, unknown>;
      if (typeof y.peerId !== 'string' || y.peerId.length > 128 || !HOLDER_STATES.includes(y.state as HolderState) || typeof y.tokensPerSec !== 'number') {
        throw bad(`layers[${i}].holders[${j}] is malformed`);
      }
      return { peerId: y.peerId, state: y.state as HolderState, tokensPerSec: y.tokensPerSec };
    });
    return { layer: x.layer as number, holders };
  });
  return { layers, replicasMin: o.replicasMin as number, modelHash: o.modelHash };
}
