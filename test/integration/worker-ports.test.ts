/**
 * The worker's port policy and failure attribution against a real HAProxy, from a tenant's side:
 * anyone who can deploy to Marathon (or write a rule straight into ZooKeeper) tries to take the
 * edge's ports, another app's port, or to stop every other app from updating (review F2, F3, F4).
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import type { ApplyOutcome, QuarantinedApp } from '../../worker/outcome.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/process.js';
import { configRuleTemplate, FakeApi, marathonApp, testLogger, testSetup, workerConfig, type TaskSpec, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('worker-ports');

/** An app whose BAMBOO_TCP_PORT is `port`. */
function tcpApp(id: string, tasks: TaskSpec[], port: number): Record<string, unknown> {
  return marathonApp(id, tasks, { env: { BAMBOO_TCP_PORT: String(port) } });
}

/** An app with a second service port `servicePort`, served by each task's second port `taskPort`. */
function twoPortApp(id: string, tasks: TaskSpec[], servicePort: number, taskPort: number): Record<string, unknown> {
  const a = marathonApp(id, tasks, { portDefinitions: [{ port: 10000, protocol: 'tcp' }, { port: servicePort, protocol: 'tcp' }] });
  for (const t of a.tasks as Array<Record<string, unknown>>) {
    t.ports = [(t.ports as number[])[0], taskPort];
    t.servicePorts = [10000, servicePort];
  }
  return a;
}

