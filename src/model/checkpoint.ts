/**
 * Checkpoints: a directory that Hugging Face tools open as a Llama model, plus what training needs to resume.
 *
 *   <root>/step-0000001000/
 *     model.safetensors           the span's parameters, Hugging Face names, F32 (metadata format=pt)
 *     config.json                 the whole model's LlamaConfig (+ the keys transformers needs)
 *     neuroshard-tokenizer.json   copied from the tokenizer path the trainer passes (optional)
 *     optimizer.safetensors       AdamW state: exp_avg.<name>, exp_avg_sq.<name>; step in the metadata (optional)
 *     training-state.json         opaque JSON from the trainer: step, data position, RNG state, … (optional)
 *     checkpoint.json             written last: format, version, step, span held, model (span) hash, layer hashes,
 *                                 size and SHA-256 of every other file
 *
 * A node holding a span writes only its layers (and the embedding / head if it holds them). Writes are atomic: the
 * files go into a temporary sibling directory, each fsynced, which is renamed into place (and its parent fsynced)
 * only when complete; a crash leaves the previous checkpoint intact. `keepLast` prunes older ones.
 *
 * Loading verifies the size and SHA-256 of every file listed in checkpoint.json before using any of them, then the
 * layer hashes of the loaded weights. Every failure names the file and what was expected (CheckpointError codes:
 * CHECKPOINT_MISSING, _TRUNCATED, _CORRUPT, _MISMATCH, _UNSUPPORTED).
 *
 * Foreign checkpoints (model.safetensors or a sharded model.safetensors.index.json, plus config.json: F32, F16 or
 * BF16, tied or untied) load with loadHfModel; they carry no checkpoint.json to verify against.
 */
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, renameSync, rmdirSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Backend } from '../tensor/backend.js';
import { configsEqual, type LlamaConfig, parseHfConfig, toHfConfigJson } from './config.js';
import { CheckpointError, ModelConfigError } from './errors.js';
import { atomicWriteFile, fsyncDir, readSmallFile, sha256File } from './fsutil.js';
import { layerHashes, layerHashesToJson, spanHashOf } from './hash.js';
import { ParamLayout, type Span } from './layout.js';
import { MAX_HEADER_BYTES, SafetensorsFile, safetensorsBytes, writeSafetensors } from './safetensors.js';
import { LlamaShard } from './shard.js';
import { MAX_TOKENIZER_FILE_BYTES } from './tokenizer/constants.js';
import { spanText } from '../util/span-text.js';

export const CHECKPOINT_FORMAT = 'neuroshard-checkpoint';
export const CHECKPOINT_VERSION = 1;

export const CHECKPOINT_FILES = {
  model: 'model.safetensors',
  config: 'config.json',
  tokenizer: 'neuroshard-tokenizer.json',
  optimizer: 'optimizer.safetensors',
  trainingState: 'training-state.json',
  manifest: 'checkpoint.json',
} as const;

/** Default number of checkpoints kept by saveCheckpoint. */
export const DEFAULT_KEEP_LAST = 3;
/** Largest JSON file of a checkpoint we read (config, manifest, training state, index). */
export const MAX_CHECKPOINT_JSON_BYTES = 16 << 20;
/**
 * Deepest nesting of arrays and objects in a checkpoint's JSON file. Ours nest 4 levels, Hugging Face configs a few
 * more. JSON.parse itself copes with any depth, but what the value goes through next does not: a training state
 * nested 100,000 deep (a 200 KB file) made the worker's reply to loadCheckpoint throw RangeError (structured clone
 * recurses), an untyped JobFailedError naming no file (review, session 28).
 */
export const MAX_CHECKPOINT_JSON_DEPTH = 64;

const DIR_RE = /^step-(\d{10})$/;

