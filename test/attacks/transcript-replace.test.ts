/**
 * A stranger replacing an honest hop's sealed transcript (session 27 attack pass, "Found, not fixed"). A hop seals a
 * session's inputs for validators when it signs its commitments for a market request (protocols/inference.ts
 * `settle`), for whatever request id and hop index the commit request names, and request ids are public (market
 * requests are on the ledger). The store kept one transcript per (request id, hop index): a stranger's session
 * committed for a real request's id and index replaced the honest session's transcript, and a validator then fetched
 * the stranger's, whose commitments are not the completion's (`TRANSCRIPT_NOT_THIS_HOP`): the hop's real work for
 * that request went unverified, at the price of one session of one step.
 *
 * Now transcripts are kept per (request, index, inCommit, outCommit) and a validator asks for the commitments the
 * completion carries (`hop-transcript/2.0.0`). The hop runs on the compute worker's handler table in-process; the
 * validator (HopValidator, its own in-process worker of the same weights) fetches over RpcNode on an in-memory
 * network, as a node does.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { keyFromPrivate, peerIdFromPublicKey } from '../../src/identity/index.js';
import { buildServedCompletion } from '../../src/ledger/build.js';
import { makeConfig } from '../../src/model/index.js';
import { workerHopCompute } from '../../src/node/serving.js';
import { workerClaim } from '../../src/node/validator.js';
import { MemoryHub } from '../../src/p2p/memory.js';
import { HopCommitQueue } from '../../src/protocols/hop-commit-queue.js';
import { decodeTranscriptRequest, encodeTranscript, hopTranscript, serveTranscripts, TranscriptGoneError, TranscriptStore } from '../../src/protocols/hop-transcript.js';
import { HopValidator, type Verdict } from '../../src/protocols/hop-validator.js';
import { HOP_LIMIT_DEFAULTS, InferenceHopServer } from '../../src/protocols/inference.js';
import type { InferenceResponse } from '../../src/protocols/pb/node.js';
import { RpcNode } from '../../src/protocols/rpc/service.js';
import { fp32Tensor, tensorToPb } from '../../src/protocols/tensor-wire.js';
import { env, NET, T0 } from './helpers.js';
import { inProcessWorker, request, stream } from './hop-rig.js';
import { tally } from './tally.js';

const config = makeConfig({ hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, vocab_size: 64, max_position_embeddings: 32 });
const C = config.hidden_size;
const span = { start: 1, end: 3 };


const x = (T: number, k: number): Float32Array => Float32Array.from({ length: T * C }, (_, i) => Math.sin(i * 0.1 + k));
const hidden = (T: number, k: number) => tensorToPb(fp32Tensor(x(T, k), [T, C]));

/**
 * A hop (market key H) and a validator (key V) on one in-memory network. `serve` registers the hop's transcript
 * handlers: the node's (both versions) or an older node's (1.0.0 only, the newest for the request and hop).
 */
async function world(serve: 'node' | 'old') {
  const H = keyFromPrivate(randomBytes(32));
  const V = keyFromPrivate(randomBytes(32));
  const hub = new MemoryHub();
  const hopNet = hub.createNode(peerIdFromPublicKey(H.publicKey));
  const valNet = hub.createNode(peerIdFromPublicKey(V.publicKey));
  await hopNet.start();
  await valNet.start();
  const hopRpc = new RpcNode({ network: hopNet, networkId: NET });
  const valRpc = new RpcNode({ network: valNet, networkId: NET });
  const hopWorker = await inProcessWorker(config, span);
  const store = new TranscriptStore();
  const market = { networkId: NET, key: H, submitCompletion: async () => new Uint8Array(32) };
  const server = new InferenceHopServer(workerHopCompute(hopWorker, config, () => span), HOP_LIMIT_DEFAULTS, undefined, undefined, market, {
    transcripts: { store, claim: workerClaim(hopWorker) },
    commits: new HopCommitQueue({ useWorker: false }),
  });
  if (serve === 'node') await serveTranscripts(hopRpc, store);
  else
    await hopRpc.handle(hopTranscript, (req: Uint8Array) => {
      const q = decodeTranscriptRequest(req);
      const t = store.get(q.requestId, q.index);
      if (t === undefined) throw new TranscriptGoneError();
      return encodeTranscript(t);
    });
  // the validator re-executes on a worker of its own, the same weights (seed) and engine
  const valWorker = await inProcessWorker(config, span);
  const validator = new HopValidator({
    networkId: NET,
    key: V,
    rpc: valRpc,
    compute: workerHopCompute(valWorker, config, () => span),
    claim: workerClaim(valWorker),
    holders: () => [],
    submitSlash: async () => {},
    rate: 1,
  });
  const close = async (): Promise<void> => {
    await valRpc.close();
    await hopRpc.close();
    await valNet.stop();
    await hopNet.stop();
  };
  return { H, server, store, validator, close };
}

