/**
 * Bond lookup for route choice (issue 12 §3): the locked stake of each peer, as plain data (a map of peer id →
 * base units) that router/measure.ts `holderViews` takes. A peer id names a secp256k1 public key, whose account
 * is the ledger's; only locked stake counts (stake cooling down after an unstake bonds nothing, as for witnesses,
 * ledger/apply.ts). Pure: the ledger's account reader is passed in.
 */
import { accountIdFromPublicKey, publicKeyFromPeerId } from '../identity/index.js';

/** Locked stake per peer; a peer whose id names no secp256k1 key (nothing can be staked for it) maps to 0. */
export function stakesByPeer(peers: Iterable<string>, lockedOf: (accountId: Uint8Array) => bigint): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const peer of peers) {
    if (out.has(peer)) continue;
    let account: Uint8Array;
    try {
      account = accountIdFromPublicKey(publicKeyFromPeerId(peer));
    } catch {
      out.set(peer, 0n);
      continue;
    }
    out.set(peer, lockedOf(account));
  }
  return out;
}
