/**
 * npm 11 warns at every `npm install` about dependencies whose install scripts `allowScripts` (package.json) does not
 * cover, and a later npm will block them. Every package that package-lock.json marks `hasInstallScript` must have an
 * entry: `true` for the ones we need (native builds, esbuild's binary check), `false` for protobufjs, whose
 * postinstall only warns about how a project that depends on protobufjs directly spells its version range (it
 * reaches us only through the devDependency `protons`). A dependency update that brings a new install script fails
 * here until someone decides which it is (README "Installing").
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../utils/paths.js';

interface Lock {
  packages: Record<string, { hasInstallScript?: boolean }>;
}

describe('install scripts', () => {
  it('every dependency with an install script is named in allowScripts', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { allowScripts: Record<string, boolean> };
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as Lock;
    const withScripts = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && p.hasInstallScript === true)
      .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
    assert.ok(withScripts.length > 0, 'the lockfile marks install scripts');
    const uncovered = [...new Set(withScripts)].filter((name) => !(name in pkg.allowScripts));
    assert.deepEqual(uncovered, [], 'packages with install scripts that allowScripts neither allows nor denies');
    assert.equal(pkg.allowScripts.protobufjs, false, "protobufjs's postinstall is not needed");
  });
});
