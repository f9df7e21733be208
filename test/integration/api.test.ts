/**
 * The REST API of one api copy (and two copies sharing ZooKeeper), over real HTTP against real
 * ZooKeeper, real ZeroMQ, real StatsD and the Marathon simulator.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CALLBACK_BODY_FACTOR } from '../../api/routes/marathon.js';
import { advertisedZmq, parseBind, runApi, type RunningApi } from '../../api/main.js';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { ERROR_CODES, errorCodesTable } from '../../common/core/errors.js';
import { createLogger, silentLogger } from '../../common/log.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { queryEscape } from '../../common/adapters/zookeeper/zk-paths.js';
import { MarathonSimulator } from '../../harness/marathon-sim/index.js';
import { jsonCall, type JsonResponse } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/process.js';
import { listenHints } from '../support/hints.js';
import { startStatsd } from '../support/statsd.js';
import { sharedZooKeeper, startZooKeeper, uniquePath } from '../../harness/zookeeper.js';
import { readFileSync } from 'node:fs';

const pexec = promisify(execFile);
const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();

type Res = JsonResponse;

const call = (method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> => jsonCall(method, url, body, headers);

describe('REST API (real HTTP, ZooKeeper, ZeroMQ, Marathon simulator)', function () {
  this.timeout(30000);
  let conn: string;
  let sim: MarathonSimulator;
  let zk: Zk;
  const apis: RunningApi[] = [];

  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
    sim = new MarathonSimulator({ heartbeatMs: 60000 });
    await sim.start();
    sim.deployApp({
      id: '/ExampleAppGroup/app1',
      instances: 2,
      env: { BAMBOO_TCP_PORT: '1080', DB_PASSWORD: 'hunter2' },
      labels: { team: 'payments' },
    });
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
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': sim.url,
        'Marathon.ResyncIntervalMs': 0,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
        ...over,
      },
    });
  }

  async function start(over: Record<string, string | number | boolean> = {}, cfg = config(over)): Promise<RunningApi & { cfg: Readonly<Config> }> {
    const api = await runApi(cfg, log, { bind: '127.0.0.1:0', intake: { subscriptionCheckMs: 60000 } });
    apis.push(api);
    return Object.assign(api, { cfg });
  }

  async function stored(cfg: Readonly<Config>): Promise<string[]> {
    return (await zk.children(cfg.Bamboo.Zookeeper.Path)).sort();
  }

  it("runs Bamboo's documented curl examples verbatim", async () => {
    const api = await start();
    const base = api.url;
    const curl = async (...args: string[]) => {
      const { stdout } = await pexec('curl', ['-s', '-i', ...args]);
      const status = Number(/^HTTP\/[\d.]+ (\d+)/.exec(stdout)![1]);
      return { status, body: stdout.slice(stdout.indexOf('\r\n\r\n') + 4) };
    };
    const post = await curl('-X', 'POST', '-d', '{"id":"/ExampleAppGroup/app1","acl":"hdr(host) -i app-1.example.com"}', `${base}/api/services`);
    expect(post.status).to.equal(201);
    expect(JSON.parse(post.body)).to.deep.include({ Id: '/ExampleAppGroup/app1', Acl: 'hdr(host) -i app-1.example.com' });
    const node = await zk.get(`${api.cfg.Bamboo.Zookeeper.Path}/${queryEscape('/ExampleAppGroup/app1')}`);
    expect(JSON.parse(node!.data.toString())).to.deep.equal({ version: '2', config: { Acl: 'hdr(host) -i app-1.example.com' } });

    const list = await curl(`${base}/api/services`);
    expect(list.status).to.equal(200);
    expect(JSON.parse(list.body)).to.deep.equal({
      '/ExampleAppGroup/app1': { Id: '/ExampleAppGroup/app1', Acl: 'hdr(host) -i app-1.example.com', Config: { Acl: 'hdr(host) -i app-1.example.com' } },
    });

    const put = await curl('-X', 'PUT', '-d', '{"id":"/ExampleAppGroup/app1", "acl":"path_beg -i /group/app-1"}', `${base}/api/services//ExampleAppGroup/app1`);
    expect(put.status).to.equal(200);
    expect(JSON.parse(put.body).Acl).to.equal('path_beg -i /group/app-1');

    const state = await curl(`${base}/api/state`);
    expect(state.status).to.equal(200);
    const status = await curl(`${base}/status`);
    expect(status.status).to.equal(200);

    const del = await curl('-X', 'DELETE', `${base}/api/services//ExampleAppGroup/app1`);
    expect(del.status).to.equal(204);
    expect(await stored(api.cfg)).to.deep.equal([]);
    expect((await curl('-X', 'DELETE', `${base}/api/services//ExampleAppGroup/app1`)).status).to.equal(404);
  });

  it('reads one record with its ETag, by slash or percent-encoded id, and answers 404 for an unknown one', async () => {
    const api = await start();
    const created = await call('PUT', `${api.url}/api/services//group/web`, { acl: 'path_beg -i /web', config: { Weight: '3' } });
    expect(created.status).to.equal(201);
    expect(created.headers.get('etag')).to.equal('"0"');
    expect(created.json).to.deep.equal({ Id: '/group/web', Acl: 'path_beg -i /web', Config: { Acl: 'path_beg -i /web', Weight: '3' } });
    for (const path of ['/api/services//group/web', '/api/services/%2Fgroup%2Fweb', '/api/services/group/web']) {
      const r = await call('GET', api.url + path);
      expect(r.status, path).to.equal(200);
      expect(r.json.Id).to.equal('/group/web');
      expect(r.headers.get('etag')).to.equal('"0"');
    }
    const missing = await call('GET', `${api.url}/api/services//group/nope`);
    expect(missing.status).to.equal(404);
    expect(missing.json.code).to.equal('BAMBOO_SERVICE_NOT_FOUND');
  });

  it('lets the id in the URL win over the id in a PUT body, and answers 201 then 200', async () => {
    const api = await start();
    const first = await call('PUT', `${api.url}/api/services//a`, { id: '/b', acl: 'path_beg -i /a' });
    expect(first.status).to.equal(201);
    expect(first.json.Id).to.equal('/a');
    const again = await call('PUT', `${api.url}/api/services//a`, { Id: '/b', Acl: 'path_beg -i /a2' });
    expect(again.status).to.equal(200);
    expect(again.headers.get('etag')).to.equal('"1"');
    expect(await stored(api.cfg)).to.deep.equal([queryEscape('/a')]);
  });

  it("treats a POST of an existing id as an upsert (Bamboo's way to set a rule), conditional with If-Match, create-only with If-None-Match: *", async () => {
    const api = await start();
    const post = (acl: string, headers: Record<string, string> = {}) => call('POST', `${api.url}/api/services`, { id: '/p', acl }, headers);
    const first = await post('path_beg -i /p');
    expect([first.status, first.headers.get('etag'), first.headers.get('location')]).to.deep.equal([201, '"0"', '/api/services//p']);
    // A deploy pipeline POSTs the same rule on every deploy.
    const again = await post('path_beg -i /p');
    expect([again.status, again.headers.get('etag'), again.json.Acl]).to.deep.equal([200, '"1"', 'path_beg -i /p']);
    const changed = await post('path_beg -i /p2');
    expect([changed.status, changed.json.Acl]).to.deep.equal([200, 'path_beg -i /p2']);

    const exclusive = await post('path_beg -i /p3', { 'If-None-Match': '*' });
    expect([exclusive.status, exclusive.json.code, exclusive.json.current.Acl, exclusive.headers.get('etag')]).to.deep.equal([409, 'BAMBOO_SERVICE_EXISTS', 'path_beg -i /p2', '"2"']);
    const stale = await post('path_beg -i /p4', { 'If-Match': '"1"' });
    expect([stale.status, stale.json.code, stale.json.version]).to.deep.equal([409, 'BAMBOO_VERSION_CONFLICT', 2]);
    const fresh = await post('path_beg -i /p5', { 'If-Match': '"2"' });
    expect([fresh.status, fresh.headers.get('etag')]).to.deep.equal([200, '"3"']);
    const onlyNew = await call('POST', `${api.url}/api/services`, { id: '/q', acl: 'path_beg -i /q' }, { 'If-None-Match': '*' });
    expect(onlyNew.status).to.equal(201);
    const vanished = await call('POST', `${api.url}/api/services`, { id: '/never', acl: 'path_beg -i /n' }, { 'If-Match': '"0"' });
    expect([vanished.status, vanished.json.current]).to.deep.equal([409, null]);
    expect((await call('GET', `${api.url}/api/services//p`)).json.Acl).to.equal('path_beg -i /p5');
    expect(await stored(api.cfg)).to.deep.equal([queryEscape('/p'), queryEscape('/q')]);
  });

  it('ignores unknown body fields as Go did, names them in a Warning header, and matches known ones in any case', async () => {
    const api = await start();
    const r = await call('POST', `${api.url}/api/services`, { ID: '/w', aCl: 'path_beg -i /w', CONFIG: { Note: 'n' }, alc: 'typo', deployedBy: { ci: 42 } });
    expect(r.status, r.text).to.equal(201);
    expect(r.json).to.deep.equal({ Id: '/w', Acl: 'path_beg -i /w', Config: { Note: 'n', Acl: 'path_beg -i /w' } });
    expect(r.headers.get('warning')).to.equal('299 bamboo "unknown fields ignored: alc, deployedBy"');
    const clean = await call('PUT', `${api.url}/api/services//w`, { acl: 'path_beg -i /w2' });
    expect(clean.status).to.equal(200);
    expect(clean.headers.get('warning')).to.equal(null);
  });

  it('answers 409 with the current value for a stale If-Match', async () => {
    const api = await start();
    expect((await call('POST', `${api.url}/api/services`, { id: '/x', acl: 'path_beg -i /x' })).status).to.equal(201);

    const ok = await call('PUT', `${api.url}/api/services//x`, { acl: 'path_beg -i /x1' }, { 'If-Match': '"0"' });
    expect(ok.status).to.equal(200);
    const stale = await call('PUT', `${api.url}/api/services//x`, { acl: 'path_beg -i /x2' }, { 'If-Match': '"0"' });
    expect(stale.status).to.equal(409);
    expect(stale.json.code).to.equal('BAMBOO_VERSION_CONFLICT');
    expect(stale.json.current.Acl).to.equal('path_beg -i /x1');
    expect(stale.json.version).to.equal(1);
    expect(stale.headers.get('etag')).to.equal('"1"');
    const staleDelete = await call('DELETE', `${api.url}/api/services//x`, undefined, { 'If-Match': '"0"' });
    expect(staleDelete.status).to.equal(409);
    const exclusive = await call('PUT', `${api.url}/api/services//x`, { acl: 'path_beg -i /x3' }, { 'If-None-Match': '*' });
    expect(exclusive.status).to.equal(409);
    expect(exclusive.json.code).to.equal('BAMBOO_SERVICE_EXISTS');
    const gone = await call('PUT', `${api.url}/api/services//never`, { acl: 'path_beg -i /n' }, { 'If-Match': '"0"' });
    expect(gone.status).to.equal(409);
    expect(gone.json.current).to.equal(null);
    expect((await call('GET', `${api.url}/api/services//x`)).json.Acl).to.equal('path_beg -i /x1');
  });

  it('recreates the rules path if it was removed behind its back', async () => {
    const api = await start();
    expect((await call('PUT', `${api.url}/api/services//a`, { acl: 'path_beg -i /a' })).status).to.equal(201);
    await zk.remove(`${api.cfg.Bamboo.Zookeeper.Path}/${queryEscape('/a')}`);
    await zk.remove(api.cfg.Bamboo.Zookeeper.Path);
    expect((await call('PUT', `${api.url}/api/services//b`, { acl: 'path_beg -i /b' })).status).to.equal(201);
    await zk.remove(`${api.cfg.Bamboo.Zookeeper.Path}/${queryEscape('/b')}`);
    await zk.remove(api.cfg.Bamboo.Zookeeper.Path);
    expect((await call('POST', `${api.url}/api/services`, { id: '/c', acl: 'path_beg -i /c' })).status).to.equal(201);
    expect(await stored(api.cfg)).to.deep.equal([queryEscape('/c')]);
  });

  it('lists versions with ?versions=1 and keeps the Bamboo shape without it', async () => {
    const api = await start();
    await call('PUT', `${api.url}/api/services//v`, { acl: 'path_beg -i /v' });
    await call('PUT', `${api.url}/api/services//v`, { acl: 'path_beg -i /v2' });
    const plain = await call('GET', `${api.url}/api/services`);
    expect(plain.json['/v']).to.deep.equal({ Id: '/v', Acl: 'path_beg -i /v2', Config: { Acl: 'path_beg -i /v2' } });
    const withVersions = await call('GET', `${api.url}/api/services?versions=1`);
    expect(withVersions.json['/v'].Version).to.equal(1);
  });

  describe('bad input', () => {
    const LONG = 'x'.repeat(5000);
    // [name, method, path, body (string = raw), expected status, expected code, extra headers]
    const cases: Array<[string, string, string, unknown, number, string, Record<string, string>?]> = [
      ['an ACL with a newline', 'POST', '/api/services', { id: '/a', acl: 'path_beg /a\n  server evil 1.2.3.4:80' }, 400, 'BAMBOO_INVALID_ACL'],
      ['an ACL with a carriage return', 'PUT', '/api/services//a', { acl: 'path_beg /a\rx' }, 400, 'BAMBOO_INVALID_ACL'],
      ['an ACL with a NUL', 'PUT', '/api/services//a', { acl: 'path_beg /a\u0000' }, 400, 'BAMBOO_INVALID_ACL'],
      ['an ACL with an escape character', 'PUT', '/api/services//a', { acl: 'path_beg \u001b[31m' }, 400, 'BAMBOO_INVALID_ACL'],
      ['an empty ACL', 'PUT', '/api/services//a', { acl: '   ' }, 400, 'BAMBOO_INVALID_ACL'],
      ['a missing ACL', 'POST', '/api/services', { id: '/a' }, 400, 'BAMBOO_INVALID_ACL'],
      ['a 2,000-character ACL', 'PUT', '/api/services//a', { acl: 'x'.repeat(2000) }, 400, 'BAMBOO_INVALID_ACL'],
      ['an ACL that is a number', 'PUT', '/api/services//a', { acl: 42 }, 400, 'BAMBOO_INVALID_BODY'],
      ['an empty id in a POST', 'POST', '/api/services', { id: '', acl: 'path_beg /a' }, 400, 'BAMBOO_INVALID_APP_ID'],
      ['a relative id with a bad segment in a POST', 'POST', '/api/services', { id: 'a/../b', acl: 'path_beg /a' }, 400, 'BAMBOO_INVALID_APP_ID'],
      ['an id with a space', 'POST', '/api/services', { id: '/a b', acl: 'path_beg /a' }, 400, 'BAMBOO_INVALID_APP_ID'],
      ['an id with a ".." segment', 'PUT', '/api/services/%2Fa%2F..%2Fb', { acl: 'path_beg /a' }, 400, 'BAMBOO_INVALID_APP_ID'],
      ['an id with an empty segment', 'PUT', '/api/services//a//b', { acl: 'path_beg /a' }, 400, 'BAMBOO_INVALID_APP_ID'],
      ['an id with a newline (encoded)', 'PUT', '/api/services/%2Fa%0Ab', { acl: 'path_beg /a' }, 400, 'BAMBOO_INVALID_APP_ID'],
      ['a missing id', 'POST', '/api/services', { acl: 'path_beg /a' }, 400, 'BAMBOO_INVALID_BODY'],
      ['a Config value that is not a string', 'PUT', '/api/services//a', { acl: 'path_beg /a', config: { Weight: 3 } }, 400, 'BAMBOO_INVALID_CONFIG'],
      ['a Config value with a newline', 'PUT', '/api/services//a', { acl: 'path_beg /a', config: { Note: 'a\nb' } }, 400, 'BAMBOO_INVALID_CONFIG'],
      ['a Config key with a space', 'PUT', '/api/services//a', { acl: 'path_beg /a', config: { 'bad key': 'v' } }, 400, 'BAMBOO_INVALID_CONFIG'],
      ['Config that is not an object', 'PUT', '/api/services//a', { acl: 'path_beg /a', config: 'x' }, 400, 'BAMBOO_INVALID_CONFIG'],
      ['a routing key whose host is not a host name', 'PUT', '/api/services//a', { acl: 'path_beg /a', config: { HAPROXY_0_VHOST: 'shop example.com' } }, 400, 'BAMBOO_INVALID_LABEL'],
      ['a routing key with a path-like certificate', 'PUT', '/api/services//a', { acl: '', config: { HAPROXY_0_VHOST: 'a.example.com', HAPROXY_0_SSL_CERT: '../../etc/ssl/key.pem' } }, 400, 'BAMBOO_INVALID_LABEL'],
      ['a balance outside the allow-list', 'PUT', '/api/services//a', { acl: 'path_beg /a', config: { HAPROXY_0_BALANCE: 'hdr(x)' } }, 400, 'BAMBOO_INVALID_LABEL'],
      ['an empty ACL without routing keys', 'PUT', '/api/services//a', { acl: '', config: { Owner: 'team-a' } }, 400, 'BAMBOO_INVALID_ACL'],
      ['acl and Config.Acl that differ', 'PUT', '/api/services//a', { acl: 'path_beg /a', config: { Acl: 'path_beg /b' } }, 400, 'BAMBOO_INVALID_BODY'],
      ['a body that is an array', 'PUT', '/api/services//a', '[1,2]', 400, 'BAMBOO_INVALID_BODY'],
      ['a __proto__ field (prototype poisoning)', 'POST', '/api/services', '{"id":"/a","acl":"path_beg /a","__proto__":{"isAdmin":true}}', 400, 'BAMBOO_INVALID_BODY'],
      ['a constructor field nested in config', 'PUT', '/api/services//a', '{"acl":"path_beg /a","config":{"constructor":{"prototype":{}}}}', 400, 'BAMBOO_INVALID_BODY'],
      ['bad JSON', 'POST', '/api/services', '{"id": "/a", "acl": ', 400, 'BAMBOO_BAD_JSON'],
      ['an empty body', 'POST', '/api/services', '', 400, 'BAMBOO_BAD_JSON'],
      ['a body over Bamboo.MaxBodyBytes', 'PUT', '/api/services//a', { acl: 'path_beg /a', config: { Big: LONG.repeat(20) } }, 413, 'BAMBOO_BODY_TOO_LARGE'],
      ['a malformed If-Match', 'PUT', '/api/services//a', { acl: 'path_beg /a' }, 400, 'BAMBOO_INVALID_PARAMETER', { 'If-Match': 'yesterday' }],
      ['an unknown ?versions value', 'GET', '/api/services?versions=maybe', undefined, 400, 'BAMBOO_INVALID_PARAMETER'],
      ['an unknown route', 'GET', '/api/nothing', undefined, 404, 'BAMBOO_NOT_FOUND'],
      ['a wrong method on the collection', 'PATCH', '/api/services', '{}', 405, 'BAMBOO_METHOD_NOT_ALLOWED'],
      ['a DELETE on the collection', 'DELETE', '/api/services', undefined, 405, 'BAMBOO_METHOD_NOT_ALLOWED'],
      ['a GET of the callback', 'GET', '/api/marathon/event_callback', undefined, 405, 'BAMBOO_METHOD_NOT_ALLOWED'],
      ['a delete of an unknown id', 'DELETE', '/api/services//nobody', undefined, 404, 'BAMBOO_SERVICE_NOT_FOUND'],
    ];

    // One copy for the whole table (not closed by the outer afterEach).
    let api: RunningApi & { cfg: Readonly<Config> };
    before(async () => {
      const cfg = config({ 'Bamboo.MaxBodyBytes': 65536 });
      api = Object.assign(await runApi(cfg, log, { bind: '127.0.0.1:0' }), { cfg });
    });
    after(async () => {
      await api.close();
    });

    for (const [name, method, path, body, status, code, headers] of cases) {
      it(`rejects ${name} with ${status} ${code} and stores nothing`, async () => {
        const r = await call(method, api.url + path, body, headers ?? {});
        expect(r.status, r.text).to.equal(status);
        expect(r.json).to.be.an('object');
        expect(r.json.code).to.equal(code);
        expect(r.json.message).to.be.a('string').and.not.equal('');
        expect(Object.keys(ERROR_CODES)).to.include(code);
        if (status === 405) expect(r.headers.get('allow')).to.match(/[A-Z]/);
        expect(await stored(api.cfg)).to.deep.equal([]);
      });
    }

    it('stays up and serving after all of them', async () => {
      expect((await call('GET', `${api.url}/status`)).status).to.equal(200);
      expect((await call('PUT', `${api.url}/api/services//a`, { acl: 'path_beg -i /a' })).status).to.equal(201);
    });
  });

  it('reads V1 and V2 records written raw into ZooKeeper by Bamboo', async () => {
    const cfg = config();
    const base = cfg.Bamboo.Zookeeper.Path;
    await zk.mkdirp(base);
    await zk.create(`${base}/${queryEscape('/legacy')}`, Buffer.from('hdr(host) -i legacy.example.com'));
    await zk.create(`${base}/${queryEscape('/group/modern')}`, Buffer.from('{"version":"2","config":{"Acl":"path_beg -i /modern","Weight":"2"}}'));
    const api = await start({}, cfg);
    const r = await call('GET', `${api.url}/api/services`);
    expect(r.json).to.deep.equal({
      '/group/modern': { Id: '/group/modern', Acl: 'path_beg -i /modern', Config: { Acl: 'path_beg -i /modern', Weight: '2' } },
      '/legacy': { Id: '/legacy', Acl: 'hdr(host) -i legacy.example.com', Config: { Acl: 'hdr(host) -i legacy.example.com' } },
    });
    // A raw change by another writer is seen at once (the parent's versions moved).
    await zk.create(`${base}/${queryEscape('/late')}`, Buffer.from('path_beg -i /late'));
    expect(Object.keys((await call('GET', `${api.url}/api/services`)).json)).to.include('/late');
  });

  describe('auth (Bamboo.AuthToken)', () => {
    const TOKEN = 'tok-0123456789abcdef';

    it('requires the bearer token for writes, and not for reads', async () => {
      const api = await start({ 'Bamboo.AuthToken': TOKEN });
      const none = await call('POST', `${api.url}/api/services`, { id: '/a', acl: 'path_beg -i /a' });
      expect(none.status).to.equal(401);
      expect(none.json.code).to.equal('BAMBOO_UNAUTHORIZED');
      expect(none.headers.get('www-authenticate')).to.match(/^Bearer/);
      const wrong = await call('PUT', `${api.url}/api/services//a`, { acl: 'path_beg -i /a' }, { Authorization: 'Bearer nope' });
      expect(wrong.status).to.equal(401);
      expect(wrong.headers.get('www-authenticate')).to.include('invalid_token');
      const badBody = await call('PUT', `${api.url}/api/services//a`, { acl: 'x\ny' }, { Authorization: `Bearer ${TOKEN}x` });
      expect(badBody.status).to.equal(401);
      expect(await stored(api.cfg)).to.deep.equal([]);
      const ok = await call('PUT', `${api.url}/api/services//a`, { acl: 'path_beg -i /a' }, { Authorization: `Bearer ${TOKEN}` });
      expect(ok.status).to.equal(201);
      const del = await call('DELETE', `${api.url}/api/services//a`, undefined, { Authorization: 'Basic Zm9vOmJhcg==' });
      expect(del.status).to.equal(401);
      expect((await call('GET', `${api.url}/api/services`)).status).to.equal(200);
      expect((await call('GET', `${api.url}/api/services//a`)).status).to.equal(200);
      expect((await call('DELETE', `${api.url}/api/services//a`, undefined, { Authorization: `bearer ${TOKEN}` })).status).to.equal(204);
    });

    it('redacts Env and Labels in /api/state unless the token is given', async () => {
      const api = await start({ 'Bamboo.AuthToken': TOKEN });
      await waitFor(async () => (await call('GET', `${api.url}/api/state`)).status === 200, 'first snapshot');
      const redacted = await call('GET', `${api.url}/api/state`);
      const app = redacted.json.Apps.find((a: { Id: string }) => a.Id === '/ExampleAppGroup/app1');
      expect(app.Env).to.deep.equal({ BAMBOO_TCP_PORT: '***', DB_PASSWORD: '***' });
      expect(app.Labels).to.deep.equal({ team: '***' });
      expect(redacted.headers.get('x-bamboo-redacted')).to.equal('true');
      expect(redacted.text).not.to.include('hunter2');
      const asked = await call('GET', `${api.url}/api/state?unredacted=1`);
      expect(asked.status).to.equal(401);
      const wrong = await call('GET', `${api.url}/api/state`, undefined, { Authorization: 'Bearer nope' });
      expect(wrong.status).to.equal(401);
      const full = await call('GET', `${api.url}/api/state`, undefined, { Authorization: `Bearer ${TOKEN}` });
      const fullApp = full.json.Apps.find((a: { Id: string }) => a.Id === '/ExampleAppGroup/app1');
      expect(fullApp.Env.DB_PASSWORD).to.equal('hunter2');
      expect(fullApp.Labels.team).to.equal('payments');
      expect(full.headers.get('x-bamboo-redacted')).to.equal('false');
    });

    it('sizes the server slots in /api/state as a worker with the same settings does', async () => {
      const sizes = async (over: Record<string, string | number | boolean>) => {
        const api = await start(over);
        await waitFor(async () => (await call('GET', `${api.url}/api/state`)).status === 200, 'first snapshot');
        const app = (await call('GET', `${api.url}/api/state`)).json.Apps.find((a: { Id: string }) => a.Id === '/ExampleAppGroup/app1');
        return [app.Tasks.length, app.Slots.length];
      };
      const [tasks, dynamic] = await sizes({});
      expect(tasks).to.be.above(0);
      expect(dynamic, 'HAProxy.DynamicServers (default): one slot per task').to.equal(tasks);
      const [, spare] = await sizes({ 'HAProxy.DynamicServers': false });
      expect(spare, 'spare slots without it').to.be.above(tasks);
    });

    it('without any token, redacts always: ?unredacted=1 is a 403, whoever asks', async () => {
      const api = await start();
      await waitFor(async () => (await call('GET', `${api.url}/api/state`)).status === 200, 'first snapshot');
      const redacted = await call('GET', `${api.url}/api/state`);
      expect(redacted.text).not.to.include('hunter2');
      for (const headers of [{}, { Authorization: 'Bearer anything-at-all-0123' }] as Array<Record<string, string>>) {
        const asked = await call('GET', `${api.url}/api/state?unredacted=1`, undefined, headers);
        expect(asked.status).to.equal(403);
        expect(asked.json.code).to.equal('BAMBOO_FORBIDDEN');
        expect(asked.text).not.to.include('hunter2');
      }
    });
  });

  it('serves the template data with the rules, from the cached snapshot', async () => {
    const api = await start();
    await call('PUT', `${api.url}/api/services//ExampleAppGroup/app1`, { acl: 'hdr(host) -i app-1.example.com' });
    await waitFor(async () => (await call('GET', `${api.url}/api/state`)).status === 200, 'first snapshot');
    const before = sim.countRequests('/v2/apps');
    const r = await call('GET', `${api.url}/api/state`);
    await call('GET', `${api.url}/api/state`);
    expect(sim.countRequests('/v2/apps')).to.equal(before);
    const app = r.json.Apps.find((a: { Id: string }) => a.Id === '/ExampleAppGroup/app1');
    expect(app.Tasks).to.have.length(2);
    expect(app.EscapedId).to.equal('::ExampleAppGroup::app1');
    expect(r.json.Services['/ExampleAppGroup/app1'].Acl).to.equal('hdr(host) -i app-1.example.com');
    expect(Number(r.headers.get('x-bamboo-snapshot-version'))).to.be.at.least(0);
  });

  it('shows the worker fleet and whether each worker is up to date', async () => {
    const api = await start();
    await call('PUT', `${api.url}/api/services//ExampleAppGroup/app1`, { acl: 'path_beg -i /app1' });
    await waitFor(async () => (await call('GET', `${api.url}/api/state`)).status === 200, 'first snapshot');
    const control = api.cfg.Bamboo.Zookeeper.ControlPath;
    const snapVersion = (await zk.exists(`${control}/snapshot`))!.version;
    const worker = (name: string, snapshotVersion: number, rulesApplied: Record<string, number>) => ({
      name, host: 'h', snapshotVersion, configHash: 'abc', rulesApplied, lastOutcome: 'reloaded', lastReason: '',
      lastOutcomeAt: 1, lastAppliedAt: 1, quarantined: [], startedAt: 1, mode: 'managed',
    });
    await zk.mkdirp(`${control}/workers`);
    await zk.create(`${control}/workers/w1`, Buffer.from(JSON.stringify(worker('w1', snapVersion, { '/ExampleAppGroup/app1': 0 }))));
    await zk.create(`${control}/workers/w2`, Buffer.from(JSON.stringify(worker('w2', snapVersion - 1, {}))));
    const r = await call('GET', `${api.url}/api/workers`);
    expect(r.status).to.equal(200);
    expect(r.json.snapshotVersion).to.equal(snapVersion);
    const [w1, w2] = r.json.workers;
    expect(w1).to.deep.include({ name: 'w1', upToDate: true, snapshotUpToDate: true, rulesUpToDate: true });
    expect(w2).to.deep.include({ name: 'w2', upToDate: false, snapshotUpToDate: false, rulesUpToDate: false });
    expect(w2.staleRules).to.deep.equal(['/ExampleAppGroup/app1']);
  });

  it('publishes a rules hint on every change', async () => {
    const api = await start();
    const hints = await listenHints(api);
    try {
      await call('PUT', `${api.url}/api/services//hinted`, { acl: 'path_beg -i /h' });
      await call('DELETE', `${api.url}/api/services//hinted`);
      await waitFor(() => hints.all.filter((h) => h.kind === 'rules').length >= 2, 'two rules hints');
      const rules = hints.all.filter((h) => h.kind === 'rules');
      expect(rules.map((h) => h.appId)).to.deep.equal(['/hinted', '/hinted']);
      expect(rules[0].publisher).to.equal(api.id);
    } finally {
      hints.close();
    }
  });

  it('registers itself as a publisher in ZooKeeper and unregisters on close', async () => {
    const api = await start();
    const path = `${api.cfg.Bamboo.Zookeeper.ControlPath}/publishers/${api.id}`;
    const rec = JSON.parse((await zk.get(path))!.data.toString());
    expect(rec.zmq).to.match(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(rec.http).to.equal(api.url);
    await api.close();
    await api.close();
    expect(await zk.get(path)).to.equal(null);
  });

  it('serves the web UI page at / and its files under /ui/, and nothing else from disk', async () => {
    const api = await start();
    const r = await call('GET', `${api.url}/`);
    expect(r.status).to.equal(200);
    expect(r.headers.get('content-type')).to.include('text/html');
    const refs = [...r.text.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]);
    for (const ref of refs) {
      const f = await call('GET', api.url + ref);
      expect(f.status, ref).to.equal(200);
      expect(f.headers.get('content-type'), ref).to.match(/text\/(javascript|css)/);
    }
    for (const bad of ['/ui/../main.ts', '/ui/%2E%2E%2Fmain.ts', '/ui/.hidden.js', '/ui/nope.js', '/ui/app.ts']) {
      const f = await call('GET', api.url + bad);
      expect(f.status, bad).to.equal(404);
      expect(f.json.code).to.equal('BAMBOO_NOT_FOUND');
    }
  });

  it('takes a Marathon callback of several MB by its type alone, and refuses a body that is not a JSON object', async () => {
    const api = await start();
    const apps = Array.from({ length: 5000 }, (_, i) => ({ id: `/big/app-${i}`, env: { PAD: 'p'.repeat(400) } }));
    const big = JSON.stringify({ plan: { original: { apps }, target: { apps } }, eventType: 'deployment_info' });
    expect(big.length).to.be.greaterThan(4_000_000);
    const ok = await call('POST', `${api.url}/api/marathon/event_callback`, big, { 'content-type': 'application/json' });
    expect(ok.status, ok.text).to.equal(202);
    expect(ok.json).to.deep.equal({ accepted: true, eventType: 'deployment_info' });
    const noType = await call('POST', `${api.url}/api/marathon/event_callback`, { something: 'else' });
    expect(noType.json).to.deep.equal({ accepted: true, eventType: 'unknown' });
    for (const bad of ['[1,2]', 'not json', '"text"']) {
      const r = await call('POST', `${api.url}/api/marathon/event_callback`, bad, { 'content-type': 'application/json' });
      expect(r.status, bad).to.equal(400);
      expect(r.json.code, bad).to.equal('BAMBOO_BAD_JSON');
    }
  });

  it('refuses a Marathon callback over CALLBACK_BODY_FACTOR times MaxBodyBytes with 413, and a rule over MaxBodyBytes', async () => {
    const api = await start({ 'Bamboo.MaxBodyBytes': 1024 });
    const limit = 1024 * CALLBACK_BODY_FACTOR;
    const within = JSON.stringify({ eventType: 'status_update_event', pad: 'p'.repeat(limit - 100) });
    expect((await call('POST', `${api.url}/api/marathon/event_callback`, within, { 'content-type': 'application/json' })).status).to.equal(202);
    const over = JSON.stringify({ eventType: 'status_update_event', pad: 'p'.repeat(limit + 10) });
    const r = await call('POST', `${api.url}/api/marathon/event_callback`, over, { 'content-type': 'application/json' });
    expect(r.status).to.equal(413);
    expect(r.json.code).to.equal('BAMBOO_BODY_TOO_LARGE');
    const rule = await call('PUT', `${api.url}/api/services//big`, { acl: 'path_beg -i /big', config: { Pad: 'p'.repeat(1024) } });
    expect(rule.status).to.equal(413);
  });

  it('answers in-process through app.inject as well', async () => {
    const api = await start();
    const r = await api.app.inject({ method: 'POST', url: '/api/services', payload: { id: '/injected', acl: 'path_beg -i /i' } });
    expect(r.statusCode).to.equal(201);
    const g = await api.app.inject({ method: 'GET', url: '/api/services//injected' });
    expect(g.json().Acl).to.equal('path_beg -i /i');
  });

  it('sends events, API errors, fetches and publishes to StatsD', async () => {
    const statsd = await startStatsd();
    try {
      const api = await start({ 'StatsD.Enabled': true, 'StatsD.Host': statsd.host, 'StatsD.Prefix': 'bt.' });
      await call('PUT', `${api.url}/api/services//s`, { acl: 'bad\nacl' });
      await call('POST', `${api.url}/api/marathon/event_callback`, { eventType: 'status_update_event', appId: '/x' });
      await call('PUT', `${api.url}/api/services//s`, { acl: 'path_beg -i /s' });
      await waitFor(async () => {
        const c = await statsd.counters();
        return c['bt.api.errors.BAMBOO_INVALID_ACL'] === 1 && c['bt.marathon.events.status_update_event'] === 1 && c['bt.publish.rules'] >= 1 && c['bt.marathon.fetch.ok'] >= 1;
      }, 'statsd counters');
      const timers = await statsd.timers();
      expect(timers['bt.marathon.fetch.duration']).to.be.an('array').that.is.not.empty;
    } finally {
      await statsd.stop();
    }
  });

  it('documents every error code in docs/api.md', () => {
    const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
    expect(doc).to.include(errorCodesTable());
  });

  describe('two copies on one ZooKeeper', () => {
    it("see each other's writes, and a stale If-Match loses with 409", async () => {
      const cfg = config();
      const a = await start({}, cfg);
      const b = await start({}, cfg);
      const created = await call('PUT', `${a.url}/api/services//shared`, { acl: 'path_beg -i /s1' });
      expect(created.status).to.equal(201);
      const fromB = await call('GET', `${b.url}/api/services`);
      expect(fromB.json['/shared'].Acl).to.equal('path_beg -i /s1');
      const readA = await call('GET', `${a.url}/api/services//shared`);
      const readB = await call('GET', `${b.url}/api/services//shared`);
      expect(readA.headers.get('etag')).to.equal(readB.headers.get('etag'));
      const etag = readA.headers.get('etag')!;
      const [ra, rb] = await Promise.all([
        call('PUT', `${a.url}/api/services//shared`, { acl: 'path_beg -i /from-a' }, { 'If-Match': etag }),
        call('PUT', `${b.url}/api/services//shared`, { acl: 'path_beg -i /from-b' }, { 'If-Match': etag }),
      ]);
      expect([ra.status, rb.status].sort()).to.deep.equal([200, 409]);
      const winner = ra.status === 200 ? 'path_beg -i /from-a' : 'path_beg -i /from-b';
      const loser = ra.status === 409 ? ra : rb;
      expect(loser.json.current.Acl).to.equal(winner);
      expect((await call('GET', `${a.url}/api/services`)).json['/shared'].Acl).to.equal(winner);
      expect((await call('GET', `${b.url}/api/services`)).json['/shared'].Acl).to.equal(winner);
      await call('DELETE', `${b.url}/api/services//shared`);
      expect((await call('GET', `${a.url}/api/services`)).json).to.deep.equal({});
    });
  });

  describe('ZooKeeper loss', () => {
    it('starts without ZooKeeper, answers 503 on /status and writes, and recovers', async function () {
      this.timeout(60000); // a ZooKeeper of its own, started and restarted: slow on a loaded machine
      const own = await startZooKeeper();
      try {
        const node = own.nodes[0];
        await node.stop();
        const cfg = config({ 'Bamboo.Zookeeper.Host': own.connectionString });
        const api = await runApi(cfg, log, { bind: '127.0.0.1:0', zkWaitMs: 300 });
        apis.push(api);
        const down = await call('GET', `${api.url}/status`);
        expect(down.status).to.equal(503);
        expect(down.json.zookeeper.connected).to.equal(false);
        const write = await call('PUT', `${api.url}/api/services//z`, { acl: 'path_beg -i /z' });
        expect(write.status).to.equal(503);
        expect(write.json.code).to.equal('BAMBOO_ZK_UNAVAILABLE');
        await node.start();
        await waitFor(async () => (await call('GET', `${api.url}/status`)).status === 200, 'recovery', 40000, 100);
        expect((await call('PUT', `${api.url}/api/services//z`, { acl: 'path_beg -i /z' })).status).to.equal(201);
      } finally {
        await own.stop();
      }
    });
  });

  it('parses bind addresses and advertises a reachable ZeroMQ address', () => {
    expect(parseBind(':8000')).to.deep.equal({ host: '0.0.0.0', port: 8000 });
    expect(parseBind('127.0.0.1:0')).to.deep.equal({ host: '127.0.0.1', port: 0 });
    expect(parseBind('[::1]:80')).to.deep.equal({ host: '::1', port: 80 });
    expect(() => parseBind('8000')).to.throw(/host:port/);
    expect(advertisedZmq('tcp://0.0.0.0:5556', 'lb.example')).to.equal('tcp://lb.example:5556');
    expect(advertisedZmq('tcp://127.0.0.1:4000', '')).to.equal('tcp://127.0.0.1:4000');
    expect(advertisedZmq('tcp://[::]:5556', '')).not.to.include('[::]');
  });

  it('picks the ports it was told: a free one for 127.0.0.1:0 and a given one', async () => {
    const port = await freePort();
    const api = await runApi(config(), log, { bind: `127.0.0.1:${port}` });
    apis.push(api);
    expect(api.url).to.equal(`http://127.0.0.1:${port}`);
  });
});
