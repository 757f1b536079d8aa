/**
 * The CLI's arguments, edge by edge (session 30), in process through main(): every flag and positional that takes a
 * number refuses negative values, NaN, Infinity, 1e309, hex, an empty string, spaces, very long values and a value
 * given twice with a typed usage error (exit 2) that names the flag or argument and the allowed range: no stack
 * trace, no "unknown flag -5", no silent clamp. `config set` names the key as typed.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT_USAGE } from '../../../src/cli/command.js';
import { COMMANDS } from '../../../src/cli/commands.js';
import { main } from '../../../src/cli/main.js';
import { openKeystore } from '../../../src/identity/index.js';
import { buildProof } from '../../../src/ledger/build.js';
import { Ledger, ledgerPath } from '../../../src/ledger/ledger.js';
import { listOutbox } from '../../../src/ledger/outbox.js';
import { tempDir } from '../../utils/paths.js';
import { holderRecord, LAYERS, NET } from '../ledger/helpers.js';
import { closedPort } from '../../utils/ports.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

/**
 * One CLI run. The signal is already aborted: a command that wrongly took a bad value and went on to serve (tracker,
 * start, logs -f) returns at once instead of hanging the file.
 */
async function cli(args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const ac = new AbortController();
  ac.abort(new Error('test'));
  const code = await main(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), signal: ac.signal });
  return { code, out, err };
}

/** A refusal: exit 2, one line naming the command and `want`, the --help hint, no stack trace, nothing on stdout. */
function assertRefused(r: Run, cmd: string, want: RegExp, what: string): void {
  assert.equal(r.code, EXIT_USAGE, `${what}: exit ${r.code}, stderr ${JSON.stringify(r.err)}`);
  assert.match(r.err, new RegExp(`^neuroshard ${cmd}: ${want.source}`), what);
  assert.match(r.err, new RegExp(`\nrun 'neuroshard ${cmd} --help' for usage\n$`), what);
  assert.doesNotMatch(r.err, /\n\s+at |unknown flag|from flag|ambiguous/, what);
  assert.equal(r.out, '', what);
}

/** Values no numeric flag takes, and what each is: all refused, none clamped. */
const BAD_NUMBERS = ['-5', '-0.5', '-Infinity', 'NaN', 'Infinity', '1e309', '0x10', '', ' 5', '5 ', '1 000', '9'.repeat(400)];

/** The range each message names, as `must be an integer in 1..10000` or `must be a number in (0, 1]`. */
function rangeText(kind: 'int' | 'num', range: string): string {
  return `must be ${kind === 'int' ? 'an integer' : 'a number'} in ${range.replace(/[.()[\]]/g, '\\$&')}, not `;
}

