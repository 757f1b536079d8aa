/**
 * The network's model files (config, tokenizer.json, tokenizer_config.json with its chat template) between real
 * RpcNodes over the in-memory network: an honest peer's files are taken when they hash to the network id; a peer
 * serving another tokenizer or template, or bytes that do not match its own manifest, is refused with a typed error
 * and penalised; a peer without the files is skipped unpunished.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NANO, type LlamaConfig } from '../../../src/model/index.js';
import { networkIdOf } from '../../../src/node/genesis.js';
import { MemoryHub } from '../../../src/p2p/memory.js';
import * as methods from '../../../src/protocols/methods.js';
import type { CheckpointChunk, CheckpointRequest } from '../../../src/protocols/pb/node.js';
import { type CallContext } from '../../../src/protocols/rpc/service.js';
import {
  BAD_MODEL_FILES_PENALTY,
  fetchModelFiles,
  MODEL_FILE_CHUNK_BYTES,
  ModelFilesMismatchError,
  ModelFilesUnavailableError,
  parseModelManifest,
  tokenizerCommitment,
  type ModelFileSet,
} from '../../../src/pool/model-files.js';
import { checkpointHandler } from '../../../src/pool/transfer.js';
import { memoryRpcNode } from '../../utils/memory-rpc.js';

const NET = 'modelfiles01';
const CONFIG: LlamaConfig = { ...NANO };
const MANIFEST = new TextEncoder().encode('the genesis corpus manifest');
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A tokenizer.json over a chunk in size, so that it travels in more than one chunk. */
const TOKENIZER = enc(JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: { a: 0 } }, pad: 'x'.repeat(MODEL_FILE_CHUNK_BYTES + 12_345) }));
const TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:";

function filesWith(template: string, config = CONFIG): ModelFileSet {
  return {
    config,
    files: [
      { name: 'tokenizer.json', bytes: TOKENIZER },
      { name: 'tokenizer_config.json', bytes: enc(JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: template })) },
      { name: 'generation_config.json', bytes: enc('{"eos_token_id": 2}') },
    ],
  };
}

const GOOD = filesWith(TEMPLATE);
const idOf = (config: LlamaConfig, commitment: Uint8Array): string => networkIdOf(config, commitment, MANIFEST);
const NETWORK_ID = idOf(GOOD.config, tokenizerCommitment(GOOD.files));

type Behaviour = 'honest' | 'other-template' | 'other-config' | 'corrupt' | 'none';

async function swarm(behaviours: Behaviour[]) {
  const hub = new MemoryHub();
  const { rpc, scores } = await memoryRpcNode(hub, 'client', NET);
  const peers: string[] = [];
  for (const [i, b] of behaviours.entries()) {
    const id = `peer${i}`;
    const { rpc: r } = await memoryRpcNode(hub, id, NET);
    const set = b === 'other-template' ? filesWith('{{ messages[0].content }}') : b === 'other-config' ? filesWith(TEMPLATE, { ...CONFIG, rope_theta: CONFIG.rope_theta + 1 }) : b === 'none' ? undefined : GOOD;
    const inner = checkpointHandler({ config: () => undefined, held: () => undefined, params: () => Promise.reject(new Error('no weights')), modelFiles: () => set });
    const handler = async function* (req: CheckpointRequest, ctx: CallContext): AsyncGenerator<CheckpointChunk> {
      for await (const c of inner(req, ctx)) {
        // the manifest stays honest, a file's bytes do not
        if (b === 'corrupt' && c.name === 'tokenizer_config.json' && c.data.byteLength > 0) {
          const data = c.data.slice();
          data[0] = data[0]! ^ 0xff;
          yield { ...c, data };
        } else yield c;
      }
    };
    await r.handle(methods.checkpoint, handler);
    peers.push(id);
  }
  return { rpc, scores, peers };
}

