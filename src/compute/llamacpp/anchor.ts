/**
 * llama.cpp, through node-llama-cpp, as an outside reference: the GGUF export test checks that it produces our
 * tokens, and the bench measures its decode speed beside ours.
 *
 * node-llama-cpp is NOT a dependency of neuroshard (with its GPU variants it brings ~730 MB). It lives in its own
 * small package, `scripts/llamacpp/` (package.json + package-lock.json, pinned to 3.21.1 with the linux-x64 CPU
 * binary as a direct dependency), which `ensureLlamaCpp()` installs on first use with `npm ci --omit=optional
 * --ignore-scripts` (about 85 MB: no CUDA/Vulkan builds, no postinstall download; the prebuilt binary ships inside
 * the npm package). Failing to install is an error that says why (LLAMACPP_UNAVAILABLE), never a silent skip.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NeuroShardError } from '../../util/errors.js';

export const LLAMACPP_VERSION = '3.21.1';
/** Bound on the first-use install (the registry is slow on a loaded machine). */
const INSTALL_TIMEOUT_MS = 15 * 60_000;

export class LlamaCppUnavailableError extends NeuroShardError {
  constructor(message: string, meta?: Record<string, unknown>) {
    super('LLAMACPP_UNAVAILABLE', message, { fault: 'local', meta });
  }
}

/** The repository root: the nearest folder above this file whose package.json is neuroshard's. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        if ((JSON.parse(readFileSync(p, 'utf8')) as { name?: string }).name === 'neuroshard') return dir;
      } catch {
        // not ours; keep climbing
      }
    }
    dir = dirname(dir);
  }
  throw new LlamaCppUnavailableError('cannot find the neuroshard repository root (scripts/llamacpp lives there)');
}

/** scripts/llamacpp of this checkout. */
export function llamaCppDir(): string {
  return join(repoRoot(), 'scripts', 'llamacpp');
}

function installedVersion(dir: string): string | null {
  const p = join(dir, 'node_modules', 'node-llama-cpp', 'package.json');
  const bin = join(dir, 'node_modules', '@node-llama-cpp', 'linux-x64', 'package.json');
  if (!existsSync(p) || !existsSync(bin)) return null;
  return (JSON.parse(readFileSync(p, 'utf8')) as { version?: string }).version ?? null;
}

/**
 * Installs scripts/llamacpp's pinned packages unless they are already there. Returns the folder. Throws
 * LlamaCppUnavailableError (with npm's last lines) when the install fails or the platform has no prebuilt binary.
 */
