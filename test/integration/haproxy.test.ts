import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedHAProxy } from '../../common/adapters/haproxy/haproxy.js';
import { parseShowProc } from '../../common/core/reload-alerts.js';
import { CommandHAProxy } from '../../common/adapters/haproxy/process.js';
import { runCommand, shellQuote, validateConfig, validationCommandLine } from '../../common/adapters/haproxy/commands.js';
import { alertLines } from '../../common/core/reload-alerts.js';
import { DEFAULT_TEMPLATE_PATH, SCHEMA } from '../../common/config.js';
import { haproxyEnv } from '../../common/adapters/haproxy/haproxy-sandbox.js';
import { createRenderer } from '../../common/core/render.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import { app, NOW, onHost, task, withHealthCheck, withPortDefinitions, withTasks } from '../builders.js';
import { createLogger } from '../../common/log.js';
import { httpGet } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { sleep, waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';
import { testLogger } from '../worker-fixtures.js';

const log = testLogger('haproxy');

/** Running (a zombie waiting for a busy init to reap it counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function configText(port: number, body: string, dir: string): string {
  return [
    'global',
    `    stats socket ${join(dir, 'admin.sock')} mode 600 level admin expose-fd listeners`,
    '    hard-stop-after 5s',
    '    mworker-max-reloads 50',
    'defaults',
    '    mode http',
    '    timeout connect 2s',
    '    timeout client 5s',
    '    timeout server 5s',
    'frontend web',
    `    bind 127.0.0.1:${port}`,
    `    http-request return status 200 content-type text/plain string "${body}"`,
    '',
  ].join('\n');
}

describe('HAProxy adapter (real HAProxy 2.6)', function () {
  this.timeout(30000);
  const toClose: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of toClose.splice(0).reverse()) await c().catch(() => undefined);
  });

  it('kills a hung command and its children when the timeout passes', async () => {
    const dir = tempDir('bamboo-cmd-');
    const pidFile = join(dir, 'child.pid');
    const r = await runCommand(`sleep 60 & echo $! > ${shellQuote(pidFile)}; wait`, { timeoutMs: 300 });
    expect(r.ok).to.equal(false);
    expect(r.timedOut).to.equal(true);
    const child = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => !alive(child), 'the background sleep to be killed with its process group', 3000);
  });

  it('reports exit codes and output of commands', async () => {
    const ok = await runCommand('echo hello; echo oops >&2', { timeoutMs: 5000 });
    expect(ok.ok).to.equal(true);
    expect(ok.output).to.contain('hello').and.to.contain('oops');
    const bad = await runCommand('exit 3', { timeoutMs: 5000 });
    expect(bad).to.include({ ok: false, code: 3, timedOut: false });
  });

  it('validates a config with haproxy -c and points at the offending lines', async () => {
    const dir = tempDir('bamboo-val-');
    const path = join(dir, 'haproxy.cfg.tmp-1');
    const good = configText(await freePort(), 'ok', dir);
    writeFileSync(path, good);
    const ok = await validateConfig(path, { binary: 'haproxy', timeoutMs: 10000 });
    expect(ok.ok, ok.output).to.equal(true);
    const lines = good.split('\n');
    const badLine = lines.length; // appended after the trailing newline
    writeFileSync(path, good + '    acl broken hdr_nonsense(host) -i x\n');
    const bad = await validateConfig(path, { binary: 'haproxy', timeoutMs: 10000 });
    expect(bad.ok).to.equal(false);
    expect(bad.lines).to.deep.equal([badLine]);
  });

  it('runs a custom validation command with the shell-quoted file path', async () => {
    const dir = tempDir('bamboo val ');
    const path = join(dir, "it's haproxy.cfg");
    writeFileSync(path, 'x');
    expect(validationCommandLine('check {{.}} and {}', '/a b')).to.equal("check '/a b' and '/a b'");
    const ok = await validateConfig(path, { binary: 'haproxy', command: 'test -f {{.}} && test -f {}', timeoutMs: 5000 });
    expect(ok.ok, ok.output).to.equal(true);
    const hung = await validateConfig(path, { binary: 'haproxy', command: 'sleep 30', timeoutMs: 200 });
    expect(hung).to.include({ ok: false, timedOut: true });
  });

  it('maps alert locations to line numbers of the validated file only', () => {
    const out = [
      '[NOTICE]   (1) : haproxy version is 2.6.12',
      "[ALERT]    (1) : config : parsing [/tmp/x/haproxy.cfg.tmp-9:15] : error detected while parsing ACL 'a'",
      "[ALERT]    (1) : config : parsing [/tmp/x/haproxy.cfg.tmp-9:16] : no such ACL : 'a'.",
      '[ALERT]    (1) : config : parsing [/etc/other.cfg:3] : elsewhere',
      '[WARNING]  (1) : config : parsing [/tmp/x/haproxy.cfg.tmp-9:2] : only a warning',
      '[ALERT]    (1) : config : Fatal errors found in configuration.',
    ].join('\n');
    expect(alertLines(out, '/tmp/x/haproxy.cfg.tmp-9')).to.deep.equal([15, 16]);
  });

  it('parses the master CLI process list', () => {
    const text = [
      '#<PID>          <type>          <reloads>       <uptime>        <version>',
      '10006           master          2 [failed: 1]   0d00h10m10s     2.6.12-1+deb12u4',
      '# workers',
      '20748           worker          1               0d00h00m01s     2.6.12-1+deb12u4',
      '# old workers',
      '20700           worker          2               0d00h00m03s     2.6.12-1+deb12u4',
      '# programs',
      '',
    ].join('\n');
    expect(parseShowProc(text)).to.deep.equal({
      masterPid: 10006, reloads: 2, failed: 1, workers: [{ pid: 20748, reloads: 1 }], oldWorkers: [{ pid: 20700, reloads: 2 }],
    });
  });

  function managed(dir: string, extra: Partial<ConstructorParameters<typeof ManagedHAProxy>[0]> = {}): ManagedHAProxy {
    const h = new ManagedHAProxy({
      binary: 'haproxy',
      configPath: join(dir, 'haproxy.cfg'),
      pidFile: join(dir, 'haproxy.pid'),
      masterSocket: join(dir, 'master.sock'),
      timeoutMs: 10000,
      log,
      restartDelayMs: 100,
      stopGraceMs: 1000,
      ...extra,
    });
    toClose.push(() => h.close());
    return h;
  }

  it('reloads a managed HAProxy hitlessly and notices a configuration it rejected', async () => {
    const dir = tempDir('bamboo-managed-');
    const port = await freePort();
    const cfgPath = join(dir, 'haproxy.cfg');
    writeFileSync(cfgPath, configText(port, 'one', dir));
    const h = managed(dir);
    expect((await h.start()).ok).to.equal(true);
    expect((await httpGet(`http://127.0.0.1:${port}/`)).body).to.equal('one');
    const firstWorkers = h.state().workerPids;

    writeFileSync(cfgPath, configText(port, 'two', dir));
    const r = await h.reload();
    expect(r.ok, r.reason).to.equal(true);
    expect((await httpGet(`http://127.0.0.1:${port}/`)).body).to.equal('two');
    expect(h.state().workerPids).to.not.deep.equal(firstWorkers);

    writeFileSync(cfgPath, configText(port, 'three', dir) + 'frontend broken\n    acl x hdr_nonsense(host) -i y\n');
    const rejected = await h.reload();
    expect(rejected.ok).to.equal(false);
    expect((await httpGet(`http://127.0.0.1:${port}/`)).body).to.equal('two');

    writeFileSync(cfgPath, configText(port, 'four', dir));
    expect((await h.reload()).ok).to.equal(true);
    expect((await httpGet(`http://127.0.0.1:${port}/`)).body).to.equal('four');
    const master = h.state().masterPid!;
    await h.close();
    await waitFor(() => !alive(master), 'haproxy to stop', 5000);
  });

  it('restarts a managed HAProxy whose master died', async () => {
    const dir = tempDir('bamboo-managed-');
    const port = await freePort();
    writeFileSync(join(dir, 'haproxy.cfg'), configText(port, 'alive', dir));
    const h = managed(dir);
    expect((await h.start()).ok).to.equal(true);
    const first = h.state().masterPid!;
    process.kill(-first, 'SIGKILL');
    await waitFor(() => h.state().restarts === 1 && h.state().running, 'haproxy to be restarted', 15000, 50);
    expect(h.state().masterPid).to.not.equal(first);
    const res = await waitFor(() => httpGet(`http://127.0.0.1:${port}/`).catch(() => null), 'traffic after the restart', 5000);
    expect(res?.body).to.equal('alive');
  });

  it('replaces a master that served at once, but backs off when the new one dies right after its start', async () => {
    const dir = tempDir('bamboo-managed-');
    const port = await freePort();
    writeFileSync(join(dir, 'haproxy.cfg'), configText(port, 'alive', dir));
    const h = managed(dir, { restartDelayMs: 1500, crashLoopMs: 0 });
    expect((await h.start()).ok).to.equal(true);
    // crashLoopMs 0: the first master "served long enough", so its replacement starts without delay.
    process.kill(h.state().masterPid!, 'SIGKILL');
    await waitFor(() => h.state().restarts === 1 && h.state().running, 'the immediate restart', 5000, 10);
    expect((await waitFor(() => httpGet(`http://127.0.0.1:${port}/`).catch(() => null), 'traffic after the restart', 5000))?.body).to.equal('alive');
    await h.close();

    // crashLoopMs large: a master dying soon after its start is a crash loop, so the next start waits.
    const dir2 = tempDir('bamboo-managed-');
    writeFileSync(join(dir2, 'haproxy.cfg'), configText(port, 'again', dir2));
    const h2 = managed(dir2, { restartDelayMs: 1500, crashLoopMs: 60000 });
    expect((await h2.start()).ok).to.equal(true);
    process.kill(h2.state().masterPid!, 'SIGKILL');
    await waitFor(() => h2.state().restarts === 1 && h2.state().running, 'the first restart', 5000, 10);
    const second = h2.state().masterPid!;
    const killedAt = performance.now();
    process.kill(second, 'SIGKILL');
    await waitFor(() => !h2.state().running, 'the second master to be gone', 5000, 10);
    await waitFor(() => h2.state().restarts === 2 && h2.state().running, 'the backed-off restart', 10000, 10);
    // The restart itself says when it came: no sooner than restartDelayMs after the kill.
    expect(performance.now() - killedAt, 'no immediate restart inside a crash loop').to.be.at.least(1400);
    expect(h2.state().masterPid).to.not.equal(second);
  });

  /** A managed master started on `body`'s config and left running, as by a worker that exited with --keep-haproxy. */
  async function masterLeftRunning(body: string): Promise<{ dir: string; port: number; cfgPath: string; pid: number }> {
    const dir = tempDir('bamboo-managed-');
    const port = await freePort();
    const cfgPath = join(dir, 'haproxy.cfg');
    writeFileSync(cfgPath, configText(port, body, dir));
    const first = managed(dir);
    expect((await first.start()).ok).to.equal(true);
    const pid = first.state().masterPid!;
    await first.close({ keep: true });
    // Nobody owns this master now: a test that fails before stopping it must not leave it running.
    toClose.push(async () => {
      if (alive(pid)) process.kill(-pid, 'SIGKILL'); // its process group: the master and its workers
    });
    return { dir, port, cfgPath, pid };
  }

  it('adopts the master a previous worker left running instead of starting a second one', async () => {
    const { dir, port, cfgPath, pid } = await masterLeftRunning('kept');
    await sleep(100);
    expect(alive(pid)).to.equal(true);
    expect((await httpGet(`http://127.0.0.1:${port}/`)).body).to.equal('kept');

    const second = managed(dir);
    const started = await second.start();
    expect(started).to.include({ ok: true, adopted: true });
    expect(second.state().masterPid).to.equal(pid);
    writeFileSync(cfgPath, configText(port, 'adopted', dir));
    expect((await second.reload()).ok).to.equal(true);
    expect((await httpGet(`http://127.0.0.1:${port}/`)).body).to.equal('adopted');
    await second.close();
    await waitFor(() => !alive(pid), 'the adopted master to stop', 5000);
  });

  it('keeps an adopted master through its reloads, and adopts one that is reloading right now', async () => {
    // A master re-executes itself on each reload: for a few milliseconds its command line reads
    // empty and its pidfile is being rewritten. Neither may look like "the master is gone".
    const { dir, port, cfgPath, pid } = await masterLeftRunning('r0');

    // Polled every millisecond, the adopted master is watched through 30 reloads of its own.
    const watcher = managed(dir, { adoptedPollMs: 1 });
    expect(await watcher.start()).to.include({ ok: true, adopted: true });
    for (let i = 1; i <= 30; i++) {
      writeFileSync(cfgPath, configText(port, `r${i}`, dir));
      const r = await watcher.reload();
      expect(r.ok, `reload ${i}: ${r.reason}`).to.equal(true);
      expect(watcher.state(), `after reload ${i}`).to.include({ masterPid: pid, restarts: 0, running: true });
    }
    expect((await httpGet(`http://127.0.0.1:${port}/`)).body).to.equal('r30');
    await watcher.close({ keep: true });

    // A worker starting while the master reloads adopts it; it never starts a second one.
    for (let i = 0; i < 30; i++) {
      process.kill(pid, 'SIGUSR2');
      await sleep(i % 6);
      const next = managed(dir);
      const started = await next.start();
      expect(started, `start ${i}`).to.include({ ok: true, adopted: true });
      expect(next.state().masterPid).to.equal(pid);
      await next.close({ keep: true });
    }
    await waitFor(async () => (await httpGet(`http://127.0.0.1:${port}/`).catch(() => null))?.body === 'r30', 'the master serving after the reloads', 5000);
    const last = managed(dir);
    expect((await last.start()).adopted).to.equal(true);
    await last.close();
    await waitFor(() => !alive(pid), 'the master to stop', 5000);
  });
  // --- The process boundary: environment, validation limits, log volume ---------------------------

  /** Secrets set in this process's environment for one test (as the worker gets them from systemd or Docker). */
  function withSecrets(vars: Record<string, string>): void {
    const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    toClose.push(async () => {
      for (const [k, v] of Object.entries(before)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
  }

  const SECRETS = {
    BAMBOO_ZK_DIGEST: 'bamboo:zk-digest-secret-1',
    HAPROXY_STATS_PASSWORD: 'stats-secret-2',
    BAMBOO_AUTH_TOKEN: 'token-secret-3',
    MARATHON_PASSWORD: 'marathon-secret-4',
    SOME_OTHER_SECRET: 'other-secret-5',
  };

  /** The environment a process was started with, from /proc. */
  function environOf(pid: number): Record<string, string> {
    const text = readFileSync(`/proc/${pid}/environ`, 'utf8');
    return Object.fromEntries(text.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  }

  function expectNoSecret(env: Record<string, string> | string, what: string): void {
    const text = typeof env === 'string' ? env : Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n');
    for (const [name, value] of Object.entries(SECRETS)) {
      expect(text, `${what} must not carry ${name}`).to.not.contain(name).and.not.contain(value);
    }
  }

  it("gives commands and validations PATH and the passed-through variables only, never the worker's secrets", async () => {
    withSecrets({ ...SECRETS, BAMBOO_PASSED: 'visible' });
    const dir = tempDir('bamboo-env-');
    const dump = join(dir, 'env.txt');
    // The default: PATH only.
    const plain = await runCommand('env', { timeoutMs: 5000 });
    expect(plain.ok).to.equal(true);
    expectNoSecret(plain.output, 'a command');
    expect(plain.output).to.match(/^PATH=/m).and.not.contain('BAMBOO_PASSED');
    // A custom validation command, under limits, with one variable passed through.
    writeFileSync(join(dir, 'haproxy.cfg'), configText(await freePort(), 'x', dir));
    const env = haproxyEnv(['BAMBOO_PASSED', 'NOT_SET_ANYWHERE']);
    const r = await validateConfig(join(dir, 'haproxy.cfg'), {
      binary: 'haproxy',
      command: `env > ${shellQuote(dump)} && haproxy -c -f {}`,
      timeoutMs: 10000,
      env,
      limits: { cpuSeconds: 10, memoryMB: 2048 },
    });
    expect(r.ok, r.output).to.equal(true);
    const seen = readFileSync(dump, 'utf8');
    expectNoSecret(seen, 'a validation');
    expect(seen).to.contain('BAMBOO_PASSED=visible').and.not.contain('NOT_SET_ANYWHERE');
    // Bamboo's reload command (command mode) gets the same.
    const reloadDump = join(dir, 'reload-env.txt');
    const reload = await new CommandHAProxy(`env > ${shellQuote(reloadDump)}`, 5000, log, env).reload();
    expect(reload.ok, reload.reason).to.equal(true);
    expectNoSecret(readFileSync(reloadDump, 'utf8'), 'a reload command');
    expect(readFileSync(reloadDump, 'utf8')).to.contain('BAMBOO_PASSED=visible');
  });

  it("starts a managed HAProxy whose master and workers carry none of the worker's secrets", async () => {
    withSecrets(SECRETS);
    const dir = tempDir('bamboo-managed-');
    const port = await freePort();
    writeFileSync(join(dir, 'haproxy.cfg'), configText(port, 'env', dir));
    const h = managed(dir);
    expect((await h.start()).ok).to.equal(true);
    const { masterPid, workerPids } = h.state();
    expect(workerPids).to.have.length.above(0);
    for (const pid of [masterPid!, ...workerPids]) {
      const env = environOf(pid);
      expect(env.PATH, `PATH of ${pid}`).to.be.a('string');
      expectNoSecret(env, `haproxy process ${pid}`);
    }
    // The re-executed master (a reload) and its new worker too.
    writeFileSync(join(dir, 'haproxy.cfg'), configText(port, 'env2', dir));
    expect((await h.reload()).ok).to.equal(true);
    for (const pid of [h.state().masterPid!, ...h.state().workerPids]) expectNoSecret(environOf(pid), `haproxy process ${pid} after a reload`);
  });

  /** A config whose only frontend loads `file` as path patterns. */
  function patternFileConfig(port: number, file: string): string {
    return [
      'defaults',
      '    mode http',
      '    timeout connect 2s',
      '    timeout client 5s',
      '    timeout server 5s',
      'frontend web',
      `    bind 127.0.0.1:${port}`,
      `    http-request deny if { path_beg -f ${file} }`,
      '',
    ].join('\n');
  }

  it('stops a validation that reads -f /dev/zero at the CPU-time limit, long before the command timeout', async () => {
    const dir = tempDir('bamboo-val-');
    const path = join(dir, 'haproxy.cfg.tmp-1');
    writeFileSync(path, patternFileConfig(await freePort(), '/dev/zero'));
    const r = await validateConfig(path, { binary: 'haproxy', timeoutMs: 120000, limits: { cpuSeconds: 1, memoryMB: 2048 } });
    expect(r.ok).to.equal(false);
    expect(r.timedOut).to.equal(false);
    expect(r.limit).to.equal('cpu');
    expect(r.limitReason).to.contain('CPU-time limit (1 s');
    // Wall time depends on the machine's load; the timeout (120 s) is what it replaced.
    expect(r.ms).to.be.below(60000);
  });

  it('stops a validation that loads -f /dev/urandom at the memory limit, before it grows past it', async function () {
    this.timeout(90000);
    const dir = tempDir('bamboo-val-');
    const path = join(dir, 'haproxy.cfg.tmp-1');
    writeFileSync(path, patternFileConfig(await freePort(), '/dev/urandom'));
    const r = await validateConfig(path, { binary: 'haproxy', timeoutMs: 60000, limits: { cpuSeconds: 30, memoryMB: 160 } });
    expect(r.ok).to.equal(false);
    expect(r.limit, r.output).to.equal('memory');
    expect(r.limitReason).to.contain('memory limit (160 MiB');
    expect(r.usage!.peakKB, 'the peak address space of the validation').to.be.at.most(160 * 1024);
    // The alert still points at the line, so the worker can quarantine the app that wrote it.
    expect(r.lines).to.deep.equal([8]);
  });

  it('summarises the per-proxy stop lines of a reload in one info line, and relays none of them at any level', async () => {
    const dir = tempDir('bamboo-managed-');
    const port = await freePort();
    const lines: Array<{ level: number; msg: string; proxies?: number; line?: string }> = [];
    const capture = createLogger({
      level: 'debug',
      destination: { write: (s: string) => void lines.push(JSON.parse(s)) },
    });
    const backends = Array.from({ length: 300 }, (_, i) => `backend b${i}\n    server s 127.0.0.1:1 disabled`).join('\n');
    const cfg = (body: string) => configText(port, body, dir) + backends + '\n';
    writeFileSync(join(dir, 'haproxy.cfg'), cfg('one'));
    const h = managed(dir, { log: capture });
    expect((await h.start()).ok).to.equal(true);
    writeFileSync(join(dir, 'haproxy.cfg'), cfg('two'));
    expect((await h.reload()).ok).to.equal(true);
    const summary = await waitFor(() => lines.find((l) => l.msg === 'haproxy worker stopped its proxies'), 'the summary of the old worker', 15000);
    // 300 backends, the frontend and HAProxy's internal proxies.
    expect(summary!.proxies).to.be.at.least(301);
    expect(summary!.level).to.equal(30);
    expect(lines.filter((l) => / stopped /.test(l.line ?? '')), 'per-proxy lines at any level').to.have.length(0);
    expect(lines.filter((l) => l.msg === 'haproxy worker stopped its proxies')).to.have.length(1);
    const counts = h.state().output!;
    expect(counts.lines, 'lines HAProxy wrote').to.be.at.least(301);
    expect(counts.logged, 'lines logged at info or above for its output').to.be.within(1, 5);
  });

  it('relays a bounded number of warnings and alerts per burst and counts the rest in one line', async () => {
    const dir = tempDir('bamboo-managed-');
    const port = await freePort();
    const closed = await freePort();
    const lines: Array<{ level: number; msg: string; alerts?: number; warnings?: number; line?: string }> = [];
    const capture = createLogger({
      level: 'debug',
      destination: { write: (s: string) => void lines.push(JSON.parse(s)) },
    });
    // 100 backends whose only server fails its first check: a DOWN warning and a "no server
    // available" alert each, right after the start.
    const backends = Array.from({ length: 100 }, (_, i) => `backend b${i}\n    server s 127.0.0.1:${closed} check inter 200 fall 1`).join('\n');
    writeFileSync(join(dir, 'haproxy.cfg'), configText(port, 'one', dir) + backends + '\n');
    const h = managed(dir, { log: capture });
    expect((await h.start()).ok).to.equal(true);
    const summary = await waitFor(() => lines.find((l) => l.msg === 'haproxy output summarised'), 'the summary of the burst', 15000);
    expect(summary!.level, 'alerts left out make it a warning').to.equal(40);
    expect(summary!.alerts! + summary!.warnings!).to.be.at.least(150);
    expect(lines.filter((l) => l.msg === 'haproxy warning' || l.msg === 'haproxy alert' || l.msg === 'haproxy output').length).to.be.at.most(20);
    expect(h.state().output!.lines).to.be.at.least(200);
  });

  it('validates the default template at 10,000 apps within the default limits', async function () {
    this.timeout(120000);
    const apps = Array.from({ length: 10000 }, (_, i) =>
      app(
        `/group-${i % 50}/app-${i}`,
        withPortDefinitions(10000 + i),
        withHealthCheck('HTTP', '/health'),
        withTasks(...[1, 2, 3].map((t) => task(`app-${i}.${t}`, onHost(`10.${(i >> 8) & 255}.${i & 255}.${t}`, 31000 + t)))),
      ),
    );
    const services: Record<string, { Id: string; Acl: string; Config: Record<string, string> }> = {};
    for (let i = 0; i < 10000; i += 10) services[`/group-${i % 50}/app-${i}`] = { Id: `/group-${i % 50}/app-${i}`, Acl: `hdr(host) -i app-${i}.example.com`, Config: {} };
    const { data } = buildTemplateData({ apps, services, now: NOW });
    const dir = tempDir('bamboo-val-');
    const settings = { HttpBind: `127.0.0.1:${await freePort()}`, StatsBind: '', StatsUser: '', StatsPassword: '', AdminSocket: join(dir, 'admin.sock'), BindOptions: 'noreuseport', ServerStateFile: '' };
    const path = join(dir, 'haproxy.cfg.tmp-1');
    writeFileSync(path, createRenderer(readFileSync(DEFAULT_TEMPLATE_PATH, 'utf8')).render(data, settings).text);
    const def = (key: string) => SCHEMA.find((f) => f.key === key)!.default as number;
    const limits = { cpuSeconds: def('HAProxy.ValidationCpuSeconds'), memoryMB: def('HAProxy.ValidationMemoryMB') };
    const r = await validateConfig(path, { binary: 'haproxy', timeoutMs: 90000, limits });
    expect(r.ok, r.output.slice(-500)).to.equal(true);
    // Headroom: HAProxy sizes per-thread structures by the CPUs it sees (measured 500 MiB with 2, 800 with 64).
    expect(r.usage!.peakKB / 1024, 'peak MiB').to.be.below(limits.memoryMB / 2);
    expect(r.usage!.cpuSeconds, 'CPU seconds').to.be.below(limits.cpuSeconds / 2);
  });
});
