/**
 * Rules are checked by HAProxy before they are acknowledged: the real api (real ZooKeeper, the
 * Marathon simulator) runs the real `haproxy -c` (Debian's 2.6) on a probe holding each rule written.
 * Written from a rule writer's side: every rule HAProxy would refuse is a 400 with HAProxy's reason
 * and never reaches ZooKeeper (so never a worker); unusual valid rules still pass; bulk writes do not
 * turn into a process per rule; and the api neither leaks its environment to HAProxy nor stores
 * unchecked rules when HAProxy cannot be run.
 */
import { expect } from 'chai';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runApi, type RunningApi } from '../../api/main.js';
import { RuleChecker } from '../../api/rule-check.js';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { createLogger, silentLogger, type Logger } from '../../common/log.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { queryEscape } from '../../common/adapters/zookeeper/zk-paths.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { jsonCall } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();

describe('rules checked by HAProxy before they are acknowledged (real api, haproxy -c, ZooKeeper)', function () {
  this.timeout(60000);
  let conn: string;
  let sim: MarathonSimulator;
  let zk: Zk;
  const apis: RunningApi[] = [];

  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
    sim = new MarathonSimulator({ heartbeatMs: 60000 });
    await sim.start();
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

  function config(over: Record<string, string | number | boolean> = {}): Readonly<Config> {
    return loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': conn,
        'Bamboo.Zookeeper.Path': uniquePath('/rules'),
        'Bamboo.Zookeeper.ControlPath': uniquePath('/control'),
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': sim.url,
        'Marathon.ResyncIntervalMs': 0,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
        ...over,
      },
    });
  }

  async function start(over: Record<string, string | number | boolean> = {}, logger: Logger = log): Promise<RunningApi & { cfg: Readonly<Config> }> {
    const cfg = config(over);
    const api = await runApi(cfg, logger, { bind: '127.0.0.1:0', intake: { subscriptionCheckMs: 60000 } });
    apis.push(api);
    return Object.assign(api, { cfg });
  }

  const stored = async (api: { cfg: Readonly<Config> }) => (await zk.children(api.cfg.Bamboo.Zookeeper.Path)).sort();
  const runs = async (api: RunningApi) => (await jsonCall('GET', `${api.url}/status`)).json.haproxy.runs as number;

  /** A stand-in for HAProxy: a shell script (it runs with the api's minimal environment). */
  function fakeHaproxy(body: string): string {
    const file = join(tempDir(), 'haproxy');
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  }

  const rejected: Array<[string, string, RegExp]> = [
    ['an unknown fetch', 'hdrr(host) -i x', /unknown fetch method 'hdrr'/],
    ['an unknown converter', 'hdr(host),lowerr -m str x', /unknown converter 'lowerr'/],
    ['a bad regex', 'path_reg ^/a(', /regex '\^\/a\(' is invalid \(error=missing closing parenthesis/],
    ['a wrong argument count', 'hdr(host,1,2,3) -i x', /ACL keyword 'hdr' : expected '\)' before ',2,3\)'/],
    ['a bad address', 'src 10.0.0.300/8', /'10\.0\.0\.300\/8' is not a valid IPv4 or IPv6 address/],
    ['a count that is not a number', 'hdr_cnt(host) many', /'many' is not a number/],
    ['an unknown match method', 'path -m prefix /a', /unknown matching method 'prefix'/],
    ['an unknown flag', 'path_beg -x /a', /'-x' is not a valid ACL option/],
    ['a negated block the template cannot hold', '!{ path_beg /x }', /missing fetch method in ACL expression '!\{'/],
  ];
  for (const [what, acl, reason] of rejected) {
    it(`answers 400 with HAProxy's reason for ${what} (${JSON.stringify(acl)}), and stores nothing`, async () => {
      const api = await start();
      const r = await jsonCall('POST', `${api.url}/api/services`, { id: '/bad/app', acl });
      expect(r.status, JSON.stringify(r.json)).to.equal(400);
      expect(r.json.code).to.equal('BAMBOO_ACL_REJECTED_BY_HAPROXY');
      expect(r.json.message).to.match(reason).and.match(/^HAProxy rejects this rule: /);
      expect(r.json.haproxy).to.be.an('array').that.is.not.empty;
      // Nothing that only names the probe: its file, line numbers or names.
      expect(r.json.message).not.to.match(/probe|\.cfg|:\d+\]|http-in|\[ALERT\]/);
      expect(await stored(api)).to.deep.equal([]);
    });
  }

  it('never probes a rule that would read a file, so no file content comes back in an answer', async () => {
    const secretFile = join(tempDir(), 'api.env');
    writeFileSync(secretFile, 'BAMBOO_AUTH_TOKEN=s3cr3t-token-91f2\nnot an address either\n');
    const api = await start();
    const before = await runs(api);
    for (const acl of [
      `src -f ${secretFile}`,
      `path_beg -i -f ${secretFile}`,
      `src "-f" ${secretFile}`,
      `hdr(host),map_ip(${secretFile}) -m found`,
      `src,map_ip(${secretFile},x) -m str x`,
    ]) {
      const r = await jsonCall('POST', `${api.url}/api/services`, { id: '/reads/file', acl });
      expect([r.status, r.json.code, r.json.reason], acl).to.deep.equal([400, 'BAMBOO_INVALID_ACL', 'ACL_FILE_ACCESS']);
      expect(JSON.stringify(r.json)).not.to.include('s3cr3t');
    }
    expect(await runs(api)).to.equal(before);
    expect(await stored(api)).to.deep.equal([]);
  });

  it('refuses the same rule on PUT, and keeps the stored record as it was', async () => {
    const api = await start();
    const ok = await jsonCall('PUT', `${api.url}/api/services//shop/web`, { acl: 'hdr(host) -i shop.example.com' });
    expect(ok.status).to.equal(201);
    const bad = await jsonCall('PUT', `${api.url}/api/services//shop/web`, { acl: 'hdr(host) -m reg shop(' }, { 'If-Match': '"0"' });
    expect([bad.status, bad.json.code]).to.deep.equal([400, 'BAMBOO_ACL_REJECTED_BY_HAPROXY']);
    const node = await zk.get(`${api.cfg.Bamboo.Zookeeper.Path}/${queryEscape('/shop/web')}`);
    expect(JSON.parse(node!.data.toString()).config.Acl).to.equal('hdr(host) -i shop.example.com');
    expect(node!.stat.version).to.equal(0);
  });

  const accepted = [
    'hdr_dom(host) -i example.com',
    'path_reg ^/api/v[0-9]+$',
    'src 10.0.0.0/8',
    'hdr(host) -i a.example.com || path_beg /a',
    'path_beg /a } || { path_beg /b',
    'hdr(host),lower -m end .example.com',
    'path_reg ^/x{2}$',
    'req.hdr(x-tenant) -m str "acme corp"',
    `path_beg ${Array.from({ length: 60 }, (_, i) => `/p${i}`).join(' ')}`,
  ];
  it('does not let an accepted rule vouch for a longer one of the same kind (HAProxy reads at most 64 words a line)', async () => {
    const api = await start();
    const words = (n: number) => `path_beg ${Array.from({ length: n }, (_, i) => `/p${i}`).join(' ')}`;
    expect((await jsonCall('PUT', `${api.url}/api/services//long/ok`, { acl: words(55) })).status).to.equal(201);
    const r = await jsonCall('PUT', `${api.url}/api/services//long/bad`, { acl: words(100) });
    expect([r.status, r.json.code]).to.deep.equal([400, 'BAMBOO_ACL_REJECTED_BY_HAPROXY']);
    expect(r.json.message).to.match(/too many words/);
    expect(await stored(api)).to.deep.equal([queryEscape('/long/ok')]);
  });

  it('accepts unusual valid rules, in both forms the template writes', async () => {
    const api = await start();
    for (const [i, acl] of accepted.entries()) {
      const r = await jsonCall('PUT', `${api.url}/api/services//ok/app${i}`, { acl });
      expect(r.status, `${acl}: ${JSON.stringify(r.json)}`).to.equal(201);
    }
    expect(await stored(api)).to.have.length(accepted.length);
  });

  it('checks 50 host rules that differ only in the host name with one HAProxy run', async () => {
    const api = await start();
    const before = await runs(api);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => jsonCall('POST', `${api.url}/api/services`, { id: `/bulk/app${i}`, acl: `hdr(host) -i app${i}.example.com` })),
    );
    expect(results.map((r) => r.status)).to.deep.equal(Array(50).fill(201));
    expect((await runs(api)) - before).to.equal(1);
    expect(await stored(api)).to.have.length(50);
    // A regex is compiled per pattern: a new regex is a new run.
    await jsonCall('POST', `${api.url}/api/services`, { id: '/bulk/re', acl: 'path_reg ^/r[0-9]+$' });
    expect((await runs(api)) - before).to.equal(2);
  });

  it('starts a handful of HAProxy runs for 1,000 rules of a few kinds (the checker alone)', async () => {
    const checker = new RuleChecker({ mode: 'haproxy', binary: 'haproxy', timeoutMs: 20000, log });
    const kinds = [(i: number) => `hdr(host) -i app${i}.example.com`, (i: number) => `hdr_dom(host) -i t${i}.example.org`, (i: number) => `path_beg -i /svc${i}/`];
    const verdicts = await Promise.all(Array.from({ length: 1000 }, (_, i) => checker.check(kinds[i % 3](i))));
    expect(verdicts.every((v) => v.ok)).to.equal(true);
    expect(checker.status().runs).to.equal(3);
  });

  it('never hands HAProxy the api environment (secrets), only PATH', async () => {
    const dump = join(tempDir(), 'env.txt');
    const bin = fakeHaproxy(`env > ${dump}\n[ "$1" = -v ] && echo 'HAProxy version 2.6 (fake)' && exit 0\necho "[ALERT]    (1) : config : parsing [$3:9] : unknown fetch method 'x'" >&2\nexit 1`);
    process.env.BAMBOO_TEST_LEAK = 'leaked-secret-6b1d';
    try {
      const api = await start({ 'HAProxy.Binary': bin });
      const r = await jsonCall('POST', `${api.url}/api/services`, { id: '/env/app', acl: 'x' });
      expect([r.status, r.json.code]).to.deep.equal([400, 'BAMBOO_ACL_REJECTED_BY_HAPROXY']);
    } finally {
      delete process.env.BAMBOO_TEST_LEAK;
    }
    const env = readFileSync(dump, 'utf8');
    expect(env).not.to.include('leaked-secret-6b1d');
    const names = env.split('\n').filter(Boolean).map((l) => l.split('=')[0]);
    // sh itself adds PWD (and may add SHLVL and _); nothing else comes from the api.
    expect(names.filter((n) => !['PATH', 'PWD', 'SHLVL', '_', 'OLDPWD'].includes(n))).to.deep.equal([]);
  });

  it('without HAProxy on the api host: one warning at start-up, /status says so, and writes are a 503 that stores nothing', async () => {
    let out = '';
    const dest = new Writable({ write(chunk, _enc, cb) { out += chunk.toString(); cb(); } });
    const api = await start({ 'HAProxy.Binary': '/nonexistent/bin/haproxy' }, createLogger({ level: 'info', destination: dest as never }));
    const warnings = out.split('\n').filter((l) => l.includes('HAProxy cannot be run on this api host'));
    expect(warnings).to.have.length(1);
    expect(JSON.parse(warnings[0])).to.include({ level: 40 });
    const status = await jsonCall('GET', `${api.url}/status`);
    expect(status.json.haproxy).to.include({ ruleCheck: 'haproxy', available: false });
    expect(status.json.haproxy.reason).to.match(/ENOENT/);
    expect(status.json.status).to.equal('degraded');
    const r = await jsonCall('POST', `${api.url}/api/services`, { id: '/nohaproxy/app', acl: 'hdr(host) -i a.example.com' });
    expect([r.status, r.json.code]).to.deep.equal([503, 'BAMBOO_RULE_CHECK_UNAVAILABLE']);
    expect(r.headers.get('retry-after')).to.equal('5');
    expect(await stored(api)).to.deep.equal([]);
  });

  it('with Bamboo.RuleCheck=off stores rules unchecked, and says so in /status', async () => {
    const api = await start({ 'HAProxy.Binary': '/nonexistent/bin/haproxy', 'Bamboo.RuleCheck': 'off' });
    const r = await jsonCall('POST', `${api.url}/api/services`, { id: '/off/app', acl: 'hdr(host) -i a.example.com' });
    expect(r.status).to.equal(201);
    const status = await jsonCall('GET', `${api.url}/status`);
    expect(status.json.haproxy).to.include({ ruleCheck: 'off', available: null, runs: 0 });
  });

  it('answers 503 and stores nothing when the check outlives Bamboo.RuleCheckTimeoutMs, and kills it', async () => {
    const pidFile = join(tempDir(), 'pid');
    const bin = fakeHaproxy(`[ "$1" = -v ] && echo 'HAProxy version 2.6 (fake)' && exit 0\necho $$ > ${pidFile}\nexec sleep 60`);
    const api = await start({ 'HAProxy.Binary': bin, 'Bamboo.RuleCheckTimeoutMs': 500 });
    const r = await jsonCall('POST', `${api.url}/api/services`, { id: '/slow/app', acl: 'hdr(host) -i a.example.com' });
    expect([r.status, r.json.code]).to.deep.equal([503, 'BAMBOO_RULE_CHECK_UNAVAILABLE']);
    expect(r.json.message).to.match(/timed out/);
    expect(await stored(api)).to.deep.equal([]);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => !existsSync(`/proc/${pid}`) || /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')), 'the hung check killed', 10000);
  });
});
