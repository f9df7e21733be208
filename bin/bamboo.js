#!/usr/bin/env node
// The one executable. Runs the compiled CLI (npm run build). In a source checkout whose build is
// missing or older than the sources, it runs the TypeScript sources through tsx instead, so a stale
// build never runs by surprise.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

process.env.BAMBOO_CLI_MAIN = '1';
const root = dirname(dirname(fileURLToPath(import.meta.url)));
const built = join(root, 'dist', 'cli', 'main.js');

function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function buildIsCurrent() {
  if (!existsSync(built)) return false;
  if (!existsSync(join(root, 'cli', 'main.ts'))) return true; // installed package: no sources
  const builtAt = statSync(built).mtimeMs;
  return ['cli', 'common', 'api', 'worker', 'harness'].every(
    (d) => newestSource(join(root, d)) <= builtAt,
  );
}

if (buildIsCurrent()) {
  await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'cli', 'main.ts')).href);
}
