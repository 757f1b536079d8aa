/**
 * The node side of training receipts (src/node/training-receipts.ts recordOfRound over ledger/training-receipt.ts
 * roundRecord): which closed rounds give a record, and which contributions it accepts. Every member builds its record
 * from its own report, so equal reports must give byte-equal payloads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { peerIdFromPublicKey } from '../../../src/identity/index.js';
import { trainingRecordPayload } from '../../../src/ledger/training-receipt.js';
import { recordOfRound } from '../../../src/node/training-receipts.js';
import type { LastRoundReport } from '../../../src/training/sync.js';
import { testKey } from '../ledger/helpers.js';

const keys = [1, 2, 3].map((i) => testKey(9300 + i));
const ids = keys.map((k) => peerIdFromPublicKey(k.publicKey));
const H = 'ab'.repeat(32);
const closed = [{ round: 4, hashes: { embed: H, 'layers.0': H, head: H } }];

function report(o: Partial<LastRoundReport> = {}, used: (layer: string, id: string) => boolean = () => true): LastRoundReport {
  const layers = ['embed', 'layers.0', 'head'];
  const records: LastRoundReport['records'] = {};
  for (const l of layers) {
    const contributions = ids.map((id) => ({ id, used: used(l, id), weight: 1 }));
    records[l] = { aggregator: 'mean', received: 3, used: contributions.filter((c) => c.used).length, rejected: contributions.filter((c) => !c.used).length, contributions };
  }
  return { round: 4, outcome: { embed: 'closed', 'layers.0': 'closed', head: 'closed' }, accepted: 9, rejected: 0, records, refused: [], late: [], repaired: [], split: [], diverged: [], waived: [], members: [...ids].reverse(), syncMs: 10, ...o };
}

describe('training records from closed rounds', () => {
  it('equal reports give byte-equal payloads, whatever the member order; every contribution accepted', () => {
    const a = recordOfRound(report(), closed, { start: 0, end: 1 }, 1024n)!;
    const b = recordOfRound(report({ members: [...ids] }), closed, { start: 0, end: 1 }, 1024n)!;
    assert.deepEqual(trainingRecordPayload('n', a), trainingRecordPayload('n', b));
    assert.equal(a.members.length, 3);
    assert.deepEqual(a.contributions.map((c) => [c.tokens, c.accepted]), [[1024n, true], [1024n, true], [1024n, true]]);
    // another state hash: another weights hash
    const c = recordOfRound(report(), [{ round: 4, hashes: { ...closed[0]!.hashes, head: 'cd'.repeat(32) } }], { start: 0, end: 1 }, 1024n)!;
    assert.notDeepEqual(c.weightsHash, a.weightsHash);
  });

  it('a contribution rejected in one layer is rejected; an abandoned layer, a missing hash or one member give no record', () => {
    const r = recordOfRound(report({}, (l, id) => !(l === 'head' && id === ids[1])), closed, { start: 0, end: 1 }, 1024n)!;
    const rejected = r.contributions.filter((c) => !c.accepted).map((c) => peerIdFromPublicKey(r.members[c.member]!));
    assert.deepEqual(rejected, [ids[1]]);
    assert.equal(recordOfRound(report({ outcome: { embed: 'closed', 'layers.0': 'abandoned', head: 'closed' } }), closed, { start: 0, end: 1 }, 1024n), undefined);
    assert.equal(recordOfRound(report(), [{ round: 3, hashes: closed[0]!.hashes }], { start: 0, end: 1 }, 1024n), undefined);
    assert.equal(recordOfRound(report({ members: [ids[0]!] }), closed, { start: 0, end: 1 }, 1024n), undefined, 'senders that are no members');
  });
});
