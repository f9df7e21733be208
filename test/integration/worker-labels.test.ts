/**
 * Routing from marathon-lb labels through a real worker and HAProxy (real ZooKeeper, ZeroMQ): a host
 * label routes, an api rule wins over it and removing the rule gives it back; two tenants claiming
 * one host; a worker serving only its load-balancer groups; hostile label values.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import type { QuarantinedApp } from '../../worker/outcome.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { FakeApi, marathonApp, testLogger, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('worker-labels');

/** An app with these labels, whose configuration last changed at `changedAt` (the "earlier" of host conflicts). */
function labelled(id: string, port: number, labels: Record<string, string>, changedAt = '2024-01-01T00:00:00.000Z'): Record<string, unknown> {
  return marathonApp(id, [{ port }], { labels, version: changedAt, versionInfo: { lastConfigChangeAt: changedAt, lastScalingAt: changedAt } });
}

describe('routing from labels through a real worker and HAProxy (ZooKeeper, ZeroMQ, HAProxy)', function () {
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

  /** The body's first word (the backend's name), or `status-<n>`, or null when HAProxy does not answer. */
  async function who(s: TestSetup, host: string, path = '/'): Promise<string | null> {
    const r = await httpGet(`http://127.0.0.1:${s.httpPort}${path}`, { host, timeoutMs: 10000 }).catch(() => null);
    if (!r) return null;
    return r.status === 200 ? r.body.split(' ')[0] : `status-${r.status}`;
  }

  const cfgText = (s: TestSetup) => (existsSync(s.outputPath) ? readFileSync(s.outputPath, 'utf8') : '');

  /** The config in force once the worker is idle, and its apps' routing. */
  function inForce(w: WorkerHandle) {
    const r = w.reconciler.running;
    return !w.reconciler.busy && r?.confirmed && r.data ? r.data : null;
  }

  it('routes by a host label, lets an api rule override it, and falls back to the label when the rule is removed', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const shop = await backend('shop');
    const web = await backend('web');
    await api.setApps([labelled('/team-a/shop', shop.port, { HAPROXY_0_VHOST: 'shop.example.test' }), marathonApp('/demo/web', [{ port: web.port }])]);
    await worker(s);
    await waitFor(async () => (await who(s, 'shop.example.test')) === 'shop', 'the host label to route', 30000);
    expect(await who(s, 'shop.example.test:8080', '/any/path')).to.equal('shop');
    expect(await who(s, 'other.example.test', '/demo/web/')).to.equal('web');
    // Labels replace the default path rule of the app.
    expect(await who(s, 'other.example.test', '/team-a/shop/')).to.equal('status-503');

    await api.setRule('/team-a/shop', 'hdr(host) -i rule.example.test');
    await waitFor(async () => (await who(s, 'rule.example.test')) === 'shop', 'the rule to route', 30000);
    expect(await who(s, 'shop.example.test')).to.equal('status-503');

    await api.deleteRule('/team-a/shop');
    await waitFor(async () => (await who(s, 'shop.example.test')) === 'shop', 'the label to route again', 30000);
    expect(await who(s, 'rule.example.test')).to.equal('status-503');
  });

  it('gives a host two apps claim to the earlier one, reports the conflict, and counts it in metrics', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const owner = await backend('owner');
    const thief = await backend('thief');
    // The thief sorts first by id and claims more (a path too): neither gives it the host.
    await api.setApps([
      labelled('/team-a/shop', owner.port, { HAPROXY_0_VHOST: 'shop.example.test' }, '2024-01-01T00:00:00.000Z'),
      labelled('/aaa/thief', thief.port, { HAPROXY_0_VHOST: 'shop.example.test', HAPROXY_0_PATH: '/checkout' }, '2025-06-01T00:00:00.000Z'),
    ]);
    const w = await worker(s);
    const data = await waitFor(() => inForce(w), 'a config in force', 30000);
    for (const path of ['/', '/checkout', '/checkout/pay']) expect(await who(s, 'shop.example.test', path)).to.equal('owner');
    expect(thief.hits).to.equal(0);
    const lost = data!.Apps.find((a) => a.Id === '/aaa/thief')!.Routing;
    expect(lost.conflicts).to.deep.equal([{ host: 'shop.example.test', path: '/checkout', winner: '/team-a/shop', reason: 'host shop.example.test path /checkout is held by /team-a/shop: /team-a/shop claimed it earlier' }]);
    expect(lost.source).to.equal('default');
    // The thief keeps its own default path, nothing more.
    expect(await who(s, 'any.example.test', '/aaa/thief/')).to.equal('thief');
    const metrics = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
    expect(metrics).to.match(/^bamboo_routing_conflicts 1$/m);

    // The owner deploys a new configuration, now later than the thief's: it keeps the host it holds.
    const thiefHits = thief.hits;
    const redeployed = '2026-03-01T00:00:00.000Z';
    await api.setApps([
      labelled('/team-a/shop', owner.port, { HAPROXY_0_VHOST: 'shop.example.test', OWNER: 'team-a' }, redeployed),
      labelled('/aaa/thief', thief.port, { HAPROXY_0_VHOST: 'shop.example.test', HAPROXY_0_PATH: '/checkout' }, '2025-06-01T00:00:00.000Z'),
    ]);
    const after = await waitFor(() => {
      const d = inForce(w);
      return d && d.Apps.find((a) => a.Id === '/team-a/shop')!.Routing.since === Date.parse(redeployed) ? d : null;
    }, 'the redeployed owner in the config in force', 30000);
    expect(after!.Apps.find((a) => a.Id === '/aaa/thief')!.Routing.conflicts[0].reason).to.equal('host shop.example.test path /checkout is held by /team-a/shop: /team-a/shop holds it in the config in force');
    for (const path of ['/', '/checkout']) expect(await who(s, 'shop.example.test', path)).to.equal('owner');
    expect(thief.hits).to.equal(thiefHits);
  });

  it('serves only the apps of its groups (Worker.Groups=internal): an external app is not in its config', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const ext = await backend('ext');
    const int = await backend('int');
    const none = await backend('none');
    await api.setApps([
      labelled('/team/ext', ext.port, { HAPROXY_GROUP: 'external', HAPROXY_0_VHOST: 'ext.example.test' }),
      labelled('/team/int', int.port, { HAPROXY_GROUP: 'internal', HAPROXY_0_VHOST: 'int.example.test' }),
      marathonApp('/team/none', [{ port: none.port }]),
      labelled('/team/greedy', none.port, { HAPROXY_GROUP: 'internal', HAPROXY_0_VHOST: 'bank.example.test' }),
    ]);
    const w = await worker(s, { 'Worker.Groups': 'internal', 'Labels.AllowedDomains': '{"internal":["int.example.test"],"external":["ext.example.test"]}' });
    await waitFor(async () => (await who(s, 'int.example.test')) === 'int', 'the internal app to route', 30000);
    // Outside its group's allowed domains: the host is ignored, the app keeps its default path.
    expect(await who(s, 'bank.example.test')).to.equal('status-503');
    const served = await waitFor(() => inForce(w), 'the config in force', 30000);
    expect(served!.Apps.find((a) => a.Id === '/team/greedy')!.Routing.problems[0].reason).to.equal('host bank.example.test is outside the domains allowed for group internal (Labels.AllowedDomains)');
    expect(await who(s, 'ext.example.test')).to.equal('status-503');
    expect(await who(s, 'x.example.test', '/team/none/')).to.equal('status-503');
    expect(cfgText(s)).to.not.contain('::team::ext').and.not.contain('::team::none');
    expect(ext.hits + none.hits).to.equal(0);
    const status = JSON.parse((await httpGet(`http://127.0.0.1:${w.port}/status`)).body) as { groups: string[] };
    expect(status.groups).to.deep.equal(['internal']);
    const stored = JSON.parse((await api.zk.get(api.control.paths.worker(workerConfig(s).Worker.Name)))!.data.toString()) as { groups: string[] };
    expect(stored.groups).to.deep.equal(['internal']);
  });

  it('never writes a hostile label value into haproxy.cfg, and refuses a label port the edge owns (that app alone)', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const web = await backend('web');
    const evil = await backend('evil');
    const sneaky = await backend('sneaky');
    const hostile = [
      'evil.example.test\n    use_backend ::injected-cluster if TRUE',
      'a.example.test b.example.test',
      '"quoted".example.test',
      "it's.example.test",
      'x.example.test # comment',
      'x'.repeat(20000),
    ];
    const apps = [
      marathonApp('/demo/web', [{ port: web.port }]),
      ...hostile.map((v, i) => labelled(`/evil/v${i}`, evil.port, { HAPROXY_0_VHOST: v, HAPROXY_0_PATH: v, HAPROXY_0_BALANCE: v, HAPROXY_0_SSL_CERT: v, HAPROXY_0_BACKEND_WEIGHT: v })),
      labelled('/evil/cert', evil.port, { HAPROXY_0_SSL_CERT: '../../../etc/ssl/private/edge.pem' }),
      labelled('/evil/port', sneaky.port, { HAPROXY_0_PORT: String(s.httpPort), HAPROXY_0_MODE: 'tcp' }),
      labelled('/evil/low', sneaky.port, { HAPROXY_0_PORT: '22' }),
    ];
    await api.setApps(apps);
    const w = await worker(s);
    await waitFor(async () => (await who(s, 'h.example.test', '/demo/web/')) === 'web', 'traffic for /demo/web', 30000);
    const q = await waitFor(() => inForce(w) && w.reconciler.running!.quarantined.find((x) => x.appId === '/evil/port'), 'the app binding the edge port refused', 30000) as QuarantinedApp;
    expect(q.error).to.match(new RegExp(`^port policy: port ${s.httpPort} belongs to the edge`));
    expect(w.reconciler.running!.quarantined.find((x) => x.appId === '/evil/low')?.error).to.equal('port policy: port 22 is outside HAProxy.TcpPortRange 10000-65535');
    const text = cfgText(s);
    for (const v of hostile) for (const part of v.split('\n')) expect(text, JSON.stringify(part.slice(0, 40))).to.not.contain(part.trim());
    expect(text).to.not.contain('etc/ssl').and.not.contain('hdr(host),field');
    // The hostile apps keep their default path rule; the edge keeps its port.
    expect(await who(s, 'evil.example.test', '/')).to.equal('status-503');
    expect(await who(s, 'h.example.test', '/evil/v0/')).to.equal('evil');
    expect(await who(s, 'h.example.test', '/demo/web/')).to.equal('web');
    expect(sneaky.hits).to.equal(0);
    const routing = (await waitFor(() => inForce(w), 'the config in force', 30000))!.Apps.find((a) => a.Id === '/evil/v0')!.Routing;
    expect(routing.problems.map((p) => p.key)).to.deep.equal(['HAPROXY_0_BACKEND_WEIGHT', 'HAPROXY_0_BALANCE', 'HAPROXY_0_PATH', 'HAPROXY_0_SSL_CERT', 'HAPROXY_0_VHOST']);
    const metrics = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
    expect(Number(/^bamboo_routing_labels_ignored (\d+)$/m.exec(metrics)?.[1])).to.be.at.least(hostile.length * 5);
  });
});
