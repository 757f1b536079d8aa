/**
 * The node's HTTP endpoint (fastify). By default it listens on the loopback interface only and answers only requests
 * whose Host header names the loopback (so a web page cannot reach it through DNS rebinding). It serves the status,
 * ledger (wallet events in, ledger status out), layers, generate, training and dashboard event routes under /api,
 * the dashboard's static files, and, when the node gives a TextGenerator, the OpenAI-compatible routes under /v1
 * (openai/routes.ts).
 *
 * Exposed (`host` not a loopback address, `--api-host`): the /v1 routes then answer any host but require an API key
 * (openai/access.ts, keys.ts); the /api routes still answer only requests from this machine that name the loopback.
 * CORS headers are sent only for the origins listed in `corsOrigins` (none by default).
 *
 * Errors are {"error": {"code", "message"}}, as on the tracker; the /v1 routes use OpenAI's error shape.
 */
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { ConfigError, InvalidArgumentError } from '../util/errors.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { ApiKeyStore } from './keys.js';
import { registerLayersRoutes, type LayersProvider } from './layers.js';
import { registerGenerateRoutes, type GenerateDefaults, type Generator } from './generate.js';
import { registerLedgerRoutes, type LedgerSubmitter } from './ledger.js';
import { openAiAccess } from './openai/access.js';
import type { TextGenerator } from './openai/backend.js';
import { registerOpenAiRoutes } from './openai/routes.js';
import { RateLimiter } from './rate-limit.js';
import { registerStatusRoutes, type StatusProvider } from './status.js';
import { registerEventRoutes, type DashboardFeed, type EventStreamOptions } from './events.js';
import { registerStaticRoutes } from './static.js';
import { registerTrainingRoutes, type TrainingProvider } from './training.js';

export interface ApiServerOptions {
  /** 0 picks a free port. */
  port: number;
  /** 127.0.0.1 (default) or ::1; any other address exposes the /v1 routes behind API keys. */
  host: string;
  /** Origins (scheme://host[:port]) that browsers may call from; empty = no CORS headers. */
  corsOrigins: string[];
  /** /v1 requests per minute per API key (all local callers share one budget when keys are off); 0 = unlimited. */
  rateLimitPerMin: number;
  /** Largest /v1 request body (bytes). */
  maxBodyBytes: number;
  /** Longest a request may take to arrive whole, headers and body (ms): then 408 and the connection closes. */
  requestTimeoutMs: number;
}

