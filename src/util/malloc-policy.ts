/**
 * The C heap's policy for large buffers (glibc `mallopt` through the small `neuroshard_heap` addon,
 * src/tensor/native/heap.cc). A node sets it when its heap trimmer starts (node/heap-trim.ts: the trim every
 * `heapTrimIntervalMs` gives the free pages back); the p2p-rpc bench's two processes set it as a node does.
 *
 * Why: glibc serves a buffer of ≥ 128 KiB from a fresh mapping and unmaps it when freed, and trims the heap's top
 * once a few MiB there are free, so every large buffer is faulted in and zeroed page by page again: a fresh 1 MiB
 * buffer filled once cost ~460 µs here against ~80 µs for one reused from the heap, and a 1 MiB call over the direct
 * data lane made 4-5 of them (request encoding, sealing, the socket's reads, the plaintext; docs/LIMITS.md "Session
 * 22: 1 MiB on the lane"). With the policy, buffers below 32 MiB come from the heap and a freed one stays there for
 * the next; up to 64 MiB free at the heap's top is kept (a scavenge frees ~32 MiB of buffers at once; 256 MiB measured
 * no better). The same as MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=67108864.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findPackageRoot } from './package-root.js';

export const MALLOC_POLICY = { mmapThresholdBytes: 32 * 1024 * 1024, trimThresholdBytes: 64 * 1024 * 1024 } as const;

type PolicyFn = (mmapThreshold: number, trimThreshold: number) => boolean | null;
let fn: PolicyFn | null | undefined;

function load(): PolicyFn | null {
  if (fn !== undefined) return fn;
  fn = null;
  const root = findPackageRoot();
  const path = root === undefined ? undefined : join(root, 'build', 'Release', 'neuroshard_heap.node');
  if (path === undefined || !existsSync(path)) return fn;
  try {
    const mod = createRequire(import.meta.url)(path) as { setMallocPolicy?: unknown };
    // an addon built before session 22 has no setMallocPolicy: the policy is then left as it is
    if (typeof mod.setMallocPolicy === 'function') fn = mod.setMallocPolicy as PolicyFn;
  } catch {
    fn = null;
  }
  return fn;
}

/**
 * Sets MALLOC_POLICY (or `p`) for this process: true when glibc took it, false when it refused, null where there is
 * no such call (no addon, another C library) or NEUROSHARD_MALLOC_POLICY=off (A/B runs): then nothing changes.
 */
export function setMallocPolicy(p: { mmapThresholdBytes: number; trimThresholdBytes: number } = MALLOC_POLICY): boolean | null {
  if (process.env.NEUROSHARD_MALLOC_POLICY === 'off') return null;
  const f = load();
  return f === null ? null : f(p.mmapThresholdBytes, p.trimThresholdBytes);
}
