/**
 * A stranger's flood of checkpoint heads for distinct sub-spans (pool/transfer.ts checkpointHandler, session 22's
 * finding 7), between real RpcNodes over the in-memory network.
 *
 * A head names the sub-span's span hash and its payload's SHA-256; a SHA-256 of concatenated bytes is not made of its
 * parts', so the figures of an uncached span [a, b) cost a pass over its bytes. A held span of n layers has n(n+1)/2
 * sub-spans, more than the holder caches (64 per weights version in the worker, 16 per snapshot on the main
 * thread): each distinct head of ~100 bytes cost a hash of up to the whole held span, in the compute worker. Now
 * one-layer units (what downloaders ask) are cached apart and all of them, and multi-layer spans are taken at a
 * bounded rate per peer and in all (pool/span-meter.ts), past it the typed CHECKPOINT_BUSY. The holder here reads its
 * figures through the worker's own ServedParams (over a shard in this thread), which counts the bytes it hashes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServedParams } from '../../src/compute/served-params.js';
import { makeConfig, ParamLayout, type LlamaConfig, type Span } from '../../src/model/index.js';
import { initParams } from '../../src/model/init.js';
import type { LlamaShard } from '../../src/model/shard.js';
import { MemoryHub } from '../../src/p2p/memory.js';
import type { HeldRangeReader } from '../../src/pool/held-range.js';
import { SPAN_METER_LIMITS, SpanMeter } from '../../src/pool/span-meter.js';
import { checkpointHandler, downloadSpan, HEAD_OFFSET } from '../../src/pool/transfer.js';
import { spanPayloadBytes } from '../../src/pool/weights.js';
import * as methods from '../../src/protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../../src/protocols/pb/node.js';
import { memoryRpcNode, type MemoryRpcNode } from '../utils/memory-rpc.js';
import { tally } from './tally.js';

const NET = 'attacknet';
const L = 16;
const CONFIG: LlamaConfig = makeConfig({ hidden_size: 64, num_hidden_layers: L, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, vocab_size: 64, max_position_embeddings: 32 });
const WHOLE: Span = { start: 0, end: L };

/** Every sub-span of the held span with more than one layer: L(L−1)/2 of them. */
function multiLayerSpans(): Span[] {
  const out: Span[] = [];
  for (let a = 0; a < L; a++) for (let b = a + 2; b <= L; b++) out.push({ start: a, end: b });
  return out;
}

/** A holder serving from the worker's ServedParams (its time frozen for the meter unless `now` is given). */
async function holder(hub: MemoryHub, source: 'range' | 'params', now: () => number = () => 1_000_000) {
  const layout = new ParamLayout(CONFIG);
  const flat = new Float32Array(layout.size);
  initParams(layout, flat, 3);
  const served = new ServedParams(1);
  const shard = { config: CONFIG, span: WHOLE, params: flat, weights: 'f32' } as unknown as LlamaShard;
  let multiDigests = 0;
  const reader: HeldRangeReader = {
    digest: (want) => {
      const before = served.hashedBytes;
      const d = served.digest(shard, want);
      if (served.hashedBytes > before && want.end - want.start > 1) multiDigests++;
      return Promise.resolve({ total: d.bytes, hash: d.hash, sha: new Uint8Array(Buffer.from(d.sha256, 'hex')), version: `${d.worker}:${d.version}` });
    },
    read: (want, offset, length, version) => Promise.resolve(served.range(shard, want, offset, length, { worker: 1, version: Number(version.split(':')[1]) }).data),
  };
  const meter = new SpanMeter(SPAN_METER_LIMITS, now);
  const node = await memoryRpcNode(hub, `holder-${source}`, NET);
  const handler = checkpointHandler({ config: () => CONFIG, held: () => WHOLE, ...(source === 'range' ? { heldRange: reader } : { params: () => Promise.resolve(flat) }) }, 64 * 1024, { meter });
  await node.rpc.handle(methods.checkpoint, handler);
  return { node, id: `holder-${source}`, served, meter, multiDigests: () => multiDigests };
}

/** Asks `peer` for a head of `span`: 'answered', or the error's code ('untyped' when it has none). */
async function head(client: MemoryRpcNode, peer: string, span: Span): Promise<string> {
  try {
    const out: CheckpointChunk[] = [];
    const req: CheckpointRequest = { modelHash: '', offset: HEAD_OFFSET, span };
    for await (const c of client.rpc.serverStream(peer, methods.checkpoint, req, { timeoutMs: 10_000 })) out.push(c);
    assert.equal(out.length, 1);
    return 'answered';
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' ? code : 'untyped';
  }
}

function count(codes: string[]): Record<string, number> {
  const o: Record<string, number> = {};
  for (const c of codes) o[c] = (o[c] ?? 0) + 1;
  return o;
}

