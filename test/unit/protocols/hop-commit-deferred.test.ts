/**
 * A hop takes its hidden-state commitments after it writes each answer (on the commitment worker, hop-commit-queue.ts): the pair it
 * signs must be the one computed step by step, also when the commit request is read before the deferred work ran,
 * and a step whose chunks do not cover its rows is still refused (a typed BAD_STEP) before it runs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate } from '../../../src/identity/index.js';
import { RunningCommitment } from '../../../src/ledger/commitment.js';
import type { InferenceRequest, InferenceResponse } from '../../../src/protocols/pb/node.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, type HopCompute } from '../../../src/protocols/inference.js';
import { fp32Tensor, tensorToPb } from '../../../src/protocols/tensor-wire.js';
import { isNeuroShardError } from '../../../src/util/errors.js';

const C = 16;

/** A middle hop [1, 2) whose output is a fixed function of its input (so the test knows both). */
function affineHop(): HopCompute {
  return {
    span: () => ({ start: 1, end: 2 }),
    numLayers: 3,
    hiddenSize: C,
    vocabSize: 10,
    contextLength: 64,
    kvBytesPerPosition: () => 0,
    open: async () => {},
    step: async (_id, input) => ({ hidden: input.hidden!.map((x, i) => x * 2 + (i % 5)) }),
    close: async () => {},
  };
}

function request(seq: number, fields: Partial<InferenceRequest>): InferenceRequest {
  return { sessionId: 's1', requestId: String(seq), tokens: [], positionOffset: 0, endSession: false, chunks: [], maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0, ...fields };
}

describe('hop commitments taken after the answer', () => {
  it('the signed pair equals the step-by-step commitments, with the commit request read at once after the last step', async () => {
    const key = keyFromPrivate(randomBytes(32));
    const server = new InferenceHopServer(affineHop(), HOP_LIMIT_DEFAULTS, undefined, undefined, { networkId: 'n', key, submitCompletion: async () => new Uint8Array(32) });
    const inputs = [5, 1, 1].map((T, s) => Float32Array.from({ length: T * C }, (_, i) => Math.sin(s * 100 + i)));
    const chunks = [[3, 2], [1], [1]];
    const reqs = inputs.map((x, s) =>
      request(s + 1, { hidden: tensorToPb(fp32Tensor(x, [x.length / C, C])), chunks: chunks[s]!, ...(s === 0 ? { maxLength: 16, targetSpan: { start: 1, end: 2 } } : {}) }),
    );
    reqs.push(request(4, { commitRequest: new Uint8Array(32).fill(7), commitIndex: 1, commitCount: 3 }));
    // all requests at once: the commit request is taken in the same tick as the last step's answer, before its
    // deferred records (setImmediate) could run
    async function* source(): AsyncGenerator<InferenceRequest> {
      yield* reqs;
    }
    const out: InferenceResponse[] = [];
    for await (const r of server.handler()(source(), { peer: 'caller', limited: false, signal: new AbortController().signal })) out.push(r);
    assert.equal(out.length, 4);
    const wantIn = new RunningCommitment();
    const wantOut = new RunningCommitment();
    inputs.forEach((x, s) => {
      wantIn.hidden(x, C, chunks[s]!);
      wantOut.hidden(x.map((v, i) => v * 2 + (i % 5)), C, chunks[s]!);
    });
    assert.deepEqual(Uint8Array.from(out[3]!.inCommit!), wantIn.value);
    assert.deepEqual(Uint8Array.from(out[3]!.outCommit!), wantOut.value);
  });

  it('a step whose chunks do not cover its rows is refused before it runs', async () => {
    let ran = 0;
    const hop = { ...affineHop(), step: async () => ((ran += 1), { hidden: new Float32Array(2 * C) }) };
    const server = new InferenceHopServer(hop, HOP_LIMIT_DEFAULTS);
    const x = new Float32Array(2 * C);
    async function* source(): AsyncGenerator<InferenceRequest> {
      yield request(1, { hidden: tensorToPb(fp32Tensor(x, [2, C])), chunks: [1], maxLength: 16, targetSpan: { start: 1, end: 2 } });
    }
    await assert.rejects(async () => {
      for await (const _ of server.handler()(source(), { peer: 'caller', limited: false, signal: new AbortController().signal })) void _;
    }, (e: unknown) => isNeuroShardError(e) && e.code === 'BAD_STEP' && e.fault === 'caller');
    assert.equal(ran, 0);
  });
});