describe('worker port policy and failure attribution (real ZooKeeper, ZeroMQ, HAProxy)', function () {
  this.timeout(90000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function fakeApi(s: TestSetup): Promise<FakeApi> {
    const api = await new FakeApi(s).start();
    cleanups.push(() => api.close());
    return api;
  }

  async function backend(name: string): Promise<Backend> {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  }

  async function worker(s: TestSetup, overrides: Record<string, string | number | boolean> = {}): Promise<WorkerHandle> {
    const w = await runWorker(workerConfig(s, overrides), log, { bind: '127.0.0.1:0', retryInitialMs: 200 });
    cleanups.push(() => w.close());
    return w;
  }

  /** Another process listening on a port of this host. */
  async function occupy(port: number): Promise<Server> {
    const srv = createServer((c) => c.destroy());
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
    cleanups.push(() => new Promise((r) => srv.close(() => r(undefined))));
    return srv;
  }

  function outcomes(w: WorkerHandle): ApplyOutcome[] {
    const seen: ApplyOutcome[] = [...w.reconciler.history];
    w.reconciler.on('outcome', (o: ApplyOutcome) => seen.push(o));
    return seen;
  }

  const get = (port: number, path = '/') => httpGet(`http://127.0.0.1:${port}${path}`, { timeoutMs: 10000 }).catch(() => null);
  const cfgText = (s: TestSetup) => (existsSync(s.outputPath) ? readFileSync(s.outputPath, 'utf8') : '');

  /** The quarantine HAProxy's config runs with, once the worker is idle. */
  async function quarantineOf(w: WorkerHandle, appId: string): Promise<QuarantinedApp> {
    const found = () => (!w.reconciler.busy && w.reconciler.running?.confirmed ? w.reconciler.running.quarantined.find((q) => q.appId === appId) : undefined);
    return waitFor(found, `${appId} to be quarantined in the config in force`, 30000) as Promise<QuarantinedApp>;
  }

  /**
   * A later, unrelated change: a second task of /demo/web (a new backend). Resolves once HAProxy
   * routes to it, which proves that the worker still applies changes.
   */
  async function laterChangeApplies(s: TestSetup, api: FakeApi, apps: Array<Record<string, unknown>>, web: Backend): Promise<void> {
    const web2 = await backend('web2');
    const others = apps.filter((a) => a.id !== '/demo/web');
    await api.setApps([marathonApp('/demo/web', [{ port: web.port }, { port: web2.port }]), ...others]);
    await waitFor(async () => (await get(s.httpPort, '/demo/web/later'))?.body.startsWith('web2'), 'the new task of /demo/web to take traffic', 30000);
  }

  it('refuses BAMBOO_TCP_PORT equal to the HTTP or the stats port: the apps are quarantined and HTTP traffic stays with its apps (F2)', async () => {
    const s = await testSetup();
    const statsPort = await freePort();
    const api = await fakeApi(s);
    const web = await backend('web');
    const shop = await backend('shop');
    const evil = await backend('evil');
    const base = [marathonApp('/demo/web', [{ port: web.port }]), marathonApp('/demo/shop/api', [{ port: shop.port }])];
    await api.setApps(base);
    const w = await worker(s, { 'HAProxy.StatsBind': `127.0.0.1:${statsPort}`, 'HAProxy.StatsUser': 'op', 'HAProxy.StatsPassword': 'pw' });
    await waitFor(async () => (await get(s.httpPort, '/demo/web/'))?.body.startsWith('web'), 'traffic for /demo/web');

    // Any Marathon user can set an env var on their app.
    const attack = [
      ...base,
      tcpApp('/team-b/sneaky', [{ port: evil.port }], s.httpPort),
      tcpApp('/team-b/stats', [{ port: evil.port }], statsPort),
    ];
    await api.setApps(attack);
    const sneaky = await quarantineOf(w, '/team-b/sneaky');
    expect(sneaky.level).to.equal('app');
    expect(sneaky.error).to.match(new RegExp(`^port policy: port ${s.httpPort} belongs to the edge \\(frontend http-in, line \\d+\\)$`));
    expect((await quarantineOf(w, '/team-b/stats')).error).to.contain(`port ${statsPort} belongs to the edge (listen stats`);
    expect(cfgText(s)).to.not.contain('::team-b::');
    // Left out entirely, the attack renders the config already in force: nothing to reload.
    expect(w.reconciler.last!.quarantined.map((x) => x.appId)).to.deep.equal(['/team-b/sneaky', '/team-b/stats']);

    for (let i = 0; i < 5; i++) {
      expect((await get(s.httpPort, '/demo/web/'))?.body).to.match(/^web /);
      expect((await get(s.httpPort, '/demo/shop/api/x'))?.body).to.match(/^shop /);
      expect((await get(s.httpPort, '/nothing'))?.status).to.equal(503);
    }
    expect((await get(statsPort, '/'))?.status).to.equal(401);
    expect(evil.hits).to.equal(0);

    const status = JSON.parse((await httpGet(`http://127.0.0.1:${w.port}/status`)).body) as { quarantine: QuarantinedApp[] };
    expect(status.quarantine.map((q) => q.appId)).to.deep.equal(['/team-b/sneaky', '/team-b/stats']);
    expect(status.quarantine[0].error).to.contain(`port ${s.httpPort} belongs to the edge`);

    await laterChangeApplies(s, api, attack, web);
    expect(evil.hits).to.equal(0);
  });

  it('leaves a TCP port with the app that holds it when another app claims it later, and keeps applying other changes (F3)', async () => {
    const s = await testSetup();
    const port = await freePort();
    const api = await fakeApi(s);
    const web = await backend('web');
    const db = await backend('db-a');
    const evil = await backend('evil');
    const base = [marathonApp('/demo/web', [{ port: web.port }]), tcpApp('/team-a/db', [{ port: db.port }], port)];
    await api.setApps(base);
    const w = await worker(s);
    const seen = outcomes(w);
    await waitFor(async () => (await get(port))?.body.startsWith('db-a'), 'TCP traffic on the port to reach /team-a/db');

    // First by id, and deployed later: the holder still keeps its port.
    const attack = [...base, tcpApp('/aaa/attacker', [{ port: evil.port }], port)];
    await api.setApps(attack);
    const q = await quarantineOf(w, '/aaa/attacker');
    expect(q.error).to.equal(`port policy: port ${port} is held by /team-a/db (it had the port in the running config)`);
    for (let i = 0; i < 5; i++) expect((await get(port))?.body).to.match(/^db-a /);
    expect(evil.hits).to.equal(0);

    await laterChangeApplies(s, api, attack, web);
    expect(seen.filter((o) => o.outcome === 'reload-failed' || o.outcome === 'invalid')).to.deep.equal([]);
    expect((await get(port))?.body).to.match(/^db-a /);
  });

  it('gives a service port claimed by two new apps to the first by id, refuses a port outside the range, and applies the rest (F3)', async () => {
    const s = await testSetup();
    const servicePort = await freePort();
    const api = await fakeApi(s);
    const web = await backend('web');
    const one = await backend('one');
    const oneExtra = await backend('one-extra');
    const twoExtra = await backend('two-extra');
    const apps = [
      marathonApp('/demo/web', [{ port: web.port }]),
      twoPortApp('/svc/two', [{ port: twoExtra.port }], servicePort, twoExtra.port),
      twoPortApp('/svc/one', [{ port: one.port }], servicePort, oneExtra.port),
      tcpApp('/svc/socks', [{ port: one.port }], 1080),
    ];
    await api.setApps(apps);
    const w = await worker(s);
    const seen = outcomes(w);
    // The first config gives it to the first by id; from then on /svc/one holds it.
    expect((await quarantineOf(w, '/svc/two')).error).to.be.oneOf([
      `port policy: port ${servicePort} is claimed by /svc/one too (the first app by id keeps it)`,
      `port policy: port ${servicePort} is held by /svc/one (it had the port in the running config)`,
    ]);
    expect(seen.find((o) => o.outcome === 'reloaded')!.quarantined.find((x) => x.appId === '/svc/two')!.error).to.contain('is claimed by /svc/one too');
    expect((await quarantineOf(w, '/svc/socks')).error).to.equal('port policy: port 1080 is outside HAProxy.TcpPortRange 10000-65535');
    await waitFor(async () => (await get(servicePort))?.body.startsWith('one-extra'), 'the service port to reach /svc/one');
    expect(cfgText(s)).to.not.match(/:1080\b/);
    expect(twoExtra.hits).to.equal(0);

    await laterChangeApplies(s, api, apps, web);
    expect(seen.filter((o) => o.outcome === 'reload-failed' || o.outcome === 'invalid')).to.deep.equal([]);
  });

  it('quarantines the app whose port another process on the host holds (reload fails: cannot bind) and keeps applying other changes (F3)', async () => {
    const s = await testSetup();
    const taken = await freePort();
    await occupy(taken);
    const api = await fakeApi(s);
    const web = await backend('web');
    const clash = await backend('clash');
    const base = [marathonApp('/demo/web', [{ port: web.port }])];
    await api.setApps(base);
    const w = await worker(s);
    const seen = outcomes(w);
    await waitFor(async () => (await get(s.httpPort, '/demo/web/'))?.body.startsWith('web'), 'traffic for /demo/web');

    const apps = [...base, tcpApp('/team-c/clash', [{ port: clash.port }], taken)];
    await api.setApps(apps);
    const q = await quarantineOf(w, '/team-c/clash');
    expect(q.level).to.equal('app');
    expect(q.error).to.match(/^reload failed: .*cannot bind socket/);
    const failed = seen.find((o) => o.outcome === 'reload-failed')!;
    expect(failed.reason).to.contain('quarantined /team-c/clash (app): reload failed:');
    expect(failed.quarantined.map((x) => x.appId)).to.deep.equal(['/team-c/clash']);
    expect(cfgText(s)).to.not.contain('::team-c::clash');

    // Later changes, including task churn of the quarantined app, apply without another failed reload.
    const failures = w.reconciler.counts['reload-failed'];
    await laterChangeApplies(s, api, apps, web);
    expect(w.reconciler.counts['reload-failed']).to.equal(failures);
    expect((await quarantineOf(w, '/team-c/clash')).error).to.equal(q.error);
  });

  it('quarantines what changed since the last good config when reloads keep failing with nothing to blame, and applies later changes', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    // Command mode: the reload command refuses any config that mentions /team-d, and says nothing an
    // app could be blamed by (as an adopted master, whose output the worker cannot read).
    const base = [marathonApp('/demo/web', [{ port: 21001 }])];
    await api.setApps(base);
    const w = await worker(s, { 'HAProxy.ReloadCommand': `! grep -q team-d ${s.outputPath}` });
    const seen = outcomes(w);
    await waitFor(() => w.reconciler.counts.reloaded === 1 && !w.reconciler.busy, 'the start-up reload');

    const apps = [...base, marathonApp('/team-d/app', [{ port: 21002 }])];
    await api.setApps(apps);
    const q = await quarantineOf(w, '/team-d/app');
    expect(q).to.deep.equal({ appId: '/team-d/app', level: 'app', error: 'reload failed (not attributable to an app) with this app changed since the last good config', since: q.since });
    const failed = seen.filter((o) => o.outcome === 'reload-failed');
    expect(failed.length).to.equal(2);
    expect(failed[0].reason).to.match(/^reload command failed \(exit 1\) \(retry in \d+ ms\)$/);
    expect(failed[1].reason).to.contain('quarantined /team-d/app (app)');

    await api.setApps([marathonApp('/demo/web', [{ port: 21001 }, { port: 21003 }]), apps[1]]);
    await waitFor(() => cfgText(s).includes('127.0.0.1:21003'), 'the new task of /demo/web in haproxy.cfg', 30000);
    expect(cfgText(s)).to.not.contain('team-d');
  });

  it('keeps applying unrelated changes when a rule written straight to ZooKeeper makes validation time out (F4)', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const web = await backend('web');
    const shop = await backend('shop');
    const apps = [marathonApp('/demo/web', [{ port: web.port }]), marathonApp('/demo/shop/api', [{ port: shop.port }])];
    await api.setApps(apps);
    // The rule comes from Config.Rule through a custom template: validateAcl stops `-f` in Acl, so a
    // template pasting a Config value is the way such a rule still reaches `haproxy -c`.
    const w = await worker(s, { 'HAProxy.CommandTimeoutMs': 3000, 'HAProxy.TemplatePath': configRuleTemplate(s) });
    const seen = outcomes(w);
    await waitFor(async () => (await get(s.httpPort, '/demo/web/'))?.body.startsWith('web'), 'traffic for /demo/web');

    // Bypasses the api's checks: `haproxy -c` reads /dev/zero until it is killed.
    await api.setConfigRule('/demo/shop/api', 'path_beg -f /dev/zero');
    const q = await quarantineOf(w, '/demo/shop/api');
    // The app had no rule before: the default rule routes it.
    expect(q).to.deep.equal({
      appId: '/demo/shop/api', level: 'rules', error: 'validation timed out after 3000 ms with this rule changed since the last good config', fallback: 'default', ruleVersion: 0, since: q.since,
    });
    expect(cfgText(s)).to.not.contain('/dev/zero');
    // Without its rule the app keeps Bamboo's default path rule.
    expect((await get(s.httpPort, '/demo/shop/api/x'))?.body).to.match(/^shop /);

    const timeouts = seen.length;
    await laterChangeApplies(s, api, apps, web);
    // The known-slow rule is not validated again while it is unchanged.
    expect(seen.slice(timeouts).filter((o) => o.stages.validate !== undefined && o.stages.validate >= 3000)).to.deep.equal([]);

    // An edited rule is tried again.
    await api.setConfigRule('/demo/shop/api', 'path_beg -i /shop');
    await waitFor(async () => (await get(s.httpPort, '/shop'))?.body.startsWith('shop'), 'the edited rule to apply', 30000);
    await waitFor(() => !w.reconciler.busy && w.reconciler.running?.quarantined.length === 0, 'the quarantine to lift');
  });

  it('still leaves the slow rule out after a worker restart that adopts the running HAProxy (F4)', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const web = await backend('web');
    const shop = await backend('shop');
    const apps = [marathonApp('/demo/web', [{ port: web.port }]), marathonApp('/demo/shop/api', [{ port: shop.port }])];
    await api.setApps(apps);
    await api.setConfigRule('/demo/web', 'path_beg -i /demo/web');
    const template = configRuleTemplate(s);
    const first = await runWorker(workerConfig(s, { 'HAProxy.CommandTimeoutMs': 3000, 'HAProxy.TemplatePath': template }), log, { bind: '127.0.0.1:0', retryInitialMs: 200 });
    cleanups.push(() => first.close());
    await waitFor(async () => (await get(s.httpPort, '/demo/web/'))?.body.startsWith('web'), 'traffic for /demo/web');
    await first.close({ keepHaproxy: true });

    // Written while no worker ran: the new worker has no template data of the config in force, only
    // the last good file, and its first validation times out.
    await api.setConfigRule('/demo/shop/api', 'path_beg -f /dev/zero');
    const w = await worker(s, { 'HAProxy.CommandTimeoutMs': 3000, 'HAProxy.TemplatePath': template });
    const q = await quarantineOf(w, '/demo/shop/api');
    expect(q.level).to.equal('rules');
    expect(q.error).to.contain('validation timed out after 3000 ms');
    expect(w.reconciler.running!.quarantined.map((x) => x.appId)).to.deep.equal(['/demo/shop/api']);
    await laterChangeApplies(s, api, apps, web);
    expect((await get(s.httpPort, '/demo/shop/api/x'))?.body).to.match(/^shop /);
  });

  it('quarantines an app whose port another process holds even in the very first config of a new host', async () => {
    const s = await testSetup();
    const taken = await freePort();
    await occupy(taken);
    const api = await fakeApi(s);
    const web = await backend('web');
    const apps = [marathonApp('/demo/web', [{ port: web.port }]), tcpApp('/team-c/clash', [{ port: web.port }], taken)];
    await api.setApps(apps);
    // No haproxy.cfg yet: the first config starts HAProxy, and the start fails on the taken port.
    const w = await worker(s);
    const q = await quarantineOf(w, '/team-c/clash');
    expect(q.error).to.match(/^reload failed: .*cannot bind socket/);
    await waitFor(async () => (await get(s.httpPort, '/demo/web/'))?.body.startsWith('web'), 'traffic for /demo/web');
    await laterChangeApplies(s, api, apps, web);
  });
});
