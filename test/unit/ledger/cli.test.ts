/**
 * `neuroshard wallet …` and `neuroshard ledger …`, run in-process through the CLI's main() (and `wallet import`
 * as a child process, since it reads standard input).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from '../../../src/cli/main.js';
import { accountIdFromPublicKey, keystorePath, openKeystore, parseAddress, writeNodeLock } from '../../../src/identity/index.js';
import { Ledger, ledgerPath } from '../../../src/ledger/ledger.js';
import { MemoryLedgerHub } from '../../../src/ledger/memory-network.js';
import { listOutbox } from '../../../src/ledger/outbox.js';
import { LedgerService } from '../../../src/ledger/service.js';
import { REPO_ROOT, tempDir } from '../../utils/paths.js';
import { holderRecord, LAYERS, NET } from './helpers.js';
import { buildGenesis, buildProof, buildTransfer } from '../../../src/ledger/build.js';
import { writeNetworkFile } from '../../../src/node/genesis-key.js';
import { rewardRules } from '../../../src/node/ledger.js';
import { toHex } from '../../../src/util/bytes.js';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string; json: () => Record<string, unknown> }> {
  let out = '';
  let err = '';
  const code = await main(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), signal: new AbortController().signal });
  return { code, out, err, json: () => JSON.parse(out) as Record<string, unknown> };
}

const fromSource = fileURLToPath(import.meta.url).endsWith('.ts');

/** Runs the real CLI in a child process with `stdin` as standard input. */
function cliProcess(args: string[], stdin: string): Promise<{ code: number; out: string; err: string }> {
  const argv = fromSource
    ? ['--import', 'tsx', '-e', "process.argv.splice(1, 0, 'neuroshard'); import('./src/cli/main.ts').then((m) => m.run())", ...args]
    : [join(REPO_ROOT, 'bin', 'neuroshard.js'), ...args];
  return new Promise((resolve) => {
    // The bound is for a hung child, not a speed check: a child that loads the whole CLI took over 60 s once at
    // load 25 on 2 cores (the test then failed on a healthy import). The runner's 10-minute file bound stays above it.
    const p = execFile(process.execPath, argv, { cwd: REPO_ROOT, timeout: 300_000 }, (e, stdout, stderr) => {
      resolve({ code: e === null ? 0 : ((e as { code?: number }).code ?? 1), out: stdout, err: stderr });
    });
    p.stdin!.end(stdin);
  });
}

/** A node's ledger on the data dir with `n` proofs for the wallet key (so it has a balance). */
function seedLedger(dataDir: string, proofs: number): void {
  const { key } = openKeystore(dataDir);
  const l = new Ledger({ path: ledgerPath(dataDir), networkId: NET, modelLayers: LAYERS });
  const now = Date.now();
  for (let i = 0; i < proofs; i++) {
    const ts = now - (proofs - i) * 60_000;
    l.ingest(buildProof(key, { networkId: NET, nonce: BigInt(i), timestampMs: ts }, { uptimeMs: 60_000, dataSamples: 60_000n, holderRecord: holderRecord(key, { start: 0, end: LAYERS }, ts) }).bytes);
  }
  l.close();
}