export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(10, '0')}`;
}

/** AdamW state in the same flat layout as the parameters. */
export interface OptimizerState {
  /** Optimizer steps taken (the bias-correction counter). */
  step: number;
  m: Float32Array;
  v: Float32Array;
  /** Hyper-parameters or anything else the trainer wants back (stored as strings in the safetensors metadata). */
  meta?: Record<string, string>;
}

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  step: number;
  span: Span;
  num_hidden_layers: number;
  has_embed: boolean;
  has_head: boolean;
  /** Span hash of what this checkpoint holds (the model hash when it holds everything). */
  model_hash: string;
  layer_hashes: Record<string, string>;
  files: Record<string, { sha256: string; bytes: number }>;
}

/** What saveCheckpoint needs of a model: a LlamaShard satisfies it. */
export interface CheckpointSource {
  config: LlamaConfig;
  layout: ParamLayout;
  params: Float32Array;
}

export interface SaveCheckpointOptions {
  /** Directory holding the checkpoints (e.g. `<data-dir>/checkpoints`); created if missing. */
  root: string;
  step: number;
  model: CheckpointSource;
  optimizer?: OptimizerState;
  /** JSON-serialisable; stored verbatim. */
  trainingState?: unknown;
  /** Path of the tokenizer file to copy in as neuroshard-tokenizer.json. */
  tokenizerPath?: string;
  /** Keep this many newest checkpoints in `root` (default DEFAULT_KEEP_LAST); 0 keeps all. */
  keepLast?: number;
  /**
   * Called as the weight files are written (a progress bar): bytes of model.safetensors and optimizer.safetensors
   * written so far, and their size (the small JSON files are not counted).
   */
  onProgress?: (done: number, total: number) => void;
}

export interface SavedCheckpoint {
  dir: string;
  step: number;
  modelHash: string;
  manifest: CheckpointManifest;
}

/** Writes a checkpoint atomically and prunes old ones. */
export function saveCheckpoint(opts: SaveCheckpointOptions): SavedCheckpoint {
  const { root, step, model } = opts;
  if (!Number.isSafeInteger(step) || step < 0) throw new ModelConfigError(`checkpoint step ${step} is not a non-negative integer`);
  const keep = opts.keepLast ?? DEFAULT_KEEP_LAST;
  if (!Number.isInteger(keep) || keep < 0) throw new ModelConfigError(`keepLast ${keep} is not a non-negative integer`);
  const layout = model.layout;
  if (model.params.length !== layout.size) throw new ModelConfigError(`model params have ${model.params.length} elements, layout needs ${layout.size}`);
  const o = opts.optimizer;
  if (o !== undefined && (o.m.length !== layout.size || o.v.length !== layout.size)) {
    throw new ModelConfigError(`optimizer state has ${o.m.length}/${o.v.length} elements, layout needs ${layout.size}`);
  }
  mkdirSync(root, { recursive: true });
  const name = checkpointDirName(step);
  const final = join(root, name);
  const tmp = join(root, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const files: CheckpointManifest['files'] = {};
    const tensors = layout.entries.map((e) => ({ name: e.name, shape: e.shape, data: model.params.subarray(e.offset, e.offset + e.size) }));
    const optimizerTensors =
      opts.optimizer === undefined
        ? undefined
        : layout.entries.flatMap((e) => [
            { name: `exp_avg.${e.name}`, shape: e.shape, data: opts.optimizer!.m.subarray(e.offset, e.offset + e.size) },
            { name: `exp_avg_sq.${e.name}`, shape: e.shape, data: opts.optimizer!.v.subarray(e.offset, e.offset + e.size) },
          ]);
    const optimizerMeta = opts.optimizer === undefined ? {} : { ...(opts.optimizer.meta ?? {}), step: String(opts.optimizer.step) };
    let onBytes: ((n: number) => void) | undefined;
    if (opts.onProgress !== undefined) {
      const report = opts.onProgress;
      const total = safetensorsBytes(tensors, { format: 'pt' }) + (optimizerTensors === undefined ? 0 : safetensorsBytes(optimizerTensors, optimizerMeta));
      let done = 0;
      report(0, total);
      onBytes = (n) => report((done += n), total);
    }
    files[CHECKPOINT_FILES.model] = writeSafetensors(join(tmp, CHECKPOINT_FILES.model), tensors, { format: 'pt' }, onBytes);
    files[CHECKPOINT_FILES.config] = atomicWriteFile(join(tmp, CHECKPOINT_FILES.config), [utf8(JSON.stringify(toHfConfigJson(model.config), null, 2) + '\n')]);
    if (opts.tokenizerPath !== undefined) {
      const dst = join(tmp, CHECKPOINT_FILES.tokenizer);
      try {
        copyFileSync(opts.tokenizerPath, dst);
      } catch (e) {
        throw new CheckpointError('CHECKPOINT_MISSING', opts.tokenizerPath, `cannot copy the tokenizer: ${(e as Error).message}`);
      }
      files[CHECKPOINT_FILES.tokenizer] = sha256File(dst);
    }
    if (opts.optimizer !== undefined) {
      files[CHECKPOINT_FILES.optimizer] = writeSafetensors(join(tmp, CHECKPOINT_FILES.optimizer), optimizerTensors!, optimizerMeta, onBytes);
    }
    if (opts.trainingState !== undefined) {
      const text = JSON.stringify(opts.trainingState);
      if (text === undefined) throw new ModelConfigError('trainingState is not JSON-serialisable');
      // the limit is the reader's, in UTF-8 bytes: counted in UTF-16 units (text.length), a state of non-ASCII text
      // up to 3 times the limit was written, and every read of the checkpoint refused it (review, session 28)
      const bytes = utf8(text);
      if (bytes.byteLength > MAX_CHECKPOINT_JSON_BYTES) throw new ModelConfigError(`trainingState is ${bytes.byteLength} bytes of JSON, more than ${MAX_CHECKPOINT_JSON_BYTES}`);
      if (jsonTooDeep(text, MAX_CHECKPOINT_JSON_DEPTH)) throw new ModelConfigError(`trainingState nests arrays or objects more than ${MAX_CHECKPOINT_JSON_DEPTH} deep`);
      files[CHECKPOINT_FILES.trainingState] = atomicWriteFile(join(tmp, CHECKPOINT_FILES.trainingState), [bytes]);
    }
    const hashes = layerHashes(layout, model.params);
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      step,
      span: { ...layout.span },
      num_hidden_layers: model.config.num_hidden_layers,
      has_embed: layout.hasEmbed,
      has_head: layout.hasHead,
      model_hash: spanHashOf(hashes.values()),
      layer_hashes: layerHashesToJson(hashes),
      files,
    };
    atomicWriteFile(join(tmp, CHECKPOINT_FILES.manifest), [utf8(JSON.stringify(manifest, null, 2) + '\n')]);
    fsyncDir(tmp);
    // commit: move any previous checkpoint of the same step aside, rename the new one into place
    const old = join(root, `.${name}.old-${process.pid}`);
    if (existsSync(final)) renameSync(final, old);
    renameSync(tmp, final);
    fsyncDir(root);
    rmSync(old, { recursive: true, force: true });
    if (keep > 0) pruneCheckpoints(root, keep);
    return { dir: final, step, modelHash: manifest.model_hash, manifest };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function utf8(s: string): Uint8Array {
  const b = Buffer.from(s, 'utf8');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Complete checkpoints under `root` (those with a checkpoint.json), oldest first. */
export function listCheckpoints(root: string): { dir: string; step: number }[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (e) {
    // only a missing folder means "no checkpoints": an unreadable one (EACCES, EIO, ENOTDIR) is an error, not an
    // empty list that would make a node start training again from step 0 over its own checkpoints
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CheckpointError('CHECKPOINT_MISSING', root, `cannot list checkpoints: ${(e as Error).message}`, { errno: (e as NodeJS.ErrnoException).code });
  }
  const out: { dir: string; step: number }[] = [];
  for (const n of names) {
    const m = DIR_RE.exec(n);
    if (m === null) continue;
    const dir = join(root, n);
    if (existsSync(join(dir, CHECKPOINT_FILES.manifest))) out.push({ dir, step: Number(m[1]) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint under `root`, or null. */
export function latestCheckpoint(root: string): string | null {
  const all = listCheckpoints(root);
  return all.length === 0 ? null : all[all.length - 1].dir;
}

/** Deletes all but the newest `keepLast` complete checkpoints, and leftovers of interrupted writes. */
export function pruneCheckpoints(root: string, keepLast: number): void {
  const all = listCheckpoints(root);
  for (const c of all.slice(0, Math.max(0, all.length - keepLast))) rmSync(c.dir, { recursive: true, force: true });
  for (const n of readdirSync(root)) {
    if (/^\.step-\d{10}\.(tmp|old)-\d+$/.test(n)) rmSync(join(root, n), { recursive: true, force: true });
  }
}

// ---- reading ------------------------------------------------------------------------------------------------

function readJson(path: string): unknown {
  const text = readSmallFile(path, MAX_CHECKPOINT_JSON_BYTES);
  if (jsonTooDeep(text, MAX_CHECKPOINT_JSON_DEPTH)) throw new CheckpointError('CHECKPOINT_CORRUPT', path, `nests arrays or objects more than ${MAX_CHECKPOINT_JSON_DEPTH} deep`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError('CHECKPOINT_CORRUPT', path, `is not valid JSON (${(e as Error).message})`);
  }
}

/** Whether `text` (JSON or not) opens more than `max` arrays or objects inside one another, outside strings. */
function jsonTooDeep(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** Reads and validates checkpoint.json (without checking the files it lists). */
export function readManifest(dir: string): CheckpointManifest {
  const path = join(dir, CHECKPOINT_FILES.manifest);
  const o = readJson(path) as Partial<CheckpointManifest> | null;
  const bad = (why: string): never => {
    throw new CheckpointError('CHECKPOINT_CORRUPT', path, why);
  };
  if (typeof o !== 'object' || o === null) bad('must hold a JSON object');
  const m = o!;
  if (m.format !== CHECKPOINT_FORMAT) bad(`format is ${JSON.stringify(m.format)}, expected "${CHECKPOINT_FORMAT}"`);
  if (m.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError('CHECKPOINT_UNSUPPORTED', path, `version ${JSON.stringify(m.version)}, this build reads version ${CHECKPOINT_VERSION}`);
  }
  if (!Number.isSafeInteger(m.step) || m.step! < 0) bad('step must be a non-negative integer');
  if (!Number.isInteger(m.num_hidden_layers) || m.num_hidden_layers! < 1) bad('num_hidden_layers must be a positive integer');
  const s = m.span;
  if (typeof s !== 'object' || s === null || !Number.isInteger(s.start) || !Number.isInteger(s.end) || s.start < 0 || s.end > m.num_hidden_layers! || s.start >= s.end) {
    bad('span must be {start, end} with 0 ≤ start < end ≤ num_hidden_layers');
  }
  if (typeof m.model_hash !== 'string' || !/^[0-9a-f]{64}$/.test(m.model_hash)) bad('model_hash must be 64 hex digits');
  if (typeof m.layer_hashes !== 'object' || m.layer_hashes === null) bad('layer_hashes must be an object');
  if (typeof m.files !== 'object' || m.files === null) bad('files must be an object');
  for (const [f, e] of Object.entries(m.files!)) {
    if (f !== basename(f) || f.startsWith('.') || !Object.values(CHECKPOINT_FILES).includes(f as never)) bad(`lists an unexpected file ${JSON.stringify(f)}`);
    if (typeof e !== 'object' || e === null || typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256) || !Number.isSafeInteger(e.bytes) || e.bytes < 0) {
      bad(`entry of ${f} must be {sha256, bytes}`);
    }
    // a JSON file larger than we read is refused here, before verification hashes all of it
    if ((f === CHECKPOINT_FILES.config || f === CHECKPOINT_FILES.trainingState) && e.bytes > MAX_CHECKPOINT_JSON_BYTES) {
      bad(`lists ${f} at ${e.bytes} bytes, more than the ${MAX_CHECKPOINT_JSON_BYTES} a checkpoint's JSON file may hold`);
    }
    if (f === CHECKPOINT_FILES.tokenizer && e.bytes > MAX_TOKENIZER_FILE_BYTES) {
      bad(`lists ${f} at ${e.bytes} bytes, more than the ${MAX_TOKENIZER_FILE_BYTES} a tokenizer file may hold`);
    }
  }
  if (m.files![CHECKPOINT_FILES.model] === undefined || m.files![CHECKPOINT_FILES.config] === undefined) bad('must list model.safetensors and config.json');
  return m as CheckpointManifest;
}

