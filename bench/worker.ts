/**
 * Benchmark of the worker process against real ZooKeeper, ZeroMQ and HAProxy 2.6. The worker runs as
 * operators run it (`bamboo worker` in its own process, default pacing settings); this process plays
 * the api (writes snapshots and rules, publishes hints) and the HTTP client. Prints one JSON object:
 *
 * - `hintToServing[apps]` for 100 and 1,000 apps (3 tasks each, one rule each), managed HAProxy:
 *   from the hint (published right after the ZooKeeper write) to the first request HAProxy routes by
 *   the new state, p50/p99/min/max over `--samples` changes of two kinds:
 *   `rule` (an app's ACL changes) and `task` (an app's task moves to another backend, via a new
 *   Marathon snapshot, like a Marathon event);
 * - `burst[apps]`: 1,000 rule changes each followed by a hint (written 50 at a time), the reloads
 *   they caused and the time from the last hint until the final config serves;
 * - `rss10k`: the worker's peak RSS (VmHWM) with 10,000 apps (30,000 servers) in command mode
 *   (`haproxy -c` validation, reload command `true`), after the first apply and `--changes` one-app
 *   changes, with the stage timings of the first apply and of a one-app change.
 *
 * The worker runs compiled (tsc into a temp dir, as `npm run build` + bin/bamboo.js would run it), so
 * its memory is not inflated by the TypeScript loader; `--tsx` runs the sources through tsx instead.
 * The config path length matters to HAProxy's parse time at 10,000 apps (BENCHMARKING.md); it is
 * reported as `outputPathChars`.
 *
 * Run: npx tsx bench/worker.ts [--samples 30] [--changes 5] [--skip-10k | --only-10k] [--tsx]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { HintPublisher } from '../common/bus.js';
import { silentLogger } from '../common/log.js';
import { RuleStore } from '../common/rules.js';
import { ControlStore } from '../common/snapshot.js';
import { Zk } from '../common/zk.js';
import { httpGet, startBackend, type Backend } from '../test/support/http.js';
import { freePort } from '../test/support/ports.js';
import { startProcess, waitFor, type Started } from '../test/support/process.js';
import { tempDir } from '../test/support/tmp.js';
import { startZooKeeper, type ZkServer } from '../test/support/zookeeper.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const log = silentLogger();

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const SAMPLES = arg('samples', 30);
const CHANGES = arg('changes', 5);
const SKIP_10K = process.argv.includes('--skip-10k');
const USE_TSX = process.argv.includes('--tsx');
const ONLY_10K = process.argv.includes('--only-10k');

/** The command that runs `bamboo` (compiled once into a temp dir unless --tsx). */
const cli: string[] = (() => {
  if (USE_TSX) return ['--import', 'tsx', join(ROOT, 'cli', 'main.ts')];
  const out = tempDir('bw-build-');
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json'), '--outDir', out, '--sourceMap', 'false'], { stdio: 'ignore' });
  } catch {
    /* type errors elsewhere in the tree still emit JavaScript */
  }
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module', version: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version }));
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'));
  mkdirSync(join(out, 'templates'), { recursive: true });
  return [join(out, 'cli', 'main.js')];
})();

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function summary(xs: number[]): { p50: number; p99: number; min: number; max: number; n: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { p50: round(q(0.5)), p99: round(q(0.99)), min: round(s[0]), max: round(s[s.length - 1]), n: s.length };
}

function app(i: number, port: number): Record<string, unknown> {
  const id = `/bench/group${i % 10}/app${i}`;
  return {
    id,
    instances: 3,
    portDefinitions: [{ port: 10000 + i, protocol: 'tcp' }],
    healthChecks: [],
    env: { OWNER: 'bench' },
    labels: { team: `t${i % 7}` },
    version: '2024-01-01T00:00:00.000Z',
    tasks: [0, 1, 2].map((t) => ({
      id: `bench_app${i}.task-${t}`,
      appId: id,
      host: '127.0.0.1',
      ports: [port],
      servicePorts: [10000 + i],
      state: 'TASK_RUNNING',
      startedAt: '2024-01-01T00:00:00.000Z',
      stagedAt: '2024-01-01T00:00:00.000Z',
      version: '2024-01-01T00:00:00.000Z',
    })),
  };
}

interface Stack {
  zk: Zk;
  control: ControlStore;
  rules: RuleStore;
  pub: HintPublisher;
  dir: string;
  outputPath: string;
  httpPort: number;
  statusPort: number;
  worker: Started;
  close(): Promise<void>;
}

