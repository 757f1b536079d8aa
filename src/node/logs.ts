/**
 * The node's log: every logger line goes to stderr (as before), to `<data-dir>/logs/node.log` (read by
 * `neuroshard logs [-f]`) and to a ring of recent lines (the dashboard's log panel).
 *
 * The file is opened for append and written synchronously (a log line must not be lost when the process dies right
 * after it); at `maxFileBytes` it is rotated to node.log.1 (one old file kept), so a long-running node's log stays
 * bounded on disk.
 */
import { closeSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { RingBuffer } from '../util/series.js';

export const LOG_DIR_NAME = 'logs';
export const NODE_LOG_FILE = 'node.log';
/** Where a detached node's stdout and stderr go (`neuroshard start --detach`). */
export const DETACHED_OUT_FILE = 'start.out';

export function logDir(dataDir: string): string {
  return join(dataDir, LOG_DIR_NAME);
}

export function nodeLogPath(dataDir: string): string {
  return join(logDir(dataDir), NODE_LOG_FILE);
}

export interface NodeLogOptions {
  /** Rotate at this size (default 10 MiB). */
  maxFileBytes?: number;
  /** Recent lines kept in memory (default 500). */
  ringLines?: number;
  /** Longest line kept (default 4,096 characters; longer ones are cut). */
  maxLineChars?: number;
}

export class NodeLog {
  readonly ring: RingBuffer<string>;
  readonly path: string;
  private fd: number | undefined;
  private size = 0;
  private readonly maxFileBytes: number;
  private readonly maxLineChars: number;

  constructor(dataDir: string, opts: NodeLogOptions = {}) {
    this.maxFileBytes = opts.maxFileBytes ?? 10 << 20;
    this.maxLineChars = opts.maxLineChars ?? 4096;
    this.ring = new RingBuffer<string>(opts.ringLines ?? 500);
    mkdirSync(logDir(dataDir), { recursive: true, mode: 0o700 });
    this.path = nodeLogPath(dataDir);
    this.open();
  }

  private open(): void {
    this.fd = openSync(this.path, 'a', 0o600);
    try {
      this.size = statSync(this.path).size;
    } catch {
      this.size = 0;
    }
  }

  /** One log line (without its newline). */
  write(line: string): void {
    const l = line.length > this.maxLineChars ? line.slice(0, this.maxLineChars) + '…' : line;
    this.ring.push(l);
    if (this.fd === undefined) return;
    const bytes = Buffer.from(l + '\n');
    try {
      if (this.size + bytes.length > this.maxFileBytes && this.size > 0) this.rotate();
      writeSync(this.fd, bytes);
      this.size += bytes.length;
    } catch {
      // a full disk must not take the node down; the ring and stderr still have the line
    }
  }

  /** A line in the logger's format (`time level module: message`) that goes only to the file and the ring. */
  note(module: string, msg: string): void {
    this.write(`${new Date().toISOString()} info  ${module}: ${msg}`);
  }

  private rotate(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    renameSync(this.path, this.path + '.1');
    this.open();
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
