/**
 * Attacks on the layer pool's weight transfer (pool/transfer.ts: the `checkpoint` server stream), between real
 * RpcNodes over the in-memory network (the transport is not what is tested: the downloader's blame and the holder's
 * cost per request are).
 *
 * - Framing an honest holder: a holder that agrees to the honest figures, streams garbage and ends its stream early
 *   had the downloader resume the unit at the next holder, find the finished unit's hash wrong and penalise the
 *   holder that FINISHED it (the honest one, BAD_WEIGHTS_PENALTY each time); with one honest holder left the unit
 *   failed. Now a unit of several holders' bytes that does not verify blames nobody and is taken again from one
 *   holder alone.
 * - Requests a stranger can send for nothing: heads of every sub-span of the held span (a multi-layer one a hash
 *   of up to the whole span in the serving node, now rate-limited: attacks/checkpoint-heads), rounds far in the past or the future (pins), absurd offsets: each is answered
 *   or refused with a typed error and the holder keeps serving.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NANO, ParamLayout, type LlamaConfig } from '../../src/model/index.js';
import { initParams } from '../../src/model/init.js';
import { MemoryHub } from '../../src/p2p/memory.js';
import * as methods from '../../src/protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../../src/protocols/pb/node.js';
import type { CallContext } from '../../src/protocols/rpc/service.js';
import { BAD_WEIGHTS_PENALTY, checkpointHandler, downloadSpan, HEAD_OFFSET } from '../../src/pool/transfer.js';
import { SPAN_METER_LIMITS } from '../../src/pool/span-meter.js';
import { memoryRpcNode } from '../utils/memory-rpc.js';
import { tally } from './tally.js';

const NET = 'attacknet';
const CONFIG: LlamaConfig = { ...NANO };
const L = CONFIG.num_hidden_layers;

function modelParams(seed: number): Float32Array {
  const layout = new ParamLayout(CONFIG);
  const flat = new Float32Array(layout.size);
  initParams(layout, flat, seed);
  return flat;
}

/**
 * 'framer': answers heads honestly, then streams one chunk of flipped bytes and ends its stream early (the downloader
 * resumes at the next holder). 'honest': serves the weights.
 */
type Behaviour = 'honest' | 'framer';

async function swarm(behaviours: Behaviour[], chunkBytes = 16 * 1024) {
  const hub = new MemoryHub();
  const client = await memoryRpcNode(hub, 'client', NET);
  const good = modelParams(0);
  const peers: string[] = [];
  const served = new Map<string, number>();
  for (const [i, b] of behaviours.entries()) {
    const id = `${b}${i}`;
    const { rpc } = await memoryRpcNode(hub, id, NET);
    const inner = checkpointHandler({ config: () => CONFIG, held: () => ({ start: 0, end: L }), params: () => Promise.resolve(good) }, chunkBytes);
    const handler = async function* (req: CheckpointRequest, ctx: CallContext): AsyncGenerator<CheckpointChunk> {
      for await (const c of inner(req, ctx)) {
        if (c.data.byteLength > 0) served.set(id, (served.get(id) ?? 0) + 1);
        if (b === 'framer' && c.data.byteLength > 0) {
          const data = c.data.slice();
          for (let k = 0; k < data.length; k++) data[k] = data[k]! ^ 0x5a;
          yield { ...c, data };
          return; // ends early: the downloader resumes the unit elsewhere
        }
        yield c;
      }
    };
    await rpc.handle(methods.checkpoint, handler);
    peers.push(id);
  }
  return { client, peers, good, served };
}

