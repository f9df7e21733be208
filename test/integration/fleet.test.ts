/**
 * The fleet view that remembers, against the real thing: an api copy in-process, one worker
 * in-process (managed HAProxy 2.6) and one worker as a child process (`bin/bamboo.js worker`, command
 * mode) on one real ZooKeeper, fed by the Marathon simulator. A worker that stops is gone with what
 * it last ran; one frozen with SIGSTOP is stale; one killed is gone once its session ends; gone
 * records are removed after the retention; `bamboo_workers{state}` counts them.
 *
 * Needs `npm run build` (the child worker runs dist/).
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { runApi, type RunningApi } from '../../api/main.js';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { jsonCall } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { startProcess, waitFor, type Started } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';
import { scrape, total } from '../support/prometheus.js';
import { testLogger, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('fleet');
const BIN = join(PROJECT_ROOT, 'bin', 'bamboo.js');
const STALE_AFTER_MS = 3000;
/** A name that needs escaping in a ZooKeeper path (a `/` would make it a child of another node). */
const IN_PROCESS = 'edge a/1';
const CHILD = 'edge-b';

interface Present { name: string; state: string; lastSeen: number; configHash: string }
interface Gone { name: string; state: string; lastSeen: number; how: string; last: { configHash: string; host: string; snapshotVersion: number } | null }
interface Fleet { workers: Present[]; gone: Gone[]; counts: { live: number; stale: number; gone: number }; staleAfterMs: number; goneRetentionMs: number }

/** Dotted keys -> the nested JSON of a config file. */
function configFile(path: string, keys: Record<string, string | number | boolean>): string {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(keys)) {
    const parts = k.split('.');
    let o = out;
    for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[parts[parts.length - 1]] = v;
  }
  writeFileSync(path, JSON.stringify(out));
  return path;
}

