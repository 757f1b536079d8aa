#!/usr/bin/env node
// `npm run bench`: the engine's figures against PyTorch in one run, then one JSON line (the LAST line printed).
//
//   node scripts/bench.mjs [--quick] [--no-torch] [--only gemm,train,serving,...] [--torch-python PATH]
//
// Runs compiled code from dist/ (it builds first when dist/ is missing). Every section runs in a child process of
// its own (scripts/bench/run-section.mjs), so peak RSS is per engine and one section's crash cannot take the rest
// down. Protocol as the PyTorch anchor: 2 warm-up steps, then the median of 3 repetitions of 5 steps.
//
// Sections are pluggable: any compiled `dist/src/<area>/bench.js` or `dist/src/<area>/<sub>/bench.js` that exports
//   benchSections: [{ name, keys: ['json_key', …], run({ quick, log }) → Promise<{ json_key: value, … }> }]
// is discovered and run; a section may throw an error with code 'BENCH_SKIP' to skip with a reason. Keys that later
// issues promise (EXPECTED_KEYS) print null and a reason until a section provides them.
// --only takes section names or families (`serving` = every `serving-*` section, `p2p` = p2p-rpc, p2p-unary and p2p-dht).
// --quick: a smoke run with tiny sizes (same keys, figures meaningless); --no-torch: skip the anchor;
// --torch-python: the interpreter for the anchor (default /usr/bin/python3).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const flag = (n) => args.includes(n);
const opt = (n) => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = flag('--quick');
const only = opt('--only')?.split(',');
const python = opt('--torch-python') ?? '/usr/bin/python3';
const SECTION_TIMEOUT_MS = (quick ? 300 : 900) * 1000;

/** Keys issue 2 defines, in the order of the JSON line. */
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
/** Keys later issues add, and who provides them. */
const EXPECTED_KEYS = {
  tokenizer_mb_s: 'issue 3 (a tokenizer bench section)',
  nano_train_tok_s: 'issue 3 (a nano training bench section)',
  rpc_mib_s: 'issue 4 (a protocols bench section)',
  tcp_mib_s: 'issue 4 (a protocols bench section)',
  rpc_rtt_ms: 'issue 4 (a protocols bench section)',
  unary_call_ms_p50: 'issue 8 §5 (section p2p-unary: a reused stream)',
  unary_call_ms_p99: 'issue 8 §5 (section p2p-unary)',
  unary_call_cpu_us: 'issue 8 §5 (section p2p-unary)',
  unary_call_new_stream_ms_p50: 'issue 8 §5 (section p2p-unary: a new stream per call)',
  unary_call_new_stream_ms_p99: 'issue 8 §5 (section p2p-unary)',
  unary_call_new_stream_cpu_us: 'issue 8 §5 (section p2p-unary)',
  dht_lookup_ms_p50: 'issue 4 (a p2p bench section)',
  dht_lookup_ms_p99: 'issue 4 (a p2p bench section)',
  proof_verify_per_s: 'issue 5 (a ledger bench section)',
  ledger_events_per_s: 'issue 5 (a ledger bench section)',
  checkpoint_verify_ms: 'issue 11 §3 (ledger section)',
  snapshot_sync_s: 'issue 11 §3 (ledger section)',
};

const out = (line = '') => process.stdout.write(line + '\n');

function ensureBuilt() {
  if (existsSync(join(root, 'dist', 'src', 'compute', 'bench.js'))) return;
  out('bench: dist/ is missing; building (npm run build)…');
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (!existsSync(join(root, 'dist', 'src', 'compute', 'bench.js'))) {
    out(`bench: the build did not produce dist/src/compute/bench.js (tsc exit ${r.status})`);
    process.exit(1);
  }
}