describe('numeric flags', () => {
  const d = tempDir('ns-args-');
  after(() => d.cleanup());
  let port = 0;
  before(async () => {
    port = await closedPort();
  });

  it('refuse every bad value with the flag, its range and the value (exit 2)', async () => {
    const dd = ['--data-dir', join(d.dir, 'node')];
    // [command words, flag, kind, range, other arguments the command needs to get as far as reading the flag]
    const cases: [string[], string, 'int' | 'num', string, string[]][] = [
      [['generate'], 'max-tokens', 'int', '1..1048576', ['--prompt', 'x']],
      [['generate'], 'temperature', 'num', '[0, 100]', ['--prompt', 'x']],
      [['generate'], 'top-k', 'int', '0..16777216', ['--prompt', 'x']],
      [['generate'], 'top-p', 'num', '(0, 1]', ['--prompt', 'x']],
      [['generate'], 'seed', 'int', '0..4294967295', ['--prompt', 'x']],
      [['chat'], 'max-tokens', 'int', '1..1048576', ['--prompt', 'x', '--api-port', String(port)]],
      [['chat'], 'temperature', 'num', '[0, 100]', ['--prompt', 'x', '--api-port', String(port)]],
      [['chat'], 'top-p', 'num', '(0, 1]', ['--prompt', 'x', '--api-port', String(port)]],
      [['chat'], 'context-chars', 'int', '0..65536', ['--prompt', 'x', '--api-port', String(port)]],
      [['chat'], 'api-port', 'int', '1..65535', ['--prompt', 'x']],
      [['status'], 'api-port', 'int', '1..65535', []],
      [['wallet', 'history'], 'limit', 'int', '1..10000', []],
      [['wallet', 'stake', '1'], 'lock-days', 'int', '1..365', []],
      [['stop'], 'timeout-s', 'int', '1..3600', []],
      [['logs'], 'lines', 'int', '0..100000', []],
      [['tracker'], 'port', 'int', '0..65535', []],
      [['swarm'], 'nodes', 'int', '1..16', []],
      [['swarm'], 'wait-s', 'int', '1..3600', []],
      [['train'], 'steps', 'int', '0..1000000000', ['--corpus', join(d.dir, 'no-corpus')]],
      [['train'], 'batch-size', 'int', '1..1024', ['--corpus', join(d.dir, 'no-corpus')]],
      [['apikey', 'create'], 'rate-limit', 'int', '1..1000000', []],
      [['start', '--detach'], 'wait-s', 'int', '1..3600', []],
    ];
    for (const [words, flag, kind, range, rest] of cases) {
      for (const v of BAD_NUMBERS) {
        const what = `${words.join(' ')} --${flag} ${JSON.stringify(v.slice(0, 12))}`;
        // both spellings: --flag VALUE (where -5 was "unknown flag" or "ambiguous") and --flag=VALUE
        for (const args of [[`--${flag}`, v], [`--${flag}=${v}`]]) {
          const r = await cli([...words, ...args, ...rest, ...dd]);
          assertRefused(r, words[0]!, new RegExp(`--${flag}: ${rangeText(kind, range)}"`), what);
          // a very long value is quoted shortened, not echoed whole
          assert.ok(r.err.length < 400, `${what}: ${r.err.length} characters of message`);
        }
      }
    }
    assert.equal(existsSync(join(d.dir, 'node')), false, 'no refused command wrote the data dir');
  });

  it('refuse a value given twice, and a switch given both ways, before doing anything', async () => {
    const dd = ['--data-dir', join(d.dir, 'twice')];
    assertRefused(await cli(['wallet', 'history', '--limit', '5', '--limit', '6', ...dd]), 'wallet', /--limit is given twice \("5", then "6"\); give it once\n/, '--limit twice');
    assertRefused(await cli(['generate', '--prompt', 'a', '--prompt=b', ...dd]), 'generate', /--prompt is given twice \("a", then "b"\)/, '--prompt twice');
    assertRefused(await cli(['generate', '--seed', '-1', '--seed', '2', ...dd]), 'generate', /--seed is given twice \("-1", then "2"\)/, 'a negative value given twice is shown as typed');
    assertRefused(await cli(['start', '--span', '0:2', '--span', '2:4', ...dd]), 'start', /--span is given twice/, '--span twice');
    assertRefused(await cli(['start', '--train', '--no-train', ...dd]), 'start', /--train and --no-train are both given; give one\n/, '--train --no-train');
    assertRefused(await cli(['--data-dir', join(d.dir, 'a'), 'status', ...dd]), 'status', /--data-dir is given twice/, 'a global flag before the command and after it');
    // repeatable flags and a switch given twice the same way are fine
    const ok = await cli(['config', 'get', 'threads', '--json', '--json', ...dd]);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(existsSync(join(d.dir, 'twice')), false);
  });

  it('node option flags name the flag for every command that reads them, and take no hex or spaces', async () => {
    const dd = ['--data-dir', join(d.dir, 'opts')];
    for (const v of ['0x10', '1e1', ' 4', '', '-2', '300']) {
      assertRefused(await cli(['generate', '--prompt', 'x', '--threads', v, ...dd]), 'generate', /--threads: must be an integer in 1\.\.256\n/, `--threads ${JSON.stringify(v)}`);
    }
    for (const [flag, v, want] of [
      ['memory-mb', '-5', /--memory-mb: must be an integer in 1\.\.1073741824\n/],
      ['outer-lr', 'NaN', /--outer-lr: must be a number in \[0, 10\]\n/],
      ['outer-lr', '-0.5', /--outer-lr: must be a number in \[0, 10\]\n/],
      ['route-explore', '1e309', /--route-explore: must be a number in \[0, 1\]\n/],
      ['api-port', '-1', /--api-port: must be an integer in 0\.\.65535\n/],
      ['micro-batches', '0x4', /--micro-batches: must be an integer in 1\.\.256\n/],
    ] as const) {
      assertRefused(await cli(['start', `--${flag}`, v, ...dd]), 'start', want, `start --${flag} ${v}`);
    }
    assert.equal(existsSync(join(d.dir, 'opts')), false);
  });

  it('the global flags are checked for every command, also those that do not use them (they were taken silently)', async () => {
    for (const c of COMMANDS) {
      assertRefused(await cli([c.name, '--log-level', 'loud']), c.name, /--log-level: must be one of error, warn, info, debug, trace\n/, `${c.name} --log-level loud`);
      assertRefused(await cli([c.name, '--threads=0x10']), c.name, /--threads: must be an integer in 1\.\.256\n/, `${c.name} --threads=0x10`);
    }
  });

  it('a flag left without its value says so', async () => {
    const dd = ['--data-dir', join(d.dir, 'novalue')];
    assertRefused(await cli(['wallet', 'history', ...dd, '--limit']), 'wallet', /--limit needs a value\n/, '--limit at the end');
    assertRefused(await cli(['wallet', 'history', '--limit', ...dd]), 'wallet', /--limit needs a value; the next argument starts with "-"/, '--limit --data-dir');
    assertRefused(await cli(['wallet', 'history', '--json=1', ...dd]), 'wallet', /--json takes no value\n/, '--json=1');
    // a negative number where no number is taken is an argument, named as one
    assertRefused(await cli(['logs', '-5', ...dd]), 'logs', /unexpected argument -5\n/, 'logs -5');
  });
});

