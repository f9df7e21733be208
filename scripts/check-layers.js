#!/usr/bin/env node
// Dependencies point one way: common <- api, common <- worker, never api <-> worker, and common never
// imports api/, worker/ or cli/. harness/ (the Marathon simulator and the launchers of ZooKeeper and
// other real processes, used by `bamboo demo`, the benchmarks and the tests) sits beside the product:
// only cli/ (the demo), bench/ and test/ use it, and nothing shipped imports test/. madge checks
// cycles; this checks direction.
//
// Usage: node scripts/check-layers.js [ROOT]   (ROOT defaults to this repository)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.argv[2] ?? resolve(dirname(fileURLToPath(import.meta.url)), '..'));
const rules = {
  common: ['api', 'worker', 'cli', 'harness', 'bench', 'test'],
  api: ['worker', 'cli', 'harness', 'bench', 'test'],
  worker: ['api', 'cli', 'harness', 'bench', 'test'],
  cli: ['bench', 'test'],
  harness: ['api', 'worker', 'cli', 'bench', 'test'],
  bench: ['test'],
};
const bad = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) check(p);
  }
}
function check(file) {
  const layer = relative(root, file).split('/')[0];
  const forbidden = rules[layer] ?? [];
  const src = readFileSync(file, 'utf8');
  for (const m of src.matchAll(/(?:from|import)\s*\(?\s*['"](\.[^'"]+)['"]/g)) {
    const target = relative(root, resolve(dirname(file), m[1])).split('/')[0];
    if (forbidden.includes(target)) bad.push(`${relative(root, file)} imports ${m[1]} (${layer} must not depend on ${target})`);
  }
}
for (const layer of Object.keys(rules)) {
  try { walk(join(root, layer)); } catch { /* layer not present yet */ }
}
if (bad.length) {
  console.error(bad.join('\n'));
  process.exit(1);
}
console.log('layers ok');
