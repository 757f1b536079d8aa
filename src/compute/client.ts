/**
 * ComputeClient: the main thread's handle on the compute worker. It sends typed jobs (jobs.ts), matches replies by
 * request id, moves tensors as transferred ArrayBuffers, and survives the worker's death:
 *
 * - A job that fails inside the worker rejects with the worker's typed error (code and fault preserved); the
 *   worker lives on.
 * - If the worker dies (an uncaught exception, process.exit inside it, the `crash` test job), every pending job
 *   rejects with WorkerCrashedError, a fresh worker starts (generation + 1, `worker:ready` again) and the process
 *   stays up. The new worker holds no model: its owner reloads it on `worker:ready`.
 * - Aborting a job's signal rejects it at once with AbortedError and raises the job's shared cancel flag, which the
 *   worker checks before starting it and between units of work (kernels themselves are not interruptible).
 *
 * One worker, jobs run one at a time inside it: the native pool is the only level of threading. Decode steps of
 * different sessions queued together run as one batched forward (continuous batching, batcher.ts).
 */
import { Worker } from 'node:worker_threads';
import { throwIfAborted, backoffMs, type AbortOptions } from '../util/abort.js';
import { AbortedError, InvalidArgumentError, NeuroShardError, errorMessage } from '../util/errors.js';
import { TypedEmitter } from '../util/events.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { ComputeClosedError, WorkerCrashedError, WorkerStartError } from './errors.js';
import type { FromWorker, Job, JobEvent, JobType, ResultOf, ToWorker, WorkerConfig, WorkerInfo, WorkerMemory } from './jobs.js';
import { prepareTransfer } from './transfer.js';
import { primePoolById } from '../tensor/backends/native.js';

/** NEUROSHARD_MAIN_PRIME=0: the client does not prime a worker's kernel pool when it posts a decode step (A/B runs). */
const MAIN_PRIME = process.env.NEUROSHARD_MAIN_PRIME !== '0';

export interface ComputeClientOptions extends WorkerConfig {
  /** How long a (re)started worker may take to report ready. Default 60 s (tsx compiles sources on first load). */
  startTimeoutMs?: number;
  /** Consecutive workers that die before reporting ready before the client gives up. Default 5. */
  maxFailedStarts?: number;
  logger?: Logger;
}

export interface JobOptions extends AbortOptions {
  /** Clone the job's typed arrays instead of transferring (detaching) them. Default false. */
  copy?: boolean;
}

export interface ComputeEvents {
  'worker:ready': { generation: number; info: WorkerInfo };
  /** The worker died. `startError` is set when it could not start at all (the client then stops restarting). */
  'worker:crashed': { generation: number; reason: string; exitCode: number; failedJobs: number; startError?: NeuroShardError };
  'job:event': { id: number; jobType: JobType; event: JobEvent };
  /** The worker's memory report (every WORKER_MEMORY_REPORT_MS). */
  'worker:memory': WorkerMemory;
}

interface Pending {
  type: JobType;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  cancel: Int32Array | undefined;
  cleanup: () => void;
}

type Status = 'starting' | 'running' | 'restarting' | 'failed' | 'closed';

const DEFAULT_START_TIMEOUT_MS = 60_000;
/** Crashes closer together than this count as a crash loop and back off before the next start. */
const CRASH_LOOP_WINDOW_MS = 10_000;

/**
 * The worker entry next to this module. Compiled, that is dist/src/compute/worker.js. Run from sources under
 * `node --import tsx`, Node 20 does not apply the parent's --import hooks inside workers, so the entry is a small
 * bootstrap that registers tsx in the worker before importing worker.ts.
 */
function workerEntry(): { entry: string | URL; eval: boolean } {
  const self = import.meta.url;
  if (self.endsWith('.ts')) {
    const target = new URL('./worker.ts', self).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const code =
      `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(target)}); })` +
      `.catch((e) => { console.error(e); process.exit(70); });`;
    return { entry: code, eval: true };
  }
  return { entry: new URL('./worker.js', self), eval: false };
}

export class ComputeClient extends TypedEmitter<ComputeEvents> {
  private readonly config: WorkerConfig;
  private readonly startTimeoutMs: number;
  private readonly maxFailedStarts: number;
  private readonly log: Logger;

  private worker: Worker | undefined;
  private status: Status = 'starting';
  private gen = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Jobs accepted while no worker is up (between a crash and the next start). */
  private backlog: { msg: ToWorker; transfer: ArrayBuffer[] }[] = [];
  private workerInfo: WorkerInfo | undefined;
  private workerMem: WorkerMemory | undefined;
  private lastError: Error | undefined;
  private lastCrashAt = 0;
  private crashStreak = 0;
  private failedStarts = 0;
  private readyTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private fatal: NeuroShardError | undefined;