async function startStack(server: ZkServer, apps: unknown[], rules: Array<[string, string]>, mode: 'managed' | 'command'): Promise<Stack> {
  const zk = new Zk({ connectionString: server.connectionString, sessionTimeoutMs: 10000, log });
  await zk.start(10000);
  const base = `/bench-${Math.random().toString(16).slice(2, 8)}`;
  const control = new ControlStore(zk, `${base}-ctl`);
  const store = new RuleStore(zk, `${base}-rules`);
  await store.ensureBase();
  const pub = new HintPublisher('bench-api', log, 2000);
  const zmq = await pub.start('tcp://127.0.0.1:*');
  await zk.ephemeral(`${control.publishersPath}/bench-api`, () =>
    Buffer.from(JSON.stringify({ id: 'bench-api', zmq, http: 'http://127.0.0.1:0', host: hostname(), startedAt: Date.now() })),
  );
  const snap = await control.writeSnapshot(apps, Date.now());
  pub.snapshotVersion = snap.version;
  for (let i = 0; i < rules.length; i += 100) {
    await Promise.all(rules.slice(i, i + 100).map(([id, acl]) => store.put({ Id: id, Acl: acl, Config: {} })));
  }
  const dir = tempDir('bw-');
  const outputPath = join(dir, 'haproxy.cfg');
  const httpPort = await freePort();
  const statusPort = await freePort();
  const configFile = join(dir, 'worker.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      Bamboo: { Zookeeper: { Host: server.connectionString, Path: `${base}-rules`, ControlPath: `${base}-ctl` } },
      HAProxy: { TemplatePath: join(ROOT, 'templates', 'haproxy.cfg.liquid'), OutputPath: outputPath, HttpBind: `127.0.0.1:${httpPort}`, ReloadCommand: mode === 'command' ? 'true' : '', CommandTimeoutMs: 60000 },
      Worker: { Name: 'bench' },
      Log: { Level: 'warn' },
    }),
  );
  const worker = startProcess(process.execPath, [...cli, 'worker', '--config', configFile, '--bind', `127.0.0.1:${statusPort}`], {
    cwd: ROOT,
    env: { ...process.env, BAMBOO_CLI_MAIN: '1' },
  });
  return {
    zk,
    control,
    rules: store,
    pub,
    dir,
    outputPath,
    httpPort,
    statusPort,
    worker,
    async close() {
      await worker.stop('SIGTERM', 15000);
      await pub.close();
      await zk.close();
    },
  };
}

interface Status {
  outcomes: Record<string, number>;
  busy: boolean;
  lastOutcome: string;
  lastReason: string;
  lastStages: Record<string, number>;
  lastApplyStages: Record<string, number>;
  healthy: boolean;
}

async function status(s: Stack): Promise<Status> {
  return JSON.parse((await httpGet(`http://127.0.0.1:${s.statusPort}/status`)).body) as Status;
}

