/**
 * GET /api/status and GET /api/peers: what a node says about itself and the peers it knows. The node fills a
 * StatusProvider (its identity, listen addresses, span, and the liveness the heartbeat tracker computes); this
 * module only defines the shapes, the JSON schemas (responses are serialised through them, so a field the schema
 * does not name never leaves the process) and the routes.
 */
import type { FastifyInstance } from 'fastify';

export interface SpanView {
  start: number;
  /** exclusive */
  end: number;
}

/** alive: a heartbeat within the stale bound; stale: none for a while; dead: none past the dead bound; unknown: never heard. */
export type Liveness = 'alive' | 'stale' | 'dead' | 'unknown';
export const LIVENESS: readonly Liveness[] = ['alive', 'stale', 'dead', 'unknown'];

export interface NodeStatus {
  peerId: string;
  /** Null until the node knows (or has founded) its network. */
  networkId: string | null;
  version: string;
  /** Multiaddrs the node listens on and announces. */
  addresses: string[];
  /** Layers held; null while the node holds none. */
  span: SpanView | null;
  uptimeMs: number;
  /** Counts over the peers the node knows. */
  peers: { known: number; alive: number };
}

export interface PeerStatus {
  peerId: string;
  addresses: string[];
  span: SpanView | null;
  liveness: Liveness;
  /** Unix ms of the last heartbeat or message from the peer; null when never heard from. */
  lastSeenMs: number | null;
}

export interface PeersView {
  peers: PeerStatus[];
}

/** Filled by the node composition; called on every request, so it should read current state, not compute it. */
export interface StatusProvider {
  status(): NodeStatus | Promise<NodeStatus>;
  peers(): PeerStatus[] | Promise<PeerStatus[]>;
}

const spanSchema = {
  anyOf: [
    { type: 'null' },
    {
      type: 'object',
      required: ['start', 'end'],
      additionalProperties: false,
      properties: { start: { type: 'integer' }, end: { type: 'integer' } },
    },
  ],
} as const;

const stringList = { type: 'array', items: { type: 'string' } } as const;

export const nodeStatusSchema = {
  type: 'object',
  required: ['peerId', 'networkId', 'version', 'addresses', 'span', 'uptimeMs', 'peers'],
  additionalProperties: false,
  properties: {
    peerId: { type: 'string' },
    networkId: { type: ['string', 'null'] },
    version: { type: 'string' },
    addresses: stringList,
    span: spanSchema,
    uptimeMs: { type: 'integer' },
    peers: {
      type: 'object',
      required: ['known', 'alive'],
      additionalProperties: false,
      properties: { known: { type: 'integer' }, alive: { type: 'integer' } },
    },
  },
} as const;

export const peerStatusSchema = {
  type: 'object',
  required: ['peerId', 'addresses', 'span', 'liveness', 'lastSeenMs'],
  additionalProperties: false,
  properties: {
    peerId: { type: 'string' },
    addresses: stringList,
    span: spanSchema,
    liveness: { type: 'string', enum: LIVENESS },
    lastSeenMs: { type: ['integer', 'null'] },
  },
} as const;

export const peersViewSchema = {
  type: 'object',
  required: ['peers'],
  additionalProperties: false,
  properties: { peers: { type: 'array', items: peerStatusSchema } },
} as const;

export function registerStatusRoutes(app: FastifyInstance, provider: StatusProvider): void {
  app.get('/api/status', { schema: { response: { 200: nodeStatusSchema } } }, async () => provider.status());
  app.get('/api/peers', { schema: { response: { 200: peersViewSchema } } }, async (): Promise<PeersView> => ({ peers: await provider.peers() }));
}
