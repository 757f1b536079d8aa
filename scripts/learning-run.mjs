#!/usr/bin/env node
// The learning run of issue 3 §9: nano trained on the bundled genesis corpus for a fixed wall-clock budget through
// the real `neuroshard train` command, its validation loss recorded at intervals, then drawn against the corpus's
// unigram baseline.
//
//   node scripts/learning-run.mjs [--minutes 20] [--eval-every 250] [--threads N] [--out docs] [--data-dir DIR]
//                                 [--steps-factor 1.1]
//   node scripts/learning-run.mjs --replot [--out docs]    redraws learning-curve.svg from learning-curve.json
//
// 1. Calibration: `neuroshard train --steps 60 --eval-every 60` in a scratch data dir times one validation pass
//    and steps 10..60 (past the worker's warm-up) on this machine as loaded right now.
// 2. The run: `neuroshard train --steps N` in a fresh data dir, N chosen so that training plus its validation
//    passes fill the budget at that rate times --steps-factor (default 1.1: the machine is shared and its speed
//    drifts, so the target is set a little past the budget rather than short of it). The budget is enforced:
//    SIGTERM at the budget stops the run (a checkpoint is saved; the cosine's last steps, at the floor learning
//    rate anyway, are then cut), and `neuroshard train --steps <step reached>` on the same data dir reports the
//    validation loss of the final weights.
// 3. Progress lines from stderr (src/node/progress.ts formats: `step a/b loss …`, `eval step s val_loss …`) are
//    time-stamped as they arrive; the machine's load average is sampled every 15 s.
// 4. Writes <out>/learning-curve.json (the numbers) and <out>/learning-curve.svg (train and validation loss against
//    steps, minutes on the top axis, the unigram baseline as a dashed line).
//
// Needs the compiled CLI (npm run build). The data dir is a temporary folder removed at the end unless
// --data-dir is given.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (n, d) => {
  const i = args.indexOf(n);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : d;
};
const minutes = Number(opt('--minutes', '20'));
const evalEvery = Number(opt('--eval-every', '250'));
const threads = Number(opt('--threads', String(availableParallelism())));
const outDir = resolve(opt('--out', join(root, 'docs')));
const givenDataDir = opt('--data-dir', undefined);
const stepsFactor = Number(opt('--steps-factor', '1.1'));
if (!(stepsFactor > 0 && stepsFactor <= 10) || !(minutes > 0 && minutes <= 24 * 60) || !(Number.isInteger(evalEvery) && evalEvery > 0) || !(Number.isInteger(threads) && threads > 0)) {
  process.stderr.write('usage: node scripts/learning-run.mjs [--minutes M] [--eval-every K] [--threads N] [--out DIR] [--data-dir DIR] [--steps-factor F]\n');
  process.exit(2);
}
const BIN = join(root, 'bin', 'neuroshard.js');
if (args.includes('--replot')) {
  const doc = JSON.parse(readFileSync(join(outDir, 'learning-curve.json'), 'utf8'));
  writeFileSync(join(outDir, 'learning-curve.svg'), svg(doc));
  process.stdout.write(`learning-run: redrew ${join(outDir, 'learning-curve.svg')}\n`);
  process.exit(0);
}
if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) {
  process.stderr.write('learning-run: dist/ is missing; run npm run build first\n');
  process.exit(1);
}
const BATCH = 8;
const SEQ = 128;
const log = (s) => process.stdout.write(s + '\n');

/** Runs `neuroshard train …`; calls onLine(line, seconds since the first progress line) for every stderr line. */
function train(trainArgs, { onLine, deadlineS }) {
  return new Promise((resolveRun, reject) => {
    const t0 = performance.now();
    let tStart;
    const child = spawn(process.execPath, [BIN, 'train', ...trainArgs], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let buf = '';
    let timer;
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (tStart === undefined && /^(eval )?step \d+/.test(line)) {
          // the budget counts from the first progress (eval at step 0 or step 1), not process start-up
          tStart = performance.now();
          if (deadlineS !== undefined) {
            timer = setTimeout(() => {
              log(`learning-run: budget of ${deadlineS} s reached, sending SIGTERM`);
              child.kill('SIGTERM');
            }, deadlineS * 1000);
          }
        }
        onLine?.(line, tStart === undefined ? 0 : (performance.now() - tStart) / 1000);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      let result;
      try {
        result = JSON.parse(last);
      } catch {
        result = undefined;
      }
      if (code !== 0 || result === undefined) reject(new Error(`neuroshard train exited ${code}; stdout: ${stdout.slice(-500)}`));
      else resolveRun({ result, wallS: (performance.now() - t0) / 1000, trainS: tStart === undefined ? 0 : (performance.now() - tStart) / 1000 });
    });
  });
}

