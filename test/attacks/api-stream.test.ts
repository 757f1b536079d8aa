/**
 * Attacks on the HTTP API's token streams (the /v1 OpenAI-compatible routes and POST /api/generate), on a real
 * ApiServer listening on 127.0.0.1 with raw TCP clients, over generators that stand in for the node's (they emit
 * tokens as fast as the event loop lets them and stop only when their signal fires, as the node's do).
 *
 * - A stream client that never reads: the routes wrote one event per token without waiting for the socket, so every
 *   token the client asked for was queued in the node's memory (tens of MB here) and the generation (and, on a
 *   route of peers, its KV cache on every hop) ran to its end. Now a stream whose queue passes
 *   MAX_STREAM_BUFFERED_BYTES is cut off and its generation aborted (src/api/stream-budget.ts).
 * - A client that disconnects mid-stream: its generation is aborted (on a route, that frees its sessions on every
 *   hop: router/driver.ts closes them on abort).
 * - Bodies at the size limit: one byte over is a typed 413, never a 500.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ApiServer } from '../../src/api/server.js';
import type { Generator, GenerateListener, GenerateOutput, GenerateParams } from '../../src/api/generate.js';
import type { TextGenerationRequest, TextGenerationResult, TextGenerator, TokenEvent } from '../../src/api/openai/backend.js';
import { createServer } from 'node:http';
import { endWithin, MAX_STREAM_BUFFERED_BYTES } from '../../src/api/stream-budget.js';
import { waitFor } from '../../src/util/abort.js';
import { AbortedError } from '../../src/util/errors.js';
import { tally } from './tally.js';

const STATUS = { status: () => ({ peerId: 'p', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }), peers: () => [] };
/** Text per token and tokens at most: 40 MiB of text in all, far past any socket buffer. */
const PIECE = 4096;
const MAX_TOKENS = 10_240;
/** One flat string: a cumulative text is a slice of it (O(1)), as cheap for the stream as the node's. */
const ALL = 'x'.repeat(PIECE * MAX_TOKENS);

/** Counts what one generation did: tokens emitted, whether its signal fired, whether it ran to its end. */
interface Run {
  emitted: number;
  aborted: boolean;
  finished: boolean;
}

async function flood(signal: AbortSignal, run: Run, emit: (n: number) => void, max = MAX_TOKENS): Promise<number> {
  for (let n = 1; n <= max; n++) {
    if (signal.aborted) {
      run.aborted = true;
      throw new AbortedError('generation aborted');
    }
    emit(n);
    run.emitted = n;
    await new Promise((r) => setImmediate(r));
  }
  run.finished = true;
  return max;
}

class FloodText implements TextGenerator {
  runs: Run[] = [];
  models() {
    return [{ id: 'm1', created: 1_700_000_000, ownedBy: 'neuroshard', contextLength: 1 << 20 }];
  }
  renderChat(): string {
    return 'chat';
  }
  async generate(_model: string, req: TextGenerationRequest, opts: { signal: AbortSignal; onToken?: (e: TokenEvent) => void }): Promise<TextGenerationResult> {
    const run: Run = { emitted: 0, aborted: false, finished: false };
    this.runs.push(run);
    const n = await flood(opts.signal, run, (k) => opts.onToken?.({ token: k, text: ALL.slice(0, k * PIECE) }), req.maxTokens ?? MAX_TOKENS);
    return { text: ALL.slice(0, n * PIECE), completionTokens: n, promptTokens: 1, finishReason: 'length' };
  }
}

class FloodGenerate implements Generator {
  runs: Run[] = [];
  async generate(_p: GenerateParams, l: GenerateListener, signal: AbortSignal): Promise<GenerateOutput> {
    const run: Run = { emitted: 0, aborted: false, finished: false };
    this.runs.push(run);
    const route = [{ peerId: 'p', span: [0, 1] as [number, number] }];
    l.onRoute?.(route);
    const piece = ALL.slice(0, PIECE);
    const n = await flood(signal, run, (k) => l.onToken?.(k, piece));
    return { text: 'x', tokens: Array.from({ length: n }, (_, i) => i), finishReason: 'length', route, failovers: 0 };
  }
}

