/**
 * The node's own span as a pipeline stage: every op is a `stage` job in the compute worker (training/pipeline/ops.ts),
 * so the chain's math never runs on the event loop. Arrays sent are copied (the driver may still need them).
 */
import { OpStage, type StageOp, type StageOpResult } from '../training/pipeline/index.js';
import type { Span } from '../model/layout.js';
import type { ComputeClient } from './client.js';

export function workerStageTransport(client: ComputeClient): (o: StageOp, signal?: AbortSignal) => Promise<StageOpResult> {
  return (o, signal) => client.run({ type: 'stage', o }, { copy: true, ...(signal === undefined ? {} : { signal }) });
}

/** An OpStage over the worker's loaded span. */
export function workerStage(client: ComputeClient, span: Span, numLayers: number): OpStage {
  return new OpStage(span, numLayers, workerStageTransport(client));
}