export function ensureLlamaCpp(log: (line: string) => void = () => {}): string {
  const dir = llamaCppDir();
  if (installedVersion(dir) === LLAMACPP_VERSION) return dir;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new LlamaCppUnavailableError(`scripts/llamacpp pins the linux-x64 prebuilt llama.cpp; this is ${process.platform}-${process.arch}`);
  }
  log(`installing node-llama-cpp ${LLAMACPP_VERSION} into ${dir} (npm ci, first use only)…`);
  const t0 = Date.now();
  const r = spawnSync('npm', ['ci', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: INSTALL_TIMEOUT_MS,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  const tail = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-8).join('\n');
  if (r.error !== undefined || r.status !== 0) {
    throw new LlamaCppUnavailableError(`npm ci in ${dir} failed (${r.error?.message ?? `exit ${r.status}`}): ${tail}`, { dir });
  }
  const v = installedVersion(dir);
  if (v !== LLAMACPP_VERSION) throw new LlamaCppUnavailableError(`npm ci in ${dir} finished but node-llama-cpp ${LLAMACPP_VERSION} is not there (found ${v ?? 'nothing'})`, { dir });
  log(`installed node-llama-cpp ${v} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

// ---- the few node-llama-cpp types we use (its own .d.ts is not on our compile path) --------------------------------

interface NlcSequence {
  evaluate(tokens: number[], options?: { temperature?: number; yieldEogToken?: boolean }): AsyncGenerator<number, void, void | number | number[]>;
  clearHistory(): Promise<void>;
}
interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}
interface NlcModel {
  tokenize(text: string, specialTokens?: boolean): number[];
  detokenize(tokens: readonly number[], specialTokens?: boolean): string;
  createContext(o: { contextSize: number; threads: number; batchSize: number; sequences: number }): Promise<NlcContext>;
  readonly size: number;
  dispose(): Promise<void>;
}
interface NlcLlama {
  loadModel(o: { modelPath: string; gpuLayers: number; useMmap?: boolean }): Promise<NlcModel>;
  readonly cpuMathCores: number;
  dispose(): Promise<void>;
}
interface NlcModule {
  getLlama(o: Record<string, unknown>): Promise<NlcLlama>;
  LlamaLogLevel: Record<string, string>;
}

let llamaPromise: Promise<NlcLlama> | undefined;

/** The llama.cpp runtime (CPU, prebuilt binary, never built or downloaded), installing it first if needed. */
export async function getLlamaCpp(log?: (line: string) => void): Promise<NlcLlama> {
  llamaPromise ??= (async () => {
    const dir = ensureLlamaCpp(log);
    const entry = join(dir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
    let mod: NlcModule;
    try {
      mod = (await import(pathToFileURL(entry).href)) as NlcModule;
    } catch (e) {
      throw new LlamaCppUnavailableError(`cannot load ${entry}: ${(e as Error).message}`);
    }
    try {
      // maxThreads 0: a context's `threads` is the exact count used (the bench compares at equal thread counts)
      return await mod.getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, maxThreads: 0, logLevel: mod.LlamaLogLevel.error });
    } catch (e) {
      throw new LlamaCppUnavailableError(`node-llama-cpp could not start its prebuilt CPU binary: ${(e as Error).message}`);
    }
  })();
  try {
    return await llamaPromise;
  } catch (e) {
    llamaPromise = undefined;
    throw e;
  }
}

export interface LlamaCppGreedy {
  tokens: number[];
  /** From the prompt's submission to the first new token. */
  prefillMs: number;
  /** From the first new token to the last (tokens.length − 1 single-token steps). */
  decodeMs: number;
}

/** A GGUF model loaded in llama.cpp on the CPU. */
export interface LlamaCppModel {
  /** Text → ids without BOS and without parsing special-token texts. */
  tokenize(text: string): number[];
  detokenize(ids: readonly number[]): string;
  /** Greedy continuation of `prompt` (ids fed as they are: no BOS added), `maxTokens` new ids, EOS not stopping. */
  greedy(prompt: number[], maxTokens: number): Promise<LlamaCppGreedy>;
  /**
   * Teacher-forced argmax: out[i] is llama.cpp's most likely id after `prompt` + `continuation[0..i)`, so a
   * continuation that our model chose greedily can be compared position by position without one early difference
   * changing everything after it.
   */
  predictNext(prompt: number[], continuation: readonly number[]): Promise<number[]>;
  close(): Promise<void>;
}

export async function openLlamaCppModel(path: string, opts: { threads: number; contextSize: number; log?: (line: string) => void }): Promise<LlamaCppModel> {
  const llama = await getLlamaCpp(opts.log);
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: opts.contextSize, threads: opts.threads, batchSize: Math.min(512, opts.contextSize), sequences: 1 });
  const seq = context.getSequence();
  return {
    tokenize: (text) => Array.from(model.tokenize(text, false)),
    detokenize: (ids) => model.detokenize(ids, false),
    async greedy(prompt, maxTokens) {
      await seq.clearHistory();
      const tokens: number[] = [];
      const t0 = performance.now();
      let tFirst = t0;
      if (maxTokens > 0) {
        for await (const t of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
          if (tokens.length === 0) tFirst = performance.now();
          tokens.push(t);
          if (tokens.length >= maxTokens) break;
        }
      }
      const tEnd = performance.now();
      return { tokens, prefillMs: tFirst - t0, decodeMs: tEnd - tFirst };
    },
    async predictNext(prompt, continuation) {
      await seq.clearHistory();
      const out: number[] = [];
      if (continuation.length === 0) return out;
      const it = seq.evaluate(prompt, { temperature: 0, yieldEogToken: true });
      let r = await it.next();
      while (r.done !== true) {
        out.push(r.value);
        if (out.length >= continuation.length) break;
        r = await it.next(continuation[out.length - 1]); // evaluate our token next, not llama.cpp's
      }
      await it.return(undefined);
      return out;
    },
    async close() {
      await context.dispose();
      await model.dispose();
    },
  };
}
