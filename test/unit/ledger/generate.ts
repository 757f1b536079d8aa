/**
 * A seeded generator of realistic ledger traffic, valid and invalid: proofs (some lying about layers, some twice
 * in a window), transfers (some overdrafts, some double spends), stakes and unstakes (some while locked), slashes
 * with evidence (some repeated, some bogus), market requests, claims and completions (some late, some by the
 * wrong node), plus garbage, tampered bytes, wrong-network events, replays and high-S malleated copies.
 */
import { malleate } from '../../../src/identity/index.js';
import { NEURO } from '../../../src/ledger/amount.js';
import {
  buildServedCompletion,
  buildMarketRequest,
  buildProof,
  buildSlashEquivocation,
  buildSlashInvalidProof,
  buildStake,
  buildTransfer,
  buildUnstake,
} from '../../../src/ledger/build.js';
import { decodeEvent, signEvent, type LedgerEvent } from '../../../src/ledger/events.js';
import { Rng } from '../../../src/util/rng.js';
import { sha256 } from '../../../src/util/bytes.js';
import { acct, env, holderRecord, NET, T0, testKey } from './helpers.js';

export const GEN_LAYERS = 64;

export interface Traffic {
  /** Wire bytes, in generation order (roughly increasing time, with jitter). */
  events: Uint8Array[];
  counts: Record<string, number>;
}

