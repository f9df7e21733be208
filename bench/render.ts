/**
 * Render benchmark: cold render, one-app-change render, `haproxy -c` time and peak RSS for 100,
 * 1,000 and 10,000 apps x 3 tasks with the default template. Prints JSON (medians, min and max over
 * several runs). Each size runs in its own child process so that peak RSS is per size.
 *
 *   npx tsx bench/render.ts                 # all sizes
 *   npx tsx bench/render.ts --sizes 1000    # one size
 *
 * Figures vary 10-20 % run to run on shared machines (see ../shared/BENCHMARKING.md): compare only
 * figures from the same run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createRenderer } from '../common/render.js';
import { buildTemplateData } from '../common/template-data.js';
import type { HAProxySettings, MarathonApp, ServiceRecord } from '../common/model.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const TEMPLATE_PATH = join(ROOT, 'templates', 'haproxy.cfg.liquid');
const NOW = Date.parse('2024-01-01T00:00:00Z');
const STARTED = '2023-12-31T00:00:00.000Z';
const TASKS_PER_APP = 3;

const SETTINGS: HAProxySettings = {
  HttpBind: '*:80',
  StatsBind: '127.0.0.1:8081',
  StatsUser: 'bench',
  StatsPassword: 'bench-password',
  AdminSocket: '/run/haproxy/admin.sock',
  BindOptions: 'noreuseport',
};

interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number;
}

function spread(samples: number[]): Spread {
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  const r = (x: number) => Math.round(x * 100) / 100;
  return { median: r(median), min: r(s[0]), max: r(s[s.length - 1]), runs: s.length };
}

function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/** A Marathon 1.x app with an HTTP health check and `tasks` healthy tasks, like the sizes Bamboo was measured with. */
function marathonApp(i: number, tasks: number, variant = 0): MarathonApp {
  const id = `/group-${i % 50}/app-${i}`;
  const taskPrefix = id.slice(1).replace(/\//g, '_');
  return {
    id,
    env: { APP_INDEX: String(i) },
    labels: { team: `team-${i % 7}` },
    portDefinitions: [{ port: 10000 + (i % 50000), protocol: 'tcp' }],
    healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0, gracePeriodSeconds: 300, intervalSeconds: 10 }],
    deployments: [],
    tasks: Array.from({ length: tasks }, (_, t) => ({
      id: `${taskPrefix}.${t}-${variant}`,
      appId: id,
      host: `10.${(i >> 8) & 255}.${i & 255}.${t + 1}`,
      ports: [31000 + t + variant],
      state: 'TASK_RUNNING',
      startedAt: STARTED,
      stagedAt: STARTED,
      healthCheckResults: [{ alive: true, consecutiveFailures: 0 }],
    })),
  };
}

function services(n: number): Record<string, ServiceRecord> {
  const out: Record<string, ServiceRecord> = {};
  // One app in ten has a host rule, as when some teams set a domain in the UI.
  for (let i = 0; i < n; i += 10) {
    const id = `/group-${i % 50}/app-${i}`;
    out[id] = { Id: id, Acl: `hdr(host) -i app-${i}.example.com`, Config: {} };
  }
  return out;
}

function haproxyVersion(): string {
  try {
    return execFileSync('haproxy', ['-v'], { encoding: 'utf8' }).split('\n')[0];
  } catch {
    return 'not installed';
  }
}