describe('a flood of checkpoint heads for distinct sub-spans', () => {
  it('one stranger: each multi-layer head no longer costs a hash; past the rate they are a typed CHECKPOINT_BUSY, and units stay cached', async () => {
    const hub = new MemoryHub();
    const h = await holder(hub, 'range');
    const stranger = await memoryRpcNode(hub, 'stranger', NET);
    const spans = multiLayerSpans();
    const codes: string[] = [];
    // twice over: 2 × 120 requests, more distinct spans than the worker keeps (64)
    for (let pass = 0; pass < 2; pass++) for (const s of spans) codes.push(await head(stranger, h.id, s));
    const c = count(codes);
    process.stdout.write(`checkpoint heads (worker path): ${codes.length} multi-layer heads → ${JSON.stringify(c)}, ${h.multiDigests()} hashes of several layers, ${h.served.hashedBytes} bytes hashed\n`);
    tally('checkpoint: multi-layer heads that cost a hash (one key)', codes.length, h.multiDigests() > SPAN_METER_LIMITS.peerBurst ? codes.length : 0);
    assert.ok(h.multiDigests() <= SPAN_METER_LIMITS.peerBurst, `${h.multiDigests()} multi-layer hashes for one stranger`);
    assert.equal((c.answered ?? 0) + (c.CHECKPOINT_BUSY ?? 0), codes.length, 'every answer is figures or a typed CHECKPOINT_BUSY');
    assert.equal(c.untyped, undefined);

    // a unit head (what an honest downloader asks) is never refused, and each unit is hashed once for the version
    const before = h.served.hashedBytes;
    for (let pass = 0; pass < 3; pass++) for (let i = 0; i < L; i++) assert.equal(await head(stranger, h.id, { start: i, end: i + 1 }), 'answered');
    assert.equal(h.served.hashedBytes - before, spanPayloadBytes(CONFIG, WHOLE), 'each unit hashed once, cached after');
    // more multi-layer floods do not push the units out: asking them again hashes nothing
    for (const s of spans.slice(0, 80)) await head(stranger, h.id, s);
    const after = h.served.hashedBytes;
    for (let i = 0; i < L; i++) await head(stranger, h.id, { start: i, end: i + 1 });
    assert.equal(h.served.hashedBytes, after);

    // an honest joiner downloads the whole span from this holder meanwhile, unhindered
    const joiner = await memoryRpcNode(hub, 'joiner', NET);
    const d = await downloadSpan({ rpc: joiner.rpc, scores: joiner.scores }, { config: CONFIG, span: WHOLE, holdersOf: () => [h.id] });
    assert.deepEqual(d.sources, [h.id]);
    assert.equal(joiner.scores.score(h.id) >= 0, true, 'no penalty for the holder');
  });

  it('many fresh keys: the overall rate bounds the hashes, whatever the number of keys', async () => {
    const hub = new MemoryHub();
    const h = await holder(hub, 'range');
    const spans = multiLayerSpans();
    const codes: string[] = [];
    for (let k = 0; k < 30; k++) {
      const sybil = await memoryRpcNode(hub, `sybil${k}`, NET);
      for (let j = 0; j < 4; j++) codes.push(await head(sybil, h.id, spans[(k * 4 + j) % spans.length]!));
    }
    const c = count(codes);
    process.stdout.write(`checkpoint heads, 30 keys: ${codes.length} heads → ${JSON.stringify(c)}, ${h.multiDigests()} hashes of several layers\n`);
    tally('checkpoint: multi-layer heads that cost a hash (30 keys)', codes.length, h.multiDigests() > SPAN_METER_LIMITS.allBurst ? codes.length : 0);
    assert.ok(h.multiDigests() <= SPAN_METER_LIMITS.allBurst, `${h.multiDigests()} multi-layer hashes for 30 keys`);
    assert.equal(c.CHECKPOINT_BUSY, codes.length - h.multiDigests());
  });

  it('the rate refills with time: a peer that waits is answered again', async () => {
    const hub = new MemoryHub();
    let t = 1_000_000;
    const h = await holder(hub, 'range', () => t);
    const stranger = await memoryRpcNode(hub, 'stranger', NET);
    const spans = multiLayerSpans();
    const codes: string[] = [];
    for (const s of spans.slice(0, SPAN_METER_LIMITS.peerBurst + 1)) codes.push(await head(stranger, h.id, s));
    assert.deepEqual(count(codes), { answered: SPAN_METER_LIMITS.peerBurst, CHECKPOINT_BUSY: 1 });
    t += SPAN_METER_LIMITS.peerEveryMs;
    assert.equal(await head(stranger, h.id, spans[SPAN_METER_LIMITS.peerBurst]!), 'answered');
    assert.equal(await head(stranger, h.id, spans[SPAN_METER_LIMITS.peerBurst + 1]!), 'CHECKPOINT_BUSY');
  });

  it('weights served from a snapshot on the main thread: uncached multi-layer heads are metered, cached ones are free', async () => {
    const hub = new MemoryHub();
    const h = await holder(hub, 'params');
    const stranger = await memoryRpcNode(hub, 'stranger', NET);
    const spans = multiLayerSpans();
    const codes: string[] = [];
    for (const s of spans) codes.push(await head(stranger, h.id, s));
    const c = count(codes);
    process.stdout.write(`checkpoint heads (snapshot path): ${codes.length} multi-layer heads → ${JSON.stringify(c)}\n`);
    assert.equal(c.answered, SPAN_METER_LIMITS.peerBurst);
    assert.equal(c.CHECKPOINT_BUSY, spans.length - SPAN_METER_LIMITS.peerBurst);
    // the spans it computed are cached: asked again, they are answered without a token
    for (const s of spans.slice(0, SPAN_METER_LIMITS.peerBurst)) assert.equal(await head(stranger, h.id, s), 'answered');
    for (let i = 0; i < L; i++) assert.equal(await head(stranger, h.id, { start: i, end: i + 1 }), 'answered');
    tally('checkpoint: uncached multi-layer heads answered (snapshot path)', spans.length, (c.answered ?? 0) > SPAN_METER_LIMITS.peerBurst ? spans.length : 0);
  });
});
