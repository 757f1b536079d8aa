/**
 * GET /api/training: this node's training as DiLoCo sees it (issue 9):
 *
 *   {"round", "innerStep", "trainLoss", "valLoss", "tokensPerSec",
 *    "outerSync": {"bytesSent", "bytesReceived", "lastRound": {"round", "accepted", "rejected", "late", "refused",
 *                  "repaired", "diverged", "syncMs"} | null, "kept": {"rounds": [n], "bytes"}},
 *    "layerHashes": {"embed": hex, "layers.<i>": hex, "head": hex}}
 *
 * `round` is null on a node that does not train; `layerHashes` are the model hashes (model/hash.ts) of the held
 * layers at the last round boundary, which every holder of a layer shares; `diverged` names the layers this node could
 * not bring to the hash vote's winner (the next round's vote repairs them). 503 until the node has started.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';

export interface TrainingReport {
  round: number | null;
  innerStep: number;
  trainLoss: number | null;
  valLoss: number | null;
  tokensPerSec: number;
  outerSync: {
    bytesSent: number;
    bytesReceived: number;
    lastRound: { round: number; accepted: number; rejected: number; late: string[]; refused: { from: string; code: string }[]; repaired: string[]; diverged: string[]; syncMs: number } | null;
    /** The closed rounds the outer sync keeps for the hash vote and joiners (training/keep.ts) and their snapshots' bytes. */
    kept: { rounds: number[]; bytes: number };
  };
  layerHashes: Record<string, string>;
}

export interface TrainingProvider {
  training(): TrainingReport | undefined;
}

type SendError = (reply: FastifyReply, status: number, code: string, message: string) => FastifyReply;

export function registerTrainingRoutes(app: FastifyInstance, provider: TrainingProvider, sendError: SendError): void {
  app.get('/api/training', async (_req, reply) => {
    const t = provider.training();
    if (t === undefined) return sendError(reply, 503, 'not_ready', 'the node has not started yet');
    return reply.type('application/json; charset=utf-8').send(t);
  });
}
