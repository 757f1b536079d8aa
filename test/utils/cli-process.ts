/**
 * Running the real `neuroshard` CLI as child processes in e2e tests: start one and wait for the lines it prints
 * (never for a guessed time), or run one to completion and parse its JSON. Every process a test starts is killed
 * by `killAll()` (call it from `after`).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

export const BIN = join(REPO_ROOT, 'bin', 'neuroshard.js');

/** Flags that keep a test node on 127.0.0.1 with free ports and no LAN side effects. */
export const LOCAL_NODE_FLAGS = ['--no-mdns', '--no-upnp', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0'];

export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  readonly out: string;
  readonly err: string;
  /** Resolves with the first line (stderr + stdout) matching `re`; rejects after `ms` or when the process exits first. */
  waitLine(re: RegExp, ms: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
}

const started = new Set<CliProcess>();

/** `detached`: the process leads its own process group (killGroup() then SIGKILLs all of it). */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, o: { detached?: boolean } = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, detached: o.detached === true });
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const check = (): void => {
    for (const w of [...waiters]) {
      const m = (err + out).match(w.re);
      if (m !== null) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    check();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    check();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const p: CliProcess = {
    child,
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    exited,
    waitLine: (re, ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; stderr:\n${err.slice(-3000)}`)), ms);
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before a line matching ${re}; stderr:\n${err.slice(-3000)}`));
        });
        waiters.push({
          re,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
        check();
      }),
  };
  started.add(p);
  return p;
}

/** Runs the CLI to completion, asserts exit code 0 and returns its stdout parsed as JSON. */
export async function cliJson(args: string[]): Promise<unknown> {
  const p = startCli(args);
  const code = await p.exited;
  assert.equal(code, 0, `neuroshard ${args.join(' ')} failed (${code}): ${p.err}`);
  return JSON.parse(p.out);
}

export function killAll(): void {
  for (const p of started) if (p.child.exitCode === null) killGroup(p);
}

/** SIGKILL to the process's group when it leads one (started detached), else to the process. */
export function killGroup(p: CliProcess): void {
  try {
    if (p.child.pid !== undefined) process.kill(-p.child.pid, 'SIGKILL');
    else p.child.kill('SIGKILL');
  } catch {
    p.child.kill('SIGKILL'); // not a group leader
  }
}
