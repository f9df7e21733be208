/**
 * Quarantine keeps the last good rule: the whole path a rule takes (Marathon simulator -> api ->
 * ZooKeeper -> worker -> managed HAProxy), with a rule the api never saw (written straight to
 * ZooKeeper, as a rule stored before the api's check or by Bamboo would be) that HAProxy rejects.
 * Traffic by the old Host header is polled throughout: it must never see anything but the app.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { runApi, type RunningApi } from '../../api/main.js';
import { loadConfig } from '../../common/config-load.js';
import { RuleStore } from '../../common/adapters/zookeeper/rules.js';
import type { WorkerQuarantine } from '../../common/adapters/zookeeper/registrations.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { httpGet, jsonCall, startBackend, type Backend } from '../../harness/http.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { waitFor } from '../../harness/process.js';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import type { QuarantinedApp } from '../../worker/outcome.js';
import { testLogger, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('last-good');
/** HAProxy 2.6 rejects it (`unknown converter 'nosuchconv'`); the api's validateAcl lets it through. */
const REJECTED = 'hdr(host),lower,nosuchconv -m str x';

/** Requests through HAProxy with one Host header, one after the other, until stopped; every answer kept. */
class Poller {
  readonly seen: string[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(url: string, host: string) {
    this.done = (async () => {
      while (!this.stopped) {
        const r = await httpGet(url, { host, timeoutMs: 3000 }).catch((err: Error) => ({ status: 0, body: err.message }));
        this.seen.push(r.status === 200 ? r.body.split(' ')[0] : `status ${r.status}: ${r.body.slice(0, 60)}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
  }

  /** Resolves once `n` more answers came in. */
  async more(n: number): Promise<void> {
    const target = this.seen.length + n;
    await waitFor(() => this.seen.length >= target, `${n} more answers through HAProxy`, 30000);
  }

  async stop(): Promise<string[]> {
    this.stopped = true;
    await this.done;
    return this.seen;
  }
}

describe('quarantine keeps the last good rule (Marathon simulator, api, ZooKeeper, ZeroMQ, worker, HAProxy)', function () {
  this.timeout(90000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function backend(name: string): Promise<Backend> {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  }

  /** The simulator running `apps` (id -> backend), and an api copy on the setup's ZooKeeper paths. */
  async function stack(s: TestSetup, apps: Record<string, Backend>): Promise<{ api: RunningApi; store: RuleStore }> {
    const sim = new MarathonSimulator({ heartbeatMs: 60000 });
    await sim.start();
    cleanups.push(() => sim.stop());
    for (const [id, b] of Object.entries(apps)) sim.deployApp({ id }, { tasks: [{ host: '127.0.0.1', ports: [b.port] }] });
    const cfg = loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': s.zkHost,
        'Bamboo.Zookeeper.Path': s.rulesPath,
        'Bamboo.Zookeeper.ControlPath': s.controlPath,
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': sim.url,
        'Marathon.ResyncIntervalMs': 0,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
        'Log.Level': 'silent',
      },
    });
    const api = await runApi(cfg, log, { bind: '127.0.0.1:0', intake: { subscriptionCheckMs: 60000 } });
    cleanups.push(() => api.close());
    // A writer that goes around the api, straight to ZooKeeper.
    const zk = new Zk({ connectionString: s.zkHost, sessionTimeoutMs: 4000, log });
    expect(await zk.start(10000)).to.equal(true);
    cleanups.push(() => zk.close());
    return { api, store: new RuleStore(zk, s.rulesPath) };
  }

  async function worker(s: TestSetup): Promise<WorkerHandle> {
    const w = await runWorker(workerConfig(s), log, { bind: '127.0.0.1:0', retryInitialMs: 200 });
    cleanups.push(() => w.close());
    return w;
  }

  /** The quarantine of `appId` in the config HAProxy runs, once the worker is idle. */
  function quarantineOf(w: WorkerHandle, appId: string, what: (q: QuarantinedApp) => boolean, why: string): Promise<QuarantinedApp> {
    const found = () => (!w.reconciler.busy && w.reconciler.running?.confirmed ? w.reconciler.running.quarantined.find((q) => q.appId === appId && what(q)) : undefined);
    return waitFor(found, why, 30000) as Promise<QuarantinedApp>;
  }

  const put = (api: RunningApi, id: string, acl: string) => jsonCall('PUT', `${api.url}/api/services/${id}`, { acl });
  const cfgText = (s: TestSetup) => (existsSync(s.outputPath) ? readFileSync(s.outputPath, 'utf8') : '');

  it('keeps an app answering by its last good host rule when its worker rejects a newer rule, shows why in the api, and lifts it once the rule is fixed', async () => {
    const s = await testSetup();
    const shop = await backend('shop');
    const fresh = await backend('fresh');
    const { api, store } = await stack(s, { '/shop': shop, '/fresh': fresh });
    expect((await put(api, '/shop', 'hdr(host) -i shop.example.com')).status).to.equal(201);
    // An app that never had a rule this worker could run: written around the api before the worker starts.
    await store.put({ Id: '/fresh', Acl: REJECTED, Config: {} });
    const w = await worker(s);
    const url = `http://127.0.0.1:${s.httpPort}/`;
    await waitFor(async () => (await httpGet(url, { host: 'shop.example.com' }).catch(() => null))?.body.startsWith('shop'), 'shop.example.com routed to the app');
    const never = await quarantineOf(w, '/fresh', () => true, 'the never-good rule quarantined');
    expect(never).to.include({ level: 'rules', fallback: 'default', ruleVersion: 0 });
    expect(never).to.not.have.property('lastGoodVersion');
    // Without a good rule, the template's default path rule routes it.
    expect((await httpGet(`${url}fresh/x`)).body).to.match(/^fresh /);

    const poller = new Poller(url, 'shop.example.com');
    try {
      await poller.more(5);
      // The api refuses the rule (HAProxy checks it first), so nothing changes for the app...
      const refused = await put(api, '/shop', REJECTED);
      expect(refused.status, JSON.stringify(refused.json)).to.equal(400);
      expect(refused.json.code).to.equal('BAMBOO_ACL_REJECTED_BY_HAPROXY');
      // ...but one stored around the api reaches the worker, whose HAProxy rejects it.
      await store.put({ Id: '/shop', Acl: REJECTED, Config: {} });
      const q = await quarantineOf(w, '/shop', (x) => x.ruleVersion === 1, 'the new /shop rule quarantined');
      expect(q).to.include({ level: 'rules', fallback: 'last-good', ruleVersion: 1, lastGoodVersion: 0 });
      expect(q.error).to.contain("unknown converter 'nosuchconv'");
      expect(q.since).to.be.a('number').and.within(Date.now() - 60000, Date.now());
      expect(cfgText(s)).to.contain('hdr(host) -i shop.example.com');
      expect(cfgText(s)).to.not.contain('nosuchconv');
      expect(w.reconciler.running!.rulesApplied['/shop']).to.equal(0);
      await poller.more(20);
    } finally {
      const seen = await poller.stop();
      expect(seen.filter((x) => x !== 'shop'), `answers by the old Host header (${seen.length} in all)`).to.deep.equal([]);
    }

    // GET /api/services/:id shows the quarantine next to the record, GET /api/workers in the worker's record.
    const name = w.status().name;
    const one = await waitFor(async () => {
      const r = await jsonCall('GET', `${api.url}/api/services//shop`);
      return r.json.quarantine?.[0]?.ruleVersion === 1 ? r : null;
    }, 'the quarantine in GET /api/services/:id');
    expect(one!.json).to.include({ Id: '/shop', Acl: REJECTED });
    expect(one!.json.quarantine).to.have.length(1);
    expect(one!.json.quarantine[0]).to.deep.include({ worker: name, level: 'rules', fallback: 'last-good', ruleVersion: 1, lastGoodVersion: 0 });
    expect(one!.json.quarantine[0].error).to.contain("unknown converter 'nosuchconv'");
    expect(one!.json.quarantine[0].since).to.be.a('number');
    const fleet = (await jsonCall('GET', `${api.url}/api/workers`)).json as { workers: Array<{ name: string; quarantined: string[]; quarantine: WorkerQuarantine[] }> };
    expect(fleet.workers.map((x) => x.name)).to.deep.equal([name]);
    expect(fleet.workers[0].quarantined).to.deep.equal(['/fresh', '/shop']);
    expect(fleet.workers[0].quarantine.map((x) => [x.appId, x.fallback, x.ruleVersion, x.lastGoodVersion ?? null])).to.deep.equal([
      ['/fresh', 'default', 0, null],
      ['/shop', 'last-good', 1, 0],
    ]);
    // The list keeps Bamboo's shape: no quarantine in it.
    const list = (await jsonCall('GET', `${api.url}/api/services`)).json as Record<string, Record<string, unknown>>;
    expect(Object.keys(list['/shop']).sort()).to.deep.equal(['Acl', 'Config', 'Id']);

    // A rule that works lifts the quarantine, and the field leaves the record.
    expect((await put(api, '/shop', 'hdr(host) -i shop2.example.com')).status).to.equal(200);
    await waitFor(async () => (await httpGet(url, { host: 'shop2.example.com' }).catch(() => null))?.body.startsWith('shop'), 'the fixed rule to apply');
    await waitFor(() => !w.reconciler.busy && w.reconciler.running!.quarantined.map((x) => x.appId).join() === '/fresh', 'the /shop quarantine lifted');
    await waitFor(async () => (await jsonCall('GET', `${api.url}/api/services//shop`)).json.quarantine === undefined, 'the quarantine gone from GET /api/services/:id');
  });

  it('keeps the last good rule across a worker restart that adopts the running HAProxy', async () => {
    const s = await testSetup();
    const shop = await backend('shop');
    const { api, store } = await stack(s, { '/shop': shop });
    expect((await put(api, '/shop', 'hdr(host) -i shop.example.com')).status).to.equal(201);
    const first = await worker(s);
    const url = `http://127.0.0.1:${s.httpPort}/`;
    await waitFor(async () => (await httpGet(url, { host: 'shop.example.com' }).catch(() => null))?.body.startsWith('shop'), 'shop.example.com routed to the app');
    await store.put({ Id: '/shop', Acl: REJECTED, Config: {} });
    await quarantineOf(first, '/shop', (x) => x.fallback === 'last-good', 'the new /shop rule quarantined');

    const poller = new Poller(url, 'shop.example.com');
    try {
      await poller.more(5);
      await first.close({ keepHaproxy: true });
      // The new worker has no running model: the rules kept beside the last good config tell it the last good rule.
      const second = await worker(s);
      const q = await quarantineOf(second, '/shop', () => true, 'the restarted worker to quarantine the rule');
      expect(q).to.include({ level: 'rules', fallback: 'last-good', ruleVersion: 1, lastGoodVersion: 0 });
      expect(second.reconciler.counts.reloaded).to.be.at.least(1);
      await poller.more(20);
    } finally {
      const seen = await poller.stop();
      expect(seen.filter((x) => x !== 'shop'), `answers by the old Host header (${seen.length} in all)`).to.deep.equal([]);
    }
    expect(cfgText(s)).to.contain('hdr(host) -i shop.example.com');
  });
});