  private constructor(opts: ComputeClientOptions) {
    super();
    this.config = {};
    if (opts.threads !== undefined) this.config.threads = opts.threads;
    if (opts.backend !== undefined) this.config.backend = opts.backend;
    if (opts.batchWindowMs !== undefined) this.config.batchWindowMs = opts.batchWindowMs;
    if (opts.trainingHoldMs !== undefined) this.config.trainingHoldMs = opts.trainingHoldMs;
    if (opts.trainingIdleMs !== undefined) this.config.trainingIdleMs = opts.trainingIdleMs;
    // (before the tenth session this field was not passed on: `--weights int8` nodes and the llamacpp bench's int8
    // figure ran float32 weights)
    if (opts.weights !== undefined) this.config.weights = opts.weights;
    this.startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.maxFailedStarts = opts.maxFailedStarts ?? 5;
    this.log = opts.logger ?? silentLogger;
  }

  /** Starts the worker and resolves once it has loaded its backend and reported ready. */
  static async start(opts: ComputeClientOptions = {}): Promise<ComputeClient> {
    const c = new ComputeClient(opts);
    const ready = c.waitForReadyOrFailure();
    c.spawn();
    try {
      await ready;
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  /** The running worker's description (backend, threads); undefined while (re)starting. */
  get info(): WorkerInfo | undefined {
    return this.workerInfo;
  }

  /** The running worker's last memory report (its own isolate; issue 12); undefined until the first one arrives. */
  get workerMemory(): WorkerMemory | undefined {
    return this.workerMem;
  }

  /** Counts worker starts: 1 for the first worker, +1 per restart after a crash. */
  get generation(): number {
    return this.gen;
  }

  get pendingJobs(): number {
    return this.pending.size;
  }

  /**
   * Runs one job in the worker. The job's typed arrays are transferred (detached here) unless `opts.copy`; the
   * result's arrays belong to the caller. Rejects with the worker's typed error, WorkerCrashedError, AbortedError
   * or ComputeClosedError.
   */
  run<J extends Job>(job: J, opts: JobOptions = {}): Promise<ResultOf<J['type']>> {
    try {
      throwIfAborted(opts.signal, `compute job ${job.type}`);
      if (this.status === 'closed') throw new ComputeClosedError();
      if (this.fatal !== undefined) throw this.fatal;
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const id = this.nextId++;
    const { value, transfer } = prepareTransfer(job as Job, { copy: opts.copy === true });
    let cancelBuf: SharedArrayBuffer | undefined;
    let cancel: Int32Array | undefined;
    if (opts.signal !== undefined) {
      cancelBuf = new SharedArrayBuffer(4);
      cancel = new Int32Array(cancelBuf);
    }
    const msg: ToWorker = cancelBuf === undefined ? { kind: 'job', id, job: value } : { kind: 'job', id, job: value, cancel: cancelBuf };

    return new Promise<ResultOf<J['type']>>((resolve, reject) => {
      const signal = opts.signal;
      const onAbort = (): void => {
        const p = this.pending.get(id);
        if (p === undefined) return;
        if (p.cancel !== undefined) Atomics.store(p.cancel, 0, 1);
        this.settle(id)?.reject(new AbortedError(`compute job ${job.type} aborted`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        type: job.type,
        resolve: resolve as (v: unknown) => void,
        reject,
        cancel,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      });
      if (this.worker === undefined || this.status === 'restarting') {
        this.backlog.push({ msg, transfer });
        return;
      }
      try {
        this.worker.postMessage(msg, transfer);
        // a decode step is a burst of kernel-pool work: wake the worker's pool helpers now, beside the worker's own
        // wake-up (the worker primes them again when the message arrives, ~0.1 ms later on a virtual machine whose
        // idle CPUs halt; its pool's helpers then joined the step's job 120-190 µs late in a 4-hop chain)
        if (job.type === 'sessionStep' && MAIN_PRIME && this.workerInfo?.poolId !== undefined) primePoolById(this.workerInfo.poolId);
      } catch (e) {
        // DataCloneError: a detached (already transferred) array, a function, a class instance the structured
        // clone cannot carry. Nothing reached the worker.
        this.settle(id)?.reject(new InvalidArgumentError(`compute job ${job.type} cannot be sent to the worker: ${errorMessage(e)}`, { jobType: job.type }));
      }
    });
  }

  /** Terminates the worker; pending and later jobs reject with ComputeClosedError. */
  async close(): Promise<void> {
    if (this.status === 'closed') return;
    this.status = 'closed';
    if (this.readyTimer !== undefined) clearTimeout(this.readyTimer);
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.failAll(() => new ComputeClosedError('compute client closed while the job was pending'));
    this.backlog = [];
    const w = this.worker;
    this.worker = undefined;
    if (w !== undefined) await w.terminate();
    this.removeAllListeners();
  }

  // ---- internals ----------------------------------------------------------------------------------------------

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p === undefined) return undefined;
    this.pending.delete(id);
    p.cleanup();
    return p;
  }

  private failAll(err: (p: Pending) => Error): number {
    const ids = [...this.pending.keys()];
    for (const id of ids) {
      const p = this.settle(id)!;
      p.reject(err(p));
    }
    return ids.length;
  }

  private waitForReadyOrFailure(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const offReady = this.on('worker:ready', () => {
        offReady();
        offCrash();
        resolve();
      });
      const offCrash = this.on('worker:crashed', (c) => {
        offReady();
        offCrash();
        reject(c.startError ?? new WorkerStartError(c.reason, { exitCode: c.exitCode }));
      });
    });
  }

