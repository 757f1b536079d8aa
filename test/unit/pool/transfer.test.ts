/**
 * The checkpoint stream between real RpcNodes over the in-memory network: honest holders, a holder that sends bad
 * bytes under honest hashes, one that announces a different hash, a stream that breaks half-way (resumed at the
 * next holder), and a lone holder (the genesis case).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NANO, ParamLayout, type LlamaConfig } from '../../../src/model/index.js';
import { initParams } from '../../../src/model/init.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { PeerScoreTable } from '../../../src/p2p/peer-score.js';
import * as methods from '../../../src/protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../../../src/protocols/pb/node.js';
import { RpcNode, type CallContext } from '../../../src/protocols/rpc/service.js';
import { checkpointHandler, downloadSpan, fetchConfig, WeightsUnavailableError } from '../../../src/pool/transfer.js';
import { sliceSpan, spanHashOfParams } from '../../../src/pool/weights.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { createLogger } from '../../../src/util/logger.js';

const NET = 'pooltest01';
const CONFIG: LlamaConfig = { ...NANO };
const L = CONFIG.num_hidden_layers;

function modelParams(seed: number): Float32Array {
  const layout = new ParamLayout(CONFIG);
  const flat = new Float32Array(layout.size);
  initParams(layout, flat, seed);
  return flat;
}

type Behaviour = 'honest' | 'corrupt' | 'liar' | 'breaks';

async function swarm(behaviours: Behaviour[], chunkBytes = 64 * 1024) {
  const hub = new MemoryHub();
  const client = hub.createNode('client');
  await client.start();
  const scores = new PeerScoreTable();
  const rpc = new RpcNode({ network: client, networkId: NET, scores });
  const good = modelParams(0);
  const peers: string[] = [];
  for (const [i, b] of behaviours.entries()) {
    const id = `holder${i}`;
    const n = hub.createNode(id);
    await n.start();
    const r = new RpcNode({ network: n, networkId: NET, scores: new PeerScoreTable() });
    const params = b === 'liar' ? modelParams(1) : good;
    const inner = checkpointHandler({ config: () => CONFIG, held: () => ({ start: 0, end: L }), params: () => Promise.resolve(params) }, chunkBytes);
    const handler = async function* (req: CheckpointRequest, ctx: CallContext): AsyncGenerator<CheckpointChunk> {
      let sent = 0;
      for await (const c of inner(req, ctx)) {
        if (b === 'corrupt' && c.data.byteLength > 0) {
          const data = c.data.slice();
          data[0] = data[0]! ^ 0xff;
          yield { ...c, data };
        } else yield c;
        if (b === 'breaks' && c.data.byteLength > 0 && ++sent === 2) throw new Error('connection lost');
      }
    };
    await r.handle(methods.checkpoint, handler);
    peers.push(id);
  }
  return { rpc, scores, peers, good };
}

describe('checkpoint stream', () => {
  it('downloads a span from several holders in parallel, verified, equal to the source weights', async () => {
    const s = await swarm(['honest', 'honest', 'honest']);
    const span = { start: 1, end: L };
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span, holdersOf: () => s.peers });
    const want = sliceSpan(CONFIG, { start: 0, end: L }, s.good, span);
    assert.deepEqual(d.params, want);
    assert.equal(d.hash, spanHashOfParams(CONFIG, span, want));
    assert.ok(d.sources.length >= 2, 'units come from more than one holder');
    assert.equal(d.retries, 0);
  });

  it('a holder sending bad bytes under honest hashes is penalised and the unit is fetched elsewhere', async () => {
    const s = await swarm(['corrupt', 'honest', 'honest']);
    const span = { start: 0, end: L };
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span, holdersOf: () => s.peers });
    assert.deepEqual(d.params, s.good);
    assert.ok(!d.sources.includes('holder0'));
    assert.ok(s.scores.score('holder0') !== 0, 'the corrupting holder lost score');
    assert.ok(d.retries >= 1);
  });

  it('a holder announcing other weights is outvoted by two agreeing holders and never used', async () => {
    const s = await swarm(['liar', 'honest', 'honest']);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: 2 }, holdersOf: () => s.peers });
    assert.deepEqual(d.params, sliceSpan(CONFIG, { start: 0, end: L }, s.good, { start: 0, end: 2 }));
    assert.ok(!d.sources.includes('holder0'));
  });

  it('two holders that disagree: a typed error, nothing returned', async () => {
    const s = await swarm(['liar', 'honest']);
    await assert.rejects(
      downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: 1 }, holdersOf: () => s.peers }),
      (e: unknown) => e instanceof WeightsUnavailableError && e.code === 'CHECKPOINT_UNAVAILABLE',
    );
  });

  it('a broken stream resumes from the bytes received at the next holder', async () => {
    const s = await swarm(['breaks', 'honest'], 16 * 1024);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores, log: process.env.DEBUG_POOL !== undefined ? createLogger({ level: 'debug' }) : undefined }, { config: CONFIG, span: { start: 1, end: 3 }, holdersOf: () => s.peers, parallel: 1 });
    assert.deepEqual(d.params, sliceSpan(CONFIG, { start: 0, end: L }, s.good, { start: 1, end: 3 }));
    assert.ok(d.retries >= 1);
  });

  it('a lone holder (the genesis node) is trusted; its config is fetched', async () => {
    const s = await swarm(['honest']);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 2, end: L }, holdersOf: () => s.peers });
    assert.equal(d.params.length, new ParamLayout(CONFIG, { start: 2, end: L }).size);
    const c = await fetchConfig({ rpc: s.rpc }, s.peers);
    assert.deepEqual(c, CONFIG);
  });

  it('a lone holder is asked for no more streams at once than it accepts (the whole model from the genesis node)', async () => {
    // the holder resets streams past checkpoint.maxInboundStreams (2); a joiner taking all L units from it used to
    // open L heads at once and lose every unit past the second
    assert.ok(L > methods.checkpoint.maxInboundStreams);
    const s = await swarm(['honest']);
    const d = await downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: L }, holdersOf: () => s.peers, parallel: 4 });
    assert.deepEqual(d.params, s.good);
    assert.equal(d.retries, 0);
  });

  it('a span not held, or no holder at all: typed errors, no crash', async () => {
    const s = await swarm(['honest']);
    await assert.rejects(
      downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: CONFIG, span: { start: 0, end: 1 }, holdersOf: () => [] }),
      (e: unknown) => isNeuroShardError(e) && e.code === 'CHECKPOINT_UNAVAILABLE',
    );
    // asking for layers past the holder's span: the holder answers a typed error, the download fails cleanly
    const wide = { ...CONFIG, num_hidden_layers: L + 2 };
    await assert.rejects(downloadSpan({ rpc: s.rpc, scores: s.scores }, { config: wide, span: { start: L, end: L + 1 }, holdersOf: () => s.peers }), (e: unknown) => isNeuroShardError(e));
  });
});
