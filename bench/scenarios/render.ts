/**
 * Scenario 1, render: render + validate time and peak RSS at 100, 1,000 and 10,000 apps x 3 tasks.
 *
 * - `sizes`: each size in its own child process (render-child.ts) so that its peak RSS is its own:
 *   template data build, cold render, one-app-change render, `haproxy -c` at two path lengths.
 * - `worker`: the real worker process (`bamboo worker`, command mode: built-in `haproxy -c`
 *   validation, reload command `true`) at the largest size with real ZooKeeper and ZeroMQ: time from
 *   start to the first apply, hint -> applied for one-app changes (a rule, or a task in a new Marathon
 *   snapshot), the stage timings the worker reports, and its peak RSS (VmHWM).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HintPublisher } from '../../common/adapters/zeromq/bus.js';
import { silentLogger } from '../../common/log.js';
import { RuleStore } from '../../common/adapters/zookeeper/rules.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { httpGet } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { startProcess } from '../../harness/process.js';
import { withOverrides, type Ctx } from '../lib/context.js';
import { nodeScript, ROOT } from '../lib/machine.js';
import { benchApp, type WorkerStatusView } from '../lib/stack.js';
import { round, sleep, summarize, summarizeKeys, until, type Summary } from '../lib/stats.js';

interface SizeParams {
  size: number;
  runs: number;
  changeRuns: number;
  checkRuns: number;
}

/** The path length of the demo stack's haproxy.cfg (/tmp/bamboo-demo-XXXXXX/haproxy/haproxy.cfg). */
const STACK_PATH_CHARS = 41;

function runChild(p: SizeParams): Promise<Record<string, unknown>> {
  const { args, runtime } = nodeScript('bench/scenarios/render-child.ts');
  const argv = [...args, '--size', String(p.size), '--runs', String(p.runs), '--change-runs', String(p.changeRuns), '--check-runs', String(p.checkRuns), '--long-path-chars', String(STACK_PATH_CHARS)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`render child for ${p.size} apps exited ${code}: ${err.slice(-2000)}`));
      try {
        resolve({ ...(JSON.parse(out.trim().split('\n').pop() as string) as Record<string, unknown>), runtime });
      } catch (e) {
        reject(new Error(`render child for ${p.size} apps printed no JSON: ${(e as Error).message}: ${out.slice(-500)}`));
      }
    });
  });
}

function peakRssMB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/** Reconciles that changed what HAProxy runs (a reload, or a Runtime API update once there is one). */
export function applied(outcomes: Record<string, number>): number {
  let n = 0;
  for (const [k, v] of Object.entries(outcomes)) if (k !== 'noop' && k !== 'invalid' && k !== 'reload-failed' && k !== 'write-failed') n += v;
  return n;
}

async function workerAtScale(ctx: Ctx, n: number, changes: number) {
  const log = silentLogger();
  const zk = new Zk({ connectionString: ctx.zk, sessionTimeoutMs: 10000, log });
  await zk.start(10000);
  const base = `/bench-worker-${Math.random().toString(16).slice(2, 8)}`;
  const control = new ControlStore(zk, `${base}/control`);
  const rules = new RuleStore(zk, `${base}/rules`);
  await rules.ensureBase();
  const pub = new HintPublisher('bench-api', log, 2000);
  const zmq = await pub.start('tcp://127.0.0.1:*');
  await zk.ephemeral(control.paths.publisher('bench-api'), () =>
    Buffer.from(JSON.stringify({ id: 'bench-api', zmq, http: 'http://127.0.0.1:0', host: hostname(), startedAt: Date.now() })),
  );
  const apps = Array.from({ length: n }, (_, i) => benchApp(i, 3, '127.0.0.1', 31000));
  const snap = await control.writeSnapshot(apps, Date.now());
  pub.snapshotVersion = snap.version;
  const ruled = Math.min(1000, Math.ceil(n / 10));
  for (let i = 0; i < ruled; i += 100) {
    await Promise.all(
      apps.slice(i, Math.min(ruled, i + 100)).map((a, j) => rules.put({ Id: a.id as string, Acl: `hdr(host) -i app${i + j}.bench`, Config: {} })),
    );
  }
  const dir = join(ctx.dir, `worker-${n}`);
  mkdirSync(dir, { recursive: true });
  const outputPath = join(dir, 'haproxy.cfg');
  const statusPort = await freePort();
  const configFile = join(dir, 'worker.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      Bamboo: { Zookeeper: { Host: ctx.zk, Path: `${base}/rules`, ControlPath: `${base}/control` } },
      HAProxy: { OutputPath: outputPath, HttpBind: `127.0.0.1:${await freePort()}`, BindOptions: 'noreuseport', ReloadCommand: 'true', CommandTimeoutMs: 120000 },
      Worker: { Name: 'bench-render' },
      Log: { Level: 'warn' },
    }),
  );
  const t0 = performance.now();
  const worker = startProcess(process.execPath, [join(ROOT, 'bin', 'bamboo.js'), 'worker', '--config', configFile, '--bind', `127.0.0.1:${statusPort}`], { cwd: ROOT });
  const status = async () => JSON.parse((await httpGet(`http://127.0.0.1:${statusPort}/status`, { timeoutMs: 20000 })).body) as WorkerStatusView;
  try {
    const first = await until(async () => {
      const s = await status();
      return applied(s.outcomes) >= 1 ? s : null;
    }, `the first apply at ${n} apps (${worker.output().slice(-500)})`, 300000, 50);
    const startToFirstApplyMs = performance.now() - t0;
    const ruleMs: number[] = [];
    const taskMs: number[] = [];
    const stages: Array<Record<string, number>> = [];
    for (let k = 0; k < changes; k++) {
      await sleep(600); // past the minimum reload interval (500 ms): not what is measured here
      const before = applied((await status()).outcomes);
      let t: number;
      if (k % 2 === 0) {
        const id = apps[k].id as string;
        await rules.put({ Id: id, Acl: `hdr(host) -i change${k}.bench`, Config: {} });
        t = performance.now();
        await pub.publish('rules', { appId: id });
      } else {
        const i = (k * 7919) % n;
        apps[i] = benchApp(i, 3, '127.0.0.1', 32000 + k, k);
        const s = await control.writeSnapshot(apps, Date.now());
        pub.snapshotVersion = s.version;
        t = performance.now();
        await pub.publish('marathon');
      }
      const after = await until(async () => {
        const s = await status();
        return applied(s.outcomes) > before ? s : null;
      }, 'a one-app change to be applied', 120000, 5);
      (k % 2 === 0 ? ruleMs : taskMs).push(performance.now() - t);
      stages.push(after.lastApplyStages);
    }
    return {
      apps: n,
      servers: n * 3,
      rules: ruled,
      mode: 'command (built-in haproxy -c validation, reload command `true`)',
      outputPathChars: outputPath.length,
      configBytes: readFileSync(outputPath).length,
      startToFirstApplyMs: round(startToFirstApplyMs),
      firstApplyStages: first.lastApplyStages,
      ruleChangeHintToAppliedMs: summarize(ruleMs),
      taskChangeHintToAppliedMs: summarize(taskMs),
      oneAppChangeStagesMs: summarizeKeys(stages),
      workerPeakRssMB: peakRssMB(worker.pid),
    };
  } finally {
    await worker.stop('SIGTERM', 15000);
    await pub.close();
    await zk.close();
  }
}

