/**
 * The checkpoint RPCs and votes on the wire (src/protocols/ledger-checkpoint.ts), protobuf since version 2: the
 * codecs round-trip what the ledger serves, the signed payload survives the trip (a vote verifies after it),
 * and a peer that answers out of shape (too many rows or signatures, rows out of order, wrong byte lengths,
 * out-of-range numbers) gets a typed RPC_MALFORMED, the peer's fault, over the in-memory P2P network.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NEURO } from '../../../src/ledger/amount.js';
import { checkpointPayload, CHECKPOINT_DOMAIN, MAX_COMMITTEE, signCheckpoint, ZERO_HASH, type CheckpointBody, type SignedCheckpoint } from '../../../src/ledger/checkpoint.js';
import { verifyDomain } from '../../../src/identity/index.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import { PeerScoreTable } from '../../../src/p2p/peer-score.js';
import {
  bodyToPb as toPbBody,
  CheckpointP2P,
  checkpointTopic,
  decodeVote,
  encodeVote,
  ledgerAccount,
  ledgerCheckpoints,
  ledgerGenesis,
  ledgerSnapshot,
  MAX_SNAPSHOT_BYTES,
  SNAPSHOT_ROWS_PER_CALL,
  type CheckpointSource,
} from '../../../src/protocols/ledger-checkpoint.js';
import * as pb from '../../../src/protocols/pb/node.js';
import type { MessageCodec, UnaryMethod } from '../../../src/protocols/rpc/method.js';
import { RpcNode } from '../../../src/protocols/rpc/service.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { acct, NET, testKey } from '../ledger/helpers.js';

const K = Array.from({ length: 4 }, (_, i) => testKey(900 + i));

function body(seq: number, committee = K.map((k, i) => ({ account: toHex(acct(k)), stake: NEURO * BigInt(100 + i) }))): CheckpointBody {
  return { networkId: NET, seq, cutMs: 300_000 * seq, height: 10 * seq, stateHash: 'ab'.repeat(32), eventsRoot: 'cd'.repeat(32), prev: seq === 1 ? ZERO_HASH : 'ef'.repeat(32), committee };
}

function signed(seq: number): SignedCheckpoint {
  const b = body(seq);
  return { body: b, sigs: K.map((k) => signCheckpoint(k, b)) };
}

/** The same method with a codec that sends bytes as they are: a server that answers whatever it likes. */
function raw<Req, Res>(m: UnaryMethod<Req, Res>): UnaryMethod<Req, Uint8Array> {
  const id: MessageCodec<Uint8Array> = { encode: (b) => b, decode: (b) => b };
  return { ...m, response: id, validateResponse: undefined };
}

async function pair(): Promise<{ a: RpcNode; b: RpcNode; cp: CheckpointP2P; client: CheckpointP2P; close: () => Promise<void> }> {
  const hub = new MemoryHub();
  const pa = hub.createNode('a');
  const pbn = hub.createNode('b');
  await pa.start();
  await pbn.start();
  const scores = new PeerScoreTable();
  const a = new RpcNode({ network: pa, networkId: NET, scores });
  const b = new RpcNode({ network: pbn, networkId: NET });
  const cp = new CheckpointP2P({ p2p: pa, rpc: a, networkId: NET, scores });
  return {
    a,
    b,
    cp,
    client: new CheckpointP2P({ p2p: pbn, rpc: b, networkId: NET }),
    close: async () => {
      await pa.stop();
      await pbn.stop();
    },
  };
}

function rpcMalformed(e: unknown): boolean {
  return isNeuroShardError(e) && e.code === 'RPC_MALFORMED' && e.fault === 'peer';
}

