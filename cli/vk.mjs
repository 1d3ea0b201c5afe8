#!/usr/bin/env node
// Entry for the `vk` binary. Runs the bundle built by `npm ci` (cli/build.mjs) when it is at least
// as new as every source file; otherwise (a developer editing sources) runs the TypeScript
// sources through tsx's loader, so an edit is never hidden by a stale bundle.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const bundle = join(here, 'vk.bundle.mjs');
const SOURCE_DIRS = ['schemas', 'controllers', 'reconcilers', 'drivers', 'daemon', 'core', 'api', 'cli'];

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function bundleIsFresh() {
  if (process.env.VK_NO_BUNDLE || !existsSync(bundle)) return false;
  const built = statSync(bundle).mtimeMs;
  return SOURCE_DIRS.every((d) => !existsSync(join(repo, d)) || newestSource(join(repo, d)) <= built);
}

if (bundleIsFresh()) {
  await import(pathToFileURL(bundle).href);
} else if (process.env.VK_REQUIRE_BUNDLE) {
  // Benchmarks measure the bundled daemon; the sources through tsx cost ~35 MB and much CPU more.
  console.error('vk: cli/vk.bundle.mjs is missing or older than the sources; run `node cli/build.mjs` (VK_REQUIRE_BUNDLE is set)');
  process.exit(2);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./main.ts');
}
