/**
 * Serving before training through a real compute worker (src/compute/serving-first.ts): a training loop that posts
 * its next step as soon as the last one answers (as the node's trainer does) beside a reply decoding token by token
 * on the same model. In arrival order every decode step waits for a training step (one training step per token:
 * session 25's 9-20 s for a 32-token reply on a training node); served first, the reply passes the training steps,
 * and training still makes progress while a reply goes on longer than the hold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { makeConfig } from '../../../src/model/config.js';
import { Rng } from '../../../src/util/rng.js';
import { setTimeout as pause } from 'node:timers/promises';

const config = makeConfig({ hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 64, vocab_size: 64, max_position_embeddings: 128 });
const B = 2;
const T = 16;
const TOKENS = 40;

/** Training steps completed while a reply of TOKENS decode steps ran, and the reply's tokens. */
async function replyBesideTraining(client: ComputeClient, id: string): Promise<{ trainsDuring: number; tokens: number[] }> {
  const rng = new Rng(3);
  const inputs = Int32Array.from({ length: B * T }, () => rng.int(config.vocab_size));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(config.vocab_size));
  const bg = trainInBackground(client, inputs, targets);
  const trains = (): number => bg.steps;
  try {
    // training is under way before the reply starts
    while (trains() < 3) await client.run({ type: 'ping' });
    await client.run({ type: 'sessionOpen', id, maxLen: TOKENS + 8, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } });
    const first = await client.run({ type: 'sessionStep', id, ids: Int32Array.of(1, 2, 3), chunks: [3] });
    const before = trains();
    const tokens = [first.tokens![0]!];
    for (let k = 1; k < TOKENS; k++) {
      const r = await client.run({ type: 'sessionStep', id, ids: Int32Array.of(tokens.at(-1)!), chunks: [1] });
      tokens.push(r.tokens![0]!);
    }
    const trainsDuring = trains() - before;
    await client.run({ type: 'sessionClose', id });
    return { trainsDuring, tokens };
  } finally {
    await bg.stop();
  }
}

/** A trainer as the node's: it posts its next step as soon as the last one answers; `steps` counts the answered. */
function trainInBackground(client: ComputeClient, inputs: Int32Array, targets: Int32Array, dims: { B: number; T: number } = { B, T }): { steps: number; stop: () => Promise<void> } {
  let stopped = false;
  const state = {
    steps: 0,
    stop: async (): Promise<void> => {
      stopped = true;
      await loop;
    },
  };
  const loop = (async () => {
    while (!stopped) {
      await client.run({ type: 'trainStep', inputs: inputs.slice(), targets: targets.slice(), ...dims });
      state.steps++;
    }
  })();
  return state;
}

async function withClient<R>(trainingHoldMs: number | undefined, f: (c: ComputeClient) => Promise<R>, more: { trainingIdleMs?: number } = {}): Promise<R> {
  const c = await ComputeClient.start({ threads: 2, ...(trainingHoldMs === undefined ? {} : { trainingHoldMs }), ...more });
  try {
    await c.run({ type: 'initModel', config, seed: 0, trainer: { lr: 1e-3, warmupSteps: 1, decaySteps: 100_000 } });
    return await f(c);
  } finally {
    await c.close();
  }
}