const scratch = mkdtempSync(join(tmpdir(), 'neuroshard-learning-'));
const dataDir = givenDataDir === undefined ? join(scratch, 'run') : resolve(givenDataDir);
const common = ['--preset', 'nano', '--batch-size', String(BATCH), '--seq-len', String(SEQ), '--threads', String(threads), '--seed', '0'];
try {
  // ---- 1. calibration --------------------------------------------------------------------------------------
  log(`learning-run: calibrating (60 steps of nano, batch ${BATCH}×${SEQ}, ${threads} threads; load ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);
  const marks = {};
  const t0 = performance.now();
  await train([...common, '--data-dir', join(scratch, 'calibration'), '--steps', '60', '--eval-every', '60', '--checkpoint-every', '0', '--log-level', 'warn'], {
    onLine: (line) => {
      const now = (performance.now() - t0) / 1000;
      if (line.startsWith('corpus ')) marks.ready = now;
      else if (line.startsWith('eval step 0 ')) marks.eval0 = now;
      else if (line.startsWith('step 10/')) marks.s10 = now;
      else if (line.startsWith('step 60/')) marks.s60 = now;
    },
  });
  if (!(marks.ready < marks.eval0 && marks.s10 < marks.s60)) throw new Error(`calibration lines not seen: ${JSON.stringify(marks)}`);
  const evalS = marks.eval0 - marks.ready;
  const stepS = (marks.s60 - marks.s10) / 50;
  const rate = (BATCH * SEQ) / stepS;
  const budgetS = minutes * 60;
  const steps = Math.max(evalEvery, Math.floor((stepsFactor * (budgetS - evalS)) / (stepS + evalS / evalEvery) / 10) * 10);
  log(`learning-run: ${(stepS * 1000).toFixed(0)} ms/step (${rate.toFixed(0)} tokens/s), ${evalS.toFixed(1)} s/validation → ${steps} steps in ${minutes} min (validation every ${evalEvery})`);

  // ---- 2. the run --------------------------------------------------------------------------------------------
  const val = [];
  const trainCurve = [];
  const loads = [];
  let baseline;
  let config;
  const sampleLoad = () => loads.push({ t: Math.round((performance.now() - tRun) / 100) / 10, load1: loadavg()[0] });
  const tRun = performance.now();
  sampleLoad();
  const loadTimer = setInterval(sampleLoad, 15_000);
  let run;
  try {
    run = await train([...common, '--data-dir', dataDir, '--steps', String(steps), '--eval-every', String(evalEvery), '--checkpoint-every', '1000', '--log-level', 'warn'], {
      deadlineS: budgetS,
      onLine: (line, t) => {
        let m;
        if ((m = /^step (\d+)\/\d+ loss ([\d.]+) lr (\S+) tok\/s (\d+)/.exec(line)) !== null) {
          trainCurve.push({ step: Number(m[1]), t: round(t, 1), loss: Number(m[2]), lr: Number(m[3]), tok_s: Number(m[4]) });
        } else if ((m = /^eval step (\d+) val_loss ([\d.]+) tokens (\d+)/.exec(line)) !== null) {
          val.push({ step: Number(m[1]), t: round(t, 1), loss: Number(m[2]), tokens: Number(m[3]) });
          log(`  ${(t / 60).toFixed(1)} min  step ${m[1]}  val_loss ${m[2]}`);
        } else if ((m = /unigram baseline ([\d.]+) nats\/token/.exec(line)) !== null) {
          baseline = Number(m[1]);
        } else if ((m = /^training (\d+) layers × (\d+) \(([\d.]+) M parameters\)/.exec(line)) !== null) {
          config = { layers: Number(m[1]), hidden: Number(m[2]), params_m: Number(m[3]) };
        }
      },
    });
  } finally {
    clearInterval(loadTimer);
    sampleLoad();
  }
  let final = run.result;
  const stoppedBy = final.step >= steps ? 'target' : 'budget';
  if (stoppedBy === 'budget') {
    // the validation loss of the weights the budget ended with (the last periodic one may be up to K steps older)
    const fin = await train([...common, '--data-dir', dataDir, '--steps', String(final.step), '--eval-every', String(evalEvery), '--log-level', 'warn'], {});
    val.push({ step: final.step, t: round(run.trainS, 1), loss: round(fin.result.val_loss, 4), tokens: val.at(-1)?.tokens });
    final = { ...final, val_loss: fin.result.val_loss };
    log(`  ${(run.trainS / 60).toFixed(1)} min  step ${final.step}  val_loss ${fin.result.val_loss.toFixed(4)} (after the stop)`);
  }
  const meanLoad = loads.reduce((s, l) => s + l.load1, 0) / loads.length;
  const doc = {
    what: 'nano trained on the bundled genesis corpus (Brown, brown-v1) with `neuroshard train`, fixed wall-clock budget',
    command: `neuroshard train ${[...common, '--steps', String(steps), '--eval-every', String(evalEvery), '--checkpoint-every', '1000'].join(' ')}`,
    date: new Date().toISOString(),
    budget_minutes: minutes,
    trained_minutes: round(run.trainS / 60, 2),
    stopped_by: stoppedBy,
    model: { preset: 'nano', ...config },
    batch: { sequences: BATCH, tokens_per_sequence: SEQ, tokens_per_step: BATCH * SEQ },
    target_steps: steps,
    machine: {
      cpu: cpus()[0]?.model ?? '?',
      cores: availableParallelism(),
      threads,
      load1_mean: round(meanLoad, 2),
      load1_samples: loads,
      note: 'shared machine: other processes ran at the same time (load1_mean includes this run itself, about the thread count)',
    },
    calibration: { ms_per_step: round(stepS * 1000, 1), tokens_per_s: round(rate, 1), validation_s: round(evalS, 2) },
    unigram_baseline: baseline,
    final: { step: final.step, train_loss: final.train_loss, val_loss: final.val_loss, tokens_per_s: final.tokens_per_s },
    val,
    train: trainCurve,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'learning-curve.json'), JSON.stringify(doc, null, 1) + '\n');
  writeFileSync(join(outDir, 'learning-curve.svg'), svg(doc));
  log(`learning-run: final step ${final.step}, val loss ${final.val_loss?.toFixed(4)} vs unigram ${baseline?.toFixed(3)}, ${final.tokens_per_s} tokens/s, mean load ${meanLoad.toFixed(2)}`);
  log(`learning-run: wrote ${join(outDir, 'learning-curve.json')} and learning-curve.svg`);
} finally {
  rmSync(join(scratch, 'calibration'), { recursive: true, force: true });
  if (givenDataDir === undefined) rmSync(scratch, { recursive: true, force: true });
}

function round(x, d) {
  const k = 10 ** d;
  return Math.round(x * k) / k;
}

/** The chart: losses (nats/token) against steps; minutes on the top axis; the unigram baseline dashed. */
function svg(doc) {
  const W = 760;
  const H = 460;
  const m = { l: 64, r: 150, t: 78, b: 52 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const maxStep = Math.max(doc.final.step, ...doc.val.map((v) => v.step), 1);
  const all = [...doc.val.map((v) => v.loss), ...doc.train.map((v) => v.loss), doc.unigram_baseline ?? 0].filter(Number.isFinite);
  const yMax = Math.ceil(Math.max(...all) * 2) / 2;
  const yMin = Math.floor(Math.min(...all) * 2) / 2;
  const x = (s) => m.l + (s / maxStep) * pw;
  const y = (l) => m.t + ((yMax - l) / (yMax - yMin)) * ph;
  const f = (n) => n.toFixed(1);
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.l}" y="20" font-size="15" font-weight="bold">NeuroLLM nano on the genesis corpus: ${doc.trained_minutes} min, ${doc.final.step} steps</text>`);
  out.push(
    `<text x="${m.l}" y="38" fill="#555">${doc.machine.threads} threads of ${doc.machine.cores} cores (shared, mean load ${doc.machine.load1_mean}), batch ${doc.batch.sequences}×${doc.batch.tokens_per_sequence}, ${Math.round(doc.final.tokens_per_s)} tokens/s</text>`,
  );
  // grid and y axis
  for (let l = yMin; l <= yMax + 1e-9; l += 0.5) {
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${f(y(l))}" y2="${f(y(l))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 8}" y="${f(y(l) + 4)}" text-anchor="end">${l.toFixed(1)}</text>`);
  }
  out.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">loss (nats/token)</text>`);
  // x axis: steps below, minutes above (from the validation points' times)
  const stepTick = niceStep(maxStep / 6);
  for (let s = 0; s <= maxStep; s += stepTick) {
    out.push(`<line x1="${f(x(s))}" x2="${f(x(s))}" y1="${m.t + ph}" y2="${m.t + ph + 5}" stroke="#333"/>`);
    out.push(`<text x="${f(x(s))}" y="${m.t + ph + 18}" text-anchor="middle">${s}</text>`);
  }
  out.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">step</text>`);
  // minutes: interpolated between the validation points' (step, time), since the speed drifted during the run
  const timed = doc.val.filter((v) => Number.isFinite(v.t));
  if (timed.length >= 2 && timed[timed.length - 1].t > 0) {
    const total = timed[timed.length - 1].t / 60;
    const stepAt = (min) => {
      const sec = min * 60;
      for (let i = 1; i < timed.length; i++) {
        const a = timed[i - 1];
        const b = timed[i];
        if (sec <= b.t) return b.t === a.t ? b.step : a.step + ((sec - a.t) / (b.t - a.t)) * (b.step - a.step);
      }
      return timed[timed.length - 1].step;
    };
    const tick = niceStep(total / 6);
    for (let t = 0; t <= total + 1e-9; t += tick) {
      const sx = x(stepAt(t));
      out.push(`<line x1="${f(sx)}" x2="${f(sx)}" y1="${m.t}" y2="${m.t - 5}" stroke="#333"/>`);
      out.push(`<text x="${f(sx)}" y="${m.t - 8}" text-anchor="middle" fill="#555">${round(t, 1)}</text>`);
    }
    out.push(`<text x="${m.l + pw + 8}" y="${m.t - 8}" fill="#555">minutes</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  // unigram baseline
  if (Number.isFinite(doc.unigram_baseline)) {
    const by = f(y(doc.unigram_baseline));
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${by}" y2="${by}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.l + pw + 8}" y="${f(y(doc.unigram_baseline) + 4)}" fill="#d62728">unigram ${doc.unigram_baseline.toFixed(3)}</text>`);
  }
  // train loss (mean of each 10-step window) and validation loss
  const path = (pts) => pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(x(p.step))},${f(y(p.loss))}`).join(' ');
  if (doc.train.length > 0) out.push(`<path d="${path(doc.train)}" fill="none" stroke="#9ecae1" stroke-width="1"/>`);
  if (doc.val.length > 0) {
    out.push(`<path d="${path(doc.val)}" fill="none" stroke="#08519c" stroke-width="2"/>`);
    for (const v of doc.val) out.push(`<circle cx="${f(x(v.step))}" cy="${f(y(v.loss))}" r="2.5" fill="#08519c"/>`);
    const lv = doc.val[doc.val.length - 1];
    out.push(`<text x="${m.l + pw + 8}" y="${f(y(lv.loss) + 4)}" fill="#08519c">val ${lv.loss.toFixed(3)}</text>`);
  }
  // legend
  const lx = m.l + pw - 190;
  const ly = m.t + 14;
  out.push(`<rect x="${lx - 8}" y="${ly - 12}" width="196" height="62" fill="white" stroke="#ccc"/>`);
  out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="#9ecae1" stroke-width="2"/><text x="${lx + 30}" y="${ly + 4}">train loss (10-step mean)</text>`);
  out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly + 18}" y2="${ly + 18}" stroke="#08519c" stroke-width="2"/><text x="${lx + 30}" y="${ly + 22}">validation loss (held out)</text>`);
  out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly + 36}" y2="${ly + 36}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6 4"/><text x="${lx + 30}" y="${ly + 40}">unigram baseline</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** 1, 2 or 5 × a power of ten, at least `raw`. */
function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const k of [1, 2, 5, 10]) if (k * p >= raw) return k * p;
  return 10 * p;
}
