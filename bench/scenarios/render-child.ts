/**
 * One size of the render scenario, alone in its process so that its peak RSS is its own: template
 * data build, cold render (a fresh renderer), one-app-change render (a warm renderer, one app's task
 * moved), unchanged re-render, `haproxy -c` on the output at two config path lengths, peak RSS.
 * Prints one JSON line.
 *
 *   node --import tsx bench/scenarios/render-child.ts --size 1000 --runs 9 --change-runs 21 --check-runs 9
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRenderer } from '../../common/core/render.js';
import { parseAppsArrayText } from '../../common/core/snapshot-delta.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import { TemplateDataMemo } from '../../common/core/template-memo.js';
import type { HAProxySettings, MarathonApp, ServiceRecord } from '../../common/core/model.js';
import { ROOT } from '../lib/machine.js';
import { summarize } from '../lib/stats.js';

const baselineRssMB = process.memoryUsage().rss / 2 ** 20;

const TEMPLATE_PATH = join(ROOT, 'templates', 'haproxy.cfg.liquid');
const NOW = Date.parse('2024-01-01T00:00:00Z');
const STARTED = '2023-12-31T00:00:00.000Z';
const TASKS_PER_APP = 3;
/** Slots as the worker sizes them by default (HAProxy.DynamicServers): one server line per task. */
const SLOTS = { dynamic: true };
/** The length of /etc/haproxy/haproxy.cfg, the production default, which docs/bamboo-baseline.md found slow. */
const SHORT_PATH_CHARS = 24;