/** Checks size and SHA-256 of every file checkpoint.json lists; returns the manifest. */
export function verifyCheckpoint(dir: string): CheckpointManifest {
  return verifyWhole(dir, undefined).manifest;
}

/**
 * verifyCheckpoint's order: checkpoint.json, then config.json (verified: at most 16 MiB) and its layer count, then
 * `span` within what the checkpoint holds, then the size each weight file must have at most (it follows from the
 * config and the checkpoint's span), then every listed file's size by stat, and only then the hashes. Before session
 * 28 every listed file was hashed first, in the manifest's order: a model.safetensors listed at many GB, of exactly
 * that size, kept the worker (and every job queued behind it) hashing for minutes before anything bounded it.
 */
function verifyWhole(dir: string, span: Span | undefined, moments = true): { manifest: CheckpointManifest; config: LlamaConfig } {
  const { manifest, config } = readVerifiedConfig(dir);
  if (span !== undefined && (span.start < manifest.span.start || span.end > manifest.span.end)) {
    throw new CheckpointError('CHECKPOINT_MISMATCH', join(dir, CHECKPOINT_FILES.manifest), `holds layers ${spanText(manifest.span)}, not the requested ${spanText(span)}`);
  }
  const params = new ParamLayout(config, manifest.span).size;
  // F32 weights (saveCheckpoint writes nothing else), F32 moments m and v, each after a bounded header
  const most: Record<string, [number, string]> = {
    [CHECKPOINT_FILES.model]: [8 + MAX_HEADER_BYTES + 4 * params, 'weights'],
    [CHECKPOINT_FILES.optimizer]: [8 + MAX_HEADER_BYTES + 8 * params, 'moments'],
  };
  for (const [f, [bytes, what]] of Object.entries(most)) {
    // without the moments (a solo resume whose moments' file is damaged: node/train.ts), their file is left unread
    if (!moments && f === CHECKPOINT_FILES.optimizer) continue;
    const listed = manifest.files[f];
    if (listed !== undefined && listed.bytes > bytes) {
      throw new CheckpointError('CHECKPOINT_CORRUPT', join(dir, f), `is listed at ${listed.bytes} bytes, more than the ${bytes} the ${what} of ${params} parameters take`);
    }
  }
  verifyFiles(
    dir,
    manifest,
    Object.keys(manifest.files).filter((f) => f !== CHECKPOINT_FILES.config && (moments || f !== CHECKPOINT_FILES.optimizer)),
  );
  return { manifest, config };
}