describe('checkpoint codecs (protobuf, version 2)', () => {
  it('protocol ids and the vote topic are version 2', () => {
    for (const m of [ledgerCheckpoints, ledgerSnapshot, ledgerAccount, ledgerGenesis]) assert.equal(m.version, '2.0.0');
    assert.equal(checkpointTopic(NET), `/neuroshard/${NET}/ledger-checkpoint/2`);
  });

  it('round-trips checkpoints with 128-member committees and 128 signatures under the response limit', () => {
    const big = Array.from({ length: MAX_COMMITTEE }, (_, i) => ({ account: (i + 1).toString(16).padStart(40, '0'), stake: 10n ** 30n + BigInt(i) }));
    const b = body(3, big);
    const cp: SignedCheckpoint = { body: b, sigs: Array.from({ length: MAX_COMMITTEE }, () => signCheckpoint(K[0]!, b)) };
    const list = Array.from({ length: 16 }, () => cp);
    const bytes = ledgerCheckpoints.response.encode({ checkpoints: list });
    assert.ok(bytes.byteLength <= ledgerCheckpoints.maxResponseBytes, `${bytes.byteLength} bytes`);
    const back = ledgerCheckpoints.response.decode(bytes).checkpoints;
    assert.deepEqual(back, list);
    // stakes above u64 survive (NEURO has 18 decimals)
    assert.equal(back[0]!.body.committee[0]!.stake, 10n ** 30n);
  });

  it('a vote decodes to the body its member signed', () => {
    const b = body(2);
    const sig = signCheckpoint(K[1]!, b);
    const v = decodeVote(encodeVote({ body: b, sig }));
    assert.deepEqual(v, { body: b, sig });
    assert.ok(verifyDomain(fromHex(v.sig.key), CHECKPOINT_DOMAIN, checkpointPayload(v.body), fromHex(v.sig.sig)));
  });

  it('rejects malformed votes', () => {
    const b = body(2);
    const sig = signCheckpoint(K[1]!, b);
    const good = pb.CheckpointVote.encode({ body: toPbBody(b), sig: pbSig(sig) });
    assert.deepEqual(decodeVote(good).body, b);
    const cases: [string, pb.CheckpointVote][] = [
      ['no signature', { body: toPbBody(b) }],
      ['no body', { sig: { key: fromHex(sig.key) as Uint8Array<ArrayBuffer>, sig: fromHex(sig.sig) as Uint8Array<ArrayBuffer> } }],
      ['short state hash', { body: { ...toPbBody(b), stateHash: new Uint8Array(31) }, sig: pbSig(sig) }],
      ['seq 0', { body: { ...toPbBody(b), seq: 0n }, sig: pbSig(sig) }],
      ['seq past 2^53', { body: { ...toPbBody(b), seq: 2n ** 60n }, sig: pbSig(sig) }],
      ['bad stake', { body: { ...toPbBody(b), committee: [{ account: new Uint8Array(20) as Uint8Array<ArrayBuffer>, stake: '-1' }] }, sig: pbSig(sig) }],
      ['short account', { body: { ...toPbBody(b), committee: [{ account: new Uint8Array(19) as Uint8Array<ArrayBuffer>, stake: '1' }] }, sig: pbSig(sig) }],
      ['key not a compressed point', { body: toPbBody(b), sig: { key: new Uint8Array(33).fill(4) as Uint8Array<ArrayBuffer>, sig: pbSig(sig).sig } }],
      ['short signature', { body: toPbBody(b), sig: { key: pbSig(sig).key, sig: new Uint8Array(63) as Uint8Array<ArrayBuffer> } }],
      ['long network id', { body: { ...toPbBody(b), networkId: 'x'.repeat(129) }, sig: pbSig(sig) }],
      ['129 committee members', { body: { ...toPbBody(b), committee: Array.from({ length: 129 }, () => ({ account: new Uint8Array(20) as Uint8Array<ArrayBuffer>, stake: '1' })) }, sig: pbSig(sig) }],
    ];
    for (const [what, v] of cases) assert.throws(() => decodeVote(pb.CheckpointVote.encode(v)), Error, what);
    assert.throws(() => decodeVote(new Uint8Array([0xff, 0xff, 0xff])), Error, 'garbage');
    assert.throws(() => decodeVote(new Uint8Array(64 * 1024 + 1)), /too large/);
  });

  it('rejects snapshot pages out of shape and requests out of range', () => {
    const page = (rows: { key: string; value: string }[]): Uint8Array => pb.LedgerSnapshotPage.encode({ rows });
    assert.deepEqual(ledgerSnapshot.response.decode(page([{ key: 'a:1', value: '{}' }, { key: 'a:2', value: '{}' }])).rows, [['a:1', '{}'], ['a:2', '{}']]);
    const bad: [string, Uint8Array][] = [
      ['descending', page([{ key: 'a:2', value: '{}' }, { key: 'a:1', value: '{}' }])],
      ['duplicate', page([{ key: 'a:1', value: '{}' }, { key: 'a:1', value: '{}' }])],
      ['empty key', page([{ key: '', value: '{}' }])],
      ['long key', page([{ key: 'a:' + 'x'.repeat(127), value: '{}' }])],
      ['long value', page([{ key: 'a:1', value: 'x'.repeat(16 * 1024 + 1) }])],
      ['2,049 rows', page(Array.from({ length: SNAPSHOT_ROWS_PER_CALL + 1 }, (_, i) => ({ key: `a:${i.toString().padStart(5, '0')}`, value: '{}' })))],
    ];
    for (const [what, b] of bad) assert.throws(() => ledgerSnapshot.response.decode(b), (e) => rpcMalformed(e), what);
    assert.throws(() => ledgerSnapshot.request.decode(pb.LedgerSnapshotRequest.encode({ seq: 1n, after: 'x'.repeat(129) })), (e) => rpcMalformed(e));
    assert.throws(() => ledgerCheckpoints.request.decode(pb.LedgerCheckpointsRequest.encode({ after: 2n ** 63n })), (e) => rpcMalformed(e));
    assert.throws(() => ledgerAccount.request.decode(pb.LedgerAccountRequest.encode({ publicKey: new Uint8Array(32) as Uint8Array<ArrayBuffer> })), (e) => rpcMalformed(e));
    assert.throws(() => ledgerAccount.response.decode(pb.LedgerAccountResponse.encode({ nextProofNonce: 1n, lastEpoch: -2n })), (e) => rpcMalformed(e));
    assert.throws(() => ledgerGenesis.response.decode(pb.LedgerGenesisResponse.encode({ genesisKey: new Uint8Array(33).fill(4) as Uint8Array<ArrayBuffer> })), (e) => rpcMalformed(e));
    assert.deepEqual(ledgerGenesis.response.decode(pb.LedgerGenesisResponse.encode({})), { genesisKey: null });
    assert.deepEqual(ledgerAccount.response.decode(ledgerAccount.response.encode({ nextProofNonce: '18446744073709551615', lastEpoch: -1 })), { nextProofNonce: '18446744073709551615', lastEpoch: -1 });
  });
});

