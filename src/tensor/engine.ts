/**
 * Backend selection. The native addon is imported dynamically, so a machine where it did not build (no compiler,
 * an unsupported platform) still runs, on the reference backend, and says so in one line:
 *
 *   engine: native AVX-512, 2 threads
 *   engine: reference TypeScript backend (native addon not loaded: <reason>)
 */
import { errorMessage } from '../util/errors.js';
import type { Backend, NativeBackendModule } from './backend.js';
import { createReferenceBackend } from './backends/reference.js';
import { BackendUnavailableError } from './errors.js';

/** Which backend to use: `auto` prefers native and falls back; `native` fails when it cannot load. */
export type BackendChoice = 'auto' | 'native' | 'reference';

export interface EngineSelection {
  backend: Backend;
  /** The line to print at start-up. */
  line: string;
  /** Why the native backend is not in use (undefined when it is). */
  fallbackReason?: string;
}

export interface SelectBackendOptions {
  backend?: BackendChoice;
  /** Threads for the native pool (default: the backend's own choice, the machine's cores). */
  threads?: number;
}

// A variable specifier keeps the import dynamic for the type checker too: the module may not exist in a checkout
// (it is another engineer's file) or its addon may not have built; both are survivable.
const NATIVE_MODULE = './backends/native.js';

/** Tries to load the native backend; never throws. */
export async function tryLoadNativeBackend(opts: { threads?: number } = {}): Promise<{ ok: true; backend: Backend } | { ok: false; reason: string }> {
  let mod: Partial<NativeBackendModule> & { createNativeBackend?: NativeBackendModule['loadNativeBackend'] };
  try {
    mod = (await import(NATIVE_MODULE)) as typeof mod;
  } catch (e) {
    return { ok: false, reason: oneLine(errorMessage(e)) };
  }
  const load = mod.loadNativeBackend ?? mod.createNativeBackend;
  if (typeof load !== 'function') return { ok: false, reason: 'backends/native.js exports no loadNativeBackend()' };
  try {
    const backend = await load(opts.threads === undefined ? {} : { threads: opts.threads });
    return { ok: true, backend };
  } catch (e) {
    return { ok: false, reason: oneLine(errorMessage(e)) };
  }
}

export async function selectBackend(opts: SelectBackendOptions = {}): Promise<EngineSelection> {
  const choice = opts.backend ?? 'auto';
  if (choice === 'reference') {
    const backend = createReferenceBackend();
    return { backend, line: `engine: ${backend.description} (chosen by configuration)`, fallbackReason: 'reference backend chosen by configuration' };
  }
  const native = await tryLoadNativeBackend(opts.threads === undefined ? {} : { threads: opts.threads });
  if (native.ok) return { backend: native.backend, line: `engine: ${native.backend.description}` };
  if (choice === 'native') throw new BackendUnavailableError(native.reason);
  const backend = createReferenceBackend();
  return { backend, line: `engine: ${backend.description} (native addon not loaded: ${native.reason})`, fallbackReason: native.reason };
}

function oneLine(s: string): string {
  const first = s.split('\n').find((l) => l.trim() !== '') ?? s;
  return first.trim().slice(0, 300);
}
