/**
 * Scenario: what HAProxy pays for one structural change at N apps, before and after issue 20's
 * changes, on the same machine in the same run. For each variant the default template is rendered
 * for N apps of 3 tasks (HTTP health checks, a server-state file), then HAProxy runs it: `haproxy -c`
 * (wall and CPU time) and a managed master-worker HAProxy reloaded by SIGUSR2 (wall time until the
 * master lists the new worker, and the master's own CPU time per reload, read from /proc, which a
 * busy machine disturbs less than wall time). Before each reload the server state is saved as the
 * worker saves it. Variants:
 * - `before`: 8 slots per backend (the next power of two >= max(tasks + 4, 1.5 x tasks)), every
 *   server's state saved, `haproxy -c` then the reload;
 * - `after`: 5 slots (tasks + max(2, 50 %)), disabled servers left out of the state file, the reload
 *   alone.
 * HAProxy's output is counted, and passed through the worker's summariser (common/adapters/haproxy/haproxy-log.ts) to
 * count the lines it logs at info or above.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseShowProc } from '../../common/core/reload-alerts.js';
import { cliCommand } from '../../common/adapters/haproxy/master-cli.js';
import { HAProxyOutputLog, LineSplitter } from '../../common/adapters/haproxy/haproxy-log.js';
import { filterServerState } from '../../common/core/server-state.js';
import { serverLines } from '../../common/core/config-diff.js';
import { silentLogger } from '../../common/log.js';
import type { HAProxySettings, MarathonApp } from '../../common/core/model.js';
import { createRenderer } from '../../common/core/render.js';
import type { SlotTable } from '../../common/core/slots.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { ROOT } from '../lib/machine.js';
import { round, sleep, summarize, until } from '../lib/stats.js';

export interface ReloadCostParams {
  sizes: number[];
  checks: number;
  reloads: number;
}

export function reloadCostParams(ctx: Ctx): ReloadCostParams {
  return withOverrides(ctx, 'reloadcost', ctx.smoke ? { sizes: [20], checks: 2, reloads: 2 } : { sizes: [100, 1000], checks: 7, reloads: 7 });
}

const TASKS = 3;
const STARTED = '2023-12-31T00:00:00.000Z';

function app(i: number): MarathonApp {
  const id = `/group-${i % 50}/app-${i}`;
  const prefix = id.slice(1).replace(/\//g, '_');
  return {
    id,
    portDefinitions: [{ port: 10000 + i, protocol: 'tcp' }],
    healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0, gracePeriodSeconds: 300, intervalSeconds: 10 }],
    tasks: Array.from({ length: TASKS }, (_, t) => ({
      id: `${prefix}.${t}`,
      appId: id,
      host: `127.0.0.${t + 2}`,
      ports: [31000 + t],
      state: 'TASK_RUNNING',
      startedAt: STARTED,
      stagedAt: STARTED,
      healthCheckResults: [{ alive: true, consecutiveFailures: 0 }],
    })),
  } as MarathonApp;
}

/** The slot table the sizing before issue 20 gave 3 tasks: 8 slots. */
function legacySlots(apps: MarathonApp[]): SlotTable {
  const out: SlotTable = {};
  for (const a of apps) {
    const ids = (a.tasks as Array<{ id: string }>).map((t) => t.id).sort();
    out[a.id as string] = [...ids, ...new Array<null>(8 - ids.length).fill(null)];
  }
  return out;
}

/** User + system CPU ms of a process (its own, from /proc/<pid>/stat; 100 ticks a second). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** `haproxy -c` wall and CPU time (the CPU of the child, from the shell's `times`). */
function check(cfg: string): { wall: number; cpu: number } {
  const t0 = performance.now();
  const r = spawnSync('bash', ['-c', `haproxy -c -q -f "$1" || exit 1; times`, 'check', cfg], { encoding: 'utf8' });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`haproxy -c failed: ${r.stderr}${r.stdout}`);
  // `times`: the shell's user/system, then its children's: "0m0.090s 0m0.010s".
  const child = r.stdout.trim().split('\n').pop()!.match(/(\d+)m([\d.]+)s/g)!;
  const secs = child.map((x) => {
    const m = /(\d+)m([\d.]+)s/.exec(x)!;
    return Number(m[1]) * 60 + Number(m[2]);
  });
  return { wall, cpu: (secs[0] + secs[1]) * 1000 };
}

