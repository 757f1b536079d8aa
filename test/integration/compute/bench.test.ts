/**
 * `npm run bench -- --quick` end to end, so the harness cannot rot silently: the sections run in their child
 * processes, the last line is the JSON object with every key, PyTorch's figures are parsed and the ratios computed
 * (from a stand-in interpreter that prints what torch_anchor.py prints, so the test needs no torch), and a missing
 * torch gives nulls. No timing is asserted.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT, tempDir } from '../../utils/paths.js';

const BENCH = join(REPO_ROOT, 'scripts', 'bench.mjs');
const BUILT = existsSync(join(REPO_ROOT, 'dist', 'src', 'compute', 'bench.js'));

const CORE_KEYS = [
  'gemm_gflops',
  'train_tok_s',
  'train_ms',
  'decode_tok_s',
  'event_loop_lag_p99_ms',
  'peak_rss_mb',
  'torch_gemm_gflops',
  'torch_train_tok_s',
  'torch_decode_tok_s',
  'torch_peak_rss_mb',
  'train_ratio',
  'decode_ratio',
];
const LATER_KEYS = [
  'tokenizer_mb_s',
  'nano_train_tok_s',
  'rpc_mib_s',
  'tcp_mib_s',
  'rpc_rtt_ms',
  'dht_lookup_ms_p50',
  'dht_lookup_ms_p99',
  'proof_verify_per_s',
  'ledger_events_per_s',
];

const FAKE_TORCH_JSON = {
  engine: 'torch fake',
  threads: 1,
  params: 123,
  train_tok_s: 5000,
  decode_tok_s: 400.5,
  train_ms: { forward: 60, backward: 130, optimizer: 9 },
  gemm_gflops: { '512x512x512': 200, '1024x1024x1024': 190, '2048x2048x2048': 195, '64x768x3072': 150 },
  peak_rss_mb: 550,
};

function runBench(args: string[]): { status: number | null; lines: string[]; json: Record<string, unknown> } {
  const r = spawnSync(process.execPath, [BENCH, '--quick', ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 600_000 });
  const lines = r.stdout.trimEnd().split('\n');
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
  } catch {
    assert.fail(`the last line is not JSON:\n${r.stdout}\n${r.stderr}`);
  }
  return { status: r.status, lines, json };
}

describe('npm run bench -- --quick', { skip: BUILT ? false : 'dist/ not built (run npm run build; npm test builds it)' }, () => {
  const tmp = tempDir('neuroshard-bench-');
  after(() => tmp.cleanup());

  it('runs every section and ends with one JSON line holding every key, torch figures and ratios', () => {
    const fake = join(tmp.dir, 'fake-python');
    writeFileSync(
      fake,
      `#!/bin/sh\nif [ "$1" = "-c" ]; then exit 0; fi\necho "torch fake threads 1"\necho '${JSON.stringify(FAKE_TORCH_JSON)}'\n`,
    );
    chmodSync(fake, 0o755);
    // our sections and the anchor; teammates' sections have their own tests and would only slow this one down
    const { status, lines, json } = runBench(['--only', 'gemm,train,decode,torch', '--torch-python', fake]);
    assert.equal(status, 0, lines.join('\n'));
    for (const k of [...CORE_KEYS, ...LATER_KEYS]) assert.ok(k in json, `key ${k} missing`);
    assert.ok(lines.some((l) => l.startsWith('== summary')), 'human lines come before the JSON');

    assert.equal(typeof json.train_tok_s, 'number');
    assert.ok((json.train_tok_s as number) > 0);
    const ms = json.train_ms as Record<string, number>;
    for (const k of ['forward', 'backward', 'optimizer']) assert.equal(typeof ms[k], 'number', `train_ms.${k}`);
    assert.ok((json.decode_tok_s as number) > 0);
    assert.ok((json.event_loop_lag_p99_ms as number) >= 0);
    assert.ok((json.peak_rss_mb as number) > 0);

    const gemm = json.gemm_gflops as Record<string, { t1: number; t2: number }> | null;
    if (gemm === null) {
      assert.ok(lines.some((l) => l.startsWith('null gemm_gflops: gemm skipped')), 'a skipped GEMM section says why');
    } else {
      for (const s of ['512x512x512', '1024x1024x1024', '2048x2048x2048', '64x768x3072']) {
        assert.ok(gemm[s].t1 > 0 && gemm[s].t2 > 0, `gemm ${s}`);
      }
    }

    assert.equal(json.torch_train_tok_s, 5000);
    assert.equal(json.torch_decode_tok_s, 400.5);
    assert.equal(json.torch_peak_rss_mb, 550);
    assert.deepEqual(json.torch_gemm_gflops, FAKE_TORCH_JSON.gemm_gflops);
    assert.equal(json.train_ratio, Math.round(((json.train_tok_s as number) / 5000) * 1000) / 1000);
    assert.equal(json.decode_ratio, Math.round(((json.decode_tok_s as number) / 400.5) * 1000) / 1000);
    for (const k of LATER_KEYS) {
      if (json[k] === null) assert.ok(lines.some((l) => l.startsWith(`null ${k}:`)), `a null ${k} comes with a reason`);
    }
  });

  it('prints null PyTorch keys and ratios when torch is absent', () => {
    const { status, lines, json } = runBench(['--only', 'torch', '--torch-python', join(tmp.dir, 'no-such-python')]);
    assert.equal(status, 0, lines.join('\n'));
    for (const k of ['torch_gemm_gflops', 'torch_train_tok_s', 'torch_decode_tok_s', 'torch_peak_rss_mb', 'train_ratio', 'decode_ratio']) {
      assert.equal(json[k], null, k);
    }
    assert.ok(lines.some((l) => l.includes('torch anchor skipped')));
  });
});
