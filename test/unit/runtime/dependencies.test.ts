/**
 * The Node versions we support (package.json `engines`, tested on 20, 22 and 24) against our dependencies' own
 * engine ranges. Three packages we run declare Node ≥ 22: cookie@2 (via fastify → light-my-request), nanoid@6
 * (via @libp2p/circuit-relay-v2) and p-retry@8 (via libp2p). Their code uses nothing Node 20.19 lacks; the ranges
 * follow their authors' policy of dropping Node versions past end of life. cookie@2 is an ES module that
 * light-my-request `require`s, which Node does by default from 20.19, 22.12 and 23.0 on: hence our `engines`
 * range. So:
 *
 * - every production dependency whose range excludes the running Node must be one of those three, checked here
 *   (a new one fails this test until someone checks what we use of it);
 * - what we use of each runs here, on whatever Node runs the suite, the way our code reaches it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { nanoid } from 'nanoid';
import pRetry from 'p-retry';
import { REPO_ROOT } from '../../utils/paths.js';

type Version = [number, number, number];

function parseVersion(v: string): Version {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v.trim());
  if (m === null) throw new Error(`not a version: ${v}`);
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

function cmp(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/**
 * Whether `version` satisfies an npm engines range: `||`-separated sets of space-separated comparators
 * (>=, >, <=, <, =), caret and tilde ranges, x-ranges (`20.x`, `22`) and `*`. Throws on other forms (hyphen
 * ranges, prereleases) so that an unexpected range fails loudly instead of passing.
 */
function satisfies(version: string, range: string): boolean {
  const v = parseVersion(version);
  return range.split('||').some((set) => {
    const parts = set.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter((p) => p !== '');
    // Parse every part before judging any, so that an unsupported form always throws.
    const tests = parts.map((p): ((v: Version) => boolean) => {
      if (p === '*' || p === 'x') return () => true;
      const m = /^(>=|<=|>|<|=|\^|~)?v?(\d+)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/.exec(p);
      if (m === null) throw new Error(`unsupported range part "${p}" in "${range}"`);
      const op = m[1] ?? '';
      const major = Number(m[2]);
      const minor = m[3] === undefined || m[3] === 'x' || m[3] === '*' ? undefined : Number(m[3]);
      const patch = m[4] === undefined || m[4] === 'x' || m[4] === '*' ? undefined : Number(m[4]);
      const lo: Version = [major, minor ?? 0, patch ?? 0];
      // The first version past a partial or caret/tilde range.
      const next = (): Version => {
        if (op === '^') return major > 0 || minor === undefined ? [major + 1, 0, 0] : [0, minor + 1, 0];
        if (op === '~' && minor !== undefined) return [major, minor + 1, 0];
        if (minor === undefined) return [major + 1, 0, 0];
        if (patch === undefined) return [major, minor + 1, 0];
        return [major, minor, patch + 1];
      };
      const hi = next();
      switch (op) {
        case '>=':
          return (x) => cmp(x, lo) >= 0;
        case '>':
          return (x) => cmp(x, hi) >= 0;
        case '<':
          return (x) => cmp(x, lo) < 0;
        case '<=':
          return (x) => cmp(x, hi) < 0;
        default: // '', '=', '^', '~': from lo up to (not including) hi
          return (x) => cmp(x, lo) >= 0 && cmp(x, hi) < 0;
      }
    });
    return tests.every((t) => t(v));
  });
}

/** Packages that declare Node ≥ 22 and that we checked on Node 20: what we use of each is exercised below. */
const CHECKED_ON_20: Record<string, string> = {
  cookie: 'fastify → light-my-request; only inject() (our API tests) loads it',
  nanoid: '@libp2p/circuit-relay-v2: the id of each relay reservation',
  'p-retry': "libp2p's reconnect queue: redials a peer tagged keep-alive (a relay we hold a reservation on)",
};

