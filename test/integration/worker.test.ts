import { expect } from 'chai';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { sha256 } from '../../common/core/hash.js';
import type { WorkerStatus } from '../../common/adapters/zookeeper/registrations.js';
import { runWorker, type WorkerHandle, type WorkerOptions } from '../../worker/main.js';
import type { ApplyOutcome } from '../../worker/outcome.js';
import { haproxyCheck } from '../support/haproxy.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/process.js';
import { startStatsd } from '../support/statsd.js';
import { startZooKeeper } from '../../harness/zookeeper.js';
import { FakeApi, marathonApp, testLogger, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('worker');

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('worker (real ZooKeeper, ZeroMQ, HAProxy)', function () {
  this.timeout(60000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function fakeApi(s: TestSetup, opts: { publish?: boolean } = {}): Promise<FakeApi> {
    const api = await new FakeApi(s).start(opts);
    cleanups.push(() => api.close());
    return api;
  }

  async function backend(name: string): Promise<Backend> {
    const b = await startBackend(name);
    cleanups.push(() => b.close());
    return b;
  }

  async function worker(s: TestSetup, overrides: Record<string, string | number | boolean> = {}, opts: WorkerOptions = {}): Promise<WorkerHandle> {
    const w = await runWorker(workerConfig(s, overrides), log, { bind: '127.0.0.1:0', retryInitialMs: 200, ...opts });
    cleanups.push(() => w.close());
    return w;
  }

  /** Routes one request through HAProxy with this Host header; null on a connection error. */
  function route(s: TestSetup, host: string) {
    return httpGet(`http://127.0.0.1:${s.httpPort}/`, { host, timeoutMs: 2000 }).catch(() => null);
  }

  function outcomes(w: WorkerHandle): ApplyOutcome[] {
    const seen: ApplyOutcome[] = [...w.reconciler.history];
    w.reconciler.on('outcome', (o: ApplyOutcome) => seen.push(o));
    return seen;
  }

  const cfgText = (s: TestSetup) => (existsSync(s.outputPath) ? readFileSync(s.outputPath, 'utf8') : '');

  it('routes HTTP traffic through a managed HAProxy the way a changed rule says', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const a = await backend('app-a');
    const b = await backend('app-b');
    await api.setApps([marathonApp('/shop/a', [{ port: a.port }]), marathonApp('/shop/b', [{ port: b.port }])]);
    await api.setRule('/shop/a', 'hdr(host) -i a.example.com');
    await api.setRule('/shop/b', 'hdr(host) -i b.example.com');
    const w = await worker(s);
    expect(w.haproxy.mode).to.equal('managed');

    await waitFor(async () => (await route(s, 'a.example.com'))?.body.startsWith('app-a'), 'traffic for a.example.com to reach app-a');
    expect((await route(s, 'b.example.com'))?.body).to.match(/^app-b/);

    await api.setRule('/shop/a', 'hdr(host) -i new-a.example.com');
    await waitFor(async () => (await route(s, 'new-a.example.com'))?.body.startsWith('app-a'), 'traffic to follow the changed rule');
    expect((await route(s, 'a.example.com'))?.status).to.equal(503);
    expect((await route(s, 'b.example.com'))?.body).to.match(/^app-b/);

    const text = cfgText(s);
    expect(text).to.contain('hdr(host) -i new-a.example.com');
    expect((await haproxyCheck(s.outputPath)).ok).to.equal(true);
    await w.reconciler.whenIdle();
    expect(readFileSync(`${s.outputPath}.last-good`, 'utf8')).to.equal(text);
    expect(w.reconciler.running?.hash).to.equal(sha256(text));
    expect(w.reconciler.counts.reloaded).to.be.at.least(2);
    expect(w.reconciler.counts.invalid + w.reconciler.counts['reload-failed']).to.equal(0);
  });

  it('coalesces a burst of 500 hints into a few reloads and ends on the latest rules', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const apps = Array.from({ length: 20 }, (_, i) => marathonApp(`/burst/app${i}`, [{ port: 20000 + i }]));
    await api.setApps(apps);
    const reloadLog = join(s.dir, 'reloads.log');
    const w = await worker(s, { 'HAProxy.ReloadCommand': `echo reload >> ${reloadLog}`, 'Worker.MinReloadIntervalMs': 1000 });
    await waitFor(() => w.reconciler.counts.reloaded === 1 && !w.reconciler.busy, 'the start-up reload');
    const before = w.reconciler.counts.reloaded;

    const last = new Map<string, number>();
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 25 }, async (_, j) => {
          const i = round * 25 + j;
          const id = `/burst/app${i % 20}`;
          await api.rules.put({ Id: id, Acl: `path_beg -i /burst-${i}`, Config: {} });
          await api.publisher!.publish('rules', { appId: id });
          last.set(id, Math.max(last.get(id) ?? -1, i));
        }),
      );
    }
    expect(api.publisher!.published).to.be.at.least(500);
    await waitFor(() => [...last].every(([id, i]) => cfgText(s).includes(`use_backend ${id.replace(/\//g, '::')}-cluster if { path_beg -i /burst-${i} }\n`)), 'the final rules in haproxy.cfg', 20000);
    await waitFor(() => !w.reconciler.busy, 'the worker to go idle');
    const reloads = w.reconciler.counts.reloaded - before;
    expect(reloads).to.be.at.least(1).and.at.most(5);
    expect(readFileSync(reloadLog, 'utf8').trim().split('\n')).to.have.length(w.reconciler.counts.reloaded);
    expect((await haproxyCheck(s.outputPath)).ok).to.equal(true);
  });

  it('converges when started after the events were published, and registers its status', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    await api.setApps([marathonApp('/late/web', [{ port: 21000 }])]);
    await api.setRule('/late/web', 'path_beg -i /late');
    const w = await worker(s, { 'HAProxy.ReloadCommand': 'true' });
    await waitFor(() => cfgText(s).includes('path_beg -i /late'), 'the config generated on start-up');
    await waitFor(() => !w.reconciler.busy && w.reconciler.counts.reloaded === 1, 'the start-up reload');

    const res = await httpGet(`http://127.0.0.1:${w.port}/status`);
    expect(res.status).to.equal(200);
    const view = JSON.parse(res.body) as WorkerStatus & { healthy: boolean; publishers: string[] };
    expect(view).to.include({ healthy: true, mode: 'command', configHash: sha256(cfgText(s)) });
    // The start-up trigger is read at once (the worker was idle); the api's first hint may come just
    // after and be read on its own, finding the config unchanged.
    expect(view.lastOutcome).to.be.oneOf(['reloaded', 'noop']);
    expect(view.rulesApplied).to.have.property('/late/web');
    expect(view.publishers).to.have.length(1);

    const records = await waitFor(async () => {
      const all = await api.control.workers();
      return all.length === 1 && ['reloaded', 'noop'].includes(all[0].lastOutcome) ? all : null;
    }, 'the status record in ZooKeeper');
    expect(records![0]).to.include({ configHash: sha256(cfgText(s)), mode: 'command' });
    expect(records![0].snapshotVersion).to.be.at.least(0);
    await w.close();
    await waitFor(async () => (await api.control.workers()).length === 0, 'the status record to go with the worker');
  });

  it('converges on the resync timer alone when no api publisher exists', async () => {
    const s = await testSetup();
    const api = await fakeApi(s, { publish: false });
    await api.setApps([marathonApp('/quiet/web', [{ port: 21001 }])]);
    const w = await worker(s, { 'HAProxy.ReloadCommand': 'true', 'Worker.ResyncIntervalMs': 300 });
    const seen = outcomes(w);
    await waitFor(() => w.reconciler.counts.reloaded === 1, 'the start-up reload');
    expect(w.discovery.known.size).to.equal(0);

    // A new snapshot with no hint: only the resync timer can find it.
    await api.setApps([marathonApp('/quiet/web', [{ port: 21001 }]), marathonApp('/quiet/new', [{ port: 21002 }])]);
    await waitFor(() => cfgText(s).includes('::quiet::new-cluster'), 'the resync to pick up the new snapshot', 10000);
    await waitFor(() => w.reconciler.counts.reloaded >= 2 && !w.reconciler.busy, 'the apply to finish');
    expect(seen.filter((o) => o.outcome === 'reloaded').at(-1)!.triggers).to.deep.equal(['resync']);

    // A rule change with no hint: its ZooKeeper watch (or the timer) finds it.
    await api.setRule('/quiet/web', 'path_beg -i /nobody-told-me', false);
    await waitFor(() => cfgText(s).includes('path_beg -i /nobody-told-me'), 'the rule change to apply', 10000);
  });

  it('quarantines an app whose rule HAProxy rejects while the other apps keep updating', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const good = await backend('good');
    const bad = await backend('bad');
    await api.setApps([marathonApp('/good', [{ port: good.port }]), marathonApp('/bad', [{ port: bad.port }])]);
    await api.setRule('/good', 'hdr(host) -i good.example.com');
    // The api rejects most bad rules at its edge; this one is written straight to ZooKeeper.
    await api.setRule('/bad', 'hdr_nonsense(host) -i x');
    const w = await worker(s);
    await waitFor(async () => (await route(s, 'good.example.com'))?.body.startsWith('good'), 'traffic for the good app');
    await w.reconciler.whenIdle();
    const [q] = w.reconciler.running!.quarantined;
    // Never a good rule on this worker: the default rule routes it (test/integration/worker-last-good.test.ts has the rest).
    expect(w.reconciler.running!.quarantined).to.deep.equal([{ appId: '/bad', level: 'rules', error: q.error, fallback: 'default', ruleVersion: 0, since: q.since }]);
    expect(w.reconciler.running!.quarantined[0].error).to.contain('hdr_nonsense');
    expect(cfgText(s)).to.not.contain('hdr_nonsense');
    // Without its rule the app is routed by Bamboo's default path rule.
    expect((await httpGet(`http://127.0.0.1:${s.httpPort}/bad/x`)).body).to.match(/^bad/);
    expect(readFileSync(`${s.outputPath}.last-failed`, 'utf8')).to.contain('hdr_nonsense(host)');

    await api.setRule('/good', 'hdr(host) -i good2.example.com');
    await waitFor(async () => (await route(s, 'good2.example.com'))?.body.startsWith('good'), 'the good app to keep updating');
    await waitFor(async () => {
      const [rec] = await api.control.workers();
      return rec?.quarantined.includes('/bad') && rec.rulesApplied['/good'] === 1;
    }, 'the status record to list the quarantined app');

    await api.setRule('/bad', 'hdr(host) -i bad.example.com');
    await waitFor(async () => (await route(s, 'bad.example.com'))?.body.startsWith('bad'), 'the fixed rule to apply');
    await w.reconciler.whenIdle();
    expect(w.reconciler.running!.quarantined).to.deep.equal([]);
  });

  it('leaves an app out entirely when its fragment is broken even without its rule', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const template = join(s.dir, 'custom.cfg.liquid');
    writeFileSync(
      template,
      [
        'global',
        '    stats timeout 30s',
        'defaults',
        '    mode http',
        '    timeout connect 5s',
        '    timeout client 5s',
        '    timeout server 5s',
        'frontend web',
        `    bind 127.0.0.1:${s.httpPort}`,
        '{%- for app in Apps %}',
        '{%- app app %}',
        '',
        'backend {{ app.EscapedId }}-cluster',
        '    {{ app.Labels.EXTRA | default: "balance roundrobin" }}',
        '{%- endapp %}',
        '{%- endfor %}',
        '',
      ].join('\n'),
    );
    await api.setApps([
      marathonApp('/fine', [{ port: 21010 }]),
      marathonApp('/broken', [{ port: 21011 }], { labels: { EXTRA: 'no_such_directive on' } }),
    ]);
    await api.setRule('/broken', 'path_beg -i /broken');
    const w = await worker(s, { 'HAProxy.ReloadCommand': 'true', 'HAProxy.TemplatePath': template });
    await waitFor(() => w.reconciler.counts.reloaded >= 1 && !w.reconciler.busy, 'an apply despite the broken app');
    expect(w.reconciler.running!.quarantined.map((q) => [q.appId, q.level])).to.deep.equal([['/broken', 'app']]);
    expect(cfgText(s)).to.contain('backend ::fine-cluster').and.not.contain('::broken');
  });

  it('never installs a config that fails validation outside any app, and keeps the last good one', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const template = join(s.dir, 'global.cfg.liquid');
    // A directive outside every app block that becomes invalid once there are two apps.
    writeFileSync(
      template,
      [
        'global',
        '{%- if Apps.size > 1 %}',
        '    no_such_global_directive',
        '{%- endif %}',
        'defaults',
        '    mode http',
        '    timeout connect 5s',
        '    timeout client 5s',
        '    timeout server 5s',
        'frontend web',
        `    bind 127.0.0.1:${s.httpPort}`,
        '{%- for app in Apps %}{% app app %}',
        '    use_backend {{ app.EscapedId }} if { path_beg {{ app.Id }} }',
        '{%- endapp %}{% endfor %}',
        '{%- for app in Apps %}{% app app %}',
        'backend {{ app.EscapedId }}',
        '{%- endapp %}{% endfor %}',
        '',
      ].join('\n'),
    );
    await api.setApps([marathonApp('/one', [{ port: 21040 }])]);
    const w = await worker(s, { 'HAProxy.ReloadCommand': 'true', 'HAProxy.TemplatePath': template });
    const seen = outcomes(w);
    await waitFor(() => w.reconciler.counts.reloaded === 1 && !w.reconciler.busy, 'the first config');
    const good = cfgText(s);

    await api.setApps([marathonApp('/one', [{ port: 21040 }]), marathonApp('/two', [{ port: 21041 }])]);
    await waitFor(() => seen.some((o) => o.outcome === 'invalid'), 'the invalid outcome');
    const invalid = seen.find((o) => o.outcome === 'invalid')!;
    expect(invalid.reason).to.contain('no_such_global_directive');
    expect(cfgText(s)).to.equal(good);
    expect(readFileSync(`${s.outputPath}.last-good`, 'utf8')).to.equal(good);
    expect(readFileSync(`${s.outputPath}.last-failed`, 'utf8')).to.contain('no_such_global_directive');
    // (A queued watch or hint may render the same config again afterwards; the last apply stays invalid.)
    expect(w.reconciler.lastApply?.outcome).to.equal('invalid');
    expect(w.reconciler.counts.reloaded).to.equal(1);
  });

  it('restores the last good config when a managed reload fails, and retries until it succeeds', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const web = await backend('web');
    // Something else holds the port a new TCP listener wants: haproxy -c passes, the reload cannot bind.
    const blocker = createServer();
    const tcpPort = await freePort();
    await new Promise<void>((r) => blocker.listen(tcpPort, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => blocker.close(r)));
    await api.setApps([marathonApp('/web', [{ port: web.port }])]);
    const w = await worker(s, {}, { retryInitialMs: 300, retryMaxMs: 600 });
    const seen = outcomes(w);
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${s.httpPort}/web`).catch(() => null))?.body.startsWith('web'), 'traffic to /web');
    await w.reconciler.whenIdle();
    const good = cfgText(s);

    await api.setApps([
      marathonApp('/web', [{ port: web.port }]),
      marathonApp('/tcp', [{ port: web.port }], { env: { BAMBOO_TCP_PORT: String(tcpPort) } }),
    ]);
    await waitFor(() => seen.some((o) => o.outcome === 'reload-failed'), 'the failed reload', 20000);
    expect(cfgText(s)).to.equal(good);
    expect(readFileSync(`${s.outputPath}.last-failed`, 'utf8')).to.contain(`:${tcpPort}`);
    expect((await httpGet(`http://127.0.0.1:${s.httpPort}/web`)).body).to.match(/^web/);

    const failedAt = seen.findIndex((o) => o.outcome === 'reload-failed');
    // The alert names the app: it is quarantined and the rest applies without it (worker-ports.test.ts).
    expect(seen[failedAt].quarantined.map((q) => q.appId)).to.deep.equal(['/tcp']);
    await new Promise((r) => blocker.close(r));
    // No new input after the failure: a later successful reload of the same state, with nothing
    // quarantined, is the retry once the quarantine's hold (retryMaxMs) ran out; the failed change
    // was not dropped.
    await waitFor(
      () => cfgText(s).includes(`:${tcpPort}`) && seen.slice(failedAt + 1).some((o) => o.outcome === 'reloaded' && o.quarantined.length === 0),
      'a retry to succeed',
      30000,
    );
    expect((await httpGet(`http://127.0.0.1:${tcpPort}/tcp`)).body).to.match(/^web/);
  });

  it('times out a hung reload command, kills it, and applies the next change', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    await api.setApps([marathonApp('/hang/web', [{ port: 21020 }])]);
    const flag = join(s.dir, 'hang');
    const reloads = join(s.dir, 'reloads');
    writeFileSync(flag, '');
    const w = await worker(s, {
      'HAProxy.ReloadCommand': `if [ -e ${flag} ]; then echo $$ > ${flag}.pid; sleep 60; fi; echo ok >> ${reloads}`,
      'HAProxy.CommandTimeoutMs': 500,
    });
    const seen = outcomes(w);
    await waitFor(() => seen.some((o) => o.outcome === 'reload-failed'), 'the hung reload to time out');
    expect(seen.find((o) => o.outcome === 'reload-failed')!.reason).to.contain('timed out');
    const hung = Number(readFileSync(`${flag}.pid`, 'utf8'));
    await waitFor(() => !alive(hung), 'the hung reload command to be killed');

    rmSync(flag);
    await api.setRule('/hang/web', 'path_beg -i /after-the-hang');
    await waitFor(() => seen.some((o) => o.outcome === 'reloaded') && cfgText(s).includes('/after-the-hang'), 'the next change to apply', 15000);
    await waitFor(() => !w.reconciler.busy, 'idle');
    // A watch queued behind the reload may end in a noop afterwards: look at the last apply.
    expect(w.reconciler.lastApply!.outcome).to.equal('reloaded');
    expect(readFileSync(reloads, 'utf8')).to.contain('ok');
  });

  it('keeps serving the last good config while ZooKeeper is away, and recovers', async function () {
    const zk = await startZooKeeper();
    cleanups.push(() => zk.stop());
    const s = { ...(await testSetup()), zkHost: zk.connectionString };
    const api = await fakeApi(s);
    const app = await backend('steady');
    await api.setApps([marathonApp('/steady', [{ port: app.port }])]);
    await api.setRule('/steady', 'hdr(host) -i steady.example.com');
    const w = await worker(s, { 'Worker.ResyncIntervalMs': 200 });
    const seen = outcomes(w);
    await waitFor(async () => (await route(s, 'steady.example.com'))?.body.startsWith('steady'), 'traffic before the outage');
    const good = cfgText(s);

    await zk.nodes[0].stop('SIGKILL');
    await waitFor(() => seen.some((o) => o.outcome === 'noop' && o.reason.includes('unavailable')), 'a reconcile without ZooKeeper', 15000);
    expect(cfgText(s)).to.equal(good);
    expect((await route(s, 'steady.example.com'))?.body).to.match(/^steady/);
    expect(w.status().healthy).to.equal(true);
    expect(w.status().degraded.join()).to.contain('zookeeper');

    await zk.nodes[0].start();
    await waitFor(() => api.zk.connected, 'the api side to reconnect', 20000);
    await api.setRule('/steady', 'hdr(host) -i back.example.com');
    await waitFor(async () => (await route(s, 'back.example.com'))?.body.startsWith('steady'), 'a change after the outage', 20000);
  });

  it('stops a managed HAProxy with the worker by default, and hands it to the next worker when told to keep it', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const app = await backend('kept');
    await api.setApps([marathonApp('/kept', [{ port: app.port }])]);
    const url = `http://127.0.0.1:${s.httpPort}/kept`;
    const first = await worker(s);
    await waitFor(async () => (await httpGet(url).catch(() => null))?.body.startsWith('kept'), 'traffic through the first worker');
    const master = first.haproxy.state().masterPid!;
    await first.close({ keepHaproxy: true });
    expect(alive(master)).to.equal(true);
    expect((await httpGet(url)).body).to.match(/^kept/);

    const second = await worker(s);
    expect(second.haproxy.state().masterPid).to.equal(master);
    await api.setRule('/kept', 'path_beg -i /moved');
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${s.httpPort}/moved`).catch(() => null))?.body.startsWith('kept'), 'the adopted HAProxy to follow a change');
    await second.close();
    await waitFor(() => !alive(master), 'HAProxy to stop with the worker', 10000);
    expect(await httpGet(url).then(() => 'served', () => 'refused')).to.equal('refused');
  });

  it('sends reload, reconcile and (Bamboo\'s) restart counters to StatsD', async () => {
    const statsd = await startStatsd();
    cleanups.push(() => statsd.stop());
    const s = await testSetup();
    const api = await fakeApi(s);
    await api.setApps([marathonApp('/metrics/web', [{ port: 21030 }])]);
    const w = await worker(s, {
      'HAProxy.ReloadCommand': 'true',
      'StatsD.Enabled': true,
      'StatsD.Host': statsd.host,
      'StatsD.Prefix': 'bamboo-test.',
    });
    await waitFor(() => w.reconciler.counts.reloaded === 1, 'a reload');
    await api.setRule('/metrics/web', 'path_beg -i /metrics');
    await waitFor(() => w.reconciler.counts.reloaded === 2, 'a second reload');
    const counters = await waitFor(async () => {
      const c = await statsd.counters();
      return (c['bamboo-test.haproxy.reload.marathon.reloaded'] ?? 0) >= 2 ? c : null;
    }, 'the reload counter in StatsD');
    expect(counters!['bamboo-test.reconcile.reloaded']).to.be.at.least(2);
    // Bamboo's counter of process starts.
    expect(counters!['bamboo-test.restart']).to.equal(1);
    const timers = await statsd.timers();
    expect(timers['bamboo-test.haproxy.reload.marathon.duration']).to.have.length.at.least(2);
  });
});
