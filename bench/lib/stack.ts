/**
 * The real stack as `bamboo demo` runs it (cli/demo.ts `startDemo`: the Marathon simulator, two api
 * child processes in event-stream mode, one worker child with a managed HAProxy), grown to N bench
 * apps, plus the probes the scenarios need: the api hints seen on ZeroMQ, the moments haproxy.cfg is
 * installed (inotify), the HAProxy master's reload count (`show proc`) and the worker's /status.
 *
 * Every process listens on 127.0.0.1 and a free port; HAProxy binds with `noreuseport` (the demo sets
 * HAPROXY_BIND_OPTIONS) and `-dR`; everything is stopped by the PID it was started with.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Subscriber } from 'zeromq';
import { startDemo, type RunningDemo } from '../../cli/demo.js';
import { decodeHint, type Hint } from '../../common/adapters/zeromq/bus.js';
import { parseShowProc } from '../../common/core/reload-alerts.js';
import { cliCommand } from '../../common/adapters/haproxy/master-cli.js';
import { silentLogger } from '../../common/log.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import type { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { until } from './stats.js';

export const STARTED = '2024-01-01T00:00:00.000Z';

/** Id of bench app i: ten groups, like teams. */
export function benchAppId(i: number): string {
  return `/bench/g${i % 10}/a${i}`;
}

/** Marathon's task id prefix for an app id (`/bench/g1/a1` -> `bench_g1_a1`). */
export function taskPrefix(appId: string): string {
  return appId.replace(/^\//, '').replace(/\//g, '_');
}

/**
 * Bench app i in Marathon 1.x `/v2/apps?embed=apps.tasks` shape: one port, no health check, env and
 * labels as templates see them, `tasks` tasks on host:port. Used as a simulator fixture and as a
 * snapshot written straight to ZooKeeper.
 */
export function benchApp(i: number, tasks: number, host: string, port: number, variant = 0): Record<string, unknown> {
  const id = benchAppId(i);
  return {
    id,
    cmd: 'bench',
    instances: tasks,
    cpus: 0.1,
    mem: 32,
    env: { OWNER: 'bench' },
    labels: { team: `t${i % 7}` },
    portDefinitions: [{ port: 10000 + (i % 50000), protocol: 'tcp' }],
    healthChecks: [],
    version: STARTED,
    tasks: Array.from({ length: tasks }, (_, t) => ({
      id: `${taskPrefix(id)}.task-${t}-${variant}`,
      appId: id,
      host,
      ports: [port],
      servicePorts: [10000 + (i % 50000)],
      state: 'TASK_RUNNING',
      startedAt: STARTED,
      stagedAt: STARTED,
      version: STARTED,
    })),
  };
}

/** Every hint the api copies publish, with the local time it arrived. */
export class HintWatch {
  readonly hints: Array<Hint & { receivedAt: number }> = [];
  private readonly sub = new Subscriber({ linger: 0 });

  private constructor() {}

  /** Subscribes to every registered api copy and waits for the first message (a heartbeat at most 2 s later). */
  static async start(addresses: string[]): Promise<HintWatch> {
    const w = new HintWatch();
    for (const a of addresses) w.sub.connect(a);
    w.sub.subscribe('bamboo');
    void (async () => {
      for await (const frames of w.sub) {
        const h = decodeHint(frames as Buffer[]);
        if (h) w.hints.push({ ...h, receivedAt: performance.now() });
      }
    })().catch(() => undefined);
    await until(() => w.hints.length > 0, 'a first hint (heartbeat) from the api copies', 15000, 20);
    return w;
  }

  /** The first hint received at or after `t` that matches. */
  first(t: number, pred: (h: Hint) => boolean): (Hint & { receivedAt: number }) | undefined {
    return this.hints.find((h) => h.receivedAt >= t && pred(h));
  }

  close(): void {
    this.sub.close();
  }
}

/** The moments haproxy.cfg was replaced (the worker renames a temp file over it), seen through inotify. */
export class InstallWatch {
  readonly installs: Array<{ at: number; text: string }> = [];
  private readonly watcher: FSWatcher;

  constructor(readonly path: string) {
    const name = basename(path);
    this.watcher = watch(dirname(path), (_ev, file) => {
      if (file !== name) return;
      const at = performance.now();
      let text = '';
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        return;
      }
      if (this.installs.length && this.installs[this.installs.length - 1].text === text) return;
      this.installs.push({ at, text });
      if (this.installs.length > 20) this.installs.shift();
    });
  }

  /** The first install at or after `t` whose text matches. */
  first(t: number, pred: (text: string) => boolean): number | undefined {
    return this.installs.find((i) => i.at >= t && pred(i.text))?.at;
  }

  close(): void {
    this.watcher.close();
  }
}

