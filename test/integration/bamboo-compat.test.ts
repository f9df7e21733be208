/**
 * Bamboo's documented use, replayed: the README's curl calls, a deploy script that POSTs the same rule
 * on every deploy, body keys in any case with extra fields, Bamboo's configuration files and env vars.
 * Each answer is Bamboo's, or a difference listed in docs/upgrading-from-bamboo.md: every row of that
 * table has a test here named by its id (`R1: ...`), and the last test fails when the two disagree.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { checkExposure } from '../../api/edge.js';
import { runApi, type RunningApi } from '../../api/main.js';
import { ConfigError, PROJECT_ROOT, type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { createRenderer, renderOnce, TemplateError } from '../../common/core/render.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import { app, defaultTemplate, onHost, service, services, settings, task, withLabels, withTasks } from '../builders.js';
import { silentLogger } from '../../common/log.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { queryEscape } from '../../common/adapters/zookeeper/zk-paths.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { jsonCall } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';

const pexec = promisify(execFile);
const log = silentLogger();
const DOC = join(PROJECT_ROOT, 'docs', 'upgrading-from-bamboo.md');

/** Row ids of the differences table in docs/upgrading-from-bamboo.md. */
function documentedRows(): string[] {
  return [...readFileSync(DOC, 'utf8').matchAll(/^\| ([A-Z]\d+) \|/gm)].map((m) => m[1]).sort();
}

