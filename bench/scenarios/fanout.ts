/**
 * Scenario 5, fan-out: one api copy (its own process, event-stream mode) and 1, 10 and 50 workers,
 * all `runWorker` instances in one host process (fleet-host.ts), render-only: command mode with
 * `true` as reload and validation command, each with its own output path. Per Marathon change (a
 * scale-up of one app by one task): the time from the TASK_RUNNING event until each worker's status
 * record in ZooKeeper shows the new snapshot applied (ZooKeeper watches on every record), and the
 * Marathon requests the change caused (the simulator's request log). Bamboo's design costs one
 * /v2/apps fetch per instance per change; ours must not grow with the workers.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { mkdirSync } from 'node:fs';
import { silentLogger } from '../../common/log.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import type { WorkerStatus } from '../../common/adapters/zookeeper/registrations.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { startProcess } from '../../harness/process.js';
import { startApiProcess } from '../lib/api-proc.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { nodeScript, ROOT } from '../lib/machine.js';
import { benchApp, benchAppId } from '../lib/stack.js';
import { round, sleep, summarize, until } from '../lib/stats.js';

export interface FanoutParams {
  workers: number[];
  apps: number;
  changes: number;
}

export function fanoutParams(ctx: Ctx): FanoutParams {
  return withOverrides(
    ctx,
    'fanout',
    ctx.smoke ? { workers: [1, 2], apps: 10, changes: 2 } : { workers: [1, 10, 50], apps: 100, changes: 20 },
  );
}

/** Every worker's status record, re-read on each ZooKeeper watch: when each one first showed each snapshot version. */
class FleetWatch {
  readonly seen = new Map<string, Array<{ version: number; outcome: string; at: number }>>();
  private closed = false;

  constructor(
    private readonly zk: Zk,
    private readonly path: string,
    names: string[],
  ) {
    for (const n of names) {
      this.seen.set(n, []);
      const watcher = () => void this.read(n, watcher);
      void this.read(n, watcher);
    }
  }

  private async read(name: string, watcher: () => void): Promise<void> {
    if (this.closed) return;
    const node = await this.zk.get(`${this.path}/${name}`, watcher).catch(() => null);
    const at = performance.now();
    if (!node) {
      if (!this.closed) setTimeout(() => void this.read(name, watcher), 50);
      return;
    }
    const s = JSON.parse(node.data.toString()) as WorkerStatus;
    const list = this.seen.get(name)!;
    if (list.length === 0 || list[list.length - 1].version !== s.snapshotVersion) list.push({ version: s.snapshotVersion, outcome: s.lastOutcome, at });
  }

  /** When `name` first reported a snapshot version above `v`. */
  firstAbove(name: string, v: number): number | undefined {
    return this.seen.get(name)?.find((e) => e.version > v)?.at;
  }

  version(name: string): number {
    return this.seen.get(name)?.at(-1)?.version ?? -1;
  }

  close(): void {
    this.closed = true;
  }
}

export async function fanoutScenario(ctx: Ctx) {
  const p = fanoutParams(ctx);
  const sim = new MarathonSimulator({ heartbeatMs: 10000 });
  await sim.start();
  sim.loadFixture({ apps: Array.from({ length: p.apps }, (_, i) => benchApp(i, 3, '127.0.0.1', 31000)) });
  const base = `/bench-fanout-${Math.random().toString(16).slice(2, 8)}`;
  const zk = new Zk({ connectionString: ctx.zk, log: silentLogger() });
  await zk.start(10000);
  const control = new ControlStore(zk, `${base}/control`);
  const api = await startApiProcess({
    zk: ctx.zk,
    zkPath: `${base}/rules`,
    controlPath: `${base}/control`,
    marathon: sim.url,
    stream: true,
    logFile: join(ctx.dir, 'fanout-api.log'),
    // Only the changes are counted: no periodic resync fetch in the middle of a measurement.
    env: { MARATHON_RESYNC_INTERVAL_MS: '0' },
  });
  let fakePort = 45000;
  const results: Array<Record<string, unknown>> = [];
  try {
    await until(async () => (await control.snapshotVersion()) >= 0, 'the first snapshot', 30000, 50);
    for (const count of p.workers) {
      const prefix = `fan${count}`;
      const names = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
      const dir = join(ctx.dir, `fanout-${count}`);
      mkdirSync(dir, { recursive: true });
      const t0 = performance.now();
      const host = startProcess(
        process.execPath,
        [...nodeScript('bench/scenarios/fleet-host.ts').args, JSON.stringify({ count, zk: ctx.zk, zkPath: `${base}/rules`, controlPath: `${base}/control`, dir, prefix })],
        { cwd: ROOT },
      );
      const watch = new FleetWatch(zk, control.workersPath, names);
      try {
        await until(() => host.output().includes('READY'), `${count} workers to start (${host.output().slice(-500)})`, 180000, 50);
        const current = await control.snapshotVersion();
        await until(() => names.every((n) => watch.version(n) >= current), `${count} workers to apply the current snapshot`, 180000, 50);
        const startMs = performance.now() - t0;
        ctx.log(`fanout: ${count} workers up in ${Math.round(startMs)} ms`);
        const all: number[] = [];
        const each: number[] = [];
        const fetches: number[] = [];
        const requests: number[] = [];
        for (let c = 0; c < p.changes; c++) {
          await sleep(700); // past every worker's minimum reload interval
          const prev = Math.min(...names.map((n) => watch.version(n)));
          const f0 = sim.countRequests('/v2/apps');
          const r0 = sim.requests.filter((r) => r.path !== '/v2/events').length;
          const id = benchAppId((c * 7919 + count) % p.apps);
          const port = fakePort++;
          let eventAt = 0;
          const off = sim.onEvent((e) => {
            if (!eventAt && e.eventType === 'status_update_event' && e.data.includes('"taskStatus":"TASK_RUNNING"') && e.data.includes(`[${port}]`)) eventAt = performance.now();
          });
          sim.scaleApp(id, sim.tasks(id).length + 1, { tasks: [{ host: '127.0.0.1', ports: [port] }] });
          off();
          await until(() => names.every((n) => watch.firstAbove(n, prev) !== undefined), `${count} workers to apply change ${c}`, 60000, 2);
          const times = names.map((n) => (watch.firstAbove(n, prev) as number) - eventAt);
          all.push(Math.max(...times));
          each.push(...times);
          await sleep(300); // a late fetch would still be counted
          fetches.push(sim.countRequests('/v2/apps') - f0);
          requests.push(sim.requests.filter((r) => r.path !== '/v2/events').length - r0);
        }
        await host.stop('SIGTERM', 30000);
        const peak = /PEAK (\d+)/.exec(host.output());
        results.push({
          workers: count,
          changes: all.length,
          eventToAllAppliedMs: summarize(all),
          eventToEachAppliedMs: summarize(each),
          marathonAppsFetchesPerChange: summarize(fetches, 2),
          marathonRequestsPerChange: summarize(requests, 2),
          bambooFetchesPerChange: count,
          startToAllAppliedMs: round(startMs),
          hostPeakRssMB: peak ? Number(peak[1]) : null,
        });
        ctx.log(`fanout: ${count} workers: ${JSON.stringify(results.at(-1))}`);
      } finally {
        watch.close();
        await host.stop('SIGKILL');
      }
    }
  } finally {
    await api.stop();
    await zk.close();
    await sim.stop();
  }
  return {
    params: { ...p, mode: 'in-process runWorker instances in one host process; command mode, reload and validation command `true`', tasksPerApp: 3 },
    result: { apps: p.apps, fleets: results },
  };
}
