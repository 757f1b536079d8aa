#!/usr/bin/env node
// Retakes docs/dashboard.png (shown in README): a genesis node that trains (as `npm start`'s does, in a temporary
// data dir) and a second node that joins it holding layers 0:2, so that the coverage and network panels show two
// holders; one chat round trip fills the playground; then a 1280-wide full-page screenshot in headless chromium
// (Debian's /usr/bin/chromium through playwright-core, a devDependency). Both nodes run in their own process groups
// and are stopped (SIGINT, then SIGKILL) and their data dirs removed however the script ends.
//
//   npm run build && node scripts/dashboard-screenshot.mjs [--out docs/dashboard.png] [--steps N]
//
// --steps: training points to wait for before the second node joins (default 40, about 40 s of training).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { out: { type: 'string', default: join(root, 'docs', 'dashboard.png') }, steps: { type: 'string', default: '40' } } });
const CHROMIUM = '/usr/bin/chromium';
const NODE_FLAGS = ['--no-mdns', '--no-upnp', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0'];
const nodes = [];
const dirs = [];

function log(s) {
  process.stderr.write(`dashboard-screenshot: ${s}\n`);
}

/** Starts `neuroshard start …` in its own process group; resolves with its dashboard URL. */
function startNode(name, args) {
  const dir = mkdtempSync(join(tmpdir(), `ns-shot-${name}-`));
  dirs.push(dir);
  const child = spawn(process.execPath, [join(root, 'bin', 'neuroshard.js'), 'start', '--data-dir', dir, ...NODE_FLAGS, ...args], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  nodes.push({ child, exited });
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: no dashboard URL within 180 s:\n${text.slice(-2000)}`)), 180_000);
    const onData = (d) => {
      text += d.toString();
      const m = /dashboard at (http:\/\/127\.0\.0\.1:\d+)\//.exec(text);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]);
      }
      if (text.length > 1 << 20) text = text.slice(-65536);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was up:\n${text.slice(-2000)}`));
    });
  });
}

async function stopAll() {
  for (const { child, exited } of nodes) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(-child.pid, 'SIGINT');
    } catch {}
    const done = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 20_000))]);
    if (!done) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
      await exited;
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

let browser;
let code = 0;
try {
  const a = await startNode('a', ['--eval-every', '10', '--checkpoint-every', '0']);
  log(`training node up at ${a}/`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.goto(`${a}/`);
  await page.waitForSelector('[data-testid=conn]:has-text("live")', { timeout: 30_000 });
  const steps = Number(values.steps);
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid=loss-chart]')?.getAttribute('data-points') ?? 0) >= n, steps, { timeout: 600_000 });
  log(`${steps} training points on the chart`);
  // a second node holding layers 0:2: coverage 2,2,1,1 and a peer on the network map
  const status = await (await fetch(`${a}/api/status`)).json();
  const addr = status.addresses.find((x) => x.includes('/tcp/') && !x.includes('/ws'));
  const boot = addr.includes('/p2p/') ? addr : `${addr}/p2p/${status.peerId}`;
  const b = await startNode('b', ['--bootstrap', boot, '--no-train', '--span', '0:2']);
  log(`second node up at ${b}/`);
  await page.waitForFunction(() => document.querySelector('[data-testid=coverage]')?.getAttribute('data-replicas') === '2,2,1,1', undefined, { timeout: 180_000 });
  await page.waitForSelector('[data-testid=peers] td:has-text("alive")', { timeout: 60_000 });
  // one chat round trip so the playground shows a streamed reply (sampled with a fixed seed: a young model's greedy
  // reply repeats one word)
  await page.fill('[data-testid=chat-input]', 'The history of the');
  await page.fill('[data-testid=chat-max-tokens]', '24');
  await page.fill('[data-testid=chat-temperature]', '0.8');
  await page.click('[data-testid=chat-send]');
  await page.waitForSelector('[data-testid=chat-reply][data-state=done]', { timeout: 180_000 });
  // let the next tick land, then take the shot from the top of the page (the header is sticky: scrolled, a full-page
  // shot draws it in the middle) with the mouse off the charts
  await page.waitForTimeout(3000);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.mouse.move(0, 0);
  await page.screenshot({ path: values.out, fullPage: true });
  log(`wrote ${values.out} (${Math.round(statSync(values.out).size / 1024)} KB)`);
  if (problems.length > 0) {
    log(`console errors on the page:\n  ${problems.join('\n  ')}`);
    code = 1;
  }
} catch (e) {
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  code = 1;
} finally {
  await browser?.close().catch(() => {});
  await stopAll();
}
process.exit(code);
