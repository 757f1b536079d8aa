/**
 * A node without the network's checkpoint (`--network-id`) that pins a span, on real nodes (NeuroShardNode: libp2p
 * on 127.0.0.1, compute workers): the network is founded from a Hugging Face checkpoint with 6 layers, more than
 * the bundled model's 4, so `--span 4:6` is checked against the fetched config (it was refused against the bundled
 * one before the fetch). Nobody holds layers 4:6 when the joiner places itself: having neither the checkpoint nor
 * the network's seed, it waits (it used to seed them: another model), and once a checkpoint node holds 2:6 it
 * downloads 4:6 from it, with the checkpoint's span hash.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeConfig } from '../../../src/model/config.js';
import { LlamaShard } from '../../../src/model/index.js';
import { NeuroShardNode } from '../../../src/node/node.js';
import { loadOptions } from '../../../src/node/options.js';
import { sliceSpan, spanHashOfParams } from '../../../src/pool/index.js';
import { createReferenceBackend } from '../../../src/tensor/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { createLogger } from '../../../src/util/logger.js';
import { sentencePieceTokenizerJson, SP_BASE_VOCAB, writeHfCheckpoint } from '../../utils/hf-checkpoint.js';
import { LOOPBACK_TUNING } from '../../utils/network.js';

const dirs: string[] = [];
const nodes: NeuroShardNode[] = [];
function tmp(name: string): string {
  const d = mkdtempSync(join(tmpdir(), `ns-fetched-${name}-`));
  dirs.push(d);
  return d;
}

/** A node in this process; its log lines are kept in `lines`. */
async function startNode(name: string, flags: Record<string, unknown>, lines: string[] = []): Promise<NeuroShardNode> {
  const opts = loadOptions({
    flags: { dataDir: tmp(name), listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, mdns: false, upnp: false, train: false, threads: 1, heartbeatIntervalMs: 300, peerStaleMs: 1500, peerDeadMs: 4000, ...flags },
    env: {},
  });
  const log = createLogger({ level: 'info', module: name, write: (l) => lines.push(l) });
  const n = await NeuroShardNode.init(opts, { log, networkTuning: { ...LOOPBACK_TUNING, recordTtlMs: 60_000, republishMs: 5_000 }, poolTuning: { tickMs: 400, settleMs: 2000 } });
  nodes.push(n);
  return n;
}

describe('a --network-id joiner pinned to layers nobody holds yet', { timeout: 600_000 }, () => {
  after(async () => {
    for (const n of nodes) await n.close().catch(() => {});
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('checks the span against the fetched config, waits for holders instead of seeding, then downloads the checkpoint layers', async () => {
    const config = makeConfig({ hidden_size: 64, num_hidden_layers: 6, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 32, intermediate_size: 128, vocab_size: SP_BASE_VOCAB, max_position_embeddings: 64, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 });
    const model = new LlamaShard({ config, backend: createReferenceBackend(), seed: 7 });
    const ckpt = tmp('ckpt');
    writeHfCheckpoint(ckpt, model, { tokenizer: sentencePieceTokenizerJson(), tokenizerConfig: { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' }, generationConfig: { eos_token_id: [2], do_sample: false } });
    const L = config.num_hidden_layers;

    const genesis = await startNode('genesis', { genesis: true, checkpoint: ckpt, span: '0:2' });
    await waitFor(() => genesis.pool?.span() !== undefined, { timeoutMs: 120_000, intervalMs: 200, what: 'the genesis node to hold 0:2' });
    const boot = genesis.network.p2p.multiaddrs().map((a) => (a.includes('/p2p/') ? a : `${a}/p2p/${genesis.network.peerId}`));

    const lines: string[] = [];
    const joiner = await startNode('joiner', { networkId: genesis.genesis.networkId, bootstrap: boot, span: '4:6' }, lines);
    assert.equal(joiner.pool!.modelConfig().num_hidden_layers, L, 'the joiner sizes by the fetched config');
    await waitFor(() => lines.some((l) => l.includes('waiting for live holders of every layer of the span')), { timeoutMs: 120_000, intervalMs: 200, what: 'the joiner waiting for holders of 4:6' });
    assert.equal(joiner.pool!.span(), undefined, 'no weights of its own');

    const holder = await startNode('holder', { checkpoint: ckpt, bootstrap: boot, span: '2:6' });
    await waitFor(() => holder.pool?.span() !== undefined, { timeoutMs: 120_000, intervalMs: 200, what: 'the checkpoint node to hold 2:6' });
    await waitFor(() => joiner.pool?.span() !== undefined, { timeoutMs: 240_000, intervalMs: 200, what: 'the joiner to hold 4:6' });
    assert.deepEqual(joiner.pool!.span(), { start: 4, end: 6 });
    const span = { start: 4, end: 6 };
    assert.equal(joiner.pool!.modelHash(), spanHashOfParams(config, span, sliceSpan(config, { start: 0, end: L }, model.params, span)));
    // the pool holds the span a moment before it announces it
    await waitFor(() => lines.some((l) => /holding layers span=4:6 source=peers/.test(l)), { timeoutMs: 60_000, intervalMs: 200, what: 'the joiner announcing 4:6 from peers' });
  });
});