export interface WorkerStatusView {
  busy: boolean;
  outcomes: Record<string, number>;
  reconciles: number;
  snapshotVersion: number;
  configHash: string;
  lastOutcome: string;
  lastReason: string;
  lastOutcomeAt: number;
  lastAppliedAt: number;
  lastStages: Record<string, number>;
  lastApplyStages: Record<string, number>;
}

export interface DemoStack {
  size: number;
  demo: RunningDemo;
  sim: MarathonSimulator;
  /** The bench app ids (`size` of them). */
  appIds: string[];
  /** The backend every bench task starts on (answers `old ...`). */
  old: Backend;
  zk: Zk;
  control: ControlStore;
  hints: HintWatch;
  installs: InstallWatch;
  cfgPath: string;
  masterSocket: string;
  /** `http://127.0.0.1:<port>` of HAProxy's HTTP frontend. */
  haproxy: string;
  /** Base URLs of the two api copies. */
  apis: string[];
  status(): Promise<WorkerStatusView>;
  /** The HAProxy master's reload count (`show proc`). */
  reloads(): Promise<number>;
  /** Starts a backend that is closed with the stack. */
  backend(name: string): Promise<Backend>;
  /** Waits until the worker is idle and its last reconcile ended at least `quietMs` ago. */
  settle(quietMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** URL path HAProxy routes to an app by the default rule (`path_beg <id>/`). */
export function appPath(appId: string): string {
  return `${appId}/`;
}

/**
 * Starts the demo stack on the shared ZooKeeper and grows it to `size` bench apps (3 tasks each, all
 * on one local backend): the apps are loaded into the simulator without events, then one deployment
 * makes the api fetch them all. Resolves once HAProxy routes the last app. `env`: more settings of
 * its processes (e.g. HAPROXY_VALIDATE_BEFORE_RELOAD), over the benchmark's.
 */
export async function startDemoStack(
  zkConnection: string,
  size: number,
  log: (line: string) => void,
  opts: { startDemo?: typeof startDemo; env?: Record<string, string> } = {},
): Promise<DemoStack> {
  const zk = new Zk({ connectionString: zkConnection, log: silentLogger() });
  if (!(await zk.start(10000))) throw new Error(`ZooKeeper at ${zkConnection} not reachable`);
  const extra: Backend[] = [];
  const before = new Set(await zk.children('/'));
  const t0 = performance.now();
  // The benchmarks write up to 1,000 rules one after another as fast as the api answers (no write
  // limit), and the reload scenario times 100 back-to-back reloads: the reload storm bounds
  // (Worker.MaxReloadsPerMinute, Worker.MaxOldGenerations) would pace it to 30 a minute, so they are off.
  // `opts.startDemo` is another build's demo (the memory scenario runs the previous commit's dist
  // beside this one); its processes are that build's.
  const demo = await (opts.startDemo ?? startDemo)({
    zk: zkConnection, logLevel: 'warn', out: () => undefined,
    env: { BAMBOO_WRITE_RATE_PER_MINUTE: '0', BAMBOO_WORKER_MAX_RELOADS_PER_MINUTE: '0', BAMBOO_WORKER_MAX_OLD_GENERATIONS: '0', ...opts.env },
  });
  // Newer demos say which ZooKeeper paths they use; older ones keep them under a fresh /bamboo-demo-<suffix>.
  let controlPath = (demo as { zkPaths?: { control?: string } }).zkPaths?.control;
  if (!controlPath) {
    const base = (await zk.children('/')).filter((c) => !before.has(c) && c.startsWith('bamboo-demo-'));
    if (base.length !== 1) throw new Error(`cannot tell the demo's ZooKeeper path: ${JSON.stringify(base)}`);
    controlPath = `/${base[0]}/control`;
  }
  const control = new ControlStore(zk, controlPath);
  const cfgPath = join(demo.dir, 'haproxy', 'haproxy.cfg');
  const masterSocket = join(dirname(cfgPath), 'haproxy-master.sock');
  const haproxy = demo.haproxyUrl.replace(/\/$/, '');
  const stack: Partial<DemoStack> = {};
  let hints: HintWatch | null = null;
  let installs: InstallWatch | null = null;
  try {
    const old = await startBackend('old');
    extra.push(old);
    const appIds = Array.from({ length: size }, (_, i) => benchAppId(i));
    demo.sim.loadFixture({ apps: appIds.map((_, i) => benchApp(i, 3, '127.0.0.1', old.port)) }, { merge: true });
    const pubs = await until(async () => {
      const p = await control.publishers();
      return p.length >= 2 ? p : null;
    }, 'both api copies registered', 20000, 50);
    hints = await HintWatch.start(pubs.map((p) => p.zmq));
    installs = new InstallWatch(cfgPath);
    // loadFixture adds the apps without events. Marathon would have deployed them in one group
    // deployment, whose deployment_info event names every app of its step: announce them so (the api
    // fetches the whole list for a step naming more apps than Marathon.PerAppFetchMax, each named app
    // otherwise), then the trigger app as before.
    const actions = appIds.map((app) => ({ action: 'StartApplication', app }));
    const at = new Date().toISOString();
    demo.sim.emit('deployment_info', {
      plan: { id: `bench-${Date.now()}`, steps: [{ actions }], version: at },
      currentStep: { actions },
      eventType: 'deployment_info',
      timestamp: at,
    });
    demo.sim.deployApp({ id: '/bench/trigger', cmd: 'x', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [old.port] }] });
    await until(async () => (await httpGet(`${haproxy}${appPath(appIds[appIds.length - 1])}`)).body.startsWith('old '), `HAProxy to route ${size} bench apps`, 120000, 50);
    log(`stack with ${size} apps up in ${Math.round(performance.now() - t0)} ms (${demo.dir})`);
    const workerStatusUrl = demo.workerStatusUrl;
    const status = async () => JSON.parse((await httpGet(workerStatusUrl, { timeoutMs: 10000 })).body) as WorkerStatusView;
    Object.assign(stack, {
      size,
      demo,
      sim: demo.sim,
      appIds,
      old,
      zk,
      control,
      hints,
      installs,
      cfgPath,
      masterSocket,
      haproxy,
      apis: demo.uiUrls.map((u) => u.replace(/\/$/, '')),
      status,
      async reloads() {
        // The master re-executes itself on every reload and briefly refuses connections meanwhile.
        const info = await until(async () => parseShowProc(await cliCommand(masterSocket, 'show proc', 5000)), 'show proc on the HAProxy master socket', 10000, 5);
        return info.reloads;
      },
      async backend(name: string) {
        const b = await startBackend(name);
        extra.push(b);
        return b;
      },
      async settle(quietMs = 600) {
        await until(async () => {
          const s = await status();
          return !s.busy && Date.now() - Math.max(s.lastOutcomeAt, s.lastAppliedAt) >= quietMs;
        }, 'the worker to settle', 120000, 20);
      },
      async stop() {
        hints?.close();
        installs?.close();
        await demo.stop();
        await Promise.all(extra.map((b) => b.close()));
        await zk.close();
      },
    } satisfies DemoStack);
    return stack as DemoStack;
  } catch (err) {
    hints?.close();
    installs?.close();
    await demo.stop().catch(() => undefined);
    await Promise.all(extra.map((b) => b.close()));
    await zk.close();
    throw err;
  }
}

