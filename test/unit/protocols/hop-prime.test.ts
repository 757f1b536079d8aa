/**
 * The hop server primes its compute (HopCompute.prime: the worker's native pool, from the main thread) first thing
 * for every step of a live session, before the step is checked and handed over, and never for the stream's
 * open-only frames nor its commit requests (session 24).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InferenceRequest } from '../../../src/protocols/pb/node.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer, type HopCompute } from '../../../src/protocols/inference.js';
import { fp32Tensor, tensorToPb } from '../../../src/protocols/tensor-wire.js';

const C = 8;

function request(seq: number, fields: Partial<InferenceRequest>): InferenceRequest {
  return { sessionId: 's1', requestId: String(seq), tokens: [], positionOffset: 0, endSession: false, chunks: [], maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0, ...fields };
}

describe('hop server primes its compute', () => {
  it('once per step, before the step reaches the compute; a step refused before it runs still primed', async () => {
    const events: string[] = [];
    const hop: HopCompute = {
      span: () => ({ start: 1, end: 2 }),
      numLayers: 3,
      hiddenSize: C,
      vocabSize: 10,
      contextLength: 64,
      kvBytesPerPosition: () => 0,
      open: async () => void events.push('open'),
      step: async (_id, input) => (events.push('step'), { hidden: input.hidden!.slice() }),
      close: async () => void events.push('close'),
      prime: () => void events.push('prime'),
    };
    const server = new InferenceHopServer(hop, HOP_LIMIT_DEFAULTS);
    const x = (T: number): InferenceRequest['hidden'] => tensorToPb(fp32Tensor(new Float32Array(T * C).fill(0.5), [T, C]));
    async function* source(): AsyncGenerator<InferenceRequest> {
      yield request(1, { hidden: x(3), maxLength: 16, targetSpan: { start: 1, end: 2 } });
      yield request(2, { hidden: x(1) });
      yield request(3, { hidden: x(1) });
      // hidden states of the wrong width: refused by the hop's checks, after the prime (a hint that costs nothing)
      yield request(4, { hidden: tensorToPb(fp32Tensor(new Float32Array(C + 1), [1, C + 1])) });
    }
    await assert.rejects(async () => {
      for await (const _ of server.handler()(source(), { peer: 'caller', limited: false, signal: new AbortController().signal })) void _;
    }, /hidden states must be/);
    assert.deepEqual(events, ['open', 'prime', 'step', 'prime', 'step', 'prime', 'step', 'prime', 'close']);
  });

  it('a compute without prime (optional) serves as before', async () => {
    let steps = 0;
    const hop: HopCompute = {
      span: () => ({ start: 1, end: 2 }),
      numLayers: 3,
      hiddenSize: C,
      vocabSize: 10,
      contextLength: 64,
      kvBytesPerPosition: () => 0,
      open: async () => {},
      step: async (_id, input) => ((steps += 1), { hidden: input.hidden!.slice() }),
      close: async () => {},
    };
    const server = new InferenceHopServer(hop, HOP_LIMIT_DEFAULTS);
    async function* source(): AsyncGenerator<InferenceRequest> {
      yield request(1, { hidden: tensorToPb(fp32Tensor(new Float32Array(C), [1, C])), maxLength: 16, targetSpan: { start: 1, end: 2 } });
    }
    let answers = 0;
    for await (const _ of server.handler()(source(), { peer: 'caller', limited: false, signal: new AbortController().signal })) answers += 1;
    assert.equal(answers, 1);
    assert.equal(steps, 1);
  });
});