  private spawn(): void {
    this.gen++;
    const generation = this.gen;
    this.status = 'starting';
    this.workerInfo = undefined;
    this.workerMem = undefined;
    this.lastError = undefined;
    const { entry, eval: isEval } = workerEntry();
    const w = new Worker(entry, { eval: isEval, workerData: this.config });
    this.worker = w;

    this.readyTimer = setTimeout(() => {
      this.lastError = new Error(`no ready message within ${this.startTimeoutMs} ms`);
      void w.terminate();
    }, this.startTimeoutMs);

    w.on('message', (msg: FromWorker) => this.onMessage(w, msg));
    w.on('error', (err) => {
      this.lastError = err;
      this.log.warn('compute worker error', { generation, error: err.message });
    });
    w.on('messageerror', (err) => this.log.warn('compute worker message could not be deserialised', { error: err.message }));
    w.on('exit', (code) => this.onExit(w, generation, code));

    // Jobs accepted while no worker was up go first, in order.
    const backlog = this.backlog;
    this.backlog = [];
    for (const b of backlog) {
      if (!this.pending.has(b.msg.id)) continue;
      try {
        w.postMessage(b.msg, b.transfer);
      } catch (e) {
        this.settle(b.msg.id)?.reject(new InvalidArgumentError(`compute job ${b.msg.job.type} cannot be sent to the worker: ${errorMessage(e)}`));
      }
    }
  }

  private onMessage(w: Worker, msg: FromWorker): void {
    if (w !== this.worker) return;
    switch (msg.kind) {
      case 'ready': {
        if (this.readyTimer !== undefined) clearTimeout(this.readyTimer);
        this.readyTimer = undefined;
        this.status = 'running';
        this.failedStarts = 0;
        this.workerInfo = msg.info;
        this.log.debug('compute worker ready', { generation: this.gen, backend: msg.info.description });
        this.emit('worker:ready', { generation: this.gen, info: msg.info });
        break;
      }
      case 'startFailed': {
        // permanent: do not restart; fail everything with the worker's own typed error
        const err = NeuroShardError.fromObject(msg.error);
        this.fatal = err;
        this.status = 'failed';
        this.failAll(() => err);
        this.emit('worker:crashed', { generation: this.gen, reason: err.message, exitCode: 78, failedJobs: 0, startError: err });
        break;
      }
      case 'memory':
        this.workerMem = msg.memory;
        this.emit('worker:memory', msg.memory);
        break;
      case 'result':
        this.settle(msg.id)?.resolve(msg.result);
        break;
      case 'error':
        this.settle(msg.id)?.reject(NeuroShardError.fromObject(msg.error));
        break;
      case 'batch':
        for (const r of msg.replies) {
          if ('error' in r) this.settle(r.id)?.reject(NeuroShardError.fromObject(r.error));
          else this.settle(r.id)?.resolve(r.result);
        }
        break;
      case 'event': {
        const p = this.pending.get(msg.id);
        if (p !== undefined) this.emit('job:event', { id: msg.id, jobType: p.type, event: msg.event });
        break;
      }
    }
  }

  private onExit(w: Worker, generation: number, exitCode: number): void {
    if (w !== this.worker || this.status === 'closed') return;
    if (this.status === 'failed') {
      this.worker = undefined;
      return;
    }
    if (this.readyTimer !== undefined) clearTimeout(this.readyTimer);
    this.readyTimer = undefined;
    const wasReady = this.status === 'running';
    this.worker = undefined;
    this.workerInfo = undefined;
    const reason = this.lastError !== undefined ? this.lastError.message : `worker exited with code ${exitCode}`;
    const failedJobs = this.failAll((p) => new WorkerCrashedError(reason, { generation, exitCode, jobType: p.type }));
    this.log.warn('compute worker died; starting a new one', { generation, exitCode, reason, failedJobs });
    this.emit('worker:crashed', { generation, reason, exitCode, failedJobs });
    // The backlog never reached this worker; it waits for the next.
    if (!wasReady) this.failedStarts++;
    if (this.failedStarts >= this.maxFailedStarts) {
      this.status = 'failed';
      this.fatal = new WorkerStartError(`${this.failedStarts} workers in a row died before becoming ready; last: ${reason}`);
      for (const b of this.backlog) this.settle(b.msg.id)?.reject(this.fatal);
      this.backlog = [];
      return;
    }
    const now = Date.now();
    this.crashStreak = now - this.lastCrashAt < CRASH_LOOP_WINDOW_MS ? this.crashStreak + 1 : 0;
    this.lastCrashAt = now;
    this.status = 'restarting';
    if (this.crashStreak < 3) {
      this.spawn();
    } else {
      const delay = backoffMs(this.crashStreak - 3, 100, 5_000);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        if (this.status === 'restarting') this.spawn();
      }, delay);
    }
  }
}