/** Where each weight of a Hugging Face directory lives: one model.safetensors or an index of several files. */
class WeightSource {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly map: Map<string, string> | null;

  constructor(private readonly dir: string) {
    const single = join(dir, CHECKPOINT_FILES.model);
    const index = join(dir, 'model.safetensors.index.json');
    if (existsSync(single)) {
      this.map = null;
    } else if (existsSync(index)) {
      const o = readJson(index) as { weight_map?: unknown } | null;
      const wm = o?.weight_map;
      if (typeof wm !== 'object' || wm === null) throw new CheckpointError('CHECKPOINT_CORRUPT', index, 'has no weight_map object');
      this.map = new Map();
      for (const [k, f] of Object.entries(wm)) {
        if (typeof f !== 'string' || f !== basename(f) || !f.endsWith('.safetensors')) throw new CheckpointError('CHECKPOINT_CORRUPT', index, `weight_map entry ${k} → ${JSON.stringify(f)} is not a file in the directory`);
        this.map.set(k, f);
      }
    } else {
      throw new CheckpointError('CHECKPOINT_MISSING', single, 'no model.safetensors (nor model.safetensors.index.json) in the checkpoint directory');
    }
  }

  private file(f: string): SafetensorsFile {
    let s = this.files.get(f);
    if (s === undefined) {
      s = SafetensorsFile.open(join(this.dir, f));
      this.files.set(f, s);
    }
    return s;
  }

  /** The file holding `name`, or null. */
  find(name: string): SafetensorsFile | null {
    if (this.map === null) {
      const f = this.file(CHECKPOINT_FILES.model);
      return f.has(name) ? f : null;
    }
    const f = this.map.get(name);
    if (f === undefined) return null;
    const s = this.file(f);
    if (!s.has(name)) throw new CheckpointError('CHECKPOINT_MISMATCH', s.file, `has no tensor ${name}, which the index places in it`);
    return s;
  }

