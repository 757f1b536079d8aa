#!/usr/bin/env node
// Chaos on real processes (issue 12 §2). Usage:
//   node scripts/chaos.mjs --nodes 6 --trainers 3 --minutes 30 --seed S [--json] [--netns auto|on|off] [--keep]
// Build first (npx tsc -p tsconfig.json): the reference checkpoint and the ledger checks import from dist/.
//
// What it runs: a tracker, N `neuroshard start` processes forming one serving network (node 0 founds it from a
// fixed checkpoint and holds the whole model; the others are joiners with memory for half of it, so the pool places
// them and routes have two hops), and a training group of T more `neuroshard start` processes that train together
// as `neuroshard start` runs them (docs/TRAINING.md): train0 founds its swarm from the bundled genesis model
// (`--genesis`, whole model, trains), train1.. join it through the pool with memory for half the model, so the
// halves form a pipeline chain ([0,h) drives, [h,L) is its hop) and every layer has two holders that close DiLoCo
// outer rounds (`--inner-steps`, short here) with each other.
// Why two groups (issue 12 §2, "generations identical to a single-node reference" beside "training rounds still
// advancing"): a holder that trains changes its weights at every inner step, and a route mixes hops at different
// steps, so a generation through training holders has no fixed reference to compare with. The serving nodes run
// `--no-train` on one frozen checkpoint (their answers are compared with it token for token); the trainers are their
// own swarm of the same model (same network id, but their own genesis key, ledger and bootstrap, no tracker, so the
// pool never routes a generation through them). Both groups are on the same links and under the same fault
// schedule: trainers are SIGKILLed and restarted, partitioned and cut like the serving nodes (a partition splits
// both groups; a link cut is between two nodes of one group). One trainer is never killed (its memory is measured).
// Every process runs in its own process group; as root, where `ip netns` works, each node (serving or training) runs
// in a network namespace of its own (a veth pair into one bridge, 10.A.B.i/24; the tracker on the bridge's .254), so
// that links can be cut (blackhole routes in both namespaces) and the network partitioned and healed. Without
// namespaces it falls back to 127.0.0.1, a "partition" freezes the minority side (SIGSTOP, SIGCONT on heal) and
// single-link cuts are skipped; the result JSON says which ("isolation").
//
// Before the faults, the operator's bootstrap under the node's default reward rules (issue 11 §2): node 0 (the
// genesis key) funds every joiner with `wallet send` and each bonds with `wallet stake 100` (the shared helper
// test/utils/ledger-bootstrap.ts, built to dist/test/), so every node holds NEURO to send and earns witnessed uptime.
// Meanwhile it sends a steady load: greedy POST /api/generate to random live nodes (tokens compared with
// `neuroshard generate --checkpoint` on the same checkpoint), `neuroshard wallet send` from random live nodes to
// others (each node's own key and ledger, through its API), and it reads every trainer's GET /api/training (inner
// step, last closed outer round, per-layer hashes) every 10 s.
// A seeded schedule (same seed, same schedule) SIGKILLs and restarts nodes and cuts/partitions/heals links; two
// seeded serving nodes and one trainer are never killed (the survivors whose memory is measured).
//
// At the end (after the last heal and restart, and a quiet period): every transfer some node answered "applied"
// must be stored and applied in every node's ledger; the nodes' ledger state hashes must become equal within a
// bound; after every node stopped, copies of their ledger files must converge once the events one holds and another
// lacks (in flight at the stop) are delivered through gossip's ingest path, with no event refused by one node that
// another applied (src/sim/ledger-converge.ts; the raw final hashes are reported); every generation must have
// completed with the reference tokens or failed with a typed error (HTTP status + {"error": {"code"}}); training must
// still advance after the last heal: every trainer closes an outer round later than the one it stood at when the
// faults ended, and takes inner steps past that point (the per-layer hashes of the holders at one closed round are compared and reported); no process may have exited unless killed
// by the schedule (and each must exit 0 on SIGTERM at the end); the survivors' RSS may grow by less than 10 %.
// The last stdout line is one JSON object; the exit code is 1 when an assertion fails, 2 on bad usage.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'neuroshard.js');
const T0 = Date.now();

// ───────────────────────────── arguments ─────────────────────────────
const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '6' },
    trainers: { type: 'string', default: '3' },
    'inner-steps': { type: 'string', default: '4' },
    minutes: { type: 'string', default: '30' },
    seed: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    netns: { type: 'string', default: 'auto' },
    keep: { type: 'boolean', default: false },
    'max-tokens': { type: 'string', default: '16' },
    'max-memory-growth': { type: 'string', default: '0.1' },
    'log-level': { type: 'string', default: 'info' },
  },
});
const num = (name, raw, lo, hi) => {
  const x = Number(raw);
  if (!Number.isFinite(x) || x < lo || x > hi) {
    process.stderr.write(`--${name}: must be a number in [${lo}, ${hi}]\n`);
    process.exit(2);
  }
  return x;
};
const N = Math.floor(num('nodes', values.nodes, 3, 16));
// the training group: train0 (genesis, whole model) and T-1 half-model joiners (a chain and a second replica)
const T = Math.floor(num('trainers', values.trainers, 1, 8));
const INNER_STEPS = Math.floor(num('inner-steps', values['inner-steps'], 1, 500));
const MINUTES = num('minutes', values.minutes, 0.5, 24 * 60);
const SEED = Math.floor(num('seed', values.seed, 0, 2 ** 32 - 1));
const MAX_TOKENS = Math.floor(num('max-tokens', values['max-tokens'], 1, 256));
// the survivors' RSS growth allowed over their steady state (src/sim/memory-growth.ts; 10 % over a 30-minute run)
const MAX_MEMORY_GROWTH = num('max-memory-growth', values['max-memory-growth'], 0, 10);
if (!['auto', 'on', 'off'].includes(values.netns)) {
  process.stderr.write('--netns: auto, on or off\n');
  process.exit(2);
}
const say = (s) => process.stderr.write(`[chaos ${((Date.now() - T0) / 1000).toFixed(0).padStart(5)} s] ${s}\n`);

// Bounds (generous: the machine may be loaded).
const START_MS = 600_000; // one node process up (start line)
const SPAN_MS = 600_000; // every node holding layers and answering a generation
const CONVERGE_MS = 300_000; // ledger state hashes equal after the last heal
const TRAIN_ADVANCE_MS = 300_000; // every trainer closes an outer round after the last heal
const GEN_TIMEOUT_MS = 180_000; // one generation request, answer or typed error
const STOP_MS = 90_000; // a node exits after SIGTERM
const WARMUP_MS = 60_000; // the generation load runs at least this long before the fault phase (the memory check's steady state)
const RSS_SAMPLE_MS = 1000; // RSS sampling period: window medians over ~25-35 samples see through GC and round-boundary swings
const PROMPTS = ['The county grand jury said', 'It is a matter of record that', 'The president told reporters'];
const AMOUNT = '0.000001';
// faster liveness than the defaults (5 s / 15 s / 60 s) so that a 2-minute run sees deaths and returns
const NODE_ENV = { NEUROSHARD_HEARTBEAT_INTERVAL_MS: '2000', NEUROSHARD_PEER_STALE_MS: '8000', NEUROSHARD_PEER_DEAD_MS: '20000', NEUROSHARD_LOG_LEVEL: values['log-level'] };

// ───────────────────────────── seeded randomness ─────────────────────────────
function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const scheduleRng = mulberry32(SEED);
const loadRng = mulberry32(SEED ^ 0x5eed5eed);
const pick = (rng, xs) => xs[Math.floor(rng() * xs.length)];

/**
 * The fault schedule, a pure function of (seed, nodes, minutes): actions at offsets (ms) from the start of the chaos
 * phase. One fault at a time: a kill (restart after `downMs`), a partition into two sides, or (with namespaces) a
 * cut of single links, each healed after its duration; then the next one after a pause. Nothing after 85 % of the
 * phase, so the end sees a healed network. Two nodes are never killed.
 */
