/**
 * The entry's commitments over every hop's inputs and outputs (router/driver.ts, issue 11 §2) are the same bytes
 * whether they are taken inline between calls (`commits: null`, the path before session 25) or queued on the
 * commitment worker (the default: protocols/hop-commit-queue.ts), through a prefill, decode steps and a failover's
 * replay; and they equal commitments recomputed from what each hop was sent and answered.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RunningCommitment } from '../../../src/ledger/commitment.js';
import { HopCommitQueue } from '../../../src/protocols/hop-commit-queue.js';
import { BanList, DRIVER_DEFAULTS, runGeneration, type DriverDeps, type HolderView, type HopInput, type HopSession, type ModelView } from '../../../src/router/index.js';
import type { SettleHop } from '../../../src/protocols/hop-commitment.js';

const L = 6;
const C = 8;
const model: ModelView = { numLayers: L, hiddenSize: C, contextLength: 64, eosId: -1, encode: () => [3, 1, 4, 1, 5], decode: () => '' };

/** What a hop was given and gave back, call by call. */
interface Seen {
  inputs: HopInput[];
  outputs: { hidden?: Float32Array; tokens?: Int32Array }[];
}

/**
 * A deterministic hop over [start, end): the driver hop embeds ids, the others transform their input, the validator
 * samples one token per chunk from the last row of each chunk. `failAt`: the call that throws (a dead hop).
 */
function hop(start: number, end: number, seen: Seen, failAt?: number): HopSession {
  let calls = 0;
  return {
    step: async (input) => {
      if (++calls === failAt) throw new Error('hop died');
      const T = input.chunks.reduce((a, b) => a + b, 0);
      const x = new Float32Array(T * C);
      for (let t = 0; t < T; t++)
        for (let c = 0; c < C; c++) x[t * C + c] = input.ids !== undefined ? Math.sin(input.ids[t]! * 1.7 + c) : Math.cos(input.hidden![t * C + c]! * (start + 1) + c * 0.3);
      seen.inputs.push({ ...input });
      let out: { hidden?: Float32Array; tokens?: Int32Array };
      if (end < L) out = { hidden: x };
      else {
        const tokens = new Int32Array(input.chunks.length);
        let at = 0;
        input.chunks.forEach((n, i) => {
          at += n;
          tokens[i] = Math.floor(Math.abs(x[(at - 1) * C]!) * 1000) % 50;
        });
        out = { tokens };
      }
      seen.outputs.push(out);
      return out;
    },
    close: () => {},
  };
}

interface Run {
  settled: { peerId: string; inCommit: string; outCommit: string }[];
  seen: Map<string, Seen>;
  tokens: number[];
  failovers: number;
}

/** A 3-hop generation ([0,2) [2,4) [4,6)); with `failover`, the middle hop dies on its third call and b2 takes over. */
async function generate(commits: HopCommitQueue | null, failover: boolean): Promise<Run> {
  const holders: HolderView[] = [
    { peerId: 'a', span: { start: 0, end: 2 }, alive: true, rttMs: 1 },
    { peerId: 'b1', span: { start: 2, end: 4 }, alive: true, rttMs: 1 },
    { peerId: 'c', span: { start: 4, end: 6 }, alive: true, rttMs: 1 },
    ...(failover ? [{ peerId: 'b2', span: { start: 2, end: 4 }, alive: true, rttMs: 50 }] : []),
  ];
  const seen = new Map<string, Seen>();
  let settled: Run['settled'] = [];
  let n = 0;
  const deps: DriverDeps = {
    model,
    holders: () => holders,
    opener: {
      open: (h) => {
        const s: Seen = { inputs: [], outputs: [] };
        seen.set(h.peerId, s);
        return hop(h.span.start, h.span.end, s, failover && h.peerId === 'b1' ? 3 : undefined);
      },
    },
    bans: new BanList(),
    now: () => performance.now(),
    random: () => 0,
    newSessionId: () => `s${++n}`,
    options: { ...DRIVER_DEFAULTS, stepTimeoutMs: 5000, msPerPosition: 0, openTimeoutMs: 0 },
    commits,
    settle: async (hops: SettleHop[]) => {
      settled = hops.map((h) => ({ peerId: h.peerId, inCommit: Buffer.from(h.inCommit).toString('hex'), outCommit: Buffer.from(h.outCommit).toString('hex') }));
      return { status: 'skipped', reason: 'test' };
    },
  };
  const r = await runGeneration({ prompt: 'x', maxTokens: 6, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] }, deps, {}, new AbortController().signal);
  return { settled, seen, tokens: r.tokens, failovers: r.failovers };
}

/** The pair a hop's commitments should hold: over every input it was sent and every output it answered. */
function expected(s: Seen): { inCommit: string; outCommit: string } {
  const i = new RunningCommitment();
  const o = new RunningCommitment();
  for (const x of s.inputs) {
    if (x.ids !== undefined) i.tokens(x.ids, x.chunks);
    else i.hidden(x.hidden!, C, x.chunks);
  }
  s.outputs.forEach((y, k) => {
    const chunks = s.inputs[k]!.chunks;
    if (y.tokens !== undefined) o.tokens(y.tokens, chunks.map(() => 1));
    else o.hidden(y.hidden!, C, chunks);
  });
  return { inCommit: Buffer.from(i.value).toString('hex'), outCommit: Buffer.from(o.value).toString('hex') };
}

describe('entry commitments: inline and queued', () => {
  const worker = new HopCommitQueue({ batchMs: 1 });
  const local = new HopCommitQueue({ useWorker: false });
  after(async () => {
    await worker.close();
    await local.close();
  });

  for (const failover of [false, true]) {
    it(`are the same bytes on the worker, on the event loop and inline${failover ? ', through a failover' : ''}`, async () => {
      const inline = await generate(null, failover);
      const queued = await generate(worker, failover);
      const queuedHere = await generate(local, failover);
      assert.equal(inline.settled.length, 3);
      assert.equal(inline.failovers, failover ? 1 : 0);
      assert.deepEqual(queued.tokens, inline.tokens);
      assert.deepEqual(queued.settled, inline.settled);
      assert.deepEqual(queuedHere.settled, inline.settled);
      // and what the hops were sent and answered gives them, the chain linked (hop k's output is hop k+1's input)
      for (const h of inline.settled) assert.deepEqual({ inCommit: h.inCommit, outCommit: h.outCommit }, expected(inline.seen.get(h.peerId)!));
      for (let k = 1; k < inline.settled.length; k++) assert.equal(inline.settled[k]!.inCommit, inline.settled[k - 1]!.outCommit);
      if (failover) assert.deepEqual(inline.settled.map((h) => h.peerId), ['a', 'b2', 'c']);
    });
  }
});
