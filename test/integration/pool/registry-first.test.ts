/**
 * An auto joiner that learns a holder from the layer registry before it hears the holder's heartbeats, on real nodes
 * (NeuroShardNode: libp2p on 127.0.0.1, compute workers). The network is founded from a checkpoint (seed 1234, not
 * the bundled seed 0), so seeded weights are another model. The genesis node holds 0:2; a second checkpoint node
 * holds 2:4 but publishes one heartbeat only, at its start before it held anything (a heartbeat period of an hour):
 * the joiner, with memory for the whole model, hears the genesis node's heartbeats and finds the other holder only
 * in the registry. That ordering is the race made deterministic: the joiner used to choose 0:4 on the view with the
 * registry's holder, check its weight sources on the heartbeats alone (2:4 held by nobody) and seed the span
 * locally, so that its span hash was seed 0's. Now it downloads only from live holders whose signed record it
 * verified: it waits, and once a holder of 2:4 that heartbeats comes, it downloads 0:4 with the checkpoint's hash.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NANO, type LlamaConfig } from '../../../src/model/index.js';
import { NeuroShardNode } from '../../../src/node/node.js';
import { loadOptions } from '../../../src/node/options.js';
import { extraWeightBytes, layerMb, spanHashOfParams } from '../../../src/pool/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { createLogger } from '../../../src/util/logger.js';
import { LOOPBACK_TUNING } from '../../utils/network.js';
import { bootAddrs, genesisCheckpoint, POOL_NODE_FLAGS } from '../../utils/pool-net.js';

const CONFIG: LlamaConfig = { ...NANO };
const L = CONFIG.num_hidden_layers;
/** Memory for the whole model plus the embedding and head. */
const FULL_MB = Math.ceil(extraWeightBytes(CONFIG) / (1 << 20)) + L * layerMb(CONFIG) + 1;

const dirs: string[] = [];
const nodes: NeuroShardNode[] = [];
function tmp(name: string): string {
  const d = mkdtempSync(join(tmpdir(), `ns-regfirst-${name}-`));
  dirs.push(d);
  return d;
}

/** A node in this process; its log lines are kept in `lines`. */
async function startNode(name: string, flags: Record<string, unknown>, lines: string[] = []): Promise<NeuroShardNode> {
  const opts = loadOptions({ flags: { dataDir: tmp(name), ...POOL_NODE_FLAGS, ...flags }, env: {} });
  const log = createLogger({ level: 'info', module: name, write: (l) => lines.push(l) });
  const n = await NeuroShardNode.init(opts, { log, networkTuning: { ...LOOPBACK_TUNING, recordTtlMs: 60_000, republishMs: 5_000 }, poolTuning: { tickMs: 400, settleMs: 2000 } });
  nodes.push(n);
  return n;
}

describe('an auto joiner that finds a holder in the registry before its heartbeats', { timeout: 600_000 }, () => {
  after(async () => {
    for (const n of nodes) await n.close().catch(() => {});
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('never seeds the span: it waits for a live holder with a verified record, then downloads the checkpoint weights', async () => {
    const { dir: ckpt, params } = await genesisCheckpoint(CONFIG, 1234, tmp('ckpt'));
    const genesis = await startNode('genesis', { genesis: true, checkpoint: ckpt, span: '0:2' });
    await waitFor(() => genesis.pool?.span() !== undefined, { timeoutMs: 120_000, intervalMs: 200, what: 'the genesis node to hold 0:2' });
    const boot = bootAddrs(genesis);

    // the silent holder: one heartbeat at start (no span yet), then none for an hour; its record is in the registry
    const silent = await startNode('silent', { checkpoint: ckpt, bootstrap: boot, span: '2:4', heartbeatIntervalMs: 3_600_000 });
    await waitFor(() => silent.pool?.span() !== undefined, { timeoutMs: 120_000, intervalMs: 200, what: 'the silent node to hold 2:4' });
    const silentTag = silent.network.peerId.slice(-8);

    const lines: string[] = [];
    const joiner = await startNode('joiner', { bootstrap: boot, memoryMb: FULL_MB }, lines);
    // the joiner places on a view in which the registry names the silent holder (the ordering under test) ...
    await waitFor(() => lines.some((l) => l.includes('the registry names holders not heard from yet') && l.includes(silentTag)), { timeoutMs: 180_000, intervalMs: 200, what: 'the joiner to find the silent holder in the registry' });
    const at = lines.findIndex((l) => l.includes('the registry names holders not heard from yet') && l.includes(silentTag));
    // ... and decides: it held a span (seeded: the bug) or found none it can download
    await waitFor(() => joiner.pool!.span() !== undefined || lines.slice(at).some((l) => l.includes('the layer pool found no span for this node yet')), { timeoutMs: 60_000, intervalMs: 100, what: 'the joiner to decide on that view' });
    assert.equal(joiner.pool!.span(), undefined, `the joiner took ${JSON.stringify(joiner.pool!.span())} with hash ${joiner.pool!.modelHash().slice(0, 12)}: seeded, not downloaded`);

    // a holder of 2:4 that heartbeats: the joiner downloads 0:4 from it and the genesis node, verified
    const holder = await startNode('holder', { checkpoint: ckpt, bootstrap: boot, span: '2:4' });
    await waitFor(() => holder.pool?.span() !== undefined, { timeoutMs: 120_000, intervalMs: 200, what: 'the second holder to hold 2:4' });
    await waitFor(() => joiner.pool!.span() !== undefined, { timeoutMs: 240_000, intervalMs: 200, what: 'the joiner to hold a span' });
    const whole = { start: 0, end: L };
    assert.deepEqual(joiner.pool!.span(), whole);
    assert.equal(joiner.pool!.modelHash(), spanHashOfParams(CONFIG, whole, params), 'the checkpoint weights, not seed 0');
    await waitFor(() => lines.some((l) => l.includes('weights fetched from peers and verified')), { timeoutMs: 60_000, intervalMs: 200, what: 'the joiner to log its verified download' });
  });
});
