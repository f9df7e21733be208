#!/usr/bin/env node
// Dependencies point one way: common <- api, common <- worker, never api <-> worker, and common never
// imports api/, worker/ or cli/. harness/ (the Marathon simulator and the launchers of ZooKeeper and
// other real processes, used by `bamboo demo`, the benchmarks and the tests) sits beside the product:
// only cli/ (the demo), bench/ and test/ use it, and nothing shipped imports test/. madge checks
// cycles; this checks direction, and that the pure core (PURE_CORE) imports only itself and liquidjs.
//
// Usage: node scripts/check-layers.js [ROOT]   (ROOT defaults to this repository)
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const rules = {
  common: ['api', 'worker', 'cli', 'harness', 'bench', 'test'],
  api: ['worker', 'cli', 'harness', 'bench', 'test'],
  worker: ['api', 'cli', 'harness', 'bench', 'test'],
  cli: ['bench', 'test'],
  harness: ['api', 'worker', 'cli', 'bench', 'test'],
  bench: ['test'],
};

/**
 * The pure core: Marathon apps + rules -> template data -> haproxy.cfg text, and the pure halves
 * around it. No clock, no I/O, no process state: these files import each other, liquidjs and
 * PURE_BUILTINS, nothing else (a type-only import counts too: it ties the core to an adapter).
 */
export const PURE_CORE = [
  'common/acl.ts',
  'common/app-equality.ts',
  'common/errors.ts',
  'common/liquid-filters.ts',
  'common/model.ts',
  'common/port-policy.ts',
  'common/reload-alerts.ts',
  'common/render.ts',
  'common/rule-probe.ts',
  'common/slots.ts',
  'common/snapshot-delta.ts',
  'common/snapshot-segments.ts',
  'common/template-data.ts',
];
export const PURE_PACKAGES = ['liquidjs'];
/** Node built-ins the core may use, and which of their exports: hashing is deterministic. */
export const PURE_BUILTINS = { 'node:crypto': ['createHash'] };

const IMPORT = /\b(?:import|export)\s+(type\s+)?([\w*$\s{},]*?)\s*from\s*['"]([^'"]+)['"]|\bimport\s*['"]([^'"]+)['"]/g;
const DYNAMIC = /\bimport\s*\(|\brequire\s*\(/;

/** Every static import and re-export of a source text: { spec, clause }. */
export function importsOf(src) {
  const out = [];
  for (const m of src.matchAll(IMPORT)) out.push({ spec: m[3] ?? m[4], clause: (m[2] ?? '').trim() });
  return out;
}

/** The names a clause binds from a module, or null when it takes the default or the whole namespace. */
function namedOnly(clause) {
  const m = /^\{([^}]*)\}$/.exec(clause);
  if (!m) return null;
  return m[1].split(',').map((s) => s.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0]).filter(Boolean);
}

function purityProblems(rel, src, pure) {
  const bad = [];
  const why = `the pure core imports only itself, ${PURE_PACKAGES.join(', ')} and ${Object.entries(PURE_BUILTINS).map(([b, names]) => `${b} (${names.join(', ')})`).join(', ')}`;
  for (const { spec, clause } of importsOf(src)) {
    if (spec.startsWith('.')) {
      const target = join(dirname(rel), spec).replace(/\.js$/, '.ts');
      if (!pure.includes(target)) bad.push(`${rel} imports ${spec} (${why})`);
    } else if (PURE_BUILTINS[spec]) {
      const names = namedOnly(clause);
      if (!names || names.some((n) => !PURE_BUILTINS[spec].includes(n))) bad.push(`${rel} imports ${clause || '*'} from ${spec} (${why})`);
    } else if (!PURE_PACKAGES.includes(spec)) {
      bad.push(`${rel} imports ${spec} (${why})`);
    }
  }
  if (DYNAMIC.test(src)) bad.push(`${rel} loads a module at run time (${why})`);
  return bad;
}

/**
 * The layer and purity violations of the tree at root, one line each (empty when it is clean).
 * Files of `pure` that do not exist are skipped: the unit test checks that every one is present here.
 */
export function checkLayers(root, { pure = PURE_CORE } = {}) {
  const bad = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) check(p);
    }
  };
  const check = (file) => {
    const rel = relative(root, file);
    const layer = rel.split('/')[0];
    const forbidden = rules[layer] ?? [];
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/(?:from|import)\s*\(?\s*['"](\.[^'"]+)['"]/g)) {
      const target = relative(root, resolve(dirname(file), m[1])).split('/')[0];
      if (forbidden.includes(target)) bad.push(`${rel} imports ${m[1]} (${layer} must not depend on ${target})`);
    }
    if (pure.includes(rel)) bad.push(...purityProblems(rel, src, pure));
  };
  for (const layer of Object.keys(rules)) {
    if (existsSync(join(root, layer))) walk(join(root, layer));
  }
  return bad;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const root = resolve(process.argv[2] ?? resolve(dirname(fileURLToPath(import.meta.url)), '..'));
  const bad = checkLayers(root);
  if (bad.length) {
    console.error(bad.join('\n'));
    process.exit(1);
  }
  console.log('layers ok');
}
