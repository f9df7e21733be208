/**
 * Packaging and deployment: the Debian package (built with dpkg-deb and installed on this machine with
 * dpkg, then upgraded, removed and purged), the container image's install script (run here into a
 * temporary prefix, since no Docker engine runs on these machines), the example configuration, and
 * the Marathon app definitions (checked against real Marathon app definitions in the fixtures).
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync, appendFileSync, mkdirSync, copyFileSync, chmodSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT, SCHEMA } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { fixturesDir } from '../../harness/marathon-sim/fixtures.js';
import { startProcess } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';

const pexec = promisify(execFile);
const ROOT = PROJECT_ROOT;
const DEPLOY = join(ROOT, 'deploy');
const FIXTURES = fixturesDir();
/** The PATH systemd gives services: `bamboo` must be found there, not via node_modules/.bin. */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const UNITS = ['bamboo-api.service', 'bamboo-worker.service'];
const ENV_FILES = ['api.env', 'worker.env', 'worker-managed.env'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}): Promise<Run> {
  try {
    const r = await pexec(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? ROOT, timeout: opts.timeout ?? 120_000, maxBuffer: 32 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: (e.stderr ?? '') + (typeof e.code === 'number' ? '' : e.message) };
  }
}

async function ok(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Reads an EnvironmentFile the way systemd does for the simple forms we use: KEY=VALUE, KEY="VALUE". */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`not an assignment: ${line}`);
    env[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return env;
}

/** Variable names an env file mentions, including commented-out examples (`#VAR=...`). */
function mentionedVars(text: string): string[] {
  return [...text.matchAll(/^#?([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
}

/** Every environment variable Bamboo reads: the schema's, plus the CLI's and Docker's conventions. */
const KNOWN_ENV = new Set([...SCHEMA.flatMap((f) => (f.env ? [f.env] : [])), 'CONFIG_PATH', 'BIND', 'BAMBOO_DOCKER_AUTO_HOST']);

/**
 * Environment for build.sh and install.sh: package the existing dist/ when there is one (`npm test`
 * builds first), so these tests check packaging, not compiling; without dist/ the scripts build.
 */
function buildEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...(existsSync(join(ROOT, 'dist', 'cli', 'main.js')) ? { BAMBOO_SKIP_BUILD: '1' } : {}),
    ...extra,
  };
}

/** Skips the current test or hook, saying why on the test output. */
function skipBecause(ctx: Mocha.Context, reason: string): never {
  process.stdout.write(`      (skipped: ${reason})\n`);
  ctx.skip();
}

/** True if the path exists, as a file, a directory or a (possibly dangling) symlink. */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * One packaging run per machine at a time: the package, its user and dpkg's lock are machine-wide.
 * A directory is created atomically; a lock left by a process that died is taken over.
 */
const LOCK = join(tmpdir(), 'bamboo-packaging-test.lock');
function takeMachineLock(): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return true;
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
      } catch {
        /* being written, or half-removed */
      }
      let alive = false;
      try {
        if (holder > 0) process.kill(holder, 0);
        alive = holder > 0;
      } catch {
        alive = false;
      }
      if (alive) return false;
      if (holder === 0) {
        // No pid yet: a run is starting right now, unless the directory is old.
        try {
          if (Date.now() - statSync(LOCK).mtimeMs < 10 * 60_000) return false;
        } catch {
          continue;
        }
      }
      rmSync(LOCK, { recursive: true, force: true });
    }
  }
  return false;
}

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');
}