describe('config set', () => {
  const d = tempDir('ns-args-config-');
  after(() => d.cleanup());

  it('names the key as typed, without "(from flag)", and writes nothing for a refused value', async () => {
    const dd = ['--data-dir', d.dir];
    const cases: [string, string, RegExp][] = [
      ['span', '5:2', /span: must satisfy 0 <= a < b <= 65536\n/],
      ['span', '-1:2', /span: must be auto, none or a:b/],
      ['memoryMb', '-5', /memoryMb: must be an integer in 1\.\.1073741824\n/],
      ['outerLr', '-0.5', /outerLr: must be a number in \[0, 10\]\n/],
      ['outerLr', 'NaN', /outerLr: must be a number in \[0, 10\]\n/],
      ['threads', '0x10', /threads: must be an integer in 1\.\.256\n/],
      ['threads', '', /threads: must be an integer in 1\.\.256\n/],
      ['trackers', '[x', /trackers: "\[x" starts as JSON but does not parse: /],
      ['spna', '1', /unknown option "spna" \(did you mean [^)]*"span"\?\); `neuroshard config list` lists them\n/],
    ];
    for (const [key, value, want] of cases) assertRefused(await cli(['config', 'set', key, value, ...dd]), 'config', want, `config set ${key} ${value}`);
    assert.equal(existsSync(join(d.dir, 'config.json')), false);
    const ok = await cli(['config', 'set', 'span', '2:5', ...dd]);
    assert.equal(ok.code, 0, ok.err);
    assert.deepEqual(JSON.parse(readFileSync(join(d.dir, 'config.json'), 'utf8')), { span: { start: 2, end: 5 } });
  });
});