function makeSchedule(rng, n, nTrain, minutes) {
  const phaseMs = minutes * 60_000;
  const serving = [...Array(n).keys()];
  const training = [...Array(nTrain).keys()].map((j) => n + j); // slots n.. are the trainers
  const ids = [...serving, ...training];
  const survivors = [];
  while (survivors.length < 2) {
    const c = pick(rng, serving);
    if (!survivors.includes(c)) survivors.push(c);
  }
  survivors.push(pick(rng, training));
  const killable = ids.filter((i) => !survivors.includes(i));
  const groupOf = (i) => (i < n ? serving : training);
  const out = [];
  // a fault every 15-45 s (scaled down for short runs so a 2-minute run still sees each kind)
  const scale = Math.min(1, phaseMs / 600_000);
  let t = 10_000 * scale + rng() * 5000;
  const end = phaseMs * 0.85;
  let k = 0;
  while (t < end) {
    const kinds = ['kill', 'partition', 'cut'];
    // the first three faults are one of each kind, then random
    const kind = k < 3 ? kinds[(SEED + k) % 3] : pick(rng, kinds);
    const dur = Math.round((8_000 + rng() * 22_000) * Math.max(scale, 0.5));
    if (t + dur > end) break;
    if (kind === 'kill') {
      out.push({ at: Math.round(t), kind, node: pick(rng, killable), downMs: dur });
    } else if (kind === 'partition') {
      const shuffled = [...ids].sort(() => rng() - 0.5);
      const minority = shuffled.slice(0, 1 + Math.floor(rng() * Math.floor(ids.length / 2)));
      out.push({ at: Math.round(t), kind, side: minority.sort((a, b) => a - b), durMs: dur });
    } else {
      // a link inside one group (the groups do not talk to each other)
      const a = pick(rng, ids.filter((x) => groupOf(x).length > 1));
      const b = pick(rng, groupOf(a).filter((x) => x !== a));
      out.push({ at: Math.round(t), kind, link: [Math.min(a, b), Math.max(a, b)], durMs: dur });
    }
    t += dur + (15_000 + rng() * 30_000) * scale;
    k++;
  }
  return { survivors: survivors.sort((a, b) => a - b), actions: out };
}

// ───────────────────────────── network isolation ─────────────────────────────
function sh(cmd, args, { check = true } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (check && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
  return r;
}

function netnsWorks() {
  if (process.getuid?.() !== 0) return 'not root';
  const probe = `nscprobe${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `ip netns add failed: ${(r.stderr || String(r.error)).trim()}`;
  sh('ip', ['netns', 'del', probe], { check: false });
  const v = spawnSync('ip', ['link', 'add', `nscp${process.pid % 100000}a`, 'type', 'veth', 'peer', 'name', `nscp${process.pid % 100000}b`], { encoding: 'utf8' });
  if (v.status !== 0) return `veth failed: ${v.stderr.trim()}`;
  sh('ip', ['link', 'del', `nscp${process.pid % 100000}a`], { check: false });
  return true;
}

/** Namespaces, a bridge and veth pairs; cuts are blackhole routes inside both namespaces of a link. */
class NetnsNet {
  constructor(n) {
    this.mode = 'netns';
    this.tag = String(process.pid % 100000);
    const a = 100 + (Math.floor(process.pid / 256) % 100);
    const b = process.pid % 256;
    this.prefix = `10.${a}.${b}`;
    this.bridge = `nscbr${this.tag}`;
    this.hostIp = `${this.prefix}.254`;
    this.n = n;
    this.cuts = new Set(); // "i-j" with i < j
  }
  ns(i) {
    return `nsc-${this.tag}-${i}`;
  }
  ip(i) {
    return `${this.prefix}.${i + 1}`;
  }
  setup() {
    sh('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    sh('ip', ['addr', 'add', `${this.hostIp}/24`, 'dev', this.bridge]);
    sh('ip', ['link', 'set', this.bridge, 'up']);
    for (let i = 0; i < this.n; i++) {
      const ns = this.ns(i);
      const host = `nsc${this.tag}h${i}`;
      const peer = `nsc${this.tag}p${i}`;
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
      sh('ip', ['link', 'set', peer, 'netns', ns]);
      sh('ip', ['link', 'set', host, 'master', this.bridge]);
      sh('ip', ['link', 'set', host, 'up']);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
      sh('ip', ['-n', ns, 'addr', 'add', `${this.ip(i)}/24`, 'dev', 'eth0']);
      sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
  }
  teardown() {
    for (let i = 0; i < this.n; i++) {
      sh('ip', ['netns', 'del', this.ns(i)], { check: false });
      sh('ip', ['link', 'del', `nsc${this.tag}h${i}`], { check: false });
    }
    sh('ip', ['link', 'del', this.bridge], { check: false });
  }
  /** argv prefix that runs a command inside node i's namespace. */
  wrap(i, argv) {
    return ['ip', ['netns', 'exec', this.ns(i), ...argv]];
  }
  /**
   * Cuts the links i-j of `pairs` (blackhole routes in both namespaces), one `ip -batch` per namespace, all at once
   * and without blocking the harness (a synchronous `ip` per route took tens of seconds on a loaded machine).
   */
  async cut(pairs) {
    const byNs = new Map();
    for (const [i, j] of pairs) {
      const key = `${Math.min(i, j)}-${Math.max(i, j)}`;
      if (this.cuts.has(key)) continue;
      this.cuts.add(key);
      for (const [a, b] of [[i, j], [j, i]]) byNs.set(a, [...(byNs.get(a) ?? []), `route add blackhole ${this.ip(b)}/32`]);
    }
    await Promise.all([...byNs].map(([a, cmds]) => ipBatch(this.ns(a), cmds)));
  }
  async healAll() {
    const byNs = new Map();
    for (const key of this.cuts) {
      const [i, j] = key.split('-').map(Number);
      for (const [a, b] of [[i, j], [j, i]]) byNs.set(a, [...(byNs.get(a) ?? []), `route del blackhole ${this.ip(b)}/32`]);
    }
    this.cuts.clear();
    await Promise.all([...byNs].map(([a, cmds]) => ipBatch(this.ns(a), cmds)));
  }
}

function ipBatch(ns, cmds) {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['-n', ns, '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ip -n ${ns} -batch: ${err.trim()}`))));
    child.stdin.end(cmds.join('\n') + '\n');
  });
}

/** 127.0.0.1 only: no link cuts; a partition freezes the minority side's processes. */
class LoopbackNet {
  constructor(reason) {
    this.mode = 'loopback';
    this.reason = reason;
    this.hostIp = '127.0.0.1';
  }
  setup() {}
  teardown() {}
  wrap(_i, argv) {
    return [argv[0], argv.slice(1)];
  }
}

/** Removes namespaces and bridges left by chaos runs whose process is gone (a run killed before its cleanup). */
function removeStale() {
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  const myTag = String(process.pid % 100000);
  const tags = new Set();
  for (const line of list.split('\n')) {
    const m = /^nsc-(\d+)-\d+/.exec(line);
    if (m !== null && m[1] !== myTag) tags.add(m[1]);
  }
  // a tag is pid % 100000: only clean up when no live process has that tag's pid (ids are below 100000 here)
  for (const tag of tags) {
    if (alive(Number(tag))) continue;
    for (const line of list.split('\n')) if (line.startsWith(`nsc-${tag}-`)) sh('ip', ['netns', 'del', line.split(' ')[0]], { check: false });
    sh('ip', ['link', 'del', `nscbr${tag}`], { check: false });
  }
}