describe('packaging and deployment', function () {
  this.timeout(240_000);

  describe('Debian package', function () {
    const out = tempDir('bamboo-deb-');
    let deb1 = '';
    let deb2 = '';
    let version1 = '';
    let version2 = '';
    let userExisted = true;
    let groupExisted = true;
    let active = false;
    let locked = false;

    before(async function () {
      if (process.getuid?.() !== 0) skipBecause(this, 'installing a .deb with dpkg -i needs root (CI runs the tests as root)');
      for (const tool of ['dpkg-deb', 'dpkg', 'dpkg-statoverride', 'systemd-analyze', 'runuser']) {
        if ((await run('sh', ['-c', `command -v ${tool}`])).code !== 0) skipBecause(this, `${tool} is not installed: not a Debian machine`);
      }
      if (!takeMachineLock()) skipBecause(this, `another packaging test run on this machine holds ${LOCK}`);
      locked = true;
      const status = await run('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}', 'bamboo']);
      if (status.code === 0 && /^[a-z]i/.test(status.stdout)) {
        skipBecause(this, 'a bamboo package is already installed on this machine; the test would replace and purge it');
      }
      userExisted = (await run('getent', ['passwd', 'bamboo'])).code === 0;
      groupExisted = (await run('getent', ['group', 'bamboo'])).code === 0;

      // nodejs (>= 20) is a hard dependency when this machine's node is a Debian package; otherwise
      // the package must say Recommends for dpkg -i to succeed (docs/deployment.md).
      const node = await run('dpkg-query', ['-W', '-f', '${Version}', 'nodejs']);
      const nodeDep = node.code === 0 && (await run('dpkg', ['--compare-versions', node.stdout, 'ge', '20'])).code === 0 ? 'depends' : 'recommends';
      // Uncompressed instead of xz: the same package, built in a fraction of the time.
      const env = { BAMBOO_DEB_NODEJS: nodeDep, BAMBOO_DEB_COMPRESS: 'none' };
      const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
      version1 = `${version.replace(/-/g, '~')}-1`;
      version2 = `${version1}+test2`;
      const build = async (dir: string, v: string) =>
        (await ok('bash', [join(DEPLOY, 'deb', 'build.sh'), join(out, dir)], { env: buildEnv({ ...env, BAMBOO_DEB_VERSION: v }) })).trim().split('\n').pop()!;
      [deb1, deb2] = await Promise.all([build('v1', version1), build('v2', version2)]);
    });

    after(async function () {
      if (!locked) return;
      try {
        if (!active && !deb1) return;
        // Leave the machine as found: no package, no enable symlinks, no user we created.
        await run('dpkg', ['--purge', 'bamboo']);
        if (!userExisted) await run('userdel', ['bamboo']);
        if (!groupExisted && (await run('getent', ['group', 'bamboo'])).code === 0) await run('groupdel', ['bamboo']);
      } finally {
        rmSync(LOCK, { recursive: true, force: true });
      }
    });

    it('builds a .deb with dpkg-deb whose metadata, conffiles and contents are complete', async () => {
      expect(deb1).to.match(/\/bamboo_[^/]+\.deb$/);
      expect(existsSync(deb1)).to.equal(true);
      const arch = (await ok('dpkg', ['--print-architecture'])).trim();
      expect((await ok('dpkg-deb', ['-f', deb1, 'Package'])).trim()).to.equal('bamboo');
      expect((await ok('dpkg-deb', ['-f', deb1, 'Architecture'])).trim()).to.equal(arch);
      // Both roles need HAProxy: the worker runs it, the api checks every rule with haproxy -c.
      expect((await ok('dpkg-deb', ['-f', deb1, 'Depends'])).trim()).to.match(/(^|, )haproxy \(>= 2\.6\)(,|$)/);
      expect((await run('dpkg', ['--compare-versions', version2, 'gt', version1])).code).to.equal(0);
      const conffiles = (await ok('dpkg-deb', ['-I', deb1, 'conffiles'])).trim().split('\n').sort();
      expect(conffiles).to.deep.equal(['/etc/bamboo/api.env', '/etc/bamboo/haproxy.cfg.liquid', '/etc/bamboo/production.json', '/etc/bamboo/worker-managed.env', '/etc/bamboo/worker.env']);
      const listing = await ok('dpkg-deb', ['-c', deb1]);
      for (const path of ['./opt/bamboo/dist/cli/main.js', './opt/bamboo/bin/bamboo.js', './opt/bamboo/templates/haproxy.cfg.liquid', './opt/bamboo/package.json',
        './opt/bamboo/node_modules/zeromq/package.json', './opt/bamboo/api/ui/index.html', './opt/bamboo/share/systemd/bamboo-worker-managed.conf',
        './opt/bamboo/dist/harness/marathon-sim/index.js', './opt/bamboo/dist/harness/zookeeper.js',
        './lib/systemd/system/bamboo-api.service', './lib/systemd/system/bamboo-worker.service', './usr/bin/bamboo -> /opt/bamboo/bin/bamboo.js']) {
        expect(listing, path).to.include(path);
      }
      // Production dependencies only, and no tests.
      for (const devOnly of ['node_modules/typescript/', 'node_modules/mocha/', 'node_modules/tsx/', 'node_modules/chai/']) {
        expect(listing, devOnly).not.to.include(devOnly);
      }
      expect(listing).not.to.match(/\.\/opt\/bamboo\/dist\/\S*\.test\.js/);
      expect(listing).not.to.match(/\.\/opt\/bamboo\/dist\/test\//); // `bamboo demo` runs dist/harness, never test code
    });

    it('installs with dpkg -i (systemd not running here) and puts a working bamboo on PATH', async () => {
      active = true;
      await ok('dpkg', ['--force-unsafe-io', '-i', deb1], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      const which = (await ok('sh', ['-c', 'command -v bamboo'], { env: { ...process.env, PATH: SYSTEM_PATH } })).trim();
      expect(which).to.equal('/usr/bin/bamboo');
      expect(readlinkSync('/usr/bin/bamboo')).to.equal('/opt/bamboo/bin/bamboo.js');
      const help = await ok('bamboo', ['--help'], { env: { ...process.env, PATH: SYSTEM_PATH }, cwd: '/' });
      expect(help).to.match(/Usage: bamboo/);
      for (const cmd of ['api', 'worker', 'render', 'demo']) expect(help).to.include(cmd);
      const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
      expect((await ok('bamboo', ['--version'], { env: { ...process.env, PATH: SYSTEM_PATH }, cwd: '/' })).trim()).to.equal(version);
    });

    it('creates the bamboo system user and keeps /etc/bamboo readable by it alone', async () => {
      const passwd = (await ok('getent', ['passwd', 'bamboo'])).trim().split(':');
      expect(Number(passwd[2])).to.be.below(1000);
      expect(passwd[6]).to.equal('/usr/sbin/nologin');
      expect(mode('/etc/bamboo')).to.equal('0750');
      for (const f of ['production.json', ...ENV_FILES]) {
        const p = `/etc/bamboo/${f}`;
        expect(mode(p), p).to.equal('0640');
        expect(statSync(p).uid, p).to.equal(0);
        expect(statSync(p).gid, p).to.equal(Number(passwd[3]));
      }
      // The user the api runs as can read its configuration, and it is a valid configuration.
      const shown = await ok('runuser', ['-u', 'bamboo', '--', 'cat', '/etc/bamboo/production.json'], { cwd: '/' });
      expect(shown).to.include('"Marathon"');
    });

    it('renders a haproxy.cfg that haproxy -c accepts from the installed template, config and worker.env', async function () {
      if ((await run('sh', ['-c', 'command -v haproxy'])).code !== 0) skipBecause(this, 'haproxy is not installed');
      const apps = join(FIXTURES, 'apps', 'v2-apps-list__real-marathon-0.x_f5_two-apps_http-and-tcp-healthchecks.json');
      const env = { PATH: SYSTEM_PATH, ...parseEnvFile(readFileSync('/etc/bamboo/worker.env', 'utf8')) };
      const cfgText = await ok('runuser', ['-u', 'bamboo', '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        'bamboo', 'render', '--config', '/etc/bamboo/production.json', '--apps', apps], { env: { PATH: SYSTEM_PATH }, cwd: '/' });
      expect(cfgText).to.match(/^frontend /m);
      const cfg = join(tempDir(), 'haproxy.cfg');
      writeFileSync(cfg, cfgText);
      await ok('haproxy', ['-c', '-q', '-f', cfg]);
    });

    it('ships systemd units that systemd-analyze verify accepts, also with the managed-mode drop-in', async () => {
      // Only lines about our units count: verify also loads the units ours point at.
      const ours = (r: Run) => (r.stdout + r.stderr).split('\n').filter((l) => /bamboo/i.test(l));
      const r = await run('systemd-analyze', ['verify', ...UNITS.map((u) => `/lib/systemd/system/${u}`)], { cwd: '/' });
      expect(ours(r), r.stdout + r.stderr).to.deep.equal([]);
      expect(r.code, r.stdout + r.stderr).to.equal(0);

      const dir = tempDir('bamboo-units-');
      mkdirSync(join(dir, 'bamboo-worker.service.d'));
      copyFileSync('/lib/systemd/system/bamboo-worker.service', join(dir, 'bamboo-worker.service'));
      copyFileSync('/opt/bamboo/share/systemd/bamboo-worker-managed.conf', join(dir, 'bamboo-worker.service.d', 'managed.conf'));
      const env = { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` };
      const m = await run('systemd-analyze', ['verify', join(dir, 'bamboo-worker.service')], { env, cwd: '/' });
      expect(ours(m), m.stdout + m.stderr).to.deep.equal([]);
      expect(m.code, m.stdout + m.stderr).to.equal(0);
      // The check has teeth: a misspelt key in the drop-in is reported.
      appendFileSync(join(dir, 'bamboo-worker.service.d', 'managed.conf'), 'Usre=bamboo\n');
      const bad = await run('systemd-analyze', ['verify', join(dir, 'bamboo-worker.service')], { env, cwd: '/' });
      expect(ours(bad).join('\n')).to.match(/Unknown key 'Usre'/);

      const api = readFileSync('/lib/systemd/system/bamboo-api.service', 'utf8');
      const worker = readFileSync('/lib/systemd/system/bamboo-worker.service', 'utf8');
      expect(api).to.match(/^User=bamboo$/m).and.match(/^ExecStart=\/usr\/bin\/bamboo api$/m).and.match(/^EnvironmentFile=-\/etc\/bamboo\/api\.env$/m);
      expect(worker).to.match(/^ExecStart=\/usr\/bin\/bamboo worker$/m).and.match(/^EnvironmentFile=-\/etc\/bamboo\/worker\.env$/m);
      for (const unit of [api, worker]) {
        expect(unit).to.match(/^Restart=on-failure$/m).and.match(/^NoNewPrivileges=yes$/m).and.match(/^ProtectSystem=strict$/m);
        expect(unit).not.to.match(/^Standard(Output|Error)=(file|append)/m); // journald
      }
      const managed = readFileSync('/opt/bamboo/share/systemd/bamboo-worker-managed.conf', 'utf8');
      expect(managed).to.match(/^User=bamboo$/m).and.match(/^Conflicts=haproxy\.service$/m).and.match(/^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    });

    it('neither enables nor starts the services on a first install', () => {
      for (const u of UNITS) {
        expect(existsSync(`/etc/systemd/system/multi-user.target.wants/${u}`), u).to.equal(false);
        expect(present(`/etc/systemd/system/${u}`), u).to.equal(false);
      }
    });

    it('keeps an edited conffile and the permissions across an upgrade to a newer version', async () => {
      appendFileSync('/etc/bamboo/api.env', 'BAMBOO_LOG_LEVEL=debug\n');
      await ok('systemctl', ['enable', 'bamboo-api.service'], { cwd: '/' }); // works offline, as an admin would
      await ok('dpkg', ['--force-unsafe-io', '-i', deb2], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      expect((await ok('dpkg-query', ['-W', '-f', '${Version}', 'bamboo'])).trim()).to.equal(version2);
      expect(readFileSync('/etc/bamboo/api.env', 'utf8')).to.match(/^BAMBOO_LOG_LEVEL=debug$/m);
      expect(readdirSync('/etc/bamboo').filter((f) => /\.dpkg-/.test(f))).to.deep.equal([]);
      expect(mode('/etc/bamboo/api.env')).to.equal('0640');
      expect(mode('/etc/bamboo')).to.equal('0750');
      expect(existsSync('/etc/systemd/system/multi-user.target.wants/bamboo-api.service')).to.equal(true);
    });

    it('leaves the conffiles on dpkg -r and nothing under /opt/bamboo or /etc/bamboo on dpkg -P', async () => {
      await ok('dpkg', ['-r', 'bamboo']);
      expect((await ok('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}', 'bamboo'])).trim()).to.equal('rc');
      expect(readFileSync('/etc/bamboo/api.env', 'utf8')).to.match(/^BAMBOO_LOG_LEVEL=debug$/m);
      for (const f of ['production.json', 'haproxy.cfg.liquid', ...ENV_FILES]) expect(existsSync(`/etc/bamboo/${f}`), f).to.equal(true);
      expect(existsSync('/opt/bamboo')).to.equal(false);
      expect(existsSync('/usr/bin/bamboo')).to.equal(false);
      for (const u of UNITS) expect(existsSync(`/lib/systemd/system/${u}`), u).to.equal(false);

      await ok('dpkg', ['--purge', 'bamboo']);
      expect((await run('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}', 'bamboo'])).stdout.trim()).to.be.oneOf(['', 'un']);
      expect(existsSync('/etc/bamboo')).to.equal(false);
      expect(existsSync('/opt/bamboo')).to.equal(false);
      expect(existsSync('/var/lib/bamboo')).to.equal(false);
      // The administrator's enable symlink, the masks of a removed package and dpkg's records go too.
      for (const u of UNITS) {
        expect(existsSync(`/etc/systemd/system/multi-user.target.wants/${u}`), u).to.equal(false);
        expect(present(`/etc/systemd/system/${u}`), `mask of ${u}`).to.equal(false);
      }
      expect(await ok('dpkg-statoverride', ['--list'])).not.to.match(/\/etc\/bamboo/);
      active = false;
    });
  });

  describe('container image install script', function () {
    let prefix = '';
    let bamboo = '';

    before(async function () {
      prefix = join(tempDir('bamboo-image-'), 'opt', 'bamboo');
      bamboo = (await ok('bash', [join(DEPLOY, 'docker', 'install.sh'), prefix], { env: buildEnv() })).trim().split('\n').pop()!;
    });

    it('installs into a prefix and produces a working bamboo --help', async () => {
      expect(bamboo).to.equal(join(prefix, 'bin', 'bamboo'));
      const help = await ok(bamboo, ['--help'], { cwd: '/' });
      expect(help).to.match(/Usage: bamboo/);
      for (const cmd of ['api', 'worker', 'render']) expect(help).to.include(cmd);
      expect(await ok(bamboo, ['worker', '--help'], { cwd: '/' })).to.include('--bind');
    });

    it('ships production dependencies only, enough to load every process', async () => {
      const app = join(prefix, 'lib', 'bamboo');
      for (const dev of ['typescript', 'mocha', 'tsx', 'chai', 'madge']) expect(existsSync(join(app, 'node_modules', dev)), dev).to.equal(false);
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
      for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(app, 'node_modules', dep, 'package.json')), dep).to.equal(true);
      // `bamboo demo` runs the simulator and the launchers from dist/harness; no test code is shipped.
      expect(existsSync(join(app, 'dist', 'harness', 'marathon-sim', 'index.js'))).to.equal(true);
      expect(existsSync(join(app, 'dist', 'test')), 'dist/test shipped').to.equal(false);
      const entries = ['dist/api/main.js', 'dist/worker/main.js', 'dist/common/core/render.js'].filter((e) => existsSync(join(app, e)));
      expect(entries).to.include('dist/api/main.js');
      const script = entries.map((e) => `await import(${JSON.stringify(join(app, e))});`).join('');
      await ok(process.execPath, ['--input-type=module', '-e', script], { cwd: app });
    });

    it('runs the whole stack (bamboo demo) from the installed tree and routes a request through HAProxy', async function () {
      if (!existsSync('/usr/share/java/zookeeper.jar') || (await run('sh', ['-c', 'command -v java && command -v haproxy'])).code !== 0) {
        skipBecause(this, 'the demo needs ZooKeeper (java) and HAProxy, which are not installed');
      }
      // Production dependencies only and no TypeScript sources: the demo's api copies and worker run
      // from dist/ exactly as a packaged install would.
      const demo = startProcess(bamboo, ['demo', '--exit-after', '60'], { cwd: '/', env: { ...process.env, PATH: SYSTEM_PATH } });
      try {
        const started = Date.now();
        let url = '';
        while (!url && Date.now() - started < 60_000 && demo.child.exitCode === null) {
          url = /^HAProxy: (http:\/\/\S+?)\/?$/m.exec(demo.output())?.[1] ?? '';
          if (!url) await new Promise((r) => setTimeout(r, 200));
        }
        expect(url, demo.output()).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
        let status = 0;
        while (status !== 200 && Date.now() - started < 60_000) {
          status = await fetch(`${url}/demo/web/`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 0);
          if (status !== 200) await new Promise((r) => setTimeout(r, 250));
        }
        expect(status, demo.output()).to.equal(200);
      } finally {
        await demo.stop('SIGINT', 15_000);
      }
    });

    it('has the entrypoint run the image role and advertise the Mesos host to workers', async () => {
      const entry = join(prefix, 'lib', 'bamboo', 'share', 'docker', 'entrypoint.sh');
      // A stand-in bamboo that prints what it was given.
      const stub = tempDir('bamboo-stub-');
      writeFileSync(join(stub, 'bamboo'), '#!/bin/sh\necho "args=$*"\necho "advertise=${BAMBOO_ZMQ_ADVERTISE_HOST:-}"\n');
      chmodSync(join(stub, 'bamboo'), 0o755);
      const base = { PATH: `${stub}:${SYSTEM_PATH}` };
      expect(await ok(entry, [], { env: { ...base, BAMBOO_ROLE: 'worker' } })).to.include('args=worker\n');
      expect(await ok(entry, ['--log-level', 'debug'], { env: { ...base, BAMBOO_ROLE: 'api' } })).to.include('args=api --log-level debug\n');
      expect(await ok(entry, ['render', '--apps', 'x.json'], { env: { ...base, BAMBOO_ROLE: 'worker' } })).to.include('args=render --apps x.json\n');
      expect(await ok(entry, [], { env: { ...base, HOST: 'agent7.example.com', MESOS_TASK_ID: 'bamboo_api.1' } })).to.include('advertise=agent7.example.com\n');
      expect(await ok(entry, [], { env: { ...base, HOST: 'agent7.example.com', BAMBOO_DOCKER_AUTO_HOST: 'true' } })).to.include('advertise=agent7.example.com\n');
      expect(await ok(entry, [], { env: { ...base, HOST: 'agent7.example.com', MESOS_TASK_ID: 'x', BAMBOO_ZMQ_ADVERTISE_HOST: 'api1' } })).to.include('advertise=api1\n');
      expect(await ok(entry, [], { env: { ...base, HOST: 'agent7.example.com' } })).to.include('advertise=\n');
      // And with the real bamboo from the prefix.
      const real = { env: { PATH: `${join(prefix, 'bin')}:${SYSTEM_PATH}`, BAMBOO_ROLE: 'worker' }, cwd: '/' };
      expect(await ok(entry, ['worker', '--help'], real)).to.match(/Usage: bamboo worker/);
      expect(await ok(entry, ['--help'], real)).to.match(/Usage: bamboo \[options\] \[command\]/);
    });

    it('has a HEALTHCHECK that passes on a 2xx /healthz (liveness) and fails otherwise', async () => {
      const check = join(prefix, 'lib', 'bamboo', 'share', 'docker', 'healthcheck.mjs');
      let status = 200;
      let paths: string[] = [];
      const server: Server = createServer((req, res) => {
        paths.push(req.url ?? '');
        res.statusCode = status;
        res.end('{}');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      try {
        const env = (extra: NodeJS.ProcessEnv) => ({ PATH: SYSTEM_PATH, ...extra });
        expect((await run(process.execPath, [check], { env: env({ BIND: `127.0.0.1:${port}` }) })).code).to.equal(0);
        expect((await run(process.execPath, [check], { env: env({ BIND: `0.0.0.0:${port}`, BAMBOO_ROLE: 'worker' }) })).code).to.equal(0);
        expect((await run(process.execPath, [check], { env: env({ BIND: `:${port}` }) })).code).to.equal(0);
        expect(paths).to.deep.equal(['/healthz', '/healthz', '/healthz']);
        status = 503;
        expect((await run(process.execPath, [check], { env: env({ BIND: `:${port}` }) })).code).to.equal(1);
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
      expect((await run(process.execPath, [check], { env: { PATH: SYSTEM_PATH, BIND: `127.0.0.1:${port}` } })).code).to.equal(1);
    });

    it('is what the Dockerfile runs, with a role argument, a non-root user and a HEALTHCHECK on /healthz', () => {
      const df = readFileSync(join(DEPLOY, 'docker', 'Dockerfile'), 'utf8');
      expect(df).to.match(/^ARG ROLE=api$/m);
      expect(df).to.match(/^RUN .*bash deploy\/docker\/install\.sh \/opt\/bamboo$/m);
      // Both images include HAProxy: the worker runs it, the api checks every rule with haproxy -c.
      expect(df.match(/apt-get install -y --no-install-recommends tini haproxy\b/g)).to.have.length(2);
      const user = /^USER (\S+)$/m.exec(df)?.[1] ?? 'root';
      expect(user.split(':')[0]).not.to.be.oneOf(['root', '0']);
      // Every path the final image runs exists in what install.sh produced.
      const hc = /^HEALTHCHECK .*\n\s*CMD \["node", "([^"]+)"\]/m.exec(df);
      expect(hc, 'HEALTHCHECK').to.not.equal(null);
      const ep = /^ENTRYPOINT \[(.*)\]$/m.exec(df);
      expect(ep, 'ENTRYPOINT').to.not.equal(null);
      const runs = [hc![1], ...(JSON.parse(`[${ep![1]}]`) as string[]).filter((p) => p.startsWith('/opt/bamboo/'))];
      expect(runs.length).to.be.greaterThan(1);
      for (const p of runs) expect(existsSync(p.replace(/^\/opt\/bamboo/, prefix)), p).to.equal(true);
      expect(existsSync(join(prefix, 'bin', 'bamboo'))).to.equal(true);
      expect(df).to.match(/^ENV PATH=\/opt\/bamboo\/bin:/m);
      // COPY sources exist in the build context.
      for (const m of df.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
        for (const src of m[1].split(/\s+/)) if (src !== '.') expect(existsSync(join(ROOT, src)), src).to.equal(true);
      }
    });
  });

  describe('example configuration', () => {
    const production = join(DEPLOY, 'production.example.json');

    it('names only variables Bamboo reads, in the env files and the Marathon definitions', () => {
      for (const f of ENV_FILES) {
        const vars = mentionedVars(readFileSync(join(DEPLOY, 'etc', f), 'utf8'));
        expect(vars.length, f).to.be.greaterThan(3);
        for (const v of vars) expect(KNOWN_ENV.has(v), `${f}: ${v}`).to.equal(true);
      }
      for (const f of ['bamboo-api.json', 'bamboo-worker.json']) {
        const app = JSON.parse(readFileSync(join(DEPLOY, 'marathon', f), 'utf8')) as { env: Record<string, string> };
        for (const v of Object.keys(app.env)) expect(KNOWN_ENV.has(v), `${f}: ${v}`).to.equal(true);
      }
    });

    it('loads production.example.json with each env file applied', () => {
      for (const f of ENV_FILES) {
        const env = parseEnvFile(readFileSync(join(DEPLOY, 'etc', f), 'utf8'));
        const cfg = loadConfig({ file: production, env });
        if (f === 'worker.env') {
          expect(cfg.HAProxy.ReloadCommand).to.equal('systemctl reload haproxy');
          expect(cfg.HAProxy.OutputPath).to.equal('/etc/haproxy/haproxy.cfg');
          expect(cfg.HAProxy.ReloadValidationCommand).to.equal('haproxy -c -f {{.}}');
        }
        if (f === 'worker-managed.env') {
          expect(cfg.HAProxy.ReloadCommand).to.equal(''); // managed mode, whatever the JSON file says
          expect(cfg.HAProxy.OutputPath).to.equal('/var/lib/bamboo-worker/haproxy.cfg');
          // Sockets and pidfile on systemd's tmpfs (RuntimeDirectory=bamboo-worker), not next to the config.
          expect(cfg.HAProxy.RuntimeDir).to.equal('/run/bamboo-worker');
        }
      }
    });
  });

  describe('Marathon app definitions', () => {
    const load = (f: string) => JSON.parse(readFileSync(join(DEPLOY, 'marathon', f), 'utf8')) as Record<string, any>;
    const api = load('bamboo-api.json');
    const worker = load('bamboo-worker.json');
    const dir = join(FIXTURES, 'apps', 'definitions');
    const fixtures = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, any>);
    const typeOf = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);
    /** Every key the fixtures use at one place, with the JSON types seen there. */
    const shape = (pick: (app: Record<string, any>) => unknown[]) => {
      const keys = new Map<string, Set<string>>();
      for (const app of fixtures) {
        for (const obj of pick(app)) {
          if (!obj || typeof obj !== 'object') continue;
          for (const [k, v] of Object.entries(obj)) keys.set(k, (keys.get(k) ?? new Set()).add(typeOf(v)));
        }
      }
      return keys;
    };
    const conforms = (what: string, objs: unknown[], keys: Map<string, Set<string>>) => {
      expect(keys.size, `fixtures have ${what}`).to.be.greaterThan(0);
      for (const obj of objs) {
        for (const [k, v] of Object.entries(obj as object)) {
          expect(keys.has(k), `${what}.${k} is a field real Marathon definitions use`).to.equal(true);
          expect([...keys.get(k)!], `${what}.${k} type`).to.include(typeOf(v));
        }
      }
    };

    it('parse and carry the fields Marathon requires', () => {
      expect(fixtures.length).to.be.greaterThan(2);
      for (const app of [api, worker]) {
        expect(app.id).to.be.a('string').and.match(/^\/[a-z0-9-]+(\/[a-z0-9-]+)*$/);
        expect(app.cmd !== undefined || app.container !== undefined, `${app.id}: cmd or container`).to.equal(true);
        expect(app.instances).to.be.a('number').and.to.be.at.least(1);
        expect(app.cpus).to.be.a('number').and.to.be.above(0);
        expect(app.mem).to.be.a('number').and.to.be.above(0);
        for (const v of Object.values(app.env as Record<string, unknown>)) expect(v).to.be.a('string'); // Marathon env values are strings
        expect(app.container.docker.image).to.be.a('string').and.not.equal('');
      }
    });

    it('have the shapes of real Marathon app definitions', () => {
      const both = [api, worker];
      conforms('app', both, shape((a) => [a]));
      conforms('container', both.map((a) => a.container), shape((a) => [a.container]));
      conforms('container.docker', both.map((a) => a.container.docker), shape((a) => [a.container?.docker]));
      conforms('networks[]', both.flatMap((a) => a.networks), shape((a) => a.networks ?? []));
      conforms('portDefinitions[]', both.flatMap((a) => a.portDefinitions), shape((a) => a.portDefinitions ?? []));
      conforms('healthChecks[]', both.flatMap((a) => a.healthChecks), shape((a) => a.healthChecks ?? []));
      conforms('upgradeStrategy', both.map((a) => a.upgradeStrategy), shape((a) => [a.upgradeStrategy]));
      for (const app of both) {
        for (const c of app.constraints as unknown[]) {
          expect(c).to.be.an('array').with.length.within(2, 3);
          for (const part of c as unknown[]) expect(part).to.be.a('string');
        }
        for (const hc of app.healthChecks as Array<Record<string, any>>) {
          expect(hc.protocol).to.be.oneOf(['HTTP', 'HTTPS', 'MESOS_HTTP', 'MESOS_HTTPS', 'TCP', 'MESOS_TCP', 'COMMAND']);
          expect(hc.portIndex).to.be.below(app.portDefinitions.length);
        }
      }
    });

    /** Marathon restarts on healthChecks and routes or continues a deployment on readinessChecks. */
    function checksOf(app: Record<string, any>): void {
      const hc = app.healthChecks as Array<Record<string, any>>;
      // Liveness only: a ZooKeeper outage (503 on /status and /readyz) must not get every copy killed.
      expect(hc.map((h) => h.path)).to.deep.equal(['/healthz']);
      const rc = app.readinessChecks as Array<Record<string, any>>;
      expect(rc.map((r) => r.path)).to.deep.equal(['/readyz']);
      const byName = (app.portDefinitions as Array<{ name: string; port: number }>).find((d) => d.name === rc[0].portName);
      expect(byName, `readinessChecks portName ${rc[0].portName}`).to.not.equal(undefined);
      expect(byName!.port).to.equal(app.portDefinitions[hc[0].portIndex].port); // both probe the port BIND serves
      expect(rc[0].protocol).to.be.oneOf(['HTTP', 'HTTPS']);
      expect(rc[0].httpStatusCodesForReady).to.deep.equal([200]);
      expect(rc[0].timeoutSeconds).to.be.below(rc[0].intervalSeconds);
    }

    it('run several api copies behind one name, restarted on /healthz and ready on /readyz', () => {
      expect(api.instances).to.be.at.least(2);
      const hc = api.healthChecks as Array<Record<string, any>>;
      checksOf(api);
      const http = api.portDefinitions[hc[0].portIndex];
      expect(api.env.BIND).to.equal(`:${http.port}`); // the health-checked port is the one the api serves
      expect(api.portDefinitions.map((p: { port: number }) => p.port)).to.include(Number(/:(\d+)$/.exec(api.env.BAMBOO_ZMQ_BIND)![1]));
      expect(api.env.BAMBOO_ENDPOINT).to.match(/^http:\/\/[^/]+:\d+$/);
      expect(api.env.BAMBOO_ZK_HOST).to.be.a('string');
      expect(api.env.MARATHON_ENDPOINT).to.be.a('string');
      const cfg = loadConfig({ env: api.env });
      expect(cfg.Marathon.UseEventStream).to.equal(true);
    });

    it('run one worker on every agent with host networking', () => {
      expect(worker.constraints).to.deep.include(['hostname', 'UNIQUE']);
      expect(worker.networks).to.deep.equal([{ mode: 'host' }]);
      const hc = worker.healthChecks as Array<Record<string, any>>;
      checksOf(worker);
      expect(worker.env.BIND).to.equal(`:${worker.portDefinitions[hc[0].portIndex].port}`);
      const cfg = loadConfig({ env: worker.env });
      expect(cfg.HAProxy.ReloadCommand).to.equal(''); // managed mode: the image runs HAProxy itself
      expect(cfg.HAProxy.HttpBind).to.equal('*:80');
      expect(worker.portDefinitions.map((p: { port: number }) => p.port)).to.include(80);
    });
  });
});
