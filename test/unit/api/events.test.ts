/**
 * GET /api/events (the dashboard's live feed) and the dashboard's static files on a real ApiServer: a snapshot then
 * ticks as Server-Sent Events, the subscriber quota (429), the timer stopping when nobody listens, and the page
 * served under its Content-Security-Policy (or 503 when the UI was not built).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DashboardFeed, DashboardSnapshot, DashboardTick } from '../../../src/api/dashboard-types.js';
import { ApiServer } from '../../../src/api/server.js';
import { DASHBOARD_CSP } from '../../../src/api/static.js';
import type { StatusProvider } from '../../../src/api/status.js';
import { waitFor } from '../../../src/util/abort.js';
import { tempDir } from '../../utils/paths.js';

const NO_STATUS: StatusProvider = {
  status: () => ({ peerId: '', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }),
  peers: () => [],
};

function state(at: number): Omit<DashboardSnapshot, 'trainPoints' | 'evalPoints' | 'logs'> {
  return {
    node: {
      peerId: 'p',
      address: 'neuro1x',
      networkId: null,
      version: '0',
      addresses: [],
      span: { start: 0, end: 4 },
      totalLayers: 4,
      engine: 'e',
      memory: { rssBytes: 1, heapUsedBytes: 1, systemTotalBytes: 2, systemFreeBytes: 1 },
      uptimeMs: 0,
      apiUrl: '',
    },
    peers: [],
    coverage: { totalLayers: 4, replicas: [1, 1, 1, 1], source: 'heartbeats' },
    training: { active: true, step: at, targetStep: 10, tokens: 0, tokensPerS: 0, lastLoss: null, lastValLoss: null, outerRounds: null, unigramBaseline: null, paramCount: null },
    wallet: null,
    market: null,
    at,
  };
}

class CountingFeed implements DashboardFeed {
  ticks = 0;
  snapshot(): DashboardSnapshot {
    return { ...state(0), trainPoints: [{ step: 1, loss: 5, tokensPerS: 10, t: 0 }], evalPoints: [], logs: [{ seq: 0, line: 'hello' }] };
  }
  tick(): DashboardTick {
    this.ticks++;
    return { ...state(this.ticks), trainPoints: [{ step: this.ticks + 1, loss: 4, tokensPerS: 10, t: 0 }], evalPoints: [], resetSeries: false, logs: [] };
  }
}

/** Reads SSE events from a fetch Response until `n` have arrived. */
async function readEvents(res: Response, n: number): Promise<{ event: string; data: unknown }[]> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const out: { event: string; data: unknown }[] = [];
  while (out.length < n) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (ev !== undefined && data !== undefined) out.push({ event: ev, data: JSON.parse(data) });
    }
  }
  await reader.cancel();
  return out;
}

describe('GET /api/events', () => {
  it('sends a snapshot, then ticks once per interval to every subscriber, and enforces the subscriber quota', async () => {
    const feed = new CountingFeed();
    const api = new ApiServer({ port: 0 }, { status: NO_STATUS, dashboard: { feed, events: { intervalMs: 50, maxSubscribers: 2 } } });
    const { url } = await api.listen();
    try {
      const a = await fetch(`${url}/api/events`);
      assert.equal(a.status, 200);
      assert.match(a.headers.get('content-type') ?? '', /^text\/event-stream/);
      const b = await fetch(`${url}/api/events`);
      const c = await fetch(`${url}/api/events`);
      assert.equal(c.status, 429, 'a third subscriber is refused');
      assert.equal(((await c.json()) as { error: { code: string } }).error.code, 'too_many_subscribers');
      const [ea, eb] = await Promise.all([readEvents(a, 3), readEvents(b, 3)]);
      for (const evs of [ea, eb]) {
        assert.equal(evs[0]!.event, 'snapshot');
        assert.deepEqual((evs[0]!.data as DashboardSnapshot).logs, [{ seq: 0, line: 'hello' }]);
        assert.equal(evs[1]!.event, 'tick');
        assert.equal(evs[2]!.event, 'tick');
      }
      // both streams are closed: the timer stops, and a new subscriber is let in again
      await waitFor(
        async () => {
          const r = await fetch(`${url}/api/events`);
          const ok = r.status === 200;
          await r.body?.cancel();
          return ok;
        },
        { timeoutMs: 10_000, intervalMs: 50, what: 'a free subscriber slot' },
      );
      await waitFor(() => {
        const before = feed.ticks;
        return new Promise<boolean>((resolve) => setTimeout(() => resolve(feed.ticks === before), 200));
      }, { timeoutMs: 10_000, intervalMs: 10, what: 'the tick timer to stop with no subscriber' });
    } finally {
      await api.close();
    }
  });

  it('refuses requests that do not name the loopback host (DNS rebinding)', async () => {
    const api = new ApiServer({ port: 0 }, { status: NO_STATUS, dashboard: { feed: new CountingFeed() } });
    const { port } = await api.listen();
    try {
      const r = await api.app.inject({ method: 'GET', url: '/api/events', headers: { host: `evil.example:${port}` } });
      assert.equal(r.statusCode, 403);
    } finally {
      await api.close();
    }
  });
});

describe('dashboard static files', () => {
  it('serves the built page and assets under a strict CSP; 404 for unknown assets; 503 when not built', async () => {
    const t = tempDir('ns-ui-');
    try {
      mkdirSync(join(t.dir, 'assets'));
      writeFileSync(join(t.dir, 'index.html'), '<!doctype html><script type="module" src="/assets/main-X.js"></script>');
      writeFileSync(join(t.dir, 'assets', 'main-X.js'), 'console.log(1)');
      const api = new ApiServer({ port: 0 }, { status: NO_STATUS, dashboard: { feed: new CountingFeed(), staticDir: t.dir } });
      await api.listen();
      try {
        const page = await api.app.inject({ method: 'GET', url: '/' });
        assert.equal(page.statusCode, 200);
        assert.equal(page.headers['content-security-policy'], DASHBOARD_CSP);
        assert.match(DASHBOARD_CSP, /script-src 'self'/);
        assert.doesNotMatch(DASHBOARD_CSP, /unsafe-inline|unsafe-eval|https?:/);
        assert.match(String(page.headers['content-type']), /^text\/html/);
        const js = await api.app.inject({ method: 'GET', url: '/assets/main-X.js' });
        assert.equal(js.statusCode, 200);
        assert.match(String(js.headers['content-type']), /^text\/javascript/);
        assert.equal((await api.app.inject({ method: 'GET', url: '/assets/nope.js' })).statusCode, 404);
        assert.equal((await api.app.inject({ method: 'GET', url: '/assets/..%2Findex.html' })).statusCode, 404);
      } finally {
        await api.close();
      }
      const unbuilt = new ApiServer({ port: 0 }, { status: NO_STATUS, dashboard: { feed: new CountingFeed(), staticDir: join(t.dir, 'missing') } });
      await unbuilt.listen();
      try {
        const r = await unbuilt.app.inject({ method: 'GET', url: '/' });
        assert.equal(r.statusCode, 503);
      } finally {
        await unbuilt.close();
      }
    } finally {
      t.cleanup();
    }
  });
});
