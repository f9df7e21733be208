/**
 * The boundary between the worker and the HAProxy it runs, attacked the way a rule writer or a bad
 * disk would: rules that read HAProxy's environment or load endless files (written straight to
 * ZooKeeper, past any API check), and a config directory that fills up or turns read-only.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runWorker, type WorkerHandle, type WorkerOptions } from '../../worker/main.js';
import type { ApplyOutcome } from '../../worker/outcome.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';
import { configRuleTemplate, FakeApi, marathonApp, testLogger, testSetup, workerConfig, type TestSetup } from '../worker-fixtures.js';

const log = testLogger('worker-process');

/** Secrets in the worker's environment, as systemd's EnvironmentFile or `docker run -e` put them there. */
const SECRETS: Record<string, string> = {
  BAMBOO_ZK_DIGEST: 'bamboo:zkpassSECRETbbb',
  HAPROXY_STATS_PASSWORD: 'stats-SECRET-pw',
  BAMBOO_AUTH_TOKEN: 'auth-SECRET-token',
  MARATHON_PASSWORD: 'marathon-SECRET-pw',
  BAMBOO_TEST_SECRET: 'any-other-SECRET',
};

function environText(pid: number): string {
  return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').join('\n');
}

function expectNoSecret(text: string, what: string): void {
  for (const [name, value] of Object.entries(SECRETS)) {
    expect(text, `${what} must not carry ${name}`).to.not.contain(name).and.not.contain(value);
  }
}