/** dist/src/<area>/bench.js and dist/src/<area>/<sub>/bench.js, compute first. */
function findBenchModules() {
  const src = join(root, 'dist', 'src');
  const found = [];
  const visit = (dir, depth) => {
    for (const e of readdirSync(dir).sort()) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) {
        if (depth < 2) visit(p, depth + 1);
      } else if (e === 'bench.js' && depth >= 1) found.push(p);
    }
  };
  visit(src, 0);
  const core = join(src, 'compute', 'bench.js');
  return [core, ...found.filter((f) => f !== core)];
}

/** Runs a command, echoing its stdout lines with a prefix; resolves with the last line that parses as JSON. */
function runChild(cmd, cmdArgs, { env, prefix, timeoutMs }) {
  return new Promise((resolve) => {
    // a null value removes the variable (the anchor must not inherit this machine's forced OPENBLAS_CORETYPE)
    const childEnv = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env ?? {})) if (v === null) delete childEnv[k];
    const child = spawn(cmd, cmdArgs, { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let lastJson;
    let stderr = '';
    const onLine = (line) => {
      const t = line.trim();
      if (t.startsWith('{')) {
        try {
          lastJson = JSON.parse(t);
          return;
        } catch {
          /* a human line that happens to start with a brace */
        }
      }
      if (t !== '') out(`${prefix}${line}`);
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, json: undefined, stderr: String(e.message) });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (buf !== '') onLine(buf);
      resolve({ code: code ?? (signal === 'SIGKILL' ? 'timeout' : signal), json: lastJson, stderr });
    });
  });
}

