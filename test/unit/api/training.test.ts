/** GET /api/training (src/api/training.ts): the provider's report as JSON, 503 before the node has started. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiServer } from '../../../src/api/server.js';
import type { TrainingReport } from '../../../src/api/training.js';
import { trainingReport } from '../../../src/node/diloco.js';

const STATUS = { status: () => ({ peerId: '', networkId: null, version: '0', addresses: [], span: null, uptimeMs: 0, peers: { known: 0, alive: 0 } }), peers: () => [] };

describe('GET /api/training', () => {
  it('serves the report, and 503 until there is one', async () => {
    let report: TrainingReport | undefined;
    const api = new ApiServer({ port: 0 }, { status: STATUS, training: { training: () => report } });
    try {
      const r0 = await api.app.inject({ method: 'GET', url: '/api/training', headers: { host: '127.0.0.1:8000' } });
      assert.equal(r0.statusCode, 503);
      report = trainingReport(
        {
          round: 4,
          innerStep: 12,
          phase: 'inner',
          bytesSent: 100,
          bytesReceived: 300,
          lastRound: { round: 3, outcome: { embed: 'closed' }, accepted: 3, rejected: 1, records: {}, refused: [{ from: 'p', code: 'CONTRIBUTION_BAD_SIGNATURE' }], late: [], repaired: [], split: [], diverged: [], members: [], waived: [], syncMs: 42 },
          hashes: { embed: 'ab'.repeat(32) },
          kept: { rounds: [0, 1, 2, 3], bytes: 4096 },
        },
        { innerStep: 12, trainLoss: 5.5, valLoss: 5.7, tokensPerSec: 900 },
      );
      const r1 = await api.app.inject({ method: 'GET', url: '/api/training', headers: { host: '127.0.0.1:8000' } });
      assert.equal(r1.statusCode, 200);
      const body = r1.json() as TrainingReport;
      assert.equal(body.round, 4);
      assert.equal(body.outerSync.bytesReceived, 300);
      assert.deepEqual(body.outerSync.lastRound, { round: 3, accepted: 3, rejected: 1, late: [], refused: [{ from: 'p', code: 'CONTRIBUTION_BAD_SIGNATURE' }], repaired: [], diverged: [], syncMs: 42 });
      assert.deepEqual(body.layerHashes, { embed: 'ab'.repeat(32) });
      assert.deepEqual(body.outerSync.kept, { rounds: [0, 1, 2, 3], bytes: 4096 });
      // a node that does not train: round null
      report = trainingReport(undefined, { innerStep: 0, trainLoss: null, valLoss: null, tokensPerSec: 0 });
      const r2 = await api.app.inject({ method: 'GET', url: '/api/training', headers: { host: '127.0.0.1:8000' } });
      assert.equal((r2.json() as TrainingReport).round, null);
    } finally {
      await api.close();
    }
  });
});
