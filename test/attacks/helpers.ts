/** Fixtures of the attack suite: a peer that serves whatever the attacker wants, and a ledger in a temp dir. */
import { join } from 'node:path';
import { Ledger, type LedgerOptions } from '../../src/ledger/ledger.js';
import type { LedgerNetwork, LedgerSyncHandler } from '../../src/ledger/interfaces.js';
import { tempDir } from '../utils/paths.js';
import { LAYERS, NET } from '../unit/ledger/helpers.js';

export { acct, env, holderRecord, LAYERS, NET, T0, testKey, uptimeProof } from '../unit/ledger/helpers.js';

/** A LedgerNetwork whose one peer ('evil') answers range calls with `page(call, after)`. */
export function evilPeer(page: (call: number, after: Uint8Array | null) => Uint8Array[]): LedgerNetwork & { calls: number; gossip: (b: Uint8Array) => void; byIds: Uint8Array[] } {
  let handler: ((event: Uint8Array, from: string) => void) | undefined;
  const net = {
    calls: 0,
    byIds: [] as Uint8Array[],
    gossip: (b: Uint8Array) => handler?.(b, 'evil'),
    publish: () => Promise.resolve(),
    subscribe: (h: (event: Uint8Array, from: string) => void) => {
      handler = h;
      return () => (handler = undefined);
    },
    syncPeers: () => ['evil'],
    fetchRange: (_peer: string, after: Uint8Array | null) => Promise.resolve(page(++net.calls, after)),
    fetchByIds: () => Promise.resolve(net.byIds),
    serve: (_h: LedgerSyncHandler) => () => {},
  };
  return net;
}

export function tempLedger(opts: Partial<LedgerOptions> = {}): { ledger: Ledger; dir: string; path: string; done: () => void } {
  const t = tempDir('neuroshard-attack-');
  const path = join(t.dir, 'ledger.db');
  const ledger = new Ledger({ path, networkId: NET, modelLayers: LAYERS, checkInvariant: true, ...opts });
  return {
    ledger,
    dir: t.dir,
    path,
    done: () => {
      ledger.close();
      t.cleanup();
    },
  };
}

import { randomBytes } from 'node:crypto';
import { SIGNATURE_LENGTH } from '../../src/identity/sign.js';
import { buildProof } from '../../src/ledger/build.js';
import { decodeEvent, encodePayload, type UnsignedEvent } from '../../src/ledger/events.js';
import type { NodeKey } from '../../src/identity/index.js';
import { env as envOf, holderRecord as recordOf } from '../unit/ledger/helpers.js';

/** Wire bytes of an event that claims `e.signer` but carries a random signature (no private key needed). */
export function forge(e: UnsignedEvent): Uint8Array {
  const payload = encodePayload(e);
  const bytes = new Uint8Array(payload.byteLength + SIGNATURE_LENGTH);
  bytes.set(payload);
  bytes.set(randomBytes(SIGNATURE_LENGTH), payload.byteLength);
  decodeEvent(bytes); // well-formed: only the signature is wrong
  return bytes;
}

/**
 * `n` proofs of `key`, one per 60 s window from `fromMs`, each claiming a full window of data work (what earns
 * the most), sharing one HolderRecord per hour so that building them costs one signature each.
 */
export function proofRun(key: NodeKey, fromMs: number, n: number, nonce0 = 0): Uint8Array[] {
  const out: Uint8Array[] = [];
  let rec = recordOf(key, { start: 0, end: LAYERS }, fromMs);
  for (let i = 0; i < n; i++) {
    const ts = fromMs + i * 60_000;
    if (ts >= rec.expiresMs - 60_000) rec = recordOf(key, { start: 0, end: LAYERS }, ts);
    out.push(buildProof(key, envOf(nonce0 + i, ts), { uptimeMs: 60_000, dataSamples: 60_000n, holderRecord: rec }).bytes);
  }
  return out;
}