  /** Every tensor name across the files. */
  names(): string[] {
    if (this.map !== null) return [...this.map.keys()];
    return [...this.file(CHECKPOINT_FILES.model).header.tensors.keys()];
  }

  describe(): string {
    return this.map === null ? join(this.dir, CHECKPOINT_FILES.model) : join(this.dir, 'model.safetensors.index.json');
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}

/** Buffers some exporters save next to the weights that carry no parameters. */
const IGNORED_TENSOR = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/**
 * Fills `params` (layout order) from a weight source. Every tensor of the layout must be present with its shape;
 * in `strict` mode (a full model) any tensor that is not a parameter of this config is a mismatch too.
 */
function readWeights(src: WeightSource, layout: ParamLayout, params: Float32Array, strict: boolean): void {
  const c = layout.config;
  for (const e of layout.entries) {
    const f = src.find(e.name);
    if (f === null) {
      throw new CheckpointError('CHECKPOINT_MISMATCH', src.describe(), `has no tensor ${e.name} [${e.shape.join(', ')}], which config.json implies`, { tensor: e.name });
    }
    f.readF32(e.name, params.subarray(e.offset, e.offset + e.size), e.shape);
  }
  if (!strict) return;
  const full = new ParamLayout(c);
  for (const n of src.names()) {
    if (full.has(n) || IGNORED_TENSOR.test(n)) continue;
    if (n === 'lm_head.weight' && c.tie_word_embeddings) continue; // some exporters store the tied copy too
    throw new CheckpointError('CHECKPOINT_MISMATCH', src.describe(), `holds tensor ${n}, which is not a parameter of the model config.json describes`, { tensor: n });
  }
}

export interface LoadOptions {
  backend: Backend;
  /** Load only these layers (within what the checkpoint holds); default all it holds. */
  span?: Span;
  /**
   * false: the checkpoint's optimizer moments are neither verified nor read (`optimizer` null), for a run that goes
   * on with fresh ones because their file is damaged (node/train.ts). Default true. loadCheckpoint only.
   */
  moments?: boolean;
}

/**
 * Loads a Hugging Face Llama directory (config.json + model.safetensors or a sharded index): F32/F16/BF16 weights,
 * tied or untied embeddings. Unsupported config options fail with UnsupportedModelOptionError.
 */
export function loadHfModel(dir: string, opts: LoadOptions): { config: LlamaConfig; model: LlamaShard } {
  const cfgPath = join(dir, CHECKPOINT_FILES.config);
  const config = parseHfConfig(readSmallFile(cfgPath, MAX_CHECKPOINT_JSON_BYTES), cfgPath);
  const layout = new ParamLayout(config, opts.span);
  const src = new WeightSource(dir);
  try {
    const params = new Float32Array(layout.size);
    readWeights(src, layout, params, opts.span === undefined);
    return { config, model: new LlamaShard({ config, backend: opts.backend, span: layout.span, params }) };
  } finally {
    src.close();
  }
}

export interface LoadedCheckpoint {
  dir: string;
  manifest: CheckpointManifest;
  config: LlamaConfig;
  model: LlamaShard;
  optimizer: OptimizerState | null;
  trainingState: unknown;
  /** Path of the checkpoint's tokenizer file, or null when it has none. */
  tokenizerPath: string | null;
}

/**
 * Loads one of our checkpoints after verifying every file's size and SHA-256, then checks the loaded layers
 * against the layer hashes of checkpoint.json. `span` may select part of what the checkpoint holds.
 */
export function loadCheckpoint(dir: string, opts: LoadOptions): LoadedCheckpoint {
  const moments = opts.moments !== false;
  const { manifest, config } = verifyWhole(dir, opts.span, moments);
  const span = opts.span ?? manifest.span;
  const layout = new ParamLayout(config, span);
  const src = new WeightSource(dir);
  const params = new Float32Array(layout.size);
  try {
    readWeights(src, layout, params, false);
  } finally {
    src.close();
  }
  const modelFile = join(dir, CHECKPOINT_FILES.model);
  for (const [k, h] of layerHashes(layout, params)) {
    const want = manifest.layer_hashes[String(k)];
    const got = Buffer.from(h).toString('hex');
    if (want !== got) throw new CheckpointError('CHECKPOINT_MISMATCH', modelFile, `layer ${String(k)} hashes to ${got}, checkpoint.json expects ${want ?? '(no entry)'}`);
  }
  const model = new LlamaShard({ config, backend: opts.backend, span: layout.span, params });

  const optimizer = moments && manifest.files[CHECKPOINT_FILES.optimizer] !== undefined ? readOptimizer(dir, layout) : null;
  const tsPath = join(dir, CHECKPOINT_FILES.trainingState);
  const trainingState = manifest.files[CHECKPOINT_FILES.trainingState] !== undefined ? readJson(tsPath) : null;
  const tokenizerPath = manifest.files[CHECKPOINT_FILES.tokenizer] !== undefined ? join(dir, CHECKPOINT_FILES.tokenizer) : null;
  return { dir, manifest, config, model, optimizer, trainingState, tokenizerPath };
}

/** Reads optimizer.safetensors's moments in `layout` (the caller has verified the file). */
function readOptimizer(dir: string, layout: ParamLayout): OptimizerState {
  const f = SafetensorsFile.open(join(dir, CHECKPOINT_FILES.optimizer));
  try {
    const m = new Float32Array(layout.size);
    const v = new Float32Array(layout.size);
    for (const e of layout.entries) {
      f.readF32(`exp_avg.${e.name}`, m.subarray(e.offset, e.offset + e.size), e.shape);
      f.readF32(`exp_avg_sq.${e.name}`, v.subarray(e.offset, e.offset + e.size), e.shape);
    }
    const { step, ...meta } = f.header.metadata;
    const n = Number(step);
    if (!Number.isSafeInteger(n) || n < 0) throw new CheckpointError('CHECKPOINT_CORRUPT', f.file, `metadata step ${JSON.stringify(step)} is not a non-negative integer`);
    return { step: n, m, v, meta };
  } finally {
    f.close();
  }
}

/**
 * Checks size and SHA-256 of the listed `files` of a checkpoint against its manifest (those it lists): every size
 * first, then the hashes, so a file of the wrong size is refused before any file is hashed.
 */
function verifyFiles(dir: string, m: CheckpointManifest, files: readonly string[]): void {
  const listed = files.filter((f) => m.files[f] !== undefined);
  for (const f of listed) {
    const want = m.files[f]!;
    const path = join(dir, f);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      throw new CheckpointError('CHECKPOINT_MISSING', path, `listed in checkpoint.json but missing (expected ${want.bytes} bytes, sha256 ${want.sha256})`);
    }
    // the size first: a file of another size is refused without hashing it (a damaged or hostile one of many GB
    // took minutes of hashing before its size was compared; readCheckpointInfo runs on a node's main thread)
    if (size < want.bytes) throw new CheckpointError('CHECKPOINT_TRUNCATED', path, `is ${size} bytes, expected ${want.bytes}`, { expected: want, got: { bytes: size } });
    if (size > want.bytes) throw new CheckpointError('CHECKPOINT_CORRUPT', path, `is ${size} bytes, expected ${want.bytes}`, { expected: want, got: { bytes: size } });
  }
  for (const f of listed) {
    const want = m.files[f]!;
    const path = join(dir, f);
    const got = sha256File(path);
    if (got.bytes < want.bytes) throw new CheckpointError('CHECKPOINT_TRUNCATED', path, `is ${got.bytes} bytes, expected ${want.bytes}`, { expected: want, got });
    if (got.bytes !== want.bytes || got.sha256 !== want.sha256) {
      throw new CheckpointError('CHECKPOINT_CORRUPT', path, `sha256 ${got.sha256} (${got.bytes} bytes), expected ${want.sha256} (${want.bytes} bytes)`, { expected: want, got });
    }
  }
}