describe('model files from peers', () => {
  it('takes an honest peer’s config and files (a tokenizer.json of several chunks) verified against the network id', async () => {
    const s = await swarm(['honest']);
    const got = await fetchModelFiles({ rpc: s.rpc, scores: s.scores }, s.peers, { networkId: NETWORK_ID, idOf });
    assert.deepEqual(got.config, CONFIG);
    assert.deepEqual(got.files.map((f) => [f.name, Buffer.from(f.bytes).toString('hex')]), GOOD.files.map((f) => [f.name, Buffer.from(f.bytes).toString('hex')]));
    assert.equal(got.peer, 'peer0');
    assert.equal(s.scores.score('peer0'), 0);
  });

  it('refuses a peer serving another chat template with a typed error and a penalty', async () => {
    const s = await swarm(['other-template']);
    await assert.rejects(
      fetchModelFiles({ rpc: s.rpc, scores: s.scores }, s.peers, { networkId: NETWORK_ID, idOf }),
      (e: unknown) => e instanceof ModelFilesMismatchError && e.code === 'MODEL_FILES_MISMATCH' && e.fault === 'peer',
    );
    // the score decays back towards 0 over time: about the penalty, read right after it
    const score = s.scores.score('peer0');
    assert.ok(score <= -BAD_MODEL_FILES_PENALTY + 1 && score >= -BAD_MODEL_FILES_PENALTY - 1, `score ${score}`);
  });

  it('skips (and penalises) peers with another config or bytes that break their manifest, and takes the honest one', async () => {
    const s = await swarm(['other-config', 'corrupt', 'honest']);
    const got = await fetchModelFiles({ rpc: s.rpc, scores: s.scores }, s.peers, { networkId: NETWORK_ID, idOf });
    assert.equal(got.peer, 'peer2');
    assert.equal(idOf(got.config, tokenizerCommitment(got.files)), NETWORK_ID);
    assert.ok(s.scores.score('peer0') < 0, 'the peer with another config lost score');
    assert.ok(s.scores.score('peer1') < 0, 'the peer whose bytes break its manifest lost score');
    assert.equal(s.scores.score('peer2'), 0);
  });

  it('a peer without the files is skipped unpunished: a typed "unavailable" error', async () => {
    const s = await swarm(['none']);
    await assert.rejects(fetchModelFiles({ rpc: s.rpc, scores: s.scores }, s.peers, { networkId: NETWORK_ID, idOf }), (e: unknown) => e instanceof ModelFilesUnavailableError);
    assert.equal(s.scores.score('peer0'), 0);
  });

  it('a manifest naming other files, oversized files or bad hashes is malformed', () => {
    const m = (files: unknown): Uint8Array => enc(JSON.stringify({ v: 1, config: CONFIG, files }));
    const sha = 'ab'.repeat(32);
    assert.equal(parseModelManifest(m([{ name: 'tokenizer.json', size: 10, sha256: sha }])).files.length, 1);
    for (const bad of [
      [{ name: '../../etc/passwd', size: 10, sha256: sha }],
      [{ name: 'tokenizer.json', size: (64 << 20) + 1, sha256: sha }],
      [{ name: 'tokenizer.json', size: 10, sha256: 'xyz' }],
      [{ name: 'tokenizer.json', size: 10, sha256: sha }, { name: 'tokenizer.json', size: 10, sha256: sha }],
      [],
    ]) {
      assert.throws(() => parseModelManifest(m(bad)), (e: unknown) => (e as { code?: string }).code === 'MODEL_FILES_MALFORMED', JSON.stringify(bad).slice(0, 80));
    }
    assert.throws(() => parseModelManifest(enc('{"v":1,"config":{"hidden_size":-1},"files":[]}')), (e: unknown) => (e as { code?: string }).code === 'MODEL_FILES_MALFORMED');
  });

  it('the commitment covers every file: our own tokenizer alone is its bytes (the bundled id is unchanged)', () => {
    const own = enc('{"our":"tokenizer"}');
    assert.deepEqual(tokenizerCommitment([{ name: 'neuroshard-tokenizer.json', bytes: own }]), own);
    const a = tokenizerCommitment(GOOD.files);
    const b = tokenizerCommitment(filesWith('x').files);
    assert.notDeepEqual(a, b);
    assert.deepEqual(tokenizerCommitment([...GOOD.files].reverse()), a, 'independent of order');
  });
});