async function runSections() {
  const results = {};
  const reasons = {};
  let failed = false;
  for (const modPath of findBenchModules()) {
    let sections;
    try {
      sections = (await import(pathToFileURL(modPath).href)).benchSections ?? [];
    } catch (e) {
      out(`bench: cannot load ${modPath}: ${e.message}`);
      continue;
    }
    for (const s of sections) {
      // `--only serving` runs every `serving-*` section (a section is named by its full name or its family)
      if (only !== undefined && !only.includes(s.name) && !only.includes(s.name.split('-')[0])) {
        for (const k of s.keys) reasons[k] ??= `${s.name} not run (--only)`;
        continue;
      }
      out(`\n== ${s.name}`);
      const t0 = Date.now();
      const r = await runChild(process.execPath, [join(root, 'scripts', 'bench', 'run-section.mjs'), modPath, s.name, ...(quick ? ['--quick'] : [])], {
        prefix: '  ',
        timeoutMs: SECTION_TIMEOUT_MS,
      });
      const j = r.json;
      if (j?.result !== undefined) {
        Object.assign(results, j.result);
        out(`   (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } else {
        const why = j?.skipped !== undefined ? `skipped: ${j.skipped}` : `failed (exit ${r.code}): ${j?.error ?? r.stderr.trim().split('\n').pop() ?? ''}`;
        if (j?.skipped === undefined) failed = true;
        out(`  ${s.name} ${why}`);
        for (const k of s.keys) reasons[k] = `${s.name} ${why}`;
      }
    }
  }
  return { results, reasons, failed };
}

async function runTorch() {
  if (flag('--no-torch')) return { skipped: '--no-torch' };
  if (only !== undefined && !only.includes('torch')) return { skipped: '--only without torch' };
  const probe = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
  if (probe.status !== 0) return { skipped: `${python} -c 'import torch' failed (PyTorch not installed)` };
  out('\n== torch (PyTorch anchor, OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=2)');
  const q = quick ? ['--steps', '1', '--reps', '1', '--decode-tokens', '8', '--gemm-min-s', '0.02', '--gemm-reps', '1'] : [];
  const r = await runChild(python, [join(root, 'scripts', 'bench', 'torch_anchor.py'), '--threads', '1', '--gemm', ...q], {
    // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset: OpenBLAS then picks its own kernel for this CPU (a forced Haswell
    // kernel runs about 2x slower here); the anchor prints the BLAS and kernel it used
    env: { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '2', OPENBLAS_CORETYPE: null, OPENBLAS_L2_SIZE: null },
    prefix: '  ',
    timeoutMs: SECTION_TIMEOUT_MS,
  });
  if (r.json === undefined) return { skipped: `the anchor printed no JSON (exit ${r.code}): ${r.stderr.trim().split('\n').pop() ?? ''}` };
  return { json: r.json };
}

const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const ratio = (a, b) => (num(a) !== null && num(b) !== null && b > 0 ? Math.round((a / b) * 1000) / 1000 : null);
const fmt = (x, d = 1) => (num(x) === null ? '—' : x.toFixed(d));

ensureBuilt();
out(`neuroshard bench${quick ? ' (quick smoke run: figures are not meaningful)' : ''}`);
const { results, reasons, failed } = await runSections();
const torch = await runTorch();
const t = torch.json ?? {};
if (torch.skipped !== undefined) out(`\ntorch anchor skipped: ${torch.skipped}`);

const line = {};
for (const k of CORE_KEYS) {
  line[k] = results[k] ?? null;
  if (results[k] === undefined && reasons[k] === undefined && !k.startsWith('torch_') && !k.endsWith('_ratio')) reasons[k] = 'no section provided it';
}
line.torch_gemm_gflops = t.gemm_gflops ?? null;
line.torch_blas = t.blas ?? null;
line.torch_train_tok_s = num(t.train_tok_s);
line.torch_decode_tok_s = num(t.decode_tok_s);
line.torch_peak_rss_mb = num(t.peak_rss_mb);
line.train_ratio = ratio(line.train_tok_s, line.torch_train_tok_s);
line.decode_ratio = ratio(line.decode_tok_s, line.torch_decode_tok_s);
for (const [k, who] of Object.entries(EXPECTED_KEYS)) {
  line[k] = results[k] ?? null;
  if (results[k] === undefined && reasons[k] === undefined) reasons[k] = `not provided yet: ${who}`;
}
for (const [k, v] of Object.entries(results)) if (!(k in line)) line[k] = v;

// ---- human summary: ours beside PyTorch's ----------------------------------------------------------------------
out('\n== summary (ours | PyTorch | ours/PyTorch)');
const g = line.gemm_gflops ?? {};
const tg = line.torch_gemm_gflops ?? {};
for (const shape of ['512x512x512', '1024x1024x1024', '2048x2048x2048', '64x768x3072']) {
  const o = g[shape] ?? {};
  out(
    `gemm ${shape.padEnd(15)} GFLOP/s: 1T ${fmt(o.t1).padStart(6)}  2T ${fmt(o.t2).padStart(6)} | torch ${fmt(tg[shape]).padStart(6)} | 2T ratio ${fmt(ratio(o.t2, tg[shape]), 2)}`,
  );
}
const tm = line.train_ms ?? {};
const ttm = t.train_ms ?? {};
out(`train tok/s            ${fmt(line.train_tok_s, 0).padStart(8)} | ${fmt(line.torch_train_tok_s, 0).padStart(8)} | ${fmt(line.train_ratio, 2)}`);
for (const p of ['forward', 'backward', 'optimizer']) out(`  ${p.padEnd(9)} ms/step     ${fmt(tm[p]).padStart(8)} | ${fmt(ttm[p]).padStart(8)} |`);
out(`decode tok/s           ${fmt(line.decode_tok_s).padStart(8)} | ${fmt(line.torch_decode_tok_s).padStart(8)} | ${fmt(line.decode_ratio, 2)}`);
out(`peak RSS MB            ${fmt(line.peak_rss_mb).padStart(8)} | ${fmt(line.torch_peak_rss_mb).padStart(8)} | ${fmt(ratio(line.peak_rss_mb, line.torch_peak_rss_mb), 2)}`);
out(`event-loop lag p99 ms  ${fmt(line.event_loop_lag_p99_ms, 2).padStart(8)} |          |`);
for (const [k, why] of Object.entries(reasons)) out(`null ${k}: ${why}`);
out(JSON.stringify(line));
process.exitCode = failed ? 1 : 0;