export const API_DEFAULTS: ApiServerOptions = { port: 8000, host: '127.0.0.1', corsOrigins: [], rateLimitPerMin: 60, maxBodyBytes: 1 << 20, requestTimeoutMs: 30_000 };

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1']);
const ALLOWED_HOST_HEADER = /^(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?$/i;

export interface ApiServerModules {
  status: StatusProvider;
  /** The node's ledger: POST /api/ledger/events and GET /api/ledger/status exist only when given. */
  ledger?: LedgerSubmitter;
  /** The OpenAI-compatible routes under /v1 exist only when given. */
  openai?: TextGenerator;
  /** Where API keys live (required when the server is exposed). */
  dataDir?: string;
  /** The layer pool: GET /api/layers exists only when given. */
  layers?: LayersProvider;
  /** Text generation: POST /api/generate exists only when given (asked per request; undefined answers 503). */
  generator?: () => Generator | undefined;
  /** POST /api/generate's values for fields a request leaves out, before its own (the model's generation_config.json). */
  generateDefaults?: GenerateDefaults;
  logger?: Logger;
  /** Unix ms, for rate limits (tests). */
  now?: () => number;
  /** The dashboard: GET /api/events (live feed) and, with `staticDir`, the page at / (events.ts, static.ts). */
  dashboard?: { feed: DashboardFeed; staticDir?: string; events?: Partial<EventStreamOptions> };
  /** GET /api/training exists only when given. */
  training?: TrainingProvider;
}

export class ApiServer {
  readonly app: FastifyInstance;
  readonly opts: ApiServerOptions;
  private readonly log: Logger;
  private closed = false;
  /** True when bound beyond the loopback (API keys required on /v1). */
  readonly exposed: boolean;

  constructor(opts: Partial<ApiServerOptions>, modules: ApiServerModules) {
    this.opts = { ...API_DEFAULTS, ...opts };
    if (!Number.isInteger(this.opts.port) || this.opts.port < 0 || this.opts.port > 65535) throw new InvalidArgumentError('api port must be in 0..65535');
    this.exposed = !LOOPBACK_HOSTS.has(this.opts.host);
    if (this.exposed && isIP(this.opts.host) === 0) throw new InvalidArgumentError(`the API host must be an IP address, not ${this.opts.host.slice(0, 100)}`);
    if (this.exposed && modules.dataDir === undefined) throw new InvalidArgumentError('an exposed API needs the data dir that holds its API keys');
    this.log = modules.logger ?? silentLogger;
    // Schemas validate strictly: no type coercion, no silent dropping of unknown fields (the /v1 bodies rely on it).
    // requestTimeout bounds receiving a request, not a streamed answer. Given to Node's server at its creation too
    // (`http`): Node 20 decides there whether it checks connections at all, and fastify sets `requestTimeout` on the
    // server only after, so a body sent a byte at a time held its connection for as long as it went on (session 29:
    // 10 s of a 1-byte-per-100-ms body with a 1 s timeout, answered 200; the walkthrough saw a 408 only after 62-89 s
    // with 30 s). The check runs every second, so a 408 comes within the timeout plus a second.
    const requestTimeout = this.opts.requestTimeoutMs;
    this.app = Fastify({
      logger: false,
      bodyLimit: 64 * 1024,
      forceCloseConnections: true,
      requestTimeout,
      http: { requestTimeout, connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(requestTimeout / 4))) },
      clientErrorHandler: clientError,
      ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
    });
    const exposed = this.exposed;
    const cors = new Set(this.opts.corsOrigins);
    this.app.addHook('onRequest', async (req, reply) => {
      const hostOk = ALLOWED_HOST_HEADER.test(req.headers.host ?? '');
      const isV1 = req.url === '/v1' || req.url.startsWith('/v1/') || req.url.startsWith('/v1?');
      if (!exposed || !isV1) {
        // DNS-rebinding protection, and the /api routes serve this machine only even when /v1 is exposed
        if (!hostOk) return sendError(reply, 403, 'forbidden_host', 'requests must name the loopback host');
        if (exposed && !isLoopbackAddress(req.socket.remoteAddress)) return sendError(reply, 403, 'forbidden', 'the /api routes answer this machine only');
      }
      const origin = req.headers.origin;
      if (typeof origin === 'string' && cors.has(origin) && isV1) {
        void reply.header('access-control-allow-origin', origin).header('vary', 'Origin');
        if (req.method === 'OPTIONS') {
          return reply
            .code(204)
            .header('access-control-allow-methods', 'GET, POST, OPTIONS')
            .header('access-control-allow-headers', 'authorization, content-type')
            .header('access-control-max-age', '600')
            .send();
        }
      }
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
    const keys = this.exposed ? new ApiKeyStore(modules.dataDir!) : undefined;
    if (modules.openai !== undefined) {
      registerOpenAiRoutes(this.app, {
        generator: modules.openai,
        maxBodyBytes: this.opts.maxBodyBytes,
        access: openAiAccess({ ...(keys === undefined ? {} : { keys }), limiter: new RateLimiter(modules.now), rateLimitPerMin: this.opts.rateLimitPerMin }),
        log: this.log,
        ...(modules.now === undefined ? {} : { now: modules.now }),
      });
    }
    if (modules.dashboard !== undefined) registerEventRoutes(this.app, modules.dashboard.feed, sendError, modules.dashboard.events);
    if (modules.dashboard?.staticDir !== undefined) registerStaticRoutes(this.app, modules.dashboard.staticDir, sendError);
    if (modules.layers !== undefined) registerLayersRoutes(this.app, modules.layers, sendError);
    if (modules.generator !== undefined) registerGenerateRoutes(this.app, modules.generator, sendError, modules.generateDefaults);
    if (modules.training !== undefined) registerTrainingRoutes(this.app, modules.training, sendError);
  }

  async listen(): Promise<{ host: string; port: number; url: string }> {
    try {
      await this.app.listen({ host: this.opts.host, port: this.opts.port });
    } catch (e) {
      // a second node on one machine with the default port is what a new user meets first: say what to pass
      const code = (e as NodeJS.ErrnoException).code;
      const where = `${this.opts.host}:${this.opts.port}`;
      if (code === 'EADDRINUSE') {
        throw new ConfigError(`cannot serve the API on ${where}: the port is in use (another node on this machine?); pass --api-port with another port, or 0 to pick a free one`, { host: this.opts.host, port: this.opts.port }, 'API_PORT_IN_USE');
      }
      if (code === 'EACCES') {
        throw new ConfigError(`cannot serve the API on ${where}: permission denied (ports below 1024 need privileges); pass --api-port with a port above 1023`, { host: this.opts.host, port: this.opts.port }, 'API_PORT_DENIED');
      }
      if (code === 'EADDRNOTAVAIL') {
        throw new ConfigError(`cannot serve the API on ${where}: no interface of this machine has the address ${this.opts.host} (--api-host)`, { host: this.opts.host, port: this.opts.port }, 'API_HOST_UNAVAILABLE');
      }
      throw e;
    }
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

function isLoopbackAddress(a: string | undefined): boolean {
  return a === '127.0.0.1' || a === '::1' || a === '::ffff:127.0.0.1';
}

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error: { code, message } });
}

/**
 * The answer to a request that never arrived whole (the request timeout) or is not HTTP, written on the socket
 * (fastify's default writes `{"error": "Request Timeout", "statusCode": 408}`, the shape of neither our /api errors
 * nor OpenAI's /v1 ones). This body has both: `{"error": {"message", "type", "param", "code"}}`.
 */
function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // a reset connection is gone: nothing to answer (as fastify's default)
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', 'request_timeout', 'the request did not arrive whole within the request timeout']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'headers_too_large', 'the request headers are too large']
        : [400, 'Bad Request', 'bad_request', 'the request is not valid HTTP'];
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code } });
  if (socket.writable) socket.write(`HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`);
  socket.destroy(err);
}
