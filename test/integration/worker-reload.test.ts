/**
 * Managed mode's reload as the validation (worker/validation-policy.ts): a structural change is
 * parsed once by HAProxy (the master's reload), and `haproxy -c` runs only when the master refuses,
 * to find the app to quarantine. Real ZooKeeper, ZeroMQ and HAProxy; `-c` runs are counted by an
 * HAProxy.Binary wrapper that records each one before it execs HAProxy.
 */
import { expect } from 'chai';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haproxySettings } from '../../common/config-views.js';
import { parseShowProc } from '../../common/core/reload-alerts.js';
import { cliCommand } from '../../common/adapters/haproxy/master-cli.js';
import { inMaintenance, parseServersState } from '../../common/core/server-state.js';
import { serverLines } from '../../common/core/config-diff.js';
import { managedPaths, runWorker, type WorkerHandle } from '../../worker/main.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { haproxyCheck } from '../support/haproxy.js';
import { FakeApi, marathonApp, testLogger, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('worker-reload');

describe('worker: the managed reload is the validation (real ZooKeeper, ZeroMQ, HAProxy)', function () {
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

  /** An HAProxy.Binary that records every `haproxy -c` it runs in `<dir>/checks`. */
  function countingBinary(s: TestSetup): { binary: string; checks: () => number } {
    const dir = join(s.dir, 'checks');
    mkdirSync(dir);
    const binary = join(s.dir, 'haproxy-counting');
    writeFileSync(binary, `#!/bin/sh\ncase " $* " in *" -c "*) : > "${dir}/$$" ;; esac\nexec haproxy "$@"\n`);
    chmodSync(binary, 0o755);
    return { binary, checks: () => readdirSync(dir).length };
  }

  async function worker(s: TestSetup, overrides: Record<string, string | number | boolean>): Promise<WorkerHandle> {
    const cfg = workerConfig(s, overrides);
    const w = await runWorker(cfg, log, { bind: '127.0.0.1:0', retryInitialMs: 200 });
    cleanups.push(() => w.close());
    return w;
  }

  /** The master's reload and failed-reload counts (`show proc`). */
  async function masterCounts(s: TestSetup, overrides: Record<string, string | number | boolean> = {}): Promise<{ reloads: number; failed: number }> {
    const { masterSocket } = managedPaths(workerConfig(s, overrides));
    const info = await waitFor(async () => parseShowProc(await cliCommand(masterSocket, 'show proc').catch(() => '')), 'show proc', 10000);
    return { reloads: info!.reloads, failed: info!.failed };
  }

  function route(s: TestSetup, path: string, host?: string) {
    return httpGet(`http://127.0.0.1:${s.httpPort}${path}`, { host, timeoutMs: 2000 }).catch(() => null);
  }

  for (const [validateFirst, checks] of [
    [false, 0],
    [true, 1],
  ] as const) {
    it(`applies a new app with ${checks} haproxy -c and one reload (HAProxy.ValidateBeforeReload=${validateFirst})`, async () => {
      const s = await testSetup();
      const api = await fakeApi(s);
      const web = await backend('web');
      const fresh = await backend('fresh');
      const counting = countingBinary(s);
      const overrides = { 'HAProxy.Binary': counting.binary, 'HAProxy.ValidateBeforeReload': validateFirst };
      await api.setApps([marathonApp('/web', [{ port: web.port }])]);
      const w = await worker(s, overrides);
      await waitFor(async () => (await route(s, '/web'))?.body.startsWith('web'), 'traffic to /web');
      await w.reconciler.whenIdle();
      const checksBefore = counting.checks();
      const before = await masterCounts(s, overrides);

      // A new app is a structural change: a backend the running HAProxy does not have.
      await api.setApps([marathonApp('/web', [{ port: web.port }]), marathonApp('/fresh', [{ port: fresh.port }])]);
      await waitFor(async () => (await route(s, '/fresh'))?.body.startsWith('fresh'), 'traffic to the new app');
      await w.reconciler.whenIdle();
      expect(w.reconciler.lastApply?.outcome).to.equal('reloaded');
      expect(counting.checks() - checksBefore, 'haproxy -c runs for the change').to.equal(checks);
      const after = await masterCounts(s, overrides);
      expect(after.reloads - before.reloads, 'reloads of the master').to.equal(1);
      expect(after.failed).to.equal(before.failed);
    });
  }

  it('quarantines the app whose rule the master refuses, keeps serving the others, and leaves the last good haproxy.cfg for a restart', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const good = await backend('good');
    const bad = await backend('bad');
    const counting = countingBinary(s);
    const overrides = { 'HAProxy.Binary': counting.binary };
    await api.setApps([marathonApp('/good', [{ port: good.port }]), marathonApp('/bad', [{ port: bad.port }])]);
    await api.setRule('/good', 'hdr(host) -i good.example.com');
    const w = await worker(s, overrides);
    await waitFor(async () => (await route(s, '/', 'good.example.com'))?.body.startsWith('good'), 'traffic for the good app');
    await w.reconciler.whenIdle();
    const lastGood = readFileSync(s.outputPath, 'utf8');
    const checksBefore = counting.checks();
    const before = await masterCounts(s, overrides);

    // Requests to the good app all along: none may fail while the master refuses the bad config.
    let failures = 0;
    let requests = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const r = await route(s, '/', 'good.example.com');
        requests++;
        if (!r?.body.startsWith('good')) failures++;
      }
    })();
    cleanups.push(async () => {
      polling = false;
      await poller;
    });

    // Written straight to ZooKeeper, past the api's rule check: HAProxy cannot parse it.
    await api.setRule('/bad', 'hdr_nonsense(host) -i x');
    const quarantined = () => w.reconciler.running?.quarantined.find((q) => q.appId === '/bad');
    await waitFor(() => quarantined() !== undefined && w.reconciler.running?.confirmed && !w.reconciler.busy, 'the bad rule quarantined', 30000);
    polling = false;
    await poller;
    expect(quarantined()).to.include({ level: 'rules' });
    expect(quarantined()!.error).to.contain('hdr_nonsense');
    expect(requests, 'requests to the good app meanwhile').to.be.above(0);
    expect(failures, 'failed requests to the good app').to.equal(0);
    // The master parsed the bad config and refused it (its failed count is reset by the next good
    // reload: the refused one and the good one are counted); `haproxy -c` ran afterwards, to find the app.
    const after = await masterCounts(s, overrides);
    expect(after.reloads - before.reloads, 'reloads: refused, then without the rule').to.be.at.least(2);
    expect(readFileSync(`${s.outputPath}.last-failed`, 'utf8')).to.match(/^# reload failed: haproxy rejected the new configuration/);
    expect(counting.checks() - checksBefore, 'haproxy -c runs').to.be.at.least(1);
    // Without its rule the app is routed by the default path rule; the file on disk is the config in force.
    expect((await route(s, '/bad/x'))?.body).to.match(/^bad/);
    const onDisk = readFileSync(s.outputPath, 'utf8');
    expect(onDisk).to.not.contain('hdr_nonsense');
    expect(onDisk).to.equal(w.reconciler.running!.text);
    expect(readFileSync(`${s.outputPath}.last-failed`, 'utf8')).to.contain('hdr_nonsense(host)');
    expect(lastGood).to.not.contain('hdr_nonsense');
    expect((await haproxyCheck(s.outputPath)).ok).to.equal(true);

    // A restart of HAProxy (its master killed) comes up on the file on disk and serves.
    const { masterPid } = w.haproxy.state();
    process.kill(masterPid!, 'SIGKILL');
    await waitFor(() => w.haproxy.state().restarts >= 1 && w.haproxy.state().running, 'HAProxy restarted', 30000);
    await waitFor(async () => (await route(s, '/', 'good.example.com'))?.body.startsWith('good'), 'the restarted HAProxy to serve the good app', 30000);
    expect((await route(s, '/bad/x'))?.body).to.match(/^bad/);
  });

  it('with HAProxy.DynamicServers off, gives a backend its tasks plus 2 spare slots, saves no spare slot in the server-state file, and keeps the servers through a reload and a restart', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const a = await backend('a');
    const b = await backend('b');
    const other = await backend('other');
    await api.setApps([marathonApp('/web', [{ port: a.port }, { port: b.port }])]);
    const w = await worker(s, { 'HAProxy.DynamicServers': false });
    await waitFor(async () => (await route(s, '/web'))?.body.match(/^(a|b) /), 'traffic to /web');
    await w.reconciler.whenIdle();
    const settings = haproxySettings(workerConfig(s) as never);
    const servers = () => [...serverLines(readFileSync(s.outputPath, 'utf8')).keys()].filter((k) => k.startsWith('::web-cluster/')).sort();
    const state = async () => parseServersState(await cliCommand(settings.AdminSocket, 'show servers state ::web-cluster'));
    expect(servers()).to.deep.equal(['::web-cluster/slot-1', '::web-cluster/slot-2', '::web-cluster/slot-3', '::web-cluster/slot-4']);
    // An operator takes one task out: a state the reload must carry over through the state file.
    await cliCommand(settings.AdminSocket, 'set server ::web-cluster/slot-1 state maint');

    // A structural change: a new app, so a reload.
    await api.setApps([marathonApp('/web', [{ port: a.port }, { port: b.port }]), marathonApp('/other', [{ port: other.port }])]);
    await waitFor(async () => (await route(s, '/other'))?.body.startsWith('other'), 'traffic to the new app');
    await w.reconciler.whenIdle();
    expect(w.reconciler.lastApply?.outcome).to.equal('reloaded');
    const saved = readFileSync(settings.ServerStateFile, 'utf8');
    expect(saved, 'tasks saved').to.contain(' slot-1 ').and.contain(' slot-2 ');
    expect(saved, 'spare slots not saved').to.not.match(/::web-cluster \d+ slot-[34] /);
    const afterReload = await state();
    expect(inMaintenance(afterReload.get('::web-cluster/slot-1')!), 'the operator\'s maintenance survives the reload').to.equal(true);
    expect(inMaintenance(afterReload.get('::web-cluster/slot-2')!)).to.equal(false);
    for (const k of ['::web-cluster/slot-3', '::web-cluster/slot-4']) expect(inMaintenance(afterReload.get(k)!), `${k} spare, in maintenance`).to.equal(true);
    expect((await route(s, '/web'))?.body).to.match(/^b /);

    // A restart comes up on the file and the saved state: the same servers, in the same state.
    process.kill(w.haproxy.state().masterPid!, 'SIGKILL');
    await waitFor(() => w.haproxy.state().restarts >= 1 && w.haproxy.state().running, 'HAProxy restarted', 30000);
    await waitFor(async () => (await route(s, '/other'))?.body.startsWith('other'), 'the restarted HAProxy to serve', 30000);
    const afterRestart = await state();
    expect([...afterRestart.keys()].sort()).to.deep.equal(servers());
    expect(inMaintenance(afterRestart.get('::web-cluster/slot-1')!), 'maintenance after the restart').to.equal(true);
    for (const k of ['::web-cluster/slot-3', '::web-cluster/slot-4']) expect(inMaintenance(afterRestart.get(k)!), `${k} after the restart`).to.equal(true);
    expect((await route(s, '/web'))?.body).to.match(/^b /);
  });

  it('starts HAProxy on the last good config when the file on disk is one it refuses (a worker killed mid-reload)', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const web = await backend('web');
    await api.setApps([marathonApp('/web', [{ port: web.port }])]);
    const first = await worker(s, {});
    await waitFor(async () => (await route(s, '/web'))?.body.startsWith('web'), 'traffic to /web');
    await first.reconciler.whenIdle();
    await first.close();
    const good = readFileSync(`${s.outputPath}.last-good`, 'utf8');
    // What a worker killed between installing a candidate and putting the last good file back leaves.
    writeFileSync(s.outputPath, `${good}    no_such_directive here\n`);

    const w = await worker(s, {});
    // Started before the worker reads ZooKeeper: on the last good file, not on nothing.
    expect(w.haproxy.state().running, 'HAProxy running once the worker started').to.equal(true);
    expect(readFileSync(s.outputPath, 'utf8')).to.equal(good);
    expect((await route(s, '/web'))?.body).to.match(/^web/);
  });
});