/**
 * Backend name -> sorted addresses (`host:port`) of its servers that take traffic, from a rendered
 * haproxy.cfg: `disabled` servers (the slot template's free slots and unready tasks) are left out.
 */
export function backendsOf(cfg: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of cfg.split('\n')) {
    const b = /^backend (\S+)/.exec(line);
    if (b) {
      current = [];
      out.set(b[1], current);
      continue;
    }
    if (/^\S/.test(line)) {
      current = null;
      continue;
    }
    const s = /^\s+server (\S+) (\S+)(.*)$/.exec(line);
    if (s && current && !/\sdisabled(\s|$)/.test(s[3])) current.push(s[2]);
  }
  for (const v of out.values()) v.sort();
  return out;
}

/**
 * Apps whose backend in `cfg` does not send traffic to exactly the simulator's running tasks (by
 * address: give tasks distinct ports to make this exact). Empty when the config is correct for them.
 */
export function mismatchedApps(cfg: string, sim: MarathonSimulator, appIds: string[]): string[] {
  const have = backendsOf(cfg);
  const bad: string[] = [];
  for (const id of appIds) {
    const want = sim
      .tasks(id)
      .filter((t) => t.state === 'TASK_RUNNING')
      .map((t) => `${t.host}:${t.ports[0]}`)
      .sort();
    const got = have.get(`${id.replace(/\//g, '::')}-cluster`) ?? [];
    if (want.length !== got.length || want.some((w, i) => w !== got[i])) bad.push(id);
  }
  return bad;
}
