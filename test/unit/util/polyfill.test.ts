/**
 * src/util/polyfill.ts fills `Promise.withResolvers` and a global `WebSocket` only where the runtime lacks them
 * (Node 20), and leaves Node 22/24's own untouched. Checked in child processes that start with and without each
 * global on whatever Node runs the tests, then in this process: what libp2p uses of both works.
 *
 * Nothing here imports the polyfill statically, so this process sees the runtime's own globals first.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WebSocket as WsWebSocket, WebSocketServer } from 'ws';
import { REPO_ROOT } from '../../utils/paths.js';

const fromSource = fileURLToPath(import.meta.url).endsWith('.ts');
const polyfillUrl = new URL(`../../../src/util/polyfill.${fromSource ? 'ts' : 'js'}`, import.meta.url).href;
const major = Number(process.versions.node.split('.')[0]);

const runtimeWebSocket = (globalThis as { WebSocket?: unknown }).WebSocket;
const runtimeWithResolvers = (Promise as { withResolvers?: unknown }).withResolvers;

interface ChildReport {
  hadWs: boolean;
  hadWr: boolean;
  wsKept: boolean;
  wrKept: boolean;
  wsIsWsPackage: boolean;
  wrIsFunction: boolean;
}

/** Imports the polyfill in a fresh Node with `flags`, optionally deleting Promise.withResolvers first. */
function child(flags: string[], deleteWithResolvers: boolean): ChildReport {
  const code = `
    ${deleteWithResolvers ? 'delete Promise.withResolvers;' : ''}
    const ws0 = globalThis.WebSocket, wr0 = Promise.withResolvers;
    await import(${JSON.stringify(polyfillUrl)});
    const { WebSocket: WsPkg } = await import('ws');
    console.log(JSON.stringify({
      hadWs: ws0 !== undefined, hadWr: wr0 !== undefined,
      wsKept: globalThis.WebSocket === ws0, wrKept: Promise.withResolvers === wr0,
      wsIsWsPackage: globalThis.WebSocket === WsPkg, wrIsFunction: typeof Promise.withResolvers === 'function',
    }));`;
  const args = [...(fromSource ? ['--import', 'tsx'] : []), ...flags, '--input-type=module', '-e', code];
  const r = spawnSync(process.execPath, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildReport;
}

describe('Node 20 polyfills apply only where the runtime lacks the global', { timeout: 120_000 }, () => {
  it('a runtime with its own WebSocket keeps it (Node 20 with --experimental-websocket, 22 and 24 by default)', () => {
    const r = child(['--experimental-websocket'], false);
    assert.equal(r.hadWs, true);
    assert.equal(r.wsKept, true, 'the runtime WebSocket was replaced');
    assert.equal(r.wsIsWsPackage, false);
  });

  it('a runtime without WebSocket gets the ws package client', () => {
    const r = child(['--no-experimental-websocket'], false);
    assert.equal(r.hadWs, false);
    assert.equal(r.wsIsWsPackage, true);
  });

  it('Promise.withResolvers: the runtime one is kept where it exists (Node 22+), filled in where it does not', () => {
    const native = child([], false);
    assert.equal(native.hadWr, major >= 22, `Node ${process.versions.node} ${major >= 22 ? 'has' : 'lacks'} Promise.withResolvers`);
    if (native.hadWr) assert.equal(native.wrKept, true, 'the runtime Promise.withResolvers was replaced');
    assert.equal(native.wrIsFunction, true);
    const filled = child([], true);
    assert.equal(filled.hadWr, false);
    assert.equal(filled.wrIsFunction, true);
  });

  it('this runtime: globals as expected for its version, and the polyfill leaves them in place', async () => {
    assert.equal(typeof runtimeWebSocket === 'function', major >= 22, `global WebSocket on Node ${process.versions.node}`);
    assert.equal(typeof runtimeWithResolvers === 'function', major >= 22, `Promise.withResolvers on Node ${process.versions.node}`);
    await import(polyfillUrl);
    const g = globalThis as { WebSocket?: unknown };
    if (major >= 22) {
      assert.equal(g.WebSocket, runtimeWebSocket);
      assert.equal((Promise as { withResolvers?: unknown }).withResolvers, runtimeWithResolvers);
    } else {
      assert.equal(g.WebSocket, WsWebSocket);
    }
  });

  it('Promise.withResolvers resolves, rejects and honours subclasses', async () => {
    await import(polyfillUrl);
    // Typed by hand: the project's TypeScript lib (ES2023) predates Promise.withResolvers.
    type WithResolvers = { withResolvers<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } };
    const a = (Promise as unknown as WithResolvers).withResolvers<number>();
    a.resolve(7);
    assert.equal(await a.promise, 7);
    const b = (Promise as unknown as WithResolvers).withResolvers<number>();
    b.reject(new Error('no'));
    await assert.rejects(b.promise, /no/);
    class Sub<T> extends Promise<T> {}
    assert.ok((Sub as unknown as WithResolvers).withResolvers<number>().promise instanceof Sub, 'a subclass gets a subclass instance');
  });

  it('the global WebSocket dials a ws server and carries binary frames as ArrayBuffers (as @libp2p/websockets uses it)', async () => {
    await import(polyfillUrl);
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(server, 'listening');
    server.on('connection', (sock) => sock.on('message', (data, isBinary) => sock.send(data, { binary: isBinary })));
    try {
      const { port } = server.address() as AddressInfo;
      const Ctor = (globalThis as unknown as { WebSocket: typeof globalThis.WebSocket }).WebSocket;
      const ws = new Ctor(`ws://127.0.0.1:${port}`);
      ws.binaryType = 'arraybuffer';
      const opened = new Promise<void>((resolve, reject) => {
        ws.addEventListener('open', () => resolve());
        ws.addEventListener('error', () => reject(new Error('WebSocket error before open')));
      });
      await opened;
      const payload = new Uint8Array(70_000).map((_, i) => (i * 7) & 0xff);
      const reply = new Promise<ArrayBuffer>((resolve) => ws.addEventListener('message', (ev: MessageEvent) => resolve(ev.data as ArrayBuffer)));
      ws.send(payload);
      const got = await reply;
      assert.ok(got instanceof ArrayBuffer, `binary frames arrive as ArrayBuffer, got ${Object.prototype.toString.call(got)}`);
      assert.deepEqual(new Uint8Array(got), payload);
      const closed = new Promise<void>((resolve) => ws.addEventListener('close', () => resolve()));
      ws.close();
      await closed;
    } finally {
      for (const c of server.clients) c.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
