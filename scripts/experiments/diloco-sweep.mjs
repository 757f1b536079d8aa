#!/usr/bin/env node
// Runs the experiments recorded in docs/TRAINING.md and draws their charts (one process, runs one after another):
//
//   node scripts/experiments/diloco-sweep.mjs main       DiLoCo with 4 replicas against synchronous data-parallel
//                                                         at equal tokens (900 inner steps of 8×32 each): int8 at
//                                                         H=300, sparse at H=100, int8 at H=50
//                                                         → docs/diloco-main.json, docs/diloco-curves.svg
//   node scripts/experiments/diloco-sweep.mjs byzantine  1 of 4 and 2 of 6 Byzantine replicas, every attack × every
//                                                         aggregator, plus each aggregator's honest run (small runs:
//                                                         H=10, 6 rounds, batch 4×32; `byzantine 4` or `byzantine 6`
//                                                         runs one grid) → docs/diloco-byzantine-{4,6}.json,
//                                                         docs/diloco-byzantine.svg
//   node scripts/experiments/diloco-sweep.mjs replot     redraws the charts from the JSON files (and
//                                                         docs/diloco-gap-curves.svg from docs/diloco-gap.json)
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ATTACKS, context, defaults, runOne } from './diloco.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const docs = join(root, 'docs');
const mode = process.argv[2] ?? 'main';
const log = (s) => process.stderr.write(`sweep: ${s}\n`);
const AGGS = ['mean', 'trimmed-mean', 'median', 'krum', 'multi-krum', 'geometric-median', 'centered-clip', 'gauntlet'];

const f1 = (n) => n.toFixed(1);

