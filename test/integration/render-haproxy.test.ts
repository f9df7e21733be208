/**
 * The rendered configs through the real HAProxy: the golden files and two rendering rules pass
 * `haproxy -c`, an alert maps back to the app that caused it, and the default template routes real
 * requests. The rendering itself is checked without HAProxy in test/unit/render.test.ts.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ServiceRecord, TemplateData } from '../../common/core/model.js';
import { appsAtLines, createRenderer, renderOnce } from '../../common/core/render.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import {
  DEFAULT_TEMPLATE_PATH,
  NOW,
  REPO_ROOT,
  app,
  defaultTemplate,
  onHost,
  service,
  services,
  settings,
  task,
  withTasks,
} from '../builders.js';
import { haproxyCheck } from '../support/haproxy.js';

const GOLDEN_DIR = resolve(REPO_ROOT, 'test/golden');

function data(apps: unknown[], svc: Record<string, ServiceRecord> = {}): TemplateData {
  return buildTemplateData({ apps, services: svc, now: NOW }).data;
}

/** Line numbers HAProxy names in `parsing [file:LINE]` messages. */
function alertLines(output: string): number[] {
  return [...output.matchAll(/\[[^\]\s]+:(\d+)\]/g)].map((m) => Number(m[1]));
}

describe('default template golden files', function () {
  this.timeout(30_000);

  it('every golden file passes haproxy -c without alerts or warnings', async () => {
    // https-sni.cfg names a crt-list that exists only with certificates: tls.test.ts checks it with real ones.
    const files = readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.cfg') && f !== 'https-sni.cfg').sort().map((f) => join(GOLDEN_DIR, f));
    expect(files.length, 'golden files').to.be.greaterThan(0);
    const results = await Promise.all(files.map((f) => haproxyCheck(f)));
    results.forEach((r, i) => {
      expect(r.ok, `${files[i]}:\n${r.output}`).to.equal(true);
      expect(r.output, files[i]).not.to.match(/\[(WARNING|ALERT)\]/);
    });
  });
});

