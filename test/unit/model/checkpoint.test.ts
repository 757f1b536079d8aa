/**
 * Checkpoints: round trip (weights bitwise, optimizer moments, training state, tokenizer copy), Hugging Face
 * layout, span holders writing only their layers with span hashes that compose into the model hash, pruning to the
 * last N, atomic replacement, every failure naming the file and what was expected, and bitwise-identical resume.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  adamwStateFromFlat,
  CHECKPOINT_FILES,
  createAdamW,
  flatOptimizerState,
  latestCheckpoint,
  layerHashes,
  listCheckpoints,
  listCheckpointsAside,
  LlamaShard,
  loadAnyCheckpoint,
  loadCheckpoint,
  loadCheckpointOptimizer,
  loadHfModel,
  moveCheckpointAside,
  readCheckpointInfo,
  readVerifiedCheckpointConfig,
  removeCheckpointAside,
  saveCheckpoint,
  SafetensorsFile,
  spanHash,
  spanHashOf,
  type Span,
} from '../../../src/model/index.js';
import { isNeuroShardError } from '../../../src/util/errors.js';
import { tempDir } from '../../utils/paths.js';
import { randomIds, reference as backend, tinyConfig } from './helpers.js';

const tmp = tempDir('neuroshard-ckpt-');
after(() => tmp.cleanup());
let n = 0;
const fresh = (): string => join(tmp.dir, `r${n++}`);

const cfg = tinyConfig();
const tokPath = join(tmp.dir, 'tok.json');
writeFileSync(tokPath, JSON.stringify({ format: 'neuroshard-tokenizer', merges: [] }));

function errorIs(code: string, file: string, re?: RegExp) {
  return (e: unknown): boolean => isNeuroShardError(e, code) && (e as Error).message.includes(file) && (re === undefined || re.test((e as Error).message));
}

describe('checkpoints', () => {
  it('round-trip: weights, optimizer, training state, tokenizer; Hugging Face tools read the same directory', () => {
    const root = fresh();
    const m = new LlamaShard({ config: cfg, backend, seed: 5 });
    const opt = { step: 7, m: Float32Array.from({ length: m.params.length }, (_, i) => i * 1e-3), v: new Float32Array(m.params.length).fill(0.5), meta: { lr: '0.001' } };
    const ts = { step: 7, data: { shard: 3, offset: 1234 }, rng: [1, 2, 3, 4] };
    const saved = saveCheckpoint({ root, step: 7, model: m, optimizer: opt, trainingState: ts, tokenizerPath: tokPath });
    assert.equal(saved.dir, join(root, 'step-0000000007'));
    assert.equal(saved.modelHash, spanHash(m.layout, m.params));
    assert.deepEqual(Object.keys(saved.manifest.files).sort(), [
      CHECKPOINT_FILES.config,
      CHECKPOINT_FILES.model,
      CHECKPOINT_FILES.tokenizer,
      CHECKPOINT_FILES.optimizer,
      CHECKPOINT_FILES.trainingState,
    ].sort());
    assert.equal(JSON.parse(readFileSync(join(saved.dir, 'config.json'), 'utf8')).tie_word_embeddings, false);
    assert.equal(readFileSync(join(saved.dir, CHECKPOINT_FILES.tokenizer), 'utf8'), readFileSync(tokPath, 'utf8'));

    const l = loadCheckpoint(saved.dir, { backend });
    assert.deepEqual(l.config, cfg);
    assert.deepEqual(l.model.params, m.params);
    assert.equal(l.manifest.step, 7);
    assert.deepEqual(l.optimizer!.m, opt.m);
    assert.deepEqual(l.optimizer!.v, opt.v);
    assert.equal(l.optimizer!.step, 7);
    assert.deepEqual(l.optimizer!.meta, { lr: '0.001' });
    assert.deepEqual(l.trainingState, ts);
    assert.equal(l.tokenizerPath, join(saved.dir, CHECKPOINT_FILES.tokenizer));

    // the same directory as a plain Hugging Face checkpoint
    const hf = loadHfModel(saved.dir, { backend });
    assert.deepEqual(hf.model.params, m.params);
    const st = SafetensorsFile.open(join(saved.dir, 'model.safetensors'));
    assert.equal(st.header.metadata.format, 'pt');
    assert.equal(st.info('model.layers.1.mlp.up_proj.weight').dtype, 'F32');
    st.close();
    assert.notEqual(loadAnyCheckpoint(saved.dir, { backend }).verified, null);
  });

  it('span holders write only their layers; span hashes compose into the model hash', () => {
    const L5 = tinyConfig({ num_hidden_layers: 5 });
    const full = new LlamaShard({ config: L5, backend, seed: 9 });
    const spans: Span[] = [
      { start: 0, end: 2 },
      { start: 2, end: 4 },
      { start: 4, end: 5 },
    ];
    const manifests = spans.map((span) => {
      const s = new LlamaShard({ config: L5, backend, span, seed: 9 });
      const saved = saveCheckpoint({ root: fresh(), step: 1, model: s });
      const names = [...SafetensorsFile.open(join(saved.dir, 'model.safetensors')).header.tensors.keys()];
      for (const nm of names) {
        const m = /^model\.layers\.(\d+)\./.exec(nm);
        if (m !== null) assert.ok(Number(m[1]) >= span.start && Number(m[1]) < span.end, `${nm} outside ${span.start}..${span.end}`);
      }
      assert.equal(names.includes('model.embed_tokens.weight'), span.start === 0);
      assert.equal(names.includes('lm_head.weight'), span.end === 5);
      assert.deepEqual(saved.manifest.span, span);
      return saved.manifest;
    });
    // the full model's hash from the span checkpoints' layer hashes, in order
    const order = ['embed', '0', '1', '2', '3', '4', 'head'];
    const merged: Record<string, string> = Object.assign({}, ...manifests.map((m) => m.layer_hashes));
    const composed = spanHashOf(order.map((k) => Buffer.from(merged[k], 'hex')));
    assert.equal(composed, spanHash(full.layout, full.params));
    const fh = layerHashes(full.layout, full.params);
    assert.equal(Buffer.from(fh.get(2)!).toString('hex'), manifests[1].layer_hashes['2']);
    // a span loads from a full checkpoint; loading beyond what a checkpoint holds is refused
    const fullSaved = saveCheckpoint({ root: fresh(), step: 3, model: full });
    const mid = loadCheckpoint(fullSaved.dir, { backend, span: { start: 2, end: 4 } });
    assert.deepEqual(mid.model.param('model.layers.3.self_attn.v_proj.weight'), full.param('model.layers.3.self_attn.v_proj.weight'));
    const partDir = join(fresh());
    const part = saveCheckpoint({ root: partDir, step: 1, model: new LlamaShard({ config: L5, backend, span: { start: 2, end: 4 }, seed: 9 }) });
    assert.throws(() => loadCheckpoint(part.dir, { backend, span: { start: 1, end: 4 } }), errorIs('CHECKPOINT_MISMATCH', 'checkpoint.json', /holds layers 2:4, not the requested 1:4/));
  });

  it('keeps the last N checkpoints, replaces a same-step one, cleans leftovers of interrupted writes', () => {
    const root = fresh();
    const m = new LlamaShard({ config: cfg, backend, seed: 1 });
    mkdirSync(join(root, '.step-0000000002.tmp-999999'), { recursive: true });
    for (const step of [1, 2, 3, 4, 5]) saveCheckpoint({ root, step, model: m, keepLast: 2 });
    assert.deepEqual(
      listCheckpoints(root).map((c) => c.step),
      [4, 5],
    );
    assert.deepEqual(readdirSync(root).sort(), ['step-0000000004', 'step-0000000005']);
    assert.equal(latestCheckpoint(root), join(root, 'step-0000000005'));
    m.params[0] += 1;
    const again = saveCheckpoint({ root, step: 5, model: m, keepLast: 2 });
    assert.equal(loadCheckpoint(again.dir, { backend }).model.params[0], m.params[0]);
    assert.equal(latestCheckpoint(fresh()), null);
  });

  it('moved aside: out of the listing and pruning, kept whole, a name of its own when taken (session 28)', () => {
    const root = fresh();
    const m = new LlamaShard({ config: cfg, backend, seed: 1 });
    for (const step of [1, 2]) saveCheckpoint({ root, step, model: m });
    const a = moveCheckpointAside(root, join(root, 'step-0000000002'), 'other-shape');
    assert.equal(a, join(root, 'other-shape', 'step-0000000002'));
    saveCheckpoint({ root, step: 2, model: m });
    const b = moveCheckpointAside(root, join(root, 'step-0000000002'), 'other-shape');
    assert.equal(b, join(root, 'other-shape', 'step-0000000002.2'));
    for (const step of [3, 4, 5, 6]) saveCheckpoint({ root, step, model: m, keepLast: 2 });
    assert.deepEqual(
      listCheckpoints(root).map((c) => c.step),
      [5, 6],
    );
    assert.deepEqual(readdirSync(join(root, 'other-shape')).sort(), ['step-0000000002', 'step-0000000002.2']);
    assert.equal(loadCheckpoint(b, { backend }).manifest.step, 2, 'still a whole checkpoint');
    assert.throws(() => moveCheckpointAside(root, join(root, 'step-0000000006'), '../x'), (e) => isNeuroShardError(e));
  });

  it("a checkpoint's small files alone, and its moments alone for a model of its shape and span (session 28)", () => {
    const root = fresh();
    const m = new LlamaShard({ config: cfg, backend, seed: 3 });
    const mom = { step: 7, m: new Float32Array(m.params.length).fill(0.5), v: new Float32Array(m.params.length).fill(0.25) };
    const dir = saveCheckpoint({ root, step: 7, model: m, optimizer: mom, trainingState: { hello: 1 } }).dir;
    // the weights are not read: a damaged weights file does not matter here
    const model = join(dir, 'model.safetensors');
    const bytes = readFileSync(model);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(model, bytes);
    const info = readCheckpointInfo(dir);
    assert.deepEqual({ step: info.manifest.step, hasOptimizer: info.hasOptimizer, state: info.trainingState }, { step: 7, hasOptimizer: true, state: { hello: 1 } });
    const whole: Span = { start: 0, end: cfg.num_hidden_layers };
    const o = loadCheckpointOptimizer(dir, cfg, whole);
    assert.equal(o.step, 7);
    assert.ok(o.m.every((x) => x === 0.5) && o.v.every((x) => x === 0.25));
    assert.throws(() => loadCheckpointOptimizer(dir, { ...cfg, intermediate_size: 64 }, whole), errorIs('CHECKPOINT_MISMATCH', 'config.json'));
    assert.throws(() => loadCheckpointOptimizer(dir, cfg, { start: 0, end: 1 }), errorIs('CHECKPOINT_MISMATCH', 'checkpoint.json'));
    // the small files and the moments are verified against the manifest
    writeFileSync(join(dir, 'training-state.json'), '{"hello":2}');
    assert.throws(() => readCheckpointInfo(dir), errorIs('CHECKPOINT_CORRUPT', 'training-state.json'));
    const opt = join(dir, 'optimizer.safetensors');
    const ob = readFileSync(opt);
    ob[ob.length - 3] ^= 0xff;
    writeFileSync(opt, ob);
    assert.throws(() => loadCheckpointOptimizer(dir, cfg, whole), errorIs('CHECKPOINT_CORRUPT', opt));
    const none = saveCheckpoint({ root, step: 8, model: m }).dir;
    assert.equal(readCheckpointInfo(none).hasOptimizer, false);
    assert.throws(() => loadCheckpointOptimizer(none, cfg, whole), errorIs('CHECKPOINT_MISSING', 'optimizer.safetensors'));
  });

  it('moving aside in a data dir the user owns: a symlinked checkpoint, a name taken by a dangling link, a folder that is a file or on another filesystem (review, session 28)', () => {
    const root = fresh();
    const m = new LlamaShard({ config: cfg, backend, seed: 5 });
    // a checkpoint kept elsewhere, linked in with a relative target (as `ln -s ../archive/… checkpoints/`)
    const archiveName = `archive-${n}`;
    const kept = saveCheckpoint({ root: join(root, '..', archiveName), step: 3, model: m }).dir;
    mkdirSync(root, { recursive: true });
    symlinkSync(join('..', archiveName, 'step-0000000003'), join(root, 'step-0000000003'));
    assert.deepEqual(listCheckpoints(root).map((c) => c.step), [3]);
    // the first name in the folder taken by a dangling link of the user's
    mkdirSync(join(root, 'other-shape'));
    symlinkSync('/nonexistent/neuroshard-test', join(root, 'other-shape', 'step-0000000003'));
    const to = moveCheckpointAside(root, join(root, 'step-0000000003'), 'other-shape');
    assert.equal(to, join(root, 'other-shape', 'step-0000000003.2'), 'a name of its own (before: rename onto the dangling link, ENOTDIR)');
    assert.equal(readlinkSync(join(root, 'other-shape', 'step-0000000003')), '/nonexistent/neuroshard-test', "the user's link is untouched");
    assert.ok(lstatSync(to).isSymbolicLink());
    assert.equal(loadCheckpoint(to, { backend }).manifest.step, 3, 'the moved link still resolves (before: dangling, one level too deep)');
    assert.ok(statSync(join(kept, 'model.safetensors')).isFile(), 'the target is not touched');
    assert.deepEqual(listCheckpoints(root), []);

    // the folder is a file: a typed error naming it, the checkpoint where it was
    const root2 = fresh();
    const ck2 = saveCheckpoint({ root: root2, step: 4, model: m }).dir;
    writeFileSync(join(root2, 'other-shape'), 'a file of the user');
    assert.throws(() => moveCheckpointAside(root2, ck2, 'other-shape'), errorIs('CHECKPOINT_WRITE_FAILED', join(root2, 'other-shape'), /left where it was/));
    assert.equal(loadCheckpoint(ck2, { backend }).manifest.step, 4);

    // the folder on another filesystem (a link to one): EXDEV, typed, nothing left behind, the checkpoint whole
    let shm: string | undefined;
    try {
      shm = mkdtempSync('/dev/shm/neuroshard-ckpt-');
    } catch {
      shm = undefined;
    }
    if (shm !== undefined && statSync(shm).dev !== statSync(root2).dev) {
      try {
        rmSync(join(root2, 'other-shape'));
        symlinkSync(shm, join(root2, 'other-shape'));
        assert.throws(() => moveCheckpointAside(root2, ck2, 'other-shape'), errorIs('CHECKPOINT_WRITE_FAILED', join(root2, 'other-shape', 'step-0000000004'), /EXDEV/));
        assert.deepEqual(readdirSync(shm), [], 'the claimed name is given back');
        assert.equal(loadCheckpoint(ck2, { backend }).manifest.step, 4);
      } finally {
        rmSync(shm, { recursive: true, force: true });
      }
    }
  });

  it('hostile sizes and nesting: refused before they are hashed or parsed into a value the worker cannot send (review, session 28)', () => {
    const m = new LlamaShard({ config: cfg, backend, seed: 6 });
    const mom = { step: 2, m: new Float32Array(m.params.length), v: new Float32Array(m.params.length) };
    const make = (): string => saveCheckpoint({ root: fresh(), step: 2, model: m, optimizer: mom, trainingState: { a: 1 } }).dir;
    const relist = (dir: string, file: string, entry?: { sha256: string; bytes: number }): void => {
      const path = join(dir, 'checkpoint.json');
      const man = JSON.parse(readFileSync(path, 'utf8')) as { files: Record<string, unknown> };
      if (entry === undefined) {
        const bytes = readFileSync(join(dir, file));
        entry = { sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
      }
      man.files[file] = entry;
      writeFileSync(path, JSON.stringify(man));
    };
    const whole: Span = { start: 0, end: cfg.num_hidden_layers };
    const GiB4 = 4 * 2 ** 30;
    // a training state of 4 GiB (sparse), listed at its size: refused by the manifest, not hashed (before: 4 GiB
    // read and hashed on the main thread, then refused by the read's size limit)
    let dir = make();
    truncateSync(join(dir, 'training-state.json'), GiB4);
    relist(dir, 'training-state.json', { sha256: '0'.repeat(64), bytes: GiB4 });
    const t0 = performance.now();
    assert.throws(() => readCheckpointInfo(dir), errorIs('CHECKPOINT_CORRUPT', 'checkpoint.json', /training-state\.json at 4294967296 bytes, more than the 16777216/));
    // grown past its listed size: its size is compared first (before: hashed, then "sha256 …")
    dir = make();
    truncateSync(join(dir, 'training-state.json'), GiB4);
    assert.throws(() => readCheckpointInfo(dir), errorIs('CHECKPOINT_CORRUPT', 'training-state.json', /is 4294967296 bytes, expected \d+$/));
    // moments listed at many times what the model's take: refused before hashing
    dir = make();
    truncateSync(join(dir, 'optimizer.safetensors'), GiB4);
    relist(dir, 'optimizer.safetensors', { sha256: '0'.repeat(64), bytes: GiB4 });
    assert.throws(() => loadCheckpointOptimizer(dir, cfg, whole), errorIs('CHECKPOINT_CORRUPT', 'optimizer.safetensors', /listed at 4294967296 bytes, more than the \d+ the moments of \d+ parameters take/));
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `three refusals in ${ms.toFixed(0)} ms (hashing 12 GiB takes minutes)`);

    // a training state nested 100,000 deep (200 KB, listed with its true hash): JSON.parse takes it, the worker's
    // structured-clone reply does not (RangeError: an untyped JobFailedError naming no file)
    dir = make();
    writeFileSync(join(dir, 'training-state.json'), '['.repeat(100_000) + ']'.repeat(100_000));
    relist(dir, 'training-state.json');
    assert.throws(() => readCheckpointInfo(dir), errorIs('CHECKPOINT_CORRUPT', 'training-state.json', /more than 64 deep/));
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_CORRUPT', 'training-state.json', /more than 64 deep/));
    // brackets inside strings do not count, and 64 levels are fine
    writeFileSync(join(dir, 'training-state.json'), JSON.stringify({ s: '[{'.repeat(1000), d: JSON.parse('['.repeat(63) + ']'.repeat(63)) as unknown }));
    relist(dir, 'training-state.json');
    assert.equal((readCheckpointInfo(dir).trainingState as { s: string }).s.length, 2000);

    // what the reader refuses is not written: the limit in UTF-8 bytes (6 M chars of '€' are 18 MB; before, written
    // as 6 M "bytes" and then unreadable) and the depth
    const root = fresh();
    const deep = JSON.parse('['.repeat(65) + ']'.repeat(65)) as unknown;
    for (const trainingState of [{ s: '€'.repeat(6_000_000) }, { deep }]) {
      assert.throws(() => saveCheckpoint({ root, step: 3, model: m, trainingState }), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID') && /trainingState/.test((e as Error).message));
    }
    assert.deepEqual(listCheckpoints(root), [], 'nothing written');
  });

  it('loadCheckpoint bounds the weights by the config before it hashes, and compares every size before any hash (checkpoint tidy, session 28)', () => {
    const m = new LlamaShard({ config: cfg, backend, seed: 8 });
    const mom = { step: 2, m: new Float32Array(m.params.length), v: new Float32Array(m.params.length) };
    const make = (): string => saveCheckpoint({ root: fresh(), step: 2, model: m, optimizer: mom, trainingState: { a: 1 }, tokenizerPath: tokPath }).dir;
    const relist = (dir: string, file: string, entry: { sha256: string; bytes: number }): void => {
      const path = join(dir, 'checkpoint.json');
      const man = JSON.parse(readFileSync(path, 'utf8')) as { files: Record<string, unknown> };
      man.files[file] = entry;
      writeFileSync(path, JSON.stringify(man));
    };
    const GiB4 = 4 * 2 ** 30;
    // weights of 4 GiB (sparse), listed at exactly that size: refused by what the config allows, not hashed (before:
    // all 4 GiB hashed, then refused for the hash, seconds to minutes in the worker)
    let dir = make();
    truncateSync(join(dir, 'model.safetensors'), GiB4);
    relist(dir, 'model.safetensors', { sha256: '0'.repeat(64), bytes: GiB4 });
    const t0 = performance.now();
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_CORRUPT', 'model.safetensors', /listed at 4294967296 bytes, more than the \d+ the weights of \d+ parameters take/));
    assert.throws(() => loadAnyCheckpoint(dir, { backend }), errorIs('CHECKPOINT_CORRUPT', 'model.safetensors', /listed at 4294967296/));
    // the same for the moments and the tokenizer file
    dir = make();
    truncateSync(join(dir, 'optimizer.safetensors'), GiB4);
    relist(dir, 'optimizer.safetensors', { sha256: '0'.repeat(64), bytes: GiB4 });
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_CORRUPT', 'optimizer.safetensors', /listed at 4294967296 bytes, more than the \d+ the moments of/));
    dir = make();
    truncateSync(join(dir, 'neuroshard-tokenizer.json'), GiB4);
    relist(dir, 'neuroshard-tokenizer.json', { sha256: '0'.repeat(64), bytes: GiB4 });
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_CORRUPT', 'checkpoint.json', /neuroshard-tokenizer\.json at 4294967296 bytes, more than the 8388608/));
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `four refusals in ${ms.toFixed(0)} ms (hashing 12 GiB takes tens of seconds)`);
    // a requested span the checkpoint does not hold is refused before hashing too
    const half: Span = { start: 0, end: 1 };
    dir = saveCheckpoint({ root: fresh(), step: 2, model: new LlamaShard({ config: cfg, backend, seed: 8, span: half }) }).dir;
    truncateSync(join(dir, 'model.safetensors'), 2 ** 20);
    assert.throws(() => loadCheckpoint(dir, { backend, span: { start: 0, end: cfg.num_hidden_layers } }), errorIs('CHECKPOINT_MISMATCH', 'checkpoint.json', /holds layers/));
    // every size before any hash: weights damaged in place (same size) and a truncated training state name the
    // training state (before: the weights, hashed first in the manifest's order)
    dir = make();
    const model = join(dir, 'model.safetensors');
    const bytes = readFileSync(model);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(model, bytes);
    truncateSync(join(dir, 'training-state.json'), 2);
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_TRUNCATED', 'training-state.json', /is 2 bytes, expected \d+$/));
    // the damaged weights alone: their hash
    dir = make();
    writeFileSync(join(dir, 'model.safetensors'), bytes);
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_CORRUPT', 'model.safetensors', /sha256/));
    // and a sound one loads
    assert.deepEqual(loadCheckpoint(make(), { backend }).model.params, m.params);
  });

  it("a damaged config.json is no other shape: the verified config refuses it (review, session 28)", () => {
    const m = new LlamaShard({ config: cfg, backend, seed: 7 });
    const dir = saveCheckpoint({ root: fresh(), step: 1, model: m }).dir;
    assert.deepEqual(readVerifiedCheckpointConfig(dir), loadCheckpoint(dir, { backend }).config);
    const path = join(dir, 'config.json');
    const o = JSON.parse(readFileSync(path, 'utf8')) as { intermediate_size: number };
    o.intermediate_size += 16;
    writeFileSync(path, JSON.stringify(o, null, 2) + '\n');
    assert.throws(() => readVerifiedCheckpointConfig(dir), (e) => isNeuroShardError(e) && /config\.json/.test((e as Error).message));
  });

  it('a missing, truncated, corrupted or mismatched file fails naming the file and what was expected', () => {
    const m = new LlamaShard({ config: cfg, backend, seed: 2 });
    const make = (): string => saveCheckpoint({ root: fresh(), step: 1, model: m, optimizer: { step: 1, m: new Float32Array(m.params.length), v: new Float32Array(m.params.length) } }).dir;

    let dir = make();
    const model = join(dir, 'model.safetensors');
    const size = readFileSync(model).length;
    truncateSync(model, size - 100);
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_TRUNCATED', model, new RegExp(`expected ${size}`)));

    dir = make();
    const opt = join(dir, 'optimizer.safetensors');
    const bytes = readFileSync(opt);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(opt, bytes);
    const want = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')).files['optimizer.safetensors'].sha256 as string;
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_CORRUPT', opt, new RegExp(`expected ${want}`)));

    dir = make();
    const cfgFile = join(dir, 'config.json');
    writeFileSync(cfgFile, '');
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_TRUNCATED', cfgFile));

    dir = make();
    writeFileSync(join(dir, 'checkpoint.json'), '{"format": "something-else"}');
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_CORRUPT', 'checkpoint.json', /neuroshard-checkpoint/));

    dir = make();
    const man = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8'));
    man.version = 99;
    writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify(man));
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_UNSUPPORTED', 'checkpoint.json', /version 99/));

    dir = make();
    const man2 = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8'));
    man2.layer_hashes['1'] = '0'.repeat(64);
    writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify(man2));
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_MISMATCH', 'model.safetensors', /layer 1 hashes to [0-9a-f]{64}, checkpoint.json expects 0{64}/));

    // a config.json that does not describe the weights (no manifest: a foreign directory)
    dir = make();
    const other = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    other.intermediate_size = 64;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(other));
    assert.throws(
      () => loadHfModel(dir, { backend }),
      errorIs('CHECKPOINT_MISMATCH', 'model.safetensors', /model\.layers\.0\.mlp\.gate_proj\.weight has shape \[48, 32\], expected \[64, 32\]/),
    );
    other.intermediate_size = 48;
    other.num_hidden_layers = 2;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(other));
    assert.throws(() => loadHfModel(dir, { backend }), errorIs('CHECKPOINT_MISMATCH', 'model.safetensors', /model\.layers\.2\..* not a parameter/));
    assert.throws(() => loadHfModel(fresh(), { backend }), (e) => isNeuroShardError(e, 'CHECKPOINT_MISSING'));
  });

  it('resuming from a checkpoint continues training bitwise-identically', () => {
    const B = 2;
    const T = 8;
    const ids = randomIds(B * T, cfg.vocab_size, 3);
    const tg = randomIds(B * T, cfg.vocab_size, 4);
    const run = (m: LlamaShard, opt: ReturnType<typeof createAdamW>, steps: number): number[] => {
      const out: number[] = [];
      for (let s = 0; s < steps; s++) {
        m.forward(ids, B, T);
        const r = m.loss(tg);
        out.push(r.loss);
        m.zeroGrad();
        m.backward(r.dlogits!);
        opt.step();
      }
      return out;
    };
    const a = new LlamaShard({ config: cfg, backend, seed: 6 });
    const straight = run(a, createAdamW(backend, a, { lr: 5e-3 }), 6);

    const b = new LlamaShard({ config: cfg, backend, seed: 6 });
    const ob = createAdamW(backend, b, { lr: 5e-3 });
    const first = run(b, ob, 3);
    const saved = saveCheckpoint({ root: fresh(), step: 3, model: b, optimizer: flatOptimizerState(b.layout, ob.state()) });
    const l = loadCheckpoint(saved.dir, { backend });
    const oc = createAdamW(backend, l.model, { lr: 5e-3 });
    oc.loadState(adamwStateFromFlat(l.model.layout, l.optimizer!));
    const rest = run(l.model, oc, 3);
    assert.deepEqual([...first, ...rest], straight, 'bitwise equal losses');
    assert.ok(existsSync(join(saved.dir, 'optimizer.safetensors')));
  });

  it('the folder of checkpoints moved aside: listed with when each was moved and its bytes, removed without reaching outside it (session 29)', () => {
    const root = fresh();
    const m = new LlamaShard({ config: cfg, backend, seed: 6 });
    const mom = { step: 1, m: new Float32Array(m.params.length), v: new Float32Array(m.params.length) };
    const ck = saveCheckpoint({ root, step: 1, model: m, optimizer: mom }).dir;
    utimesSync(ck, new Date(2020, 0, 1), new Date(2020, 0, 1)); // written long ago
    const bytes = readdirSync(ck).reduce((a, f) => a + statSync(join(ck, f)).size, 0);
    assert.equal(listCheckpointsAside(root, 'other-shape'), null, 'no folder yet');
    const before = Date.now();
    const to = moveCheckpointAside(root, ck, 'other-shape');
    // a checkpoint elsewhere linked in, a file of the user's of a checkpoint's name, another of another name
    const elsewhere = saveCheckpoint({ root: fresh(), step: 2, model: m }).dir;
    symlinkSync(elsewhere, join(root, 'other-shape', 'step-0000000002'));
    writeFileSync(join(root, 'other-shape', 'step-0000000003'), 'a file of the user');
    mkdirSync(join(root, 'other-shape', 'notes'));
    const listed = listCheckpointsAside(root, 'other-shape')!;
    assert.deepEqual(
      listed.map((c) => [c.name, c.step, c.suffix, c.link, c.bytes]).sort(),
      [
        ['step-0000000001', 1, 1, false, bytes],
        ['step-0000000002', 2, 1, true, 0],
      ],
    );
    assert.ok(listed.find((c) => c.path === to)!.mtimeMs >= before - 1000, 'the time it was moved (its write time was 2020)');

    // a link: the link goes, its target stays whole
    assert.equal(removeCheckpointAside(root, 'other-shape', 'step-0000000002'), 'link');
    assert.equal(existsSync(join(root, 'other-shape', 'step-0000000002')), false);
    assert.equal(loadCheckpoint(elsewhere, { backend }).manifest.step, 2, 'the target is untouched');
    assert.equal(removeCheckpointAside(root, 'other-shape', 'step-0000000003'), null, "a file of the user's is no checkpoint moved aside");
    assert.ok(existsSync(join(root, 'other-shape', 'step-0000000003')));
    assert.equal(removeCheckpointAside(root, 'other-shape', 'step-0000000001'), 'dir');
    assert.deepEqual(readdirSync(join(root, 'other-shape')).sort(), ['notes', 'step-0000000003']);
    assert.equal(removeCheckpointAside(root, 'other-shape', 'step-0000000001'), null, 'gone already');
    for (const bad of ['notes', '../step-0000000001', 'step-1']) assert.throws(() => removeCheckpointAside(root, 'other-shape', bad), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID'), bad);
    assert.throws(() => removeCheckpointAside(root, '..', 'step-0000000001'), (e) => isNeuroShardError(e, 'MODEL_CONFIG_INVALID'));

    // the folder itself a link to somewhere else: neither listed nor removed from
    const root2 = fresh();
    const outside = fresh();
    const kept = saveCheckpoint({ root: outside, step: 4, model: m }).dir;
    mkdirSync(root2, { recursive: true });
    symlinkSync(outside, join(root2, 'other-shape'));
    assert.equal(listCheckpointsAside(root2, 'other-shape'), null);
    assert.equal(removeCheckpointAside(root2, 'other-shape', 'step-0000000004'), null);
    assert.equal(loadCheckpoint(kept, { backend }).manifest.step, 4, 'nothing removed through the link');
  });

  it("loadCheckpoint without the moments: a damaged optimizer.safetensors is neither verified nor read, everything else is (session 29)", () => {
    const root = fresh();
    const m = new LlamaShard({ config: cfg, backend, seed: 8 });
    const mom = { step: 3, m: new Float32Array(m.params.length).fill(0.5), v: new Float32Array(m.params.length).fill(0.25) };
    const dir = saveCheckpoint({ root, step: 3, model: m, optimizer: mom, trainingState: { at: 3 } }).dir;
    const opt = join(dir, 'optimizer.safetensors');
    truncateSync(opt, 100);
    assert.throws(() => loadCheckpoint(dir, { backend }), errorIs('CHECKPOINT_TRUNCATED', opt));
    const c = loadCheckpoint(dir, { backend, moments: false });
    assert.equal(c.optimizer, null);
    assert.deepEqual(c.trainingState, { at: 3 });
    assert.ok(Buffer.from(c.model.params.buffer).equals(Buffer.from(m.params.buffer)), 'the weights, verified');
    const model = join(dir, 'model.safetensors');
    const w = readFileSync(model);
    w[w.length - 3] ^= 0xff;
    writeFileSync(model, w);
    assert.throws(() => loadCheckpoint(dir, { backend, moments: false }), errorIs('CHECKPOINT_CORRUPT', model));
  });
});
