/**
 * The Marathon intake of the api process, end to end: callbacks and the event stream from the
 * Marathon simulator, coalesced fetches, the snapshot in real ZooKeeper, hints over real ZeroMQ,
 * failures that must change nothing, and the stream leader election between two copies.
 */
import { expect } from 'chai';
import { runApi, type RunningApi } from '../../api/main.js';
import type { IntakeOptions } from '../../api/intake-contracts.js';
import { applyDelta } from '../../common/core/snapshot-delta.js';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { createLogger, silentLogger } from '../../common/log.js';
import { ControlStore, SnapshotConflictError } from '../../common/adapters/zookeeper/snapshot.js';
import type { MarathonSnapshot } from '../../common/adapters/zookeeper/snapshot-format.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { MarathonSimulator, type MarathonSimulatorOptions } from '../../harness/marathon-sim/index.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/process.js';
import { expireThrough, partition, sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';
import { listenHints } from '../support/hints.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();

const FAST: IntakeOptions = { retryMinMs: 100, retryMaxMs: 400, emptyConfirmDelayMs: 200, subscriptionCheckMs: 200, streamBackoffMinMs: 50, streamBackoffMaxMs: 300 };

function taskCount(snap: MarathonSnapshot | null, appId: string): number {
  const app = (snap?.apps ?? []).find((a) => (a as { id?: string }).id === appId) as { tasks?: unknown[] } | undefined;
  return app?.tasks?.length ?? -1;
}

describe('Marathon intake of the api (simulator, ZooKeeper, ZeroMQ)', function () {
  this.timeout(30000);
  let conn: string;
  let zk: Zk;
  const sims: MarathonSimulator[] = [];
  const apis: RunningApi[] = [];
  const closers: Array<() => void | Promise<void>> = [];

  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
    zk = new Zk({ connectionString: conn, log });
    await zk.start();
  });
  after(async () => {
    await zk.close();
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    await Promise.all(apis.splice(0).map((a) => a.close()));
    await Promise.all(sims.splice(0).map((s) => s.stop()));
  });

  async function sim(opts: MarathonSimulatorOptions = {}): Promise<MarathonSimulator> {
    const s = new MarathonSimulator({ heartbeatMs: 200, ...opts });
    await s.start();
    sims.push(s);
    return s;
  }

  function config(endpoints: string[], over: Record<string, string | number | boolean> = {}): Readonly<Config> {
    return loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': conn,
        'Bamboo.Zookeeper.Path': uniquePath('/rules'),
        'Bamboo.Zookeeper.ControlPath': uniquePath('/control'),
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': endpoints.join(','),
        'Marathon.TimeoutMs': 1000,
        'Marathon.ResyncIntervalMs': 0,
        'Marathon.FetchDebounceMs': 20,
        ...over,
      },
    });
  }

  /** Starts a copy whose Bamboo.Endpoint is itself, so Marathon's callbacks reach it. */
  async function start(cfgBase: Readonly<Config>, intake: IntakeOptions = FAST): Promise<RunningApi> {
    const port = await freePort();
    const cfg = loadConfig({
      env: {},
      overrides: {
        ...flatten(cfgBase),
        'Bamboo.Endpoint': cfgBase.Bamboo.Endpoint === 'http://localhost:8000' ? `http://127.0.0.1:${port}` : cfgBase.Bamboo.Endpoint,
      },
    });
    const api = await runApi(cfg, log, { bind: `127.0.0.1:${port}`, intake });
    apis.push(api);
    return api;
  }

  function control(cfg: Readonly<Config>): ControlStore {
    return new ControlStore(zk, cfg.Bamboo.Zookeeper.ControlPath);
  }

  async function status(api: RunningApi): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return (await fetch(`${api.url}/status`)).json();
  }

  async function postEvent(api: RunningApi, eventType = 'status_update_event'): Promise<number> {
    const r = await fetch(`${api.url}/api/marathon/event_callback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ eventType, appId: '/web', taskStatus: 'TASK_RUNNING' }),
    });
    await r.arrayBuffer();
    return r.status;
  }

  describe('callback mode', () => {
    it('registers its callback URL, fetches on routing events, stores the snapshot and publishes a hint', async () => {
      const s = await sim();
      s.deployApp({ id: '/web', instances: 1 });
      const cfg = config([s.url]);
      const api = await start(cfg);
      const hints = await listenHints(api);
      closers.push(() => hints.close());
      await waitFor(async () => (await status(api)).marathon.subscriptions[0].state === 'subscribed', 'subscription');
      const snap0 = await waitFor(() => control(cfg).readSnapshot(), 'startup snapshot');
      expect(taskCount(snap0, '/web')).to.equal(1);

      s.scaleApp('/web', 3);
      await waitFor(async () => taskCount(await control(cfg).readSnapshot(), '/web') === 3, 'scaled snapshot');
      // The hint for the scaled snapshot may trail the startup one: wait for the one naming it.
      const stored = await control(cfg).readSnapshot();
      await waitFor(() => hints.marathon().some((h) => h.snapshotVersion === stored!.version), 'marathon hint for the stored snapshot');
      // Each later hint carries its delta: applied one after the other to the startup snapshot, they
      // give exactly what is stored (what a worker that held the startup snapshot would compute).
      let held = { version: snap0!.version, apps: snap0!.apps };
      for (const h of hints.marathon().filter((x) => x.snapshotVersion > snap0!.version)) {
        expect(h.delta, `hint for snapshot ${h.snapshotVersion}`).to.include({ base: held.version, version: h.snapshotVersion });
        held = { version: h.delta!.version, apps: applyDelta(held.apps, h.delta!)! };
      }
      expect(held.version).to.equal(stored!.version);
      expect(held.apps).to.deep.equal(stored!.apps);
      const st = await status(api);
      expect(st.marathon.events.status_update_event).to.be.greaterThan(0);
      expect(st.marathon.lastFetch.ok).to.equal(true);
      expect(st.status).to.equal('ok');
    });

    it('answers 202 at once even while Marathon hangs', async () => {
      const s = await sim();
      const api = await start(config([s.url], { 'Marathon.TimeoutMs': 5000 }));
      s.faults.latencyMs = 3000;
      const t0 = Date.now();
      expect(await postEvent(api)).to.equal(202);
      expect(Date.now() - t0).to.be.lessThan(2000); // generous: only proves it did not wait for Marathon
      s.faults.reset();
    });

    it('turns a burst of 1,000 status updates into a handful of fetches, and publishes the final state', async function () {
      this.timeout(40000);
      const s = await sim();
      s.deployApp({ id: '/web', instances: 1 });
      // At most one fetch per 500 ms while events keep coming, however slowly Marathon delivers them
      // on a loaded machine (the default is 250 ms).
      const cfg = config([s.url], { 'Marathon.MinFetchIntervalMs': 500 });
      const api = await start(cfg);
      const hints = await listenHints(api);
      closers.push(() => hints.close());
      await waitFor(async () => (await status(api)).marathon.subscriptions[0].state === 'subscribed', 'subscription');
      await waitFor(() => control(cfg).readSnapshot(), 'startup snapshot');
      await api.intake.idle();
      const fetchesBefore = s.countRequests('/v2/apps');
      const delivered = s.callbackStats.delivered;
      const taskId = s.tasks('/web')[0].id;
      for (let i = 0; i < 1000; i++) {
        s.emit('status_update_event', { eventType: 'status_update_event', appId: '/web', taskId, taskStatus: 'TASK_RUNNING', timestamp: new Date().toISOString() });
        if (i === 997) s.scaleApp('/web', 4); // the real change comes at the end of the burst
      }
      await waitFor(() => s.callbackStats.delivered - delivered >= 1000, 'callbacks delivered', 30000);
      await waitFor(async () => {
        await api.intake.idle();
        const h = hints.marathon().at(-1);
        if (!h) return false;
        const snap = await control(cfg).readSnapshot();
        return snap !== null && snap.version === h.snapshotVersion && taskCount(snap, '/web') === 4;
      }, 'a marathon hint whose snapshot has the final state', 10000);
      const fetches = s.countRequests('/v2/apps') - fetchesBefore;
      if (process.env.TEST_LOG) console.log(`burst: ${fetches} fetches, ${s.callbackStats.dropped} callbacks dropped by Marathon`);
      expect(fetches).to.be.at.least(1);
      expect(fetches).to.be.at.most(10);
      // Marathon drops the oldest callbacks of a subscriber that falls behind; every other one is counted.
      const counted = (await status(api)).marathon.events.status_update_event as number;
      expect(counted + s.callbackStats.dropped).to.be.at.least(1000);
    });

    const faults: Array<[string, (s: MarathonSimulator) => void]> = [
      ['a 500', (s) => (s.faults.status = 500)],
      ['an HTML error page', (s) => (s.faults.htmlError = true)],
      ['truncated JSON', (s) => (s.faults.truncateJson = true)],
      ['a timeout', (s) => (s.faults.latencyMs = 1500)],
    ];
    for (const [name, apply] of faults) {
      it(`keeps the previous snapshot and publishes nothing on ${name}, then recovers`, async () => {
        const s = await sim();
        s.deployApp({ id: '/web', instances: 2 });
        const cfg = config([s.url], { 'Marathon.TimeoutMs': 500 });
        const api = await start(cfg);
        const before = await waitFor(() => control(cfg).readSnapshot(), 'startup snapshot');
        await api.intake.idle();
        const hints = await listenHints(api);
        closers.push(() => hints.close());
        apply(s);
        s.scaleApp('/web', 5);
        const failuresBefore = api.intake.status().failures;
        expect(await postEvent(api)).to.equal(202);
        await waitFor(() => api.intake.status().failures > failuresBefore, 'a failed fetch', 10000);
        const during = await control(cfg).readSnapshot();
        expect(during!.version).to.equal(before!.version);
        expect(during!.hash).to.equal(before!.hash);
        expect(taskCount(during, '/web')).to.equal(2);
        expect(hints.marathon()).to.deep.equal([]);
        const st = await status(api);
        expect(st.marathon.lastFetch.ok).to.equal(false);
        expect(st.marathon.lastFetch.error).to.be.a('string');
        expect(st.status).to.equal('degraded');
        const state = await (await fetch(`${api.url}/api/state`)).json();
        expect(state.Apps.find((a: { Id: string }) => a.Id === '/web').Tasks).to.have.length(2);

        s.faults.reset();
        await waitFor(async () => taskCount(await control(cfg).readSnapshot(), '/web') === 5, 'recovery by retry', 10000);
        await waitFor(() => hints.marathon().length > 0, 'hint after recovery');
      });
    }

    it('fails over to a second Marathon', async () => {
      const a = await sim();
      const b = await sim({ shareStateWith: a });
      a.deployApp({ id: '/web', instances: 1 });
      const cfg = config([a.url, b.url]);
      const api = await start(cfg);
      await waitFor(() => control(cfg).readSnapshot(), 'startup snapshot');
      await api.intake.idle();
      a.faults.status = 503;
      a.scaleApp('/web', 2);
      await postEvent(api);
      await waitFor(async () => taskCount(await control(cfg).readSnapshot(), '/web') === 2, 'snapshot from the second Marathon');
      expect((await status(api)).marathon.lastFetch.endpoint).to.equal(b.url);
    });

    it('stores an empty app list after a non-empty one only when a second fetch confirms it', async () => {
      const s = await sim();
      s.deployApp({ id: '/web', instances: 1 });
      // With no hold time, the shrink guard keeps the "seen twice in a row" rule (test/integration/shrink-guard.test.ts has the hold).
      const cfg = config([s.url], { 'Marathon.ShrinkGuardHoldMs': 0 });
      const api = await start(cfg, { ...FAST, emptyConfirmDelayMs: 600 });
      const first = await waitFor(() => control(cfg).readSnapshot(), 'startup snapshot');
      await api.intake.idle();

      // A glitch: one empty answer, then the apps are back. Nothing empty is ever stored.
      s.faults.emptyApps = true;
      await postEvent(api);
      await waitFor(() => api.intake.status().suspiciousEmpty, 'suspicious empty list seen');
      s.faults.emptyApps = false;
      await waitFor(() => !api.intake.status().suspiciousEmpty, 'confirming fetch');
      expect((await control(cfg).readSnapshot())!.hash).to.equal(first!.hash);

      // A real removal: empty twice in a row is accepted.
      s.faults.emptyApps = true;
      await postEvent(api);
      await waitFor(async () => (await control(cfg).readSnapshot())!.apps.length === 0, 'confirmed empty snapshot', 10000);
    });

    it("keeps every copy's /api/state fresh from the snapshot in ZooKeeper, without fetching", async () => {
      const s = await sim();
      s.deployApp({ id: '/web', instances: 1 });
      const cfg = config([s.url]);
      const a = await start(cfg);
      // b shares a's Bamboo.Endpoint, so Marathon's callbacks all land on a.
      const b = await start(loadConfig({ env: {}, overrides: { ...flatten(cfg), 'Bamboo.Endpoint': `${a.url}` } }));
      await waitFor(async () => (await status(a)).marathon.subscriptions[0].state === 'subscribed', 'subscription');
      await a.intake.idle();
      await b.intake.idle();
      const bFetches = b.intake.status().fetches;
      s.deployApp({ id: '/other', instances: 2 });
      await waitFor(async () => {
        const r = await fetch(`${b.url}/api/state`);
        const st = await r.json();
        return r.status === 200 && st.Apps.some((x: { Id: string }) => x.Id === '/other');
      }, "b sees a's snapshot");
      expect(b.intake.status().fetches).to.equal(bFetches);
    });

    it('re-registers when Marathon forgot the subscription, and unregisters on a clean shutdown when alone', async () => {
      const s = await sim();
      const cfg = config([s.url]);
      const a = await start(cfg);
      const url = `${a.url}/api/marathon/event_callback`;
      const subs = async () => ((await (await fetch(`${s.url}/v2/eventSubscriptions`)).json()) as { callbackUrls: string[] }).callbackUrls;
      await waitFor(async () => (await subs()).includes(url), 'subscribed');
      await fetch(`${s.url}/v2/eventSubscriptions?callbackUrl=${encodeURIComponent(url)}`, { method: 'DELETE' });
      expect(await subs()).not.to.include(url);
      await waitFor(async () => (await subs()).includes(url), 're-subscribed', 5000);
      await a.close();
      expect(await subs()).not.to.include(url);
    });

    it('keeps the shared subscription when another copy still runs', async () => {
      const s = await sim();
      const cfg = config([s.url]);
      const a = await start(cfg);
      const b = await start(loadConfig({ env: {}, overrides: { ...flatten(cfg), 'Bamboo.Endpoint': a.url } }));
      const url = `${a.url}/api/marathon/event_callback`;
      const subs = async () => ((await (await fetch(`${s.url}/v2/eventSubscriptions`)).json()) as { callbackUrls: string[] }).callbackUrls;
      await waitFor(async () => (await status(b)).marathon.subscriptions[0].state === 'subscribed', 'b subscribed');
      await b.close();
      expect(await subs()).to.include(url);
    });

    it('reports a Marathon without subscriptions (1.5+) and suggests the event stream', async () => {
      const s = await sim({ subscriptions: false });
      const api = await start(config([s.url]));
      await waitFor(async () => (await status(api)).marathon.subscriptions[0].state === 'unsupported', 'unsupported');
      expect((await status(api)).marathon.subscriptions[0].error).to.include('UseEventStream');
    });
  });

  describe('stream mode', () => {
    const streamCfg = (endpoints: string[]) => config(endpoints, { 'Marathon.UseEventStream': true, 'Marathon.StreamIdleTimeoutMs': 1000 });

    it('lets exactly one of two copies read the stream, fetches on its events, and hands over when the leader closes', async () => {
      const s = await sim({ subscriptions: false });
      s.deployApp({ id: '/web', instances: 1 });
      const cfg = streamCfg([s.url]);
      const a = await start(cfg);
      const b = await start(cfg);
      // Both copies have decided once one reads and the other names it as the leader it follows.
      await waitFor(async () => {
        const [sa, sb] = await Promise.all([status(a), status(b)]);
        const reader = [sa, sb].find((x) => x.streamLeader.reading);
        const other = reader === sa ? sb : sa;
        return [sa, sb].filter((x) => x.streamLeader.reading).length === 1 && !other.streamLeader.isLeader && other.streamLeader.leaderId !== null;
      }, 'one reader, followed by the other copy');
      expect(s.countRequests('/v2/events')).to.equal(1);
      const [sa, sb] = await Promise.all([status(a), status(b)]);
      expect([sa.streamLeader.isLeader, sb.streamLeader.isLeader].filter(Boolean)).to.have.length(1);
      const leader = sa.streamLeader.isLeader ? a : b;
      const follower = leader === a ? b : a;
      expect((await status(follower)).streamLeader.leaderId).to.equal(leader.id);

      s.scaleApp('/web', 3);
      await waitFor(async () => taskCount(await control(cfg).readSnapshot(), '/web') === 3, 'fetch triggered by a stream event');

      await leader.close();
      await waitFor(async () => (await status(follower)).streamLeader.reading, 'follower takes over');
      expect(s.countRequests('/v2/events')).to.equal(2);
      s.scaleApp('/web', 2);
      await waitFor(async () => taskCount(await control(cfg).readSnapshot(), '/web') === 2, 'events read by the new leader');
    });

    it("hands over when the leader's ZooKeeper session expires in a partition, and the old leader stops reading", async function () {
      this.timeout(60000);
      const s = await sim({ subscriptions: false });
      const cfg = streamCfg([s.url]);
      // a reaches ZooKeeper through a partition that is cut until its session has expired.
      const cutOff = await partition(conn);
      closers.push(() => cutOff.close());
      const a = await start(loadConfig({ env: {}, overrides: { ...flatten(cfg), 'Bamboo.Zookeeper.Host': cutOff.connectionString } }));
      await waitFor(async () => (await status(a)).streamLeader.reading, 'a reads');
      const b = await start(cfg);
      await waitFor(async () => (await status(b)).streamLeader.leaderId === a.id, 'b follows a');
      // b takes over once a's session expired on the server (its election node gone).
      await expireThrough(cutOff, a.zk, async () => (await status(b)).streamLeader.reading);
      await waitFor(async () => {
        const st = await status(a);
        return st.zookeeper.connected && !st.streamLeader.isLeader && !st.streamLeader.reading && st.streamLeader.leaderId === b.id;
      }, 'a back as a follower of b', 15000);
      expect((await status(b)).streamLeader.reading).to.equal(true);
    });

    it('notices a stalled stream and reopens it', async () => {
      const s = await sim({ subscriptions: false, heartbeatMs: 100 });
      s.deployApp({ id: '/web', instances: 1 });
      const cfg = streamCfg([s.url]);
      const a = await start(cfg);
      await waitFor(async () => (await status(a)).streamLeader.reading, 'reading');
      s.faults.stallStream = true;
      await waitFor(async () => (await status(a)).streamLeader.lastError?.includes('silent'), 'stall noticed', 5000);
      s.faults.stallStream = false;
      await waitFor(async () => {
        const st = await status(a);
        return st.streamLeader.reading && st.streamLeader.connects >= 2;
      }, 'stream reopened', 5000);
      s.scaleApp('/web', 2);
      await waitFor(async () => taskCount(await control(cfg).readSnapshot(), '/web') === 2, 'events flow again');
    });
  });

  it('refuses to store a snapshot fetched before another copy stored a newer one', async () => {
    const store = new ControlStore(zk, uniquePath('/control'));
    const v0 = await store.writeSnapshot([{ id: '/a' }], 1, { expectVersion: -1 });
    const v1 = await store.writeSnapshot([{ id: '/b' }], 2, { expectVersion: v0.version });
    let err: unknown = null;
    await store.writeSnapshot([{ id: '/stale' }], 3, { expectVersion: v0.version }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(SnapshotConflictError);
    expect((await store.readSnapshot())!.version).to.equal(v1.version);
  });
});

/** The frozen config back to dotted overrides (to derive a variant). */
function flatten(cfg: object, prefix = '', out: Record<string, string | number | boolean> = {}): Record<string, string | number | boolean> {
  for (const [k, v] of Object.entries(cfg)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object') flatten(v as object, key, out);
    else out[key] = v as string | number | boolean;
  }
  return out;
}