/** `haproxy -c` on a ten-line config: HAProxy's own start-up cost, the floor under every validation and reload. */
function haproxyFloor(ctx: Ctx, runs: number): Summary {
  const path = join(ctx.dir, 'minimal.cfg');
  writeFileSync(path, 'global\n    log /dev/log local0\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 5s\n    timeout server 5s\nfrontend f\n    bind 127.0.0.1:1\n');
  const ms: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const res = spawnSync('haproxy', ['-c', '-q', '-f', path]);
    ms.push(performance.now() - t0);
    if (res.status !== 0) throw new Error(`haproxy -c on a minimal config failed: ${String(res.stderr)}`);
  }
  return summarize(ms);
}

export interface RenderResult {
  haproxyFloorMs: Summary;
  sizes: Array<Record<string, unknown> & { apps: number; coldRenderMs: Summary; oneAppChangeRenderValidateMs: Summary; peakRssMB: number }>;
  worker: Awaited<ReturnType<typeof workerAtScale>>;
}

export async function renderScenario(ctx: Ctx): Promise<{ params: Record<string, unknown>; result: RenderResult }> {
  const sizes: SizeParams[] = ctx.smoke
    ? [
        { size: 20, runs: 2, changeRuns: 2, checkRuns: 1 },
        { size: 50, runs: 2, changeRuns: 2, checkRuns: 1 },
      ]
    : [
        { size: 100, runs: 9, changeRuns: 21, checkRuns: 9 },
        { size: 1000, runs: 9, changeRuns: 21, checkRuns: 9 },
        { size: 10000, runs: 5, changeRuns: 11, checkRuns: 5 },
      ];
  const o = withOverrides(ctx, 'render', { sizes: sizes.map((s) => s.size), workerApps: ctx.smoke ? 200 : 10000, workerChanges: ctx.smoke ? 2 : 6, runs: 0 });
  const workerApps = o.workerApps;
  const workerChanges = o.workerChanges;
  const chosen: SizeParams[] = o.sizes.map((size) => {
    const known = sizes.find((s) => s.size === size) ?? { size, runs: size >= 10000 ? 5 : 9, changeRuns: size >= 10000 ? 11 : 21, checkRuns: size >= 10000 ? 5 : 9 };
    return o.runs > 0 ? { size, runs: o.runs, changeRuns: o.runs, checkRuns: o.runs } : { ...known, size };
  });
  sizes.splice(0, sizes.length, ...chosen);
  const out: RenderResult['sizes'] = [];
  const haproxyFloorMs = haproxyFloor(ctx, ctx.smoke ? 2 : 9);
  for (const p of sizes) {
    ctx.log(`render: ${p.size} apps (child process)`);
    out.push((await runChild(p)) as RenderResult['sizes'][number]);
  }
  ctx.log(`render: worker process at ${workerApps} apps`);
  const worker = await workerAtScale(ctx, workerApps, workerChanges);
  return { params: { sizes, tasksPerApp: 3, workerApps, workerChanges, healthChecks: 'HTTP, on every app (render sizes)' }, result: { haproxyFloorMs, sizes: out, worker } };
}