async function variant(name: 'before' | 'after', n: number, p: ReloadCostParams, dir: string) {
  const port = await freePort();
  const settings: HAProxySettings = {
    HttpBind: `127.0.0.1:${port}`,
    StatsBind: '',
    StatsUser: '',
    StatsPassword: '',
    AdminSocket: join(dir, 'admin.sock'),
    BindOptions: 'noreuseport',
    ServerStateFile: join(dir, 'haproxy.state'),
  };
  const apps = Array.from({ length: n }, (_, i) => app(i));
  const slots = name === 'before' ? { previous: legacySlots(apps) } : {};
  const data = buildTemplateData({ apps, services: {}, now: Date.parse(STARTED) + 1000, slots }).data;
  const text = createRenderer(readFileSync(join(ROOT, 'templates', 'haproxy.cfg.liquid'), 'utf8')).render(data, settings).text;
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, text);
  writeFileSync(settings.ServerStateFile!, '1\n');
  const lines = serverLines(text);
  const checks = Array.from({ length: p.checks }, () => check(cfg));

  const master = join(dir, 'master.sock');
  const child = spawn('haproxy', ['-W', '-db', '-dR', '-f', cfg, '-p', join(dir, 'haproxy.pid'), '-S', `${master},mode,600`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { PATH: process.env.PATH },
  });
  const counts = { lines: 0, logged: 0 };
  const summariser = new HAProxyOutputLog(silentLogger(), { counts });
  const splitters = [child.stdout, child.stderr].map((s) => {
    const sp = new LineSplitter((l) => summariser.line(l));
    s?.on('data', (b: Buffer) => sp.push(b.toString()));
    return sp;
  });
  try {
    await until(async () => parseShowProc(await cliCommand(master, 'show proc').catch(() => ''))?.workers.length, 'HAProxy to start', 30000, 20);
    await sleep(500);
    const wall: number[] = [];
    const masterCpu: number[] = [];
    const stateBytes: number[] = [];
    const before = { ...counts };
    for (let k = 0; k < p.reloads; k++) {
      // The state saved as the worker saves it (the config does not change between these reloads).
      const dump = await cliCommand(settings.AdminSocket, 'show servers state', 10000);
      const state = filterServerState(dump, (key) => name === 'before' || !/\sdisabled(\s|$)/.test(lines.get(key) ?? ''));
      writeFileSync(settings.ServerStateFile!, state);
      stateBytes.push(Buffer.byteLength(state));
      const info = parseShowProc(await cliCommand(master, 'show proc'))!;
      const c0 = cpuMs(child.pid!);
      const t0 = performance.now();
      process.kill(child.pid!, 'SIGUSR2');
      await until(async () => {
        const now = parseShowProc(await cliCommand(master, 'show proc', 1000).catch(() => ''));
        return now && now.reloads > info.reloads && now.workers.some((w) => !info.workers.some((o) => o.pid === w.pid));
      }, 'the reload', 30000, 5);
      wall.push(performance.now() - t0);
      // The old worker's output and the master's CPU after the reload settle.
      await sleep(1500);
      masterCpu.push(cpuMs(child.pid!) - c0);
    }
    summariser.close();
    const checkWall = checks.map((c) => c.wall);
    const checkCpu = checks.map((c) => c.cpu);
    const perReload = (x: number) => round(x / p.reloads);
    return {
      variant: name,
      servers: lines.size,
      configBytes: Buffer.byteLength(text),
      checkMs: summarize(checkWall),
      checkCpuMs: summarize(checkCpu),
      reloadMs: summarize(wall),
      masterCpuPerReloadMs: summarize(masterCpu),
      serverStateBytes: summarize(stateBytes, 0),
      haproxyLinesPerReload: perReload(counts.lines - before.lines),
      loggedLinesPerReload: perReload(counts.logged - before.logged),
      // HAProxy's CPU per structural change: `haproxy -c` first, then the reload (before), or the reload alone.
      cpuPerChangeMs: round((name === 'before' ? summarize(checkCpu).median : 0) + summarize(masterCpu).median),
    };
  } finally {
    for (const s of splitters) s.end();
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export async function reloadCostScenario(ctx: Ctx): Promise<{ params: ReloadCostParams; result: unknown }> {
  const p = reloadCostParams(ctx);
  const sizes: unknown[] = [];
  for (const n of p.sizes) {
    const variants = [];
    for (const name of ['before', 'after'] as const) {
      variants.push(await variant(name, n, p, tempDir(`bamboo-reload-cost-${name}-`)));
      ctx.log(`reloadcost: ${n} apps, ${name} done`);
    }
    sizes.push({ apps: n, variants });
  }
  return { params: p, result: { sizes } };
}
