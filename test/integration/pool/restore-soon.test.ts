/**
 * Replicas are restored seconds after a holder stops gracefully (session 30), on real nodes (NeuroShardNode: libp2p
 * on 127.0.0.1, compute workers, SQLite ledgers) at the production pool timing (the 10 s tick, the default early
 * round): a genesis node from a fixed checkpoint holds the whole model; three joiners with memory for half of it
 * each take halves, two on one half and one on the other. The lone joiner of its half is stopped (`close()`: a signed
 * leaving heartbeat, its peers mark it dead at once): its half is left with one live holder, and a joiner of the
 * other half moves onto it. Measured: the time from the stop to every layer having 2 live holders again (the
 * survivors' own spans and the genesis node's view) with every survivor's weights hashing to the checkpoint's.
 *
 * Before the early round the move waited for three planning rounds a tick apart (20-30 s after the leave, plus the
 * download); now a death asks for a round `earlyMs` (2 s) later and a restore of the dead holder's layers is made on
 * the second round, `earlyMs` after that.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NANO, type LlamaConfig } from '../../../src/model/index.js';
import type { NeuroShardNode } from '../../../src/node/node.js';
import { POOL_TUNING_DEFAULTS } from '../../../src/node/pool.js';
import { coverage, extraWeightBytes, layerMb, sliceSpan, spanHashOfParams, type PoolView } from '../../../src/pool/index.js';
import { bootAddrs, genesisCheckpoint, poolNet, waitFor } from '../../utils/pool-net.js';

const CONFIG: LlamaConfig = { ...NANO };
const L = CONFIG.num_hidden_layers;
/** Memory for L/2 layers plus the embedding and head. */
const HALF_MB = Math.ceil(extraWeightBytes(CONFIG) / (1 << 20)) + (L / 2) * layerMb(CONFIG) + 1;
/** The bound on stop → every layer back at 2 live holders with verified weights (before: ~20-30 s plus the move). */
const RESTORE_BOUND_MS = 15_000;

// the production tick (10 s): what the old timing was measured against; a short settle so that joiners place on
// their second tick
const net = poolNet({ prefix: 'restore-soon', tickMs: POOL_TUNING_DEFAULTS.tickMs, settleMs: 1500 });

function liveReplicas(v: PoolView, exclude: Set<string>): number[] {
  return coverage({ numLayers: v.numLayers, holders: v.holders.filter((h) => !exclude.has(h.peerId) && h.state === 'alive') }).replicas;
}

describe('replicas restored soon after a holder leaves', { timeout: 600_000 }, () => {
  let checkpointDir = '';
  let fullParams: Float32Array;

  before(async () => {
    ({ dir: checkpointDir, params: fullParams } = await genesisCheckpoint(CONFIG, 1234, net.tmp('ckpt')));
  });

  after(() => net.close());

  it(`the lone holder of a half stops gracefully: every layer has 2 live holders with verified weights within ${RESTORE_BOUND_MS} ms`, async (t) => {
    const genesis = await net.start('genesis', { genesis: true, checkpoint: checkpointDir });
    await waitFor(() => genesis.pool?.span() !== undefined, 60_000, 'the genesis node to hold its span');
    assert.deepEqual(genesis.pool!.span(), { start: 0, end: L });
    const boot = bootAddrs(genesis);
    const joiners: NeuroShardNode[] = [];
    for (let i = 0; i < 3; i++) {
      const j = await net.start(`j${i}`, { bootstrap: boot, memoryMb: HALF_MB });
      joiners.push(j);
      await waitFor(() => j.pool?.span() !== undefined, 120_000, `joiner ${i} to hold a span`);
      // the next joiner must hear this one before it places (pool.test.ts)
      await waitFor(() => genesis.pool!.view().holders.some((h) => h.peerId === j.network.peerId && h.state === 'alive'), 60_000, `joiner ${i} alive in the genesis node's view`);
    }
    const verified = (n: NeuroShardNode): boolean => {
      const s = n.pool!.span();
      return s !== undefined && n.pool!.modelHash() === spanHashOfParams(CONFIG, s, sliceSpan(CONFIG, { start: 0, end: L }, fullParams, s));
    };
    // two joiners on one half, one on the other (a third joiner on a half already held twice is put right by the pool)
    const onHalf = (start: number): NeuroShardNode[] => joiners.filter((j) => j.pool!.span()?.start === start);
    await waitFor(() => Math.min(onHalf(0).length, onHalf(L / 2).length) === 1 && joiners.every(verified), 120_000, 'joiners placed 2/1 over the halves');
    const lone = onHalf(0).length === 1 ? onHalf(0)[0]! : onHalf(L / 2)[0]!;
    const loneSpan = { ...lone.pool!.span()! };
    const survivors = [genesis, ...joiners.filter((j) => j !== lone)];
    const gone = new Set([lone.network.peerId]);
    await waitFor(() => liveReplicas(genesis.pool!.view(), new Set()).every((r) => r >= 2), 60_000, 'every layer at 2 live holders before the stop');

    const t0 = Date.now();
    await lone.close();
    const closedMs = Date.now() - t0;
    const restored = (): boolean => {
      const own = coverage({ numLayers: L, holders: survivors.map((s) => ({ peerId: s.network.peerId, span: s.pool!.span()!, state: 'alive' as const, tokensPerSec: 1, memoryMb: 0 })) });
      return own.replicasMin >= 2 && survivors.every(verified) && liveReplicas(genesis.pool!.view(), gone).every((r) => r >= 2);
    };
    // bounded generously so that the old timing can be measured with this test too; the assertion below is the bound
    await waitFor(restored, 90_000, 'every layer back to 2 live holders with verified weights');
    const ms = Date.now() - t0;
    t.diagnostic(`stop → every layer at 2 live holders with verified weights: ${ms} ms (close() took ${closedMs} ms)`);
    if (process.env.POOL_TEST_LOG !== undefined) console.error(`restored ${ms} ms after the stop (close ${closedMs} ms)`);
    assert.ok(ms < RESTORE_BOUND_MS, `restored ${ms} ms after the stop (bound ${RESTORE_BOUND_MS} ms)`);
    // a joiner of the other half moved onto the lone joiner's half
    assert.ok(joiners.some((j) => j !== lone && j.pool!.span()!.start === loneSpan.start), 'a joiner moved onto the half left with one holder');
  });
});
