/**
 * The api's HTTP edge from an attacker's side (issue 15): who may write, what a rule may do, what text
 * is stored, how fast one credential may write, and what a slow or huge client costs. Real HTTP, real
 * ZooKeeper, the Marathon simulator, real `haproxy -c`; process-level cases spawn `bin/bamboo.js`.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { EventTypeScanner, isLoopbackHost } from '../../api/edge.js';
import { topLevelEventType } from '../../api/edge.js';
import { runApi, type RunningApi } from '../../api/main.js';
import { aclWords, validateAcl } from '../../common/core/acl.js';
import { PROJECT_ROOT, ConfigError, type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { createLogger, silentLogger } from '../../common/log.js';
import { startStatusServer } from '../../worker/status.js';
import { FIXTURES } from '../builders.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { haproxyCheck } from '../support/haproxy.js';
import { jsonCall } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { startProcess, waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';
import { readdirSync } from 'node:fs';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();
const BIN = join(PROJECT_ROOT, 'bin', 'bamboo.js');

/** Rules a platform team writes: they must stay accepted, and HAProxy takes every one of them. */
const VALID_RULES = [
  'hdr_dom(host) -i a.example.com',
  'path_reg ^/api/v[0-9]+$',
  'src 10.0.0.0/8',
  'path_beg /a || !path_beg /b',
  'req.hdr(x-env) -m str prod',
  'hdr(host),lower -m str app.example.com',
  'hdr(host) -i env hostname pid',
  "path_reg '^/a$'",
  'path_beg -- -x',
  'src_port 8080',
  'path_beg -i /app/ /other/',
  'hdr(host) -i bücher.example',
  'path_beg /a } || { path_beg /b',
  'url_param(env) -m found',
];

/** [rule, reason]: every way found to load a file, read the environment or the process's state. */
const HOSTILE_RULES: Array<[string, string]> = [
  ['path_beg -f /dev/zero', 'ACL_FILE_ACCESS'],
  ['path_beg -f /etc/passwd', 'ACL_FILE_ACCESS'],
  ['path_beg -f/etc/passwd', 'ACL_FILE_ACCESS'],
  ['path_beg -m reg -f /etc/passwd', 'ACL_FILE_ACCESS'],
  ['path_beg -i -M -f /etc/hosts', 'ACL_FILE_ACCESS'],
  ["path_beg '-f' /etc/passwd", 'ACL_FILE_ACCESS'],
  ['path_beg "-f" /etc/passwd', 'ACL_FILE_ACCESS'],
  ['path_beg -\\x66 /etc/passwd', 'ACL_FILE_ACCESS'],
  ['path_beg -"f" /etc/passwd', 'ACL_FILE_ACCESS'],
  ['path_beg \\x2df /etc/passwd', 'ACL_FILE_ACCESS'],
  ['req.hdr(x),map(/etc/passwd) -m found', 'ACL_FILE_ACCESS'],
  ['req.hdr(x),map_str(/etc/passwd,x) -m found', 'ACL_FILE_ACCESS'],
  ['req.hdr(x),map_beg(/etc/passwd) -m found', 'ACL_FILE_ACCESS'],
  ['req.hdr(x),map_reg_int(/etc/passwd) -m found', 'ACL_FILE_ACCESS'],
  ['req.hdr(x),MAP(/etc/passwd) -m found', 'ACL_FILE_ACCESS'],
  ['req.hdr(x),jwt_verify(RS256,/etc/ssl/key.pem) -m found', 'ACL_FILE_ACCESS'],
  ['env(BAMBOO_ZK_DIGEST) -m reg ^bamboo[:]zkpass[A-M]', 'ACL_ENV_ACCESS'],
  ['ENV(HOME) -m found', 'ACL_ENV_ACCESS'],
  ['Env(HOME) -m found', 'ACL_ENV_ACCESS'],
  ["'env'(HOME) -m found", 'ACL_ENV_ACCESS'],
  ['e"n"v(HOME) -m found', 'ACL_ENV_ACCESS'],
  ["e'nv'(HOME) -m found", 'ACL_ENV_ACCESS'],
  ['\\x65nv(HOME) -m found', 'ACL_ENV_ACCESS'],
  ['env (HOME)', 'ACL_ENV_ACCESS'],
  ['env\\x28HOME) -m found', 'ACL_ENV_ACCESS'],
  ['e\\nv(HOME) -m found', 'ACL_CONTROL_CHAR'],
  ['path_beg /a } || { env(HOME) -m found', 'ACL_ENV_ACCESS'],
  ['path_beg "/${HAPROXY_STATS_PASSWORD}x"', 'ACL_ENV_ACCESS'],
  ['path_beg "$HOME"', 'ACL_ENV_ACCESS'],
  ['path_beg "\\$HOME"', 'ACL_ENV_ACCESS'],
  ['path_beg /a"$HOME"', 'ACL_ENV_ACCESS'],
  ['hostname -m found', 'ACL_PROCESS_STATE'],
  ['var(proc.secret) -m found', 'ACL_PROCESS_STATE'],
  ['req.hdr(x),concat(,txn.secret,) -m found', 'ACL_PROCESS_STATE'],
  ['req.hdr(x),strcmp(proc.secret) eq 0', 'ACL_PROCESS_STATE'],
  ['be_conn(other-cluster) gt 0', 'ACL_PROCESS_STATE'],
  ['srv_is_up(other-cluster/s1)', 'ACL_PROCESS_STATE'],
  ['nbsrv(other-cluster) gt 0', 'ACL_PROCESS_STATE'],
  ['src_conn_cnt(t) gt 3', 'ACL_PROCESS_STATE'],
  ['sc0_http_req_rate gt 3', 'ACL_PROCESS_STATE'],
  ['req.hdr(x),table_http_req_rate(t) gt 0', 'ACL_PROCESS_STATE'],
  ['req.hdr(x),set-var(proc.x) -m found', 'ACL_PROCESS_STATE'],
  ['req.hdr(x),debug -m found', 'ACL_PROCESS_STATE'],
  ['last_rule_file -m found', 'ACL_PROCESS_STATE'],
  ['lua.anything -m found', 'ACL_PROCESS_STATE'],
  ['path_beg /\\x0aserver', 'ACL_CONTROL_CHAR'],
  ["path_beg '/a", 'ACL_BAD_QUOTING'],
  ['path /\ud800', 'ACL_INVALID_UNICODE'],
  ['path /\udc00x', 'ACL_INVALID_UNICODE'],
  ['path /\ufffd', 'ACL_INVALID_UNICODE'],
];