const SETTINGS: HAProxySettings = {
  HttpBind: '*:80',
  StatsBind: '127.0.0.1:8081',
  StatsUser: 'bench',
  StatsPassword: 'bench-password',
  AdminSocket: '/run/haproxy/admin.sock',
  BindOptions: 'noreuseport',
};

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function time(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/** A Marathon 1.x app with an HTTP health check and healthy tasks, like the sizes Bamboo was measured with. */
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

/** `haproxy -c` on the text, written at a path of exactly `chars` characters (the parse time depends on it). */
function checkAt(text: string, chars: number, runs: number): { pathChars: number; ms: number[] } {
  const dir = mkdtempSync(join(tmpdir(), 'bb-'));
  try {
    const prefix = `${dir}/`;
    const name = 'h'.repeat(Math.max(1, chars - prefix.length - 4)) + '.cfg';
    const path = prefix + name;
    writeFileSync(path, text);
    const ms: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const res = spawnSync('haproxy', ['-c', '-q', '-f', path], { encoding: 'utf8' });
      ms.push(performance.now() - t0);
      if (res.status !== 0) throw new Error(`haproxy -c failed on the rendered config: ${res.stderr}`);
    }
    return { pathChars: path.length, ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(): void {
  const n = arg('size', 100);
  const runs = arg('runs', 5);
  const changeRuns = arg('change-runs', 11);
  const checkRuns = arg('check-runs', 5);
  const longPathChars = arg('long-path-chars', 41);

  const templateText = readFileSync(TEMPLATE_PATH, 'utf8');
  const apps = Array.from({ length: n }, (_, i) => marathonApp(i, TASKS_PER_APP));
  const svc = services(n);

  const buildMs: number[] = [];
  let built = buildTemplateData({ apps, services: svc, now: NOW, slots: SLOTS });
  for (let r = 0; r < runs; r++) buildMs.push(time(() => (built = buildTemplateData({ apps, services: svc, now: NOW, slots: SLOTS }))));

  const parseMs: number[] = [];
  const coldMs: number[] = [];
  let text = '';
  for (let r = 0; r < runs; r++) {
    let renderer!: ReturnType<typeof createRenderer>;
    parseMs.push(time(() => (renderer = createRenderer(templateText, { filename: 'templates/haproxy.cfg.liquid' }))));
    coldMs.push(time(() => (text = renderer.render(built.data, SETTINGS).text)));
  }

  // One-app change, the way the worker does it: a warm renderer and a warm per-app memo, then one
  // app's tasks move to new ports each round. Usually the change arrives as a hint's delta
  // (common/core/snapshot-delta.ts): the unchanged apps are the very objects of the last build, and only the
  // changed one is new. Without a delta (a big deployment, a missed hint) the worker reads the snapshot
  // from ZooKeeper: its text is cut app by app and only apps whose text changed since the worker's last
  // read are parsed, the others are that read's objects (ControlStore.readSnapshot). Timed separately,
  // with its own renderer and memo; the parse is the read stage, not timed.
  const renderer = createRenderer(templateText);
  const memo = new TemplateDataMemo();
  let held = JSON.parse(JSON.stringify(apps)) as unknown[];
  renderer.render(buildTemplateData({ apps: held, services: svc, now: NOW, memo, slots: SLOTS }).data, SETTINGS);
  const freshRenderer = createRenderer(templateText);
  const freshMemo = new TemplateDataMemo();
  let lastRead = parseAppsArrayText(JSON.stringify(apps))!;
  freshRenderer.render(buildTemplateData({ apps: lastRead.apps, services: svc, now: NOW, memo: freshMemo, slots: SLOTS }).data, SETTINGS);
  const changeRenderMs: number[] = [];
  const changeBuildRenderMs: number[] = [];
  const freshBuildRenderMs: number[] = [];
  const unchangedMs: number[] = [];
  let maxBlocksRendered = 0;
  for (let r = 0; r < changeRuns; r++) {
    const target = (r * 7919) % n;
    apps[target] = marathonApp(target, TASKS_PER_APP, r + 1);
    // What applyDelta gives the worker: the held apps with the changed one replaced.
    held = held.slice();
    held[target] = JSON.parse(JSON.stringify(apps[target])) as unknown;
    const t0 = performance.now();
    const next = buildTemplateData({ apps: held, services: svc, now: NOW, memo, slots: SLOTS });
    const t1 = performance.now();
    const changed = renderer.render(next.data, SETTINGS).text;
    const t2 = performance.now();
    changeRenderMs.push(t2 - t1);
    changeBuildRenderMs.push(t2 - t0);
    maxBlocksRendered = Math.max(maxBlocksRendered, renderer.stats().misses);
    if (changed.length === 0) throw new Error('empty render');
    unchangedMs.push(time(() => renderer.render(next.data, SETTINGS)));

    lastRead = parseAppsArrayText(JSON.stringify(apps), lastRead)!;
    const fresh = lastRead.apps;
    freshBuildRenderMs.push(time(() => freshRenderer.render(buildTemplateData({ apps: fresh, services: svc, now: NOW, memo: freshMemo, slots: SLOTS }).data, SETTINGS)));
  }

  const long = checkAt(text, longPathChars, checkRuns);
  // Side by side, alternating: the same apps with spare slots (HAProxy.DynamicServers=false, the
  // default before dynamic servers), at the production path length.
  const spareText = createRenderer(templateText).render(buildTemplateData({ apps, services: svc, now: NOW }).data, SETTINGS).text;
  const short = { pathChars: SHORT_PATH_CHARS, ms: [] as number[] };
  const spareMs: number[] = [];
  for (let r = 0; r < checkRuns; r++) {
    short.ms.push(...checkAt(text, SHORT_PATH_CHARS, 1).ms);
    spareMs.push(...checkAt(spareText, SHORT_PATH_CHARS, 1).ms);
  }

  // Render + validate, pairing the i-th samples: what one update costs before the reload.
  const pair = (a: number[], b: number[], c: number[]) => c.map((x, i) => (a[i % a.length] ?? 0) + (b[i % b.length] ?? 0) + x);

  const peakRssMB = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(
    JSON.stringify({
      apps: n,
      tasks: n * TASKS_PER_APP,
      outputBytes: Buffer.byteLength(text),
      outputLines: text.split('\n').length,
      serverLines: text.split('\n').filter((l) => /^\s+server /.test(l)).length,
      disabledServerLines: text.split('\n').filter((l) => /^\s+server .*\sdisabled(\s|$)/.test(l)).length,
      warnings: built.warnings.length,
      buildTemplateDataMs: summarize(buildMs),
      parseTemplateMs: summarize(parseMs),
      coldRenderMs: summarize(coldMs),
      oneAppChangeRenderMs: summarize(changeRenderMs),
      oneAppChangeBuildAndRenderMs: summarize(changeBuildRenderMs),
      oneAppChangeFreshReadBuildAndRenderMs: summarize(freshBuildRenderMs),
      unchangedRerenderMs: summarize(unchangedMs),
      oneAppChangeMaxBlocksRendered: maxBlocksRendered,
      haproxyCheckMs: { [`path${short.pathChars}`]: summarize(short.ms), [`path${long.pathChars}`]: summarize(long.ms) },
      configPathChars: [short.pathChars, long.pathChars],
      coldBuildRenderValidateMs: summarize(pair(buildMs, coldMs, short.ms)),
      oneAppChangeRenderValidateMs: summarize(pair(changeBuildRenderMs, [0], short.ms)),
      spareSlots: { serverLines: spareText.split('\n').filter((l) => /^\s+server /.test(l)).length, haproxyCheckMs: summarize(spareMs) },
      baselineRssMB: Math.round(baselineRssMB * 10) / 10,
      peakRssMB: Math.round(peakRssMB * 10) / 10,
    }) + '\n',
  );
}

main();
