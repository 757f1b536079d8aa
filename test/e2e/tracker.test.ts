/**
 * The tracker and the status commands as a user runs them: `neuroshard tracker --port 0` in a child process, nodes'
 * tracker clients announcing to it, and `neuroshard status/peers --json` querying a local endpoint.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ApiServer } from '../../src/api/server.js';
import type { NodeStatus, PeerStatus } from '../../src/api/status.js';
import { keyFromPrivate, peerIdFromPublicKey, writeNodeLock } from '../../src/identity/index.js';
import { freshHolderRecord } from '../../src/protocols/holder-record.js';
import { TrackerClient } from '../../src/protocols/tracker-client.js';
import { REPO_ROOT, tempDir } from '../utils/paths.js';

const exec = promisify(execFile);
const BIN = join(REPO_ROOT, 'bin', 'neuroshard.js');

/** Starts `neuroshard tracker` and resolves with its bound port once it prints {"listening": …}. */
async function startTracker(dataDir: string): Promise<{ child: ChildProcess; port: number; stderr: () => string }> {
  const child = spawn(process.execPath, [BIN, 'tracker', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--log-level', 'warn'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tracker did not report its port within 30 s; stderr: ${err}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve((JSON.parse(out.slice(0, nl)) as { listening: { port: number } }).listening.port);
      } catch (e) {
        reject(e as Error);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tracker exited with ${code}; stderr: ${err}`));
    });
  });
  return { child, port, stderr: () => err };
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  return exited;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('neuroshard tracker (child process)', () => {
  it('prints its port, takes announcements, serves them, and stops on SIGTERM', async () => {
    const { dir, cleanup } = tempDir();
    const { child, port, stderr } = await startTracker(dir);
    try {
      const url = `http://127.0.0.1:${port}`;
      const keys = [1, 2, 3].map((i) => keyFromPrivate(new Uint8Array(32).fill(i + 10)));
      const clients = keys.map(
        (k, i) =>
          new TrackerClient(
            { trackers: [url], networkId: 'e2e-net' },
            {
              record: () =>
                freshHolderRecord(
                  k,
                  { networkId: 'e2e-net', multiaddrs: [`/ip4/127.0.0.1/tcp/${9100 + i}`], span: { start: 4 * i, end: 4 * i + 4 }, capacity: { memoryMb: 256, tokensPerSec: 5 } },
                  Date.now(),
                  120_000,
                ),
            },
          ),
      );
      for (const c of clients) assert.deepEqual(await c.announce(url), { ok: true, ttlMs: 60_000 });

      const all = await clients[0]!.fetchPeers();
      assert.deepEqual(all.map((r) => r.peerId).sort(), keys.map((k) => peerIdFromPublicKey(k.publicKey)).sort());
      const layer5 = await clients[0]!.fetchPeers({ layer: 5 });
      assert.deepEqual(layer5.map((r) => r.peerId), [peerIdFromPublicKey(keys[1]!.publicKey)]);

      const forged = { ...layer5[0]!, span: { start: 0, end: 12 } };
      const res = await fetch(`${url}/announce`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(forged) });
      assert.equal(res.status, 401);

      const health = (await (await fetch(`${url}/health`)).json()) as { ok: boolean; entries: number };
      assert.deepEqual([health.ok, health.entries], [true, 3]);
      assert.equal(await stop(child), 0, stderr());
      assert.ok(existsSync(join(dir, 'tracker.db')));
    } finally {
      await stop(child);
      cleanup();
    }
  });

  it('exits 2 on a bad port', async () => {
    const r = await cli(['tracker', '--port', '70000']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--port/);
  });
});

describe('neuroshard status / peers (child process against a local endpoint)', () => {
  const status: NodeStatus = {
    peerId: '16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi',
    networkId: 'e2e-net',
    version: '0.1.0',
    addresses: ['/ip4/127.0.0.1/tcp/9000'],
    span: { start: 0, end: 4 },
    uptimeMs: 5000,
    peers: { known: 1, alive: 1 },
  };
  const peers: PeerStatus[] = [{ peerId: 'peerA', addresses: ['/ip4/127.0.0.1/tcp/9001'], span: { start: 4, end: 8 }, liveness: 'alive', lastSeenMs: 1_700_000_000_000 }];

  it('--json prints what GET /api/status and /api/peers serve; the port comes from --api-port or node.lock', async () => {
    const api = new ApiServer({ port: 0 }, { status: { status: () => status, peers: () => peers } });
    const { port } = await api.listen();
    const { dir, cleanup } = tempDir();
    try {
      const s = await cli(['status', '--json', '--api-port', String(port)]);
      assert.equal(s.code, 0, s.stderr);
      assert.deepEqual(JSON.parse(s.stdout), status);
      const p = await cli(['peers', '--json', '--api-port', String(port)]);
      assert.equal(p.code, 0, p.stderr);
      assert.deepEqual(JSON.parse(p.stdout), { peers });

      // no --api-port: the running node's lock file in the data dir says where it listens
      const release = writeNodeLock(dir, { apiPort: port, peerId: status.peerId });
      try {
        const viaLock = await cli(['status', '--json', '--data-dir', dir]);
        assert.equal(viaLock.code, 0, viaLock.stderr);
        assert.equal((JSON.parse(viaLock.stdout) as NodeStatus).peerId, status.peerId);
        const human = await cli(['peers', '--data-dir', dir]);
        assert.match(human.stdout, /peerA\s+4:8\s+alive/);
      } finally {
        release();
      }
    } finally {
      await api.close();
      cleanup();
    }
  });

  it('exits 1 with NODE_UNREACHABLE when no node answers', async () => {
    const api = new ApiServer({ port: 0 }, { status: { status: () => status, peers: () => peers } });
    const { port } = await api.listen();
    await api.close();
    const r = await cli(['status', '--json', '--api-port', String(port)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /NODE_UNREACHABLE/);
  });
});
