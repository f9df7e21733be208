/**
 * The audit trail of rule writes (GET /api/audit, Bamboo-Revert-Of): two api copies on one real
 * ZooKeeper, named credentials, HAProxy's rule check, restarts and retention.
 */
import { expect } from 'chai';
import { runApi, type RunningApi } from '../../api/main.js';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { createLogger, silentLogger } from '../../common/log.js';
import { serializeRecord } from '../../common/adapters/zookeeper/rules.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { ControlPaths, queryEscape } from '../../common/adapters/zookeeper/zk-paths.js';
import { jsonCall, type JsonResponse } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';

const log = process.env.TEST_LOG ? createLogger({ level: 'debug' }) : silentLogger();

const ALICE = 'alice-token-0123456789';
const BOB = 'bob-token-0123456789ab';
const TOKENS = JSON.stringify({ alice: ALICE, bob: BOB });

describe('audit trail of rule writes (two api copies, real ZooKeeper and HAProxy)', function () {
  this.timeout(60000);
  let conn: string;
  let zk: Zk;
  const apis: RunningApi[] = [];

  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
    zk = new Zk({ connectionString: conn, log });
    await zk.start();
  });
  after(async () => {
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
        // No Marathon is needed: only rules are written here.
        'Marathon.Endpoint': 'http://127.0.0.1:9',
        'Marathon.ResyncIntervalMs': 0,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
        'Bamboo.AuthTokens': TOKENS,
        ...over,
      },
    });
  }

  /** Another copy on the same ZooKeeper paths (and the same credentials). */
  function sameTree(cfg: Readonly<Config>, over: Record<string, string | number | boolean> = {}): Readonly<Config> {
    return config({ 'Bamboo.Zookeeper.Path': cfg.Bamboo.Zookeeper.Path, 'Bamboo.Zookeeper.ControlPath': cfg.Bamboo.Zookeeper.ControlPath, ...over });
  }

  async function start(cfg: Readonly<Config>, now?: () => number): Promise<RunningApi> {
    const api = await runApi(cfg, log, { bind: '127.0.0.1:0', intake: { subscriptionCheckMs: 60000 }, now });
    apis.push(api);
    return api;
  }

  const as = (token: string, extra: Record<string, string> = {}) => ({ Authorization: `Bearer ${token}`, ...extra });
  const put = (api: RunningApi, id: string, acl: string, headers: Record<string, string>): Promise<JsonResponse> =>
    jsonCall('PUT', `${api.url}/api/services/${encodeURIComponent(id)}`, { acl }, headers);
  const audit = (api: RunningApi, query = '', token = ALICE): Promise<JsonResponse> => jsonCall('GET', `${api.url}/api/audit${query}`, undefined, as(token));

  it('records writes by two named credentials through both copies, with who, from, versions and before and after, readable on either copy', async () => {
    const cfg = config();
    const a = await start(cfg);
    const b = await start(sameTree(cfg));
    expect((await put(a, '/team/app', 'path_beg -i /team/app', as(ALICE))).status).to.equal(201);
    expect((await put(b, '/team/app', 'hdr(host) -i app.example.com', as(BOB, { 'If-Match': '"0"' }))).status).to.equal(200);
    expect((await jsonCall('DELETE', `${b.url}/api/services//other`, undefined, as(BOB))).status).to.equal(404);
    expect((await put(b, '/other', 'path_beg -i /other', as(BOB))).status).to.equal(201);
    expect((await jsonCall('DELETE', `${a.url}/api/services//other`, undefined, as(ALICE))).status).to.equal(204);

    for (const api of [a, b]) {
      const r = await audit(api);
      expect(r.status).to.equal(200);
      const entries = r.json.entries as Array<Record<string, unknown>>;
      expect(entries.map((e) => [e.op, e.appId, e.who, e.versionBefore, e.versionAfter])).to.deep.equal([
        ['delete', '/other', 'alice', 0, null],
        ['create', '/other', 'bob', null, 0],
        ['update', '/team/app', 'bob', 0, 1],
        ['create', '/team/app', 'alice', null, 0],
      ]);
      expect(r.json.next).to.equal(null);
      const update = entries[2];
      expect(update.before).to.deep.equal({ Id: '/team/app', Acl: 'path_beg -i /team/app', Config: { Acl: 'path_beg -i /team/app' } });
      expect(update.after).to.deep.equal({ Id: '/team/app', Acl: 'hdr(host) -i app.example.com', Config: { Acl: 'hdr(host) -i app.example.com' } });
      expect(entries[0].before).to.deep.include({ Acl: 'path_beg -i /other' });
      expect(entries[0].after).to.equal(null);
      for (const e of entries) {
        expect(e.from).to.equal('127.0.0.1');
        expect(e.forwardedFor).to.equal(null);
        expect(e.at).to.be.a('number').within(Date.now() - 60000, Date.now() + 1000);
      }
    }
    // "Who changed the route of /team/app and what was it before": one filtered read.
    const history = await audit(b, `?app=${encodeURIComponent('/team/app')}&credential=bob`);
    expect(history.json.entries).to.have.length(1);
    expect(history.json.entries[0].before.Acl).to.equal('path_beg -i /team/app');
    const one = await audit(a, `/${history.json.entries[0].id}`);
    expect(one.status).to.equal(200);
    expect(one.json).to.deep.equal(history.json.entries[0]);
  });

  it('creates the audit node again when it is removed behind the api, and still records every write in it', async () => {
    const cfg = config();
    const api = await start(cfg);
    expect((await put(api, '/app', 'path_beg -i /app', as(ALICE))).status).to.equal(201);
    // An operator removes the whole trail: the api has seen the node and no longer reads it before a write.
    const root = new ControlPaths(cfg.Bamboo.Zookeeper.ControlPath).audit;
    for (const name of await zk.children(root)) await zk.remove(`${root}/${name}`);
    await zk.remove(root);
    expect(await zk.exists(root)).to.equal(null);
    expect((await put(api, '/app', 'path_beg -i /app2', as(BOB))).status).to.equal(200);
    expect(await zk.exists(root)).to.not.equal(null);
    for (const name of await zk.children(root)) await zk.remove(`${root}/${name}`);
    await zk.remove(root);
    expect((await jsonCall('DELETE', `${api.url}/api/services//app`, undefined, as(ALICE))).status).to.equal(204);
    for (const name of await zk.children(root)) await zk.remove(`${root}/${name}`);
    await zk.remove(root);
    expect((await put(api, '/new', 'path_beg -i /new', as(ALICE))).status).to.equal(201);
    const r = await audit(api);
    expect(r.json.entries.map((e: { op: string; appId: string; who: string }) => `${e.op} ${e.appId} by ${e.who}`)).to.deep.equal(['create /new by alice']);
    expect((await jsonCall('GET', `${api.url}/api/services`, undefined, as(ALICE))).json).to.have.keys(['/new']);
  });

  it('leaves no entry for a refused write: a stale If-Match, a rule HAProxy rejects, a missing credential', async () => {
    const api = await start(config());
    expect((await put(api, '/app', 'path_beg -i /app', as(ALICE))).status).to.equal(201);
    const stale = await put(api, '/app', 'path_beg -i /b', as(BOB, { 'If-Match': '"7"' }));
    expect(stale.status).to.equal(409);
    expect((await put(api, '/app', 'hdrr(host) -i x', as(BOB))).status).to.equal(400);
    expect((await put(api, '/app', 'path_beg -i /c', {})).status).to.equal(401);
    expect((await jsonCall('DELETE', `${api.url}/api/services//app`, undefined, as(BOB, { 'If-Match': '"3"' }))).status).to.equal(409);
    const r = await audit(api);
    expect(r.json.entries.map((e: { op: string; who: string }) => `${e.op} by ${e.who}`)).to.deep.equal(['create by alice']);
  });

  it('reverts through the checked write path: audited as a revert, refused when HAProxy rejects the old rule, when stale, or when it does not restore the entry', async () => {
    const cfg = config();
    const a = await start(cfg);
    const b = await start(sameTree(cfg));
    expect((await put(a, '/team/app', 'path_beg -i /team/app', as(ALICE))).status).to.equal(201);
    expect((await put(b, '/team/app', 'hdr(host) -i wrong.example.com', as(BOB))).status).to.equal(200);
    const [change] = (await audit(a, '?limit=1')).json.entries;
    expect(change).to.deep.include({ op: 'update', who: 'bob', versionAfter: 1 });

    // A revert must be conditional and must write back exactly the entry's "before".
    const unconditional = await put(a, '/team/app', change.before.Acl, as(ALICE, { 'Bamboo-Revert-Of': change.id }));
    expect(unconditional.status).to.equal(400);
    expect(unconditional.json.code).to.equal('BAMBOO_INVALID_PARAMETER');
    const other = await put(a, '/team/app', 'path_beg -i /elsewhere', as(ALICE, { 'Bamboo-Revert-Of': change.id, 'If-Match': '"1"' }));
    expect(other.status).to.equal(400);
    const unknown = await put(a, '/team/app', change.before.Acl, as(ALICE, { 'Bamboo-Revert-Of': '1-alice-000000000000-0000009999', 'If-Match': '"1"' }));
    expect(unknown.status).to.equal(404);
    expect(unknown.json.code).to.equal('BAMBOO_AUDIT_NOT_FOUND');
    const stale = await put(a, '/team/app', change.before.Acl, as(ALICE, { 'Bamboo-Revert-Of': change.id, 'If-Match': '"0"' }));
    expect(stale.status).to.equal(409);
    expect(stale.json.code).to.equal('BAMBOO_VERSION_CONFLICT');

    const revert = await put(a, '/team/app', change.before.Acl, as(ALICE, { 'Bamboo-Revert-Of': change.id, 'If-Match': '"1"' }));
    expect(revert.status).to.equal(200);
    expect(revert.json.Acl).to.equal('path_beg -i /team/app');
    const got = await jsonCall('GET', `${b.url}/api/services//team/app`);
    expect(got.json.Acl).to.equal('path_beg -i /team/app');
    const [reverted] = (await audit(b, '?limit=1', BOB)).json.entries;
    expect(reverted).to.deep.include({ op: 'revert', who: 'alice', revertOf: change.id, versionBefore: 1, versionAfter: 2, appId: '/team/app' });
    expect(reverted.before.Acl).to.equal('hdr(host) -i wrong.example.com');
    expect(reverted.after.Acl).to.equal('path_beg -i /team/app');

    // A rule an older Bamboo stored unchecked, then replaced through the api: putting it back passes
    // HAProxy's check like any write, and HAProxy rejects it.
    await zk.set(`${cfg.Bamboo.Zookeeper.Path}/${queryEscape('/team/app')}`, serializeRecord({ Id: '/team/app', Acl: 'hdrr(host) -i bad', Config: {} }));
    expect((await put(b, '/team/app', 'path_beg -i /team/app', as(BOB, { 'If-Match': '"3"' }))).status).to.equal(200);
    const [fix] = (await audit(b, '?limit=1')).json.entries;
    expect(fix.before.Acl).to.equal('hdrr(host) -i bad');
    const refused = await put(a, '/team/app', fix.before.Acl, as(ALICE, { 'Bamboo-Revert-Of': fix.id, 'If-Match': '"4"' }));
    expect(refused.status).to.equal(400);
    expect(refused.json.code).to.equal('BAMBOO_ACL_REJECTED_BY_HAPROXY');

    // A record too large for an entry (an older Bamboo's, with a big Config) is kept as its ACL: such
    // an entry cannot be reverted exactly, so it is not reverted at all.
    const big: Record<string, string> = { Acl: 'path_beg -i /team/app' };
    for (let i = 0; i < 40; i++) big[`K${i}`] = 'x'.repeat(1000);
    await zk.set(`${cfg.Bamboo.Zookeeper.Path}/${queryEscape('/team/app')}`, serializeRecord({ Id: '/team/app', Acl: 'path_beg -i /team/app', Config: big }));
    expect((await put(a, '/team/app', 'path_beg -i /team/app', as(ALICE, { 'If-Match': '"5"' }))).status).to.equal(200);
    const [cut] = (await audit(a, '?limit=1')).json.entries;
    expect(cut.truncated).to.equal(true);
    expect(cut.before).to.deep.equal({ Id: '/team/app', Acl: 'path_beg -i /team/app', Config: {} });
    const inexact = await put(a, '/team/app', 'path_beg -i /team/app', as(ALICE, { 'Bamboo-Revert-Of': cut.id, 'If-Match': '"6"' }));
    expect(inexact.status).to.equal(400);
    expect(inexact.json.message).to.match(/cannot be reverted exactly/);

    // Reverting a create deletes the rule (conditionally), and is audited too.
    const created = (await audit(a, `?app=${encodeURIComponent('/team/app')}`)).json.entries.at(-1);
    expect(created.op).to.equal('create');
    const undo = await jsonCall('DELETE', `${b.url}/api/services//team/app`, undefined, as(BOB, { 'Bamboo-Revert-Of': created.id, 'If-Match': '"6"' }));
    expect(undo.status).to.equal(204);
    const [last] = (await audit(a, '?limit=1')).json.entries;
    expect(last).to.deep.include({ op: 'revert', who: 'bob', revertOf: created.id, versionBefore: 6, versionAfter: null, after: null });
    expect((await audit(a)).json.entries.map((e: { op: string }) => e.op)).to.deep.equal(['revert', 'update', 'update', 'revert', 'update', 'create']);
  });

  it('records concurrent unconditional writes through two copies as one unbroken chain: each entry\'s before is what the previous one wrote', async () => {
    const cfg = config();
    const a = await start(cfg);
    const b = await start(sameTree(cfg));
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => put(i % 2 ? a : b, '/race', `path_beg -i /race${i}`, as(i % 3 ? ALICE : BOB))));
    expect(answers.map((r) => r.status).sort()).to.deep.equal([200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    const entries = ((await audit(a)).json.entries as Array<{ versionBefore: number | null; versionAfter: number; before: { Acl: string } | null; after: { Acl: string } }>).reverse();
    expect(entries.map((e) => e.versionAfter)).to.deep.equal([...Array(12).keys()]);
    for (let i = 1; i < entries.length; i++) {
      expect(entries[i].versionBefore).to.equal(entries[i - 1].versionAfter);
      expect(entries[i].before!.Acl).to.equal(entries[i - 1].after.Acl);
    }
    expect(entries[11].after.Acl).to.equal((await jsonCall('GET', `${a.url}/api/services//race`)).json.Acl);
  });

  it('keeps entries across an api restart', async () => {
    const cfg = config();
    const a = await start(cfg);
    expect((await put(a, '/kept', 'path_beg -i /kept', as(ALICE))).status).to.equal(201);
    expect((await put(a, '/kept', 'path_beg -i /kept2', as(BOB))).status).to.equal(200);
    await a.close();
    apis.splice(apis.indexOf(a), 1);
    const c = await start(sameTree(cfg));
    const r = await audit(c);
    expect(r.json.entries.map((e: { who: string; op: string }) => `${e.op} by ${e.who}`)).to.deep.equal(['update by bob', 'create by alice']);
    expect(r.json.entries[0].before.Acl).to.equal('path_beg -i /kept');
  });

  it('keeps at most Audit.MaxEntries entries, oldest pruned first, on every copy', async () => {
    const cfg = config({ 'Audit.MaxEntries': 3 });
    const a = await start(cfg);
    const b = await start(sameTree(cfg, { 'Audit.MaxEntries': 3 }));
    for (let i = 0; i < 6; i++) {
      expect((await put(i % 2 ? a : b, `/n${i}`, `path_beg -i /n${i}`, as(ALICE))).status).to.equal(201);
    }
    const shown = await audit(b);
    expect(shown.json.entries.map((e: { appId: string }) => e.appId)).to.deep.equal(['/n5', '/n4', '/n3']);
    const dir = `${cfg.Bamboo.Zookeeper.ControlPath}/audit`;
    await waitFor(async () => (await zk.children(dir)).length === 3, 'audit entries pruned to Audit.MaxEntries', 20000);
  });

  it('prunes and hides entries older than Audit.MaxAgeHours', async () => {
    let clock = Date.now();
    const cfg = config({ 'Audit.MaxAgeHours': 1 });
    const a = await start(cfg, () => clock);
    expect((await put(a, '/old', 'path_beg -i /old', as(ALICE))).status).to.equal(201);
    clock += 50 * 60000;
    expect((await put(a, '/newer', 'path_beg -i /newer', as(BOB))).status).to.equal(201);
    expect((await audit(a)).json.entries).to.have.length(2);
    clock += 20 * 60000; // /old is 70 minutes old now, /newer 20
    expect((await audit(a)).json.entries.map((e: { appId: string }) => e.appId)).to.deep.equal(['/newer']);
    expect((await put(a, '/newest', 'path_beg -i /newest', as(BOB))).status).to.equal(201);
    const dir = `${cfg.Bamboo.Zookeeper.ControlPath}/audit`;
    await waitFor(async () => (await zk.children(dir)).length === 2, 'the entry past Audit.MaxAgeHours pruned', 20000);
    expect((await audit(a)).json.entries.map((e: { appId: string }) => e.appId)).to.deep.equal(['/newest', '/newer']);
  });

  it('pages newest first by cursor, filters by time, needs a credential, and answers bad parameters with coded 400s', async () => {
    const api = await start(config());
    for (let i = 0; i < 5; i++) expect((await put(api, `/p${i}`, `path_beg -i /p${i}`, as(i < 3 ? ALICE : BOB))).status).to.equal(201);
    const first = await audit(api, '?limit=2');
    expect(first.json.entries.map((e: { appId: string }) => e.appId)).to.deep.equal(['/p4', '/p3']);
    const second = await audit(api, `?limit=2&cursor=${first.json.next}`);
    expect(second.json.entries.map((e: { appId: string }) => e.appId)).to.deep.equal(['/p2', '/p1']);
    const third = await audit(api, `?limit=2&cursor=${second.json.next}`);
    expect(third.json.entries.map((e: { appId: string }) => e.appId)).to.deep.equal(['/p0']);
    expect(third.json.next).to.equal(null);
    expect((await audit(api, '?credential=alice&limit=2')).json.entries.map((e: { appId: string }) => e.appId)).to.deep.equal(['/p2', '/p1']);

    const at = (await audit(api)).json.entries.map((e: { at: number }) => e.at) as number[];
    expect((await audit(api, `?until=${at[4] - 1}`)).json.entries).to.have.length(0);
    expect((await audit(api, `?since=${new Date(at[4]).toISOString()}`)).json.entries).to.have.length(5);
    expect((await audit(api, `?since=${Date.now() + 60000}`)).json.entries).to.have.length(0);

    for (const bad of ['?limit=0', '?limit=501', '?limit=x', '?since=yesterday', '?cursor=abc', '?until=2026-13-45']) {
      const r = await audit(api, bad);
      expect(r.status, bad).to.equal(400);
      expect(r.json.code, bad).to.equal('BAMBOO_INVALID_PARAMETER');
    }
    expect((await audit(api, '?app=bad%20id')).json.code).to.equal('BAMBOO_INVALID_APP_ID');
    expect((await jsonCall('GET', `${api.url}/api/audit`)).status).to.equal(401);
    expect((await audit(api, '', 'not-a-valid-token-000000')).status).to.equal(401);
    expect((await audit(api, '/1-alice-000000000000-0000000000')).json.code).to.equal('BAMBOO_AUDIT_NOT_FOUND');
  });

  it('records X-Forwarded-For only from a peer in Bamboo.TrustedProxies', async () => {
    const cfg = config();
    const untrusted = await start(cfg);
    const trusted = await start(sameTree(cfg, { 'Bamboo.TrustedProxies': '10.0.0.0/8, 127.0.0.1' }));
    expect((await put(untrusted, '/x', 'path_beg -i /x', as(ALICE, { 'X-Forwarded-For': '203.0.113.7' }))).status).to.equal(201);
    // The client is the right-most address no trusted proxy added; what it claimed before is ignored.
    expect((await put(trusted, '/x', 'path_beg -i /y', as(ALICE, { 'X-Forwarded-For': '198.51.100.1, 203.0.113.9, 10.1.2.3' }))).status).to.equal(200);
    const [viaProxy, direct] = (await audit(trusted)).json.entries;
    expect(direct).to.deep.include({ from: '127.0.0.1', forwardedFor: null });
    expect(viaProxy).to.deep.include({ from: '127.0.0.1', forwardedFor: '203.0.113.9' });
  });
});
