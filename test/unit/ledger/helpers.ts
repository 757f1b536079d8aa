/** Shared fixtures of the ledger tests: deterministic keys, HolderRecords, a ledger in a temp dir. */
import { join } from 'node:path';
import { accountIdFromPublicKey, keyFromPrivate, type NodeKey } from '../../../src/identity/index.js';
import { sha256 } from '../../../src/util/bytes.js';
import { Ledger } from '../../../src/ledger/ledger.js';
import { signEmbeddedHolderRecord, type EmbeddedHolderRecord } from '../../../src/ledger/holder.js';
import { buildProof, type Envelope } from '../../../src/ledger/build.js';
import { tempDir } from '../../utils/paths.js';

export const NET = 'testnet-0123';
export const LAYERS = 8;
/** 2024-01-01T00:00:00Z: event times in tests start here. */
export const T0 = 1_704_067_200_000;

export function testKey(i: number): NodeKey {
  return keyFromPrivate(sha256(`neuroshard ledger test key ${i}`));
}

export function acct(k: NodeKey): Uint8Array {
  return accountIdFromPublicKey(k.publicKey);
}

export function env(nonce: number | bigint, timestampMs: number, networkId = NET): Envelope {
  return { networkId, nonce: BigInt(nonce), timestampMs };
}

export function holderRecord(key: NodeKey, span: { start: number; end: number }, atMs: number, opts: { networkId?: string; tokensPerSec?: number; lifetimeMs?: number } = {}): EmbeddedHolderRecord {
  return signEmbeddedHolderRecord(key, {
    networkId: opts.networkId ?? NET,
    multiaddrs: ['/ip4/127.0.0.1/tcp/9000'],
    span,
    capacity: { memoryMb: 4096, tokensPerSec: opts.tokensPerSec ?? 100 },
    timestampMs: atMs - 1000,
    expiresMs: atMs - 1000 + (opts.lifetimeMs ?? 3_600_000),
  });
}

/** A full-uptime proof of `key` in the window starting at `ts` (all layers unless a span is given). */
export function uptimeProof(key: NodeKey, ts: number, opts: { nonce?: number; span?: { start: number; end: number }; dataSamples?: bigint } = {}): Uint8Array {
  const span = opts.span ?? { start: 0, end: LAYERS };
  return buildProof(key, env(opts.nonce ?? Math.floor(ts / 60_000), ts), {
    uptimeMs: 60_000,
    dataSamples: opts.dataSamples ?? 0n,
    holderRecord: holderRecord(key, span, ts),
  }).bytes;
}

export function openTempLedger(name = 'ledger.db'): { ledger: Ledger; path: string; dir: string; cleanup: () => void } {
  const t = tempDir('neuroshard-ledger-');
  const path = join(t.dir, name);
  const ledger = new Ledger({ path, networkId: NET, modelLayers: LAYERS });
  return {
    ledger,
    path,
    dir: t.dir,
    cleanup: () => {
      ledger.close();
      t.cleanup();
    },
  };
}
