/**
 * Issue 11 §2, uptime witnessed by peers, on real libp2p nodes on 127.0.0.1: two bonded witnesses challenge a
 * subject (liveness-challenge/1.0.0), it answers signed, they send it their attestations (liveness-attest/1.0.0),
 * and the subject's Uptime ledger event built from them pays on a ledger where all three are bonded, while the
 * same event pays nothing where the witnesses are not. Hostile calls get typed errors and penalties: a challenge
 * signed by a key other than the caller's, an attestation for a challenge never answered, a forged answer, and more
 * challenges than the per-peer quota of a window. And the node loop (src/node/witness.ts): three bonded nodes
 * witness each other for a window and each submits an Uptime event that pays.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import { buildGenesis, buildStake, buildTransfer, buildUptime } from '../../../src/ledger/build.js';
import { MIN_REWARD_BOND, PROOF_WINDOW_MS } from '../../../src/ledger/economics.js';
import { signAttestation } from '../../../src/ledger/witness.js';
import { createNodeNetwork, type NodeNetwork } from '../../../src/node/network.js';
import { LivenessWitnessServer } from '../../../src/protocols/handlers/liveness-witness.js';
import { encodeAttestationMessage, encodeChallenge, livenessAttest, livenessChallenge, signChallenge, witnessPeer } from '../../../src/protocols/liveness-witness.js';
import { startUptimeWitness } from '../../../src/node/witness.js';
import { waitFor } from '../../../src/util/abort.js';
import { ManualClock } from '../../../src/util/clock.js';
import { NeuroShardError } from '../../../src/util/errors.js';
import { loopbackNodeOptions, LOOPBACK_TUNING } from '../../utils/network.js';
import { acct, tempLedger } from '../../attacks/helpers.js';

const NETWORK = 'ns-witness-test';

interface Peer {
  key: NodeKey;
  net: NodeNetwork;
}

async function startPeer(boot: string[]): Promise<Peer> {
  const key = keyFromPrivate(randomBytes(32));
  const net = await createNodeNetwork({ networkId: NETWORK, key, options: loopbackNodeOptions({ bootstrap: boot, genesis: boot.length === 0, heartbeatIntervalMs: 300 }), tuning: LOOPBACK_TUNING });
  await net.start();
  return { key, net };
}

const rejects = async (p: Promise<unknown>, code: string): Promise<void> => {
  await assert.rejects(p, (e: unknown) => e instanceof NeuroShardError && e.code === code, code);
};

describe('liveness witnesses over libp2p', () => {
  let s: Peer;
  let w1: Peer;
  let w2: Peer;
  let server: LivenessWitnessServer;

  before(async () => {
    s = await startPeer([]);
    const addr = s.net.p2p.multiaddrs()[0]!;
    w1 = await startPeer([addr]);
    w2 = await startPeer([addr]);
    server = new LivenessWitnessServer(s.key, NETWORK, { scores: s.net.scores });
    await server.register(s.net.rpc);
    await waitFor(() => s.net.p2p.connectedPeers().length >= 2, { timeoutMs: 120_000, intervalMs: 100, what: 'two witnesses connected' });
  });
  after(async () => {
    for (const p of [s, w1, w2]) await p?.net.stop();
  });

  it('two witnesses attest; the Uptime event pays only where both witnesses are bonded', async () => {
    // not in the last 10 s of a window, so both attestations land in one window
    await waitFor(() => Date.now() % PROOF_WINDOW_MS < PROOF_WINDOW_MS - 10_000, { timeoutMs: 15_000, intervalMs: 100, what: 'a fresh window' });
    const now = Date.now();
    const epoch = Math.floor(now / PROOF_WINDOW_MS);
    const a1 = await witnessPeer(w1.net.rpc, w1.key, { networkId: NETWORK, peer: s.net.peerId, nowMs: now, epoch });
    const a2 = await witnessPeer(w2.net.rpc, w2.key, { networkId: NETWORK, peer: s.net.peerId, nowMs: now, epoch });
    const got = server.attestations(epoch);
    assert.equal(got.length, 2);
    assert.deepEqual(new Set(got.map((a) => Buffer.from(a.witness).toString('hex'))), new Set([a1, a2].map((a) => Buffer.from(a.witness).toString('hex'))));

    // the attestations were signed for this network id; the ledger of that network checks them
    const uptime = buildUptime(s.key, { networkId: NETWORK, timestampMs: now }, got);
    const G = keyFromPrivate(randomBytes(32));
    const bonded = tempLedger({ networkId: NETWORK, rewards: { witnessed: true, genesisKey: G.publicKey } });
    const unbonded = tempLedger({ networkId: NETWORK, rewards: { witnessed: true, genesisKey: G.publicKey } });
    try {
      for (const l of [bonded.ledger, unbonded.ledger]) {
        assert.equal(l.ingest(buildGenesis(G, { networkId: NETWORK, timestampMs: now - 50_000 }).bytes).status, 'applied');
        let n = 1;
        for (const k of [s.key, w1.key, w2.key]) assert.equal(l.ingest(buildTransfer(G, { networkId: NETWORK, nonce: BigInt(n), timestampMs: now - 40_000 + n++ }, acct(k), 500n * NEURO).bytes).status, 'applied');
        assert.equal(l.ingest(buildStake(s.key, { networkId: NETWORK, nonce: 1n, timestampMs: now - 30_000 }, MIN_REWARD_BOND, 30).bytes).status, 'applied');
      }
      for (const [i, k] of [w1.key, w2.key].entries()) assert.equal(bonded.ledger.ingest(buildStake(k, { networkId: NETWORK, nonce: 1n, timestampMs: now - 20_000 + i }, MIN_REWARD_BOND, 30).bytes).status, 'applied');
      const r1 = bonded.ledger.ingest(uptime.bytes);
      assert.equal(r1.status, 'applied');
      assert.ok(bonded.ledger.account(acct(s.key)).balance > 500n * NEURO - MIN_REWARD_BOND, 'the witnessed minute paid');
      const r2 = unbonded.ledger.ingest(uptime.bytes);
      assert.equal(r2.status, 'rejected');
      assert.equal(r2.reason, 'WITNESS_QUORUM');
    } finally {
      bonded.done();
      unbonded.done();
    }
  });

  it('hostile calls: a challenge in another key\'s name, an attestation for no answered challenge, over the per-peer quota', async () => {
    const now = Date.now();
    const epoch = Math.floor(now / PROOF_WINDOW_MS);
    const before = s.net.scores.score(w1.net.peerId);
    // w1 sends a challenge signed by w2's key (relaying another's challenge)
    const relayed = encodeChallenge(signChallenge(w2.key, { networkId: NETWORK, subject: s.key.publicKey, timeMs: now, nonce: randomBytes(32) }));
    await rejects(w1.net.rpc.call(s.net.peerId, livenessChallenge, relayed), 'LIVENESS_FORGED');
    assert.ok(s.net.scores.score(w1.net.peerId) < before, 'the relaying peer was penalised');
    // an attestation for a nonce the subject never answered
    const stray = signAttestation(w2.key, NETWORK, s.key.publicKey, epoch, randomBytes(32));
    await rejects(w2.net.rpc.call(s.net.peerId, livenessAttest, encodeAttestationMessage({ networkId: NETWORK, epoch, attestation: stray })), 'LIVENESS_UNKNOWN_NONCE');
    // a challenge dated far from the subject's clock
    const old = encodeChallenge(signChallenge(w2.key, { networkId: NETWORK, subject: s.key.publicKey, timeMs: now - 3_600_000, nonce: randomBytes(32) }));
    await rejects(w2.net.rpc.call(s.net.peerId, livenessChallenge, old), 'LIVENESS_SKEW');
    // the quota: perPeerPerWindow answered challenges per peer per window, then LIVENESS_RATE
    let answered = 0;
    let limited = 0;
    for (let i = 0; i < 12; i++) {
      const c = encodeChallenge(signChallenge(w2.key, { networkId: NETWORK, subject: s.key.publicKey, timeMs: Date.now(), nonce: randomBytes(32) }));
      try {
        await w2.net.rpc.call(s.net.peerId, livenessChallenge, c);
        answered++;
      } catch (e) {
        assert.ok(e instanceof NeuroShardError && e.code === 'LIVENESS_RATE', String(e));
        limited++;
      }
    }
    // at most 4 per window (a window may roll over once during the loop)
    assert.ok(limited >= 4 && answered <= 8, `answered ${answered}, limited ${limited}`);
    // and no attestation for these was accepted
    assert.ok(server.attestations(epoch).length <= 2);
  });
});

describe('the node loop (src/node/witness.ts) over libp2p', () => {
  let peers: Peer[] = [];
  after(async () => {
    for (const p of peers) await p.net.stop();
  });

  it('each node witnesses the others once per window and submits an Uptime event that a bonded ledger pays', async () => {
    const s = await startPeer([]);
    const addr = s.net.p2p.multiaddrs()[0]!;
    const w1 = await startPeer([addr]);
    peers = [s, w1, await startPeer([addr, w1.net.p2p.multiaddrs()[0]!])]; // the third dials both, so all three are connected
    await waitFor(() => peers.every((p) => p.net.p2p.connectedPeers().length >= 2), { timeoutMs: 120_000, intervalMs: 100, what: 'three peers connected to each other' });
    // one clock for all three (challenge times and windows), starting early in a window
    const clock = new ManualClock(Math.floor(Date.now() / PROOF_WINDOW_MS) * PROOF_WINDOW_MS + 1000);
    const G = keyFromPrivate(randomBytes(32));
    const l = tempLedger({ networkId: NETWORK, rewards: { witnessed: true, genesisKey: G.publicKey } });
    try {
      const t0 = clock.now() - 50_000;
      assert.equal(l.ledger.ingest(buildGenesis(G, { networkId: NETWORK, timestampMs: t0 }).bytes).status, 'applied');
      for (const [i, p] of peers.entries()) {
        assert.equal(l.ledger.ingest(buildTransfer(G, { networkId: NETWORK, nonce: BigInt(i + 1), timestampMs: t0 + 1 + i }, acct(p.key), 500n * NEURO).bytes).status, 'applied');
        assert.equal(l.ledger.ingest(buildStake(p.key, { networkId: NETWORK, nonce: 1n, timestampMs: t0 + 10 + i }, MIN_REWARD_BOND, 30).bytes).status, 'applied');
      }
      const submitted: { status: string; reason?: string }[] = [];
      const loops = await Promise.all(
        peers.map((p) =>
          startUptimeWitness({
            rpc: p.net.rpc,
            key: p.key,
            networkId: NETWORK,
            peers: () => peers.filter((q) => q !== p).map((q) => q.net.peerId),
            submit: (b) => {
              const r = l.ledger.ingest(b);
              submitted.push(r);
              return Promise.resolve(r);
            },
            scores: p.net.scores,
            clock,
            tickMs: 3_600_000, // the test drives the steps
          }),
        ),
      );
      try {
        for (const x of loops) await x.tick(); // window w: each challenges the other two
        for (const x of loops) assert.equal(x.counts.witnessed, 2, `witnessed ${x.counts.witnessed}, failed ${x.counts.failed}`);
        const before = peers.map((p) => l.ledger.account(acct(p.key)).balance);
        clock.advance(PROOF_WINDOW_MS);
        for (const x of loops) await x.tick(); // window w+1: each submits window w's Uptime event
        assert.equal(submitted.length, 3);
        assert.ok(submitted.every((r) => r.status === 'applied'), JSON.stringify(submitted));
        for (const [i, p] of peers.entries()) assert.ok(l.ledger.account(acct(p.key)).balance > before[i]!, 'each bonded node earned its witnessed minute');
        assert.equal(l.ledger.supplyGap(), 0n);
      } finally {
        for (const x of loops) await x.stop();
      }
    } finally {
      l.done();
    }
  });
});
