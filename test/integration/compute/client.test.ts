/**
 * The compute worker through its client: typed round trips, transferred tensors, typed job errors, crash
 * recovery (pending jobs fail with WorkerCrashedError, a new worker starts, the process stays up), cancellation
 * and close. Runs both compiled (dist/…/worker.js) and from sources under `node --import tsx`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { threadId } from 'node:worker_threads';
import { ComputeClient, WorkerCrashedError } from '../../../src/compute/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

function naiveGemm(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) c[i * N + j] += a[i * K + k] * b[k * N + j];
  return c;
}

function hasCode(code: string) {
  return (e: unknown): boolean => {
    assert.ok(isNeuroShardError(e, code), `expected ${code}, got ${String(e)}`);
    return true;
  };
}

describe('compute/ComputeClient', () => {
  let client: ComputeClient;
  before(async () => {
    client = await ComputeClient.start({ threads: 1 });
  });
  after(async () => {
    await client.close();
  });

  it('starts a worker on another thread and answers ping', async () => {
    const r = await client.run({ type: 'ping', echo: 'hi' });
    assert.equal(r.echo, 'hi');
    assert.notEqual(r.threadId, threadId);
    assert.ok(r.backend === 'native' || r.backend === 'reference');
    assert.equal(client.generation, 1);
    assert.equal(client.info?.threadId, r.threadId);
    assert.equal(client.info?.description, r.description);
  });

  it("names its native kernel pool, which this thread can prime while the worker lives and not after", async (t) => {
    if (client.info?.backend !== 'native') return t.skip('the reference backend has no kernel pool');
    const { primePoolById } = await import('../../../src/tensor/backends/native.js');
    const other = await ComputeClient.start({ threads: 2 });
    try {
      const a = client.info.poolId;
      const b = other.info?.poolId;
      assert.ok(typeof a === 'number' && a > 0 && typeof b === 'number' && b > 0, `pool ids ${String(a)}, ${String(b)}`);
      assert.notEqual(a, b, 'each worker has its own pool');
      assert.equal(primePoolById(b), true);
      // a primed pool computes as before
      const r = await other.run({ type: 'gemm', a: Float32Array.of(1, 2, 3, 4), b: Float32Array.of(5, 6, 7, 8), args: { transA: false, transB: false, M: 2, N: 2, K: 2, alpha: 1, beta: 0 } });
      assert.deepEqual(Array.from(r.c), [19, 22, 43, 50]);
      await other.close();
      assert.equal(primePoolById(b), false, 'a closed worker\'s pool is gone');
      assert.equal(primePoolById(a), true, 'the other worker\'s pool is still there');
    } finally {
      await other.close();
    }
  });

  it('runs a GEMM with transferred operands and returns a new array', async () => {
    const M = 7;
    const K = 33;
    const N = 5;
    const a = new Float32Array(M * K).map((_, i) => Math.sin(i));
    const b = new Float32Array(K * N).map((_, i) => Math.cos(i));
    const want = naiveGemm(a, b, M, K, N);
    const { c } = await client.run({ type: 'gemm', a, b, args: { transA: false, transB: false, M, N, K, alpha: 1, beta: 0 } });
    assert.equal(a.length, 0, 'a was transferred (detached here)');
    assert.equal(b.length, 0, 'b was transferred (detached here)');
    assert.equal(c.length, M * N);
    for (let i = 0; i < c.length; i++) assert.ok(Math.abs(c[i] - want[i]) < 1e-4, `c[${i}] = ${c[i]}, want ${want[i]}`);
  });

  it('keeps the caller arrays with copy: true', async () => {
    const a = new Float32Array([1, 2, 3, 4]);
    const b = new Float32Array([1, 0, 0, 1]);
    const { c } = await client.run({ type: 'gemm', a, b, args: { transA: false, transB: false, M: 2, N: 2, K: 2, alpha: 1, beta: 0 } }, { copy: true });
    assert.deepEqual(Array.from(a), [1, 2, 3, 4]);
    assert.deepEqual(Array.from(c), [1, 2, 3, 4]);
  });

  it('a job that cannot be cloned (a detached array) fails with a typed error and leaks no pending entry', async () => {
    const a = new Float32Array(4);
    const b = new Float32Array(4);
    await client.run({ type: 'gemm', a, b, args: { transA: false, transB: false, M: 2, N: 2, K: 2, alpha: 1, beta: 0 } });
    // a and b are detached now; sending them again must not hang
    await assert.rejects(
      client.run({ type: 'gemm', a, b, args: { transA: false, transB: false, M: 2, N: 2, K: 2, alpha: 1, beta: 0 } }),
      hasCode('INVALID_ARGUMENT'),
    );
    assert.equal(client.pendingJobs, 0);
  });

  it('rejects bad GEMM operands with a caller-fault typed error and keeps the worker', async () => {
    const a = new Float32Array(3);
    const b = new Float32Array(4);
    await assert.rejects(client.run({ type: 'gemm', a, b, args: { transA: false, transB: false, M: 2, N: 2, K: 2, alpha: 1, beta: 0 } }), (e) => {
      hasCode('INVALID_ARGUMENT')(e);
      assert.equal((e as { fault: string }).fault, 'caller');
      return true;
    });
    assert.equal(client.generation, 1);
  });

  it('a job that throws fails alone; the worker lives on', async () => {
    await assert.rejects(client.run({ type: 'crash', mode: 'throw' }), hasCode('COMPUTE_TEST_ERROR'));
    const r = await client.run({ type: 'ping' });
    assert.ok(r.threadId > 0);
    assert.equal(client.generation, 1);
  });

  for (const mode of ['exit', 'uncaught'] as const) {
    it(`worker death (${mode}) fails every pending job with WorkerCrashedError, then a new worker serves`, async () => {
      const genBefore = client.generation;
      const ready = client.waitFor('worker:ready', { timeoutMs: 60_000 });
      const crashed = client.waitFor('worker:crashed', { timeoutMs: 60_000 });
      const crash = client.run({ type: 'crash', mode });
      const queued = client.run({ type: 'spin', ms: 1 }); // waits behind the crash job in the worker
      await assert.rejects(crash, (e) => e instanceof WorkerCrashedError && e.code === 'COMPUTE_WORKER_CRASHED');
      await assert.rejects(queued, (e) => e instanceof WorkerCrashedError && (e.meta as { jobType: string }).jobType === 'spin');
      const c = await crashed;
      assert.equal(c.generation, genBefore);
      assert.equal(c.failedJobs, 2);
      const r = await ready;
      assert.equal(r.generation, genBefore + 1);
      assert.equal(client.generation, genBefore + 1);
      const p = await client.run({ type: 'ping', echo: 'after' });
      assert.equal(p.echo, 'after');
    });
  }

  it('a job sent while the worker restarts runs on the new worker', async () => {
    const crash = client.run({ type: 'crash', mode: 'exit' });
    await assert.rejects(crash, WorkerCrashedError);
    // sent right after the crash, before the new worker reported ready
    const p = await client.run({ type: 'ping', echo: 'queued' });
    assert.equal(p.echo, 'queued');
  });

  it('aborting a running job rejects it at once and stops the work in the worker', async () => {
    const ac = new AbortController();
    const long = client.run({ type: 'spin', ms: 600_000 }, { signal: ac.signal });
    // the job is running once the worker answers nothing else; abort as soon as it is pending
    ac.abort();
    await assert.rejects(long, hasCode('ABORTED'));
    // if the worker had not seen the cancel flag it would spin for 10 minutes and this ping would never return
    const p = await client.run({ type: 'ping', echo: 'free' });
    assert.equal(p.echo, 'free');
    assert.equal(client.pendingJobs, 0);
  });

  it('a job queued behind a long one can be aborted before it starts', async () => {
    const acLong = new AbortController();
    const acQueued = new AbortController();
    const long = client.run({ type: 'spin', ms: 600_000 }, { signal: acLong.signal });
    const queued = client.run({ type: 'spin', ms: 600_000 }, { signal: acQueued.signal });
    acQueued.abort();
    await assert.rejects(queued, hasCode('ABORTED'));
    acLong.abort();
    await assert.rejects(long, hasCode('ABORTED'));
    assert.equal((await client.run({ type: 'ping', echo: 'x' })).echo, 'x');
  });

  it('an already-aborted signal rejects without sending', async () => {
    await assert.rejects(client.run({ type: 'ping' }, { signal: AbortSignal.abort() }), hasCode('ABORTED'));
  });

  it('the main thread keeps running timers while the worker computes', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await client.run({ type: 'spin', ms: 300 });
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks > 0, 'timers fired during the job');
  });
});

describe('compute/ComputeClient start', () => {
  it('a worker that cannot start fails start() with its own typed error, without a restart loop', async () => {
    await assert.rejects(ComputeClient.start({ threads: 0 }), (e) => {
      hasCode('INVALID_ARGUMENT')(e);
      assert.match((e as Error).message, /threads/);
      return true;
    });
  });

  it('backend native either starts native or fails with BACKEND_UNAVAILABLE', async () => {
    let c: ComputeClient | undefined;
    try {
      c = await ComputeClient.start({ backend: 'native', threads: 1 });
    } catch (e) {
      hasCode('BACKEND_UNAVAILABLE')(e);
      return;
    }
    try {
      assert.equal(c.info?.backend, 'native');
    } finally {
      await c.close();
    }
  });
});

describe('compute/ComputeClient close', () => {
  it('rejects pending and later jobs with COMPUTE_CLOSED', async () => {
    const c = await ComputeClient.start({ threads: 1 });
    const pending = assert.rejects(c.run({ type: 'spin', ms: 600_000 }), hasCode('COMPUTE_CLOSED'));
    await c.close();
    await pending;
    await assert.rejects(c.run({ type: 'ping' }), hasCode('COMPUTE_CLOSED'));
  });
});