describe('compute worker: serving before training', () => {
  it('in arrival order (trainingHoldMs 0) every decode step waits for a training step', async () => {
    const r = await withClient(0, (c) => replyBesideTraining(c, 'fifo'));
    assert.ok(r.trainsDuring >= TOKENS / 2, `${r.trainsDuring} training steps ran during ${TOKENS - 1} decode steps`);
  });

  it('served first (the default), the reply passes the training steps', async () => {
    const r = await withClient(undefined, (c) => replyBesideTraining(c, 'first'));
    // at most the step that was running when the reply began, and one whose hold ran out on a very slow host
    assert.ok(r.trainsDuring <= 3, `${r.trainsDuring} training steps ran during ${TOKENS - 1} decode steps`);
    assert.equal(r.tokens.length, TOKENS);
  });

  it('training still steps while a reply goes on longer than the hold', async () => {
    await withClient(200, async (c) => {
      const rng = new Rng(4);
      const inputs = Int32Array.from({ length: B * T }, () => rng.int(config.vocab_size));
      const bg = trainInBackground(c, inputs, inputs);
      const trains = (): number => bg.steps;
      try {
        while (trains() < 1) await c.run({ type: 'ping' });
        // one long-running reply: sessions of 120 positions, reopened, decoding without a pause
        const before = trains();
        const deadline = performance.now() + 20_000;
        let n = 0;
        while (trains() - before < 2) {
          assert.ok(performance.now() < deadline, `training made ${trains() - before} steps beside 20 s of decoding`);
          const id = `long-${n++}`;
          await c.run({ type: 'sessionOpen', id, maxLen: 120, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } });
          let tok = (await c.run({ type: 'sessionStep', id, ids: Int32Array.of(1), chunks: [1] })).tokens![0]!;
          for (let k = 1; k < 110 && trains() - before < 2; k++) tok = (await c.run({ type: 'sessionStep', id, ids: Int32Array.of(tok), chunks: [1] })).tokens![0]!;
          await c.run({ type: 'sessionClose', id });
        }
      } finally {
        await bg.stop();
      }
    });
  });

  // review, session 26: the bounds of the rule
  it('a training step runs within the hold even when session jobs are always queued behind it', async () => {
    await withClient(50, async (c) => {
      const rng = new Rng(5);
      const inputs = Int32Array.from({ length: B * T }, () => rng.int(config.vocab_size));
      const prefill = Int32Array.from({ length: 64 }, () => rng.int(config.vocab_size));
      const order: string[] = [];
      const train = (tag: string): Promise<unknown> => c.run({ type: 'trainStep', inputs: inputs.slice(), targets: inputs.slice(), B, T }).then(() => order.push(tag));
      // two training steps, then a burst of replies' jobs that keeps a session job queued behind them for far longer
      // than the hold: it passed them all, since the hold only bounded a step that waited with none queued
      const jobs = [train('t0'), train('t1')];
      const SESSIONS = 2000;
      for (let s = 0; s < SESSIONS; s++) {
        const id = `burst-${s}`;
        jobs.push(c.run({ type: 'sessionOpen', id, maxLen: 80, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } }).then(() => order.push('s')));
        jobs.push(c.run({ type: 'sessionStep', id, ids: prefill.slice(), chunks: [prefill.length] }).then(() => order.push('s')));
        jobs.push(c.run({ type: 'sessionClose', id }).then(() => order.push('s')));
      }
      const t0 = performance.now();
      await Promise.all(jobs);
      const ms = performance.now() - t0;
      const last = order.lastIndexOf('s');
      assert.ok(order.indexOf('t1') < last, `both training steps waited for all ${3 * SESSIONS} session jobs (${ms.toFixed(0)} ms) with a 50 ms hold`);
    });
  });

  it('concurrent replies still batch when they pass a training step', async () => {
    await withClient(undefined, async (c) => {
      const rng = new Rng(6);
      const inputs = Int32Array.from({ length: B * T }, () => rng.int(config.vocab_size));
      const sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
      const ids = ['ba', 'bb'];
      const next: number[] = [];
      for (const id of ids) {
        await c.run({ type: 'sessionOpen', id, maxLen: 32, sampling });
        next.push((await c.run({ type: 'sessionStep', id, ids: Int32Array.of(1, 2, 3), chunks: [3] })).tokens![0]!);
      }
      const decode = (i: number): Promise<{ batch?: number; tokens?: Int32Array }> => c.run({ type: 'sessionStep', id: ids[i]!, ids: Int32Array.of(next[i]!), chunks: [1] }) as Promise<{ batch?: number; tokens?: Int32Array }>;
      const both = async (): Promise<number[]> => {
        const rs = await Promise.all([decode(0), decode(1)]);
        rs.forEach((r, i) => (next[i] = r.tokens![0]!));
        return rs.map((r) => r.batch ?? 1);
      };
      await both(); // both sessions are decoding
      // two training steps queued before the two decode steps: the steps passed them one at a time, and the batcher
      // ends its scan at a training step, so each ran alone (after waiting the batch window for the other). On a
      // loaded host the second step arrives a moment after the first passed; it passes the held step too (session
      // 29: 4 runs in 8 failed here with three busy loops beside it before, the CI failure of stop 33)
      const trains = [0, 1].map(() => c.run({ type: 'trainStep', inputs: inputs.slice(), targets: inputs.slice(), B, T }));
      const batches = await both();
      await Promise.all(trains);
      assert.deepEqual(batches, [2, 2]);
      for (const id of ids) await c.run({ type: 'sessionClose', id });
    });
  });

  it('a training step does not hold back a job queued behind it that is not a session job', async () => {
    await withClient(undefined, async (c) => {
      const rng = new Rng(7);
      const inputs = Int32Array.from({ length: B * T }, () => rng.int(config.vocab_size));
      // the same ping behind a training step with no serving going on (no session job has run on this worker yet):
      // what the step itself costs here, so that the bound below does not depend on this machine's speed or load
      let base = Infinity;
      for (let k = 0; k < 3; k++) {
        const train = c.run({ type: 'trainStep', inputs: inputs.slice(), targets: inputs.slice(), B, T });
        const t0 = performance.now();
        await c.run({ type: 'ping' });
        base = Math.min(base, performance.now() - t0);
        await train;
      }
      let best = Infinity;
      for (let k = 0; k < 3; k++) {
        // a session job runs (serving is active), then a training step with a ping behind it: the step waited for
        // serving up to the 250 ms gap, with the worker idle and the ping (a checkpoint, new parameters) behind it
        const open = c.run({ type: 'sessionOpen', id: `hold-${k}`, maxLen: 8, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } });
        const train = c.run({ type: 'trainStep', inputs: inputs.slice(), targets: inputs.slice(), B, T });
        const t0 = performance.now();
        await c.run({ type: 'ping' });
        best = Math.min(best, performance.now() - t0);
        await Promise.all([open, train]);
        await c.run({ type: 'sessionClose', id: `hold-${k}` });
      }
      // before the fix the step first waited out the 250 ms serving gap with the worker idle
      assert.ok(best < base + 150, `the job behind the training step waited ${best.toFixed(0)} ms at best of 3, against ${base.toFixed(0)} ms with no serving`);
    });
  });

  // attack pass, session 27: serving before training could be bought by anyone (session 28 bounds it)
  it("a stranger's stream of empty session opens and closes does not hold a training step idle", async () => {
    await withClient(undefined, async (c) => {
      const rng = new Rng(8);
      const inputs = Int32Array.from({ length: B * T }, () => rng.int(config.vocab_size));
      const trainStep = (): Promise<unknown> => c.run({ type: 'trainStep', inputs: inputs.slice(), targets: inputs.slice(), B, T });
      // what a training step takes here with no serving (best of 3), so that the bound does not depend on the host
      let base = Infinity;
      for (let k = 0; k < 3; k++) {
        const t0 = performance.now();
        await trainStep();
        base = Math.min(base, performance.now() - t0);
      }
      const sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
      let n = 0;
      const openClose = async (): Promise<void> => {
        const id = `empty-${n++}`;
        await c.run({ type: 'sessionOpen', id, maxLen: 8, sampling });
        await c.run({ type: 'sessionClose', id });
      };
      await openClose(); // serving looks active
      let done = false;
      let doneAt = 0;
      const t0 = performance.now();
      const training = trainStep().then(() => {
        done = true;
        doneAt = performance.now();
      });
      // the stranger: an empty open and close every ~100 ms (the attack's pace was 240 ms) until the step answers.
      // Each kept the step waiting for serving, up to the 2 s hold with the worker idle.
      const deadline = t0 + 10_000;
      while (!done && performance.now() < deadline) {
        await openClose();
        await pause(100);
      }
      await training;
      const waited = doneAt - t0 - base;
      assert.ok(waited < 800, `the training step waited ${waited.toFixed(0)} ms beside ${n} empty sessions (a step takes ${base.toFixed(1)} ms here)`);
    });
  });

  it("a stranger's session stepping a token every ~40 ms holds training idle for at most the idle time in hand", async () => {
    await withClient(
      undefined,
      async (c) => {
        const rng = new Rng(9);
        const inputs = Int32Array.from({ length: B * T }, () => rng.int(config.vocab_size));
        const sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
        await c.run({ type: 'sessionOpen', id: 'drip', maxLen: 120, sampling });
        let tok = (await c.run({ type: 'sessionStep', id: 'drip', ids: Int32Array.of(1, 2, 3), chunks: [3] })).tokens![0]!;
        const bg = trainInBackground(c, inputs, inputs);
        try {
          // 40 one-token steps, ~40 ms apart (1.6 s): each kept the training step waiting for the next, up to the 2 s
          // hold, so at most the step in flight finished; now the worker idles 300 ms (trainingIdleMs) and earns twice
          // of each training step back (a step takes a few ms on this model), so training runs between the tokens
          const before = bg.steps;
          const t0 = performance.now();
          let firstAt = -1;
          for (let k = 0; k < 40; k++) {
            tok = (await c.run({ type: 'sessionStep', id: 'drip', ids: Int32Array.of(tok), chunks: [1] })).tokens![0]!;
            if (firstAt < 0 && bg.steps - before >= 2) firstAt = performance.now() - t0;
            await pause(40);
          }
          const during = bg.steps - before;
          assert.ok(during >= 5, `${during} training steps beside 40 tokens (1.6 s) of a session stepping every 40 ms`);
          assert.ok(firstAt >= 0 && firstAt < 1200, `training resumed after ${firstAt.toFixed(0)} ms (300 ms of idle time in hand)`);
        } finally {
          await bg.stop();
        }
        await c.run({ type: 'sessionClose', id: 'drip' });
      },
      { trainingIdleMs: 300 },
    );
  });

  // review of session 28: the idle time a remote reply spends is earned back by training, through a real worker
  it('a remote reply after training ran a while passes it again, though replies back to back spent the idle time', async () => {
    const IDLE = 1000;
    const TOK = 12;
    const GAP = 20; // ms between a token's answer and the next step: a remote hop's round trip
    await withClient(
      undefined,
      async (c) => {
        const rng = new Rng(10);
        // steps of a few ms (B 8, T 64): the trainer's round trips are a small part of its time, so training alone
        // for 2 s runs well over the 500 ms that earn the whole idle time back at idleShare 2
        const dims = { B: 8, T: 64 };
        const inputs = Int32Array.from({ length: dims.B * dims.T }, () => rng.int(config.vocab_size));
        const bg = trainInBackground(c, inputs, inputs, dims);
        const sampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
        let n = 0;
        /** One remote-paced reply: training steps that ended from its open to its last token, and its time. */
        const reply = async (): Promise<{ trains: number; ms: number }> => {
          const id = `remote-${n++}`;
          const before = bg.steps;
          const t0 = performance.now();
          await c.run({ type: 'sessionOpen', id, maxLen: TOK + 8, sampling });
          await pause(GAP);
          let tok = (await c.run({ type: 'sessionStep', id, ids: Int32Array.of(1, 2, 3), chunks: [3] })).tokens![0]!;
          for (let k = 1; k < TOK; k++) {
            await pause(GAP);
            tok = (await c.run({ type: 'sessionStep', id, ids: Int32Array.of(tok), chunks: [1] })).tokens![0]!;
          }
          const r = { trains: bg.steps - before, ms: performance.now() - t0 };
          await c.run({ type: 'sessionClose', id });
          return r;
        };
        try {
          while (bg.steps < 3) await c.run({ type: 'ping' });
          // a reply on a worker that holds its idle time: it passes training (the step running at its open at most)
          const first = await reply();
          assert.ok(first.trains <= 2, `the first reply paused for ${first.trains} training steps (${first.ms.toFixed(0)} ms)`);
          // replies back to back spend the idle time (~25 ms a token): one of them pauses for training at its tokens
          // (with the idle time unbounded, before session 28, none ever did)
          const spent: number[] = [];
          while (spent.length < 8 && (spent.at(-1) ?? 0) < TOK / 2) spent.push((await reply()).trains);
          assert.ok(spent.at(-1)! >= TOK / 2, `${spent.length} replies back to back never ran out of idle time: training steps during each ${spent.join(', ')}`);
          // training alone for a while earns it back
          const from = performance.now();
          const s0 = bg.steps;
          while (performance.now() - from < 2000 || bg.steps - s0 < 20) await c.run({ type: 'ping' });
          const last = await reply();
          assert.ok(last.trains <= 2, `after ${bg.steps - s0} training steps alone (${(performance.now() - from).toFixed(0)} ms) a reply still paused for ${last.trains} (${last.ms.toFixed(0)} ms; the first took ${first.ms.toFixed(0)} ms)`);
        } finally {
          await bg.stop();
        }
      },
      { trainingIdleMs: IDLE },
    );
  });
});
