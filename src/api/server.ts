/**
 * The node's local HTTP endpoint (fastify). It listens on the loopback interface only and answers only requests
 * whose Host header names the loopback (so a web page cannot reach it through DNS rebinding). Today it serves the
 * status routes and the ledger routes (ledger.ts: wallet events in, ledger status out); the HTTP API issue adds its
 * routes to the same server.
 *
 * Errors are {"error": {"code", "message"}}, as on the tracker.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { InvalidArgumentError } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { registerLayersRoutes, type LayersProvider } from './layers.js';
import { registerGenerateRoutes, type Generator } from './generate.js';
import { registerLedgerRoutes, type LedgerSubmitter } from './ledger.js';
import { registerStatusRoutes, type StatusProvider } from './status.js';

export interface ApiServerOptions {
  /** 0 picks a free port. */
  port: number;
  /** A loopback address: 127.0.0.1 (default) or ::1. */
  host: string;
}

export const API_DEFAULTS: ApiServerOptions = { port: 8000, host: '127.0.0.1' };

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1']);
const ALLOWED_HOST_HEADER = /^(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?$/i;

export interface ApiServerModules {
  status: StatusProvider;
  /** The node's ledger: POST /api/ledger/events and GET /api/ledger/status exist only when given. */
  ledger?: LedgerSubmitter;
  /** The layer pool: GET /api/layers exists only when given. */
  layers?: LayersProvider;
  /** Text generation: POST /api/generate exists only when given (asked per request; undefined answers 503). */
  generator?: () => Generator | undefined;
  logger?: Logger;
}

export class ApiServer {
  readonly app: FastifyInstance;
  readonly opts: ApiServerOptions;
  private readonly log: Logger;
  private closed = false;

  constructor(opts: Partial<ApiServerOptions>, modules: ApiServerModules) {
    this.opts = { ...API_DEFAULTS, ...opts };
    if (!Number.isInteger(this.opts.port) || this.opts.port < 0 || this.opts.port > 65535) throw new InvalidArgumentError('api port must be in 0..65535');
    if (!LOOPBACK_HOSTS.has(this.opts.host)) throw new InvalidArgumentError(`the local endpoint listens on the loopback only, not ${this.opts.host}`);
    this.log = modules.logger ?? silentLogger;
    this.app = Fastify({ logger: false, bodyLimit: 64 * 1024, forceCloseConnections: true, requestTimeout: 30_000 });
    this.app.addHook('onRequest', async (req, reply) => {
      const host = req.headers.host ?? '';
      if (!ALLOWED_HOST_HEADER.test(host)) return sendError(reply, 403, 'forbidden_host', 'requests must name the loopback host');
    });
    this.app.setErrorHandler((err: FastifyError, req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status === 500) {
        this.log.error('api request failed', { method: req.method, url: req.url.slice(0, 200), err: err.message });
        return sendError(reply, 500, 'internal', 'internal error');
      }
      const code = status === 413 ? 'too_large' : status === 415 ? 'unsupported_media_type' : 'bad_request';
      return sendError(reply, status, code, err.message);
    });
    this.app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]!.slice(0, 100)}`));
    registerStatusRoutes(this.app, modules.status);
    if (modules.ledger !== undefined) registerLedgerRoutes(this.app, modules.ledger, sendError);
    if (modules.layers !== undefined) registerLayersRoutes(this.app, modules.layers, sendError);
    if (modules.generator !== undefined) registerGenerateRoutes(this.app, modules.generator, sendError);
  }

  async listen(): Promise<{ host: string; port: number; url: string }> {
    await this.app.listen({ host: this.opts.host, port: this.opts.port });
    const addr = this.app.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('api server is not listening on a TCP port');
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return { host: addr.address, port: addr.port, url: `http://${host}:${addr.port}` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.app.close();
  }
}

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error: { code, message } });
}
