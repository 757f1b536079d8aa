/**
 * The compute worker's entry point (run by ComputeClient in a worker_threads Worker; never imported elsewhere).
 * It builds the ComputeState (backend + thread pool), reports `ready`, then runs jobs one at a time in arrival
 * order: the native pool already uses every core, so running two jobs at once would only stack threads. The one
 * exception is continuous batching (batcher.ts): decode steps of different sessions that are queued together run
 * as one forward of several rows.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { NeuroShardError, errorMessage, type ErrorObject } from '../util/errors.js';
import { createJobContext } from './context.js';
import { JobFailedError } from './errors.js';
import { createHandlers, runHandler } from './handlers.js';
import { ACTIVE_DECODER_MS, DEFAULT_BATCH_WINDOW_MS, batchWindow, isBatchable, pickBatch, shouldWait } from './batcher.js';
import { SERVING_FIRST_DEFAULTS, idleAfter, servingFirstStep, servingJobsAhead, yieldsToServing, type ServingFirstOptions } from './serving-first.js';
import { WORKER_MEMORY_REPORT_MS, type FromWorker, type JobOf, type ToWorker, type WorkerConfig } from './jobs.js';
import { MAX_DECODE_BATCH } from '../model/shard.js';
import { ComputeState } from './state.js';
import { prepareTransfer } from './transfer.js';
import { WorkerGc, exposeGc } from './worker-gc.js';
import { appendFileSync } from 'node:fs';

/** NEUROSHARD_BATCH_TRACE=FILE: one JSON line per job or batch run (scripts/experiments/batchprobe.mjs reads it). */
const TRACE_FILE = process.env.NEUROSHARD_BATCH_TRACE;
const arrivedAt = new WeakMap<ToWorker, number>();
function trace(rec: Record<string, number>): void {
  if (TRACE_FILE !== undefined && TRACE_FILE !== '') appendFileSync(TRACE_FILE, JSON.stringify(rec) + '\n');
}
const clock = (): number => performance.timeOrigin + performance.now();

if (parentPort === null) throw new Error('src/compute/worker.ts must run inside a worker thread');
const port = parentPort;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function toErrorObject(jobType: string, e: unknown): ErrorObject {
  if (e instanceof NeuroShardError) return e.toObject();
  return new JobFailedError(jobType, errorMessage(e), e instanceof Error ? e.stack : undefined).toObject();
}

let state: ComputeState;
try {
  state = await ComputeState.create((workerData ?? {}) as WorkerConfig);
} catch (e) {
  // A configuration that cannot work (a required backend missing) is permanent: report it typed and stop, so
  // the client fails start() with it instead of restarting in a loop.
  post({ kind: 'startFailed', error: toErrorObject('start', e) });
  process.exit(78);
}
const handlers = createHandlers(state);
const collector = new WorkerGc(exposeGc(), () => process.memoryUsage().arrayBuffers, () => performance.now());

/**
 * NEUROSHARD_HANDOFF_LEGACY=1: the worker's hand-offs as before session 23 (every job waits for the setImmediate
 * turn, the memory look after every job), for A/B in one build.
 */
const LEGACY_HANDOFF = process.env.NEUROSHARD_HANDOFF_LEGACY === '1';

/** Least time between two of the drain's memory looks (ms; see drain). */
const GC_CHECK_MS = 100;
let lastGcCheck = -Infinity;

/** Jobs received and not yet started, in arrival order. */
const queue: ToWorker[] = [];
let draining = false;
const batchWindowMs = (workerData as WorkerConfig | undefined)?.batchWindowMs ?? DEFAULT_BATCH_WINDOW_MS;
/** Serving before training (serving-first.ts): its options, and the idle time in hand to wait for replies. */
const servingFirst: ServingFirstOptions = {
  ...SERVING_FIRST_DEFAULTS,
  holdMs: (workerData as WorkerConfig | undefined)?.trainingHoldMs ?? SERVING_FIRST_DEFAULTS.holdMs,
  idleCapMs: (workerData as WorkerConfig | undefined)?.trainingIdleMs ?? SERVING_FIRST_DEFAULTS.idleCapMs,
};
let idleInHand = servingFirst.idleCapMs;

/**
 * The kernel pool's hints (Backend.primePool/restPool). A decode step is a burst of pool jobs (one per layer) with
 * JS between them: the pool's helpers spin between its jobs and, when none is queued after it, sleep at once rather
 * than spin beside the main thread that carries the answer on (in a chain of hops in one process, beside the next
 * hop's worker). A step's arrival wakes them, so that their wake-up overlaps the step's preparation instead of its
 * first layer.
 */
function idleIfDone(): void {
  if (queue.length === 0) state.backend.restPool?.();
}

