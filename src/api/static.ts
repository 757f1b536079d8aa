/**
 * The dashboard's static files (built at install time by scripts/build-ui.mjs into dist/ui/), served at `/` and
 * `/assets/<file>` under a strict Content-Security-Policy: scripts, styles and connections only from this origin,
 * no inline script or style, no framing, no plugins. Nothing is fetched from any other host (no CDN), so the
 * dashboard works offline.
 *
 * The files are read once at start-up into memory (a few hundred KB) and looked up by exact name: a request path
 * never reaches the file system, so there is no traversal to defend against.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
};

const MAX_ASSET_BYTES = 4 << 20;
const MAX_ASSETS = 64;

type SendError = (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;

interface Asset {
  body: Buffer;
  type: string;
}

/** Reads dist/ui/ (index.html + assets/); undefined when the UI was not built. */
export function loadDashboardAssets(dir: string): Map<string, Asset> | undefined {
  let index: Buffer;
  try {
    index = readFileSync(join(dir, 'index.html'));
  } catch {
    return undefined;
  }
  const assets = new Map<string, Asset>([['index.html', { body: index, type: TYPES['.html']! }]]);
  let names: string[] = [];
  try {
    names = readdirSync(join(dir, 'assets'));
  } catch {
    names = [];
  }
  for (const name of names.slice(0, MAX_ASSETS)) {
    const type = TYPES[extname(name)];
    const path = join(dir, 'assets', name);
    if (type === undefined || !statSync(path).isFile() || statSync(path).size > MAX_ASSET_BYTES) continue;
    assets.set(`assets/${name}`, { body: readFileSync(path), type });
  }
  return assets;
}

export function registerStaticRoutes(app: FastifyInstance, dir: string, sendError: SendError): void {
  const assets = loadDashboardAssets(dir);
  const send = (reply: FastifyReply, key: string): FastifyReply => {
    const a = assets?.get(key);
    if (a === undefined) {
      if (assets === undefined) return sendError(reply, 503, 'dashboard_not_built', 'the dashboard was not built: run npm run build:ui');
      return sendError(reply, 404, 'not_found', 'no such file');
    }
    return reply
      .header('content-security-policy', DASHBOARD_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      // built files carry a content hash in their name; the page itself is always revalidated
      .header('cache-control', key === 'index.html' ? 'no-cache' : 'public, max-age=31536000, immutable')
      .type(a.type)
      .send(a.body);
  };
  app.get('/', async (_req, reply) => send(reply, 'index.html'));
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());
  app.get<{ Params: { file: string } }>('/assets/:file', async (req, reply) => send(reply, `assets/${req.params.file}`));
}
