import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { cliCommand } from '../../common/adapters/haproxy/master-cli.js';
import { serverLines } from '../../common/core/config-diff.js';
import { httpGet, type Backend } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { startWrk, stopWrk } from '../support/wrk.js';
import { runtimeStack } from '../support/runtime-stack.js';
import { testLogger, testSetup, type TestSetup } from '../worker-fixtures.js';

// HAProxy.DynamicServers against the real thing: a backend has one server line per task, a task
// beyond them is added with `add server` (no reload), and the added servers are plain config servers
// after a reload and after an HAProxy restart, with the state the worker expects.

const log = testLogger('worker');

describe('dynamic servers (add server, managed HAProxy, real load)', function () {
  this.timeout(120000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  const { fakeApi, backends, worker, loads, web, masterReloads, adminSocket, serversState, applied, outcomes, expectStateMatchesFile } = runtimeStack(cleanups, log);

  const checked = { healthChecks: [{ protocol: 'HTTP', path: '/health', portIndex: 0, gracePeriodSeconds: 5 }] };
  const serverKeys = (s: TestSetup, backend = '::web-cluster') =>
    [...serverLines(readFileSync(s.outputPath, 'utf8')).keys()].filter((k) => k.startsWith(`${backend}/`));
  /** Every task answers through HAProxy within `requests` requests (leastconn spreads them). */
  async function everyTaskServes(s: TestSetup, tasks: Backend[], requests = 60): Promise<void> {
    const before = tasks.map((t) => t.hits);
    for (let i = 0; i < requests; i++) expect((await httpGet(`http://127.0.0.1:${s.httpPort}/web/`)).status).to.equal(200);
    tasks.forEach((t, i) => expect(t.hits, `${t.name} gets traffic`).to.be.greaterThan(before[i]));
  }

  it('grows a backend without spare slots from 2 to 6 tasks under wrk load: no reload, no failed request', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(6);
    let version = await api.setApps([web(tasks.slice(0, 2), checked)]);
    const w = await worker(s);
    await applied(w, version, 'the first config');
    // One server line per task: no spare slot.
    expect(serverKeys(s)).to.deep.equal(['::web-cluster/slot-1', '::web-cluster/slot-2']);
    const url = `http://127.0.0.1:${s.httpPort}/web/x`;
    await waitFor(async () => (await httpGet(url).catch(() => null))?.status === 200, 'traffic through HAProxy');
    const master = await masterReloads(s);
    const reloads = w.reconciler.counts.reloaded;
    const seen = outcomes(w);

    const load = loads();
    load.push(startWrk(url, ['-c6'], 2, 60), startWrk(url, ['-c3', '-H', 'Connection: close'], 2, 60));
    for (let n = 3; n <= 6; n++) {
      const fresh = tasks[n - 1];
      const hits = fresh.hits;
      version = await api.setApps([web(tasks.slice(0, n), checked)]);
      await waitFor(() => fresh.hits > hits, `traffic to task ${n}`, 20000, 1);
      await applied(w, version, `scale to ${n}`);
    }
    const results = await Promise.all(load.map((l) => stopWrk(l)));
    expect(seen.filter((o) => o.outcome !== 'runtime' && o.outcome !== 'noop').map((o) => `${o.outcome}: ${o.reason}`)).to.deep.equal([]);
    expect(w.reconciler.counts.reloaded - reloads, 'reloads by the worker').to.equal(0);
    expect(await masterReloads(s), "HAProxy master's reload count").to.equal(master);
    for (const r of results) {
      expect(r.requests, r.output).to.be.greaterThan(50);
      expect(r.socketErrors + r.non2xx, r.output).to.equal(0);
    }
    // The file says what HAProxy runs: six servers, each with its task's address, health checked.
    expect(serverKeys(s)).to.have.length(6);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(6);
    // Its health check was enabled (`enable health`): HAProxy checks it and finds it up.
    const status = async (slot: string) =>
      (await cliCommand(adminSocket(s), 'show stat ::web-cluster 4 -1')).split('\n').find((l) => l.startsWith(`::web-cluster,${slot},`))?.split(',')[17] ?? '';
    await waitFor(async () => /^UP/.test(await status('slot-6')), "the added server's health check to pass", 10000);
    expect(w.status().runtime).to.include({ fallbacks: 0, serversAdded: 4, lastAppliedVia: 'runtime' });
  });

  it('keeps the added servers, in rotation at their addresses, across a reload and an HAProxy restart', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(5);
    let version = await api.setApps([web(tasks.slice(0, 2))]);
    const w = await worker(s);
    await applied(w, version, 'the first config');
    // One task replaced and two added at runtime: slots 3 and 4 added, and the replaced task's slot-1
    // given to the third new task (no slot was free before).
    version = await api.setApps([web([tasks[1], tasks[2], tasks[3], tasks[4]])]);
    await applied(w, version, 'the growth');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    expect(serverKeys(s)).to.deep.equal(['::web-cluster/slot-1', '::web-cluster/slot-2', '::web-cluster/slot-3', '::web-cluster/slot-4']);

    // A rule edit reloads: the added servers are now plain servers from the file.
    const master = await masterReloads(s);
    await api.setRule('/web', 'path_beg -i /web');
    await waitFor(() => w.reconciler.lastApply?.outcome === 'reloaded' && !w.reconciler.busy, 'the reload for the rule');
    expect(await masterReloads(s)).to.equal(master + 1);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(4);
    await everyTaskServes(s, tasks.slice(1));

    // A task killed frees its slot (drained, then maintenance); the next task takes it at runtime
    // instead of a fifth server line.
    version = await api.setApps([web(tasks.slice(2))]);
    await applied(w, version, 'a task killed');
    await waitFor(() => w.reconciler.status().runtime.draining === 0, 'the drain of the killed task', 10000);
    const more = await backends(1, 'late');
    version = await api.setApps([web([...tasks.slice(2), more[0]])]);
    await applied(w, version, 'a task into the free slot');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    expect(serverKeys(s)).to.have.length(4);

    // HAProxy restarted (its master killed): it comes up on the file with every server.
    const pidBefore = w.haproxy.state().masterPid!;
    process.kill(pidBefore, 'SIGTERM');
    await waitFor(() => {
      const st = w.haproxy.state();
      return st.running && st.masterPid !== pidBefore && st.workerPids.length > 0;
    }, 'HAProxy to be restarted by the worker', 20000);
    await waitFor(() => existsSync(adminSocket(s)), 'the admin socket');
    await waitFor(async () => (await serversState(s, '::web-cluster').catch(() => new Map())).size === 4, 'the restarted HAProxy to answer');
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(4);
    const gone = [tasks[0].hits, tasks[1].hits];
    await everyTaskServes(s, [...tasks.slice(2), more[0]], 80);
    expect([tasks[0].hits, tasks[1].hits], 'the replaced and the killed task get nothing').to.deep.equal(gone);
  });

  it('reloads to grow a sticky backend beyond its spare slots, saying why, and routes every task after', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(6);
    const sticky = { labels: { HAPROXY_0_STICKY: 'true' } };
    let version = await api.setApps([web(tasks.slice(0, 3), sticky)]);
    const w = await worker(s);
    await applied(w, version, 'the first config');
    // `cookie` cannot be given to an added server: a sticky backend keeps HAProxy.ServerSlotHeadroom.
    expect(serverKeys(s)).to.have.length(5);
    version = await api.setApps([web(tasks.slice(0, 5), sticky)]);
    await applied(w, version, 'the scale to 5');
    expect(w.reconciler.lastApply?.outcome).to.equal('runtime');
    version = await api.setApps([web(tasks.slice(0, 6), sticky)]);
    await applied(w, version, 'the scale to 6');
    expect(w.reconciler.lastApply?.outcome).to.equal('reloaded');
    expect(w.reconciler.lastApply?.reason).to.match(/option "cookie" cannot be given to a server added at runtime/);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(6);
  });

  it('falls back to a reload when HAProxy refuses an added server, and the config wins', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const tasks = await backends(3);
    let version = await api.setApps([web(tasks.slice(0, 2))]);
    const w = await worker(s);
    await applied(w, version, 'the first config');
    // A server of that name already in HAProxy (added behind the worker's back): `add server` fails.
    const answer = await cliCommand(adminSocket(s), `add server ::web-cluster/slot-3 127.0.0.1:${tasks[0].port}`);
    expect(answer).to.match(/New server registered/);
    version = await api.setApps([web(tasks.slice(0, 3))]);
    await applied(w, version, 'the scale to 3');
    expect(w.reconciler.lastApply?.outcome).to.equal('reloaded');
    expect(w.reconciler.lastApply?.reason).to.match(/runtime change failed/);
    expect(w.status().runtime.lastError?.reason).to.match(/same name/);
    expect(await expectStateMatchesFile(s, '::web-cluster')).to.equal(3);
    await everyTaskServes(s, tasks);
  });
});
