/**
 * `neuroshard logs [-f] [--lines N]`: the last lines of the node's log (`<data-dir>/logs/node.log`, written by the
 * running node); `-f` keeps printing new lines (across a rotation) until Ctrl-C.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { nodeLogPath } from '../../node/logs.js';
import { loadOptions } from '../../node/options.js';
import { pause } from '../../util/abort.js';
import { NeuroShardError } from '../../util/errors.js';
import { intFlag, stringFlag, UsageError, type Command } from '../command.js';

export class NoLogError extends NeuroShardError {
  constructor(path: string) {
    super('NO_LOG', `no log at ${path}: no node has run on this data dir yet`, { fault: 'caller', meta: { path } });
  }
}

/** The last `n` lines of a file, reading at most `maxBytes` from its end. */
export function lastLines(path: string, n: number, maxBytes = 4 << 20): { lines: string[]; size: number } {
  const size = statSync(path).size;
  const len = Math.min(size, maxBytes);
  const buf = Buffer.alloc(len);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, len, size - len);
  } finally {
    closeSync(fd);
  }
  const lines = buf.toString('utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (len < size) lines.shift(); // a partial first line
  // slice(-0) is the whole array: `logs -n 0` printed the whole log (session 30's walkthrough), where it means none
  return { lines: n === 0 ? [] : lines.slice(-n), size };
}

function readRange(path: string, from: number, to: number): string {
  const buf = Buffer.alloc(to - from);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, to - from, from);
  } finally {
    closeSync(fd);
  }
  return buf.toString('utf8');
}

export const logsCommand: Command = {
  name: 'logs',
  summary: "print the node's log (<data-dir>/logs/node.log); -f follows it",
  flags: {
    follow: { type: 'boolean', short: 'f', description: 'keep printing new lines until Ctrl-C' },
    lines: { type: 'string', short: 'n', value: 'N', description: 'how many of the last lines to print (default 50)' },
    json: { type: 'boolean', description: 'print {"file", "lines"} (not with --follow)' },
  },
  async run(flags, positionals, io) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    const n = intFlag(flags, 'lines', 50, 0, 100_000);
    if (flags.follow === true && flags.json === true) throw new UsageError('--json prints one document; it cannot be combined with --follow');
    const { dataDir } = loadOptions({ flags: { dataDir: stringFlag(flags, 'data-dir') } });
    const path = nodeLogPath(dataDir);
    if (!existsSync(path)) {
      if (flags.follow !== true) throw new NoLogError(path);
    }
    let offset = 0;
    if (existsSync(path)) {
      const { lines, size } = lastLines(path, n);
      offset = size;
      if (flags.json === true) {
        io.stdout(JSON.stringify({ file: path, lines }) + '\n');
        return 0;
      }
      if (lines.length > 0) io.stdout(lines.join('\n') + '\n');
    }
    if (flags.follow !== true) return 0;
    // follow: poll the size (fs.watch misses appends on some file systems); a smaller file means it was rotated
    let partial = '';
    while (!io.signal.aborted) {
      // pause() removes its abort listener when it resolves: one listener per poll piled up on the signal before
      // (MaxListenersExceededWarning after 3 s of `logs -f`)
      await pause(250, io.signal);
      let size: number;
      try {
        size = statSync(path).size;
      } catch {
        continue;
      }
      if (size < offset) offset = 0;
      if (size === offset) continue;
      const to = Math.min(size, offset + (4 << 20));
      const text = partial + readRange(path, offset, to);
      offset = to;
      const cut = text.lastIndexOf('\n');
      if (cut < 0) {
        partial = text;
        continue;
      }
      io.stdout(text.slice(0, cut + 1));
      partial = text.slice(cut + 1);
    }
    return 0;
  },
};