/** The model config of one of our checkpoints (config.json, parsed; not verified against the manifest). */
export function readCheckpointConfig(dir: string): LlamaConfig {
  const cfgPath = join(dir, CHECKPOINT_FILES.config);
  return parseHfConfig(readSmallFile(cfgPath, MAX_CHECKPOINT_JSON_BYTES), cfgPath);
}

/**
 * The model config of one of our checkpoints, its config.json verified against checkpoint.json (size, SHA-256,
 * layer count): what tells a replica's checkpoints of another shape from its own (node/train.ts). Unverified, a
 * damaged config.json of the replica's own newest checkpoint that still parsed (a flipped digit of a size) made it
 * "another shape": moved aside with a warning and an older checkpoint resumed in silence, where loading it had
 * failed with CHECKPOINT_CORRUPT naming the file (review, session 28).
 */
export function readVerifiedCheckpointConfig(dir: string): LlamaConfig {
  return readVerifiedConfig(dir).config;
}

function readVerifiedConfig(dir: string): { manifest: CheckpointManifest; config: LlamaConfig } {
  const manifest = readManifest(dir);
  verifyFiles(dir, manifest, [CHECKPOINT_FILES.config]);
  const config = readCheckpointConfig(dir);
  if (config.num_hidden_layers !== manifest.num_hidden_layers) {
    throw new CheckpointError('CHECKPOINT_MISMATCH', join(dir, CHECKPOINT_FILES.config), `has num_hidden_layers=${config.num_hidden_layers}, checkpoint.json says ${manifest.num_hidden_layers}`);
  }
  return { manifest, config };
}

/** What a checkpoint says about itself, without its weights (readCheckpointInfo). */
export interface CheckpointInfo {
  dir: string;
  manifest: CheckpointManifest;
  config: LlamaConfig;
  /** It holds optimizer moments (optimizer.safetensors, not read here). */
  hasOptimizer: boolean;
  trainingState: unknown;
}

/**
 * Reads one of our checkpoints' small files (checkpoint.json, config.json, training-state.json; the last two verified
 * against the manifest), not its weights nor its moments: what a run that keeps other weights (a replica's,
 * node/train.ts) needs of it. The weights' file is not read, so its damage goes unnoticed here.
 */
