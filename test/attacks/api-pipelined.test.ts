/**
 * HTTP/1.1 pipelining against the API's per-request bookkeeping (session 23 review of session 22's code).
 *
 * Node's HTTP server runs the handlers of pipelined requests at once but queues their responses behind the first;
 * when the client's socket dies, a queued ServerResponse never emits 'close' (checked on Node 20: 3 pipelined
 * requests, 1 'close'). Session 22 hung two things on that event:
 * - the /v1 in-flight count per API key (openai/access.ts): each pipelined request that the client abandoned kept
 *   its place for good, so one dropped connection left the key with fewer places until the node restarted (three
 *   of its four places here), two or more with a request at the head left it none;
 * - POST /api/generate's abort on the client going away (generate.ts): a pipelined generation ran to its end for a
 *   client that had gone.
 * Now both also listen to the request's socket closing (whichever comes first, once).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { ApiServer } from '../../src/api/server.js';
import type { Generator, GenerateListener, GenerateOutput, GenerateParams } from '../../src/api/generate.js';
import type { TextGenerator } from '../../src/api/openai/backend.js';
import { waitFor } from '../../src/util/abort.js';
import { AbortedError } from '../../src/util/errors.js';
import { tally } from './tally.js';

const STATUS = { status: () => ({ peerId: 'p', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }), peers: () => [] };

/** Resolves when `signal` aborts (a generation that runs until its client goes away). */
const untilAborted = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => {
    if (signal.aborted) reject(new AbortedError('client gone'));
    else signal.addEventListener('abort', () => reject(new AbortedError('client gone')), { once: true });
  });

function request(path: string, host: string, body: string, key?: string): string {
  const auth = key === undefined ? '' : `Authorization: Bearer ${key}\r\n`;
  return `POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${auth}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

function rawSocket(port: number, open: Socket[]): Socket {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => {});
  open.push(s);
  return s;
}

describe('attack: pipelined requests whose client goes away', () => {
  it('a key whose pipelined requests were dropped with their connection gets all its in-flight places back', async () => {
    const { createApiKey } = await import('../../src/api/keys.js');
    const { MAX_IN_FLIGHT_PER_KEY } = await import('../../src/api/openai/access.js');
    const { tempDir } = await import('../utils/paths.js');
    const dir = tempDir('neuroshard-attack-pipelined-');
    const key = createApiKey(dir.dir, { name: 'a' }).key;
    let running = 0;
    let started = 0;
    const hold: TextGenerator = {
      models: () => [{ id: 'm1', created: 1_700_000_000, ownedBy: 'neuroshard', contextLength: 1 << 20 }],
      renderChat: () => 'chat',
      generate: async (_m, _r, opts) => {
        running++;
        started++;
        try {
          opts.onToken?.({ token: 1, text: 'x' });
          return await untilAborted(opts.signal);
        } finally {
          running--;
        }
      },
    };
    const api = new ApiServer({ port: 0, host: '0.0.0.0', rateLimitPerMin: 0 }, { status: STATUS, openai: hold, dataDir: dir.dir });
    const port = (await api.listen()).port;
    const open: Socket[] = [];
    const body = (stream: boolean): string => JSON.stringify({ model: 'm1', prompt: 'hi', max_tokens: 100, stream });
    const firstBytes = (s: Socket): Promise<string> => new Promise((resolve) => s.once('data', (d: Buffer) => resolve(d.toString('utf8'))));
    try {
      // MAX_IN_FLIGHT_PER_KEY requests pipelined on one connection (all four handlers run), then the client goes away
      const s = rawSocket(port, open);
      s.write(Array.from({ length: MAX_IN_FLIGHT_PER_KEY }, () => request('/v1/completions', 'node.example', body(false), key)).join(''));
      await waitFor(() => started === MAX_IN_FLIGHT_PER_KEY, { timeoutMs: 10_000, what: 'the pipelined generations started' });
      s.destroy();
      await waitFor(() => running === 0, { timeoutMs: 10_000, what: 'the pipelined generations aborted' });
      // the key's places: it may hold MAX_IN_FLIGHT_PER_KEY streams at once again
      const heads = await Promise.all(Array.from({ length: MAX_IN_FLIGHT_PER_KEY }, () => {
        const c = rawSocket(port, open);
        c.write(request('/v1/completions', 'node.example', body(true), key));
        return firstBytes(c);
      }));
      const refused = heads.filter((h) => !/^HTTP\/1\.1 200/.test(h)).length;
      tally('api: in-flight places kept by dropped pipelined requests', MAX_IN_FLIGHT_PER_KEY, refused);
      assert.equal(refused, 0, `${refused} of the key's ${MAX_IN_FLIGHT_PER_KEY} places stayed taken after its pipelined requests' connection closed: ${heads.find((h) => !/^HTTP\/1\.1 200/.test(h))?.slice(0, 300) ?? ''}`);
    } finally {
      for (const s of open) s.destroy();
      await api.close();
      dir.cleanup();
    }
  });

  it('POST /api/generate: every pipelined generation is aborted when its client goes away', async () => {
    const runs: { aborted: boolean }[] = [];
    const gen: Generator = {
      async generate(_p: GenerateParams, l: GenerateListener, signal: AbortSignal): Promise<GenerateOutput> {
        const run = { aborted: false };
        runs.push(run);
        l.onRoute?.([{ peerId: 'p', span: [0, 1] }]);
        try {
          return await untilAborted(signal);
        } catch (e) {
          run.aborted = true;
          throw e;
        }
      },
    };
    const api = new ApiServer({ port: 0, rateLimitPerMin: 0 }, { status: STATUS, generator: () => gen });
    const port = (await api.listen()).port;
    const open: Socket[] = [];
    try {
      let sent = 0;
      let ranOn = 0;
      for (const stream of [false, true]) {
        const before = runs.length;
        const s = rawSocket(port, open);
        const one = request('/api/generate', `127.0.0.1:${port}`, JSON.stringify({ prompt: 'hi', max_tokens: 100, stream }));
        s.write(one + one + one);
        await waitFor(() => runs.length === before + 3, { timeoutMs: 10_000, what: 'the pipelined generations started' });
        s.destroy();
        const mine = runs.slice(before);
        // bounded: an aborted generation ends at once; one left running is still running when the bound passes
        await waitFor(() => mine.every((r) => r.aborted), { timeoutMs: 3_000, intervalMs: 10, what: 'the pipelined generations aborted' }).catch(() => {});
        sent += mine.length;
        ranOn += mine.filter((r) => !r.aborted).length;
      }
      tally('api: /api/generate outliving its pipelined client', sent, ranOn);
      assert.equal(ranOn, 0, `${ranOn} of ${sent} pipelined generations kept running after their client went away`);
    } finally {
      for (const s of open) s.destroy();
      await api.close();
    }
  });
});