/** A raw HTTP/1.1 POST; the socket is returned paused (the client reads nothing unless the test resumes it). */
function post(port: number, path: string, body: string, connection: 'keep-alive' | 'close' = 'keep-alive'): Socket {
  const s = connect(port, '127.0.0.1');
  s.pause();
  s.on('error', () => {});
  s.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: ${connection}\r\n\r\n${body}`);
  return s;
}

/** Resolves with everything the server sent once it closes the socket (or the bound passes). */
function readAll(s: Socket, ms = 20_000): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const t = setTimeout(() => resolve(out), ms);
    s.on('data', (d: Buffer) => (out += d.toString('utf8')));
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    s.resume();
  });
}

describe('attacks on the API token streams', () => {
  const text = new FloodText();
  const gen = new FloodGenerate();
  const server = new ApiServer({ port: 0, rateLimitPerMin: 0, maxBodyBytes: 4096 }, { status: STATUS, openai: text, generator: () => gen });
  let port = 0;
  const sockets: Socket[] = [];
  before(async () => {
    port = (await server.listen()).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await server.close();
  });

  const stalled = async (path: string, body: string, runs: Run[], what: string): Promise<Run> => {
    const s = post(port, path, body);
    sockets.push(s);
    await waitFor(() => runs.length > 0, { timeoutMs: 10_000, what: `${what}: the generation started` });
    const run = runs[runs.length - 1]!;
    await waitFor(() => run.aborted || run.finished, { timeoutMs: 45_000, intervalMs: 20, what: `${what}: the generation ended` });
    return run;
  };

  it('a /v1 stream client that never reads: cut off and its generation aborted, not 40 MiB queued', async () => {
    const run = await stalled('/v1/chat/completions', JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'hi' }], stream: true }), text.runs, '/v1');
    const queuedMiB = (run.emitted * PIECE) / 2 ** 20;
    process.stdout.write(`/v1 stalled reader: ${run.emitted} tokens (${queuedMiB.toFixed(1)} MiB) emitted, aborted ${run.aborted}\n`);
    tally('api: /v1 stream to a client that never reads', 1, run.finished ? 1 : 0);
    assert.equal(run.finished, false, `the generation ran to its end: ${queuedMiB.toFixed(1)} MiB written for a client that read nothing`);
    assert.equal(run.aborted, true);
  });

  it('a /api/generate stream client that never reads: cut off and its generation aborted', async () => {
    const run = await stalled('/api/generate', JSON.stringify({ prompt: 'hi', max_tokens: MAX_TOKENS, stream: true }), gen.runs, '/api/generate');
    process.stdout.write(`/api/generate stalled reader: ${run.emitted} tokens emitted, aborted ${run.aborted}\n`);
    tally('api: /api/generate stream to a client that never reads', 1, run.finished ? 1 : 0);
    assert.equal(run.finished, false, 'the generation ran to its end for a client that read nothing');
    assert.equal(run.aborted, true);
  });

  it('a client that reads is served to the end (the cut-off is for a queue past the budget only)', async () => {
    const s = post(port, '/v1/completions', JSON.stringify({ model: 'm1', prompt: 'hi', max_tokens: 400, stream: true }), 'close');
    const body = await readAll(s, 30_000);
    const run = text.runs[text.runs.length - 1]!;
    assert.ok(body.startsWith('HTTP/1.1 200'), body.slice(0, 200));
    assert.ok(body.includes('data: [DONE]'), 'the stream ended with [DONE]');
    assert.equal(run.aborted, false);
    // 400 tokens of 4 KiB: past the budget in all, but a reading client never lets the queue grow to it
    assert.ok(400 * PIECE > MAX_STREAM_BUFFERED_BYTES);
  });

  it('a client that disconnects mid-stream: its generation is aborted at once', async () => {
    let sent = 0;
    let ranOn = 0;
    for (const [path, body, runs] of [
      ['/v1/completions', JSON.stringify({ model: 'm1', prompt: 'hi', max_tokens: MAX_TOKENS, stream: true }), text.runs],
      ['/api/generate', JSON.stringify({ prompt: 'hi', max_tokens: MAX_TOKENS, stream: true }), gen.runs],
    ] as const) {
      const before = runs.length;
      const s = post(port, path, body);
      sockets.push(s);
      await waitFor(() => runs.length > before && runs[runs.length - 1]!.emitted >= 3, { timeoutMs: 10_000, what: `${path}: tokens flowing` });
      s.destroy();
      sent++;
      const run = runs[runs.length - 1]!;
      await waitFor(() => run.aborted || run.finished, { timeoutMs: 30_000, intervalMs: 10, what: `${path}: the generation ended` });
      if (!run.aborted) ranOn++;
    }
    tally('api: generation outliving its client', sent, ranOn);
    assert.equal(ranOn, 0);
  });

  it('an ended stream whose client never reads is closed after the drain deadline, not kept for as long as the client likes', async () => {
    // 16 MiB answered to a client that reads nothing: past the kernel's buffers, so the end cannot finish
    let closedAfter = -1;
    const plain = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('x'.repeat(16 << 20));
      const t0 = Date.now();
      res.on('close', () => (closedAfter = Date.now() - t0));
      endWithin(res, 'data: [DONE]\n\n', 300);
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const addr = plain.address();
    const s = post(typeof addr === 'object' && addr !== null ? addr.port : 0, '/', '{}');
    sockets.push(s);
    try {
      await waitFor(() => closedAfter >= 0, { timeoutMs: 20_000, what: 'the stalled response closed' });
    } finally {
      s.destroy();
      plain.closeAllConnections();
      await new Promise((r) => plain.close(r));
    }
    tally('api: ended stream kept open by a client that never reads', 1, closedAfter < 0 ? 1 : 0);
    assert.ok(closedAfter >= 250, `closed after ${closedAfter} ms, before the deadline`);
  });

  it('bodies at the size limit: the limit itself is parsed, one byte over is a typed 413', async () => {
    const make = (bytes: number): string => {
      const base = JSON.stringify({ model: 'm1', prompt: '' });
      return JSON.stringify({ model: 'm1', prompt: 'y'.repeat(bytes - base.length) });
    };
    const at = make(4096);
    const over = make(4097);
    assert.equal(Buffer.byteLength(at), 4096);
    const r1 = await readAll(post(port, '/v1/completions', at, 'close'), 20_000);
    const r2 = await readAll(post(port, '/v1/completions', over, 'close'), 20_000);
    const status = (r: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(r)?.[1] ?? 0);
    tally('api: bodies past the limit', 1, status(r2) === 413 ? 0 : 1);
    assert.notEqual(status(r1), 413, r1.slice(0, 300));
    assert.notEqual(status(r1), 500, r1.slice(0, 300));
    assert.equal(status(r2), 413, r2.slice(0, 300));
    assert.match(r2, /"error"/);
  });
});

describe('one API key against the others (exposed /v1)', () => {
  it('one key cannot hold every generation: its fifth concurrent stream is a typed 429, another key is still served', async () => {
    const { createApiKey } = await import('../../src/api/keys.js');
    const { MAX_IN_FLIGHT_PER_KEY } = await import('../../src/api/openai/access.js');
    const { tempDir } = await import('../utils/paths.js');
    const dir = tempDir('neuroshard-attack-keys-');
    const a = createApiKey(dir.dir, { name: 'a' }).key;
    const b = createApiKey(dir.dir, { name: 'b' }).key;
    // generations that emit a token and then run until their client goes away (long streams)
    let running = 0;
    const hold: TextGenerator = {
      models: () => [{ id: 'm1', created: 1_700_000_000, ownedBy: 'neuroshard', contextLength: 1 << 20 }],
      renderChat: () => 'chat',
      generate: async (_m, _r, opts) => {
        running++;
        try {
          opts.onToken?.({ token: 1, text: 'x' });
          await new Promise((_, reject) => opts.signal.addEventListener('abort', () => reject(new AbortedError('client gone')), { once: true }));
          throw new AbortedError('unreachable');
        } finally {
          running--;
        }
      },
    };
    const api = new ApiServer({ port: 0, host: '0.0.0.0', rateLimitPerMin: 0 }, { status: STATUS, openai: hold, dataDir: dir.dir });
    const port = (await api.listen()).port;
    const open: Socket[] = [];
    const streamAs = (key: string): Socket => {
      const body = JSON.stringify({ model: 'm1', prompt: 'hi', max_tokens: 100, stream: true });
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write(`POST /v1/completions HTTP/1.1\r\nHost: node.example\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      open.push(s);
      return s;
    };
    const firstBytes = (s: Socket): Promise<string> => new Promise((resolve) => s.once('data', (d: Buffer) => resolve(d.toString('utf8'))));
    try {
      const heads: Promise<string>[] = [];
      for (let i = 0; i < MAX_IN_FLIGHT_PER_KEY; i++) heads.push(firstBytes(streamAs(a)));
      for (const h of await Promise.all(heads)) assert.match(h, /^HTTP\/1\.1 200/);
      await waitFor(() => running === MAX_IN_FLIGHT_PER_KEY, { timeoutMs: 10_000, what: 'key a\'s streams running' });
      const extra = await firstBytes(streamAs(a));
      const other = await firstBytes(streamAs(b));
      tally('api: one key holding every generation slot', 1, /^HTTP\/1\.1 200/.test(extra) ? 1 : 0);
      assert.match(extra, /^HTTP\/1\.1 429/, extra.slice(0, 200));
      assert.match(extra, /rate_limit_exceeded/);
      assert.match(other, /^HTTP\/1\.1 200/, 'another key is served');
      // key a's streams end (their clients go): its places come back
      for (const s of open.splice(0, MAX_IN_FLIGHT_PER_KEY)) s.destroy();
      await waitFor(() => running === 1, { timeoutMs: 10_000, what: 'key a\'s generations aborted' });
      assert.match(await firstBytes(streamAs(a)), /^HTTP\/1\.1 200/);
    } finally {
      for (const s of open) s.destroy();
      await api.close();
      dir.cleanup();
    }
  });
});
