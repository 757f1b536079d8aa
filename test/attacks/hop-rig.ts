/**
 * The pieces the hop-transcript attack tests share (transcript-replace, transcript-access): a compute worker's
 * handler table run in-process behind the ComputeClient surface, a request with defaults, and one stream of requests
 * into a hop server's handler.
 */
import { NULL_CONTEXT } from '../../src/compute/context.js';
import type { ComputeClient } from '../../src/compute/index.js';
import { createHandlers, runHandler } from '../../src/compute/handlers.js';
import type { Job } from '../../src/compute/jobs.js';
import { ComputeState } from '../../src/compute/state.js';
import type { LlamaConfig } from '../../src/model/index.js';
import type { InferenceHopServer } from '../../src/protocols/inference.js';
import type { InferenceRequest, InferenceResponse } from '../../src/protocols/pb/node.js';

/** The worker's handler table in-process, behind the ComputeClient surface the hop, the claim and the validator use. */
export async function inProcessWorker(config: LlamaConfig, span: { start: number; end: number }): Promise<ComputeClient> {
  const state = await ComputeState.create({ backend: 'reference' });
  const h = createHandlers(state);
  const client = { info: { description: 'reference (test)' }, run: async (job: Job) => runHandler(h, job, NULL_CONTEXT) } as unknown as ComputeClient;
  await client.run({ type: 'initModel', config, seed: 3, span });
  return client;
}

export function request(fields: Partial<InferenceRequest>): InferenceRequest {
  return { sessionId: 's', requestId: '1', tokens: [], positionOffset: 0, endSession: false, chunks: [], maxLength: 0, temperature: 0, topK: 0, topP: 0, seed: 0, ...fields };
}

/** One stream of `reqs` from `peer` at `remoteAddr` into the hop's handler; resolves with its answers (throws what ended it). */
export async function stream(server: InferenceHopServer, peer: string, remoteAddr: string, reqs: InferenceRequest[]): Promise<InferenceResponse[]> {
  async function* source(): AsyncGenerator<InferenceRequest> {
    yield* reqs;
  }
  const out: InferenceResponse[] = [];
  for await (const r of server.handler()(source(), { peer, remoteAddr, limited: false, signal: new AbortController().signal })) out.push(r);
  return out;
}