export function readCheckpointInfo(dir: string): CheckpointInfo {
  const { manifest, config } = readVerifiedConfig(dir);
  verifyFiles(dir, manifest, [CHECKPOINT_FILES.trainingState]);
  const trainingState = manifest.files[CHECKPOINT_FILES.trainingState] !== undefined ? readJson(join(dir, CHECKPOINT_FILES.trainingState)) : null;
  return { dir, manifest, config, hasOptimizer: manifest.files[CHECKPOINT_FILES.optimizer] !== undefined, trainingState };
}

/**
 * Only the optimizer moments of a checkpoint, for a model of `config` over `span` that keeps its own weights: the
 * checkpoint must be of that config and hold exactly that span, and its config.json and optimizer.safetensors are
 * verified against checkpoint.json. Throws CHECKPOINT_MISSING when it holds no moments.
 */
export function loadCheckpointOptimizer(dir: string, config: LlamaConfig, span: Span): OptimizerState {
  const manifest = readManifest(dir);
  const optPath = join(dir, CHECKPOINT_FILES.optimizer);
  const listed = manifest.files[CHECKPOINT_FILES.optimizer];
  if (listed === undefined) throw new CheckpointError('CHECKPOINT_MISSING', optPath, 'the checkpoint holds no optimizer moments');
  verifyFiles(dir, manifest, [CHECKPOINT_FILES.config]);
  const own = readCheckpointConfig(dir);
  if (!configsEqual(own, config)) throw new CheckpointError('CHECKPOINT_MISMATCH', join(dir, CHECKPOINT_FILES.config), 'is another model shape than the model held');
  if (manifest.span.start !== span.start || manifest.span.end !== span.end) {
    throw new CheckpointError('CHECKPOINT_MISMATCH', join(dir, CHECKPOINT_FILES.manifest), `holds layers ${spanText(manifest.span)}, the model held ${spanText(span)}`);
  }
  const layout = new ParamLayout(config, span);
  // the moments of this layout are 8 bytes a parameter after a bounded header: a larger file is refused before it
  // is hashed (a listed size of many GB kept the worker, and every job queued behind it, hashing for minutes)
  const most = 8 + MAX_HEADER_BYTES + 8 * layout.size;
  if (listed.bytes > most) throw new CheckpointError('CHECKPOINT_CORRUPT', optPath, `is listed at ${listed.bytes} bytes, more than the ${most} the moments of ${layout.size} parameters take`);
  verifyFiles(dir, manifest, [CHECKPOINT_FILES.optimizer]);
  return readOptimizer(dir, layout);
}

/**
 * Moves a checkpoint directory into `<root>/<folder>/` (a name of its own there: `step-…`, or `step-….2`, … when
 * taken), never deleting anything; returns its new path. Outside `root`'s top level it is no checkpoint for
 * listCheckpoints, latestCheckpoint or pruning any more.
 *
 * The data dir is the user's: a failure (a read-only dir, `<folder>` a file or on another filesystem: EXDEV) is a
 * CheckpointError CHECKPOINT_WRITE_FAILED naming the path, with the checkpoint left where it was, whole. A name is
 * claimed before the move (mkdir and symlink fail on anything there, a dangling link included), so nothing already
 * in the folder is replaced. A symlinked checkpoint moves as a link to the same target: a relative target becomes
 * the absolute path it resolved to (renamed as it was, it resolved one level deeper: a dangling link), and the
 * target itself, the user's weights, is not touched.
 */