// ───────────────────────────── processes ─────────────────────────────
const runDir = mkdtempSync(join(tmpdir(), 'ns-chaos-'));
const logsDir = join(runDir, 'logs');
mkdirSync(logsDir, { recursive: true });
let net_;
const procs = new Map(); // name -> Proc (the current incarnation)
const crashes = [];
const crashMarkers = [];
const CRASH_RE = /uncaught|unhandled rejection|unhandledRejection|FATAL ERROR|Segmentation fault|Aborted \(core|heap out of memory|\bpanic\b/i;

/**
 * One process in its own group; its stdout + stderr go to <run>/logs/<name>.log (appended across restarts) and a
 * tail is kept. `expectExit` is set before the harness kills or stops it: any other exit is a crash.
 */
function launch(name, cmd, args, env = {}) {
  const log = createWriteStream(join(logsDir, `${name}.log`), { flags: 'a' });
  log.write(`\n===== ${new Date().toISOString()} ${cmd} ${args.join(' ')}\n`);
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { name, child, text: '', expectExit: false, exitCode: undefined, signal: undefined, waiters: [] };
  const onData = (d) => {
    const s = d.toString();
    log.write(s);
    p.text = (p.text + s).slice(-200_000);
    for (const line of s.split('\n')) if (CRASH_RE.test(line)) crashMarkers.push({ name, line: line.slice(0, 400) });
    for (const w of [...p.waiters]) {
      const m = p.text.match(w.re);
      if (m !== null) {
        p.waiters.splice(p.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  p.exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      p.exitCode = code;
      p.signal = signal;
      log.end();
      if (!p.expectExit) crashes.push({ name, code, signal, tail: p.text.slice(-1500) });
      for (const w of p.waiters) w.reject(new Error(`${name} exited (${code ?? signal}) before ${w.re}; tail:\n${p.text.slice(-1500)}`));
      resolve(code);
    }),
  );
  p.waitLine = (re, ms) =>
    new Promise((resolve, reject) => {
      const m = p.text.match(re);
      if (m !== null) return resolve(m);
      if (p.exitCode !== undefined || p.signal !== undefined) return reject(new Error(`${name} is not running`));
      const timer = setTimeout(() => reject(new Error(`${name}: no line matching ${re} within ${ms} ms; tail:\n${p.text.slice(-1500)}`)), ms);
      p.waiters.push({ re, resolve: (x) => (clearTimeout(timer), resolve(x)), reject: (e) => (clearTimeout(timer), reject(e)) });
    });
  p.signalGroup = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      /* already gone */
    }
  };
  procs.set(name, p);
  return p;
}

// ── memory breakdown (scale helper, issue 12 §2) ──
/**
 * One sample of where a node's memory is, in MiB: the C heap's main arena (`[heap]` in smaps), all anonymous
 * memory (JS heaps of every isolate, other malloc arenas, thread stacks), file-backed pages, and from the node
 * itself (dashboard feed) its main isolate's JS heap (used / committed) and V8's external memory.
 */
async function memBreakdown(n, since) {
  const mib = (kb) => Math.round(kb / 102.4) / 10;
  const out = { t_min: Math.round((Date.now() - since) / 6000) / 10 };
  try {
    const smaps = readFileSync(`/proc/${n.proc.child.pid}/smaps`, 'utf8').split('\n');
    let cur = '';
    let heap = 0;
    let anon = 0;
    let file = 0;
    const anonMaps = []; // Rss (kB) of each anonymous mapping: malloc arenas vs. single large mmaps
    for (const line of smaps) {
      const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
      if (head !== null) {
        cur = head[1];
        continue;
      }
      const m = /^Rss:\s+(\d+) kB/.exec(line);
      if (m === null) continue;
      const kb = Number(m[1]);
      if (cur === '[heap]') heap += kb;
      else if (cur === '' || cur.startsWith('[anon')) {
        anon += kb;
        if (kb > 0) anonMaps.push(kb);
      } else file += kb;
    }
    anonMaps.sort((a, b) => b - a);
    Object.assign(out, { c_heap: mib(heap), anon: mib(anon), file: mib(file), anon_maps: anonMaps.length, anon_top_mb: anonMaps.slice(0, 6).map(mib) });
  } catch {
    /* gone */
  }
  try {
    const mem = (await snapshot(n, 10_000)).node?.memory ?? {};
    const b = (x) => (typeof x === 'number' ? Math.round(x / 104857.6) / 10 : null);
    Object.assign(out, { js_used: b(mem.heapUsedBytes), js_total: b(mem.heapTotalBytes), external: b(mem.externalBytes) });
    // the compute worker thread's own isolate (its report every 10 s): issue 12's second cause was outside the main one
    const w = mem.worker;
    if (w !== undefined) Object.assign(out, { w_js_used: b(w.heapUsedBytes), w_js_total: b(w.heapTotalBytes), w_external: b(w.externalBytes), w_array_buffers: b(w.arrayBuffersBytes) });
  } catch {
    /* unreachable now (a cut) */
  }
  return out;
}

function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

// ───────────────────────────── HTTP to a node's local API ─────────────────────────────
/**
 * A request to a node's /api routes. With namespaces the harness reaches them through a TCP forwarder inside the
 * node's namespace (the API answers the loopback only); the Host header names the loopback as the API requires.
 */
function api(node, method, path, body, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        host: node.apiHost,
        port: node.apiPort,
        method,
        path,
        headers: { host: `127.0.0.1:${node.innerApiPort}`, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, json, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

/** The first `snapshot` event of GET /api/events (the dashboard feed): the training view lives there. */
function snapshot(node, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: node.apiHost, port: node.apiPort, path: '/api/events', headers: { host: `127.0.0.1:${node.innerApiPort}` }, timeout: timeoutMs }, (res) => {
      let buf = '';
      res.on('data', (c) => {
        buf += c.toString();
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (data !== undefined && /^event: snapshot/m.test(block)) {
            req.destroy();
            try {
              return resolve(JSON.parse(data.slice(6)));
            } catch (e) {
              return reject(e);
            }
          }
        }
      });
      res.on('error', () => {});
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// ───────────────────────────── the run ─────────────────────────────
const result = {
  seed: SEED,
  nodes: N,
  minutes: MINUTES,
  isolation: null,
  faults: { kills: 0, restarts: 0, partitions: 0, link_cuts: 0, freezes: 0, schedule: 0 },
  generate: { sent: 0, completed_identical: 0, mismatched: 0, typed_errors: 0, untyped_errors: 0, error_codes: {} },
  ledger: { bootstrap_s: null, bonded: 0, transfers_sent: 0, acknowledged: 0, not_applied: {}, acked_missing: 0, converge_s: null, state_hashes_equal: false, final_state_hashes_equal: null, final_events_missing: null, converged_state_hashes_equal: null },
  training: {
    mode: 'a training group of its own nodes (genesis + half-model joiners: a pipeline chain and DiLoCo between replicas) on the same links and fault schedule; the serving nodes run --no-train on one frozen checkpoint',
    trainers: T,
    inner_steps: INNER_STEPS,
    step_at_chaos_start: null,
    step_at_end: null,
    rounds_at_heal: null,
    rounds_at_end: null, // when every trainer had closed a round after the heal
    advancing: false,
    advance_s: null,
    layer_hashes_equal: null,
    layer_hash_pairs: 0,
    agreed_round: null,
    trainer_kills: 0,
    per_trainer: [],
  },
  crashes: 0,
  memory: { baseline: 'median RSS over [from, from + 20 %) of the fault phase vs median over [from + 50 %, from + 80 %], from = 20 % of the phase, or for a trainer the first poll with KEPT_ROUNDS closed rounds kept if later, a trainer measured as RSS minus its kept closed rounds, lowest sample against lowest (src/sim/memory-growth.ts); RSS every 1 s after a 60 s generation warm-up; max_growth over every survivor, the trainers included', survivors: [], max_growth: null },
  wall_s: 0,
  ok: false,
  failures: [],
};
const fail = (s) => result.failures.push(s);

const netState = netnsWorks();
if (values.netns === 'on' && netState !== true) {
  process.stderr.write(`--netns on: namespaces do not work here (${netState})\n`);
  process.exit(2);
}
net_ = values.netns !== 'off' && netState === true ? new NetnsNet(N + T) : new LoopbackNet(values.netns === 'off' ? '--netns off' : netState);
result.isolation =
  net_.mode === 'netns'
    ? { mode: 'netns', partitions: 'blackhole routes between namespaces', link_cuts: true }
    : { mode: 'loopback', partitions: 'SIGSTOP of the minority side, SIGCONT on heal', link_cuts: false, why: net_.reason };

let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const p of procs.values()) {
    p.expectExit = true;
    p.signalGroup('SIGCONT');
    p.signalGroup('SIGKILL');
  }
  for (const f of forwarders) f.signalGroup('SIGKILL');
  if (net_ !== undefined) net_.teardown();
  if (!values.keep) rmSync(runDir, { recursive: true, force: true });
}
const forwarders = [];
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    void cleanup().then(() => process.exit(130));
  });
}