describe('worker: the HAProxy process boundary (real ZooKeeper, ZeroMQ, HAProxy)', function () {
  this.timeout(120000);
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

  async function worker(s: TestSetup, overrides: Record<string, string | number | boolean> = {}, opts: WorkerOptions = {}): Promise<WorkerHandle> {
    const w = await runWorker(workerConfig(s, overrides), log, { bind: '127.0.0.1:0', retryInitialMs: 200, ...opts });
    cleanups.push(() => w.close());
    return w;
  }

  function withEnv(vars: Record<string, string>): void {
    const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    cleanups.push(async () => {
      for (const [k, v] of Object.entries(before)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
  }

  function outcomes(w: WorkerHandle): ApplyOutcome[] {
    const seen: ApplyOutcome[] = [...w.reconciler.history];
    w.reconciler.on('outcome', (o: ApplyOutcome) => seen.push(o));
    return seen;
  }

  /** One request through HAProxy; null on a connection error. */
  function route(s: TestSetup, path = '/') {
    return httpGet(`http://127.0.0.1:${s.httpPort}${path}`, { timeoutMs: 2000 }).catch(() => null);
  }

  /** Resolves once the worker runs a config with this version of the app's rule. */
  async function ruleApplied(w: WorkerHandle, api: FakeApi, appId: string): Promise<void> {
    await waitFor(async () => {
      const stored = await api.rules.get(appId);
      return stored !== null && w.reconciler.running?.rulesApplied[appId] === stored.version && !w.reconciler.busy;
    }, `the rule of ${appId} to be applied`, 30000);
  }

  it("keeps the worker's secrets out of HAProxy and its validations, so env() in a rule finds nothing", async () => {
    withEnv({ ...SECRETS, BAMBOO_TEST_VISIBLE: 'yes' });
    const s = await testSetup();
    const api = await fakeApi(s);
    const leak = await backend('leak');
    // HAProxy.Binary: a wrapper that records the environment of every `haproxy -c` it runs.
    const dumps = join(s.dir, 'validation-env');
    mkdirSync(dumps);
    const wrapper = join(s.dir, 'haproxy-wrapper');
    writeFileSync(wrapper, `#!/bin/sh\ncase " $* " in *" -c "*) env > "${dumps}/$$" ;; esac\nexec haproxy "$@"\n`);
    chmodSync(wrapper, 0o755);
    await api.setApps([marathonApp('/leak', [{ port: leak.port }])]);
    // Written straight to ZooKeeper, as by a client holding the digest or past a missing API check.
    await api.setConfigRule('/leak', 'env(BAMBOO_TEST_SECRET) -m found');
    const w = await worker(s, { 'HAProxy.Binary': wrapper, 'HAProxy.PassEnv': 'BAMBOO_TEST_VISIBLE', 'HAProxy.TemplatePath': configRuleTemplate(s) });
    await ruleApplied(w, api, '/leak');

    // The oracle of review F5: the rule matches every request only if HAProxy can see the variable.
    expect((await route(s, '/probe'))?.status).to.equal(503);
    const { masterPid, workerPids } = w.haproxy.state();
    expect(workerPids).to.have.length.above(0);
    for (const pid of [masterPid!, ...workerPids]) expectNoSecret(environText(pid), `haproxy process ${pid}`);
    const runs = readdirSync(dumps);
    expect(runs, 'validations recorded').to.have.length.above(0);
    for (const run of runs) expectNoSecret(readFileSync(join(dumps, run), 'utf8'), 'a validation');

    // What HAProxy.PassEnv names does reach HAProxy: the same kind of rule matches then.
    await api.setConfigRule('/leak', 'env(BAMBOO_TEST_VISIBLE) -m found');
    await ruleApplied(w, api, '/leak');
    expect((await route(s, '/probe'))?.body).to.match(/^leak/);
  });

  it('cuts a validation spinning on -f /dev/zero at the CPU-time limit, long before the command timeout, and quarantines the rule', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const web = await backend('web');
    await api.setApps([marathonApp('/web', [{ port: web.port }]), marathonApp('/zero', [{ port: web.port }])]);
    const w = await worker(s, { 'HAProxy.ValidationCpuSeconds': 1, 'HAProxy.CommandTimeoutMs': 600000, 'HAProxy.TemplatePath': configRuleTemplate(s) });
    const seen = outcomes(w);
    await waitFor(async () => (await route(s, '/web'))?.body.startsWith('web'), 'traffic to /web');
    const good = readFileSync(s.outputPath, 'utf8');

    await api.setConfigRule('/zero', 'path_beg -f /dev/zero');
    // The limit names no line: the rule changed since the last good config is left out, the rest applies.
    const quarantined = () => w.reconciler.running?.quarantined.find((x) => x.appId === '/zero');
    await waitFor(() => quarantined() !== undefined, 'the /zero rule quarantined', 90000);
    expect(quarantined()!.error).to.contain('CPU-time limit').and.not.contain('timed out');
    // Without the rule the config is the one in force: the reconcile ends unchanged, the rule left out.
    const limited = seen.filter((o) => o.quarantined.some((q) => q.appId === '/zero'));
    expect(limited.map((o) => o.outcome), 'a reconcile without the rule').to.include.oneOf(['noop', 'reloaded']);
    expect(limited[0].stages.validate, 'validation time (ms), the limited run included').to.be.below(60000);
    expect(readFileSync(s.outputPath, 'utf8')).not.to.contain('/dev/zero');
    expect(good).not.to.contain('/dev/zero');
    expect((await route(s, '/web'))?.body).to.match(/^web/);
  });

  it('stops a validation loading -f /dev/urandom at the memory limit and quarantines the rule, while other apps update', async () => {
    const s = await testSetup();
    const api = await fakeApi(s);
    const web = await backend('web');
    const other = await backend('other');
    await api.setApps([marathonApp('/web', [{ port: web.port }]), marathonApp('/rand', [{ port: web.port }])]);
    const w = await worker(s, { 'HAProxy.ValidationMemoryMB': 192, 'HAProxy.ValidationCpuSeconds': 60, 'HAProxy.CommandTimeoutMs': 600000, 'HAProxy.TemplatePath': configRuleTemplate(s) });
    await waitFor(async () => (await route(s, '/web'))?.body.startsWith('web'), 'traffic to /web');

    await api.setConfigRule('/rand', 'path_beg -f /dev/urandom');
    // A new app needs a reload (not a runtime change), so it is applied by the config that holds the rule.
    await api.setApps([marathonApp('/web', [{ port: web.port }]), marathonApp('/rand', [{ port: web.port }]), marathonApp('/new', [{ port: other.port }])]);
    const quarantined = () => w.reconciler.running?.quarantined.find((x) => x.appId === '/rand');
    await waitFor(async () => quarantined() && (await route(s, '/new'))?.body.startsWith('other'), 'the rule quarantined and the new app routed', 90000);
    expect((await route(s, '/web'))?.body).to.match(/^web/);
    const q = quarantined();
    expect(q, 'the /rand rule quarantined').to.include({ level: 'rules' });
    expect(q!.error).to.contain('memory limit (192 MiB');
  });

  /** A tmpfs of `size` mounted on a fresh directory (unmounted after the test); null when mounting is not allowed here. */
  function tmpfs(size: string): string | null {
    const dir = tempDir('bamboo-tmpfs-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
    } catch {
      return null;
    }
    cleanups.unshift(async () => execFileSync('umount', ['-l', dir], { stdio: 'pipe' }));
    return dir;
  }

  function temps(dir: string): string[] {
    return readdirSync(dir).filter((n) => n.includes('.tmp-'));
  }

  async function statusCode(w: WorkerHandle): Promise<number | undefined> {
    return (await httpGet(`http://127.0.0.1:${w.port}/status`).catch(() => null))?.status;
  }

  it('reports a full or read-only config dir as write-failed, leaks no temp file, retries soon, and restarts HAProxy regardless', async function () {
    const out = tmpfs('1m');
    // Without root (CAP_SYS_ADMIN) no tmpfs: the same paths are not reachable with a plain directory,
    // since root writes through a chmod and a full disk cannot be faked per directory.
    if (!out) this.skip();
    const s = await testSetup();
    s.outputPath = join(out!, 'haproxy.cfg');
    const api = await fakeApi(s);
    const a = await backend('app-a');
    const b = await backend('app-b');
    await api.setApps([marathonApp('/a', [{ port: a.port }]), marathonApp('/b', [{ port: b.port }])]);
    await api.setRule('/a', 'path_beg /one');
    const runDir = join(s.dir, 'run');
    const w = await worker(s, { 'HAProxy.RuntimeDir': runDir }, { retryInitialMs: 200, retryMaxMs: 30000 });
    const seen = outcomes(w);
    await waitFor(async () => (await route(s, '/one'))?.body.startsWith('app-a'), 'traffic to /one');
    expect(existsSync(join(runDir, 'haproxy-master.sock'))).to.equal(true);
    expect(readdirSync(out!).filter((n) => n.endsWith('.sock') || n.endsWith('.pid')), 'sockets and pidfile in the config dir').to.deep.equal([]);
    await w.reconciler.whenIdle();
    expect(await statusCode(w)).to.equal(200);

    // Full disk: the candidate cannot be written.
    const filler = join(out!, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(2 * 1024 * 1024));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).to.equal('ENOSPC');
    }
    const before = seen.length;
    await api.setRule('/a', 'path_beg /two');
    const failed = await waitFor(() => seen.slice(before).find((o) => o.outcome === 'write-failed'), 'the write-failed outcome', 30000);
    expect(failed!.reason).to.contain('ENOSPC');
    expect(await statusCode(w), '/status while the disk is full').to.equal(503);
    // Checked between two attempts (a retry's candidate exists while it is being written).
    await w.reconciler.whenIdle();
    expect(temps(out!), 'temp files left').to.deep.equal([]);
    expect((await route(s, '/one'))?.body, 'the config in force keeps serving').to.match(/^app-a/);

    // Space freed: applied by the retry (no hint, no resync timer: Worker.ResyncIntervalMs is 0 here).
    unlinkSync(filler);
    const freedAt = Date.now();
    await waitFor(async () => (await route(s, '/two'))?.body.startsWith('app-a'), 'the change after space was freed', 20000);
    expect(Date.now() - freedAt, 'from free space to applied (ms)').to.be.below(15000);
    await waitFor(async () => (await statusCode(w)) === 200, '/status healthy again', 10000);
    await w.reconciler.whenIdle();
    expect(temps(out!)).to.deep.equal([]);

    // Read-only: a write fails the same way, and a master that dies now comes back, because its
    // sockets and pidfile are not in the config dir.
    await w.reconciler.whenIdle();
    execFileSync('mount', ['-o', 'remount,ro', out!], { stdio: 'pipe' });
    const master = w.haproxy.state().masterPid!;
    process.kill(-master, 'SIGKILL');
    await waitFor(() => w.haproxy.state().restarts >= 1 && w.haproxy.state().running, 'haproxy to be restarted on a read-only config dir', 20000);
    await waitFor(async () => (await route(s, '/two'))?.body.startsWith('app-a'), 'traffic after the restart', 10000);
    const mark = seen.length;
    await api.setRule('/a', 'path_beg /three');
    const ro = await waitFor(() => seen.slice(mark).find((o) => o.outcome === 'write-failed'), 'write-failed on the read-only dir', 30000);
    expect(ro!.reason).to.contain('EROFS');
    expect(await statusCode(w)).to.equal(503);

    execFileSync('mount', ['-o', 'remount,rw', out!], { stdio: 'pipe' });
    await waitFor(async () => (await route(s, '/three'))?.body.startsWith('app-a'), 'the change once the dir is writable', 20000);
    await w.reconciler.whenIdle();
    expect(temps(out!)).to.deep.equal([]);
  });
});
