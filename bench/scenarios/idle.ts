/**
 * Scenario 7, idle: what an idle HAProxy costs with the default template's health checks, at N apps
 * of 3 tasks with an HTTP health check (every server checked), with the current check timing and with
 * the earlier `inter 5s` side by side. No traffic: the CPU is the checks.
 *
 * Each variant renders the default template (common/core/render.ts) for the apps, starts a bare HAProxy on
 * it (`haproxy -db -dR -f`, this scenario's own process), lets the first checks spread out, then reads
 * HAProxy's CPU time from /proc/<pid>/stat over a window, and counts the checks that reached the
 * backends (three local HTTP servers, one per task index).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRenderer } from '../../common/core/render.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import type { HAProxySettings, MarathonApp } from '../../common/core/model.js';
import { startBackend, type Backend } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { ROOT } from '../lib/machine.js';
import { round, sleep } from '../lib/stats.js';

export interface IdleParams {
  sizes: number[];
  /** Seconds before measuring: the first checks of every server are spread over one interval. */
  warmupS: number;
  /** Seconds measured. */
  measureS: number;
}

export function idleParams(ctx: Ctx): IdleParams {
  return withOverrides(ctx, 'idle', ctx.smoke ? { sizes: [20], warmupS: 1, measureS: 2 } : { sizes: [100, 1000], warmupS: 35, measureS: 60 });
}

/** The check timing of the default template, and what it replaced. */
const CURRENT = 'inter 30s fastinter 2s downinter 10s rise 2 fall 3';
const PREVIOUS = 'inter 5s';

function app(i: number, ports: number[]): MarathonApp {
  const id = `/idle/g${i % 10}/a${i}`;
  return {
    id,
    portDefinitions: [{ port: 10000 + i, protocol: 'tcp' }],
    healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0, gracePeriodSeconds: 300, intervalSeconds: 10 }],
    tasks: ports.map((port, t) => ({
      id: `${id.slice(1).replace(/\//g, '_')}.${t}`,
      appId: id,
      host: '127.0.0.1',
      ports: [port],
      state: 'TASK_RUNNING',
      startedAt: '2024-01-01T00:00:00.000Z',
      healthCheckResults: [{ alive: true, consecutiveFailures: 0 }],
    })),
  } as MarathonApp;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number, tick: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / tick;
}

async function measure(ctx: Ctx, p: IdleParams, size: number, variant: 'current' | 'previous', backends: Backend[], tick: number) {
  let template = readFileSync(join(ROOT, 'templates', 'haproxy.cfg.liquid'), 'utf8');
  if (!template.includes(CURRENT)) throw new Error(`the default template no longer says "${CURRENT}"`);
  if (variant === 'previous') template = template.split(CURRENT).join(PREVIOUS);
  const settings: HAProxySettings = { HttpBind: `127.0.0.1:${await freePort()}`, BindOptions: 'noreuseport' } as HAProxySettings;
  const apps = Array.from({ length: size }, (_, i) => app(i, backends.map((b) => b.port)));
  const text = createRenderer(template).render(buildTemplateData({ apps, services: {}, now: Date.parse('2024-01-02T00:00:00Z') }).data, settings).text;
  const cfg = join(ctx.dir, `idle-${size}-${variant}.cfg`);
  writeFileSync(cfg, text);
  const servers = (text.match(/^\s+server slot-\d+ 127\.0\.0\.1:(?!1\b)\d+/gm) ?? []).length;
  const child = spawn('haproxy', ['-db', '-dR', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await sleep(p.warmupS * 1000);
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${stderr}`);
    const hits0 = backends.reduce((n, b) => n + b.hits, 0);
    const c0 = cpuSeconds(child.pid!, tick);
    const t0 = performance.now();
    await sleep(p.measureS * 1000);
    const c1 = cpuSeconds(child.pid!, tick);
    const s = (performance.now() - t0) / 1000;
    const checks = backends.reduce((n, b) => n + b.hits, 0) - hits0;
    ctx.log(`idle: ${size} apps, ${variant} checks: ${round(((c1 - c0) / s) * 100)} % of a core`);
    return { size, variant, timing: variant === 'current' ? CURRENT : PREVIOUS, checkedServers: servers, cpuPercent: round(((c1 - c0) / s) * 100, 2), checksPerSecond: round(checks / s), seconds: round(s) };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

export async function idleScenario(ctx: Ctx) {
  const p = idleParams(ctx);
  const tick = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  const backends = await Promise.all(['t0', 't1', 't2'].map((n) => startBackend(n)));
  const rows: Array<Awaited<ReturnType<typeof measure>>> = [];
  try {
    for (const size of p.sizes) {
      for (const variant of ['current', 'previous'] as const) rows.push(await measure(ctx, p, size, variant, backends, tick));
    }
  } finally {
    await Promise.all(backends.map((b) => b.close()));
  }
  return { params: { ...p, mode: 'bare haproxy -db on the rendered default template; 3 tasks per app, HTTP health check, every task healthy' }, result: { rows } };
}
