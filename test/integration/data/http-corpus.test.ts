/**
 * The HTTP path of the corpus loader against a local server (127.0.0.1) that misbehaves on purpose: one shard
 * served corrupted (once, or always), a missing file, a body over the size limit, a request that never answers.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  encodeShard,
  loadGenesisTokenizer,
  openCorpus,
  serializeManifest,
  shardFileBytes,
  type CorpusEvents,
  type GenesisManifest,
} from '../../../src/data/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { Rng } from '../../../src/util/rng.js';
import { tempDir } from '../../utils/paths.js';

type Behaviour = 'ok' | 'corrupt-once' | 'corrupt-always' | 'hang' | 'oversize';

interface TestServer {
  url: string;
  requests: Map<string, number>;
  behaviour: Map<string, Behaviour>;
  close(): Promise<void>;
}

/** A small corpus in the genesis format: random ids, 5 training shards and 1 validation shard. */
function makeCorpus(): { files: Map<string, Uint8Array>; manifest: GenesisManifest } {
  const tok = loadGenesisTokenizer();
  const rng = new Rng(5);
  const files = new Map<string, Uint8Array>();
  files.set('neuroshard-tokenizer.json', new TextEncoder().encode(tok.toJSON()));
  const shards = [];
  for (let id = 0; id < 6; id++) {
    const tokens = Array.from({ length: 3000 + id }, () => 10 + rng.int(4086));
    const bytes = encodeShard(tokens, 4096);
    const file = `shard-${id}.bin`;
    files.set(file, bytes);
    shards.push({ id, file, split: id === 0 ? ('val' as const) : ('train' as const), tokens: tokens.length, bytes: shardFileBytes(tokens.length), sha256: sha(bytes) });
  }
  const manifest: GenesisManifest = {
    format: 'neuroshard-genesis-manifest',
    version: 1,
    name: 'http-test',
    shard_format: 1,
    tokenizer: { file: 'neuroshard-tokenizer.json', sha256: tok.sha256(), vocab_size: 4096 },
    source: { test: true },
    total_tokens: shards.reduce((n, s) => n + s.tokens, 0),
    shards,
  };
  files.set('manifest.json', new TextEncoder().encode(serializeManifest(manifest)));
  return { files, manifest };
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function serve(files: Map<string, Uint8Array>): Promise<TestServer> {
  const requests = new Map<string, number>();
  const behaviour = new Map<string, Behaviour>();
  const hanging: ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/corpus\//, ''));
    const n = (requests.get(name) ?? 0) + 1;
    requests.set(name, n);
    const body = files.get(name);
    const b = behaviour.get(name) ?? 'ok';
    if (body === undefined) {
      res.writeHead(404).end();
    } else if (b === 'hang') {
      hanging.push(res); // never answers; the client's deadline must fire
    } else if (b === 'oversize') {
      res.writeHead(200, { 'content-length': String(body.length + 1000) });
      res.end(Buffer.concat([body, Buffer.alloc(1000)]));
    } else if (b === 'corrupt-always' || (b === 'corrupt-once' && n === 1)) {
      const bad = Buffer.from(body);
      bad[bad.length - 1] ^= 0xff; // same size, one flipped byte: only the hash can tell
      res.writeHead(200, { 'content-length': String(bad.length) }).end(bad);
    } else {
      res.writeHead(200, { 'content-length': String(body.length) }).end(Buffer.from(body));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/corpus/`,
    requests,
    behaviour,
    close: async () => {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function record(events: { on: <K extends keyof CorpusEvents & string>(e: K, fn: (p: CorpusEvents[K]) => void) => unknown }) {
  const log = { rejected: [] as CorpusEvents['shard:rejected'][], verified: [] as CorpusEvents['shard:verified'][], failed: [] as CorpusEvents['shard:failed'][] };
  events.on('shard:rejected', (e) => log.rejected.push(e));
  events.on('shard:verified', (e) => log.verified.push(e));
  events.on('shard:failed', (e) => log.failed.push(e));
  return log;
}

describe('corpus over HTTP', () => {
  const { files, manifest } = makeCorpus();
  let srv: TestServer;
  before(async () => {
    srv = await serve(files);
  });
  after(async () => {
    await srv.close();
  });

  it('rejects a corrupted shard, fetches it again, and caches only verified bytes', async () => {
    const { dir, cleanup } = tempDir();
    try {
      srv.behaviour.set('shard-3.bin', 'corrupt-once');
      const corpus = await openCorpus(srv.url, { cacheDir: dir, retryBaseMs: 1 });
      const log = record(corpus.events);
      assert.equal(corpus.tokenizer.vocabSize, 4096);
      assert.equal(corpus.manifest.name, 'http-test');
      const tokens = await corpus.loadShard(3);
      assert.equal(srv.requests.get('shard-3.bin'), 2);
      assert.equal(log.rejected.length, 1);
      assert.deepEqual({ ...log.rejected[0], actual: undefined }, {
        shard: 3,
        file: 'shard-3.bin',
        from: 'source',
        attempt: 1,
        reason: 'sha256',
        expected: manifest.shards[3].sha256,
        actual: undefined,
        message: 'sha256 mismatch: bytes dropped',
      });
      assert.notEqual(log.rejected[0].actual, manifest.shards[3].sha256);
      assert.deepEqual(log.verified, [{ shard: 3, file: 'shard-3.bin', from: 'source' }]);
      assert.equal(tokens.length, manifest.shards[3].tokens);
      // The cache holds the good bytes under a folder named after the manifest.
      const cached = join(dir, `http-test-${sha(files.get('manifest.json')!).slice(0, 16)}`, 'shard-3.bin');
      assert.equal(sha(readFileSync(cached)), manifest.shards[3].sha256);

      // A second node process with the same cache does not download again, and a tampered cache is refetched.
      const before3 = srv.requests.get('shard-3.bin');
      const again = await openCorpus(srv.url, { cacheDir: dir });
      const log2 = record(again.events);
      assert.deepEqual(await again.loadShard(3), tokens);
      assert.equal(srv.requests.get('shard-3.bin'), before3);
      assert.equal(log2.verified[0].from, 'cache');
      const bad = readFileSync(cached);
      bad[100] ^= 1;
      writeFileSync(cached, bad);
      const third = await openCorpus(srv.url, { cacheDir: dir });
      const log3 = record(third.events);
      assert.deepEqual(await third.loadShard(3), tokens);
      assert.equal(log3.rejected[0].from, 'cache');
      assert.equal(log3.verified[0].from, 'source');
      assert.equal(srv.requests.get('shard-3.bin'), before3! + 1);
    } finally {
      srv.behaviour.clear();
      cleanup();
    }
  });

  it('gives up on a shard that never verifies, never trains on it, and trains on the rest', async () => {
    const { dir, cleanup } = tempDir();
    try {
      srv.behaviour.set('shard-2.bin', 'corrupt-always');
      srv.requests.clear();
      const corpus = await openCorpus(srv.url, { cacheDir: dir, maxAttempts: 3, retryBaseMs: 1 });
      const log = record(corpus.events);
      await assert.rejects(corpus.loadShard(2), (e: unknown) => isNeuroShardError(e, 'SHARD_INTEGRITY') && e.fault === 'peer' && /after 3 attempts/.test(e.message));
      assert.equal(srv.requests.get('shard-2.bin'), 3);
      assert.deepEqual(log.rejected.map((r) => [r.shard, r.attempt, r.reason]), [[2, 1, 'sha256'], [2, 2, 'sha256'], [2, 3, 'sha256']]);
      assert.equal(log.failed.length, 1);
      assert.equal(log.failed[0].error.code, 'SHARD_INTEGRITY');
      assert.ok(!existsSync(join(dir, `http-test-${sha(files.get('manifest.json')!).slice(0, 16)}`, 'shard-2.bin')), 'nothing cached');

      const stream = await corpus.trainStream({ nodeId: 'node-x', batchSize: 2, seqLen: 32 });
      assert.deepEqual([...stream.position().shards].sort(), [1, 3, 4, 5]);
      // Every window comes from a verified shard: shard 2's tokens never appear as a window start.
      const good = await Promise.all([1, 3, 4, 5].map((id) => corpus.loadShard(id)));
      const b = stream.next();
      const row = [...b.inputs.subarray(0, 32)];
      assert.ok(good.some((t) => t.join(',').includes(row.join(','))));
    } finally {
      srv.behaviour.clear();
      cleanup();
    }
  });

  it('bounds every download: 404, oversize body, no answer before the deadline', async () => {
    srv.behaviour.set('shard-4.bin', 'oversize');
    srv.behaviour.set('shard-5.bin', 'hang');
    try {
      const corpus = await openCorpus(srv.url, { maxAttempts: 1, fetchTimeoutMs: 300 });
      await assert.rejects(corpus.loadShard(4), (e: unknown) => isNeuroShardError(e, 'DATA_FETCH_FAILED') && /limit/.test(e.message));
      await assert.rejects(corpus.loadShard(5), (e: unknown) => isNeuroShardError(e, 'TIMEOUT'));
      await assert.rejects(openCorpus(srv.url.replace('/corpus/', '/nothing/'), { maxAttempts: 1 }), (e: unknown) => isNeuroShardError(e, 'DATA_FETCH_FAILED') && /404/.test(e.message));
      const ctl = new AbortController();
      ctl.abort();
      await assert.rejects(corpus.loadShard(1, { signal: ctl.signal }), (e: unknown) => isNeuroShardError(e, 'ABORTED'));
    } finally {
      srv.behaviour.clear();
    }
  });

  it('rejects a tokenizer that does not match the manifest', async () => {
    const good = files.get('neuroshard-tokenizer.json')!;
    files.set('neuroshard-tokenizer.json', new TextEncoder().encode(new TextDecoder().decode(good).replace('"source": {', '"source": {"x": 1, ')));
    try {
      await assert.rejects(openCorpus(srv.url, { maxAttempts: 2, retryBaseMs: 1 }), (e: unknown) => isNeuroShardError(e, 'SHARD_INTEGRITY') && /neuroshard-tokenizer.json/.test(e.message));
    } finally {
      files.set('neuroshard-tokenizer.json', good);
    }
  });

  it('accepts the manifest URL itself and serves validation batches and the baseline', async () => {
    const corpus = await openCorpus(`${srv.url}manifest.json`, {});
    const val = await corpus.validationBatches({ batchSize: 4, seqLen: 64 });
    assert.equal(val.length, Math.floor(Math.floor((3000 - 1) / 64) / 4));
    const ce = await corpus.unigramBaseline();
    // Random uniform ids over 4,086 values: the baseline is close to ln 4086 ≈ 8.32 (a little above, from sampling).
    assert.ok(ce > 8.2 && ce < 8.8, `baseline ${ce}`);
  });
});