export function generateTraffic(total: number, seed: number, nodes = 12): Traffic {
  const rng = new Rng(seed);
  const keys = Array.from({ length: nodes }, (_, i) => testKey(1000 + i));
  const nonces = new Map<string, number>();
  const nextNonce = (i: number, kind: string): number => {
    const k = `${i}:${kind}`;
    const n = (nonces.get(k) ?? 0) + 1;
    nonces.set(k, n);
    return n;
  };
  const out: Uint8Array[] = [];
  const counts: Record<string, number> = {};
  const count = (k: string): void => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  const valid: LedgerEvent[] = [];
  const equivocations: [Uint8Array, Uint8Array][] = [];
  const lies: Uint8Array[] = [];
  const requests: { e: LedgerEvent; requester: number; ts: number; expires: number; claimer?: number }[] = [];
  const spans = Array.from({ length: nodes }, (_, i) => {
    const start = (i * 8) % GEN_LAYERS;
    return { start, end: Math.min(GEN_LAYERS, start + 8 + (i % 3) * 8) };
  });
  const pick = (n: number): number => rng.int(n);
  const other = (i: number): number => (i + 1 + pick(nodes - 1)) % nodes;
  let window = Math.floor(T0 / 60_000);
  const push = (b: Uint8Array, kind: string): void => {
    out.push(b);
    count(kind);
  };

  while (out.length < total) {
    window += 1;
    const base = window * 60_000;
    const ts = (): number => base + pick(60_000);
    // proofs: most nodes, most windows
    for (let i = 0; i < nodes && out.length < total; i++) {
      if (rng.next() < 0.25) continue;
      const t = ts();
      const training = BigInt(pick(600_000));
      const p = buildProof(keys[i]!, env(nextNonce(i, 'proof'), t), {
        uptimeMs: 30_000 + pick(30_001),
        trainingTokens: training,
        dataSamples: BigInt(pick(500)),
        modelHashBefore: sha256(`b${i}${window}`),
        modelHashAfter: sha256(`a${i}${window}`),
        gradientCommitment: sha256(`g${i}${window}`),
        lossMicro: BigInt(1 + pick(5_000_000)),
        holderRecord: holderRecord(keys[i]!, spans[i]!, t, { tokensPerSec: 50 + pick(500) }),
      });
      push(p.bytes, 'proof');
      valid.push(p);
      const r = rng.next();
      if (r < 0.03) {
        // a second proof in the same window (rate limit) with a fresh nonce
        push(buildProof(keys[i]!, env(nextNonce(i, 'proof'), base + 59_999), { uptimeMs: 60_000, holderRecord: holderRecord(keys[i]!, spans[i]!, base + 59_999) }).bytes, 'proof-window');
      } else if (r < 0.05) {
        // equivocation: another proof with the same nonce
        const twin = buildProof(keys[i]!, { ...env(p.nonce, t + 1) }, { uptimeMs: 1000, holderRecord: holderRecord(keys[i]!, spans[i]!, t + 1) });
        push(twin.bytes, 'proof-equivocation');
        equivocations.push([p.bytes, twin.bytes]);
      } else if (r < 0.08) {
        // a lie: layers beyond the record (dropped; slashable)
        const lie = signEvent(keys[i]!, { ...env(nextNonce(i, 'proof'), t), body: { ...p.body, layers: { start: 0, end: GEN_LAYERS } } });
        push(lie.bytes, 'proof-lie');
        lies.push(lie.bytes);
      }
    }
    // transfers
    for (let k = 0; k < 10 && out.length < total; k++) {
      const i = pick(nodes);
      const to = other(i);
      const amount = BigInt(1 + pick(3000)) * (NEURO / 1000n);
      const t = ts();
      const e = buildTransfer(keys[i]!, env(nextNonce(i, 'tx'), t), acct(keys[to]!), amount);
      push(e.bytes, 'transfer');
      valid.push(e);
      if (rng.next() < 0.04) {
        const twin = buildTransfer(keys[i]!, env(e.nonce, t + pick(1000)), acct(keys[other(i)]!), amount + 1n);
        push(twin.bytes, 'double-spend');
        equivocations.push([e.bytes, twin.bytes]);
      }
    }
    // stakes and unstakes
    if (rng.next() < 0.8) {
      const i = pick(nodes);
      push(buildStake(keys[i]!, env(nextNonce(i, 'stake'), ts()), BigInt(1 + pick(5)) * NEURO, 1 + pick(2)).bytes, 'stake');
    }
    if (rng.next() < 0.6) {
      const i = pick(nodes);
      push(buildUnstake(keys[i]!, env(nextNonce(i, 'unstake'), ts()), BigInt(1 + pick(3)) * NEURO).bytes, 'unstake');
    }
    // market
    if (rng.next() < 0.9) {
      const i = pick(nodes);
      const t = ts();
      const expires = t + 60_000 + pick(20 * 60_000);
      const e = buildMarketRequest(keys[i]!, env(nextNonce(i, 'req'), t), { maxTokens: 1000 + pick(100_000), maxPricePerMillion: BigInt(500 + pick(4000)) * (NEURO / 1000n), expiresAtMs: expires });
      push(e.bytes, 'market-request');
      requests.push({ e, requester: i, ts: t, expires });
    }
    if (requests.length > 0 && rng.next() < 0.8) {
      // a completion on the requester's receipt (sometimes signed by the wrong requester: rejected NOT_REQUESTER)
      const q = requests[pick(requests.length)]!;
      const c = other(q.requester);
      const r = rng.next() < 0.9 ? q.requester : other(c);
      const hops = [c, other(c), other(c)].filter((h, k, all) => all.indexOf(h) === k && h !== r);
      if (hops[0] === c) {
        push(
          buildServedCompletion(env(nextNonce(c, 'complete'), q.ts + 120_000 + pick(30 * 60_000)), {
            requestId: q.e.id,
            tokensUsed: 1 + pick(60_000),
            requester: keys[r]!,
            hops: hops.map((h) => keys[h]!),
          }).bytes,
          'market-complete',
        );
      }
    }
    // slashes with evidence
    if (equivocations.length > 0 && rng.next() < 0.3) {
      const [a, b] = equivocations[pick(equivocations.length)]!;
      const offender = decodeEvent(a).signer;
      let r = pick(nodes);
      if (Buffer.compare(keys[r]!.publicKey, offender) === 0) r = (r + 1) % nodes;
      push(buildSlashEquivocation(keys[r]!, env(nextNonce(r, 'slash'), ts()), a, b).bytes, 'slash-equivocation');
    }
    if (lies.length > 0 && rng.next() < 0.2) {
      const lie = lies[pick(lies.length)]!;
      const r = pick(nodes);
      push(buildSlashInvalidProof(keys[r]!, env(nextNonce(r, 'slash'), ts()), lie).bytes, 'slash-invalid-proof');
    }
    // noise: garbage, tampering, wrong network, replays, malleated copies
    if (valid.length > 0) {
      const v = valid[pick(valid.length)]!;
      const r = rng.next();
      if (r < 0.25) {
        const t = Uint8Array.from(v.bytes);
        t[pick(t.length)] ^= 1 << pick(8);
        push(t, 'tampered');
      } else if (r < 0.45) {
        push(Uint8Array.from(v.bytes), 'replay');
      } else if (r < 0.65) {
        const m = new Uint8Array(v.bytes.length);
        m.set(v.payload);
        m.set(malleate(v.signature), v.payload.length);
        push(m, 'malleated');
      } else if (r < 0.75) {
        push(buildTransfer(keys[0]!, env(1, ts(), 'not-' + NET), acct(keys[1]!), NEURO).bytes, 'wrong-network');
      } else if (r < 0.85) {
        const g = new Uint8Array(20 + pick(400));
        for (let j = 0; j < g.length; j++) g[j] = pick(256);
        push(g, 'garbage');
      }
    }
  }
  return { events: out.slice(0, total), counts };
}