function pbSig(s: { key: string; sig: string }): pb.CheckpointSig {
  return { key: fromHex(s.key) as Uint8Array<ArrayBuffer>, sig: fromHex(s.sig) as Uint8Array<ArrayBuffer> };
}

describe('checkpoint RPCs between two nodes (in-memory P2P)', () => {
  it('serves checkpoints, snapshot pages, accounts and the genesis key', async () => {
    const { cp, client, close } = await pair();
    try {
      const rows: [string, string][] = Array.from({ length: 5000 }, (_, i) => [`a:${i.toString(16).padStart(40, '0')}`, `{"balance":"${i}"}`]);
      const src: CheckpointSource = {
        checkpointsAfter: (seq, limit) => [signed(seq + 1), signed(seq + 2)].slice(0, limit),
        snapshotPage: (seq, after, limit) => (seq === 7 ? rows.filter(([k]) => k > after).slice(0, limit) : undefined),
        account: () => ({ nextProofNonce: 42n, lastEpoch: 9 }),
        voteCheck: () => 'accept',
        genesisKey: () => toHex(K[0]!.publicKey),
      };
      await cp.start(src, () => {});
      assert.deepEqual(await client.fetchCheckpoints('a', 4), [signed(5), signed(6)]);
      const got: [string, string][] = [];
      for (let after = ''; ; ) {
        const page = await client.fetchSnapshotPage('a', 7, after);
        if (page.length === 0) break;
        assert.ok(page.length <= SNAPSHOT_ROWS_PER_CALL);
        got.push(...page);
        after = page[page.length - 1]![0];
      }
      assert.deepEqual(got, rows);
      await assert.rejects(client.fetchSnapshotPage('a', 8, ''), (e) => isNeuroShardError(e) && e.code === 'LEDGER_SNAPSHOT_GONE');
      assert.deepEqual(await client.fetchAccount('a', toHex(K[2]!.publicKey)), { nextProofNonce: 42n, lastEpoch: 9 });
      assert.equal(await client.fetchGenesisKey('a'), toHex(K[0]!.publicKey));
    } finally {
      await close();
    }
  });

  it('cuts a page of large rows at the 4 MiB response limit', async () => {
    const { cp, client, close } = await pair();
    try {
      // 2,048 rows of 16 KiB would be 32 MiB: the server sends what fits, the client asks again after it
      const rows: [string, string][] = Array.from({ length: SNAPSHOT_ROWS_PER_CALL }, (_, i) => [`a:${i.toString().padStart(6, '0')}`, 'é'.repeat(8 * 1024)]);
      await cp.start(
        { checkpointsAfter: () => [], snapshotPage: (_s, after, limit) => rows.filter(([k]) => k > after).slice(0, limit), account: () => ({ nextProofNonce: 0n, lastEpoch: -1 }), voteCheck: () => 'ignore' },
        () => {},
      );
      const first = await client.fetchSnapshotPage('a', 1, '');
      assert.ok(first.length > 0 && first.length < rows.length, `${first.length} rows`);
      assert.ok(first.length * 16 * 1024 <= MAX_SNAPSHOT_BYTES);
      const second = await client.fetchSnapshotPage('a', 1, first[first.length - 1]![0]);
      assert.equal(second[0]![0], rows[first.length]![0]);
    } finally {
      await close();
    }
  });

  it('a server answering out of shape fails the call with RPC_MALFORMED', async () => {
    const { a, client, close } = await pair();
    try {
      let answer: Uint8Array = new Uint8Array(0);
      await a.handle(raw(ledgerSnapshot), () => answer);
      await a.handle(raw(ledgerCheckpoints), () => answer);
      answer = pb.LedgerSnapshotPage.encode({ rows: [{ key: 'a:2', value: '{}' }, { key: 'a:1', value: '{}' }] });
      await assert.rejects(client.fetchSnapshotPage('a', 1, ''), rpcMalformed);
      const cp = signed(1);
      const tooManySigs = { body: encodeCp(cp).body, sigs: Array.from({ length: MAX_COMMITTEE + 1 }, () => encodeCp(cp).sigs[0]!) };
      answer = pb.LedgerCheckpointsResponse.encode({ checkpoints: [tooManySigs] });
      await assert.rejects(client.fetchCheckpoints('a', 0), rpcMalformed);
      answer = pb.LedgerCheckpointsResponse.encode({ checkpoints: Array.from({ length: 17 }, () => encodeCp(cp)) });
      await assert.rejects(client.fetchCheckpoints('a', 0), rpcMalformed);
      answer = pb.LedgerCheckpointsResponse.encode({ checkpoints: [encodeCp(cp)] });
      assert.deepEqual(await client.fetchCheckpoints('a', 0), [cp]);
    } finally {
      await close();
    }
  });
});

function encodeCp(cp: SignedCheckpoint): pb.SignedCheckpoint {
  return pb.LedgerCheckpointsResponse.decode(ledgerCheckpoints.response.encode({ checkpoints: [cp] })).checkpoints[0]!;
}