export function moveCheckpointAside(root: string, dir: string, folder: string): string {
  asideFolder(root, folder);
  const failed = (path: string, what: string, e: unknown): CheckpointError =>
    new CheckpointError('CHECKPOINT_WRITE_FAILED', path, `${what} (the checkpoint ${dir} is left where it was): ${(e as Error).message}`, {
      from: dir,
      errno: (e as NodeJS.ErrnoException).code,
    });
  const into = join(root, folder);
  try {
    mkdirSync(into, { recursive: true });
    if (!statSync(into).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (e) {
    throw failed(into, 'cannot make the folder for checkpoints moved aside', e);
  }
  let target: string | undefined;
  try {
    if (lstatSync(dir).isSymbolicLink()) {
      const link = readlinkSync(dir);
      // relative to the real folder holding the link, as the kernel resolves it
      target = isAbsolute(link) ? link : resolve(realpathSync(dirname(dir)), link);
    }
  } catch (e) {
    throw failed(dir, 'cannot read the checkpoint to move', e);
  }
  const name = basename(dir);
  for (let i = 1; i <= 1000; i++) {
    const to = join(into, i === 1 ? name : `${name}.${i}`);
    try {
      // the claim: exclusive, so a concurrent claimant or anything already there makes it EEXIST
      if (target === undefined) mkdirSync(to);
      else symlinkSync(target, to);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw failed(to, 'cannot claim a name for the checkpoint moved aside', e);
    }
    try {
      // a directory replaces the empty one just claimed (atomic); a link was re-made at `to`, the old one goes
      if (target === undefined) renameSync(dir, to);
      else unlinkSync(dir);
    } catch (e) {
      try {
        if (target === undefined) rmdirSync(to);
        else unlinkSync(to);
      } catch {
        // the claim stays behind: an empty folder or a second link to the same target, nothing lost
      }
      throw failed(to, 'cannot move the checkpoint aside', e);
    }
    // the time it was moved aside, which pruning the folder orders by (listCheckpointsAside): a rename leaves a
    // directory's mtime at its last write; a link made just now has it already. Not worth failing the move over.
    if (target === undefined) {
      try {
        utimesSync(to, statSync(to).atime, new Date());
      } catch {
        // its write time stands in
      }
    }
    fsyncDir(into);
    fsyncDir(root);
    return to;
  }
  throw failed(into, 'no free name for the checkpoint', new Error(`${name} … ${name}.1000 are all taken`));
}

/** A name moveCheckpointAside gives: `step-…`, or `step-….N` when that was taken. */
const ASIDE_RE = /^step-(\d{10})(?:\.(\d{1,4}))?$/;

/** One checkpoint in a folder of checkpoints moved aside (listCheckpointsAside). */
export interface CheckpointAside {
  /** Its name in the folder and its path. */
  name: string;
  path: string;
  /** The step its name says, and the `.N` suffix (1 without one): an order for equal times. */
  step: number;
  suffix: number;
  /** A symlink (moved as a link): removing it removes the link, never what it points to. */
  link: boolean;
  /** When it was moved aside (its mtime, which moveCheckpointAside sets; the link's own for a link). */
  mtimeMs: number;
  /** Bytes it holds in the folder: its files (not followed through links); 0 for a link. */
  bytes: number;
}

/**
 * The checkpoints in `<root>/<folder>/` (moveCheckpointAside's names: anything else there is the user's and not
 * listed), or null when the folder is not a directory of its own: missing, or a symlink (then its entries are
 * somewhere else, which pruning must not reach). Nothing is followed through a link.
 */
export function listCheckpointsAside(root: string, folder: string): CheckpointAside[] | null {
  const into = asideFolder(root, folder);
  try {
    if (!lstatSync(into).isDirectory()) return null;
  } catch {
    return null;
  }
  const out: CheckpointAside[] = [];
  for (const name of readdirSync(into)) {
    const m = ASIDE_RE.exec(name);
    if (m === null) continue;
    const path = join(into, name);
    let st;
    try {
      st = lstatSync(path);
    } catch {
      continue; // gone meanwhile
    }
    if (!st.isSymbolicLink() && !st.isDirectory()) continue; // a file of that name: not a checkpoint moved aside
    out.push({ name, path, step: Number(m[1]), suffix: m[2] === undefined ? 1 : Number(m[2]), link: st.isSymbolicLink(), mtimeMs: st.mtimeMs, bytes: st.isDirectory() ? treeBytes(path, 0) : 0 });
  }
  return out;
}

/** Bytes of the files under `dir`, links not followed (a checkpoint is flat; a deeper tree is bounded). */
function treeBytes(dir: string, depth: number): number {
  let sum = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const n of names) {
    try {
      const st = lstatSync(join(dir, n));
      if (st.isDirectory()) sum += depth < 8 ? treeBytes(join(dir, n), depth + 1) : 0;
      else if (!st.isSymbolicLink()) sum += st.size;
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

function asideFolder(root: string, folder: string): string {
  if (folder !== basename(folder) || folder.startsWith('.') || DIR_RE.test(folder)) throw new ModelConfigError(`${JSON.stringify(folder)} is not a folder name for moved checkpoints`);
  return join(root, folder);
}

/**
 * Removes the checkpoint `name` from `<root>/<folder>/`, and nothing outside that folder: the name must be one
 * moveCheckpointAside gives, the folder a directory of its own (not a link), and a link is unlinked, never followed
 * (its target, the user's weights somewhere else, stays). Returns what was removed ('link', 'dir'), or null when
 * nothing by that name is there. A failure is CHECKPOINT_WRITE_FAILED naming the path.
 */
export function removeCheckpointAside(root: string, folder: string, name: string): 'link' | 'dir' | null {
  const into = asideFolder(root, folder);
  if (!ASIDE_RE.test(name)) throw new ModelConfigError(`${JSON.stringify(name)} is not the name of a checkpoint moved aside`);
  const path = join(into, name);
  try {
    if (!lstatSync(into).isDirectory()) return null;
    const st = lstatSync(path);
    if (st.isSymbolicLink()) {
      unlinkSync(path);
      return 'link';
    }
    if (!st.isDirectory()) return null;
    // rmSync unlinks the links inside the tree, it does not follow them
    rmSync(path, { recursive: true, force: true });
    return 'dir';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CheckpointError('CHECKPOINT_WRITE_FAILED', path, `cannot remove the checkpoint moved aside: ${(e as Error).message}`, { errno: (e as NodeJS.ErrnoException).code });
  }
}

/**
 * Loads either kind of directory: ours (checkpoint.json present: verified) or a foreign Hugging Face one.
 */
export function loadAnyCheckpoint(dir: string, opts: LoadOptions): { config: LlamaConfig; model: LlamaShard; verified: LoadedCheckpoint | null } {
  if (existsSync(join(dir, CHECKPOINT_FILES.manifest))) {
    const c = loadCheckpoint(dir, opts);
    return { config: c.config, model: c.model, verified: c };
  }
  const h = loadHfModel(dir, opts);
  return { ...h, verified: null };
}
