/**
 * The CLI's shared contract, in process through main(): `--help` (exit 0) and an unknown flag (exit 2) on every
 * command, and `config get|set|list|unset` on a real data dir.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { getEventListeners } from 'node:events';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createServer as createHttpServer } from 'node:http';
import { writeNodeLock } from '../../../src/identity/index.js';
import { closest, EXIT_USAGE, flagErrorMessage, nearest, UsageError } from '../../../src/cli/command.js';
import { hopPushFlag } from '../../../src/cli/start/index.js';
import { COMMANDS } from '../../../src/cli/commands.js';
import { hoistGlobalFlags, main, wantsJson } from '../../../src/cli/main.js';
import { tempDir } from '../../utils/paths.js';
import { closedPort } from '../../utils/ports.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), signal: new AbortController().signal });
  return { code, out, err };
}

async function json(args: string[]): Promise<unknown> {
  const r = await cli(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
  return JSON.parse(r.out);
}

describe('every command', () => {
  it('answers --help with exit 0 and an unknown flag with exit 2', async () => {
    for (const c of COMMANDS) {
      const h = await cli([c.name, '--help']);
      assert.equal(h.code, 0, `${c.name} --help`);
      assert.match(h.out, new RegExp(`usage: neuroshard ${c.name}`));
      assert.equal(h.err, '', `${c.name} --help writes nothing on stderr`);
      const bad = await cli([c.name, '--no-such-flag']);
      assert.equal(bad.code, EXIT_USAGE, `${c.name} --no-such-flag: ${bad.err}`);
      // a short message that names the flag (not node:util's paragraph about positionals) and points at --help
      assert.match(bad.err, new RegExp(`^neuroshard ${c.name}: unknown flag --no-such-flag\n`));
      assert.match(bad.err, new RegExp(`neuroshard ${c.name} --help`));
      assert.doesNotMatch(bad.err, /positional|\n\s+at /);
      assert.equal(bad.out, '', `${c.name}: nothing on stdout without --json`);
    }
  });
  it('with --json, a failure is one JSON document on stdout: usage errors (exit 2) and runtime errors (exit 1)', async () => {
    for (const c of COMMANDS) {
      const bad = await cli([c.name, '--no-such-flag', '--json']);
      assert.equal(bad.code, EXIT_USAGE, c.name);
      assert.deepEqual(JSON.parse(bad.out), { error: { code: 'USAGE', message: 'unknown flag --no-such-flag', exit: 2 } }, `${c.name}: ${bad.out}`);
    }
    // a missing required argument, named in the message
    const noAmount = await cli(['wallet', 'send', 'neuro1x', '--json']);
    assert.equal(noAmount.code, EXIT_USAGE);
    assert.deepEqual(JSON.parse(noAmount.out), { error: { code: 'USAGE', message: 'wallet send takes <address> <amount>', exit: 2 } });
    const noPrompt = await cli(['generate', '--json']);
    assert.equal(noPrompt.code, EXIT_USAGE);
    assert.equal((JSON.parse(noPrompt.out) as { error: { code: string } }).error.code, 'USAGE');
    // a runtime error: no node answers on a port nothing listens on
    const port = await closedPort();
    const down = await cli(['status', '--api-port', String(port), '--json']);
    assert.equal(down.code, 1, down.err);
    const e = (JSON.parse(down.out) as { error: { code: string; message: string; exit: number } }).error;
    assert.deepEqual([e.code, e.exit], ['NODE_UNREACHABLE', 1]);
    // the model commands keep their JSON error line on stderr and, under --json, print it on stdout too
    const d = tempDir('ns-json-err-');
    try {
      const missing = await cli(['eval', '--checkpoint', join(d.dir, 'nope'), '--ids', '1,2', '--json']);
      assert.equal(missing.code, 1);
      assert.deepEqual(JSON.parse(missing.out), { error: { code: 'CHECKPOINT_MISSING', message: `no checkpoint at ${join(d.dir, 'nope')}: the directory does not exist`, exit: 1 } });
      assert.equal((JSON.parse(missing.err.trim()) as { error: { code: string } }).error.code, 'CHECKPOINT_MISSING');
      const noJson = await cli(['eval', '--checkpoint', join(d.dir, 'nope'), '--ids', '1,2']);
      assert.equal(noJson.out, '');
    } finally {
      d.cleanup();
    }
  });
  it('start takes --hop-push, --no-hop-push and --hop-push auto (session 30), and no other argument', async () => {
    assert.equal(hopPushFlag(true, ['auto']), 'auto');
    assert.equal(hopPushFlag(true, []), true);
    assert.equal(hopPushFlag(false, []), false);
    assert.equal(hopPushFlag(undefined, []), undefined);
    assert.throws(() => hopPushFlag(undefined, ['auto']), (e) => e instanceof UsageError && /unexpected argument auto/.test(e.message));
    assert.throws(() => hopPushFlag(true, ['sometimes']), (e) => e instanceof UsageError);
    const r = await cli(['start', '--hop-push', 'sometimes']);
    assert.equal(r.code, EXIT_USAGE);
    assert.match(r.err, /unexpected argument sometimes/);
  });

  it('an unknown command or a near-miss flag gets a suggestion', async () => {
    const cmd = await cli(['statsu']);
    assert.equal(cmd.code, EXIT_USAGE);
    assert.match(cmd.err, /unknown command "statsu" \(did you mean "status"\?\)/);
    const cmdJson = await cli(['statsu', '--json']);
    assert.equal((JSON.parse(cmdJson.out) as { error: { code: string } }).error.code, 'USAGE');
    const flag = await cli(['start', '--tracer', 'x']);
    assert.equal(flag.code, EXIT_USAGE);
    assert.match(flag.err, /unknown flag --tracer \(did you mean --tracker\?\)/);
    assert.equal(flagErrorMessage("Unknown option '-q'. To specify a positional argument", ['quiet']), 'unknown flag -q');
    assert.equal(flagErrorMessage("Option '--nodes <value>' argument missing", ['nodes']), '--nodes needs a value');
    assert.equal(flagErrorMessage("Option '-n, --lines <value>' argument missing", ['lines']), '--lines needs a value');
    assert.equal(flagErrorMessage("Option '--yes' does not take an argument", ['yes']), '--yes takes no value');
    assert.equal(flagErrorMessage('something else', ['yes']), 'something else');
    assert.equal(closest('zzzzzz', ['start', 'status']), undefined);
    // an ambiguous prefix names every match, not the first one listed
    assert.deepEqual(nearest('st', ['start', 'status', 'stop', 'chat']), ['start', 'status', 'stop']);
    assert.equal(closest('st', ['start', 'status', 'stop']), undefined);
    const ambiguous = await cli(['st']);
    assert.equal(ambiguous.code, EXIT_USAGE);
    assert.match(ambiguous.err, /unknown command "st" \(did you mean "start", "status" or "stop"\?\)/);
    assert.equal(wantsJson(['x', '--', '--json']), false);
  });
  it('the operator commands are registered', () => {
    for (const name of ['chat', 'swarm', 'logs', 'stop', 'config']) assert.ok(COMMANDS.some((c) => c.name === name), name);
  });
});

describe('neuroshard config', () => {
  const d = tempDir('ns-config-');
  after(() => d.cleanup());
  const prev = process.env.NEUROSHARD_THREADS;
  delete process.env.NEUROSHARD_THREADS;
  after(() => {
    if (prev !== undefined) process.env.NEUROSHARD_THREADS = prev;
  });

  it('sets a validated value in config.json, gets it with its source, lists all, and unsets it', async () => {
    const set = (await json(['config', 'set', 'threads', '3', '--json', '--data-dir', d.dir])) as { key: string; value: number };
    assert.deepEqual([set.key, set.value], ['threads', 3]);
    assert.equal(statSync(join(d.dir, 'config.json')).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(join(d.dir, 'config.json'), 'utf8')), { threads: 3 });
    assert.deepEqual(await json(['config', 'get', 'threads', '--json', '--data-dir', d.dir]), { key: 'threads', value: 3, source: 'config' });
    assert.equal((await cli(['config', 'get', 'threads', '--data-dir', d.dir])).out, '3\n');
    await json(['config', 'set', 'trackers', 'http://127.0.0.1:3000,http://127.0.0.1:3001', '--data-dir', d.dir, '--json']);
    const list = (await json(['config', 'list', '--json', '--data-dir', d.dir])) as { options: { key: string; value: unknown; source: string }[] };
    assert.deepEqual(
      list.options.find((o) => o.key === 'trackers'),
      { key: 'trackers', value: ['http://127.0.0.1:3000', 'http://127.0.0.1:3001'], source: 'config' },
    );
    assert.equal(list.options.find((o) => o.key === 'apiPort')?.source, 'default');
    // a bad value or an unknown key is bad usage (exit 2) and leaves the file as it was
    const bad = await cli(['config', 'set', 'threads', 'many', '--data-dir', d.dir]);
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /threads/);
    assert.equal((await cli(['config', 'set', 'nope', '1', '--data-dir', d.dir])).code, 2);
    assert.equal((await cli(['config', 'set', 'dataDir', '/x', '--data-dir', d.dir])).code, 2);
    assert.equal((await cli(['config', 'frob', '--data-dir', d.dir])).code, 2);
    assert.equal((JSON.parse(readFileSync(join(d.dir, 'config.json'), 'utf8')) as { threads: number }).threads, 3);
    const unset = (await json(['config', 'unset', 'threads', '--json', '--data-dir', d.dir])) as { removed: boolean };
    assert.equal(unset.removed, true);
    assert.equal(((await json(['config', 'get', 'threads', '--json', '--data-dir', d.dir])) as { source: string }).source, 'default');
  });
});

describe('neuroshard logs and stop without a node', () => {
  const d = tempDir('ns-nolog-');
  after(() => d.cleanup());
  it('exit 1 with a typed error when there is no log or no node', async () => {
    const logs = await cli(['logs', '--data-dir', d.dir]);
    assert.equal(logs.code, 1);
    assert.match(logs.err, /NO_LOG/);
    const stop = await cli(['stop', '--data-dir', d.dir]);
    assert.equal(stop.code, 1);
    assert.match(stop.err, /NODE_NOT_RUNNING/);
  });
});

describe('neuroshard status --data-dir D with no node running on D', () => {
  const d = tempDir('ns-status-none-');
  after(() => d.cleanup());
  it('says so (NODE_NOT_RUNNING) instead of asking the apiPort, where another data dir\'s node may answer as this one', async () => {
    let hits = 0;
    const other = createHttpServer((_req, res) => {
      hits++;
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"not_ready","message":"x"}}');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const port = (other.address() as { port: number }).port;
    try {
      // the data dir's apiPort is where some other node listens
      await cli(['config', 'set', 'apiPort', String(port), '--data-dir', d.dir]);
      for (const cmd of ['status', 'peers', 'layers']) {
        const r = await cli([cmd, '--data-dir', d.dir, '--json']);
        assert.equal(r.code, 1, r.err);
        assert.equal((JSON.parse(r.out) as { error: { code: string } }).error.code, 'NODE_NOT_RUNNING', cmd);
        assert.match(r.err, /no node is running on .*; start one \(neuroshard start --data-dir .*\) or name a node's port with --api-port/);
      }
      assert.equal(hits, 0, 'nothing asked the other node');
      // a node running on the data dir (its node.lock) is asked
      const release = writeNodeLock(d.dir, { apiPort: port });
      try {
        await cli(['status', '--data-dir', d.dir, '--json']);
        assert.equal(hits, 1);
      } finally {
        release();
      }
    } finally {
      await new Promise<void>((r) => other.close(() => r()));
    }
  });
});

describe('neuroshard logs -n', () => {
  const d = tempDir('ns-logs-n-');
  after(() => d.cleanup());
  it('prints the last N lines, none for -n 0 (it printed the whole log)', async () => {
    mkdirSync(join(d.dir, 'logs'), { recursive: true });
    appendFileSync(join(d.dir, 'logs', 'node.log'), 'a\nb\nc\n');
    const two = await cli(['logs', '-n', '2', '--data-dir', d.dir]);
    assert.deepEqual([two.code, two.out], [0, 'b\nc\n']);
    const none = await cli(['logs', '-n', '0', '--data-dir', d.dir]);
    assert.deepEqual([none.code, none.out, none.err], [0, '', '']);
    assert.deepEqual(JSON.parse((await cli(['logs', '--lines=0', '--json', '--data-dir', d.dir])).out), { file: join(d.dir, 'logs', 'node.log'), lines: [] });
  });
});

describe('neuroshard logs -f', () => {
  const d = tempDir('ns-follow-');
  after(() => d.cleanup());
  it('follows appended lines without piling abort listeners on the signal (one per poll warned after 3 s)', async () => {
    const file = join(d.dir, 'logs', 'node.log');
    mkdirSync(join(d.dir, 'logs'), { recursive: true });
    appendFileSync(file, 'line 0\n');
    const ac = new AbortController();
    let out = '';
    const done = main(['logs', '-f', '--data-dir', d.dir], { stdout: (t) => (out += t), stderr: () => {}, signal: ac.signal });
    const waitFor = async (text: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!out.includes(text)) {
        assert.ok(Date.now() < deadline, `no "${text}" within 10 s; got ${JSON.stringify(out)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    let listeners = -1;
    try {
      // each appended line needs at least one more poll of the file
      for (let i = 1; i <= 4; i++) {
        appendFileSync(file, `line ${i}\n`);
        await waitFor(`line ${i}\n`);
      }
      listeners = getEventListeners(ac.signal, 'abort').length;
    } finally {
      ac.abort(); // stops the follow loop whatever happened, so a failure cannot hang the test file
    }
    assert.equal(await done, 0);
    assert.ok(listeners <= 1, `abort listeners on the signal after 4 polls: ${listeners}`);
    assert.equal(out, 'line 0\nline 1\nline 2\nline 3\nline 4\n');
  });
});

describe('global flags before the command', () => {
  const d = tempDir('ns-global-first-');
  after(() => d.cleanup());

  it('are read as if they followed it (--data-dir D, --log-level=L), and a -- after the command still ends the flags', async () => {
    assert.deepEqual(hoistGlobalFlags(['--data-dir', '/x', '--log-level=warn', 'status', '--json']), ['status', '--data-dir', '/x', '--log-level=warn', '--json']);
    assert.deepEqual(hoistGlobalFlags(['--threads', '2', 'generate', '--', '--not-a-flag']), ['generate', '--threads', '2', '--', '--not-a-flag']);
    assert.deepEqual(hoistGlobalFlags(['--json', 'status']), ['--json', 'status']);
    assert.deepEqual(hoistGlobalFlags(['--data-dir', '/x']), []);
    await cli(['config', 'set', 'threads', '3', '--data-dir', d.dir]);
    const r = await cli(['--data-dir', d.dir, 'config', 'get', 'threads']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, '3\n');
    const eq = await cli([`--data-dir=${d.dir}`, 'config', 'get', 'threads']);
    assert.equal(eq.out, '3\n', eq.err);
  });

  it('alone, without a command, get the top help and exit 2 instead of "unknown command --data-dir"', async () => {
    const r = await cli(['--data-dir', d.dir]);
    assert.equal(r.code, EXIT_USAGE);
    assert.match(r.out, /^usage: neuroshard <command>/);
    assert.doesNotMatch(r.err, /unknown command/);
  });
});

describe('neuroshard generate with neither a node nor a checkpoint on the data dir', () => {
  const d = tempDir('ns-gen-none-');
  after(() => d.cleanup());

  it('says that no node runs there and that it holds no checkpoint, with what to do (exit 1, CHECKPOINT_MISSING)', async () => {
    const r = await cli(['generate', '--prompt', 'hi', '--data-dir', d.dir]);
    assert.equal(r.code, 1, r.err);
    const e = (JSON.parse(r.err.trim()) as { error: { code: string; message: string } }).error;
    assert.equal(e.code, 'CHECKPOINT_MISSING');
    assert.equal(e.message, `no node is running on ${d.dir} and it holds no checkpoint (${join(d.dir, 'checkpoints')} does not exist): start a node there (neuroshard start --data-dir ${d.dir}) or pass --checkpoint DIR`);
  });
});

describe('neuroshard config mends a config.json that does not load', () => {
  const d = tempDir('ns-config-mend-');
  after(() => d.cleanup());

  it('unset removes a key with a typo and set replaces a bad value; get names the key and the fix', async () => {
    const path = join(d.dir, 'config.json');
    writeFileSync(path, JSON.stringify({ spna: '0:2', threads: 2 }));
    const get = await cli(['config', 'get', 'threads', '--data-dir', d.dir]);
    assert.equal(get.code, 1);
    assert.match(get.err, /unknown option "spna" \(did you mean [^)]*"span"\?\); `neuroshard config unset spna` removes it/);
    const unset = await cli(['config', 'unset', 'spna', '--data-dir', d.dir]);
    assert.equal(unset.code, 0, unset.err);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { threads: 2 });
    writeFileSync(path, JSON.stringify({ span: 5 }));
    const set = await cli(['config', 'set', 'span', '0:2', '--data-dir', d.dir]);
    assert.equal(set.code, 0, set.err);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { span: { start: 0, end: 2 } });
    const typo = await cli(['config', 'unset', 'spna', '--data-dir', d.dir]);
    assert.equal(typo.code, EXIT_USAGE);
    assert.match(typo.err, /unknown option "spna" \(did you mean [^)]*"span"\?\)/);
  });
});

describe('neuroshard start with a bad flag value', () => {
  const d = tempDir('ns-start-flag-');
  after(() => d.cleanup());

  it('names the flag as typed (--memory-mb, --tracker), not the option key, and exits 2 before writing anything', async () => {
    const cases: [string[], RegExp][] = [
      [['--memory-mb', 'abc'], /^neuroshard start: --memory-mb: must be an integer in 1\.\.\d+\n/],
      [['--tracker', 'notaurl'], /^neuroshard start: --tracker: "notaurl" is not an http\(s\) URL\n/],
      [['--api-cors', 'nope'], /^neuroshard start: --api-cors: /],
      [['--span', '2:1'], /^neuroshard start: --span: must satisfy/],
    ];
    for (const [args, want] of cases) {
      const r = await cli(['start', ...args, '--data-dir', join(d.dir, 'node')]);
      assert.equal(r.code, EXIT_USAGE, r.err);
      assert.match(r.err, want);
    }
    assert.equal(existsSync(join(d.dir, 'node')), false);
  });
});