function haproxyConfig(rules: string[]): string {
  const lines = rules.map((r) => `    use_backend b if { ${r} }`);
  return ['defaults', '    mode http', '    timeout client 1s', '    timeout server 1s', '    timeout connect 1s', 'frontend f', '    bind 127.0.0.1:65000', ...lines, 'backend b', ''].join('\n');
}

describe('trust at the api edge (issue 15)', function () {
  this.timeout(60000);

  describe('rules are ACL conditions, not a way into the host (F4, F5)', () => {
    for (const rule of VALID_RULES) {
      it(`accepts ${JSON.stringify(rule)}`, () => expect(validateAcl(rule)).to.deep.equal({ ok: true }));
    }
    for (const [rule, reason] of HOSTILE_RULES) {
      it(`rejects ${JSON.stringify(rule)} with ${reason}`, () => {
        const r = validateAcl(rule);
        expect(r.ok).to.equal(false);
        if (!r.ok) {
          expect(r.code).to.equal(reason);
          expect(r.message).to.match(/^the ACL /);
        }
      });
    }

    it('splits words as HAProxy does (quotes, escapes) and HAProxy accepts every valid rule', async () => {
      expect(aclWords('a"b c"d \'e f\' -\\x66 x\\ y')?.map((w) => w.text)).to.deep.equal(['ab cd', 'e f', '-f', 'x y']);
      const dir = tempDir();
      const file = join(dir, 'valid.cfg');
      writeFileSync(file, haproxyConfig(VALID_RULES.filter((r) => !r.includes('}'))));
      const check = await haproxyCheck(file);
      expect(check.ok, check.output).to.equal(true);
    });

    it('the rejected file and environment rules are real: HAProxy itself would accept them', async () => {
      // If HAProxy refused these anyway, rejecting them would prove nothing: check that it does not.
      const dir = tempDir();
      const file = join(dir, 'hostile.cfg');
      const real = ['path_beg -f /etc/hostname', 'path_beg -\\x66 /etc/hostname', "'env'(HOME) -m found", '\\x65nv(HOME) -m found', 'path_beg "${HOME}"', 'req.hdr(x),map(/etc/passwd) -m found', 'hostname -m found'];
      writeFileSync(file, haproxyConfig(real));
      const check = await haproxyCheck(file);
      expect(check.ok, check.output).to.equal(true);
      for (const r of real) expect(validateAcl(r).ok, r).to.equal(false);
    });
  });

  describe('the Marathon callback is scanned as it arrives, never held (F8)', () => {
    it('finds the same event type as the whole-text scan in every fixture, however the bytes are cut', () => {
      const dir = join(FIXTURES, 'events');
      for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
        const bytes = readFileSync(join(dir, f));
        for (const size of [1, 7, 4096]) {
          const s = new EventTypeScanner();
          for (let i = 0; i < bytes.length; i += size) s.push(bytes.subarray(i, i + size));
          expect(s.eventType, `${f} in ${size}-byte chunks`).to.equal(topLevelEventType(bytes.toString('utf8').trim()));
          expect(s.isObject).to.equal(true);
        }
      }
      const nested = new EventTypeScanner();
      nested.push(Buffer.from(JSON.stringify({ plan: { labels: { eventType: 'nested' } }, note: '"eventType":"fake"', eventType: 'deployment_info' })));
      expect(nested.eventType).to.equal('deployment_info');
    });
  });

  describe('loopback detection', () => {
    it('knows 127.0.0.0/8, ::1 and localhost, and nothing else', () => {
      for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(h), h).to.equal(true);
      for (const h of ['0.0.0.0', '', '::', '10.0.0.1', '128.0.0.1', 'example.com', '127.0.0.1.example.com', '1127.0.0.1']) expect(isLoopbackHost(h), h).to.equal(false);
    });
  });

  describe('one api copy (real HTTP, ZooKeeper, Marathon simulator)', () => {
    let conn: string;
    let sim: MarathonSimulator;
    const apis: RunningApi[] = [];
    const TOKENS = { deploy: 'deploy-token-0123456789', ui: 'ui-token-0123456789abc' };

    before(async () => {
      conn = (await sharedZooKeeper()).connectionString;
      sim = new MarathonSimulator({ heartbeatMs: 60000, version: '1.4.12' });
      await sim.start();
      sim.deployApp({ id: '/shop/api', instances: 1, env: { DB_PASSWORD: 'hunter2' } });
    });
    after(async () => {
      await sim.stop();
    });
    afterEach(async () => {
      await Promise.all(apis.splice(0).map((a) => a.close()));
    });

    function config(over: Record<string, unknown> = {}): Readonly<Config> {
      return loadConfig({
        env: {},
        overrides: {
          'Bamboo.Zookeeper.Host': conn,
          'Bamboo.Zookeeper.Path': uniquePath('/rules'),
          'Bamboo.Zookeeper.ControlPath': uniquePath('/control'),
          'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
          'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
          'Marathon.Endpoint': sim.url,
          'Marathon.ResyncIntervalMs': 0,
          'Bamboo.Endpoint': 'http://127.0.0.1:9',
          ...(over as Record<string, string>),
        },
      });
    }

    async function start(over: Record<string, unknown> = {}, logger = log, port = 0): Promise<RunningApi> {
      const api = await runApi(config(over), logger, { bind: `127.0.0.1:${port}`, intake: { subscriptionCheckMs: 60000 } });
      apis.push(api);
      return api;
    }

    const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

    it('attributes every write to its credential by name, and the rule-change log line carries it', async () => {
      const lines: string[] = [];
      const dest = new Writable({ write(chunk, _e, cb) { lines.push(String(chunk)); cb(); } });
      const logger = createLogger({ level: 'info', destination: dest, secrets: Object.values(TOKENS) });
      const api = await start({ 'Bamboo.AuthTokens': JSON.stringify(TOKENS), 'Bamboo.AuthToken': 'single-token-0123456789' }, logger);
      expect((await jsonCall('PUT', `${api.url}/api/services//a`, { acl: 'path_beg /a' }, bearer(TOKENS.deploy))).status).to.equal(201);
      expect((await jsonCall('PUT', `${api.url}/api/services//b`, { acl: 'path_beg /b' }, bearer(TOKENS.ui))).status).to.equal(201);
      expect((await jsonCall('DELETE', `${api.url}/api/services//a`, undefined, bearer('single-token-0123456789'))).status).to.equal(204);
      const wrong = await jsonCall('PUT', `${api.url}/api/services//c`, { acl: 'path_beg /c' }, bearer(`${TOKENS.deploy}x`));
      expect(wrong.status).to.equal(401);
      expect(wrong.json.code).to.equal('BAMBOO_UNAUTHORIZED');
      const changes = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'rule changed');
      expect(changes.map((c) => [c.appId, c.action, c.credential])).to.deep.equal([
        ['/a', 'created', 'deploy'],
        ['/b', 'created', 'ui'],
        ['/a', 'deleted', 'default'],
      ]);
      expect(lines.join('')).not.to.include(TOKENS.deploy).and.not.to.include(TOKENS.ui);
      const st = (await jsonCall('GET', `${api.url}/status`)).json;
      expect(st.auth).to.include({ credentials: 3, anonymousWrites: false });
    });

    it('shows unredacted values only to a valid credential, even with anonymous writes allowed', async () => {
      const open = await start({ 'Bamboo.AllowAnonymousWrites': true });
      await waitFor(async () => (await jsonCall('GET', `${open.url}/api/state`)).status === 200, 'first snapshot');
      for (const headers of [{}, bearer('guess-guess-guess-guess')]) {
        const r = await jsonCall('GET', `${open.url}/api/state?unredacted=1`, undefined, headers);
        expect(r.status).to.equal(403);
        expect(r.json.code).to.equal('BAMBOO_FORBIDDEN');
        expect(r.text).not.to.include('hunter2');
      }
      const st = (await jsonCall('GET', `${open.url}/status`)).json;
      expect(st.auth).to.include({ anonymousWrites: true, allowAnonymousWrites: true });

      const locked = await start({ 'Bamboo.AuthTokens': JSON.stringify(TOKENS) });
      await waitFor(async () => (await jsonCall('GET', `${locked.url}/api/state`)).status === 200, 'first snapshot');
      const anon = await jsonCall('GET', `${locked.url}/api/state?unredacted=1`);
      expect(anon.status).to.equal(401);
      expect(anon.text).not.to.include('hunter2');
      const full = await jsonCall('GET', `${locked.url}/api/state?unredacted=1`, undefined, bearer(TOKENS.ui));
      expect(full.status).to.equal(200);
      expect(full.text).to.include('hunter2');
    });

    it('refuses rules that read files, the environment or process state, and stores none of them', async () => {
      const api = await start();
      for (const [rule, reason] of HOSTILE_RULES) {
        const r = await jsonCall('PUT', `${api.url}/api/services//shop/api`, { acl: rule });
        expect(r.status, rule).to.equal(400);
        expect(r.json.code, rule).to.equal('BAMBOO_INVALID_ACL');
        expect(r.json.reason, rule).to.equal(reason);
        const viaConfig = await jsonCall('POST', `${api.url}/api/services`, { id: '/shop/api', config: { Acl: rule } });
        expect(viaConfig.status, rule).to.equal(400);
        // Broken Unicode is caught as a bad Config value before the ACL is looked at.
        if (viaConfig.json.code === 'BAMBOO_INVALID_ACL') expect(viaConfig.json.reason, rule).to.equal(reason);
        else expect([viaConfig.json.code, reason]).to.deep.equal(['BAMBOO_INVALID_CONFIG', 'ACL_INVALID_UNICODE']);
      }
      expect((await jsonCall('GET', `${api.url}/api/services`)).json).to.deep.equal({});
    });

    it('refuses invalid UTF-8, lone surrogates and U+FFFD in rules, Config and ids; the lists stay strict JSON', async () => {
      const api = await start();
      const raw = (bytes: Buffer) => fetch(`${api.url}/api/services//x`, { method: 'PUT', body: new Uint8Array(bytes), headers: { 'content-type': 'application/json' } }).then(async (r) => ({ status: r.status, json: await r.json() }));
      const invalidUtf8 = [
        Buffer.concat([Buffer.from('{"acl":"path_beg /'), Buffer.from([0xff]), Buffer.from('"}')]),
        Buffer.concat([Buffer.from('{"acl":"path_beg /'), Buffer.from([0xc3]), Buffer.from('"}')]), // truncated sequence
        Buffer.concat([Buffer.from('{"acl":"path_beg /'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]), // CESU surrogate
        Buffer.concat([Buffer.from('{"acl":"path_beg /'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), // overlong "/"
        Buffer.concat([Buffer.from('{"acl":"path_beg /a","config":{"K":"'), Buffer.from([0xfe]), Buffer.from('"}}')]),
      ];
      for (const body of invalidUtf8) {
        const r = await raw(body);
        expect(r.status, body.toString('hex')).to.equal(400);
        expect(r.json.code).to.equal('BAMBOO_INVALID_ENCODING');
      }
      const escaped: Array<[string, string]> = [
        ['{"acl":"path_beg /\\ud800"}', 'BAMBOO_INVALID_ACL'],
        ['{"acl":"path_beg /\\udfff\\ud800"}', 'BAMBOO_INVALID_ACL'],
        ['{"acl":"path_beg /\\ufffd"}', 'BAMBOO_INVALID_ACL'],
        ['{"acl":"path_beg /ok","config":{"K":"\\ud83d"}}', 'BAMBOO_INVALID_CONFIG'],
        ['{"acl":"path_beg /ok","config":{"K":"\ufffd"}}', 'BAMBOO_INVALID_CONFIG'],
        ['{"acl":"path_beg /ok","config":{"\\ud800":"v"}}', 'BAMBOO_INVALID_CONFIG'],
      ];
      for (const [body, code] of escaped) {
        const r = await raw(Buffer.from(body, 'utf8'));
        expect(r.status, body).to.equal(400);
        expect(r.json.code, body).to.equal(code);
      }
      const idBody = await jsonCall('POST', `${api.url}/api/services`, { id: '/a\ud800', acl: 'path_beg /a' });
      expect(idBody.json.code).to.equal('BAMBOO_INVALID_APP_ID');
      const idUrl = await jsonCall('PUT', `${api.url}/api/services//a%ED%A0%80`, { acl: 'path_beg /a' });
      expect(idUrl.status).to.equal(400);
      // A valid astral character round-trips.
      expect((await jsonCall('PUT', `${api.url}/api/services//emoji`, { acl: 'path_beg /😀' })).status).to.equal(201);
      await waitFor(async () => (await jsonCall('GET', `${api.url}/api/state`)).status === 200, 'first snapshot');
      for (const path of ['/api/services', '/api/services?versions=1', '/api/state']) {
        const text = await (await fetch(`${api.url}${path}`)).text();
        const jq = spawnSync('jq', ['-c', '.'], { input: text, encoding: 'utf8', timeout: 10000 });
        expect(jq.stderr, path).to.equal('');
        expect(jq.status, path).to.equal(0);
      }
      expect((await jsonCall('GET', `${api.url}/api/services`)).json['/emoji'].Acl).to.equal('path_beg /😀');
    });

    it('rate-limits rule writes per credential with a coded 429 and Retry-After; other credentials and reads go on', async () => {
      const api = await start({ 'Bamboo.AuthTokens': JSON.stringify(TOKENS), 'Bamboo.WriteRateBurst': 3, 'Bamboo.WriteRatePerMinute': 60 });
      const statuses: number[] = [];
      let limited: Awaited<ReturnType<typeof jsonCall>> | null = null;
      for (let i = 0; i < 6; i++) {
        const r = await jsonCall('PUT', `${api.url}/api/services//flood/r${i}`, { acl: `path_beg /r${i}` }, bearer(TOKENS.deploy));
        statuses.push(r.status);
        if (r.status === 429) limited = r;
      }
      // The bucket refills one write a second: on a slow machine one more may fit, never all six.
      expect(statuses.slice(0, 3)).to.deep.equal([201, 201, 201]);
      expect(statuses.filter((s) => s === 429).length).to.be.at.least(2);
      expect(limited!.json.code).to.equal('BAMBOO_RATE_LIMITED');
      expect(Number(limited!.headers.get('retry-after'))).to.be.within(1, 2);
      // Deletes count as writes too; a bad token is a 401 and never spends the victim's bucket.
      expect((await jsonCall('DELETE', `${api.url}/api/services//flood/r0`, undefined, bearer(TOKENS.deploy))).status).to.equal(429);
      expect((await jsonCall('PUT', `${api.url}/api/services//other`, { acl: 'path_beg /o' }, bearer(TOKENS.ui))).status).to.equal(201);
      expect((await jsonCall('GET', `${api.url}/api/services`)).status).to.equal(200);
      await waitFor(async () => (await jsonCall('PUT', `${api.url}/api/services//flood/later`, { acl: 'path_beg /l' }, bearer(TOKENS.deploy))).status === 201, 'bucket refilled', 5000, 250);
    });

    it('rate-limits anonymous writes per client address', async () => {
      const api = await start({ 'Bamboo.WriteRateBurst': 2, 'Bamboo.WriteRatePerMinute': 1 });
      const s: number[] = [];
      for (let i = 0; i < 3; i++) s.push((await jsonCall('PUT', `${api.url}/api/services//anon/r${i}`, { acl: 'path_beg /a' })).status);
      expect(s).to.deep.equal([201, 201, 429]);
      // A made-up bearer token does not buy a fresh bucket when no credential is configured.
      expect((await jsonCall('PUT', `${api.url}/api/services//anon/x`, { acl: 'path_beg /a' }, bearer('made-up-token-0123456789'))).status).to.equal(429);
    });

    it('with Bamboo.CallbackSecret, registers the secret URL with Marathon and refuses callbacks without it', async () => {
      const port = await freePort();
      const secret = 'cb-secret-0123456789abcdef';
      const api = await start({ 'Bamboo.CallbackSecret': secret, 'Bamboo.Endpoint': `http://127.0.0.1:${port}` }, log, port);
      const subs = async () => ((await (await fetch(`${sim.url}/v2/eventSubscriptions`)).json()) as { callbackUrls: string[] }).callbackUrls;
      await waitFor(async () => (await subs()).includes(`${api.url}/api/marathon/event_callback?secret=${secret}`), 'subscribed with the secret');
      const post = (q: string) => fetch(`${api.url}/api/marathon/event_callback${q}`, { method: 'POST', body: '{"eventType":"status_update_event"}' });
      for (const q of ['', '?secret=', '?secret=cb-secret-0123456789abcdeX', `?secret=${secret.slice(0, -1)}`, `?Secret=${secret}`]) {
        const r = await post(q);
        expect(r.status, q).to.equal(403);
        expect(((await r.json()) as { code: string }).code).to.equal('BAMBOO_FORBIDDEN');
      }
      expect((await post(`?secret=${secret}`)).status).to.equal(202);
      const st = await (await fetch(`${api.url}/status`)).text();
      expect(st).not.to.include(secret);
      expect(JSON.parse(st).marathon.callbackUrl).to.equal(`${api.url}/api/marathon/event_callback?secret=***`);
      await api.close();
      await waitFor(async () => (await subs()).length === 0, 'unsubscribed on close');
    });

    it('a callback flood drives at most one Marathon fetch per Marathon.MinFetchIntervalMs', async () => {
      const api = await start({ 'Marathon.MinFetchIntervalMs': 250 });
      await waitFor(() => api.intake.status().fetches >= 1, 'startup fetch');
      await new Promise((r) => setTimeout(r, 300));
      const before = sim.countRequests('/v2/apps');
      const t0 = performance.now();
      let sent = 0;
      const lane = async () => {
        while (performance.now() - t0 < 3000) {
          const r = await fetch(`${api.url}/api/marathon/event_callback`, { method: 'POST', body: '{"eventType":"status_update_event"}' });
          await r.arrayBuffer();
          sent++;
        }
      };
      await Promise.all(Array.from({ length: 8 }, lane));
      const elapsed = performance.now() - t0;
      // Let the last pending fetch run, then count.
      await new Promise((r) => setTimeout(r, 600));
      const fetches = sim.countRequests('/v2/apps') - before;
      expect(sent).to.be.greaterThan(50);
      expect(fetches).to.be.at.least(1);
      expect(fetches).to.be.at.most(Math.ceil((elapsed + 600) / 250) + 1);
    });

    it('cuts a client that sends its body or headers too slowly, on the api and on the worker status port', async () => {
      const api = await start({ 'Bamboo.HttpRequestTimeoutMs': 1500, 'Bamboo.HttpHeadersTimeoutMs': 1000 });
      const worker = await startStatusServer('127.0.0.1:0', () => null, { headersMs: 1000, requestMs: 1500 });
      try {
        const apiPort = Number(new URL(api.url).port);
        const cases: Array<[string, number, string]> = [
          ['api slow body', apiPort, `PUT /api/services//slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"acl":"`],
          ['api slow callback', apiPort, `POST /api/marathon/event_callback HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"a":"`],
          ['api slow headers', apiPort, 'GET /status HTTP/1.1\r\nHost: x\r\n'],
          ['worker slow headers', worker.port, 'GET /status HTTP/1.1\r\nHost: x\r\n'],
          ['worker slow body', worker.port, 'GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx'],
          ['api silent connection', apiPort, ''],
          ['worker silent connection', worker.port, ''],
        ];
        const results = await Promise.all(cases.map(([name, port, head]) => slowClient(port, head).then((ms) => [name, ms] as const)));
        for (const [name, ms] of results) expect(ms, name).to.be.below(8000);
      } finally {
        await new Promise<void>((r) => worker.server.close(() => r()));
      }
    });
  });

  describe('the bamboo api process', () => {
    let conn: string;
    let sim: MarathonSimulator;
    before(async () => {
      conn = (await sharedZooKeeper()).connectionString;
      sim = new MarathonSimulator({ heartbeatMs: 60000, version: '1.4.12' });
      await sim.start();
    });
    after(async () => sim.stop());

    function env(over: Record<string, string> = {}): NodeJS.ProcessEnv {
      const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BAMBOO_') && !k.startsWith('MARATHON_') && k !== 'BIND' && k !== 'CONFIG_PATH'));
      return {
        ...clean,
        MARATHON_ENDPOINT: sim.url,
        MARATHON_USE_EVENT_STREAM: 'false',
        BAMBOO_ZK_HOST: conn,
        BAMBOO_ZK_PATH: uniquePath('/rules'),
        BAMBOO_ZK_CONTROL_PATH: uniquePath('/control'),
        BAMBOO_LOG_LEVEL: 'info',
        STATSD_ENABLED: 'false',
        ...over,
      };
    }

    it('refuses to start on a non-loopback bind without a credential, naming the fix in one line', async () => {
      const port = await freePort();
      const zmq = await freePort();
      for (const bind of [`:${port}`, `0.0.0.0:${port}`]) {
        const p = startProcess(process.execPath, [BIN, 'api', '--bind', bind], { env: env({ BAMBOO_ZMQ_BIND: `tcp://127.0.0.1:${zmq}` }), cwd: PROJECT_ROOT });
        const code = await Promise.race([p.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 20000))]);
        if (code === 'running') await p.stop('SIGKILL');
        expect(code, p.output()).to.equal(2);
        const out = p.output().trim();
        expect(out.split('\n'), out).to.have.length(1);
        expect(out).to.include('BAMBOO_AUTH_TOKENS').and.include('BAMBOO_ALLOW_ANONYMOUS_WRITES');
      }
      // A bad token list is a config error too, and never echoes the tokens.
      const bad = startProcess(process.execPath, [BIN, 'api', '--bind', `:${port}`], { env: env({ BAMBOO_AUTH_TOKENS: '{"a":"same-token-0123456789","b":"same-token-0123456789"}' }), cwd: PROJECT_ROOT });
      expect(await bad.exited).to.equal(2);
      expect(bad.output()).to.include('"a" and "b" are the same').and.not.to.include('same-token-0123456789');
    });

    it('starts off loopback with the opt-out, warns, and says so in /status; starts with named tokens', async () => {
      const port = await freePort();
      const zmq = await freePort();
      const p = startProcess(process.execPath, [BIN, 'api', '--bind', `0.0.0.0:${port}`], {
        env: env({ BAMBOO_ALLOW_ANONYMOUS_WRITES: 'true', BAMBOO_ZMQ_BIND: `tcp://127.0.0.1:${zmq}` }),
        cwd: PROJECT_ROOT,
      });
      try {
        const st = await waitFor(async () => (await jsonCall('GET', `http://127.0.0.1:${port}/status`)).json, 'api up', 30000, 200);
        expect(st.auth).to.include({ anonymousWrites: true, allowAnonymousWrites: true });
        expect(p.output()).to.include('anonymous rule writes are allowed');
      } finally {
        await p.stop();
      }
      const token = 'named-token-0123456789';
      const q = startProcess(process.execPath, [BIN, 'api', '--bind', `0.0.0.0:${port}`], {
        env: env({ BAMBOO_AUTH_TOKENS: JSON.stringify({ ci: token }), BAMBOO_ZMQ_BIND: `tcp://127.0.0.1:${zmq}` }),
        cwd: PROJECT_ROOT,
      });
      try {
        const st = await waitFor(async () => (await jsonCall('GET', `http://127.0.0.1:${port}/status`)).json, 'api up', 30000, 200);
        expect(st.auth).to.include({ credentials: 1, anonymousWrites: false });
        expect((await jsonCall('PUT', `http://127.0.0.1:${port}/api/services//a`, { acl: 'path_beg /a' })).status).to.equal(401);
        expect((await jsonCall('PUT', `http://127.0.0.1:${port}/api/services//a`, { acl: 'path_beg /a' }, { Authorization: `Bearer ${token}` })).status).to.equal(201);
        expect(q.output()).not.to.include(token);
      } finally {
        await q.stop();
      }
    });

    it('stays within bounded memory under 30 parallel slow 15 MB callbacks, and cuts them at the request timeout', async function () {
      this.timeout(120000);
      const port = await freePort();
      const zmq = await freePort();
      const p = startProcess(process.execPath, [BIN, 'api', '--bind', `127.0.0.1:${port}`], {
        env: env({ BAMBOO_ZMQ_BIND: `tcp://127.0.0.1:${zmq}`, BAMBOO_HTTP_REQUEST_TIMEOUT_MS: '6000', BAMBOO_LOG_LEVEL: 'warn' }),
        cwd: PROJECT_ROOT,
      });
      try {
        await waitFor(async () => (await jsonCall('GET', `http://127.0.0.1:${port}/status`)).status > 0, 'api up', 30000, 200);
        const base = rssKb(p.pid);
        let peak = base;
        const sampler = setInterval(() => (peak = Math.max(peak, rssKb(p.pid))), 100);
        const SIZE = 15 * 1024 * 1024;
        const chunk = Buffer.alloc(1024 * 1024, 'a');
        const t0 = performance.now();
        // Each client sends 15 MB of a JSON string, all but the closing bytes, and then waits.
        const clients = Array.from({ length: 30 }, () => new Promise<{ cutMs: number; sent: number }>((resolve) => {
          const s = connect(port, '127.0.0.1');
          let sent = 0;
          s.on('error', () => undefined);
          s.on('close', () => resolve({ cutMs: performance.now() - t0, sent }));
          s.on('connect', async () => {
            s.write(`POST /api/marathon/event_callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${SIZE}\r\n\r\n{"plan":"`);
            while (sent < SIZE - 2 * chunk.length && !s.destroyed) {
              if (!s.write(chunk)) await new Promise((r) => s.once('drain', r).once('close', r));
              sent += chunk.length;
            }
          });
        }));
        const results = await Promise.all(clients);
        clearInterval(sampler);
        const growthMb = (peak - base) / 1024;
        if (process.env.TEST_LOG) console.log(`rss base ${base} kB, peak ${peak} kB, growth ${growthMb.toFixed(1)} MB; cut after ${results.map((r) => Math.round(r.cutMs)).join(',')} ms`);
        expect(growthMb).to.be.below(128);
        for (const r of results) expect(r.cutMs).to.be.below(30000);
        // Cut clients are the clients' fault: nothing logged as an api failure.
        expect(p.output()).not.to.include('request failed');
        // The api is still there and answering.
        expect((await jsonCall('GET', `http://127.0.0.1:${port}/status`)).status).to.be.oneOf([200, 503]);
      } finally {
        await p.stop();
      }
    });
  });

  describe('config of credentials', () => {
    const load = (env: Record<string, string>) => () => loadConfig({ env });
    it('reads named tokens from env as JSON and refuses bad names, short or spaced tokens and duplicates without echoing them', () => {
      const cfg = loadConfig({ env: { BAMBOO_AUTH_TOKENS: '{"deploy":"deploy-token-0123456789","ui-2.x":"ui-token-0123456789abc"}' } });
      expect(Object.keys(cfg.Bamboo.AuthTokens)).to.deep.equal(['deploy', 'ui-2.x']);
      const bad: Array<[Record<string, string>, RegExp]> = [
        [{ BAMBOO_AUTH_TOKENS: 'not json zz-hidden-zz-0123456789' }, /JSON object/],
        [{ BAMBOO_AUTH_TOKENS: '["zz-hidden-zz-0123456789"]' }, /JSON object/],
        [{ BAMBOO_AUTH_TOKENS: '{"":"zz-hidden-zz-0123456789"}' }, /name of entry number 1/],
        [{ BAMBOO_AUTH_TOKENS: '{"a b":"zz-hidden-zz-0123456789"}' }, /name of entry number 1/],
        [{ BAMBOO_AUTH_TOKENS: '{"a":"short"}' }, /token named "a"/],
        [{ BAMBOO_AUTH_TOKENS: '{"a":"zz hidden zz 0123456789"}' }, /token named "a"/],
        [{ BAMBOO_AUTH_TOKENS: '{"a":""}' }, /token named "a"/],
        [{ BAMBOO_AUTH_TOKENS: '{"a":"zz-hidden-zz-0123456789","b":"zz-hidden-zz-0123456789"}' }, /"a" and "b" are the same/],
        [{ BAMBOO_AUTH_TOKENS: '{"a":"zz-hidden-zz-0123456789"}', BAMBOO_AUTH_TOKEN: 'zz-hidden-zz-0123456789' }, /same as the token named "a"/],
        [{ BAMBOO_AUTH_TOKENS: '{"default":"zz-hidden-zz-0123456789"}', BAMBOO_AUTH_TOKEN: 'other-value-0123456789' }, /named "default"/],
        [{ BAMBOO_CALLBACK_SECRET: 'has/slash-0123456789' }, /CallbackSecret/],
      ];
      for (const [e, want] of bad) {
        let err: unknown;
        try {
          load(e)();
        } catch (x) {
          err = x;
        }
        expect(err, JSON.stringify(e)).to.be.instanceOf(ConfigError);
        const msg = (err as Error).message;
        expect(msg).to.match(want);
        expect(msg).not.to.include('zz-hidden-zz').and.not.to.include('zz hidden zz').and.not.to.include('short');
      }
    });
  });
});

/** VmRSS of a process in kB. */
function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Sends `head`, then one byte a second; resolves with how long until the server closed the socket. */
function slowClient(port: number, head: string): Promise<number> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s: Socket = connect(port, '127.0.0.1');
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearInterval(timer);
      resolve(performance.now() - t0);
    };
    s.on('error', () => undefined);
    s.on('close', done);
    s.on('data', () => undefined);
    s.on('connect', () => {
      if (head === '') return; // says nothing at all
      s.write(head);
      timer = setInterval(() => {
        if (!s.destroyed) s.write(head.startsWith('GET') && !head.includes('Content-Length') ? 'X-a: b\r\n' : 'a');
      }, 500);
    });
    // Give up after 20 s so a failing case fails instead of hanging.
    setTimeout(() => {
      if (!s.destroyed) s.destroy();
    }, 20000).unref();
  });
}