describe('the Prometheus exporter on the stats listener', function () {
  this.timeout(20000);
  it('passes haproxy -c with the exporter behind the stats credentials (a password with a space and a quote)', async () => {
    const on = renderOnce(defaultTemplate(), data([]), settings({ StatsUser: 'ops', StatsPassword: "p@ss w'rd" })).text;
    expect(on).to.contain('use-service prometheus-exporter');
    const dir = mkdtempSync(join(tmpdir(), 'bamboo-promex-'));
    try {
      writeFileSync(join(dir, 'haproxy.cfg'), on);
      const r = await haproxyCheck(join(dir, 'haproxy.cfg'));
      expect(r.ok, r.output).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createRenderer', () => {
  describe('routing rules in the default template', () => {
    it('writes a rule that would read differently inside { } as a named ACL, and HAProxy accepts both forms', async () => {
      const long = `hdr(host) -i ${Array.from({ length: 50 }, (_, i) => `h${i}.example.com`).join(' ')}`;
      const rules: Record<string, string> = {
        '/braces': 'path_reg ^/x{2}$',
        '/hash': 'path_beg -i /a#b',
        '/long': long,
        '/plain': 'hdr(host) -i plain.example.com',
      };
      const ids = Object.keys(rules);
      const out = createRenderer(defaultTemplate()).render(
        data(ids.map((id) => app(id, withTasks(task(`${id.slice(1)}.1`)))), services(...ids.map((id) => service(id, rules[id])))),
        settings({ AdminSocket: '' }),
      ).text;
      for (const id of ['/braces', '/hash', '/long']) {
        expect(out).to.contain(`acl ::${id.slice(1)}-aclrule ${rules[id]}\n`);
        expect(out).to.contain(`use_backend ::${id.slice(1)}-cluster if ::${id.slice(1)}-aclrule\n`);
      }
      expect(out).to.contain('use_backend ::plain-cluster if { hdr(host) -i plain.example.com }\n');
      const dir = mkdtempSync(join(tmpdir(), 'bamboo-rules-'));
      try {
        writeFileSync(join(dir, 'haproxy.cfg'), out);
        const r = await haproxyCheck(join(dir, 'haproxy.cfg'));
        expect(r.ok, r.output).to.equal(true);
        expect(r.output).not.to.match(/\[(WARNING|ALERT)\]/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('origins', () => {
    it('maps a haproxy -c error back to the app whose rule broke the config', async () => {
      const d = data(
        [app('/good', withTasks(task('good.1'))), app('/bad', withTasks(task('bad.1'))), app('/other', withTasks(task('other.1')))],
        services(service('/bad', 'no_such_fetch -i x')),
      );
      const { text, origins } = createRenderer(defaultTemplate()).render(d, settings({ AdminSocket: '' }));
      const dir = mkdtempSync(join(tmpdir(), 'bamboo-origins-'));
      try {
        const file = join(dir, 'haproxy.cfg');
        writeFileSync(file, text);
        const r = await haproxyCheck(file);
        expect(r.ok).to.equal(false);
        const lines = alertLines(r.output);
        expect(lines.length).to.be.greaterThan(0);
        expect(appsAtLines(origins, lines)).to.deep.equal(['/bad']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});

// ------------------------------------------------------------------------------------------------
// Through a real HAProxy: /app and /app2 reach different backends.
// ------------------------------------------------------------------------------------------------

function listen(server: Server | ReturnType<typeof createNetServer>): Promise<number> {
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok((server.address() as AddressInfo).port));
  });
}

async function freePort(): Promise<number> {
  const s = createNetServer();
  const port = await listen(s);
  await new Promise((ok) => s.close(ok));
  return port;
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end();
  });
}

describe('default template through a real HAProxy', function () {
  this.timeout(20_000);
  let dir = '';
  let haproxy: ChildProcess | undefined;
  let port = 0;
  const backends: Server[] = [];
  let stderr = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bamboo-haproxy-'));
    const ports: number[] = [];
    for (const name of ['one', 'two']) {
      const server = createServer((req, res) => {
        res.setHeader('content-type', 'text/plain');
        res.end(`${name} ${req.url}`);
      });
      backends.push(server);
      ports.push(await listen(server));
    }
    port = await freePort();
    const d = data([
      app('/app', withTasks(task('app.1', onHost('127.0.0.1', ports[0])))),
      app('/app2', withTasks(task('app2.1', onHost('127.0.0.1', ports[1])))),
    ]);
    const text = renderOnce(readFileSync(DEFAULT_TEMPLATE_PATH, 'utf8'), d, {
      HttpBind: `127.0.0.1:${port}`,
      BindOptions: 'noreuseport',
      AdminSocket: join(dir, 'admin.sock'),
      StatsBind: '',
      StatsUser: '',
      StatsPassword: '',
    }).text;
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, text);
    haproxy = spawn('haproxy', ['-db', '-f', cfg, '-p', join(dir, 'haproxy.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await get(port, '/');
        break;
      } catch (err) {
        if (haproxy.exitCode !== null || Date.now() > deadline) throw new Error(`HAProxy did not start: ${stderr || (err as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });

  after(async () => {
    if (haproxy && haproxy.exitCode === null && haproxy.pid !== undefined) {
      const exited = new Promise((r) => haproxy?.once('exit', r));
      process.kill(haproxy.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (haproxy.exitCode === null && haproxy.signalCode === null) process.kill(haproxy.pid, 'SIGKILL');
    }
    await Promise.all(backends.map((s) => new Promise((r) => s.close(r))));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const routes: Array<[string, number, string]> = [
    ['/app', 200, 'one /app'],
    ['/app/', 200, 'one /app/'],
    ['/APP/x', 200, 'one /APP/x'],
    ['/app/deep/path?q=1', 200, 'one /app/deep/path?q=1'],
    ['/app2', 200, 'two /app2'],
    ['/app2/x', 200, 'two /app2/x'],
    ['/application', 503, 'no Marathon app matches this request'],
    ['/', 503, 'no Marathon app matches this request'],
  ];
  for (const [path, status, body] of routes) {
    it(`sends ${path} to ${status === 200 ? body.split(' ')[0] : 'the 503 page'}`, async () => {
      const res = await get(port, path);
      expect(res.status, stderr).to.equal(status);
      expect(res.body).to.contain(body);
    });
  }
});