/** One network node: identity of the slot (data dir, addresses), the running incarnation, and what it has done. */
const nodes = [];
/** The training group: slots N.. (namespaces N..), train0 its genesis node. */
const trainers = [];
let trainBoot;
const slots = () => [...nodes, ...trainers];
const slot = (i) => (i < N ? nodes[i] : trainers[i - N]);
let trackerUrl = '';
let bootAddr;
let ckDir = '';
let halfMb = 0;

function nodeArgs(i) {
  const n = nodes[i];
  const listen = net_.mode === 'netns' ? `/ip4/${net_.ip(i)}/tcp/9000` : '/ip4/127.0.0.1/tcp/0';
  const apiPort = net_.mode === 'netns' ? '8000' : '0';
  const args = ['start', '--data-dir', n.dir, '--no-mdns', '--no-upnp', '--listen', listen, '--api-port', apiPort, '--tracker', trackerUrl, '--threads', '1', '--no-train', '--hop-timeout-ms', '3000'];
  if (i === 0) args.push('--genesis', '--checkpoint', ckDir);
  else args.push('--memory-mb', String(halfMb), ...(bootAddr === undefined ? [] : ['--bootstrap', bootAddr]));
  return args;
}

/**
 * A trainer's flags: training on (the default), short outer rounds, stage and outer-sync deadlines that a killed or
 * cut peer cannot stall for minutes, no tracker (its own swarm: see the header), bootstrap to train0.
 */
function trainArgs(j) {
  const n = trainers[j];
  const listen = net_.mode === 'netns' ? `/ip4/${net_.ip(n.i)}/tcp/9000` : `/ip4/127.0.0.1/tcp/${n.port ?? 0}`;
  const apiPort = net_.mode === 'netns' ? '8000' : '0';
  const args = ['start', '--data-dir', n.dir, '--no-mdns', '--no-upnp', '--listen', listen, '--api-port', apiPort, '--threads', '1', '--inner-steps', String(INNER_STEPS), '--outer-sync-timeout-ms', '30000', '--stage-timeout-ms', '20000', '--eval-every', '0', '--checkpoint-every', '10', '--hop-timeout-ms', '3000'];
  if (j === 0) args.push('--genesis');
  else args.push('--memory-mb', String(halfMb), ...(trainBoot === undefined ? [] : ['--bootstrap', trainBoot]));
  return args;
}

/** Starts slot i: a serving node (i < N) or a trainer (i >= N). */
async function startNode(i) {
  const n = i < N ? nodes[i] : trainers[i - N];
  const [cmd, args] = net_.wrap(i, [process.execPath, BIN, ...(i < N ? nodeArgs(i) : trainArgs(i - N))]);
  const p = launch(n.name, cmd, args, NODE_ENV);
  n.proc = p;
  n.up = false;
  const m = await p.waitLine(/node (\S+) up; dashboard at http:\/\/127\.0\.0\.1:(\d+)\//, START_MS);
  n.peerId = m[1];
  n.innerApiPort = Number(m[2]);
  if (net_.mode === 'netns') {
    n.apiHost = net_.ip(i);
    n.apiPort = 8080;
  } else {
    n.apiHost = '127.0.0.1';
    n.apiPort = n.innerApiPort;
  }
  n.up = true;
  n.frozen = false;
  return n;
}

function startForwarder(i) {
  // a TCP forwarder inside the namespace: <ns ip>:8080 → 127.0.0.1:8000 (the node's API answers the loopback only)
  const code = `const net=require('net');net.createServer((c)=>{const u=net.connect(8000,'127.0.0.1');c.pipe(u);u.pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy());c.on('close',()=>u.destroy());u.on('close',()=>c.destroy());}).listen(8080,'${net_.ip(i)}',()=>console.log('forwarding'));`;
  const [cmd, args] = net_.wrap(i, [process.execPath, '-e', code]);
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const f = {
    child,
    signalGroup: (sig) => {
      try {
        process.kill(-child.pid, sig);
      } catch {
        /* gone */
      }
    },
  };
  forwarders.push(f);
  return new Promise((resolve, reject) => {
    child.stdout.on('data', () => resolve());
    child.on('exit', (c) => reject(new Error(`forwarder ${i} exited ${c}`)));
  });
}

async function killNode(n) {
  n.up = false;
  n.proc.expectExit = true;
  n.proc.signalGroup('SIGCONT');
  n.proc.signalGroup('SIGKILL');
  await n.proc.exited;
}

function cli(i, args, timeoutMs = 120_000) {
  // a CLI command on node i's data dir, inside its namespace (it reaches the node's API at 127.0.0.1)
  return new Promise((resolve) => {
    const [cmd, argv] = i === undefined ? [process.execPath, [BIN, ...args]] : net_.wrap(i, [process.execPath, BIN, ...args]);
    const child = spawn(cmd, argv, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      let json;
      try {
        json = JSON.parse(out);
      } catch {
        try {
          json = JSON.parse(out.trim().split('\n').at(-1) ?? '');
        } catch {
          json = undefined;
        }
      }
      resolve({ code, json, out, err });
    });
  });
}

async function waitUntil(cond, ms, what, everyMs = 2000) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      if (await cond()) return;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port that is free now on the loopback (for a listen address that must stay the same across restarts). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** GET /api/training of a trainer: inner step, last closed outer round, per-layer hashes (undefined when down). */
async function trainingOf(n, timeoutMs = 10_000) {
  const r = await api(n, 'GET', '/api/training', undefined, timeoutMs);
  if (r.status !== 200 || r.json === undefined) throw new Error(`${n.name}: GET /api/training ${r.status}`);
  return { step: r.json.innerStep, round: r.json.outerSync?.lastRound?.round ?? null, current: r.json.round, hashes: r.json.layerHashes ?? {}, loss: r.json.trainLoss, keptBytes: r.json.outerSync?.kept?.bytes };
}