async function run(msg: ToWorker): Promise<void> {
  const { id, job } = msg;
  const ctx = createJobContext(job.type, msg.cancel, (event) => post({ kind: 'event', id, event }));
  const t0 = performance.now();
  try {
    ctx.throwIfCancelled(); // aborted while it waited in the queue
    const result: unknown = await runHandler(handlers, job, ctx);
    idleIfDone();
    const { value, transfer } = prepareTransfer(result);
    post({ kind: 'result', id, result: value, ms: performance.now() - t0 }, transfer);
  } catch (e) {
    post({ kind: 'error', id, error: toErrorObject(job.type, e) });
  }
}

/** How long the last batched forward took (ms): it sizes the batch window (batcher.ts `batchWindow`). */
let lastForwardMs = 0;

/** Decode steps of several sessions as one forward (batcher.ts, SessionTable.stepBatch); one reply per job. */
function runBatch(msgs: ToWorker[]): number {
  const t0 = performance.now();
  let results: ReturnType<typeof state.sessions.stepBatch>;
  try {
    results = state.sessions.stepBatch(state.model().shard, msgs.map((m) => m.job as JobOf<'sessionStep'>));
  } catch (e) {
    for (const m of msgs) post({ kind: 'error', id: m.id, error: toErrorObject(m.job.type, e) });
    return 0;
  }
  const ms = performance.now() - t0;
  lastForwardMs = ms;
  idleIfDone();
  // one message for the whole batch: each post wakes the main thread, which then took a core from this thread
  // while it still had rows to post (the posts of an 8-row batch took 0.2-1.8 ms at load 5)
  const replies: Extract<FromWorker, { kind: 'batch' }>['replies'] = msgs.map((m, i) => {
    const r = results[i];
    return r.ok ? { id: m.id, result: r.result, ms } : { id: m.id, error: toErrorObject(m.job.type, r.error) };
  });
  const { value, transfer } = prepareTransfer(replies);
  post({ kind: 'batch', replies: value }, transfer);
  return ms;
}

const cancelled = (m: ToWorker): boolean => m.cancel !== undefined && Atomics.load(new Int32Array(m.cancel), 0) !== 0;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Set while the batcher waits for more steps: the next message ends the wait early. */
let arrived: (() => void) | null = null;
/**
 * Until the next job arrives or `ms` pass, whichever is first: a short batch waits for the other sessions' steps,
 * and the wait ends as soon as one comes (drain then counts again), not at the end of the window (every short
 * batch slept the whole window, 2 ms or a tenth of a forward, even when the last step came at once).
 */
function arrivalOr(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      arrived = null;
      resolve();
    }
    arrived = done;
  });
}

/**
 * Runs queued jobs one at a time (or one decode batch at a time), yielding to the event loop between them so that
 * jobs that arrived meanwhile are seen: steps arriving while a batch runs join the next batch.
 */