describe('attacks on the weight transfer', () => {
  it('a holder that streams garbage and ends early does not get the honest holder that finishes the unit penalised', async () => {
    // one honest holder beside the framer: before, the honest holder was penalised for the framer's bytes and the
    // unit failed (no holder left); the framer itself was never penalised
    const s = await swarm(['framer', 'honest']);
    const span = { start: 0, end: 1 };
    let failed = false;
    try {
      const d = await downloadSpan({ rpc: s.client.rpc, scores: s.client.scores }, { config: CONFIG, span, holdersOf: () => s.peers });
      assert.deepEqual(d.sources, ['honest1']);
    } catch {
      failed = true;
    }
    const framed = s.client.scores.score('honest1') < 0;
    tally('transfer: framing an honest holder (1 unit)', 1, framed || failed ? 1 : 0);
    assert.equal(framed, false, `the honest holder was penalised (${s.client.scores.score('honest1')})`);
    assert.equal(failed, false, 'the download failed although an honest holder served the unit');
  });

  it('every unit of a span opened by a framer: the span downloads, no honest holder loses a point', async () => {
    const s = await swarm(['framer', 'honest', 'framer', 'honest']);
    const span = { start: 0, end: L };
    const d = await downloadSpan({ rpc: s.client.rpc, scores: s.client.scores }, { config: CONFIG, span, holdersOf: () => s.peers });
    assert.deepEqual(d.params, s.good);
    const framed = ['honest1', 'honest3'].filter((p) => s.client.scores.score(p) < 0);
    tally('transfer: framing honest holders (a span)', s.served.get('framer0')! + (s.served.get('framer2') ?? 0), framed.length);
    assert.deepEqual(framed, [], 'honest holders were penalised for the framers\' bytes');
    // a framer's bytes that a lone retake does not include cost the framer nothing either: the downloader cannot
    // tell which holder lied, so it blames only a holder whose own bytes alone fail (never an honest one)
    for (const p of ['framer0', 'framer2']) assert.ok(s.client.scores.score(p) >= -BAD_WEIGHTS_PENALTY * L);
  });

  it('heads of every sub-span, rounds out of reach and offsets past the end: typed answers, and the holder keeps serving', async () => {
    const s = await swarm(['honest']);
    const holder = s.peers[0]!;
    let sent = 0;
    let untyped = 0;
    const ask = async (req: Partial<CheckpointRequest>): Promise<CheckpointChunk[]> => {
      sent++;
      const out: CheckpointChunk[] = [];
      for await (const c of s.client.rpc.serverStream(holder, methods.checkpoint, { modelHash: '', offset: HEAD_OFFSET, ...req }, { timeoutMs: 10_000 })) out.push(c);
      return out;
    };
    // every sub-span's head (L(L+1)/2 of them): each one-layer unit is answered with its figures, and so are
    // multi-layer spans up to the holder's rate (pool/span-meter.ts; test/attacks/checkpoint-heads), the rest are a
    // typed CHECKPOINT_BUSY
    let busy = 0;
    for (let a = 0; a < L; a++) {
      for (let b = a + 1; b <= L; b++) {
        try {
          const h = await ask({ span: { start: a, end: b } });
          assert.equal(h.length, 1);
          assert.equal(h[0]!.data.byteLength, 0);
        } catch (e) {
          assert.ok(b - a > 1 && (e as { code?: unknown }).code === 'CHECKPOINT_BUSY', `[${a}, ${b}): ${String(e)}`);
          busy++;
        }
      }
    }
    assert.equal(busy, (L * (L - 1)) / 2 - SPAN_METER_LIMITS.peerBurst);
    // spans outside the held one, rounds no holder keeps (the source keeps none), a round past the wire's bound
    const refused: Partial<CheckpointRequest>[] = [
      { span: { start: 0, end: L + 1 } },
      { span: { start: 3, end: 3 } },
      { span: { start: 0, end: 1 }, round: 7n },
      { span: { start: 0, end: 1 }, round: -1n },
      { span: { start: 0, end: 1 }, round: 2n ** 60n },
      { span: { start: 0, end: 1 }, round: -5n },
    ];
    for (const r of refused) {
      try {
        await ask(r);
        assert.fail(`answered ${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (typeof code !== 'string') untyped++;
      }
    }
    // the holder still serves a whole download afterwards
    const d = await downloadSpan({ rpc: s.client.rpc, scores: s.client.scores }, { config: CONFIG, span: { start: 0, end: 2 }, holdersOf: () => [holder] });
    assert.equal(d.sources[0], holder);
    tally('transfer: odd checkpoint requests', sent, untyped);
    assert.equal(untyped, 0, 'every refusal is a typed error');
  });
});