let exitCode = 1;
try {
  const dist = (p) => import(join(ROOT, 'dist', 'src', p));
  const { ComputeClient } = await dist('compute/index.js');
  const { bundledGenesis } = await dist('node/genesis.js');
  const { extraWeightBytes, layerMb } = await dist('pool/index.js');
  const { openLedgerReadOnly } = await dist('cli/wallet/common.js');
  const { fromHex } = await dist('util/bytes.js');
  const { growthWindows, memoryGrowth } = await dist('sim/memory-growth.js');
  const { KEPT_ROUNDS } = await dist('params/index.js');
  const { readKeystorePublic } = await dist('identity/index.js');
  const { convergeLedgers, copyLedgerFiles } = await dist('sim/ledger-converge.js');
  const { rewardRules } = await dist('node/ledger.js');
  const { readNetworkFile } = await dist('node/genesis-key.js');
  const { ledgerMeta } = await dist('cli/wallet/common.js');

  if (net_.mode === 'netns') removeStale();
  net_.setup();
  say(`isolation: ${JSON.stringify(result.isolation)}; run dir ${runDir}`);
  const schedule = makeSchedule(scheduleRng, N, T, MINUTES);
  result.faults.schedule = schedule.actions.length;
  result.survivors = schedule.survivors;
  say(`schedule: ${schedule.actions.length} faults; never killed: ${schedule.survivors.join(', ')}`);

  // 1. the fixed checkpoint (the seeded genesis model) and the single-node reference for each prompt
  const genesis = bundledGenesis();
  const L = genesis.config.num_hidden_layers;
  halfMb = Math.ceil(extraWeightBytes(genesis.config) / (1 << 20)) + Math.ceil(L / 2) * layerMb(genesis.config) + 1;
  const compute = await ComputeClient.start({ threads: 1 });
  try {
    await compute.run({ type: 'initModel', config: genesis.config, seed: 0 });
    ckDir = (await compute.run({ type: 'saveCheckpoint', root: join(runDir, 'ck'), step: 0, tokenizerPath: genesis.tokenizerPath })).dir;
  } finally {
    await compute.close();
  }
  const reference = new Map();
  for (const prompt of PROMPTS) {
    const r = await cli(undefined, ['generate', '--checkpoint', ckDir, '--prompt', prompt, '--temperature', '0', '--max-tokens', String(MAX_TOKENS), '--json', '--threads', '1'], 300_000);
    if (r.code !== 0 || !Array.isArray(r.json?.tokens)) throw new Error(`reference generate failed (${r.code}): ${r.err.slice(-1000)}`);
    reference.set(prompt, r.json.tokens);
  }
  say(`reference tokens for ${PROMPTS.length} prompts (${MAX_TOKENS} tokens each, ${L} layers, joiners get ${halfMb} MiB)`);

  // 2. tracker, forwarders, genesis node, joiners, the training group
  const tracker = launch('tracker', process.execPath, [BIN, 'tracker', '--port', '0', '--host', net_.hostIp, '--data-dir', join(runDir, 'tracker')]);
  trackerUrl = JSON.parse((await tracker.waitLine(/\{"listening".*\}/, START_MS))[0]).listening.url;
  for (let i = 0; i < N; i++) nodes.push({ i, name: `node${i}`, dir: join(runDir, `node${i}`), up: false, kills: 0, rss: [] });
  for (let j = 0; j < T; j++) trainers.push({ i: N + j, name: `train${j}`, dir: join(runDir, `train${j}`), up: false, kills: 0, rss: [], trains: true });
  if (net_.mode === 'netns') await Promise.all([...nodes, ...trainers].map((n) => startForwarder(n.i)));
  // train0's address must outlive its restarts (the joiners bootstrap from it): a fixed port on the loopback
  if (net_.mode !== 'netns') trainers[0].port = await freePort();
  await startNode(0);
  if (net_.mode === 'netns') bootAddr = `/ip4/${net_.ip(0)}/tcp/9000/p2p/${nodes[0].peerId}`;
  else {
    const st = await api(nodes[0], 'GET', '/api/status');
    const a = st.json.addresses.find((x) => x.includes('/tcp/') && !x.includes('/ws'));
    bootAddr = a.includes('/p2p/') ? a : `${a}/p2p/${nodes[0].peerId}`;
  }
  say(`genesis node up (${nodes[0].peerId}); starting ${N - 1} joiners and train0`);
  const train0 = trainers[0];
  await Promise.all([...nodes.slice(1).map((n) => startNode(n.i)), startNode(train0.i)]);
  trainBoot = `/ip4/${net_.mode === 'netns' ? net_.ip(train0.i) : '127.0.0.1'}/tcp/${net_.mode === 'netns' ? 9000 : train0.port}/p2p/${train0.peerId}`;
  // the training joiners one after the other, each once the one before holds its span, so that the pool gives the
  // second the half the first did not take (a chain [0,h) → [h,L) beside train0's whole model)
  for (const n of trainers.slice(1)) {
    await startNode(n.i);
    await waitUntil(async () => (await api(n, 'GET', '/api/status')).json?.span != null, SPAN_MS, `${n.name} to hold a span`, 1000);
  }
  say('every process is up; waiting for spans and a first answer from every node, and for every trainer to train');

  // 3. ready: every node holds layers (the genesis node all of them) and answers a generation with the reference
  const ready = new Set();
  await waitUntil(
    async () => {
      await Promise.all(
        nodes
          .filter((n) => !ready.has(n.i))
          .map(async (n) => {
            const st = await api(n, 'GET', '/api/status');
            if (st.json?.span == null) return;
            const g = await api(n, 'POST', '/api/generate', { prompt: PROMPTS[0], max_tokens: MAX_TOKENS, temperature: 0 }, GEN_TIMEOUT_MS);
            if (g.status === 200 && JSON.stringify(g.json.tokens) === JSON.stringify(reference.get(PROMPTS[0]))) ready.add(n.i);
            else if (g.status === 200) throw new Error(`node ${n.i} answered other tokens than the reference before any fault: ${JSON.stringify(g.json)}`);
          }),
      );
      return ready.size === N;
    },
    SPAN_MS,
    'every node to hold layers and answer a generation',
    3000,
  ).catch((e) => {
    throw new Error(`${e.message}; ready: ${[...ready].join(',')}`);
  });
  // the bootstrap (issue 11 §2): node 0 funds the joiners from the genesis allocation, they bond
  {
    const t0 = Date.now();
    const { fundAndBondCli } = await import(join(ROOT, 'dist', 'test', 'utils', 'ledger-bootstrap.js'));
    const byDir = new Map(nodes.map((n) => [n.dir, n.i]));
    const run = async (dir, args) => {
      const r = await cli(byDir.get(dir), ['wallet', ...args, '--json', '--data-dir', dir]);
      if (r.code !== 0 || r.json === undefined) throw new Error(`wallet ${args[0]} on ${dir}: exit ${r.code} ${r.err.slice(-500)}`);
      return r.json;
    };
    await fundAndBondCli(nodes[0].dir, nodes.slice(1).map((n) => n.dir), { run, timeoutMs: SPAN_MS });
    result.ledger.bonded = N - 1;
    result.ledger.bootstrap_s = Math.round((Date.now() - t0) / 100) / 10;
    say(`bootstrap: node 0 funded ${N - 1} joiners and they bonded (${result.ledger.bootstrap_s} s)`);
  }
  // the generation load starts now, WARMUP_MS before the fault phase (it runs through the wait for the trainers; not
  // through the bootstrap, which takes 3x as long under load: docs/SCALE.md, session 24): a node's first minutes of requests grow its V8 heap to its working size (a joiner's heap 64 -> 90 MiB over
  // its first 90 s of load, then flat: RSS +35-40 MiB), and the memory check measures the steady state, not that
  // warm-up
  let loadOn = true;
  const live = () => nodes.filter((n) => n.up && !n.frozen);
  const genLoop = async () => {
    while (loadOn) {
      const cands = live();
      if (cands.length === 0) {
        await sleep(500);
        continue;
      }
      const n = pick(loadRng, cands);
      const prompt = pick(loadRng, PROMPTS);
      result.generate.sent++;
      try {
        const g = await api(n, 'POST', '/api/generate', { prompt, max_tokens: MAX_TOKENS, temperature: 0 }, GEN_TIMEOUT_MS);
        if (g.status === 200) {
          if (JSON.stringify(g.json?.tokens) === JSON.stringify(reference.get(prompt))) result.generate.completed_identical++;
          else {
            result.generate.mismatched++;
            say(`MISMATCH from node ${n.i}: ${g.text.slice(0, 300)}`);
          }
        } else if (typeof g.json?.error?.code === 'string') {
          result.generate.typed_errors++;
          const k = `${g.status} ${g.json.error.code}`;
          result.generate.error_codes[k] = (result.generate.error_codes[k] ?? 0) + 1;
          // one line per typed failure, beside the fault timeline, so that failures can be told apart by cause
          say(`typed error from node ${n.i}: ${k}: ${String(g.json.error.message ?? '').slice(0, 240)}`);
        } else {
          result.generate.untyped_errors++;
          say(`untyped answer from node ${n.i}: ${g.status} ${g.text.slice(0, 200)}`);
        }
      } catch (e) {
        // the node went down under the request (killed or frozen by the schedule): not an answer of the node
        if (!n.up || n.frozen || n.proc.exitCode !== undefined) {
          const k = 'connection lost (node killed)';
          result.generate.error_codes[k] = (result.generate.error_codes[k] ?? 0) + 1;
          result.generate.sent--;
        } else {
          result.generate.untyped_errors++;
          say(`generation on node ${n.i} failed without an answer: ${e.message}`);
        }
      }
      await sleep(200);
    }
  };

  const warmStart = Date.now();
  const genLoops = [genLoop(), genLoop()];
  // every trainer trains (a step applied on its span: a driver's, a hop's for its driver, train0's solo steps)
  const trainNow = new Map();
  await waitUntil(
    async () => {
      for (const n of trainers) trainNow.set(n.name, await trainingOf(n));
      return [...trainNow.values()].every((x) => x.step > 0);
    },
    SPAN_MS,
    'every trainer to take a step',
    3000,
  ).catch((e) => {
    throw new Error(`${e.message}; trainers: ${JSON.stringify(Object.fromEntries(trainNow))}`);
  });
  if (Date.now() < warmStart + WARMUP_MS) {
    say(`warming up under the generation load until ${WARMUP_MS / 1000} s after it began`);
    await sleep(warmStart + WARMUP_MS - Date.now());
  }
  // the steps as the phase begins (after the warm-up); trainNow keeps the rounds first seen, from which a trainer's
  // kept window is counted full (rounds closed during the warm-up are kept rounds too)
  const stepsNow = await Promise.all(trainers.map((n) => trainingOf(n).then((x) => x.step, () => trainNow.get(n.name).step)));
  result.training.step_at_chaos_start = Object.fromEntries(trainers.map((n, j) => [n.name, stepsNow[j]]));
  const spans = await Promise.all(trainers.map(async (n) => (await api(n, 'GET', '/api/status')).json?.span));
  result.training.spans = Object.fromEntries(trainers.map((n, j) => [n.name, spans[j] == null ? null : `${spans[j].start}:${spans[j].end}`]));
  say(`chaos starts: trainers at steps ${JSON.stringify(result.training.step_at_chaos_start)}, spans ${JSON.stringify(result.training.spans)}; RSS MiB ${[...nodes, ...trainers].map((n) => Math.round(rssKb(n.proc.child.pid) / 1024)).join(' ')}`);

  // 4. load and faults until the end of the phase, then a quiet period until the ledgers agree
  const phaseStart = Date.now();
  const phaseEnd = phaseStart + MINUTES * 60_000;
  // RSS and training progress are sampled past the phase, until the memory check (src/sim/memory-growth.ts)
  let sampleOn = true;
  const acked = []; // { id, sender, status }
  const senders = new Set();

  const transferLoop = async () => {
    while (loadOn) {
      await sleep(3000);
      const cands = live().filter((n) => !senders.has(n.i));
      // at most two wallet commands at once (each is a process of its own: the machine has two cores)
      if (cands.length === 0 || senders.size >= 2 || !loadOn) continue;
      const from = pick(loadRng, cands);
      const to = pick(loadRng, nodes.filter((n) => n.i !== from.i));
      if (to.address === undefined) continue;
      senders.add(from.i);
      result.ledger.transfers_sent++;
      void cli(from.i, ['wallet', 'send', to.address, AMOUNT, '--yes', '--json', '--data-dir', from.dir]).then((r) => {
        senders.delete(from.i);
        const status = r.json?.status ?? `exit ${r.code}`;
        if (status === 'applied') {
          result.ledger.acknowledged++;
          acked.push({ id: r.json.id, sender: from.i });
        } else {
          const k = `${status}${r.json?.reason ? ` ${r.json.reason}` : ''}`;
          result.ledger.not_applied[k] = (result.ledger.not_applied[k] ?? 0) + 1;
        }
      });
    }
  };

  // every trainer's inner step and last closed outer round, every 10 s (the report's timeline per trainer)
  const trainLoop = async () => {
    while (sampleOn) {
      await sleep(10_000);
      await Promise.all(
        trainers
          .filter((n) => n.up && !n.frozen)
          .map(async (n) => {
            try {
              const x = await trainingOf(n);
              (n.steps ??= []).push({ t_s: Math.round((Date.now() - phaseStart) / 1000), step: x.step, round: x.round, life: n.kills });
            } catch {
              /* cut off or busy: the next poll */
            }
          }),
      );
    }
  };

  // addresses for transfers
  for (const n of nodes) n.address = readKeystorePublic(n.dir).address;

  // RSS every RSS_SAMPLE_MS, from the phase start until the memory check (src/sim/memory-growth.ts: medians of a
  // baseline window from 20 % of the phase, or from when a trainer's outer-sync state is full, against a window
  // 50-80 % of the phase later; a trainer's kept closed rounds set apart)
  const phaseMs = MINUTES * 60_000;
  const rssLoop = async () => {
    while (sampleOn) {
      for (const n of [...nodes, ...trainers]) {
        if (!n.up || n.kills > 0) continue;
        const kb = rssKb(n.proc.child.pid);
        if (kb === undefined) continue;
        const sample = { tMs: Date.now() - phaseStart, kb };
        (n.rssSamples ??= []).push(sample);
        // a trainer's kept closed rounds (bounded state that joiners' pins move: training/keep.ts), read beside its
        // RSS: the check sets it apart (a rejoining trainer's pins kept 1-4 more 19 MiB snapshots on its partners
        // for a minute, +26 % of one partner's RSS in a CI run, with nothing leaking)
        if (n.trains) void trainingOf(n, 2000).then((t) => (sample.boundedKb = t.keptBytes === undefined ? undefined : t.keptBytes / 1024), () => {});
        // one sample a minute for the report (the trend tells growth from warm-up)
        n.series ??= [];
        if (Date.now() - (n.lastSeriesAt ?? 0) >= 60_000) {
          n.series.push(Math.round(kb / 1024));
          n.lastSeriesAt = Date.now();
          // ── memory breakdown (scale helper, issue 12 §2): where RSS goes, once a minute ──
          void memBreakdown(n, phaseStart).then((b) => (n.breakdown ??= []).push(b));
        }
      }
      await sleep(RSS_SAMPLE_MS);
    }
  };
  const loops = [...genLoops, transferLoop()];
  const samplers = [trainLoop(), rssLoop()];

  const restartAfter = async (n, ms) => {
    await sleep(ms);
    result.faults.restarts++;
    await startNode(n.i);
  };
  const pending = [];
  for (const a of schedule.actions) {
    const wait = phaseStart + a.at - Date.now();
    if (wait > 0) await sleep(wait);
    if (a.kind === 'kill') {
      const n = slot(a.node);
      if (!n.up) continue;
      say(`SIGKILL ${n.name} for ${(a.downMs / 1000).toFixed(0)} s`);
      n.kills++;
      result.faults.kills++;
      await killNode(n);
      pending.push(restartAfter(n, a.downMs).catch((e) => fail(`restart of ${n.name} failed: ${e.message.slice(0, 500)}`)));
    } else if (a.kind === 'partition') {
      const other = slots().map((n) => n.i).filter((i) => !a.side.includes(i));
      const names = (xs) => xs.map((i) => slot(i).name).join(',');
      if (net_.mode === 'netns') {
        say(`partition {${names(a.side)}} | {${names(other)}} for ${(a.durMs / 1000).toFixed(0)} s`);
        result.faults.partitions++;
        // the links across the partition inside each group (the groups do not talk to each other)
        await net_.cut(a.side.flatMap((i) => other.filter((j) => i < N === j < N).map((j) => [i, j])));
        await sleep(a.durMs);
        await net_.healAll();
        say('healed');
      } else {
        say(`freeze {${names(a.side)}} for ${(a.durMs / 1000).toFixed(0)} s (no namespaces)`);
        result.faults.freezes++;
        const frozen = a.side.map(slot).filter((n) => n.up);
        for (const n of frozen) {
          n.frozen = true;
          n.proc.signalGroup('SIGSTOP');
        }
        await sleep(a.durMs);
        for (const n of frozen) {
          n.proc.signalGroup('SIGCONT');
          n.frozen = false;
        }
        say('thawed');
      }
    } else if (a.kind === 'cut' && net_.mode === 'netns') {
      say(`cut link ${slot(a.link[0]).name}-${slot(a.link[1]).name} for ${(a.durMs / 1000).toFixed(0)} s`);
      result.faults.link_cuts++;
      await net_.cut([a.link]);
      await sleep(a.durMs);
      await net_.healAll();
    }
  }
  const untilEnd = phaseEnd - Date.now();
  if (untilEnd > 0) await sleep(untilEnd);
  await Promise.all(pending);
  say('fault phase over; every link healed and every node restarted; load stops');
  // training after the last heal (checked while the ledgers converge): every trainer closes an outer round later
  // than the one it stood at now and applies inner steps past its step now; then the holders stand at one closed
  // round with equal per-layer hashes (DiLoCo brought the replicas of each layer back together after the faults)
  const tTrainHeal = Date.now();
  const atHeal = new Map();
  await Promise.all(trainers.map(async (n) => atHeal.set(n.name, await trainingOf(n).catch(() => ({ step: 0, round: null, hashes: {} })))));
  result.training.rounds_at_heal = Object.fromEntries(trainers.map((n) => [n.name, atHeal.get(n.name).round]));
  const trainNowEnd = new Map();
  const trainCheck = (async () => {
    const advanced = (n) => {
      const a = atHeal.get(n.name);
      const x = trainNowEnd.get(n.name);
      return x !== undefined && x.round !== null && (a.round === null || x.round > a.round) && x.step > a.step;
    };
    await waitUntil(
      async () => {
        await Promise.all(trainers.map(async (n) => trainNowEnd.set(n.name, await trainingOf(n).catch(() => trainNowEnd.get(n.name)))));
        return trainers.every(advanced);
      },
      TRAIN_ADVANCE_MS,
      'every trainer to close an outer round after the last heal',
      2000,
    ).then(
      () => {
        result.training.advancing = true;
        result.training.advance_s = Math.round((Date.now() - tTrainHeal) / 100) / 10;
      },
      () => fail(`training did not advance after the last heal within ${TRAIN_ADVANCE_MS / 1000} s: at the heal ${JSON.stringify(Object.fromEntries(atHeal))}, then ${JSON.stringify(Object.fromEntries(trainNowEnd))}`.slice(0, 2000)),
    );
    // the replicas agree: the trainers at one closed round, every layer two of them hold with one hash (not waited
    // for when training did not advance: that failure is already recorded; a lone trainer has nobody to agree with)
    let last = '';
    if (result.training.advancing && T > 1) await waitUntil(
      async () => {
        const xs = await Promise.all(trainers.map((n) => trainingOf(n)));
        const rounds = xs.map((x) => x.round);
        last = `rounds ${rounds.join(',')}`;
        if (rounds.some((r) => r === null || r !== rounds[0])) return false;
        let pairs = 0;
        for (let a = 0; a < xs.length; a++) {
          for (let b = a + 1; b < xs.length; b++) {
            for (const [layer, h] of Object.entries(xs[a].hashes)) {
              const o = xs[b].hashes[layer];
              if (o === undefined) continue;
              if (o !== h) {
                last = `round ${rounds[0]}: ${trainers[a].name} and ${trainers[b].name} differ on ${layer}`;
                return false;
              }
              pairs++;
            }
          }
        }
        result.training.layer_hash_pairs = pairs;
        result.training.agreed_round = rounds[0];
        return pairs > 0;
      },
      TRAIN_ADVANCE_MS,
      'the trainers at one closed round with equal per-layer hashes',
      500,
    ).then(
      () => (result.training.layer_hashes_equal = true),
      () => {
        result.training.layer_hashes_equal = false;
        fail(`the trainers did not stand at one closed round with equal per-layer hashes within ${TRAIN_ADVANCE_MS / 1000} s (${last})`);
      },
    );
    result.training.rounds_at_end = Object.fromEntries(trainers.map((n) => [n.name, trainNowEnd.get(n.name)?.round ?? null]));
    result.training.step_at_end = Object.fromEntries(trainers.map((n) => [n.name, trainNowEnd.get(n.name)?.step ?? null]));
  })();
  loadOn = false;
  await Promise.allSettled(loops);
  // transfers still in flight
  await waitUntil(() => senders.size === 0, 180_000, 'transfers in flight to finish', 500).catch((e) => fail(e.message));

  // 5. ledgers: one state hash on every node (polled together), within the bound
  const tHeal = Date.now();
  let hashes = [];
  await waitUntil(
    async () => {
      const s = await Promise.all(nodes.map((n) => api(n, 'GET', '/api/ledger/status')));
      hashes = s.map((x) => (x.status === 200 && x.json.replayPending !== true ? x.json.stateHash : `(${x.status})`));
      return hashes.every((h) => h === hashes[0] && !h.startsWith('('));
    },
    CONVERGE_MS,
    'every ledger to reach one state hash',
    1000,
  ).then(
    () => {
      result.ledger.state_hashes_equal = true;
      result.ledger.converge_s = Math.round((Date.now() - tHeal) / 100) / 10;
    },
    () => fail(`ledger state hashes differ ${CONVERGE_MS / 1000} s after the last heal: ${hashes.map((h) => h.slice(0, 12)).join(' ')}`),
  );

  // 6. training advanced (above), memory of the survivors
  await trainCheck;
  result.training.trainer_kills = trainers.reduce((a, n) => a + n.kills, 0);
  result.training.per_trainer = trainers.map((n) => ({ name: n.name, kills: n.kills, timeline: (n.steps ?? []).filter((_, k, xs) => k % Math.max(1, Math.ceil(xs.length / 30)) === 0) }));
  // a trainer's steady state begins when its outer sync keeps KEPT_ROUNDS closed rounds: the first poll that saw
  // KEPT_ROUNDS − 1 rounds closed after the first one it saw (at least KEPT_ROUNDS closed in this life); a serving
  // node's at once. Sampling goes on until every survivor's end window is past (at most 300 s more: a trainer
  // under load can fill its window late, e.g. at 204 s of a 2-minute phase, and its end window is then 0.5-0.8 P
  // after that; a bound of one phase length gave up before it and left 2 end samples).
  const readyMsOf = (n) => {
    if (!n.trains) return 0;
    const seen = (n.steps ?? []).filter((x) => x.round !== null && x.round !== undefined);
    const first = Math.min(...[trainNow.get(n.name)?.round, seen[0]?.round].filter((r) => typeof r === 'number'));
    const full = seen.find((x) => x.round - first >= KEPT_ROUNDS - 1);
    return full === undefined ? undefined : full.t_s * 1000;
  };
  const survivors = [...nodes, ...trainers].filter((n) => n.kills === 0);
  await waitUntil(
    () => survivors.every((n) => {
      const ready = readyMsOf(n);
      return ready !== undefined && Date.now() - phaseStart > growthWindows(phaseMs, ready).end[1] + 1000;
    }),
    300_000,
    'every survivor past its memory window',
    1000,
  ).catch(() => {});
  sampleOn = false;
  await Promise.allSettled(samplers);
  for (const n of survivors) {
    const samples = n.rssSamples ?? [];
    const ready = readyMsOf(n);
    const g = ready === undefined ? undefined : memoryGrowth(samples, phaseMs, ready, { setApart: n.trains === true, floor: n.trains === true });
    result.memory.survivors.push({
      node: n.name,
      ready_s: ready === undefined ? null : Math.round(ready / 1000),
      ...(g === undefined ? { reason: `its outer sync never kept ${KEPT_ROUNDS} closed rounds` } : g.reason === undefined ? {} : { reason: g.reason }),
      rss_base_mb: g?.baseKb ? Math.round(g.baseKb / 1024) : null,
      rss_end_mb: g?.endKb ? Math.round(g.endKb / 1024) : null,
      rss_peak_mb: samples.length > 0 ? Math.round(Math.max(...samples.map((x) => x.kb)) / 1024) : null,
      growth: g?.growth == null ? null : Math.round(g.growth * 1000) / 1000,
      // a trainer's figure on medians too (the report's; the check uses the floors: src/sim/memory-growth.ts)
      ...(n.trains === true && ready !== undefined ? { growth_median: Math.round((memoryGrowth(samples, phaseMs, ready, { setApart: true }).growth ?? NaN) * 1000) / 1000 } : {}),
      rss_mb_per_minute: n.series ?? [],
      // a sample every 5 s: "t_s:MiB", and for a trainer ":kept MiB" (its outer sync's kept closed rounds)
      rss_samples: samples
        .filter((x, k) => k === 0 || Math.floor(x.tMs / 5000) !== Math.floor(samples[k - 1].tMs / 5000))
        .map((x) => `${Math.round(x.tMs / 1000)}:${Math.round(x.kb / 1024)}${x.boundedKb === undefined ? '' : `:${Math.round(x.boundedKb / 1024)}`}`)
        .join(' '),
      breakdown_mb_per_minute: n.breakdown ?? [], // memory breakdown (scale helper)
    });
  }
  const growths = result.memory.survivors.map((s) => s.growth).filter((g) => g !== null);
  result.memory.max_growth = growths.length > 0 ? Math.max(...growths) : null;
  if (result.memory.max_growth === null) fail('no surviving network node to measure memory on');
  else if (result.memory.max_growth >= MAX_MEMORY_GROWTH) fail(`survivor memory grew ${(result.memory.max_growth * 100).toFixed(1)} % (limit ${(MAX_MEMORY_GROWTH * 100).toFixed(0)} %)`);
  // a survivor without a figure would hide its growth (a trainer whose outer sync never filled its window fails
  // the training checks too; this names it)
  for (const s of result.memory.survivors) if (s.growth === null) fail(`no memory figure for ${s.node}: ${s.reason}`);

  // 7. stop everything gracefully: each must exit 0
  for (const p of procs.values()) p.expectExit = true;
  const stopAt = Date.now(); // the offline convergence check's clock (stage 8)
  const stops = [...nodes, ...trainers].map(async (n) => {
    n.proc.signalGroup('SIGCONT');
    n.proc.child.kill('SIGTERM');
    const timer = setTimeout(() => n.proc.signalGroup('SIGKILL'), STOP_MS);
    const code = await n.proc.exited;
    clearTimeout(timer);
    if (code !== 0) crashes.push({ name: n.name, code, signal: n.proc.signal, at: 'SIGTERM at the end', tail: n.proc.text.slice(-1500) });
  });
  await Promise.all(stops);
  procs.get('tracker').child.kill('SIGTERM');

  /** The offline convergence check of one group's stopped ledgers, on copies (src/sim/ledger-converge.ts). */
  function convergeCheck(group, members, stopMs) {
    const copies = [];
    let genesisKey;
    let meta;
    for (const n of members) {
      const m = ledgerMeta(n.dir);
      if (m === undefined) continue;
      meta ??= m;
      genesisKey ??= readNetworkFile(n.dir)?.genesisKey;
      copies.push({ name: n.name, path: copyLedgerFiles(n.dir, join(runDir, 'converge', n.name)) });
    }
    if (copies.length < 2) return { final_events_missing: null, converged_state_hashes_equal: null, detail: { nodes: copies.length } };
    try {
      const r = convergeLedgers(copies, { ...meta, rewards: rewardRules({}, genesisKey === undefined ? undefined : fromHex(genesisKey)), stopMs });
      const s1 = (ms) => (ms === null ? null : Math.round(ms / 100) / 10);
      const out = {
        final_events_missing: { count: r.missing.pairs, events: r.missing.events, kinds: r.missing.kinds, oldest_age_s: s1(r.missing.oldestAgeMs) },
        converged_state_hashes_equal: r.convergedEqual,
        detail: {
          raw_hashes: Object.fromEntries(Object.entries(r.rawHashes).map(([k, v]) => [k, v.slice(0, 12)])),
          replay_pending: r.replayPending,
          missing: r.missing.list.slice(0, 8).map((m) => ({ id: m.id.slice(0, 16), kind: m.kind, age_s: s1(m.ageMs), held_by: m.heldBy, lacked_by: m.lackedBy })),
          rounds: r.rounds,
          delivered: r.delivered,
          converged_hashes: Object.fromEntries(Object.entries(r.convergedHashes).map(([k, v]) => [k, v.slice(0, 12)])),
          refused: r.refusals.map((f) => ({ id: f.id.slice(0, 16), kind: f.kind, age_s: s1(f.ageMs), node: f.node, reason: f.reason, explanation: f.explanation, path: f.path, held_by: f.heldBy })),
          verdict_diffs: r.verdictDiffs.map((d) => ({ id: d.id.slice(0, 16), kind: d.kind, verdicts: d.verdicts })),
        },
      };
      say(`${group} ledgers: final hashes ${r.rawEqual ? 'equal' : 'differ'}; ${r.missing.pairs} (event, node) pairs missing ${JSON.stringify(r.missing.kinds)}, oldest ${out.final_events_missing.oldest_age_s} s before the stop; after the exchange (${r.rounds} rounds, ${JSON.stringify(r.delivered)}) ${r.convergedEqual ? 'equal' : 'DIFFERENT'}, ${r.refusals.length} refused, ${r.verdictDiffs.length} verdict differences`);
      return out;
    } catch (e) {
      return { final_events_missing: null, converged_state_hashes_equal: false, detail: { error: `convergence check failed: ${e.message}` } };
    }
  }

  // 8. every acknowledged transfer in every ledger, applied
  const ledgers = nodes.map((n) => openLedgerReadOnly(n.dir));
  try {
    for (const a of acked) {
      for (const [i, l] of ledgers.entries()) {
        const st = l?.eventStatus(fromHex(a.id));
        if (st?.status !== 'applied') {
          result.ledger.acked_missing++;
          if (result.ledger.acked_missing <= 5) say(`acknowledged transfer ${a.id.slice(0, 16)} (sent on node ${a.sender}) is ${st === undefined ? 'missing' : st.status} on node ${i}`);
        }
      }
    }
    const finalHashes = ledgers.map((l) => l?.stateHash());
    result.ledger.final_state_hashes_equal = finalHashes.every((h) => h === finalHashes[0]);
  } finally {
    for (const l of ledgers) l?.close();
  }
  // Do the stopped ledgers converge? (session 25, src/sim/ledger-converge.ts) The nodes stop while events are still
  // in flight, so the raw final hashes may differ; on copies of the files, every event one node serves and another
  // lacks is delivered by gossip's path (the sync path past the live window) until none is missing, and then the
  // hashes must be equal, and no node may refuse an event another applied. Each group (the serving network, and
  // the trainers' own) is checked on its own.
  for (const [group, members] of [['serving', nodes], ['trainers', trainers]]) {
    const conv = convergeCheck(group, members, stopAt);
    if (group === 'serving') {
      result.ledger.final_events_missing = conv.final_events_missing;
      result.ledger.converged_state_hashes_equal = conv.converged_state_hashes_equal;
      result.ledger.converge = conv.detail;
    } else result.ledger.trainers_converge = conv;
    if (conv.converged_state_hashes_equal === false) fail(`${group} ledgers differ after the offline exchange: ${conv.detail.error ?? JSON.stringify(conv.detail.converged_hashes)}`);
    if (conv.detail.refused?.length > 0) fail(`${group} ledgers: ${conv.detail.refused.length} events refused by one node and applied by another: ${JSON.stringify(conv.detail.refused.slice(0, 3))}`);
    if (conv.detail.verdict_diffs?.length > 0) fail(`${group} ledgers: ${conv.detail.verdict_diffs.length} events with different verdicts after the exchange: ${JSON.stringify(conv.detail.verdict_diffs.slice(0, 3))}`);
  }
  if (result.ledger.acked_missing > 0) fail(`${result.ledger.acked_missing} (transfer, ledger) pairs of acknowledged transfers missing or not applied`);
  if (result.ledger.acknowledged === 0) fail('no transfer was acknowledged: the ledger load did not run');

  // 9. generations, crashes
  if (result.generate.mismatched > 0) fail(`${result.generate.mismatched} generations answered other tokens than the reference`);
  if (result.generate.untyped_errors > 0) fail(`${result.generate.untyped_errors} generations failed without a typed error`);
  if (result.generate.completed_identical === 0) fail('no generation completed');
  result.crashes = crashes.length;
  result.crash_details = crashes.map((c) => ({ name: c.name, code: c.code, signal: c.signal, at: c.at ?? 'during the run', tail: c.tail.slice(-600) }));
  result.crash_markers = crashMarkers.slice(0, 10);
  if (crashes.length > 0) fail(`${crashes.length} processes exited without being killed, or not with 0 on SIGTERM`);
  if (crashMarkers.length > 0) fail(`${crashMarkers.length} crash lines in the logs`);
  result.faults.kills_by_node = Object.fromEntries([...nodes, ...trainers].map((n) => [n.name, n.kills]));
  result.ok = result.failures.length === 0;
  exitCode = result.ok ? 0 : 1;
} catch (e) {
  fail(`harness: ${e.stack ?? e.message}`.slice(0, 3000));
  result.crash_details = crashes.map((c) => ({ name: c.name, code: c.code, signal: c.signal, tail: c.tail.slice(-600) }));
  exitCode = 1;
}
result.wall_s = Math.round((Date.now() - T0) / 1000);
result.logs = values.keep ? logsDir : undefined;
await cleanup();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(exitCode);