async function drain(): Promise<void> {
  try {
    let waitedFor: ToWorker | undefined;
    let waitUntil = 0;
    let headed: ToWorker | undefined;
    let headSince = 0;
    while (queue.length > 0) {
      if (headed !== undefined && headed !== queue[0] && performance.now() - headSince >= servingFirst.holdMs) {
        // its hold ran out while the session jobs that passed it run: it goes back before those still waiting (they
        // all came after it; later arrivals queue behind it), so a burst of them passes it for at most the hold
        const at = queue.indexOf(headed);
        if (at > 0) queue.unshift(queue.splice(at, 1)[0]!);
        else headed = undefined;
      } else if (headed !== undefined && headed !== queue[0]) {
        // its hold still runs while the session jobs that passed it run: those that arrived since pass it too, up
        // to it (servingJobsAhead from its place), so that a decode step arriving a moment after another's joins
        // its batch rather than waiting behind the training step (the batcher's scan stops at one)
        const at = queue.indexOf(headed);
        const pass = at > 0 ? servingJobsAhead(queue.map((m) => m.job), at) : [];
        if (pass.length > 0) {
          const moved = pass.map((i) => queue[i]!);
          for (let k = pass.length - 1; k >= 0; k--) queue.splice(pass[k]!, 1);
          queue.splice(at, 0, ...moved);
        } else if (at < 0) headed = undefined;
      }
      if (servingFirst.holdMs > 0 && yieldsToServing(queue[0].job) && !cancelled(queue[0])) {
        // serving before training (serving-first.ts): a reply's session jobs pass a queued training step, and with
        // none queued the step waits a while for the next step of a reply mid-answer; for at most the hold from
        // when it headed the queue (kept while session jobs pass it), and idle for at most the time in hand
        if (headed !== queue[0]) {
          headed = queue[0];
          headSince = performance.now();
        }
        const next = servingFirstStep(queue.map((m) => m.job), performance.now(), state.sessions.lastActiveAt(), headSince, idleInHand, servingFirst);
        if (next.pass.length > 0) {
          const moved = next.pass.map((i) => queue[i]!);
          for (let k = next.pass.length - 1; k >= 0; k--) queue.splice(next.pass[k]!, 1);
          queue.unshift(...moved);
        } else if (next.waitMs > 0) {
          const t0 = performance.now();
          await arrivalOr(next.waitMs);
          idleInHand = idleAfter(idleInHand, performance.now() - t0, 0, servingFirst);
          continue;
        }
      }
      const picked = cancelled(queue[0]) ? [0] : pickBatch(queue.map((m) => m.job), MAX_DECODE_BATCH, (i) => cancelled(queue[i]));
      const head = queue[0];
      if (isBatchable(head.job)) {
        const window = batchWindow(batchWindowMs, lastForwardMs);
        if (shouldWait(picked.length, state.sessions.activeDecoders(ACTIVE_DECODER_MS), window)) {
          // one window per head: a session that stopped decoding costs one window, not a stall
          if (waitedFor !== head) {
            waitedFor = head;
            waitUntil = performance.now() + window;
          }
          const left = waitUntil - performance.now();
          if (left > 0) {
            await arrivalOr(left);
            continue;
          }
        }
      }
      const tStart = TRACE_FILE === undefined ? 0 : clock();
      const firstAt = TRACE_FILE === undefined ? 0 : Math.min(...picked.map((i) => arrivedAt.get(queue[i]) ?? tStart));
      const lastAt = TRACE_FILE === undefined ? 0 : Math.max(...picked.map((i) => arrivedAt.get(queue[i]) ?? tStart));
      let tFwd = 0;
      if (picked.length <= 1) {
        const msg = queue.shift()!;
        if (msg === headed) headed = undefined;
        const t0 = performance.now();
        await run(msg);
        // a training step earns idle time for serving (serving-first.ts idleAfter)
        if (yieldsToServing(msg.job)) idleInHand = idleAfter(idleInHand, 0, performance.now() - t0, servingFirst);
      } else {
        const msgs = picked.map((i) => queue[i]);
        for (let k = picked.length - 1; k >= 0; k--) queue.splice(picked[k], 1);
        tFwd = runBatch(msgs);
      }
      if (TRACE_FILE !== undefined) trace({ tid: threadId, rows: picked.length, firstAt, lastAt, start: tStart, fwdMs: tFwd, end: clock(), left: queue.length });
      await nextTurn();
    }
  } finally {
    draining = false;
    // between jobs: the buffers of closed sessions and replaced weights (worker-gc.ts). Looked at most every
    // GC_CHECK_MS: the look (process.memoryUsage, ~8 µs of CPU, most of it reading /proc) ran after every job, four
    // times a token in a 4-hop chain of one process, where a core is what the next hop waits for; the policy itself
    // collects at most every 5 s, and the memory report looks again every WORKER_MEMORY_REPORT_MS.
    const now = performance.now();
    if (LEGACY_HANDOFF || now - lastGcCheck >= GC_CHECK_MS) {
      lastGcCheck = now;
      collector.maybeCollect();
    }
  }
}

/**
 * Whether a job that arrives at an idle worker can start at once, in its message's own turn: a decode step while
 * no other session decodes. Other jobs wait for the next turn so that the messages already delivered join the
 * queue first (a batch forms from them); a lone decoder's step has nothing to batch with (`shouldWait` would not
 * wait for one active decoder either), and in a chain of hops the turn sat on every hop's critical path: one
 * setImmediate per hop step (~35-50 µs measured at load 10, scripts/experiments/handoff.mjs) that a 1-hop chain
 * pays once a token and a 4-hop chain four times. Jobs still run one at a time in arrival order: a job delivered
 * later in the same drain of the port queues behind this one.
 */
function startsAtOnce(msg: ToWorker): boolean {
  return !LEGACY_HANDOFF && queue.length === 1 && isBatchable(msg.job) && state.sessions.activeDecoders(ACTIVE_DECODER_MS) <= 1;
}

port.on('message', (msg: ToWorker) => {
  if (msg.kind !== 'job') return;
  if (msg.job.type === 'sessionStep') state.backend.primePool?.();
  if (TRACE_FILE !== undefined) arrivedAt.set(msg, clock());
  queue.push(msg);
  arrived?.();
  if (draining) return;
  draining = true;
  if (startsAtOnce(msg)) {
    void drain();
    return;
  }
  // after this turn: the other messages already delivered join the queue first
  setImmediate(() => void drain());
});

post({ kind: 'ready', info: state.info() });

/** This isolate's memory, pushed to the main thread (its dashboard feed shows it; issue 12). */
function reportMemory(): void {
  if (!draining) collector.maybeCollect(); // an idle worker's dead buffers too
  const m = process.memoryUsage();
  post({ kind: 'memory', memory: { heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers, at: Date.now() } });
}
reportMemory();
// unref'd: the port keeps the worker alive, the report never does
setInterval(reportMemory, WORKER_MEMORY_REPORT_MS).unref();
