/**
 * `npm run bench`: every benchmark scenario on this machine, results as JSON, and docs/BENCHMARKS.md
 * regenerated from them.
 *
 *   npm run bench                              # the full run (~15 min): bench/results/latest.json + docs/BENCHMARKS.md
 *   npm run bench -- --smoke                   # tiny sizes, a few iterations (npm test runs this): bench/results/smoke.json
 *   npm run bench -- --only latency,storm      # some scenarios (render, latency, storm, reload, structural, reloadcost, fanout, throughput, edge, fetch, idle, memory);
 *                                              # merged into the results file: the other scenarios' records stay
 *   npm run bench -- --out FILE --doc FILE     # other result / doc paths (--no-doc: no doc)
 *   npm run bench -- --set latency.events=20 --set stack.sizes=1000   # change a parameter (see each scenario)
 *   npm run bench -- --report [FILE]           # only regenerate the doc from a results file
 *
 * Scenarios 2-4 (latency, storm, reload) share one demo stack per size (`bamboo demo`'s processes,
 * grown to N apps); edge (7) starts its own at its size; every scenario shares one ZooKeeper. A full run first rebuilds dist/ (`tsc`) so
 * the bamboo processes run compiled, as installed (`--no-build` skips it; the runtime used is in
 * the results). Timings are never asserted: a scenario fails only when it cannot complete.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startZooKeeper } from '../harness/zookeeper.js';
import { tempDir } from '../harness/tmp.js';
import { withOverrides, type Ctx } from './lib/context.js';
import { load, LoadSampler, machineInfo, ROOT, versions } from './lib/machine.js';
import { startDemoStack, type DemoStack } from './lib/stack.js';
import { round } from './lib/stats.js';
import { renderReport } from './report.js';
import { edgeParams, edgeScenario } from './scenarios/edge.js';
import { fanoutScenario } from './scenarios/fanout.js';
import { fetchScenario } from './scenarios/fetch.js';
import { idleScenario } from './scenarios/idle.js';
import { latencyParams, latencyScenario } from './scenarios/latency.js';
import { memoryScenario } from './scenarios/memory.js';
import { reloadParams, reloadScenario } from './scenarios/reload.js';
import { renderScenario } from './scenarios/render.js';
import { stormParams, stormScenario } from './scenarios/storm.js';
import { structuralScenario } from './scenarios/structural.js';
import { reloadCostScenario } from './scenarios/reload-cost.js';
import { throughputScenario } from './scenarios/throughput.js';

export const SCENARIOS = ['render', 'latency', 'storm', 'reload', 'structural', 'reloadcost', 'fanout', 'throughput', 'edge', 'fetch', 'idle', 'memory'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface ScenarioRecord {
  ok: boolean;
  errors: string[];
  durationS: number;
  load: { start: number[]; end: number[] };
  params: unknown;
  result: unknown;
  /** Set on the records of a partial run (`--only`) merged into an earlier run's file. */
  startedAt?: string;
  command?: string;
}

export interface BenchResults {
  schema: 1;
  kind: 'full' | 'smoke';
  command: string;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: ReturnType<typeof machineInfo>;
  versions: ReturnType<typeof versions>;
  build: string;
  load: { before: number[]; after: number[]; max1m: number; mean1m: number; samples: Array<{ atS: number; load1: number }> };
  scenarios: Partial<Record<ScenarioName, ScenarioRecord>>;
  /** Partial runs (`--only`) merged into this file later, whose records carry their `startedAt`. */
  partialRuns?: Array<{ startedAt: string; command: string; commit: string; load: BenchResults['load']; scenarios: string[] }>;
}

interface Args {
  smoke: boolean;
  only: ScenarioName[];
  out: string;
  doc: string | null;
  report: string | null;
  build: boolean;
  overrides: Record<string, string>;
}

function parseArgs(argv: string[]): Args {
  const smoke = argv.includes('--smoke');
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 && argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[i + 1] : undefined;
  };
  const known = new Set(['--smoke', '--only', '--out', '--doc', '--no-doc', '--report', '--no-build', '--set']);
  for (const a of argv) if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown option ${a} (known: ${[...known].join(' ')})`);
  const only = (value('--only')?.split(',') ?? [...SCENARIOS]).map((s) => s.trim()) as ScenarioName[];
  for (const s of only) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s} (known: ${SCENARIOS.join(', ')})`);
  const out = value('--out') ?? join(ROOT, 'bench', 'results', smoke ? 'smoke.json' : 'latest.json');
  const doc = argv.includes('--no-doc') ? null : (value('--doc') ?? (smoke ? null : join(ROOT, 'docs', 'BENCHMARKS.md')));
  const report = argv.includes('--report') ? (value('--report') ?? out) : null;
  const overrides: Record<string, string> = {};
  argv.forEach((a, i) => {
    if (a !== '--set') return;
    const m = /^(\w+\.\w+)=(.+)$/.exec(argv[i + 1] ?? '');
    if (!m) throw new Error(`--set wants scenario.key=value, got ${argv[i + 1]}`);
    overrides[m[1]] = m[2];
  });
  return { smoke, only, out, doc, report, build: !smoke && !argv.includes('--no-build'), overrides };
}