function clean(x) {
  return JSON.parse(JSON.stringify(x, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
}

if (mode === 'main') {
  // batch 8 × 32 per replica (the machine is shared by eight engineers: load ~20 on 2 cores)
  // the ninth session's settings, pinned (diloco.mjs's defaults have moved since): trimmed mean, Nesterov 0.7/0.9,
  // a baseline with its own data stream
  const ninth = { aggregator: 'trimmed-mean', outerLr: 0.7, outerMomentum: 0.9, efBeta: 1, baselineData: 'own', seq: 32 };
  const runs = [
    { name: 'int8, H=300', innerSteps: 300, rounds: 3, compress: 'int8', ...ninth },
    { name: 'sparse, H=100', innerSteps: 100, rounds: 9, compress: 'sparse', ...ninth },
    { name: 'int8, H=50', innerSteps: 50, rounds: 18, compress: 'int8', ...ninth },
  ];
  const out = [];
  const ctx = await context({ ...defaults(), seq: 32 });
  for (const r of runs) {
    const o = { ...defaults(), ...r };
    const t = performance.now();
    const res = await runOne(o, ctx, (s) => log(`${r.name}: ${s}`));
    res.name = r.name;
    res.wall_s = Math.round((performance.now() - t) / 1000);
    out.push(clean(res));
    log(`${r.name}: ${JSON.stringify({ val: res.val_loss, base: res.baseline_val_loss, gap: res.gap, ratio: res.bytes_ratio })}`);
    writeFileSync(join(docs, 'diloco-main.json'), JSON.stringify({ engine: ctx.engine, runs: out }, null, 1) + '\n');
  }
  writeFileSync(join(docs, 'diloco-curves.svg'), curvesSvg(out));
} else if (mode === 'byzantine') {
  // pinned: int8, Nesterov 0.7/0.9 (diloco.mjs's defaults have moved since these grids were run)
  const small = { innerSteps: 10, rounds: 6, batch: 4, seq: 32, evalBatches: 8, warmup: 10, baseline: false, curveEvery: 0, compress: 'int8', outerLr: 0.7, outerMomentum: 0.9, efBeta: 1 };
  const ctx = await context({ ...defaults(), ...small });
  const out = [];
  const only = process.argv[3] === undefined ? null : Number(process.argv[3]);
  // optional: a comma-separated subset of aggregators, written to its own file (to split a grid over processes)
  const aggs = process.argv[4] === undefined ? AGGS : process.argv[4].split(',');
  const suffix = process.argv[4] === undefined ? '' : `-${aggs.join('+')}`;
  for (const [R, K] of [
    [4, 1],
    [6, 2],
  ].filter(([r]) => only === null || r === only)) {
    for (const aggregator of aggs) {
      for (const attack of ATTACKS) {
        const o = { ...defaults(), ...small, replicas: R, byzantine: attack === 'none' ? 0 : K, attack, aggregator };
        const t = performance.now();
        const res = await runOne(o, ctx, () => {});
        const row = clean({ replicas: R, byzantine: K, attack, aggregator, val_loss: res.val_loss, rejected_last_round: res.rejected_last_round, wall_s: Math.round((performance.now() - t) / 1000) });
        out.push(row);
        log(`${K} of ${R} ${aggregator} ${attack}: ${res.val_loss} (${row.wall_s} s)`);
        writeFileSync(join(docs, `diloco-byzantine-${R}${suffix}.json`), JSON.stringify({ engine: ctx.engine, config: small, runs: out }, null, 1) + '\n');
      }
    }
  }
  writeFileSync(join(docs, 'diloco-byzantine.svg'), byzSvg(byzRows()));
} else if (mode === 'replot') {
  // plus the SparseLoCo-style run made separately with diloco.mjs --curve docs/diloco-sparse-mean.json (its name added)
  const extra = [];
  try {
    extra.push(JSON.parse(readFileSync(join(docs, 'diloco-sparse-mean.json'), 'utf8')));
  } catch {
    // not run
  }
  writeFileSync(join(docs, 'diloco-curves.svg'), curvesSvg([...JSON.parse(readFileSync(join(docs, 'diloco-main.json'), 'utf8')).runs, ...extra]));
  writeFileSync(join(docs, 'diloco-byzantine.svg'), byzSvg(byzRows()));
  // the tenth session's runs (diloco.mjs --curve FILE, gathered into docs/diloco-gap.json as { runs: [...] })
  try {
    writeFileSync(join(docs, 'diloco-gap-curves.svg'), curvesSvg(JSON.parse(readFileSync(join(docs, 'diloco-gap.json'), 'utf8')).runs));
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
} else {
  process.stderr.write('usage: node scripts/experiments/diloco-sweep.mjs main|byzantine|replot\n');
  process.exit(2);
}


/** Rows of both Byzantine files that exist (the 1-of-4 and 2-of-6 grids run as separate processes). */
function byzRows() {
  const rows = [];
  for (const f of readdirSync(docs).filter((n) => /^diloco-byzantine-.*\.json$/.test(n)).sort()) {
    for (const r of JSON.parse(readFileSync(join(docs, f), 'utf8')).runs) {
      if (!rows.some((q) => q.replicas === r.replicas && q.aggregator === r.aggregator && q.attack === r.attack)) rows.push(r);
    }
  }
  return rows;
}

/** Validation loss against tokens per replica-step: each DiLoCo run (solid) and its data-parallel baseline (dashed). */
function curvesSvg(runs) {
  const W = 760;
  const H = 440;
  const m = { l: 64, r: 210, t: 48, b: 48 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const colors = ['#08519c', '#31a354', '#d95f0e', '#756bb1', '#e7298a'];
  const maxStep = Math.max(...runs.map((r) => r.curve.at(-1).step));
  const losses = runs.flatMap((r) => [...r.curve, ...(r.baseline_curve ?? [])].map((p) => p.loss)).filter(Number.isFinite);
  const yMax = Math.min(9, Math.ceil(Math.max(...losses) * 2) / 2); // a diverged run is drawn clipped at the top
  const yMin = Math.floor(Math.min(...losses) * 2) / 2;
  const x = (s) => m.l + (s / maxStep) * pw;
  const y = (l) => m.t + ((yMax - Math.min(l, yMax)) / (yMax - yMin)) * ph;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  o.push(`<text x="${m.l}" y="22" font-size="15" font-weight="bold">DiLoCo, 4 replicas (solid) vs synchronous data-parallel at equal tokens (dashed)</text>`);
  o.push(`<text x="${m.l}" y="38" fill="#555">tiny model (0.62 M parameters), batch 8×32 per replica, genesis corpus; losses above ${yMax} drawn at the top edge</text>`);
  for (let l = yMin; l <= yMax + 1e-9; l += 0.5) {
    o.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${f1(y(l))}" y2="${f1(y(l))}" stroke="#e5e5e5"/>`);
    o.push(`<text x="${m.l - 8}" y="${f1(y(l) + 4)}" text-anchor="end">${l.toFixed(1)}</text>`);
  }
  for (let s = 0; s <= maxStep; s += Math.max(1, Math.round(maxStep / 6 / 50) * 50)) {
    o.push(`<text x="${f1(x(s))}" y="${m.t + ph + 18}" text-anchor="middle">${s}</text>`);
  }
  o.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">inner steps per replica (= data-parallel steps of a 4× batch)</text>`);
  o.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">validation loss (nats/token)</text>`);
  o.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  const path = (pts) => pts.filter((p) => Number.isFinite(p.loss)).map((p, i) => `${i === 0 ? 'M' : 'L'}${f1(x(p.step))},${f1(y(p.loss))}`).join(' ');
  runs.forEach((r, i) => {
    const c = colors[i % colors.length];
    o.push(`<path d="${path(r.curve)}" fill="none" stroke="${c}" stroke-width="2"/>`);
    if (r.baseline_curve) o.push(`<path d="${path(r.baseline_curve)}" fill="none" stroke="${c}" stroke-width="1.2" stroke-dasharray="5 4"/>`);
    const ly = m.t + 10 + i * 40;
    o.push(`<line x1="${m.l + pw + 10}" x2="${m.l + pw + 30}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/>`);
    o.push(`<text x="${m.l + pw + 36}" y="${ly + 4}">${r.name}</text>`);
    o.push(`<text x="${m.l + pw + 36}" y="${ly + 19}" fill="#555">gap ${(100 * r.gap).toFixed(2)} %, ${Math.round(r.bytes_ratio).toLocaleString('en')}× fewer bytes</text>`);
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}

/** Heat map: final validation loss relative to the same aggregator's honest run, attacks × aggregators, two panels. */
function byzSvg(rows) {
  const attacks = ATTACKS.filter((a) => a !== 'none');
  const cw = 84;
  const ch = 26;
  const left = 130;
  const W = left + cw * attacks.length + 40;
  const panelH = 40 + ch * (AGGS.length + 1);
  const H = 60 + 2 * panelH;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  o.push(`<text x="10" y="22" font-size="15" font-weight="bold">Byzantine replicas: final val loss vs the aggregator's honest run</text>`);
  o.push(`<text x="10" y="40" fill="#555">green ≤ +5 %, yellow ≤ +20 %, red worse or diverged (×: no finite loss)</text>`);
  [
    [4, 1],
    [6, 2],
  ].forEach(([R, K], p) => {
    const top = 60 + p * panelH;
    o.push(`<text x="10" y="${top + 16}" font-weight="bold">${K} of ${R} Byzantine</text>`);
    attacks.forEach((a, j) => o.push(`<text x="${left + j * cw + cw / 2}" y="${top + 16}" text-anchor="middle">${a}</text>`));
    AGGS.forEach((agg, i) => {
      const yy = top + 24 + i * ch;
      o.push(`<text x="${left - 8}" y="${yy + 17}" text-anchor="end">${agg}</text>`);
      const honest = rows.find((r) => r.replicas === R && r.aggregator === agg && r.attack === 'none')?.val_loss;
      attacks.forEach((a, j) => {
        const r = rows.find((q) => q.replicas === R && q.aggregator === agg && q.attack === a);
        if (r === undefined) return;
        const rel = r.val_loss === null || honest == null ? Infinity : r.val_loss / honest - 1;
        const fill = rel <= 0.05 ? '#a1d99b' : rel <= 0.2 ? '#fee391' : '#fc9272';
        o.push(`<rect x="${left + j * cw}" y="${yy}" width="${cw - 2}" height="${ch - 2}" fill="${fill}"/>`);
        o.push(`<text x="${left + j * cw + cw / 2}" y="${yy + 17}" text-anchor="middle">${Number.isFinite(rel) ? `${rel >= 0 ? '+' : ''}${(100 * rel).toFixed(1)} %` : '×'}</text>`);
      });
    });
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}