describe('fleet view: stale and gone workers (api, in-process and child workers, ZooKeeper)', function () {
  this.timeout(120000);
  let s: TestSetup;
  let sim: MarathonSimulator;
  let api: RunningApi;
  let worker: WorkerHandle | null = null;
  let child: Started | null = null;
  let zk: Zk;
  const more: Array<() => Promise<unknown>> = [];

  const fleet = async (url = api.url): Promise<Fleet> => {
    const r = await jsonCall('GET', `${url}/api/workers`);
    expect(r.status, r.text).to.equal(200);
    return r.json as Fleet;
  };
  /** The fleet once `ok` holds for it. */
  const fleetWhen = async (ok: (f: Fleet) => boolean, label: string, timeoutMs: number): Promise<Fleet> =>
    (await waitFor(async () => {
      const f = await fleet();
      return ok(f) ? f : null;
    }, label, timeoutMs, 100)) as Fleet;
  const present = (f: Fleet, name: string) => f.workers.find((w) => w.name === name);
  const gone = (f: Fleet, name: string) => f.gone.find((w) => w.name === name);
  const metric = async (state: string) => total(await scrape(`${api.url}/metrics`), 'bamboo_workers', { state });

  function apiConfig(over: Record<string, string | number | boolean> = {}): Readonly<Config> {
    return loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': s.zkHost,
        'Bamboo.Zookeeper.Path': s.rulesPath,
        'Bamboo.Zookeeper.ControlPath': s.controlPath,
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': sim.url,
        'Marathon.UseEventStream': true,
        'Marathon.ResyncIntervalMs': 0,
        'Fleet.StaleAfterMs': STALE_AFTER_MS,
        'Log.Level': 'silent',
        ...over,
      },
    });
  }

  before(async function () {
    this.timeout(90000);
    s = await testSetup();
    sim = new MarathonSimulator({ heartbeatMs: 60000 });
    await sim.start();
    sim.deployApp({ id: '/web', instances: 1, portDefinitions: [{ port: 0 }] }, { tasks: [{ host: '127.0.0.1', ports: [await freePort()] }] });
    api = await runApi(apiConfig(), log, { bind: '127.0.0.1:0' });
    zk = new Zk({ connectionString: s.zkHost, log });
    await zk.start();

    worker = await runWorker(workerConfig(s, { 'Worker.Name': IN_PROCESS, 'Fleet.StaleAfterMs': STALE_AFTER_MS }), log, { bind: '127.0.0.1:0', retryInitialMs: 200 });
    const dir = tempDir('bamboo-fleet-child-');
    const file = configFile(join(dir, 'bamboo.json'), {
      'Bamboo.Zookeeper.Host': s.zkHost,
      'Bamboo.Zookeeper.Path': s.rulesPath,
      'Bamboo.Zookeeper.ControlPath': s.controlPath,
      // Long enough that a worker frozen for a few seconds keeps its session (stale, not gone).
      'Bamboo.Zookeeper.SessionTimeoutMs': 10000,
      'HAProxy.OutputPath': join(dir, 'haproxy.cfg'),
      'HAProxy.ReloadCommand': 'true',
      'HAProxy.HttpBind': `127.0.0.1:${await freePort()}`,
      'HAProxy.BindOptions': 'noreuseport',
      'Worker.Name': CHILD,
      'Worker.ResyncIntervalMs': 0,
      'Fleet.StaleAfterMs': STALE_AFTER_MS,
      'Log.Level': 'warn',
    });
    child = startProcess(process.execPath, [BIN, 'worker', '--config', file, '--bind', '127.0.0.1:0'], { env: { PATH: process.env.PATH ?? '' }, cwd: PROJECT_ROOT });
    await waitFor(async () => {
      const f = await fleet();
      return [IN_PROCESS, CHILD].every((n) => present(f, n)?.configHash);
    }, 'both workers to report a config in force', 60000, 100).catch((err: Error) => {
      throw new Error(`${err.message}\nchild worker output:\n${child?.output()}`);
    });
  });

  after(async () => {
    for (const c of more.splice(0).reverse()) await c().catch(() => undefined);
    if (child) {
      try {
        process.kill(child.pid, 'SIGCONT');
      } catch {
        /* gone */
      }
      await child.stop('SIGKILL');
    }
    await worker?.close();
    await api?.close();
    await zk?.close();
    await sim?.stop();
  });

  it('lists live workers with their state and when they last reported, and counts them in bamboo_workers', async () => {
    const f = await fleet();
    expect(f.staleAfterMs).to.equal(STALE_AFTER_MS);
    expect(f.goneRetentionMs).to.equal(86400000);
    for (const n of [IN_PROCESS, CHILD]) {
      const w = present(f, n)!;
      expect(w.state, n).to.equal('live');
      expect(Date.now() - w.lastSeen, `${n} reported within the heartbeat`).to.be.below(STALE_AFTER_MS);
    }
    expect(f.counts).to.deep.equal({ live: 2, stale: 0, gone: 0 });
    // The name is escaped in ZooKeeper (one node, no child path) and shown as given.
    const control = new ControlStore(zk, s.controlPath);
    expect(await zk.children(control.workersPath)).to.include.members(['edge+a%2F1', CHILD]);
    // Past several heartbeats, the workers stay live.
    await new Promise((r) => setTimeout(r, STALE_AFTER_MS + 1000));
    expect((await fleet()).counts).to.deep.equal({ live: 2, stale: 0, gone: 0 });
    await waitFor(async () => (await metric('live')) === 2 && (await metric('stale')) === 0 && (await metric('gone')) === 0, 'bamboo_workers to count 2 live', 10000, 100);
  });

  it('shows a worker whose reports stop (SIGSTOP) as stale, and live again when it resumes', async () => {
    process.kill(child!.pid, 'SIGSTOP');
    try {
      const f = await fleetWhen((v) => present(v, CHILD)?.state === 'stale', 'the frozen worker to be stale', 15000);
      expect(f.counts).to.deep.equal({ live: 1, stale: 1, gone: 0 });
      expect(present(f, IN_PROCESS)!.state).to.equal('live');
      await waitFor(async () => (await metric('stale')) === 1, 'bamboo_workers{state="stale"} to be 1', 10000, 100);
    } finally {
      process.kill(child!.pid, 'SIGCONT');
    }
    await waitFor(async () => present(await fleet(), CHILD)?.state === 'live', 'the resumed worker to be live again', 15000, 100);
  });

  it('shows a worker that stops as gone, with when it was last seen and the config it last ran', async () => {
    const before = present(await fleet(), IN_PROCESS)!;
    const stoppedFrom = Date.now();
    await worker!.close();
    worker = null;
    const f = await fleetWhen((v) => !!gone(v, IN_PROCESS), 'the stopped worker to be gone', 10000);
    const g = gone(f, IN_PROCESS)!;
    expect(present(f, IN_PROCESS), 'no longer among the workers that report').to.equal(undefined);
    expect(g.state).to.equal('gone');
    expect(g.how).to.equal('stopped');
    expect(g.last?.configHash).to.equal(before.configHash).and.match(/^[0-9a-f]{64}$/);
    expect(g.lastSeen).to.be.within(stoppedFrom - 1000, Date.now() + 1000);
    expect(f.counts).to.deep.equal({ live: 1, stale: 0, gone: 1 });
    await waitFor(async () => (await metric('gone')) === 1 && (await metric('live')) === 1, 'bamboo_workers to count 1 live and 1 gone', 10000, 100);
  });

  it('shows a worker killed without a goodbye as gone (lost) once its session ends', async () => {
    const before = present(await fleet(), CHILD)!;
    await child!.stop('SIGKILL');
    const f = await fleetWhen((v) => !!gone(v, CHILD), 'the killed worker to be gone once its session expires', 30000);
    const g = gone(f, CHILD)!;
    expect(g.how).to.equal('lost');
    expect(g.last?.configHash).to.equal(before.configHash);
    expect(f.counts).to.deep.equal({ live: 0, stale: 0, gone: 2 });
  });

  it('forgets gone workers past the retention: a copy with a short retention removes their records for every copy', async () => {
    expect((await fleet()).gone.map((g) => g.name).sort()).to.deep.equal([CHILD, IN_PROCESS].sort());
    const short = await runApi(apiConfig({ 'Fleet.GoneRetentionMs': 1000 }), log, { bind: '127.0.0.1:0' });
    more.push(() => short.close());
    const control = new ControlStore(zk, s.controlPath);
    await waitFor(async () => (await zk.children(control.paths.workersSeen)).length === 0, 'the expired last-seen records to be removed', 15000, 100);
    const f = await fleet();
    expect(f.gone).to.deep.equal([]);
    expect(f.counts).to.deep.equal({ live: 0, stale: 0, gone: 0 });
    expect((await fleet(short.url)).gone).to.deep.equal([]);
  });
});
