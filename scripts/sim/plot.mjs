#!/usr/bin/env node
// Draws the docs/SCALE.md plots (SVG, no dependencies) from `run.mjs --series FILE` outputs.
// Usage: node scripts/sim/plot.mjs DIR OUTDIR   (DIR holds <nodes>-<scenario>.json files)
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, out] = process.argv.slice(2);
if (dir === undefined || out === undefined) {
  process.stderr.write('usage: plot.mjs DIR OUTDIR\n');
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const runs = readdirSync(dir)
  .filter((f) => /^\d+-[a-z-]+\.json$/.test(f))
  .map((f) => ({ name: f.replace(/\.json$/, ''), ...JSON.parse(readFileSync(join(dir, f), 'utf8')) }))
  .sort((a, b) => a.result.nodes - b.result.nodes || a.name.localeCompare(b.name));
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];

function chart(file, title, yLabel, lines, yMin, yMax) {
  const W = 720, H = 360, l = 60, r = 200, t = 30, b = 40;
  const xs = lines.flatMap((s) => s.x);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const ys = lines.flatMap((s) => s.y);
  const lo = yMin ?? Math.min(...ys), hi = yMax ?? Math.max(...ys, lo + 1e-9);
  const px = (x) => l + ((x - x0) / (x1 - x0 || 1)) * (W - l - r);
  const py = (y) => H - b - ((Math.min(hi, Math.max(lo, y)) - lo) / (hi - lo || 1)) * (H - t - b);
  let s = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`;
  s += `<rect width="${W}" height="${H}" fill="white"/><text x="${W / 2 - 100}" y="18" font-size="13">${title}</text>`;
  s += `<line x1="${l}" y1="${H - b}" x2="${W - r}" y2="${H - b}" stroke="black"/><line x1="${l}" y1="${t}" x2="${l}" y2="${H - b}" stroke="black"/>`;
  for (let i = 0; i <= 4; i++) {
    const y = lo + ((hi - lo) * i) / 4;
    s += `<text x="4" y="${py(y) + 4}">${+y.toPrecision(4)}</text><line x1="${l}" x2="${W - r}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/>`;
    const x = x0 + ((x1 - x0) * i) / 4;
    s += `<text x="${px(x) - 10}" y="${H - b + 15}">${+x.toFixed(0)}</text>`;
  }
  s += `<text x="${W / 2 - 60}" y="${H - 5}">simulated minutes</text><text x="4" y="${t - 8}">${yLabel}</text>`;
  lines.forEach((ln, i) => {
    const c = COLORS[i % COLORS.length];
    s += `<polyline fill="none" stroke="${c}" stroke-width="1.3" points="${ln.x.map((x, j) => `${px(x).toFixed(1)},${py(ln.y[j]).toFixed(1)}`).join(' ')}"/>`;
    s += `<rect x="${W - r + 10}" y="${t + i * 16}" width="10" height="10" fill="${c}"/><text x="${W - r + 24}" y="${t + i * 16 + 9}">${ln.label}</text>`;
  });
  writeFileSync(join(out, file), `${s}</svg>\n`);
}

// rolling mean over k samples (the per-5-s windows are noisy)
const smooth = (y, k = 12) => y.map((_, i) => {
  const w = y.slice(Math.max(0, i - k + 1), i + 1);
  return w.reduce((a, b) => a + b, 0) / w.length;
});
const line = (run, key, f = (v) => v, k = 1) => ({ label: run.name, x: run.series.tMin, y: smooth(run.series[key].map(f), k) });
chart('coverage.svg', 'Layers covered (share of L) over time', 'covered / L', runs.map((r) => line(r, 'coveredLayers', (v) => v / Number(r.result.model.split('L')[0]))), 0, 1);
chart('min-replicas.svg', 'Fewest live replicas of any layer', 'min replicas', runs.map((r) => line(r, 'minReplicas')), 0);
chart('replicas.svg', 'Mean live replicas per layer', 'replicas', runs.map((r) => line(r, 'replicasPerLayer')), 0);
chart('route-success.svg', 'Route success (with failover), 1-min rolling mean', 'success', runs.map((r) => line(r, 'routeSuccess', undefined, 12)), 0, 1);
chart('dht-success.svg', 'DHT lookup success, 1-min rolling mean', 'success', runs.map((r) => line(r, 'lookupSuccess', undefined, 12)), 0, 1);
chart('dht-latency.svg', 'DHT lookup latency (p99 per 5 s window, 1-min rolling mean)', 'ms', runs.map((r) => line(r, 'lookupP99Ms', undefined, 12)), 0);
chart('ledger-agree.svg', 'All live ledgers equal (1) or not (0): partition runs', 'agree', runs.filter((r) => r.result.scenario === 'partition').map((r) => line(r, 'ledgerAgree')), 0, 1);
// proof propagation p99 per run: a bar chart
{
  const W = 720, H = 300, l = 60, b = 90, t = 30;
  const vals = runs.map((r) => r.result.proof_propagation_s_p99);
  const hi = Math.max(...vals, 0.001);
  const bw = (W - l - 20) / Math.max(1, runs.length);
  let s = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11"><rect width="${W}" height="${H}" fill="white"/><text x="200" y="18" font-size="13">Proof propagation p99 to every live node (s)</text>`;
  runs.forEach((r, i) => {
    const h = (vals[i] / hi) * (H - t - b);
    const x = l + i * bw;
    s += `<rect x="${x + 4}" y="${H - b - h}" width="${bw - 8}" height="${h}" fill="${COLORS[i % COLORS.length]}"/><text x="${x + 4}" y="${H - b - h - 3}">${vals[i]}</text>`;
    s += `<text transform="translate(${x + bw / 2},${H - b + 8}) rotate(60)">${r.name}</text>`;
  });
  writeFileSync(join(out, 'proof-propagation.svg'), `${s}</svg>\n`);
}
process.stdout.write(`${runs.length} runs plotted into ${out}\n`);