describe('neuroshard wallet', () => {
  it('creates once, shows, refuses to overwrite, exports after confirmation', async () => {
    const t = tempDir('neuroshard-cli-');
    try {
      const d = ['--data-dir', t.dir, '--json'];
      const c = await cli(['wallet', 'create', ...d]);
      assert.equal(c.code, 0, c.err);
      const created = c.json();
      assert.equal((created.mnemonic as string).split(' ').length, 24);
      assert.match(created.address as string, /^neuro1/);
      assert.equal(statSync(keystorePath(t.dir)).mode & 0o777, 0o600);
      const again = await cli(['wallet', 'create', ...d]);
      assert.equal(again.code, 1);
      assert.match(again.err, /KEYSTORE_EXISTS/);
      const show = await cli(['wallet', 'show', ...d]);
      assert.deepEqual(Object.keys(show.json()), ['address', 'peerId', 'publicKey']);
      assert.equal(show.json().address, created.address);
      assert.equal(show.json().peerId, created.peerId);
      // export: refuses without a terminal unless --yes
      assert.equal((await cli(['wallet', 'export', ...d])).code, 2);
      const ex = await cli(['wallet', 'export', '--yes', ...d]);
      assert.equal(ex.json().mnemonic, created.mnemonic);
      // --force replaces; a running node blocks it
      writeFileSync(join(t.dir, 'node.lock'), JSON.stringify({ pid: process.ppid, apiPort: 0, startedAt: '' }));
      const blocked = await cli(['wallet', 'create', '--force', ...d]);
      assert.match(blocked.err, /NODE_RUNNING/);
    } finally {
      t.cleanup();
    }
  });

  it('imports a mnemonic from standard input, never from an argument', async () => {
    const t = tempDir('neuroshard-cli-');
    try {
      const m = 'legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title';
      const r = await cliProcess(['wallet', 'import', '--data-dir', t.dir, '--json'], m + '\n');
      assert.equal(r.code, 0, r.err);
      assert.equal((JSON.parse(r.out) as { address: string }).address, 'neuro1m4utyqp5ldwqf6xu4t2uhz9tgj4r0p0r247udz');
      const bad = await cliProcess(['wallet', 'import', '--force', '--data-dir', t.dir], m.replace('title', 'zoo'));
      assert.equal(bad.code, 2);
      assert.equal((await cli(['wallet', 'import', m, '--data-dir', t.dir])).code, 2); // positional mnemonic refused
    } finally {
      t.cleanup();
    }
  });

  it('encrypts with --passphrase-file and needs it to export', async () => {
    const t = tempDir('neuroshard-cli-');
    try {
      const pf = join(t.dir, 'pass');
      writeFileSync(pf, 'hunter2 but longer\n');
      const dd = join(t.dir, 'node');
      const c = await cli(['wallet', 'create', '--passphrase-file', pf, '--data-dir', dd, '--json']);
      assert.equal(c.code, 0, c.err);
      assert.equal((await cli(['wallet', 'show', '--data-dir', dd])).code, 0); // public part needs no passphrase
      const locked = await cli(['wallet', 'export', '--yes', '--data-dir', dd, '--json']);
      assert.notEqual(locked.code, 0);
      assert.match(locked.err, /KEYSTORE_LOCKED/);
      writeFileSync(pf, 'wrong\n');
      assert.match((await cli(['wallet', 'export', '--yes', '--passphrase-file', pf, '--data-dir', dd])).err, /KEYSTORE_BAD_PASSPHRASE/);
    } finally {
      t.cleanup();
    }
  });

  it('reads balances and history, queues sends and stakes in the outbox with increasing nonces', async () => {
    const t = tempDir('neuroshard-cli-');
    try {
      const d = ['--data-dir', t.dir, '--json'];
      assert.equal((await cli(['wallet', 'create', ...d])).code, 0);
      const noLedger = await cli(['wallet', 'send', 'neuro1m4utyqp5ldwqf6xu4t2uhz9tgj4r0p0r247udz', '1', '--yes', ...d]);
      assert.match(noLedger.err, /LEDGER_MISSING/);
      seedLedger(t.dir, 3); // 3 × (0.0001 uptime + 0.6 data) × 1.5 = 2.70045
      const b = await cli(['wallet', 'balance', ...d]);
      assert.deepEqual(b.json(), { address: (await cli(['wallet', 'show', ...d])).json().address, balance: '2.70045', staked: '0', unminted: '0', unlocksAt: null });
      const other = await cli(['wallet', 'balance', 'neuro1m4utyqp5ldwqf6xu4t2uhz9tgj4r0p0r247udz', ...d]);
      assert.equal(other.json().balance, '0');

      const to = 'neuro1m4utyqp5ldwqf6xu4t2uhz9tgj4r0p0r247udz';
      assert.equal((await cli(['wallet', 'send', to, '0.5', ...d])).code, 2); // no terminal, no --yes
      assert.equal((await cli(['wallet', 'send', to.slice(0, -1) + 'q', '0.5', '--yes', ...d])).code, 2); // typo
      assert.equal((await cli(['wallet', 'send', to, '1e3', '--yes', ...d])).code, 2);
      assert.equal((await cli(['wallet', 'send', to, '0', '--yes', ...d])).code, 2);
      const s1 = await cli(['wallet', 'send', to, '0.5', '--yes', ...d]);
      assert.equal(s1.code, 0, s1.err);
      assert.deepEqual(s1.json(), { id: s1.json().id, nonce: '0', amount: '0.5', fee: '0.025', status: 'queued' });
      const s2 = await cli(['wallet', 'send', to, '0.1', '--yes', ...d]);
      assert.equal(s2.json().nonce, '1');
      assert.equal((await cli(['wallet', 'stake', '1', ...d])).code, 2); // --lock-days is required
      const st = await cli(['wallet', 'stake', '0.2', '--lock-days', '10', ...d]);
      assert.deepEqual([st.json().nonce, st.json().lockDays, st.json().status], ['0', 10, 'queued']);
      assert.equal(listOutbox(t.dir).length, 3);
      const h = await cli(['wallet', 'history', ...d]);
      assert.equal((h.json() as unknown as unknown[]).length, 3);
    } finally {
      t.cleanup();
    }
  });

  it('hands a send to the running node and reports its verdict', async () => {
    const t = tempDir('neuroshard-cli-');
    let service: LedgerService | undefined;
    let ledger: Ledger | undefined;
    let release: (() => void) | undefined;
    try {
      const d = ['--data-dir', t.dir, '--json'];
      await cli(['wallet', 'create', ...d]);
      seedLedger(t.dir, 2);
      const { key } = openKeystore(t.dir);
      ledger = new Ledger({ path: ledgerPath(t.dir), networkId: NET, modelLayers: LAYERS });
      service = new LedgerService({ ledger, network: new MemoryLedgerHub().join('me'), dataDir: t.dir, outboxPollMs: 20 });
      service.start();
      release = writeNodeLock(t.dir, { apiPort: 0 });
      const to = 'neuro1m4utyqp5ldwqf6xu4t2uhz9tgj4r0p0r247udz';
      const s = await cli(['wallet', 'send', to, '0.2', '--yes', ...d]);
      assert.equal(s.json().status, 'applied', s.out + s.err);
      assert.equal(ledger.account(parseAddress(to)).balance, 200_000_000_000_000_000n);
      const over = await cli(['wallet', 'send', to, '100', '--yes', ...d]);
      assert.equal(over.code, 1);
      // not kept (issue 11 attack 5): the nonce stays free, the wallet may send again once funded
      assert.deepEqual([over.json().status, over.json().reason], ['dropped', 'INSUFFICIENT_BALANCE']);
      assert.equal(ledger.account(accountIdFromPublicKey(key.publicKey)).balance > 0n, true);
    } finally {
      release?.();
      service?.stop();
      ledger?.close();
      t.cleanup();
    }
  });
});

