/**
 * The intake's per-app fetches (Marathon.PerAppFetchMax) end to end: the Marathon simulator in
 * callback and stream mode, the snapshot in real ZooKeeper. What Marathon is asked is counted at the
 * simulator; what is stored is read back from ZooKeeper and compared with Marathon's whole list.
 */
import { expect } from 'chai';
import { runApi, type RunningApi } from '../../api/main.js';
import type { IntakeOptions } from '../../api/intake-contracts.js';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { createLogger, silentLogger } from '../../common/log.js';
import { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import type { MarathonSnapshot } from '../../common/adapters/zookeeper/snapshot-format.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/process.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();
const FAST: IntakeOptions = { retryMinMs: 100, retryMaxMs: 400, emptyConfirmDelayMs: 200, subscriptionCheckMs: 200, streamBackoffMinMs: 50, streamBackoffMaxMs: 300 };

function tasksOf(snap: MarathonSnapshot | null, appId: string): number {
  const app = (snap?.apps ?? []).find((a) => (a as { id?: string }).id === appId) as { tasks?: unknown[] } | undefined;
  return app?.tasks?.length ?? -1;
}

describe('Per-app fetches of the intake (simulator, ZooKeeper)', function () {
  this.timeout(30000);
  let conn: string;
  let zk: Zk;
  const sims: MarathonSimulator[] = [];
  const apis: RunningApi[] = [];

  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
    zk = new Zk({ connectionString: conn, log });
    await zk.start();
  });
  after(async () => {
    await zk.close();
  });
  afterEach(async () => {
    await Promise.all(apis.splice(0).map((a) => a.close()));
    await Promise.all(sims.splice(0).map((s) => s.stop()));
  });

  async function sim(apps: string[]): Promise<MarathonSimulator> {
    const s = new MarathonSimulator({ heartbeatMs: 200 });
    await s.start();
    sims.push(s);
    for (const id of apps) s.deployApp({ id, instances: 1 });
    return s;
  }

  /** An api copy whose Bamboo.Endpoint is itself, so the simulator's callbacks reach it. */
  async function start(s: MarathonSimulator, over: Record<string, string | number | boolean> = {}): Promise<{ api: RunningApi; cfg: Readonly<Config>; store: ControlStore }> {
    const port = await freePort();
    const cfg = loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': conn,
        'Bamboo.Zookeeper.Path': uniquePath('/rules'),
        'Bamboo.Zookeeper.ControlPath': uniquePath('/control'),
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'Bamboo.Endpoint': `http://127.0.0.1:${port}`,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': s.url,
        'Marathon.TimeoutMs': 2000,
        'Marathon.ResyncIntervalMs': 0,
        'Marathon.FetchDebounceMs': 20,
        ...over,
      },
    });
    const api = await runApi(cfg, log, { bind: `127.0.0.1:${port}`, intake: FAST });
    apis.push(api);
    const store = new ControlStore(zk, cfg.Bamboo.Zookeeper.ControlPath);
    await waitFor(() => store.readSnapshot(), 'startup snapshot');
    if (!cfg.Marathon.UseEventStream) {
      await waitFor(async () => api.intake.status().subscriptions[0]?.state === 'subscribed', 'callback subscription');
    }
    await api.intake.idle();
    return { api, cfg, store };
  }

  /** GET requests for apps Marathon received from `from` (an index into its request log) on. */
  function appRequests(s: MarathonSimulator, from: number): { list: number; single: string[] } {
    const gets = s.requests.slice(from).filter((r) => r.method === 'GET' && r.path.startsWith('/v2/apps'));
    return {
      list: gets.filter((r) => r.path === '/v2/apps' || r.path === '/v2/apps/').length,
      single: gets.filter((r) => r.path.startsWith('/v2/apps/') && r.path !== '/v2/apps/').map((r) => `${decodeURIComponent(r.path.slice('/v2/apps'.length))}?${r.query}`),
    };
  }

  /** Marathon's whole list, as the full fetch reads it. */
  async function marathonList(s: MarathonSimulator): Promise<unknown[]> {
    const r = await fetch(`${s.url}/v2/apps?embed=apps.tasks&embed=apps.deployments&embed=apps.readiness`);
    return ((await r.json()) as { apps: unknown[] }).apps;
  }

  it('fetches only the app a status update names (GET /v2/apps/{id} with the list embeds) and keeps the other apps', async () => {
    const s = await sim(['/web', '/other']);
    const { api, store } = await start(s);
    const before = await store.readSnapshot();
    const from = s.requests.length;
    s.addTask('/web', { host: '127.0.0.1', ports: [31001] });
    await waitFor(async () => tasksOf(await store.readSnapshot(), '/web') === 2, 'the new task stored');
    await api.intake.idle();
    const asked = appRequests(s, from);
    expect(asked.list, 'whole-list fetches').to.equal(0);
    expect(asked.single.length).to.be.at.least(1);
    for (const q of asked.single) expect(q).to.equal('/web?embed=app.tasks&embed=app.deployments&embed=app.readiness');
    const after = (await store.readSnapshot())!;
    // Exactly Marathon's list: the other app as it was, the changed one as the list shows it.
    expect(after.apps).to.deep.equal(await marathonList(s));
    expect(after.apps[1]).to.deep.equal(before!.apps[1]);
    const st = api.intake.status();
    expect(st.lastFetch).to.include({ ok: true, scope: 'apps' });
    expect(st.appFetches).to.be.at.least(1);
  });

  it('fetches the whole list for a burst naming more apps than Marathon.PerAppFetchMax, and always with 0', async () => {
    for (const max of [2, 0]) {
      const ids = ['/a', '/b', '/c', '/d', '/e'];
      const s = await sim(ids);
      // Every event after the first waits for the fetch the first one started: they all ride on one more.
      const { api, store } = await start(s, { 'Marathon.PerAppFetchMax': max, 'Marathon.MinFetchIntervalMs': 1000 });
      const from = s.requests.length;
      // Lost events (silent) change Marathon; the events that follow name the apps.
      for (const id of ids) s.addTask(id, { host: '127.0.0.1', ports: [31000 + ids.indexOf(id)], silent: true });
      for (const id of ids) s.emit('status_update_event', { eventType: 'status_update_event', appId: id, taskStatus: 'TASK_RUNNING', timestamp: new Date().toISOString() });
      await waitFor(async () => (await store.readSnapshot())!.apps.every((a) => ((a as { tasks: unknown[] }).tasks.length === 2)), `every app stored with 2 tasks (max ${max})`);
      await api.intake.idle();
      const asked = appRequests(s, from);
      expect(asked.list, `whole-list fetches with PerAppFetchMax ${max}`).to.be.at.least(1);
      if (max === 0) expect(asked.single, 'no single-app fetch with PerAppFetchMax 0').to.deep.equal([]);
      // The leading event may be fetched alone; the other four (more than 2) never are.
      else expect(asked.single.length, 'single-app fetches').to.be.at.most(1);
      expect((await store.readSnapshot())!.apps).to.deep.equal(await marathonList(s));
    }
  });

  it('heals, with the next fetch of the whole list, what per-app fetches left stale', async () => {
    const s = await sim(['/web', '/other']);
    const { api, store } = await start(s);
    // A lost event: Marathon changed /other, and no event names it.
    s.addTask('/other', { host: '127.0.0.1', ports: [31002], silent: true });
    s.addTask('/web', { host: '127.0.0.1', ports: [31001] });
    await waitFor(async () => tasksOf(await store.readSnapshot(), '/web') === 2, 'the named app stored');
    await api.intake.idle();
    const stale = (await store.readSnapshot())!;
    expect(tasksOf(stale, '/other'), 'the app no event named stays as stored').to.equal(1);
    expect(stale.apps).to.not.deep.equal(await marathonList(s));
    // An event naming no app (a group change) reads the whole list: the snapshot is Marathon's list again.
    s.emit('group_change_success', { eventType: 'group_change_success', groupId: '/', version: new Date().toISOString() });
    await waitFor(async () => tasksOf(await store.readSnapshot(), '/other') === 2, 'the stale app healed');
    expect((await store.readSnapshot())!.apps).to.deep.equal(await marathonList(s));
    expect(api.intake.status().lastFetch).to.include({ scope: 'full' });
  });

  it('does not remove an app on a 404 for it: the whole list decides, and removes only what it lacks', async () => {
    const s = await sim(['/web', '/other']);
    const { api, store } = await start(s);
    // Marathon's single-app answer says "no such app" while its list still has it.
    s.faults.unknownApps.add('/web');
    const from = s.requests.length;
    s.addTask('/web', { host: '127.0.0.1', ports: [31001] });
    await waitFor(async () => tasksOf(await store.readSnapshot(), '/web') === 2, 'the app stored from the whole list');
    await api.intake.idle();
    const asked = appRequests(s, from);
    expect(asked.single.length, 'the app was asked for').to.be.at.least(1);
    expect(asked.list, 'and the whole list read to confirm').to.be.at.least(1);
    expect(api.intake.status().lastFetch).to.include({ ok: true, scope: 'full' });
    // Really gone: the app's events name it, its 404 sends the fetch to the list, which lacks it.
    s.faults.unknownApps.clear();
    s.destroyApp('/other');
    await waitFor(async () => tasksOf(await store.readSnapshot(), '/other') === -1, 'the destroyed app removed');
    expect((await store.readSnapshot())!.apps).to.deep.equal(await marathonList(s));
  });

  it('in stream mode, fetches only the app a scale names (its deployment and task events)', async () => {
    const s = await sim(['/web', '/other']);
    const { api, store } = await start(s, { 'Marathon.UseEventStream': true });
    await waitFor(async () => api.intake.status().stream?.connected === true, 'stream open');
    await api.intake.idle();
    const from = s.requests.length;
    s.scaleApp('/web', 3);
    await waitFor(async () => tasksOf(await store.readSnapshot(), '/web') === 3, 'the scaled app stored');
    await api.intake.idle();
    const asked = appRequests(s, from);
    expect(asked.list, 'whole-list fetches').to.equal(0);
    expect(new Set(asked.single.map((q) => q.split('?')[0]))).to.deep.equal(new Set(['/web']));
    expect((await store.readSnapshot())!.apps).to.deep.equal(await marathonList(s));
  });
});