/** The honest entry's session (prompt of 3, one decode step) and a stranger's (one step), both committed for R as hop 1 of 2. */
async function sessions(server: InferenceHopServer, R: Uint8Array<ArrayBuffer>, strangerFirst: boolean): Promise<{ honest: InferenceResponse }> {
  const commit = (id: string) => request({ sessionId: id, commitRequest: R, commitIndex: 1, commitCount: 2 });
  const stranger = async (): Promise<void> => {
    const out = await stream(server, 'stranger', '/ip4/203.0.113.9/tcp/4001', [request({ sessionId: 'x', maxLength: 16, targetSpan: span, hidden: hidden(1, 7) }), commit('x')]);
    assert.ok(out[1]?.hopSignature !== undefined, 'the hop signed the stranger\'s commitments');
  };
  if (strangerFirst) await stranger();
  const out = await stream(server, 'honest', '/ip4/198.51.100.7/tcp/4001', [request({ sessionId: 'h', maxLength: 16, targetSpan: span, hidden: hidden(3, 1) }), request({ sessionId: 'h', hidden: hidden(1, 2) }), commit('h')]);
  if (!strangerFirst) await stranger();
  return { honest: out[2]! };
}

/** The completion on the ledger for R: the driver D, then the hop with the honest session's commitments. */
function completion(H: ReturnType<typeof keyFromPrivate>, R: Uint8Array, honest: InferenceResponse, nonce: number) {
  const D = keyFromPrivate(randomBytes(32));
  const requester = keyFromPrivate(randomBytes(32));
  return buildServedCompletion(env(nonce, T0 + nonce), { requestId: R, tokensUsed: 4, requester, hops: [D, H], commits: [new Uint8Array(32).fill(5), Uint8Array.from(honest.inCommit!), Uint8Array.from(honest.outCommit!)] });
}

const verdictOf = (vs: Verdict[]): Verdict | undefined => vs.find((v) => v.index === 1);

describe('attack: a stranger\'s seal for a public request id replacing the honest hop\'s transcript', () => {
  it('a stranger\'s session committed for the same request and hop, after or before the honest one: validators still verify the honest session', async () => {
    const w = await world('node');
    try {
      let unverified = 0;
      for (const [n, strangerFirst] of [[1, false], [2, true]] as const) {
        const R = new Uint8Array(randomBytes(32));
        const { honest } = await sessions(w.server, R, strangerFirst);
        const c = completion(w.H, R, honest, n);
        const v = verdictOf(await w.validator.onCompletion(c.bytes, new AbortController().signal));
        if (v?.status !== 'match') unverified++;
        assert.deepEqual(v, { status: 'match', index: 1 }, `stranger ${strangerFirst ? 'first' : 'after'}: ${JSON.stringify(v)}`);
      }
      tally('hop: honest work left unverified by a stranger\'s seal for its request id', 2, unverified);
      // the stranger's transcripts were kept beside the honest ones (its own, under its block's share)
      assert.equal(w.store.usage().entries, 4);
    } finally {
      await w.close();
    }
  });

  it('a validator asks an older hop (1.0.0 only) for the request and hop alone, and still verifies it', async () => {
    const w = await world('old');
    try {
      const R = new Uint8Array(randomBytes(32));
      // no stranger here: an older hop answers the newest transcript for (request, hop), which is the honest one
      const { honest } = await sessions(w.server, R, true);
      const v = verdictOf(await w.validator.onCompletion(completion(w.H, R, honest, 3).bytes, new AbortController().signal));
      assert.deepEqual(v, { status: 'match', index: 1 }, JSON.stringify(v));
    } finally {
      await w.close();
    }
  });
});
