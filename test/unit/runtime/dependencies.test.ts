/**
 * The Node versions we support (package.json `engines`, tested on 20, 22 and 24) against our dependencies' own
 * engine ranges. The newest majors of three packages deep in the tree declare Node ≥ 22: cookie@2 (fastify →
 * light-my-request), nanoid@6 (@libp2p/circuit-relay-v2) and p-retry@8 (libp2p), and `npm install` on Node 20
 * warned (EBADENGINE) about each. package.json `overrides` pins, for those parents only, the previous major of
 * each (cookie@1.1, nanoid@5, p-retry@7: ranges that include Node 20), whose API is the same for what the parent
 * calls (docs/LIMITS.md "Session 27: tidy"). So:
 *
 * - no production dependency declares a range that excludes the running Node (an upgrade that brings such a
 *   package back fails here, before a user sees the warning; dev tools are left out: eslint 10's range, for one,
 *   skips 22.12, which our `engines` allows);
 * - what each parent uses of the pinned package runs here, loaded from where the parent loads it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import Fastify from 'fastify';
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

/** The directory of package `name` as code in `fromDir` finds it (Node's lookup: node_modules, walking up). */
function packageDir(fromDir: string, name: string): string {
  for (let d = fromDir; ; d = dirname(d)) {
    const p = join(d, 'node_modules', name);
    if (existsSync(join(p, 'package.json'))) return p;
    if (dirname(d) === d) throw new Error(`${name} is not installed where ${fromDir} looks`);
  }
}

/** The package that `parents` (a dependency path from our package) load as `name`, with its version. */
async function importVia<T>(parents: string[], name: string): Promise<{ mod: T; version: string }> {
  let dir = REPO_ROOT;
  for (const p of parents) dir = packageDir(dir, p);
  const version = (JSON.parse(readFileSync(join(packageDir(dir, name), 'package.json'), 'utf8')) as { version: string }).version;
  const file = createRequire(join(dir, 'package.json')).resolve(name);
  return { mod: (await import(pathToFileURL(file).href)) as T, version };
}

/** What each parent uses of the pinned package (package.json `overrides`), exercised below. */
const PINNED: Record<string, { parents: string[]; major: number; use: string }> = {
  cookie: { parents: ['fastify', 'light-my-request'], major: 1, use: 'stringifySetCookie({ name, value }), in inject() only (our API tests)' },
  nanoid: { parents: ['@libp2p/circuit-relay-v2'], major: 5, use: 'nanoid(): the id of each relay reservation' },
  'p-retry': { parents: ['libp2p'], major: 7, use: "the reconnect queue: redials a peer tagged keep-alive (retries, factor, minTimeout, signal)" },
};

type PRetry = <T>(
  fn: (attempt: number) => Promise<T>,
  options: { retries: number; factor?: number; minTimeout?: number; signal?: AbortSignal },
) => Promise<T>;

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

  it('every production dependency claims to run on this Node (npm install prints no EBADENGINE for them)', () => {
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string; dev?: boolean; engines?: { node?: string } | string[] }>;
    };
    const outside: string[] = [];
    for (const [path, p] of Object.entries(lock.packages)) {
      if (path === '' || p.dev === true || Array.isArray(p.engines) || p.engines?.node === undefined) continue;
      if (!satisfies(process.version, p.engines.node)) outside.push(`${path} ${p.version ?? '?'} (${p.engines.node})`);
    }
    assert.deepEqual(outside, [], `packages that do not claim to run on ${process.version}`);
    // the pins hold where the parents load them (an override that stopped applying would bring the warning back)
    for (const [name, pin] of Object.entries(PINNED)) {
      const at = Object.entries(lock.packages).filter(([path]) => path.endsWith(`node_modules/${name}`));
      assert.ok(at.length > 0, `${name} is in the lock file`);
      for (const [path, p] of at) assert.equal(parseVersion(p.version!)[0], pin.major, `${path} ${p.version}`);
    }
  });

  it('cookie: fastify inject() with cookies, through the cookie light-my-request loads', async () => {
    const { version } = await importVia<object>(PINNED.cookie!.parents, 'cookie');
    assert.equal(parseVersion(version)[0], PINNED.cookie!.major);
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

  it('light-my-request loads its cookie (CommonJS since the pin) without require() of ES modules, as on Node 21 and 22.0–22.11', () => {
    const run = (flags: string[]) =>
      spawnSync(process.execPath, [...flags, '-e', "require('light-my-request'); console.log('loaded')"], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    for (const flags of [[], ['--no-experimental-require-module']]) {
      const r = run(flags);
      assert.equal(r.status, 0, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /loaded/);
    }
  });

  it('nanoid: url-safe 21-character ids, distinct, from the nanoid circuit-relay-v2 loads', async () => {
    const { mod, version } = await importVia<{ nanoid: () => string }>(PINNED.nanoid!.parents, 'nanoid');
    assert.equal(parseVersion(version)[0], PINNED.nanoid!.major);
    const { nanoid } = mod;
    const ids = new Set(Array.from({ length: 2000 }, () => nanoid()));
    assert.equal(ids.size, 2000);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{21}$/);
  });

  it("p-retry as libp2p's reconnect queue calls it: retries after failures, stops on abort and when retries run out", async () => {
    const { mod, version } = await importVia<{ default: PRetry }>(PINNED['p-retry']!.parents, 'p-retry');
    assert.equal(parseVersion(version)[0], PINNED['p-retry']!.major);
    const pRetry = mod.default;
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