describe('wallet amounts', () => {
  const d = tempDir('ns-args-wallet-');
  after(() => d.cleanup());
  const to = 'neuro1m4utyqp5ldwqf6xu4t2uhz9tgj4r0p0r247udz';
  const range = /\(a NEURO amount in 0\.000000000000000001\.\.79228162514\.264337593543950335, with at most 18 decimals\)\n/;

  it('a negative amount is read as the amount and refused as not positive; nothing is sent', async () => {
    const dd = ['--data-dir', d.dir, '--yes'];
    assert.equal((await cli(['wallet', 'create', '--data-dir', d.dir, '--json'])).code, 0);
    // a ledger with a balance: a send of a good amount goes to the outbox (checked last), so only the amount stops these
    const { key } = openKeystore(d.dir);
    const l = new Ledger({ path: ledgerPath(d.dir), networkId: NET, modelLayers: LAYERS });
    const now = Date.now();
    for (let i = 0; i < 3; i++) {
      const ts = now - (3 - i) * 60_000;
      l.ingest(buildProof(key, { networkId: NET, nonce: BigInt(i), timestampMs: ts }, { uptimeMs: 60_000, dataSamples: 60_000n, holderRecord: holderRecord(key, { start: 0, end: LAYERS }, ts) }).bytes);
    }
    l.close();

    const neg = await cli(['wallet', 'send', to, '-5', ...dd]);
    assertRefused(neg, 'wallet', new RegExp(`amount must be positive, not "-5" ${range.source}`), 'send -5');
    const json = await cli(['wallet', 'send', to, '-5', ...dd, '--json']);
    assert.equal(json.code, EXIT_USAGE);
    assert.equal((JSON.parse(json.out) as { error: { code: string } }).error.code, 'USAGE');
    const cases: [string, RegExp][] = [
      ['-0.5', /amount must be positive, not "-0\.5" /],
      ['-Infinity', /amount must be positive, not "-Infinity" /],
      ['-0', /amount must be positive, not "-0" /],
      ['0', /amount must be more than 0 /],
      ['NaN', /amount "NaN" is not a decimal number /],
      ['Infinity', /amount "Infinity" is not a decimal number /],
      ['1e309', /amount "1e309" is not a decimal number /],
      ['0x10', /amount "0x10" is not a decimal number /],
      ['', /amount "" is not a decimal number /],
      [' 5', /amount " 5" is not a decimal number /],
      ['1 000', /amount "1 000" is not a decimal number /],
      ['007', /amount "007" starts with a 0 /],
      ['1.0000000000000000001', /amount "1\.0000000000000000001" has 19 decimals, more than NEURO has /],
      ['9'.repeat(100), /amount is 100 characters long /],
    ];
    for (const sub of [['send', to], ['stake'], ['unstake']]) {
      const extra = sub[0] === 'stake' ? ['--lock-days', '30'] : [];
      for (const [v, want] of cases) {
        assertRefused(await cli(['wallet', ...sub, v, ...extra, ...dd]), 'wallet', new RegExp(want.source + range.source), `wallet ${sub[0]} ${JSON.stringify(v.slice(0, 12))}`);
      }
    }
    const big = await cli(['wallet', 'send', to, '99999999999', ...dd]);
    assertRefused(big, 'wallet', /amount 99999999999 is larger than the maximum, 79228162514\.264337593543950335\n/, 'too large');
    assert.equal(listOutbox(d.dir).length, 0, 'nothing refused reached the outbox');
    // the same command with a good amount is sent (queued: no node runs here), so the refusals above were the amount's
    const good = await cli(['wallet', 'send', to, '0.5', ...dd, '--json']);
    assert.equal(good.code, 0, good.err);
    assert.equal((JSON.parse(good.out) as { status: string }).status, 'queued');
    assert.equal(listOutbox(d.dir).length, 1);
  });

  it('a bad --limit is refused where there is no ledger yet (it printed [] there)', async () => {
    const e = tempDir('ns-args-noledger-');
    try {
      assert.equal((await cli(['wallet', 'create', '--data-dir', e.dir, '--json'])).code, 0);
      assertRefused(await cli(['wallet', 'history', '--limit', '0', '--data-dir', e.dir]), 'wallet', /--limit: must be an integer in 1\.\.10000, not "0"\n/, 'history --limit 0');
      const ok = await cli(['wallet', 'history', '--limit', '5', '--data-dir', e.dir, '--json']);
      assert.equal(ok.code, 0, ok.err);
      assert.deepEqual(JSON.parse(ok.out), []);
    } finally {
      e.cleanup();
    }
  });
});