const t0 = performance.now();
function log(line: string): void {
  process.stderr.write(`[bench ${String(Math.round((performance.now() - t0) / 1000)).padStart(4)}s load ${load()[0]}] ${line}\n`);
}

function errorText(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message).split('\n').slice(0, 4).join(' | ') : String(err);
}

/** Runs one scenario body, catching its failure into the record. */
async function timed<T>(rec: ScenarioRecord, label: string, fn: () => Promise<T>): Promise<T | undefined> {
  const s = performance.now();
  try {
    return await fn();
  } catch (err) {
    rec.ok = false;
    rec.errors.push(`${label}: ${errorText(err)}`);
    log(`FAILED ${label}: ${errorText(err)}`);
    return undefined;
  } finally {
    rec.durationS = round(rec.durationS + (performance.now() - s) / 1000);
  }
}

function newRecord(params: unknown): ScenarioRecord {
  return { ok: true, errors: [], durationS: 0, load: { start: load(), end: [] }, params, result: null };
}

function writeDoc(results: BenchResults, docPath: string, jsonPath: string): void {
  const jsonRel = relative(dirname(docPath), jsonPath);
  writeFileSync(docPath, renderReport(results, jsonRel));
  log(`wrote ${docPath}`);
}

/**
 * A partial run (`--only`) is merged into the results file it writes (same kind of run): the file's
 * run (date, machine, load) and its other scenarios' records stay; the scenarios run now replace
 * theirs, each stamped with this run's date and command, and the run is listed in `partialRuns`, so
 * one scenario can be re-run without wiping the others' figures.
 */