function benchSize(n: number): Record<string, unknown> {
  const templateText = readFileSync(TEMPLATE_PATH, 'utf8');
  const apps = Array.from({ length: n }, (_, i) => marathonApp(i, TASKS_PER_APP));
  const svc = services(n);
  const coldRuns = n >= 10_000 ? 5 : 9;
  const changeRuns = 21;

  const buildSamples: number[] = [];
  let built = buildTemplateData({ apps, services: svc, now: NOW });
  for (let r = 0; r < coldRuns; r++) buildSamples.push(time(() => (built = buildTemplateData({ apps, services: svc, now: NOW }))));
  const warnings = built.warnings.length;

  const parseSamples: number[] = [];
  const coldSamples: number[] = [];
  let text = '';
  for (let r = 0; r < coldRuns; r++) {
    let renderer!: ReturnType<typeof createRenderer>;
    parseSamples.push(time(() => (renderer = createRenderer(templateText, { filename: 'templates/haproxy.cfg.liquid' }))));
    coldSamples.push(time(() => (text = renderer.render(built.data, SETTINGS).text)));
  }

  // One-app change: a warm renderer, then one app's task moves to a new port each round.
  const renderer = createRenderer(templateText);
  renderer.render(built.data, SETTINGS);
  const changeRender: number[] = [];
  const changeTotal: number[] = [];
  const unchanged: number[] = [];
  let misses = 0;
  for (let r = 0; r < changeRuns; r++) {
    const target = (r * 7919) % n;
    apps[target] = marathonApp(target, TASKS_PER_APP, r + 1);
    let changedText = '';
    const t0 = performance.now();
    const next = buildTemplateData({ apps, services: svc, now: NOW });
    const t1 = performance.now();
    changedText = renderer.render(next.data, SETTINGS).text;
    const t2 = performance.now();
    changeRender.push(t2 - t1);
    changeTotal.push(t2 - t0);
    misses = Math.max(misses, renderer.stats().misses);
    if (changedText.length === 0) throw new Error('empty render');
    unchanged.push(time(() => renderer.render(next.data, SETTINGS)));
  }

  // haproxy -c on the generated file. Path length changes HAProxy's parse time at 10,000 apps
  // (BENCHMARKING.md), so it is reported.
  let haproxyCheck: Spread | string = 'haproxy not installed';
  const dir = mkdtempSync(join(tmpdir(), 'bamboo-bench-'));
  const cfgPath = join(dir, 'haproxy.cfg');
  writeFileSync(cfgPath, text);
  if (haproxyVersion() !== 'not installed') {
    const samples: number[] = [];
    const checkRuns = n >= 10_000 ? 5 : 9;
    for (let r = 0; r < checkRuns; r++) {
      const t0 = performance.now();
      const res = spawnSync('haproxy', ['-c', '-q', '-f', cfgPath], { encoding: 'utf8' });
      samples.push(performance.now() - t0);
      if (res.status !== 0) throw new Error(`haproxy -c failed: ${res.stderr}`);
    }
    haproxyCheck = spread(samples);
  }
  rmSync(dir, { recursive: true, force: true });

  return {
    apps: n,
    tasks: n * TASKS_PER_APP,
    outputBytes: Buffer.byteLength(text),
    outputLines: text.split('\n').length,
    warnings,
    buildTemplateDataMs: spread(buildSamples),
    parseTemplateMs: spread(parseSamples),
    coldRenderMs: spread(coldSamples),
    oneAppChangeRenderMs: spread(changeRender),
    oneAppChangeBuildAndRenderMs: spread(changeTotal),
    unchangedRerenderMs: spread(unchanged),
    oneAppChangeMaxBlocksRendered: misses,
    haproxyCheckMs: haproxyCheck,
    configPathLength: cfgPath.length,
    peakRssMB: Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10,
  };
}

function main(): void {
  const args = process.argv.slice(2);
  const single = args.indexOf('--size');
  if (single >= 0) {
    process.stdout.write(JSON.stringify(benchSize(Number(args[single + 1]))) + '\n');
    return;
  }
  const sizesArg = args.indexOf('--sizes');
  const sizes = sizesArg >= 0 ? args[sizesArg + 1].split(',').map(Number) : [100, 1_000, 10_000];
  const results: unknown[] = [];
  // Other processes on a shared machine slow every figure down; the load average says how much.
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  for (const n of sizes) {
    // A child per size: peak RSS then belongs to that size alone.
    const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--size', String(n)], {
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    if (child.status !== 0) {
      process.stderr.write(child.stderr);
      process.exit(1);
    }
    results.push(JSON.parse(child.stdout.trim().split('\n').pop() as string));
  }
  const liquidVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'liquidjs', 'package.json'), 'utf8')) as { version: string }).version;
  process.stdout.write(
    JSON.stringify(
      {
        node: process.version,
        liquidjs: liquidVersion,
        haproxy: haproxyVersion(),
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
        template: 'templates/haproxy.cfg.liquid',
        results,
      },
      null,
      2,
    ) + '\n',
  );
}

main();