describe('Bamboo compatibility (its documented use, and the listed differences)', function () {
  this.timeout(30000);
  let conn: string;
  let sim: MarathonSimulator;
  let zk: Zk;
  const apis: RunningApi[] = [];
  const rows = new Set<string>();

  /** A test for one row of the differences table. */
  function row(id: string, title: string, fn: () => Promise<void> | void): void {
    rows.add(id);
    it(`${id}: ${title}`, fn);
  }

  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
    sim = new MarathonSimulator({ heartbeatMs: 60000 });
    await sim.start();
    sim.deployApp({ id: '/ExampleAppGroup/app1', instances: 1, env: { DB_PASSWORD: 'hunter2' }, labels: { team: 'payments' } });
    zk = new Zk({ connectionString: conn, log });
    await zk.start();
  });
  after(async () => {
    await sim.stop();
    await zk.close();
  });
  afterEach(async () => {
    await Promise.all(apis.splice(0).map((a) => a.close()));
  });

  async function start(over: Record<string, string | number | boolean> = {}): Promise<RunningApi & { cfg: Readonly<Config> }> {
    const cfg = loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': conn,
        'Bamboo.Zookeeper.Path': uniquePath('/compat-rules'),
        'Bamboo.Zookeeper.ControlPath': uniquePath('/compat-control'),
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': sim.url,
        'Marathon.ResyncIntervalMs': 0,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
        ...over,
      },
    });
    const api = await runApi(cfg, log, { bind: '127.0.0.1:0', intake: { subscriptionCheckMs: 60000 } });
    apis.push(api);
    return Object.assign(api, { cfg });
  }

  /** curl as Bamboo's README runs it (`-d` sends a form content type). */
  async function curl(...args: string[]): Promise<{ status: number; headers: string; body: string }> {
    const { stdout } = await pexec('curl', ['-s', '-i', ...args]);
    const split = stdout.indexOf('\r\n\r\n');
    return { status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(stdout)![1]), headers: stdout.slice(0, split), body: stdout.slice(split + 4) };
  }

  describe('what works unchanged', () => {
    it("runs the README's curl calls, and a deploy script that POSTs the same rule on every deploy", async () => {
      const api = await start();
      const body = '{"id":"/ExampleAppGroup/app1","acl":"hdr(host) -i app-1.example.com"}';
      const first = await curl('-X', 'POST', '-d', body, `${api.url}/api/services`);
      const second = await curl('-X', 'POST', '-d', body, `${api.url}/api/services`);
      expect([first.status, second.status]).to.deep.equal([201, 200]);
      expect(JSON.parse(second.body)).to.deep.equal({ Id: '/ExampleAppGroup/app1', Acl: 'hdr(host) -i app-1.example.com', Config: { Acl: 'hdr(host) -i app-1.example.com' } });
      const node = await zk.get(`${api.cfg.Bamboo.Zookeeper.Path}/${queryEscape('/ExampleAppGroup/app1')}`);
      expect(JSON.parse(node!.data.toString())).to.deep.equal({ version: '2', config: { Acl: 'hdr(host) -i app-1.example.com' } });
      const put = await curl('-X', 'PUT', '-d', '{"id":"/ExampleAppGroup/app1", "acl":"path_beg -i /group/app-1"}', `${api.url}/api/services//ExampleAppGroup/app1`);
      expect(put.status).to.equal(200);
      expect(JSON.parse((await curl(`${api.url}/api/services`)).body)['/ExampleAppGroup/app1'].Acl).to.equal('path_beg -i /group/app-1');
      expect((await curl(`${api.url}/api/state`)).status).to.equal(200);
      expect((await curl(`${api.url}/status`)).status).to.equal(200);
      expect((await curl('-X', 'DELETE', `${api.url}/api/services//ExampleAppGroup/app1`)).status).to.equal(204);
    });

    it('reads body keys in lower and mixed case, ignores an extra field (naming it in a Warning), and takes a relative id from the root', async () => {
      const api = await start();
      const r = await curl('-X', 'POST', '-d', '{"ID":"ExampleAppGroup/app1","Acl":"path_beg -i /a","config":{"Team":"x"},"owner":"ci"}', `${api.url}/api/services`);
      expect(r.status).to.equal(201);
      expect(JSON.parse(r.body)).to.deep.equal({ Id: '/ExampleAppGroup/app1', Acl: 'path_beg -i /a', Config: { Team: 'x', Acl: 'path_beg -i /a' } });
      expect(r.headers).to.match(/^Warning: 299 bamboo "unknown fields ignored: owner"\r?$/im);
    });

    it("loads Bamboo's example configuration file, its // comments and all", () => {
      const file = join(tempDir(), 'production.json');
      writeFileSync(file, `{
  // Marathon instance configuration
  "Marathon": {
    // Marathon service HTTP endpoints
    "Endpoint": "http://localhost:8080",
    "UseEventStream": true
  },
  "Bamboo": {
    // Bamboo's HTTP address can be accessed by Marathon
    "Endpoint": "http://localhost:8000",
    // Proxy setting information is stored in Zookeeper
    "Zookeeper": { "Host": "localhost:2181", "Path": "/marathon-haproxy/state", "ReportingDelay": 5 }
  },
  // Make sure using absolute path on production
  "HAProxy": {
    "TemplatePath": "config/haproxy_template.cfg",
    "OutputPath": "/etc/haproxy/haproxy.cfg",
    "ReloadCommand": "haproxy -f /etc/haproxy/haproxy.cfg -p /var/run/haproxy.pid -D -sf $(cat /var/run/haproxy.pid)",
    "ReloadValidationCommand": "haproxy -c -f {{.}}",
    "ReloadCleanupCommand": "exit 0"
  },
  // Enable or disable StatsD event tracking
  "StatsD": { "Enabled": false, "Host": "localhost:8125", "Prefix": "bamboo-server.production." }
}`);
      const cfg = loadConfig({ file, env: {} });
      expect(cfg.Marathon).to.include({ Endpoint: 'http://localhost:8080', UseEventStream: true });
      expect(cfg.HAProxy.ReloadValidationCommand).to.equal('haproxy -c -f {{.}}');
      expect(cfg.HAProxy.TemplatePath).to.equal(join(file, '..', 'config/haproxy_template.cfg'));
    });

    it('loads a file with EndPoint and lower-case sections, and ignores env vars set to empty strings', () => {
      const file = join(tempDir(), 'mixed.json');
      writeFileSync(file, JSON.stringify({ marathon: { EndPoint: 'http://m:8080' }, bamboo: { endpoint: 'http://b:8000', zookeeper: { host: 'zk:2181' } } }));
      const cfg = loadConfig({ file, env: { MARATHON_ENDPOINT: '', BAMBOO_ZK_HOST: '', BAMBOO_ENDPOINT: 'http://env-b:8000' } });
      expect(cfg.Marathon.Endpoint).to.equal('http://m:8080');
      expect(cfg.Bamboo.Zookeeper.Host).to.equal('zk:2181');
      expect(cfg.Bamboo.Endpoint).to.equal('http://env-b:8000');
    });

    it('routes with records Bamboo wrote (V1 raw text and V2 JSON) under the same path', async () => {
      const api = await start();
      const base = api.cfg.Bamboo.Zookeeper.Path;
      await zk.create(`${base}/${queryEscape('/v1/app')}`, Buffer.from('hdr(host) -i v1.example.com'));
      await zk.create(`${base}/${queryEscape('/v2/app')}`, Buffer.from(JSON.stringify({ version: '2', config: { Acl: 'hdr(host) -i v2.example.com', Weight: '2' } })));
      const list = await waitFor(async () => {
        const r = await jsonCall('GET', `${api.url}/api/services`);
        return Object.keys(r.json).length === 2 ? r.json : null;
      }, 'both records listed');
      expect(list['/v1/app'].Acl).to.equal('hdr(host) -i v1.example.com');
      expect(list['/v2/app']).to.deep.equal({ Id: '/v2/app', Acl: 'hdr(host) -i v2.example.com', Config: { Acl: 'hdr(host) -i v2.example.com', Weight: '2' } });
    });
  });

  describe('the listed differences (docs/upgrading-from-bamboo.md)', () => {
    row('R1', 'PUT writes the record its URL names, not the one its body names', async () => {
      const api = await start();
      const r = await jsonCall('PUT', `${api.url}/api/services//url/app`, { id: '/body/app', acl: 'path_beg -i /u' });
      expect([r.status, r.json.Id]).to.deep.equal([201, '/url/app']);
      expect(await zk.children(api.cfg.Bamboo.Zookeeper.Path)).to.deep.equal([queryEscape('/url/app')]);
    });

    row('R2', 'a create answers 201 with Location and ETag, a replace 200 with ETag', async () => {
      const api = await start();
      const created = await curl('-X', 'POST', '-d', '{"id":"/r2","acl":"path_beg -i /r2"}', `${api.url}/api/services`);
      expect(created.status).to.equal(201);
      expect(created.headers).to.match(/^Location: \/api\/services\/\/r2\r?$/im).and.match(/^ETag: "0"\r?$/im);
      const replaced = await curl('-X', 'PUT', '-d', '{"acl":"path_beg -i /r2b"}', `${api.url}/api/services//r2`);
      expect(replaced.status).to.equal(200);
      expect(replaced.headers).to.match(/^ETag: "1"\r?$/im);
    });

    row('R3', 'DELETE answers 204 without a body, and 404 for an unknown id', async () => {
      const api = await start();
      await jsonCall('PUT', `${api.url}/api/services//r3`, { acl: 'path_beg -i /r3' });
      const del = await curl('-X', 'DELETE', `${api.url}/api/services//r3`);
      expect([del.status, del.body]).to.deep.equal([204, '']);
      const again = await jsonCall('DELETE', `${api.url}/api/services//r3`);
      expect([again.status, again.json.code]).to.deep.equal([404, 'BAMBOO_SERVICE_NOT_FOUND']);
    });

    row('R4', 'errors are JSON with a code and a fitting status (bad JSON 400, conflict 409)', async () => {
      const api = await start();
      const bad = await curl('-X', 'POST', '-d', '{"id":', `${api.url}/api/services`);
      expect(bad.status).to.equal(400);
      expect(JSON.parse(bad.body)).to.include({ code: 'BAMBOO_BAD_JSON' });
      await jsonCall('PUT', `${api.url}/api/services//r4`, { acl: 'path_beg -i /r4' });
      const stale = await jsonCall('PUT', `${api.url}/api/services//r4`, { acl: 'path_beg -i /x' }, { 'If-Match': '"7"' });
      expect([stale.status, stale.json.code]).to.deep.equal([409, 'BAMBOO_VERSION_CONFLICT']);
    });

    row('R5', 'a rule with a newline (which injected directives into Bamboo\'s haproxy.cfg), a file or the environment is a 400 and is not stored', async () => {
      const api = await start();
      const cases: Array<[string, string]> = [
        ['path_beg /a\n  server evil 10.0.0.1:80', 'ACL_CONTROL_CHAR'],
        ['path_beg -f /etc/passwd', 'ACL_FILE_ACCESS'],
        ['env(BAMBOO_ZK_DIGEST) -m found', 'ACL_ENV_ACCESS'],
      ];
      for (const [acl, reason] of cases) {
        const r = await jsonCall('POST', `${api.url}/api/services`, { id: '/r5', acl });
        expect([r.status, r.json.code, r.json.reason], acl).to.deep.equal([400, 'BAMBOO_INVALID_ACL', reason]);
      }
      expect(await zk.children(api.cfg.Bamboo.Zookeeper.Path)).to.deep.equal([]);
    });

    row('R6', 'the Marathon callback answers 202 with JSON at once', async () => {
      const api = await start();
      const r = await jsonCall('POST', `${api.url}/api/marathon/event_callback`, { eventType: 'status_update_event' });
      expect(r.status).to.equal(202);
      expect(r.json).to.deep.include({ accepted: true, eventType: 'status_update_event' });
    });

    row('R7', "/api/state hides env and label values from a request without a credential", async () => {
      const api = await start();
      const state = await waitFor(async () => {
        const r = await jsonCall('GET', `${api.url}/api/state`);
        return r.status === 200 && r.json.Apps.length === 1 ? r : null;
      }, 'the snapshot');
      expect(state!.json.Apps[0].Env).to.deep.equal({ DB_PASSWORD: '***' });
      expect(state!.json.Apps[0].Labels).to.deep.equal({ team: '***' });
    });

    row('R8', 'an api off loopback refuses to start without a credential, unless anonymous writes are allowed explicitly', () => {
      const open = loadConfig({ env: {} });
      expect(() => checkExposure(open, '0.0.0.0', ':8000')).to.throw(ConfigError, /refusing to serve rule writes without a credential on :8000/);
      expect(() => checkExposure(open, '127.0.0.1', '127.0.0.1:8000')).not.to.throw();
      expect(() => checkExposure(loadConfig({ env: { BAMBOO_AUTH_TOKENS: '{"deploy":"d3ploy-t0ken-secret"}' } }), '0.0.0.0', ':8000')).not.to.throw();
      expect(() => checkExposure(loadConfig({ env: { BAMBOO_ALLOW_ANONYMOUS_WRITES: 'true' } }), '0.0.0.0', ':8000')).not.to.throw();
    });

    row('R9', 'writes beyond the burst of one credential answer 429 with Retry-After', async () => {
      const api = await start({ 'Bamboo.WriteRateBurst': 3, 'Bamboo.WriteRatePerMinute': 1 });
      const statuses: number[] = [];
      let last;
      for (let i = 0; i < 4; i++) {
        last = await jsonCall('PUT', `${api.url}/api/services//r9`, { acl: `path_beg -i /r9-${i}` });
        statuses.push(last.status);
      }
      expect(statuses).to.deep.equal([201, 200, 200, 429]);
      expect(last!.json.code).to.equal('BAMBOO_RATE_LIMITED');
      expect(Number(last!.headers.get('retry-after'))).to.be.greaterThan(0);
    });

    row('R10', 'a rule HAProxy rejects is a 400 with HAProxy\'s reason, and is not stored', async () => {
      const api = await start();
      const r = await curl('-X', 'POST', '-d', '{"id":"/r8","acl":"hdrr(host) -i r8.example.com"}', `${api.url}/api/services`);
      expect(r.status).to.equal(400);
      expect(JSON.parse(r.body)).to.include({ code: 'BAMBOO_ACL_REJECTED_BY_HAPROXY' });
      expect(JSON.parse(r.body).message).to.match(/unknown fetch method 'hdrr'/);
      expect(await zk.children(api.cfg.Bamboo.Zookeeper.Path)).to.deep.equal([]);
    });

    row('C1', 'an unknown configuration key stops the process with a line naming it', () => {
      const file = join(tempDir(), 'typo.json');
      writeFileSync(file, JSON.stringify({ Marathon: { Endpiont: 'http://m:8080' } }));
      expect(() => loadConfig({ file, env: {} })).to.throw(ConfigError, /^config: unknown key Marathon\.Endpiont \(from /);
    });

    row('C2', "Bamboo v0.1's keys are refused with what replaced them", () => {
      const file = join(tempDir(), 'v01.json');
      writeFileSync(file, JSON.stringify({ Bamboo: { Host: 'http://b:8000' } }));
      expect(() => loadConfig({ file, env: {} })).to.throw(ConfigError, /Bamboo\.Host was Bamboo v0\.1's, replaced by Bamboo\.Endpoint/);
    });

    row('C3', 'a Go template is refused with a pointer to the porting guide', () => {
      const go = '{{ range $i, $app := .Apps }}\nbackend {{ $app.EscapedId }}-cluster\n{{ end }}\n';
      expect(() => createRenderer(go, { filename: 'haproxy_template.cfg' })).to.throw(TemplateError, /Go text\/template .*docs\/templates\.md/);
    });

    row('C4', 'an empty HAProxy.ReloadCommand means the worker runs HAProxy itself (managed mode)', () => {
      const cfg = loadConfig({ env: { HAPROXY_RELOAD_CMD: '' } });
      expect(cfg.HAProxy.ReloadCommand).to.equal('');
      const doc = readFileSync(join(PROJECT_ROOT, 'docs', 'configuration.md'), 'utf8');
      expect(doc).to.match(/`HAProxy\.ReloadCommand` .*Empty: the worker runs HAProxy itself in master-worker mode \(managed mode\)/);
    });

    row('C5', 'an app with marathon-lb labels and no rule is routed by its labels, not by the default path rule; a rule still wins', () => {
      const apps = [app('/shop', withLabels({ HAPROXY_0_VHOST: 'shop.example.com' }), withTasks(task('shop.1', onHost('10.0.0.1', 31001))))];
      const routes = (records: ReturnType<typeof services>) =>
        renderOnce(defaultTemplate(), buildTemplateData({ apps, services: records, now: Date.now() }).data, settings())
          .text.split('\n')
          .filter((l) => l.includes('use_backend ::shop-cluster'))
          .map((l) => l.trim());
      expect(routes({})).to.deep.equal(['use_backend ::shop-cluster if { hdr(host),field(1,:) -m str -i shop.example.com }']);
      expect(routes(services(service('/shop', 'path_beg -i /shop/')))).to.deep.equal(['use_backend ::shop-cluster if { path_beg -i /shop/ }']);
    });

    it('has a test for every row of the table, and a row for every such test', () => {
      expect([...rows].sort()).to.deep.equal(documentedRows());
    });
  });
});