describe('supported Node versions against our dependencies', () => {
  it('the ranges this check reads', () => {
    assert.equal(satisfies('20.20.2', '>=20.19'), true);
    assert.equal(satisfies('20.18.9', '>=20.19'), false);
    assert.equal(satisfies('20.20.2', '>=22'), false);
    assert.equal(satisfies('22.23.5', '^22 || ^24 || >=26'), true);
    assert.equal(satisfies('23.1.0', '^22 || ^24 || >=26'), false);
    assert.equal(satisfies('24.22.3', '20.x || 22.x || 23.x || 24.x || 25.x || 26.x'), true);
    assert.equal(satisfies('27.0.0', '20.x || 22.x || 23.x || 24.x || 25.x || 26.x'), false);
    assert.equal(satisfies('21.0.0', '^18 || ^20 || >= 21'), true);
    assert.equal(satisfies('20.19.0', '^20.19.0 || ^22.13.0 || >=24'), true);
    assert.equal(satisfies('22.12.0', '^20.19.0 || ^22.13.0 || >=24'), false);
    assert.equal(satisfies('20.0.0', '>= 10.x'), true);
    assert.equal(satisfies('0.9.0', '>=0.10.0'), false);
    assert.equal(satisfies('20.0.0', '*'), true);
    assert.equal(satisfies('22.11.0', '^20.19.0 || ^22.12.0 || >=23'), false);
    assert.equal(satisfies('21.7.0', '^20.19.0 || ^22.12.0 || >=23'), false);
    assert.equal(satisfies('23.0.0', '^20.19.0 || ^22.12.0 || >=23'), true);
    assert.throws(() => satisfies('20.0.0', '1.0.0 - 2.0.0'), /unsupported/);
  });

  it(`this Node (${process.version}) is within package.json engines`, () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    assert.ok(satisfies(process.version, pkg.engines.node), `${process.version} is outside engines.node ${pkg.engines.node}`);
  });

  it('every production dependency whose engine range excludes this Node is one we checked', () => {
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; engines?: { node?: string } | string[] }>;
    };
    const outside: string[] = [];
    for (const [path, p] of Object.entries(lock.packages)) {
      if (path === '' || p.dev === true || Array.isArray(p.engines) || p.engines?.node === undefined) continue;
      if (!satisfies(process.version, p.engines.node)) outside.push(`${path.slice(path.lastIndexOf('node_modules/') + 13)} (${p.engines.node})`);
    }
    const unchecked = outside.filter((o) => !(o.slice(0, o.indexOf(' (')) in CHECKED_ON_20));
    assert.deepEqual(unchecked, [], `dependencies that do not claim to run on ${process.version} and that nobody checked`);
    if (parseVersion(process.version)[0] >= 22) assert.deepEqual(outside, [], `on Node ≥ 22 every production dependency claims to run`);
  });

  it('cookie: fastify inject() with cookies (light-my-request requires the ES module cookie@2)', async () => {
    const app = Fastify();
    app.get('/echo', async (req) => ({ cookie: req.headers.cookie ?? null }));
    try {
      const res = await app.inject({ method: 'GET', url: '/echo', cookies: { a: 'b', c: 'd e;f' } });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), { cookie: 'a=b; c=d%20e%3Bf' });
    } finally {
      await app.close();
    }
  });

  it('the engines floor: without require() of ES modules (Node 21, 22.0–22.11) light-my-request cannot load cookie@2', () => {
    const run = (flags: string[]) =>
      spawnSync(process.execPath, [...flags, '-e', "require('light-my-request'); console.log('loaded')"], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    const ok = run([]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /loaded/);
    const without = run(['--no-experimental-require-module']);
    assert.notEqual(without.status, 0);
    assert.match(without.stderr, /ERR_REQUIRE_ESM[\s\S]*cookie/);
  });

  it('nanoid: url-safe 21-character ids, distinct', () => {
    const ids = new Set(Array.from({ length: 2000 }, () => nanoid()));
    assert.equal(ids.size, 2000);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{21}$/);
  });

  it("p-retry as libp2p's reconnect queue calls it: retries after failures, stops on abort and when retries run out", async () => {
    let calls = 0;
    const got = await pRetry(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw new Error(`dial failed ${attempt}`);
        return 'connected';
      },
      { retries: 5, factor: 2, minTimeout: 5, signal: AbortSignal.timeout(30_000) },
    );
    assert.equal(got, 'connected');
    assert.equal(calls, 3);

    calls = 0;
    await assert.rejects(
      pRetry(
        async () => {
          calls++;
          throw new Error('unreachable');
        },
        { retries: 2, factor: 1, minTimeout: 1 },
      ),
      /unreachable/,
    );
    assert.equal(calls, 3, 'one try and two retries');

    const ac = new AbortController();
    calls = 0;
    const stopped = pRetry(
      async () => {
        calls++;
        if (calls === 1) setImmediate(() => ac.abort(new Error('node stopping')));
        throw new Error('dial failed');
      },
      { retries: 5, minTimeout: 60_000, signal: ac.signal },
    );
    await assert.rejects(stopped, /node stopping/);
    assert.equal(calls, 1, 'aborted during the back-off, before a second try');
  });
});