/** Resolves at the first request HAProxy answers with `want` in the body (polling every ms or so). */
async function servedAt(s: Stack, host: string, want: string, timeoutMs = 60000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const r = await httpGet(`http://127.0.0.1:${s.httpPort}/`, { host, timeoutMs: 2000 }).catch(() => null);
    if (r && r.status === 200 && r.body.startsWith(want)) return performance.now();
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${host} -> ${want}: ${s.worker.output().slice(-2000)}`);
    await sleep(1);
  }
}

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/** The worker's node process (the CLI child; tsx, too, runs it in this same process). */
function workerPid(s: Stack): number {
  return s.worker.pid;
}

async function hintToServing(server: ZkServer, n: number, a: Backend, b: Backend) {
  const apps = Array.from({ length: n }, (_, i) => app(i, a.port));
  const rules: Array<[string, string]> = apps.map((x, i) => [x.id as string, `hdr(host) -i app${i}.bench`]);
  const s = await startStack(server, apps, rules, 'managed');
  try {
    await servedAt(s, 'app0.bench', 'a', 120000);
    await waitFor(async () => !(await status(s)).busy, 'the worker to go idle', 60000);
    const rule: number[] = [];
    const task: number[] = [];
    const current = apps.map(() => 'a');
    for (let k = 0; k < SAMPLES; k++) {
      // Leave the minimum reload interval (500 ms by default) behind, so it is not what we measure.
      await sleep(600);
      const i = (k * 7919) % n;
      const id = apps[i].id as string;
      if (k % 2 === 0) {
        await s.rules.put({ Id: id, Acl: `hdr(host) -i app${i}-v${k}.bench`, Config: {} });
        const t0 = performance.now();
        await s.pub.publish('rules', { appId: id });
        rule.push((await servedAt(s, `app${i}-v${k}.bench`, current[i])) - t0);
        rules[i] = [id, `hdr(host) -i app${i}-v${k}.bench`];
      } else {
        const host = rules[i][1].split(' ').pop()!;
        const next = current[i] === 'a' ? 'b' : 'a';
        apps[i] = app(i, next === 'a' ? a.port : b.port);
        const snap = await s.control.writeSnapshot(apps, Date.now());
        s.pub.snapshotVersion = snap.version;
        const t0 = performance.now();
        await s.pub.publish('marathon');
        task.push((await servedAt(s, host, next)) - t0);
        current[i] = next;
      }
    }
    const st = await status(s);

    // Burst: 1,000 rule changes, each with its hint, 50 writes in flight.
    await sleep(600);
    const before = (await status(s)).outcomes.reloaded;
    const t0 = performance.now();
    const last = new Map<number, number>();
    for (let j = 0; j < 1000; j += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, m) => {
          const h = j + m;
          const i = h % Math.min(n, 50);
          await s.rules.put({ Id: apps[i].id as string, Acl: `hdr(host) -i burst${h}-app${i}.bench`, Config: {} });
          await s.pub.publish('rules', { appId: apps[i].id as string });
          last.set(i, Math.max(last.get(i) ?? -1, h));
        }),
      );
    }
    const lastHint = performance.now();
    const [li, lh] = [...last].sort((x, y) => y[1] - x[1])[0];
    await servedAt(s, `burst${lh}-app${li}.bench`, current[li]);
    const servedAfter = performance.now() - lastHint;
    await waitFor(async () => !(await status(s)).busy, 'quiet', 60000, 20);
    const quietAfter = performance.now() - lastHint;
    const after = await status(s);
    return {
      hintToServing: { rule: summary(rule), task: summary(task), lastApplyStages: st.lastApplyStages },
      burst: {
        hints: 1000,
        burstMs: round(lastHint - t0),
        reloads: after.outcomes.reloaded - before,
        lastHintToServingMs: round(servedAfter),
        lastHintToQuietMs: round(quietAfter),
      },
      workerPeakRssMb: peakRss(workerPid(s)),
      configBytes: readFileSync(s.outputPath).length,
    };
  } finally {
    await s.close();
  }
}

async function rss10k(server: ZkServer, port: number) {
  const n = 10000;
  const apps = Array.from({ length: n }, (_, i) => app(i, port));
  const rules: Array<[string, string]> = apps.slice(0, 1000).map((x, i) => [x.id as string, `hdr(host) -i app${i}.bench`]);
  const s = await startStack(server, apps, rules, 'command');
  try {
    const t0 = performance.now();
    await waitFor(async () => (await status(s).catch(() => null))?.outcomes.reloaded === 1, 'the first apply at 10k apps', 300000, 100);
    const first = await status(s);
    const firstMs = performance.now() - t0;
    const changeMs: number[] = [];
    let changeStages: Record<string, number> = {};
    for (let k = 0; k < CHANGES; k++) {
      await sleep(600);
      const id = apps[k].id as string;
      await s.rules.put({ Id: id, Acl: `hdr(host) -i change${k}.bench`, Config: {} });
      const tc = performance.now();
      await s.pub.publish('rules', { appId: id });
      await waitFor(async () => (await status(s)).outcomes.reloaded === k + 2, 'a one-app change', 120000, 10);
      changeMs.push(performance.now() - tc);
      changeStages = (await status(s)).lastApplyStages;
    }
    return {
      apps: n,
      servers: n * 3,
      outputPathChars: s.outputPath.length,
      configBytes: readFileSync(s.outputPath).length,
      startToFirstApplyMs: round(firstMs),
      firstApplyStages: first.lastApplyStages,
      oneAppChangeHintToReloadedMs: summary(changeMs),
      oneAppChangeStages: changeStages,
      workerPeakRssMb: peakRss(workerPid(s)),
    };
  } finally {
    await s.close();
  }
}

async function main(): Promise<void> {
  const server = await startZooKeeper();
  const a = await startBackend('a');
  const b = await startBackend('b');
  const out: Record<string, unknown> = {
    machine: { node: process.version, runtime: USE_TSX ? 'tsx' : 'compiled', settings: 'Worker defaults: DebounceMs 20, MinUpdateIntervalMs 100, MinReloadIntervalMs 500' },
  };
  try {
    if (!ONLY_10K) for (const n of [100, 1000]) out[`apps${n}`] = await hintToServing(server, n, a, b);
    if (!SKIP_10K) out.rss10k = await rss10k(server, a.port);
  } finally {
    await a.close();
    await b.close();
    await server.stop();
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  process.exit(0);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack}\n`);
  process.exit(1);
});
