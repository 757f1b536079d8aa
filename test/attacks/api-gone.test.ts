/**
 * A /v1 client that goes away before its generation starts (session 27 attack pass). The /v1 routes aborted a
 * generation on the request socket's 'close' event, listened to from the moment the generation was called; a socket
 * that had already closed by then (the client sent its request and left while the chat was being formatted, which a
 * TextGenerator may do asynchronously) emits nothing more, so the generation ran to its end for nobody, holding a
 * /v1 place and, on a route of peers, a KV cache on every hop. POST /api/generate did not have this gap
 * (api/closed.ts onceClosed checks for a socket already closed); the /v1 routes now use the same.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { ApiServer } from '../../src/api/server.js';
import type { TextGenerationResult, TextGenerator } from '../../src/api/openai/backend.js';
import { waitFor } from '../../src/util/abort.js';
import { AbortedError } from '../../src/util/errors.js';
import { tally } from './tally.js';

const STATUS = { status: () => ({ peerId: 'p', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }), peers: () => [] };

describe('attack: a /v1 client gone before its generation starts', () => {
  it('the generation is aborted at once, stream or not', async () => {
    /** Resolves the chat formatting of the request waiting in renderChat. */
    let format: (() => void) | undefined;
    const runs: { aborted: boolean; finished: boolean }[] = [];
    const text: TextGenerator = {
      models: () => [{ id: 'm1', created: 1_700_000_000, ownedBy: 'neuroshard', contextLength: 1 << 20 }],
      // formatting that takes a while (a TextGenerator may render asynchronously)
      renderChat: () => new Promise<string>((resolve) => (format = () => resolve('chat'))),
      generate: async (_m, _r, opts): Promise<TextGenerationResult> => {
        const run = { aborted: false, finished: false };
        runs.push(run);
        // a long generation: it ends when its signal fires, or after 5 s
        const ended = await new Promise<boolean>((resolve) => {
          if (opts.signal.aborted) return resolve(true);
          const t = setTimeout(() => resolve(false), 5_000);
          opts.signal.addEventListener('abort', () => (clearTimeout(t), resolve(true)), { once: true });
        });
        if (ended) {
          run.aborted = true;
          throw new AbortedError('client gone');
        }
        run.finished = true;
        return { text: 'x', completionTokens: 1, promptTokens: 1, finishReason: 'length' };
      },
    };
    const api = new ApiServer({ port: 0, rateLimitPerMin: 0 }, { status: STATUS, openai: text });
    const port = (await api.listen()).port;
    const open: Socket[] = [];
    try {
      let ranOn = 0;
      for (const stream of [false, true]) {
        format = undefined;
        const before = runs.length;
        const body = JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'hi' }], stream });
        // the server's end of the connection: its close is what the route must notice
        const serverSide = new Promise<Socket>((r) => api.app.server.once('connection', r));
        const s = connect(port, '127.0.0.1');
        s.on('error', () => {});
        open.push(s);
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        await waitFor(() => format !== undefined, { timeoutMs: 10_000, what: 'the request reached the chat formatting' });
        // the client leaves; the server sees its socket close before the generation starts
        const server = await serverSide;
        const closed = server.destroyed ? Promise.resolve() : new Promise<void>((r) => server.once('close', () => r()));
        s.destroy();
        await closed;
        format!();
        await waitFor(() => runs.length > before, { timeoutMs: 10_000, what: 'the generation started' });
        const run = runs[runs.length - 1]!;
        await waitFor(() => run.aborted || run.finished, { timeoutMs: 10_000, intervalMs: 10, what: 'the generation ended' });
        if (!run.aborted) ranOn++;
      }
      tally('api: /v1 generation for a client gone before it started', 2, ranOn);
      assert.equal(ranOn, 0, `${ranOn} of 2 generations ran to their end for a client that had gone`);
    } finally {
      for (const s of open) s.destroy();
      await api.close();
    }
  });
});
