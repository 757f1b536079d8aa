/**
 * The dashboard in a real browser (Debian's chromium through playwright-core) against real nodes: the page loads
 * under its Content-Security-Policy with no console error, the training charts fill with points from the training
 * node, a chat round trip streams tokens into the page, and the coverage view changes when a second node joins.
 * Screenshots go to test-results/ for people to look at.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { killAll, LOCAL_NODE_FLAGS, startCli, type CliProcess } from '../utils/cli-process.js';
import { REPO_ROOT, tempDir } from '../utils/paths.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(REPO_ROOT, 'test-results');

after(killAll);

async function startNode(args: string[]): Promise<{ p: CliProcess; url: string }> {
  const p = startCli(['start', ...LOCAL_NODE_FLAGS, ...args]);
  const m = await p.waitLine(/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//, 120_000);
  return { p, url: m[1]! };
}

describe('dashboard in a browser', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, () => {
  const a = tempDir('ns-dash-a-');
  const b = tempDir('ns-dash-b-');
  let browser: Browser;
  let page: Page;
  let nodeA: { p: CliProcess; url: string };
  const problems: string[] = [];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    nodeA = await startNode(['--data-dir', a.dir, '--eval-every', '10', '--checkpoint-every', '0']);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1400 } });
    // console errors include CSP violations ("Refused to …") and failed loads
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('requestfailed', (r) => {
      // the event stream is cut when the page closes; anything else failing is a problem
      if (!r.url().endsWith('/api/events')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`);
    });
  });

  after(async () => {
    await browser?.close();
    for (const n of [nodeA?.p]) {
      if (n !== undefined && n.child.exitCode === null) {
        n.child.kill('SIGINT');
        await n.exited;
      }
    }
    a.cleanup();
    b.cleanup();
  });

  it('loads with no console errors and goes live', async () => {
    const res = await page.goto(`${nodeA.url}/`);
    assert.equal(res?.status(), 200);
    assert.match(res!.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    await page.waitForSelector('[data-testid=conn]:has-text("live")', { timeout: 30_000 });
    const peerId = await page.textContent('[data-testid=node-peer-id]');
    assert.match(peerId ?? '', /^16Uiu2/);
    assert.equal(await page.textContent('[data-testid=node-span]'), '0:4 of 4');
    assert.deepEqual(problems, []);
  });

  it('the charts hold training data from the node', async () => {
    // one training point per second of training, and a validation point every 10 steps
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=loss-chart]')?.getAttribute('data-points') ?? 0) >= 5, undefined, { timeout: 240_000 });
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=loss-chart] .u-over').length === 1, undefined, { timeout: 10_000 });
    const step = Number(((await page.textContent('[data-testid=train-step]')) ?? '').split('/')[0]!.replace(/,/g, ''));
    // the chart's x values are the training points' steps plus the validation steps (step 0 among them)
    assert.ok(step >= 4, `training step shown: ${step}`);
    // the plot drew: uPlot renders into a canvas of the chart's size
    const canvas = await page.$eval('[data-testid=loss-chart] canvas', (c) => ({ w: (c as HTMLCanvasElement).width, h: (c as HTMLCanvasElement).height }));
    assert.ok(canvas.w > 200 && canvas.h > 100, JSON.stringify(canvas));
    await page.screenshot({ path: join(SHOTS, 'dashboard-training.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it('a chat round trip streams tokens into the page', async () => {
    await page.fill('[data-testid=chat-input]', 'The history of the');
    await page.fill('[data-testid=chat-max-tokens]', '24');
    await page.fill('[data-testid=chat-temperature]', '0');
    // record every text the reply shows while it streams
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { __seen: string[] }).__seen = seen;
      new MutationObserver(() => {
        const el = document.querySelector('[data-testid=chat-reply]');
        if (el !== null && el.getAttribute('data-state') === 'streaming') seen.push(el.textContent ?? '');
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await page.click('[data-testid=chat-send]');
    await page.waitForSelector('[data-testid=chat-reply][data-state=done]', { timeout: 180_000 });
    const reply = ((await page.textContent('[data-testid=chat-reply]')) ?? '').trim();
    const seen = await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen);
    const partial = new Set(seen.map((s) => s.replace('▍', '')).filter((s) => s !== '' && s.trim() !== reply));
    assert.ok(reply.length > 0, 'a reply');
    assert.ok(partial.size >= 2, `tokens arrived one by one (saw ${partial.size} partial texts before the whole reply)`);
    await page.screenshot({ path: join(SHOTS, 'dashboard-chat.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it('the coverage view changes when a second node joins', async () => {
    const coverage = (): Promise<string | null> => page.getAttribute('[data-testid=coverage]', 'data-replicas');
    assert.equal(await coverage(), '1,1,1,1');
    const status = (await (await fetch(`${nodeA.url}/api/status`)).json()) as { addresses: string[]; peerId: string };
    const addr = status.addresses.find((x) => x.includes('/tcp/') && !x.includes('/ws'))!;
    const boot = addr.includes('/p2p/') ? addr : `${addr}/p2p/${status.peerId}`;
    const nodeB = await startNode(['--data-dir', b.dir, '--bootstrap', boot, '--no-train', '--span', '0:2']);
    try {
      await page.waitForFunction(() => document.querySelector('[data-testid=coverage]')?.getAttribute('data-replicas') === '2,2,1,1', undefined, { timeout: 120_000 });
      await page.waitForSelector('[data-testid=peers] td:has-text("alive")', { timeout: 30_000 });
      await page.screenshot({ path: join(SHOTS, 'dashboard-two-nodes.png'), fullPage: true });
    } finally {
      nodeB.p.child.kill('SIGINT');
      await nodeB.p.exited;
    }
    assert.deepEqual(problems, []);
  });
});
