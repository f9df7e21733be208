import { expect } from 'chai';
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haproxySettings } from '../../common/config-views.js';
import { cliCommand } from '../../common/adapters/haproxy/master-cli.js';
import { nullMetrics } from '../../common/adapters/statsd/metrics.js';
import { inMaintenance, outOfRotation } from '../../common/core/server-state.js';
import { serverLines } from '../../common/core/config-diff.js';
import { createServer } from 'node:http';
import { httpGet, type Backend } from '../../harness/http.js';
import { sleep, waitFor } from '../../harness/process.js';
import { startWrk, stopWrk } from '../support/wrk.js';
import { runtimeStack } from '../support/runtime-stack.js';
import { marathonApp, testLogger, testSetup, workerConfig } from '../worker-fixtures.js';

// Task churn through HAProxy's Runtime API, against the real thing: a managed HAProxy 2.6, real
// ZooKeeper and ZeroMQ, real HTTP backends and wrk load.

const log = testLogger('worker');

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

describe('runtime changes (Runtime API, managed HAProxy, real load)', function () {
  this.timeout(120000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  const { fakeApi, backends, worker, loads, web, masterReloads, adminSocket, serversState, applied, outcomes, expectStateMatchesFile } = runtimeStack(cleanups, log);

  it('scales an app from 3 to 10 tasks and back under wrk load with no reload and no failed request', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(10);
    let version = await api.setApps([web(tasks.slice(0, 3))]);
    // 3 tasks with 300 % headroom: 12 slots, so the scale to 10 stays within them.
    const w = await worker(s, { 'HAProxy.ServerSlotHeadroom': 300 });
    const url = `http://127.0.0.1:${s.httpPort}/web/x`;
    await waitFor(async () => (await httpGet(url).catch(() => null))?.status === 200, 'traffic through HAProxy');
    await applied(w, version, 'the first config');
    const reloadsBefore = w.reconciler.counts.reloaded;
    const masterBefore = await masterReloads(s);
    const seen = outcomes(w);

    const load = loads();
    load.push(startWrk(url, ['-c8'], 2, 60), startWrk(url, ['-c4', '-H', 'Connection: close'], 2, 60));
    const idle = tasks.slice(0, 3).map((t) => t.hits);
    await waitFor(() => tasks.slice(0, 3).every((t, i) => t.hits >= idle[i] + 20), 'the load to reach every task');

    const toTraffic: number[] = [];
    const toApplied: number[] = [];
    // One task at a time, as Marathon starts them; each must get traffic before the next starts.
    for (let n = 4; n <= 10; n++) {
      const fresh = tasks[n - 1];
      const hitsBefore = fresh.hits;
      const t0 = performance.now();
      version = await api.setApps([web(tasks.slice(0, n))]);
      await waitFor(() => fresh.hits > hitsBefore, `traffic to task ${n}`, 20000, 1);
      toTraffic.push(performance.now() - t0);
      await applied(w, version, `scale to ${n}`);
      toApplied.push(performance.now() - t0);
    }
    for (const t of tasks) expect(t.hits, `${t.name} got traffic`).to.be.greaterThan(0);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(10);

    for (let n = 9; n >= 3; n--) {
      version = await api.setApps([web(tasks.slice(0, n))]);
      await applied(w, version, `scale to ${n}`);
    }
    // Removed tasks are drained, then put in maintenance (DrainTimeoutMs 1 s at most).
    await waitFor(() => w.reconciler.status().runtime.draining === 0, 'the drains to finish', 10000);
    const removedHits = tasks.slice(3).map((t) => t.hits);
    const keptHits = tasks.slice(0, 3).map((t) => t.hits);
    // The load itself marks the window: every kept task serves 50 more requests, and no removed one any.
    await waitFor(() => tasks.slice(0, 3).every((t, i) => t.hits >= keptHits[i] + 50), 'the kept tasks to go on serving the load', 10000);
    expect(tasks.slice(3).map((t) => t.hits), 'removed tasks get no more traffic').to.deep.equal(removedHits);
    tasks.slice(0, 3).forEach((t, i) => expect(t.hits, `${t.name} still gets traffic`).to.be.greaterThan(keptHits[i]));

    const [ka, cl] = await Promise.all(load.map((l) => stopWrk(l)));
    expect(w.reconciler.counts.reloaded - reloadsBefore, 'reloads by the worker').to.equal(0);
    expect(await masterReloads(s), "HAProxy master's reload count").to.equal(masterBefore);
    expect(seen.filter((o) => o.outcome !== 'runtime' && o.outcome !== 'noop').map((o) => `${o.outcome}: ${o.reason}`)).to.deep.equal([]);
    expect(seen.filter((o) => o.outcome === 'runtime')).to.have.length(14);
    for (const [name, r] of [['keep-alive', ka], ['Connection: close', cl]] as const) {
      expect(r.requests, `${name}: ${r.output}`).to.be.greaterThan(100);
      expect(r.socketErrors + r.non2xx, `${name}: ${r.output}`).to.equal(0);
    }
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(3);
    const status = w.status();
    expect(status.outcomes.runtime).to.equal(14);
    // A resync or watch may have run after the last scale step: it finds nothing to do (noop), which is fine.
    expect(status.lastOutcome).to.be.oneOf(['runtime', 'noop']);
    expect(status.runtime).to.include({ enabled: true, fallbacks: 0, lastAppliedVia: 'runtime' });
    const runtimeMs = seen.filter((o) => o.outcome === 'runtime').map((o) => o.stages.runtime ?? 0);
    console.log(
      `      scale event -> new task gets traffic: p50 ${percentile(toTraffic, 50).toFixed(1)} ms, p99 ${percentile(toTraffic, 99).toFixed(1)} ms;`
        + ` -> applied: p50 ${percentile(toApplied, 50).toFixed(1)} ms, p99 ${percentile(toApplied, 99).toFixed(1)} ms;`
        + ` runtime stage p50 ${percentile(runtimeMs, 50).toFixed(1)} ms; requests ${ka.requests + cl.requests}`,
    );
  });

  it('moves a server out of rotation and back on a health flip, without a reload', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const [a, b] = await backends(2);
    const withHealth = (bAlive: boolean) => {
      const x = marathonApp('/web', [{ port: a.port, id: 'web.a' }, { port: b.port, id: 'web.b' }], {
        healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0, gracePeriodSeconds: 5 }],
      }) as { tasks: Array<Record<string, unknown>> };
      x.tasks[0].healthCheckResults = [{ alive: true }];
      x.tasks[1].healthCheckResults = [{ alive: bAlive }];
      return x;
    };
    let version = await api.setApps([withHealth(true)]);
    const counted: string[] = [];
    const w = await worker(s, {}, { ...nullMetrics, reconcile: (outcome) => counted.push(outcome) });
    await applied(w, version, 'the first config');
    const url = `http://127.0.0.1:${s.httpPort}/web/`;
    await waitFor(async () => (await httpGet(url).catch(() => null))?.status === 200 && b.hits > 0, 'traffic to both tasks');
    const reloads = w.reconciler.counts.reloaded;
    const master = await masterReloads(s);

    version = await api.setApps([withHealth(false)]);
    await applied(w, version, 'the health flip');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    const slotOfB = [...serverLines(readFileSync(s.outputPath, 'utf8'))].find(([, l]) => l.includes(`:${b.port} `))![0];
    expect(outOfRotation((await serversState(s, '::web-cluster')).get(slotOfB)!)).to.equal(true);
    const before = b.hits;
    for (let i = 0; i < 20; i++) expect((await httpGet(url)).body).to.match(/^task-0/);
    expect(b.hits).to.equal(before);

    version = await api.setApps([withHealth(true)]);
    await applied(w, version, 'the way back');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    expect(outOfRotation((await serversState(s, '::web-cluster')).get(slotOfB)!)).to.equal(false);
    await waitFor(async () => (await httpGet(url)).body.startsWith('task-1'), 'traffic back on the task');
    expect(w.reconciler.counts.reloaded).to.equal(reloads);
    expect(await masterReloads(s)).to.equal(master);
    expect(counted.filter((o) => o === 'runtime'), 'reconcile.runtime counted for StatsD').to.have.length(2);
  });

  it('drains a removed task: its request in flight finishes, then it goes to maintenance without waiting for the timeout', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const [fast] = await backends(1);
    // A task that answers after 1.5 s.
    const slow = createServer((req, res) => setTimeout(() => res.end(`slow ${req.url}\n`), 1500));
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { slow.closeAllConnections(); slow.close(r); }));
    const slowPort = (slow.address() as { port: number }).port;
    const both = () => marathonApp('/web', [{ port: fast.port, id: 'web.fast' }, { port: slowPort, id: 'web.slow' }]);
    let version = await api.setApps([both()]);
    const w = await worker(s, { 'HAProxy.DrainTimeoutMs': 60000 });
    await applied(w, version, 'the first config');
    const url = `http://127.0.0.1:${s.httpPort}/web/`;
    // leastconn: with the slow task busy, a second request goes to the fast one; find a slow answer.
    let inFlight: Promise<{ status: number; body: string }> | null = null;
    for (let i = 0; i < 10 && !inFlight; i++) {
      const p = httpGet(url, { timeoutMs: 5000 });
      await sleep(100);
      // slot-2 (web.slow) has one session: scur, the fifth column of show stat.
      if (/^::web-cluster,slot-2,\d+,\d+,1,/m.test(await cliCommand(adminSocket(s), 'show stat ::web-cluster 4 -1'))) inFlight = p;
      else await p;
    }
    expect(inFlight, 'a request in flight on the slow task').to.not.equal(null);
    const t0 = Date.now();
    version = await api.setApps([marathonApp('/web', [{ port: fast.port, id: 'web.fast' }])]);
    await applied(w, version, 'the scale down');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    const draining = (await serversState(s, '::web-cluster')).get('::web-cluster/slot-2')!;
    expect(outOfRotation(draining) && !inMaintenance(draining), 'slot-2 draining').to.equal(true);
    const answer = await inFlight!;
    expect(answer.status).to.equal(200);
    expect(answer.body).to.match(/^slow/);
    await waitFor(() => w.reconciler.status().runtime.draining === 0, 'the drain to finish', 10000);
    expect(Date.now() - t0, 'finished with the request, long before the 60 s timeout').to.be.below(10000);
    expect(inMaintenance((await serversState(s, '::web-cluster')).get('::web-cluster/slot-2')!)).to.equal(true);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(1);
  });

  it('reloads for a rule edit, and the servers applied at runtime are all there afterwards', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(5);
    // 3 tasks get 3 slots (HAProxy.DynamicServers): the scale to 5 adds two servers at runtime.
    let version = await api.setApps([web(tasks.slice(0, 3))]);
    const w = await worker(s);
    await applied(w, version, 'the first config');
    version = await api.setApps([web(tasks.slice(0, 5))]);
    await applied(w, version, 'the scale to 5');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    const master = await masterReloads(s);

    await api.setRule('/web', 'path_beg -i /edited');
    await waitFor(() => w.reconciler.lastApply?.outcome === 'reloaded' && !w.reconciler.busy, 'the reload for the rule');
    expect(w.reconciler.lastApply?.reason).to.match(/reload needed/);
    expect(await masterReloads(s)).to.equal(master + 1);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(5);
    const url = `http://127.0.0.1:${s.httpPort}/edited`;
    const before = tasks.map((t) => t.hits);
    for (let i = 0; i < 60; i++) expect((await httpGet(url)).status).to.equal(200);
    tasks.forEach((t, i) => expect(t.hits, `${t.name} gets traffic after the reload`).to.be.greaterThan(before[i]));

    // The server state saved before the reload did not undo anything: scaling down again is a runtime change.
    version = await api.setApps([web(tasks.slice(0, 1))]);
    await applied(w, version, 'the scale to 1');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    await waitFor(() => w.reconciler.status().runtime.draining === 0, 'the drains to finish', 10000);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(1);
  });

  it("keeps an operator's maintenance of an unchanged server across a reload, but not of a changed one", async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(3);
    let version = await api.setApps([web(tasks.slice(0, 2))]);
    // Spare slots, so that the new task takes a slot that was free and the freed one stays free.
    const w = await worker(s, { 'HAProxy.DynamicServers': false });
    await applied(w, version, 'the first config');
    // slot-1 holds task-0 and keeps it (an operator put it in maintenance); task-1 goes and task-2
    // takes a slot that was free, in the same reload as a rule edit.
    await cliCommand(adminSocket(s), 'set server ::web-cluster/slot-1 state maint');
    // Both in one reconcile: the snapshot is written without a hint (the worker reads it on the next
    // trigger), then the rule edit's hint.
    version = (await api.control.writeSnapshot([web([tasks[0], tasks[2]])], Date.now())).version;
    await api.setRule('/web', 'path_beg -i /edited');
    await waitFor(() => readFileSync(s.outputPath, 'utf8').includes('/edited') && (w.reconciler.running?.snapshotVersion ?? -1) >= version && !w.reconciler.busy, 'the reload');
    const states = await serversState(s, '::web-cluster');
    expect(inMaintenance(states.get('::web-cluster/slot-1')!), 'unchanged server keeps its maintenance').to.equal(true);
    // HAProxy would restore a saved server's port over the file: the changed slot must not get the
    // placeholder port it had before the reload.
    const slot = [...serverLines(readFileSync(s.outputPath, 'utf8'))].find(([k, l]) => k.startsWith('::web-cluster/') && new RegExp(`:${tasks[2].port}( |$)`).test(l))![0];
    expect(outOfRotation(states.get(slot)!), 'changed server starts from the file').to.equal(false);
    expect(`${states.get(slot)!.addr}:${states.get(slot)!.port}`).to.equal(`127.0.0.1:${tasks[2].port}`);
    expect(inMaintenance(states.get('::web-cluster/slot-2')!), 'the freed slot is in maintenance').to.equal(true);
  });

  it('comes back from an HAProxy restart with the servers the file says', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(6);
    let version = await api.setApps([web(tasks.slice(0, 4))]);
    const w = await worker(s);
    await applied(w, version, 'the first config');
    // Runtime changes after the last reload: two tasks replaced, one added.
    version = await api.setApps([web([tasks[0], tasks[1], tasks[4], tasks[5], tasks[2]])]);
    await applied(w, version, 'the churn');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    await waitFor(() => w.reconciler.status().runtime.draining === 0, 'the drains to finish', 10000);
    const pidBefore = w.haproxy.state().masterPid!;
    process.kill(pidBefore, 'SIGTERM');
    await waitFor(() => {
      const st = w.haproxy.state();
      return st.running && st.masterPid !== pidBefore && st.workerPids.length > 0;
    }, 'HAProxy to be restarted by the worker', 20000);
    await waitFor(() => existsSync(adminSocket(s)), 'the admin socket');
    await waitFor(async () => (await serversState(s, '::web-cluster').catch(() => new Map())).size > 0, 'the restarted HAProxy to answer');
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(5);
    const url = `http://127.0.0.1:${s.httpPort}/web/`;
    const before = tasks.map((t) => t.hits);
    for (let i = 0; i < 50; i++) expect((await httpGet(url)).status).to.equal(200);
    expect(tasks[3].hits, 'the removed task gets nothing').to.equal(before[3]);
    for (const i of [0, 1, 2, 4, 5]) expect(tasks[i].hits, `${tasks[i].name} gets traffic`).to.be.greaterThan(before[i]);
  });

  it('falls back to a reload when the admin socket is gone, and the config still wins', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(4);
    let version = await api.setApps([web(tasks.slice(0, 2))]);
    const w = await worker(s);
    await applied(w, version, 'the first config');
    unlinkSync(adminSocket(s));
    const master = await masterReloads(s);

    version = await api.setApps([web(tasks.slice(0, 4))]);
    await applied(w, version, 'the scale to 4');
    expect(w.reconciler.lastApply?.outcome).to.equal('reloaded');
    expect(w.reconciler.lastApply?.reason).to.match(/runtime change failed/);
    // One fallback per reconcile that tried the Runtime API without its socket: one here, two once in
    // a full CI run (which reconcile made the second attempt was not found). Each fallback is a
    // reload; what this proves is that the change arrived by a reload and the config won.
    const fallbacks = w.reconciler.status().runtime.fallbacks;
    expect(fallbacks).to.be.within(1, 2);
    expect(w.status().runtime.lastError?.reason).to.match(/ENOENT|connect/);
    expect(await masterReloads(s)).to.be.within(master + 1, master + fallbacks);
    const url = `http://127.0.0.1:${s.httpPort}/web/`;
    const before = tasks.map((t) => t.hits);
    for (let i = 0; i < 60; i++) expect((await httpGet(url)).status).to.equal(200);
    tasks.forEach((t, i) => expect(t.hits, `${t.name} gets traffic`).to.be.greaterThan(before[i]));
    // The server state file restored nothing from before the failure.
    expect(readFileSync(haproxySettings(workerConfig(s) as never).ServerStateFile, 'utf8')).to.equal('1\n');
  });

  it('with HAProxy.DynamicServers off: reloads when the tasks outgrow their slots, and the bigger backend takes the next scale at runtime', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(10);
    let version = await api.setApps([web(tasks.slice(0, 1))]);
    const w = await worker(s, { 'HAProxy.DynamicServers': false });
    await applied(w, version, 'the first config');
    expect([...serverLines(readFileSync(s.outputPath, 'utf8')).keys()].filter((k) => k.startsWith('::web-cluster/'))).to.have.length(3);

    version = await api.setApps([web(tasks.slice(0, 9))]);
    await applied(w, version, 'the scale to 9');
    expect(w.reconciler.lastApply?.outcome).to.equal('reloaded');
    expect(w.reconciler.lastApply?.reason).to.match(/reload needed: the config's structure changed/);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(9);
    expect([...serverLines(readFileSync(s.outputPath, 'utf8')).keys()].filter((k) => k.startsWith('::web-cluster/'))).to.have.length(14);

    version = await api.setApps([web(tasks.slice(0, 10))]);
    await applied(w, version, 'the scale to 10');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(10);
  });

  describe('command mode (HAProxy.ReloadCommand)', () => {
    it('uses the Runtime API when HAProxy.AdminSocket is set and answers', async () => {
      const s = await testSetup();
      const api = await fakeApi(s);
      const tasks = await backends(3);
      const socket = join(s.dir, 'admin.sock');
      const pid = join(s.dir, 'haproxy.pid');
      // A seamless reload script: the new process takes the listeners over the admin socket (-x).
      const script = join(s.dir, 'reload.sh');
      writeFileSync(script, [
        `if [ -s ${pid} ] && kill -0 "$(cat ${pid})" 2>/dev/null; then`,
        `  exec haproxy -f ${s.outputPath} -p ${pid} -D -x ${socket} -sf "$(cat ${pid})"`,
        `else exec haproxy -f ${s.outputPath} -p ${pid} -D; fi`,
      ].join('\n'));
      cleanups.push(async () => {
        const p = Number(readFileSync(pid, 'utf8').trim());
        if (p > 1) process.kill(p, 'SIGTERM');
      });
      let version = await api.setApps([web(tasks.slice(0, 2))]);
      const w = await worker(s, { 'HAProxy.ReloadCommand': `sh ${script}`, 'HAProxy.AdminSocket': socket });
      await applied(w, version, 'the first config');
      expect(w.reconciler.lastApply?.outcome).to.equal('reloaded');
      expect(w.status().runtime).to.include({ enabled: true, socket });

      version = await api.setApps([web(tasks.slice(0, 3))]);
      await applied(w, version, 'the scale to 3');
      expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
      const url = `http://127.0.0.1:${s.httpPort}/web/`;
      await waitFor(async () => (await httpGet(url)).body.startsWith('task-2'), 'traffic to the new task');
      expect(await expectStateMatchesFile(s, '::web-cluster', socket)).to.equal(3);
    });

    it('reloads for every change when HAProxy.AdminSocket is not set', async () => {
      const s = await testSetup();
      const api = await fakeApi(s);
      let version = await api.setApps([web([{ name: 'a', port: 31001 } as Backend])]);
      const w = await worker(s, { 'HAProxy.ReloadCommand': 'true' });
      await applied(w, version, 'the first config');
      version = await api.setApps([web([{ name: 'a', port: 31001 } as Backend, { name: 'b', port: 31002 } as Backend])]);
      await applied(w, version, 'the scale to 2');
      expect(w.reconciler.lastApply?.outcome).to.equal('reloaded');
      expect(w.reconciler.counts.runtime).to.equal(0);
      expect(w.status().runtime.enabled).to.equal(false);
    });
  });
});