function mergeEarlier(results: BenchResults, args: Args): BenchResults {
  if (args.only.length === SCENARIOS.length || !existsSync(args.out)) return results;
  let earlier: BenchResults;
  try {
    earlier = JSON.parse(readFileSync(args.out, 'utf8')) as BenchResults;
  } catch {
    return results;
  }
  if (earlier.kind !== results.kind) return results;
  const scenarios = { ...earlier.scenarios };
  for (const [name, rec] of Object.entries(results.scenarios)) scenarios[name as ScenarioName] = { ...rec, startedAt: results.startedAt, command: results.command };
  const run = { startedAt: results.startedAt, command: results.command, commit: results.versions.git.commit, load: results.load, scenarios: Object.keys(results.scenarios) };
  log(`merged into ${args.out}: kept ${Object.keys(earlier.scenarios).filter((n) => !(n in results.scenarios)).join(', ') || 'nothing'} of the run of ${earlier.startedAt}`);
  return { ...earlier, scenarios, partialRuns: [...(earlier.partialRuns ?? []), run] };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.report) {
    if (!args.doc) throw new Error('--report needs a doc path (--doc FILE, or none for docs/BENCHMARKS.md)');
    writeDoc(JSON.parse(readFileSync(args.report, 'utf8')) as BenchResults, args.doc, args.report);
    return 0;
  }
  let build = 'skipped';
  if (args.build) {
    log('building dist/ (tsc) so the bamboo processes run compiled');
    const b0 = performance.now();
    try {
      execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'pipe' });
      build = `tsc ok in ${Math.round(performance.now() - b0)} ms`;
    } catch (err) {
      // Type errors elsewhere in a tree being edited still emit JavaScript.
      build = `tsc reported errors (JavaScript emitted anyway): ${String((err as { stdout?: Buffer }).stdout ?? '').split('\n')[0]}`;
    }
    log(build);
  }
  const startedAt = new Date();
  const loadBefore = load();
  const sampler = new LoadSampler();
  const results: BenchResults = {
    schema: 1,
    kind: args.smoke ? 'smoke' : 'full',
    command: `npm run bench --${args.smoke ? ' --smoke' : ''}${args.only.length < SCENARIOS.length ? ` --only ${args.only.join(',')}` : ''}${Object.entries(args.overrides).map(([k, v]) => ` --set ${k}=${v}`).join('')}`,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    durationS: 0,
    machine: machineInfo(),
    versions: versions(),
    build,
    load: { before: loadBefore, after: [], max1m: 0, mean1m: 0, samples: [] },
    scenarios: {},
  };
  log(`${results.kind} run of ${args.only.join(', ')} on ${results.machine.cpuModel} x${results.machine.cores}, load ${loadBefore.join(' ')}, runtime ${results.versions.runtime}`);
  const dir = tempDir('bamboo-bench-');
  const zk = await startZooKeeper({ dir: join(dir, 'zookeeper') });
  const ctx: Ctx = { smoke: args.smoke, zk: zk.connectionString, dir, log, overrides: args.overrides };
  const want = (s: ScenarioName) => args.only.includes(s);
  try {
    if (want('render')) {
      const rec = newRecord(null);
      results.scenarios.render = rec;
      const r = await timed(rec, 'render', () => renderScenario(ctx));
      if (r) Object.assign(rec, { params: r.params, result: r.result });
      rec.load.end = load();
    }

    // Latency, storm and reload share one demo stack per size.
    const stackSizes = withOverrides(ctx, 'stack', { sizes: args.smoke ? [20] : [100, 1000] }).sizes;
    const shared = (['latency', 'storm', 'reload'] as const).filter(want);
    if (shared.length) {
      const recs = {
        latency: newRecord({ ...latencyParams(ctx), sizes: stackSizes }),
        storm: newRecord({ ...stormParams(ctx), sizes: stackSizes }),
        reload: newRecord({ ...reloadParams(ctx), size: stackSizes[0] }),
      };
      const sizes: Record<string, unknown[]> = { latency: [], storm: [] };
      for (const s of shared) results.scenarios[s] = recs[s];
      for (const size of stackSizes) {
        let stack: DemoStack | undefined;
        try {
          stack = await startDemoStack(ctx.zk, size, log);
        } catch (err) {
          for (const s of shared) {
            recs[s].ok = false;
            recs[s].errors.push(`stack with ${size} apps: ${errorText(err)}`);
          }
          log(`FAILED stack with ${size} apps: ${errorText(err)}`);
          continue;
        }
        try {
          const st = stack;
          if (want('latency')) {
            const r = await timed(recs.latency, `latency at ${size} apps`, () => latencyScenario(ctx, st, latencyParams(ctx)));
            if (r) sizes.latency.push(r);
          }
          if (want('storm')) {
            const r = await timed(recs.storm, `storm at ${size} apps`, () => stormScenario(ctx, st, stormParams(ctx)));
            if (r) sizes.storm.push(r);
          }
          if (want('reload') && size === stackSizes[0]) {
            const r = await timed(recs.reload, `reload at ${size} apps`, () => reloadScenario(ctx, st, reloadParams(ctx)));
            if (r) recs.reload.result = r;
          }
        } finally {
          await stack.stop().catch((err: unknown) => log(`stopping the stack: ${errorText(err)}`));
        }
      }
      recs.latency.result = { sizes: sizes.latency };
      recs.storm.result = { sizes: sizes.storm };
      for (const s of shared) recs[s].load.end = load();
    }

    const separate: Array<[ScenarioName, (c: Ctx) => Promise<{ params: unknown; result: unknown }>]> = [
      ['structural', structuralScenario],
      ['reloadcost', reloadCostScenario],
      ['fanout', fanoutScenario],
      ['throughput', throughputScenario],
      ['edge', async (c) => ({ params: edgeParams(c), result: await edgeScenario(c, edgeParams(c)) })],
      ['fetch', fetchScenario],
      ['idle', idleScenario],
      ['memory', memoryScenario],
    ];
    for (const [name, fn] of separate) {
      if (!want(name)) continue;
      const rec = newRecord(null);
      results.scenarios[name] = rec;
      const r = await timed(rec, name, () => fn(ctx));
      if (r) Object.assign(rec, { params: r.params, result: r.result });
      rec.load.end = load();
    }
  } finally {
    await zk.stop();
  }
  const l = sampler.stop();
  results.load = { before: loadBefore, after: load(), max1m: l.max1m, mean1m: l.mean1m, samples: l.samples };
  results.finishedAt = new Date().toISOString();
  results.durationS = round((Date.now() - startedAt.getTime()) / 1000);
  const written = mergeEarlier(results, args);
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, JSON.stringify(written, null, 2) + '\n');
  log(`wrote ${args.out} (${results.durationS} s)`);
  if (args.doc) writeDoc(written, args.doc, args.out);
  const failed = Object.entries(results.scenarios).filter(([, r]) => !r.ok);
  if (failed.length) log(`failed: ${failed.map(([n, r]) => `${n} (${r.errors.join('; ')})`).join(', ')}`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${errorText(err)}\n`);
    process.exit(2);
  },
);
