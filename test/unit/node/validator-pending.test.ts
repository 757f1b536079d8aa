/**
 * The node's validator (src/node/validator.ts) looks at completions its ledger applies after a deferred replay: an
 * event ingested while a replay is pending (a sync that reaches back before the tip) is 'pending' until the replay
 * runs, and the validator keeps up to 256 such ids to look at again. Until review2 (session 28) it kept the ids of
 * every kind, so a sync's first 256 pending events (proofs, transfers) took every place and a completion after them
 * was never looked at: its hops went unvalidated on this node. Real SQLite ledgers and LedgerService over the
 * in-memory ledger hub; the validator's RPC on the in-memory network.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ComputeClient } from '../../../src/compute/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildMarketRequest, buildServedCompletion } from '../../../src/ledger/build.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { MemoryLedgerHub } from '../../../src/ledger/memory-network.js';
import { LedgerService } from '../../../src/ledger/service.js';
import { makeConfig } from '../../../src/model/index.js';
import type { NodeLedgerService } from '../../../src/node/ledger.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { startNodeValidator } from '../../../src/node/validator.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { waitFor } from '../../../src/util/abort.js';
import { ManualClock } from '../../../src/util/clock.js';
import { tempDir } from '../../utils/paths.js';
import { env, LAYERS, NET, T0, testKey, uptimeProof } from '../ledger/helpers.js';

const MIN = 60_000;

describe('node validator: completions applied by a replay', () => {
  it('a completion synced after 300 other pending events is looked at once the replay applied it', async () => {
    const t = tempDir('neuroshard-valpending-');
    const [Q, D, H, V, Z] = [41, 42, 43, 44, 45].map(testKey) as [ReturnType<typeof testKey>, ReturnType<typeof testKey>, ReturnType<typeof testKey>, ReturnType<typeof testKey>, ReturnType<typeof testKey>];
    const open = (name: string): Ledger => new Ledger({ path: join(t.dir, `${name}.db`), networkId: NET, modelLayers: LAYERS });
    const source = open('source');
    const mine = open('validator');
    const hub = new MemoryLedgerHub();
    const clock = new ManualClock(T0 + 131 * MIN);
    const srcService = new LedgerService({ ledger: source, network: hub.join('source'), clock, verifyThreads: 0 });
    const service = new LedgerService({ ledger: mine, network: hub.join('validator'), clock, verifyThreads: 0 });
    const p2p = new MemoryHub().createNode('v');
    await p2p.start();
    const rpc = new RpcNode({ network: p2p, networkId: NET });
    const judged: string[] = [];
    let stop: (() => Promise<void>) | undefined;
    try {
      // the source's history: the requester's proofs (its funds), 300 proofs of three others, a request and its completion
      for (let m = 0; m < 125; m++) assert.equal(source.ingest(uptimeProof(Q, T0 + m * MIN)).status, 'applied');
      for (const k of [D, H, Z]) for (let m = 0; m < 100; m++) assert.equal(source.ingest(uptimeProof(k, T0 + m * MIN + 1000)).status, 'applied');
      const q = buildMarketRequest(Q, env(1, T0 + 125 * MIN), { maxTokens: 100, maxPricePerMillion: 150n * NEURO, expiresAtMs: T0 + 135 * MIN });
      assert.equal(source.ingest(q.bytes).status, 'applied');
      const c = buildServedCompletion(env(1, T0 + 126 * MIN), { requestId: q.id, tokensUsed: 4, requester: Q, hops: [D, H], commits: [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), new Uint8Array(32).fill(3)] });
      assert.equal(source.ingest(c.bytes).status, 'applied', source.eventStatus(c.id)?.reason);
      // the validator's ledger holds one later event, so everything the sync brings sorts before its tip: 'pending'
      assert.equal(mine.ingest(uptimeProof(V, T0 + 130 * MIN)).status, 'applied');
      srcService.start();
      service.start();
      const network = { rpc, liveness: { snapshot: () => [] }, scores: { isBanned: () => false } } as unknown as NodeNetwork;
      const v = await startNodeValidator({
        key: V,
        networkId: NET,
        network,
        compute: {} as ComputeClient, // never reached: the validator serves no span (every sampled hop: NOT_SERVING)
        config: makeConfig({ hidden_size: 8, num_hidden_layers: LAYERS, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 16, vocab_size: 16, max_position_embeddings: 8 }),
        span: () => undefined,
        ledger: { ledger: mine, service } as unknown as NodeLedgerService,
        rate: 1,
        clock,
        onVerdicts: (id) => judged.push(id),
      });
      stop = () => v.stop();
      let pendingSeen = 0;
      const off = service.on('ledger:ingested', ({ result }) => {
        if (result.status === 'pending') pendingSeen++;
      });
      await service.syncAll();
      off();
      assert.ok(pendingSeen > 256, `${pendingSeen} events were pending`);
      assert.equal(mine.eventStatus(c.id)?.status, 'applied');
      const id = Buffer.from(c.id).toString('hex');
      // the validator looks at pending ids once a second
      await waitFor(() => judged.includes(id), { timeoutMs: 5_000, intervalMs: 20, what: 'the validator to look at the completion' });
    } finally {
      await stop?.();
      service.stop();
      srcService.stop();
      await rpc.close();
      await p2p.stop();
      mine.close();
      source.close();
      t.cleanup();
    }
  });
});
