/**
 * File helpers for checkpoints: atomic writes (temp file, fsync, rename, fsync of the directory), streaming SHA-256,
 * and bounded reads. Synchronous on purpose: checkpoints are written and read by the compute worker (or a CLI
 * command), never on a busy event loop, and sync calls keep the write order obvious.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CheckpointError } from './errors.js';

/** fsync of a directory, so a rename inside it survives a crash. Some filesystems refuse it: that is not an error. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // e.g. EISDIR/EPERM on some platforms: the rename is still atomic, only its durability is weaker
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A temporary sibling name for `path` (same directory, so rename is atomic). */
export function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Writes all chunks to fd, handling short writes. */
export function writeAll(fd: number, chunk: Uint8Array): void {
  let off = 0;
  while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off);
}

/**
 * Writes `chunks` to `path` atomically: a temp file in the same directory, fsync, rename over `path`, fsync of the
 * directory. Readers see the old file or the whole new one, never a torn one. Returns the SHA-256 (hex) and size.
 */
export function atomicWriteFile(path: string, chunks: Iterable<Uint8Array>, onBytes?: (n: number) => void): { sha256: string; bytes: number } {
  const tmp = tempSibling(path);
  const h = createHash('sha256');
  let bytes = 0;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w', 0o644);
    for (const c of chunks) {
      writeAll(fd, c);
      h.update(c);
      bytes += c.byteLength;
      onBytes?.(c.byteLength);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new CheckpointError('CHECKPOINT_WRITE_FAILED', path, `write failed: ${(e as Error).message}`);
  }
  fsyncDir(dirname(path));
  return { sha256: h.digest('hex'), bytes };
}

/** SHA-256 (hex) and size of a file, read in 4 MiB chunks. */
export function sha256File(path: string): { sha256: string; bytes: number } {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    let bytes = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      bytes += n;
    }
    return { sha256: h.digest('hex'), bytes };
  } finally {
    closeSync(fd);
  }
}

/** Reads exactly `length` bytes at `position` into `into` (offset 0), or throws CHECKPOINT_TRUNCATED. */
export function readExactly(fd: number, into: Uint8Array, position: number, file: string): void {
  let off = 0;
  while (off < into.byteLength) {
    const n = readSync(fd, into, off, into.byteLength - off, position + off);
    if (n === 0) throw new CheckpointError('CHECKPOINT_TRUNCATED', file, `ends at byte ${position + off}, expected ${into.byteLength - off} more bytes`);
    off += n;
  }
}

/** Reads a small text file (JSON) with a size limit, naming the file in every error. */
export function readSmallFile(path: string, maxBytes: number): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new CheckpointError('CHECKPOINT_MISSING', path, 'file not found');
  }
  if (size > maxBytes) throw new CheckpointError('CHECKPOINT_CORRUPT', path, `is ${size} bytes, larger than the ${maxBytes} allowed`);
  const fd = openSync(path, 'r');
  try {
    const len = fstatSync(fd).size;
    const buf = new Uint8Array(Math.min(len, maxBytes));
    readExactly(fd, buf, 0, path);
    return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