describe('neuroshard ledger', () => {
  it('prints the status keys of the issue, verifies, and backs up a consistent copy', async () => {
    const t = tempDir('neuroshard-cli-');
    try {
      const d = ['--data-dir', t.dir, '--json'];
      assert.match((await cli(['ledger', 'status', ...d])).err, /LEDGER_MISSING/);
      await cli(['wallet', 'create', ...d]);
      seedLedger(t.dir, 4);
      const s = await cli(['ledger', 'status', ...d]);
      assert.equal(s.code, 0, s.err);
      assert.deepEqual(Object.keys(s.json()), ['stateHash', 'replayPending', 'events', 'minted', 'burned', 'staked', 'escrowed', 'finalizedSeq', 'finalizedHeight', 'finalizedHash', 'finalizedStateHash']);
      assert.equal(s.json().finalizedSeq, null, 'nothing final yet (issue 11 §3)');
      assert.deepEqual([s.json().events, s.json().minted, s.json().burned], [4, '3.6006', '0']);
      // seeded by a bare Ledger (pre-§2 self-claimed proof rewards), not under the rules a node runs, which --verify
      // replays with: the replay differs, and --verify says so with exit 1 (a founded network's ledger is consistent:
      // the next test)
      const v = await cli(['ledger', 'status', '--verify', ...d]);
      assert.deepEqual([v.code, v.json().consistent], [1, false]);
      const file = join(t.dir, 'backup.db');
      const b = await cli(['ledger', 'backup', file, ...d]);
      assert.equal(b.code, 0, b.err);
      assert.ok(existsSync(file));
      const copy = new Ledger({ path: file, networkId: NET, modelLayers: LAYERS, readonly: true });
      assert.equal(copy.stateHash(), s.json().stateHash);
      copy.close();
      assert.equal((await cli(['ledger', 'backup', file, ...d])).code, 2); // exists
      assert.equal((await cli(['ledger', 'nonsense', ...d])).code, 2);
    } finally {
      t.cleanup();
    }
  });

  it('--verify judges a founded network under its rules: the Genesis event and what spends it replay as the node applied them', async () => {
    // session 30's walkthrough: on a healthy founding node `ledger status --verify` said `consistent: false` (exit 1):
    // the CLI's replay ran without the genesis key, so the Genesis event and the transfer from it did not apply
    const t = tempDir('neuroshard-cli-');
    try {
      const d = ['--data-dir', t.dir, '--json'];
      await cli(['wallet', 'create', ...d]);
      const { key } = openKeystore(t.dir);
      const l = new Ledger({ path: ledgerPath(t.dir), networkId: NET, modelLayers: LAYERS, rewards: rewardRules({}, key.publicKey) });
      const now = Date.now();
      assert.equal(l.ingest(buildGenesis(key, { networkId: NET, timestampMs: now - 60_000 }).bytes).status, 'applied');
      const to = parseAddress('neuro1m4utyqp5ldwqf6xu4t2uhz9tgj4r0p0r247udz');
      assert.equal(l.ingest(buildTransfer(key, { networkId: NET, nonce: 0n, timestampMs: now - 30_000 }, to, 200n * 10n ** 18n).bytes).status, 'applied');
      l.close();
      writeNetworkFile(t.dir, { version: 1, genesisKey: toHex(key.publicKey), source: 'founder', genesisEmitted: true });
      const v = await cli(['ledger', 'status', '--verify', ...d]);
      assert.equal(v.code, 0, v.out);
      assert.deepEqual([v.json().events, v.json().minted, v.json().consistent], [2, '1000000', true]);
    } finally {
      t.cleanup();
    }
  });
});
