/**
 * Session 29, hop-to-hop pushes on real libp2p nodes on 127.0.0.1: an entry with no layers drives a chain of four
 * hops (one layer each, each on its own compute worker) with `DriverOptions.push` on. Each hop after the first gets
 * a placeholder at the token's start and runs on the output the hop before it pushes; the tokens are exactly the
 * whole model's (greedy and seeded), and the entry counted the pushed steps. A push from a peer that is not the
 * session's pusher is refused (typed error, no penalty: an entry could point an honest hop there) and changes nothing; a hop that pushes other values than it
 * answers is caught by the input digest, replaced, and the tokens stay the same; a hop that does not push makes the
 * next hop answer push_missing and the entry send the input itself; a hop without the capability is never sent push
 * fields.
 *
 * Session 30, signed pushes: a receiving hop that lies about its input digest (with or without the pusher's
 * attestation in its answer) is the one replaced, its honest pusher keeps its place; a push whose signature does not
 * verify is refused, the placeholder answers push_missing at once and the boundary goes explicit; a session-29 hop
 * (no signatures) is never pushed to or from; at the boundary a signed session refuses unsigned and mis-signed pushes
 * and answers the pusher's attestation beside its digest.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ComputeClient } from '../../../src/compute/index.js';
import { bundledGenesis } from '../../../src/node/genesis.js';
import type { NodeNetwork } from '../../../src/node/network.js';
import { genesisModelView, workerHopCompute } from '../../../src/node/serving.js';
import { activationDigest, HOP_LIMIT_DEFAULTS, InferenceHopServer, RemoteHopSession, RequestQueue, type HopFaultsForTests } from '../../../src/protocols/inference.js';
import * as methods from '../../../src/protocols/methods.js';
import { DType, type InferencePush, type InferenceRequest, type InferenceResponse } from '../../../src/protocols/pb/node.js';
import { newPushSigner, pushVerifier, sha256, signPush, verifyPush } from '../../../src/protocols/push-attestation.js';
import { tensorFromPb } from '../../../src/protocols/tensor-wire.js';
import { BanList, DRIVER_DEFAULTS, PUSH_AUTO_MIN_RTT_MS, runGeneration, type GenerationResult, type HolderView } from '../../../src/router/index.js';
import { waitFor } from '../../../src/util/abort.js';
import { NeuroShardError } from '../../../src/util/errors.js';
import { startServingNet } from '../../utils/network.js';

const genesis = bundledGenesis();
const cfg = genesis.config;
const L = cfg.num_hidden_layers;
const C = cfg.hidden_size;
const model = genesisModelView(genesis);

interface Hop {
  name: string;
  net: NodeNetwork;
  compute: ComputeClient;
  server: InferenceHopServer;
  span: { start: number; end: number };
}

const addr = (n: NodeNetwork): string => n.p2p.multiaddrs()[0]!;

describe('hop-to-hop pushes (session 29)', () => {
  const hops: Hop[] = [];
  let entry: NodeNetwork;
  let rogue: NodeNetwork;
  let full: ComputeClient;
  const prompt = 'The jury said that';
  const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  const sampled = { temperature: 0.8, topK: 40, topP: 0.95, seed: 11 };
  const maxTokens = 16;
  const references = new Map<string, number[]>();

  async function startHop(name: string, span: { start: number; end: number }, boot: string[], faults?: HopFaultsForTests): Promise<Hop> {
    const net = await startServingNet(genesis.networkId, span, boot);
    const compute = await ComputeClient.start({ threads: 1 });
    await compute.run({ type: 'initModel', config: cfg, seed: 0, span });
    const server = new InferenceHopServer(workerHopCompute(compute, cfg, () => span), HOP_LIMIT_DEFAULTS, net.scores, undefined, undefined, faults === undefined ? {} : { faultsForTests: faults });
    await server.register(net.rpc);
    const h = { name, net, compute, server, span };
    hops.push(h);
    return h;
  }
  const hop = (name: string): Hop => hops.find((h) => h.name === name)!;

  before(async () => {
    assert.equal(L, 4, 'the bundled genesis model has 4 layers: one a hop');
    const h0 = await startHop('h0', { start: 0, end: 1 }, []);
    const boot = [addr(h0.net)];
    await startHop('h1', { start: 1, end: 2 }, boot);
    await startHop('h2', { start: 2, end: 3 }, boot);
    await startHop('h3', { start: 3, end: 4 }, boot);
    await startHop('wrong', { start: 1, end: 2 }, boot, { pushWrong: true });
    await startHop('silent', { start: 1, end: 2 }, boot, { pushNothing: true });
    await startHop('old', { start: 1, end: 2 }, boot, { noPushCapability: true });
    await startHop('liar', { start: 2, end: 3 }, boot, { digestLie: true });
    await startHop('dropper', { start: 2, end: 3 }, boot, { attestationDrop: true });
    await startHop('badsig', { start: 1, end: 2 }, boot, { pushBadSignature: true });
    await startHop('v29', { start: 1, end: 2 }, boot, { noPushSignatures: true });
    entry = await startServingNet(genesis.networkId, undefined, boot);
    rogue = await startServingNet(genesis.networkId, undefined, boot);
    // every hop dials every other (pushes go hop to hop) and the entry and the rogue dial them all, by address
    for (const from of [entry, rogue, ...hops.map((h) => h.net)]) {
      for (const to of hops) if (to.net !== from) await from.p2p.dial(addr(to.net), { signal: AbortSignal.timeout(60_000) });
    }
    full = await ComputeClient.start({ threads: 1 });
    await full.run({ type: 'initModel', config: cfg, seed: 0 });
    for (const [k, o] of Object.entries({ greedy, sampled })) {
      references.set(k, Array.from((await full.run({ type: 'generate', prompt: Int32Array.from(model.encode(prompt)), maxTokens, ...o, stopIds: [cfg.eos_token_id] })).tokens));
    }
  });
  after(async () => {
    for (const h of hops) {
      await h.net.stop();
      await h.compute.close();
    }
    await entry?.stop();
    await rogue?.stop();
    await full?.close();
  });

  /**
   * One generation through `route` (names; the usual route, random 0) with `spare` holders far away (failover only),
   * pushes on unless `push` is false. `onToken` sees the token count.
   */
  async function generate(route: string[], o: typeof greedy, opts: { spare?: string[]; push?: boolean | 'auto'; rttFloorMs?: (peer: string) => number | undefined; onToken?: (n: number) => void } = {}): Promise<GenerationResult & { bans: BanList }> {
    const view: HolderView[] = [
      ...route.map((n) => ({ peerId: hop(n).net.peerId, span: hop(n).span, alive: true, rttMs: 1 })),
      ...(opts.spare ?? []).map((n) => ({ peerId: hop(n).net.peerId, span: hop(n).span, alive: true, rttMs: 60_000 })),
    ];
    const bans = new BanList();
    let n = 0;
    const r = await runGeneration(
      { prompt, maxTokens, stop: [], ...o },
      {
        model,
        holders: () => view,
        opener: { open: (h, spec) => new RemoteHopSession(entry.rpc, h.peerId, h.span, spec, { hiddenSize: C, vocabSize: cfg.vocab_size, wire: 'f32', scores: entry.scores }) },
        bans,
        now: () => performance.now(),
        random: () => 0,
        newSessionId: () => `s${Math.random().toString(16).slice(2)}`,
        // deadlines long enough for a loaded machine: this file is about what runs where, not timeouts
        options: { ...DRIVER_DEFAULTS, stepTimeoutMs: 10_000, explore: 0, push: opts.push ?? true },
        ...(opts.rttFloorMs === undefined ? {} : { rttFloorMs: opts.rttFloorMs }),
      },
      { onToken: () => opts.onToken?.(++n) },
      new AbortController().signal,
    );
    return { ...r, bans };
  }
  const sessionsClosed = (): Promise<void> => waitFor(() => hops.every((h) => h.server.usage().sessions === 0), { timeoutMs: 20_000, intervalMs: 50, what: 'every hop session closed' });
  const pushedSteps = (): number => hops.reduce((s, h) => s + h.server.pushStats.pushedSteps, 0);

  it('four hops with pushes give the whole model\'s tokens (greedy and seeded), and the entry saw the pushes used', async () => {
    for (const [k, o] of Object.entries({ greedy, sampled })) {
      const before = pushedSteps();
      const r = await generate(['h0', 'h1', 'h2', 'h3'], o);
      assert.deepEqual(r.tokens, references.get(k), k);
      assert.equal(r.failovers, 0, k);
      // token 0 (prefill) and token 1 (set-up) are explicit; every later token pushes across all three boundaries
      const decodeTokens = r.tokens.length - 1 + (r.finishReason === 'stop' ? 1 : 0);
      assert.equal(r.pushes?.used, 3 * (decodeTokens - 1), `${k}: pushes used ${JSON.stringify(r.pushes)}`);
      assert.equal(r.pushes?.missing, 0, k);
      assert.equal(pushedSteps() - before, r.pushes!.used, `${k}: the hops ran as many steps on pushed inputs`);
    }
    // with pushes off, no hop is asked to push
    const asked = hops.reduce((s, h) => s + h.server.pushStats.asked, 0);
    const off = await generate(['h0', 'h1', 'h2', 'h3'], greedy, { push: false });
    assert.deepEqual(off.tokens, references.get('greedy'));
    assert.equal(off.pushes, undefined);
    assert.equal(hops.reduce((s, h) => s + h.server.pushStats.asked, 0), asked);
    await sessionsClosed();
  });

  it('a push from a peer that is not the session\'s pusher is refused, unpenalised, and the tokens are unaffected', async () => {
    const h2 = hop('h2');
    const score0 = h2.net.scores.score(rogue.peerId);
    let attempt: Promise<unknown> | undefined;
    const r = await generate(['h0', 'h1', 'h2', 'h3'], greedy, {
      onToken: (n) => {
        if (n !== 4) return;
        // the rogue knows the session id (the worst case) and pushes garbage for h2's next position
        const open = h2.server.openCounts()[0]!;
        const bad = new Float32Array(C).fill(7);
        attempt = (async () => {
          for await (const _ of rogue.rpc.bidi(h2.net.peerId, methods.inferencePush, [{ sessionId: open.sessionId, position: open.tokens, hidden: { dtype: DType.FP32, shape: [1, C], data: new Uint8Array(bad.buffer), scale: 0 } }])) void _;
        })().then(
          () => undefined,
          (e: unknown) => e, // held until checked below (the generation goes on meanwhile)
        );
      },
    });
    assert.ok(attempt !== undefined, 'the rogue pushed');
    const e = await attempt;
    assert.ok(e instanceof NeuroShardError && e.code === 'PUSH_REFUSED', `expected PUSH_REFUSED, got ${String(e)}`);
    assert.deepEqual(r.tokens, references.get('greedy'));
    assert.equal(r.failovers, 0);
    assert.equal(r.pushes?.missing, 0);
    // no penalty (the lead, session 29): an entry can point an honest hop's pushes at any session (InferenceHopServer
    // pushRefused), so a refusal says nothing about the pusher
    assert.equal(h2.net.scores.score(rogue.peerId), score0, 'the pusher was not penalised');
    await sessionsClosed();
  });

  it('a hop that pushes other values than it answers is caught by the digest and replaced; the tokens stay the same', async () => {
    const wrong = hop('wrong');
    const r = await generate(['h0', 'wrong', 'h2', 'h3'], greedy, { spare: ['h1'] });
    assert.deepEqual(r.tokens, references.get('greedy'));
    assert.ok(wrong.server.pushStats.sent > 0, 'it pushed');
    assert.equal(r.failovers, 1);
    assert.ok(r.bans.banned(performance.now()).has(wrong.net.peerId), 'the lying hop is banned');
    assert.deepEqual(r.routes.at(-1)!.hops.map((h) => h.peerId), ['h0', 'h1', 'h2', 'h3'].map((n) => hop(n).net.peerId));
    // pushes stop for the rest of the generation after it
    assert.equal(r.pushes?.used, 1, JSON.stringify(r.pushes)); // h0 → wrong (its input was h0's own) before wrong's push was checked
    await sessionsClosed();
  });

  it('a hop that does not push: the next hop answers push_missing, the entry sends the input, the tokens stay the same', async () => {
    const r = await generate(['h0', 'silent', 'h2', 'h3'], sampled);
    assert.deepEqual(r.tokens, references.get('sampled'));
    assert.equal(r.failovers, 0);
    assert.equal(r.pushes?.missing, 1, 'the boundary after it went explicit after its first miss');
    assert.equal(hop('h2').server.pushStats.missing, 1);
    assert.ok((r.pushes?.used ?? 0) > 0, 'the other boundaries pushed');
    await sessionsClosed();
  });

  it('at the boundary: a push of the wrong width or past the bound held is refused, unpenalised; a placeholder takes a held push or answers push_missing and the session goes on', async () => {
    const h2 = hop('h2');
    const queue = new RequestQueue();
    const answers = entry.rpc.bidi(h2.net.peerId, methods.inferenceStream, queue);
    const ask = async (r: Partial<InferenceRequest>): Promise<InferenceResponse> => {
      queue.push({ sessionId: 'pb1', requestId: '1', tokens: [], positionOffset: 0, endSession: false, chunks: [1], maxLength: 0, temperature: 0, topK: 0, topP: 1, seed: 0, ...r });
      const n = await answers.next();
      assert.equal(n.done, false);
      return n.value as InferenceResponse;
    };
    const row = (v: number, width = C): { dtype: DType; shape: number[]; data: Uint8Array<ArrayBuffer>; scale: number } => ({ dtype: DType.FP32, shape: [1, width], data: new Uint8Array(new Float32Array(width).fill(v).buffer), scale: 0 });
    const push = async (ps: Partial<InferencePush>[]): Promise<unknown> => {
      try {
        for await (const _ of rogue.rpc.bidi(h2.net.peerId, methods.inferencePush, ps.map((p) => ({ sessionId: 'pb1', position: 1, ...p }) as InferencePush))) void _;
        return undefined;
      } catch (e) {
        return e;
      }
    };
    const refused = (e: unknown): boolean => e instanceof NeuroShardError && e.code === 'PUSH_REFUSED';
    // the session's first step is explicit and names the rogue its pusher
    const first = await ask({ targetSpan: { start: 2, end: 3 }, maxLength: 16, hidden: row(0.5), pushFrom: rogue.peerId });
    assert.equal(first.pushCapable, true);
    // refused without a penalty: the width, the rows and the pacing are what the entry set up (pushRefused), so an
    // entry pointing an honest hop's pushes here could otherwise get it penalised at will
    const score = h2.net.scores.score(rogue.peerId);
    assert.ok(refused(await push([{ hidden: row(1, C + 1) }])), 'a push of the wrong width');
    assert.ok(refused(await push([{ position: 1, hidden: row(1) }, { position: 2, hidden: row(2) }, { position: 3, hidden: row(3) }])), 'a third push held');
    assert.ok(refused(await push([{ sessionId: 'no-such-session', hidden: row(1) }])), 'a session that is not here');
    assert.equal(h2.net.scores.score(rogue.peerId), score, 'not penalised');
    // positions 1 and 2 are held: two placeholders run on them, with the digests of their bytes
    for (const v of [1, 2]) {
      const r = await ask({ inputByPush: true, pushWaitMs: 10_000 });
      assert.equal(r.pushMissing, undefined);
      assert.equal(r.hidden?.shape[0], 1);
      assert.deepEqual(Buffer.from(r.inputDigest!), Buffer.from(activationDigest(row(v).data)));
    }
    const missing = await ask({ inputByPush: true, pushWaitMs: 50 });
    assert.equal(missing.pushMissing, true);
    assert.equal(missing.processedTokens, 3, 'nothing ran');
    const explicit = await ask({ hidden: row(3) });
    assert.equal(explicit.processedTokens, 4, 'the session went on');
    assert.equal(explicit.hidden?.shape[0], 1);
    queue.end();
    for (;;) if ((await answers.next()).done === true) break;
    await sessionsClosed();
  });

  it('a hop without the capability is never sent push fields: its boundaries stay explicit, the others push', async () => {
    const old = hop('old');
    const r = await generate(['h0', 'old', 'h2', 'h3'], greedy);
    assert.deepEqual(r.tokens, references.get('greedy'));
    assert.equal(old.server.pushStats.asked, 0);
    const decodeTokens = r.tokens.length - 1 + (r.finishReason === 'stop' ? 1 : 0);
    assert.equal(r.pushes?.used, decodeTokens - 1, 'only h2 → h3 pushed');
    await sessionsClosed();
  });

  it('a hop that lies about the digest of its pushed input is replaced, not its honest pusher; the tokens stay the same', async () => {
    for (const name of ['liar', 'dropper']) {
      const liar = hop(name);
      const h1 = hop('h1');
      const score = entry.scores.score(h1.net.peerId);
      const r = await generate(['h0', 'h1', name, 'h3'], greedy, { spare: ['h2'] });
      assert.deepEqual(r.tokens, references.get('greedy'), name);
      assert.equal(r.failovers, 1, name);
      const banned = r.bans.banned(performance.now());
      assert.ok(banned.has(liar.net.peerId), `${name}: the lying receiver is banned`);
      assert.ok(!banned.has(h1.net.peerId), `${name}: its honest pusher is not`);
      assert.equal(entry.scores.score(h1.net.peerId), score, `${name}: nor penalised`);
      assert.deepEqual(r.routes.at(-1)!.hops.map((h) => h.peerId), ['h0', 'h1', 'h2', 'h3'].map((n) => hop(n).net.peerId), name);
      assert.ok(liar.server.pushStats.pushedSteps > 0, `${name}: it ran on a push`);
      await sessionsClosed();
    }
  });

  it('a push whose signature does not verify is refused: push_missing at once, that boundary explicit, the tokens the same', async () => {
    const bad = hop('badsig');
    const h2 = hop('h2');
    const refused = h2.server.pushStats.refused;
    const score = h2.net.scores.score(bad.net.peerId);
    const t0 = performance.now();
    const r = await generate(['h0', 'badsig', 'h2', 'h3'], sampled);
    const ms = performance.now() - t0;
    assert.deepEqual(r.tokens, references.get('sampled'));
    assert.equal(r.failovers, 0);
    assert.ok(bad.server.pushStats.sent > 0, 'it pushed');
    assert.equal(h2.server.pushStats.refused - refused, 1, 'one push refused (its stream ended there)');
    assert.equal(r.pushes?.missing, 1, 'the boundary went explicit after one push_missing');
    assert.ok((r.pushes?.used ?? 0) > 0, 'the other boundaries pushed');
    assert.equal(h2.net.scores.score(bad.net.peerId), score, 'a refused push is not penalised (pushRefused)');
    // the placeholder did not sit out its wait (2 × the 10 s step deadline) after the refusal
    assert.ok(ms < 10_000, `the generation took ${Math.round(ms)} ms`);
    await sessionsClosed();
  });

  it('a session-29 hop (no signatures) is never pushed to or from: its boundaries stay explicit', async () => {
    const v29 = hop('v29');
    const r = await generate(['h0', 'v29', 'h2', 'h3'], greedy);
    assert.deepEqual(r.tokens, references.get('greedy'));
    assert.equal(v29.server.pushStats.asked, 0);
    const decodeTokens = r.tokens.length - 1 + (r.finishReason === 'stop' ? 1 : 0);
    assert.equal(r.pushes?.used, decodeTokens - 1, 'only h2 → h3 pushed');
    await sessionsClosed();
  });

  it('at the boundary of a signed session: unsigned or mis-signed pushes are refused, a signed one runs and its attestation comes back', async () => {
    const h2 = hop('h2');
    const signer = newPushSigner();
    const sid = 'ps1';
    const queue = new RequestQueue();
    const answers = entry.rpc.bidi(h2.net.peerId, methods.inferenceStream, queue);
    const ask = async (r: Partial<InferenceRequest>): Promise<InferenceResponse> => {
      queue.push({ sessionId: sid, requestId: '1', tokens: [], positionOffset: 0, endSession: false, chunks: [1], maxLength: 0, temperature: 0, topK: 0, topP: 1, seed: 0, ...r });
      const n = await answers.next();
      assert.equal(n.done, false);
      return n.value as InferenceResponse;
    };
    const row = (v: number): { dtype: DType; shape: number[]; data: Uint8Array<ArrayBuffer>; scale: number } => ({ dtype: DType.FP32, shape: [1, C], data: new Uint8Array(new Float32Array(C).fill(v).buffer), scale: 0 });
    const signed = (position: number, v: number, opts: { by?: typeof signer; forSession?: string; forPosition?: number } = {}): InferencePush => {
      const hidden = row(v);
      return { sessionId: sid, position, hidden, signature: signPush(opts.by ?? signer, opts.forSession ?? sid, opts.forPosition ?? position, tensorFromPb(hidden, 'test')) };
    };
    const push = async (ps: InferencePush[]): Promise<unknown> => {
      try {
        for await (const _ of rogue.rpc.bidi(h2.net.peerId, methods.inferencePush, ps)) void _;
        return undefined;
      } catch (e) {
        return e;
      }
    };
    const refused = (e: unknown): boolean => e instanceof NeuroShardError && e.code === 'PUSH_REFUSED';
    const first = await ask({ targetSpan: { start: 2, end: 3 }, maxLength: 16, hidden: row(0.5), pushFrom: rogue.peerId, pushFromKey: signer.publicKey });
    assert.equal(first.pushSigned, true);
    // a signed push is taken; the placeholder runs on it and answers its digest and the pusher's attestation
    assert.equal(await push([signed(1, 1)]), undefined);
    const ran = await ask({ inputByPush: true, pushWaitMs: 10_000 });
    assert.equal(ran.pushMissing, undefined);
    assert.deepEqual(Buffer.from(ran.inputDigest!), Buffer.from(sha256(row(1).data)));
    const a = ran.pushAttestation!;
    assert.equal(a.dtype, DType.FP32);
    assert.ok(verifyPush(pushVerifier(signer.publicKey), sid, 1, 'fp32', [1, C], a.digest, a.signature), 'the attestation verifies under the pusher\'s key');
    // each of these is refused (one stream each): no signature, another key, another session or position signed
    const unsigned: InferencePush = { sessionId: sid, position: 2, hidden: row(2) };
    for (const [why, p] of [
      ['unsigned', unsigned],
      ['another key', signed(2, 2, { by: newPushSigner() })],
      ['another session signed', signed(2, 2, { forSession: 'ps2' })],
      ['another position signed', signed(2, 2, { forPosition: 3 })],
    ] as const) {
      assert.ok(refused(await push([p])), why);
    }
    // the named pusher's stream was refused: the placeholder answers push_missing at once, not after its 10 s wait
    const t0 = performance.now();
    const missing = await ask({ inputByPush: true, pushWaitMs: 10_000 });
    assert.equal(missing.pushMissing, true);
    assert.ok(performance.now() - t0 < 5_000, 'answered without waiting out the push wait');
    assert.equal(missing.processedTokens, 2, 'nothing ran');
    // the key is fixed for the session
    const explicit = await ask({ hidden: row(2) });
    assert.equal(explicit.processedTokens, 3, 'the session went on');
    queue.end();
    for (;;) if ((await answers.next()).done === true) break;
    await sessionsClosed();
  });

  it('--hop-push auto: a boundary pushes only once both its hops measure PUSH_AUTO_MIN_RTT_MS or more', async () => {
    const names = ['h0', 'h1', 'h2', 'h3'];
    const far = PUSH_AUTO_MIN_RTT_MS + 3;
    const near = PUSH_AUTO_MIN_RTT_MS / 4;
    const asked = (): number => hops.reduce((s, h) => s + h.server.pushStats.asked, 0);
    // every hop far: as --hop-push
    const all = await generate(names, greedy, { push: 'auto', rttFloorMs: () => far });
    assert.deepEqual(all.tokens, references.get('greedy'));
    const decodeTokens = all.tokens.length - 1 + (all.finishReason === 'stop' ? 1 : 0);
    assert.equal(all.pushes?.used, 3 * (decodeTokens - 1));
    // every hop near (loopback, a LAN): nothing pushed, no hop asked to
    const before = asked();
    const none = await generate(names, greedy, { push: 'auto', rttFloorMs: () => near });
    assert.deepEqual(none.tokens, references.get('greedy'));
    assert.equal(none.pushes?.used, 0);
    assert.equal(asked(), before, 'no push fields sent');
    // h2 near (or unmeasured): only h0 → h1 pushes
    for (const h2 of [near, undefined]) {
      const some = await generate(names, greedy, { push: 'auto', rttFloorMs: (peer) => (peer === hop('h2').net.peerId ? h2 : far) });
      assert.deepEqual(some.tokens, references.get('greedy'));
      assert.equal(some.pushes?.used, decodeTokens - 1, `h2 ${String(h2)}`);
    }
    // measured far only from the 5th token on: the boundaries are set up then, not before
    let n = 0;
    const later = await generate(names, greedy, { push: 'auto', rttFloorMs: () => (n >= 5 ? far : undefined), onToken: (k) => (n = k) });
    assert.deepEqual(later.tokens, references.get('greedy'));
    // (the step after the 5th token sets them up; every one after it pushes at all three)
    assert.equal(later.pushes?.used, 3 * (decodeTokens - 5), JSON.stringify(later.pushes));
    await sessionsClosed();
  });
});
