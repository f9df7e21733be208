/**
 * ZooKeeper ACLs with `Bamboo.Zookeeper.Digest` (issue 15, F6 registration and F10 migration), from
 * the point of view of a client without the digest: everything bamboo creates is closed to it, and so
 * is everything an older Bamboo (Go) left world-writable once an api has started with the digest.
 * Real ZooKeeper; the api runs in-process without a reachable Marathon.
 */
import { expect } from 'chai';
import { Writable } from 'node:stream';
import { runApi, type RunningApi } from '../../api/main.js';
import type { AclStatus } from '../../api/zk-acl.js';
import { type Config } from '../../common/config.js';
import { loadConfig } from '../../common/config-load.js';
import { createLogger, silentLogger } from '../../common/log.js';
import { nullMetrics, type Metrics } from '../../common/adapters/statsd/metrics.js';
import { Zk } from '../../common/adapters/zookeeper/zk.js';
import { queryEscape } from '../../common/adapters/zookeeper/zk-paths.js';
import { isNoAuth } from '../../common/adapters/zookeeper/zk-errors.js';
import { waitFor } from '../../harness/process.js';
import { sharedZooKeeper, uniquePath } from '../../harness/zookeeper.js';

const DIGEST = 'bamboo:zk-secret';
const V2 = (acl: string) => Buffer.from(JSON.stringify({ version: '2', config: { Acl: acl } }));

describe('ZooKeeper ACLs with a digest (real ZooKeeper)', function () {
  this.timeout(60000);
  let conn: string;
  const closers: Array<() => Promise<unknown>> = [];
  before(async () => {
    conn = (await sharedZooKeeper()).connectionString;
  });
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function client(digest?: string): Promise<Zk> {
    const zk = new Zk({ connectionString: conn, digest, sessionTimeoutMs: 4000, log: silentLogger() });
    expect(await zk.start(10000)).to.equal(true);
    closers.push(() => zk.close());
    return zk;
  }

  function config(paths: { rules: string; control: string }, over: Record<string, string | number | boolean> = {}): Readonly<Config> {
    return loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': conn,
        'Bamboo.Zookeeper.Path': paths.rules,
        'Bamboo.Zookeeper.ControlPath': paths.control,
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'Bamboo.Zookeeper.Digest': DIGEST,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        'Marathon.Endpoint': 'http://127.0.0.1:9',
        'Marathon.ResyncIntervalMs': 0,
        'Marathon.TimeoutMs': 500,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
        ...over,
      },
    });
  }

  async function startApi(cfg: Readonly<Config>, opts: { metrics?: Metrics; log?: ReturnType<typeof createLogger> } = {}): Promise<RunningApi> {
    const api = await runApi(cfg, opts.log ?? silentLogger(), { bind: '127.0.0.1:0', metrics: opts.metrics, intake: { subscriptionCheckMs: 60000 } });
    closers.push(() => api.close());
    return api;
  }

  async function aclStatus(api: RunningApi): Promise<AclStatus> {
    const body = (await (await fetch(`${api.url}/status`)).json()) as { zookeeperAcl: AclStatus };
    return body.zookeeperAcl;
  }

  /** What an anonymous client's attempt gets: 'NO_AUTH', 'allowed', or another error. */
  async function attempt(fn: () => Promise<unknown>): Promise<string> {
    try {
      await fn();
      return 'allowed';
    } catch (err) {
      return isNoAuth(err) ? 'NO_AUTH' : (err as Error).message;
    }
  }

  /** Every node under `root` (itself included). */
  async function tree(zk: Zk, root: string): Promise<string[]> {
    const out = [root];
    for (const c of await zk.children(root)) out.push(...(await tree(zk, `${root}/${c}`)));
    return out;
  }

  it('secures rules an older Bamboo left world-writable: an anonymous client then gets NO_AUTH on every write', async () => {
    const legacy = uniquePath('/legacy');
    const paths = { rules: `${legacy}/state`, control: uniquePath('/bamboo-ts') };
    // What Bamboo (Go) leaves: the rules path and its records with ZooKeeper's default open ACL.
    const old = await client();
    await old.mkdirp(paths.rules);
    await old.create(`${paths.rules}/${queryEscape('/demo/shop/api')}`, V2('path_beg -i /shop'));
    await old.create(`${paths.rules}/${queryEscape('/demo/legacy-v1')}`, Buffer.from('path_beg -i /v1'));
    // And a control path an earlier run without a digest created, with a rogue registration in it.
    await old.mkdirp(`${paths.control}/publishers`);
    await old.create(`${paths.control}/publishers/left-over`, Buffer.from('{"id":"left-over","zmq":"tcp://127.0.0.1:1"}'));
    expect((await old.acl(paths.rules))!.acl).to.deep.equal(['world:anyone:31']);

    const gauges: Array<[string, number]> = [];
    const api = await startApi(config(paths), { metrics: { ...nullMetrics, gauge: (name, value) => gauges.push([name, value]) } });
    const status = await waitFor(async () => {
      const s = await aclStatus(api);
      return s.state === 'secured' ? s : null;
    }, 'the api to secure the nodes');
    expect(status!.secured, JSON.stringify(status)).to.be.at.least(5);
    expect(status!.unsecuredCount).to.equal(0);
    expect(gauges).to.deep.include(['zookeeper.acl.unsecured', 0]);

    const admin = await client(DIGEST);
    for (const path of [...(await tree(admin, paths.rules)), ...(await tree(admin, paths.control))]) {
      expect((await admin.acl(path))!.acl, path).to.deep.equal(admin.ownAcl);
    }

    const anon = await client();
    const outcomes = {
      'add a rule': await attempt(() => anon.create(`${paths.rules}/${queryEscape('/demo/web')}`, V2('always_true'))),
      'rewrite a rule': await attempt(() => anon.set(`${paths.rules}/${queryEscape('/demo/shop/api')}`, V2('always_true'))),
      'rewrite a V1 rule': await attempt(() => anon.set(`${paths.rules}/${queryEscape('/demo/legacy-v1')}`, Buffer.from('always_true'))),
      'delete a rule': await attempt(() => anon.remove(`${paths.rules}/${queryEscape('/demo/shop/api')}`)),
      'read a rule': await attempt(() => anon.get(`${paths.rules}/${queryEscape('/demo/shop/api')}`)),
      'reopen the acl': await attempt(() => anon.setOwnAcl(paths.rules)),
      'register a publisher': await attempt(() => anon.create(`${paths.control}/publishers/evil`, Buffer.from('{"zmq":"tcp://127.0.0.1:2"}'), 'ephemeral')),
      'replace the snapshot': await attempt(() => anon.create(`${paths.control}/snapshot`, Buffer.from('{}'))),
    };
    for (const [what, got] of Object.entries(outcomes)) expect(got, what).to.equal('NO_AUTH');

    // The api still reads and serves them.
    const services = (await (await fetch(`${api.url}/api/services`)).json()) as Record<string, { Acl: string }>;
    expect(services['/demo/shop/api'].Acl).to.equal('path_beg -i /shop');
    expect(services['/demo/legacy-v1'].Acl).to.equal('path_beg -i /v1');

    // A second start finds the marker: nothing to walk, nothing changed.
    await api.close();
    const again = await startApi(config(paths));
    const second = await waitFor(async () => {
      const s = await aclStatus(again);
      return s.state === 'secured' ? s : null;
    }, 'the second start to check');
    expect(second).to.include({ fromMarker: true, secured: 0, checked: 3 });
  });

  it('creates every node with the digest ACL, so an anonymous client cannot register a publisher', async () => {
    const paths = { rules: uniquePath('/rules'), control: uniquePath('/bamboo-ts') };
    const api = await startApi(config(paths));
    const admin = await client(DIGEST);
    await waitFor(async () => (await admin.children(`${paths.control}/publishers`)).length === 1, 'the registration');
    const put = await fetch(`${api.url}/api/services//demo/web`, { method: 'PUT', body: JSON.stringify({ acl: 'path_beg -i /web' }), headers: { 'content-type': 'application/json' } });
    expect(put.status).to.be.oneOf([200, 201]);
    await waitFor(async () => (await aclStatus(api)).state === 'secured', 'the acl check');
    const nodes = [...(await tree(admin, paths.rules)), ...(await tree(admin, paths.control))];
    expect(nodes.length).to.be.at.least(5);
    for (const path of nodes) expect((await admin.acl(path))!.acl, path).to.deep.equal(admin.ownAcl);
    expect(admin.ownAcl).to.have.length(1);
    expect(admin.ownAcl[0]).to.match(/^digest:bamboo:.+:31$/);

    const anon = await client();
    expect(await attempt(() => anon.create(`${paths.control}/publishers/evil`, Buffer.from('{"zmq":"tcp://127.0.0.1:2"}'), 'ephemeral'))).to.equal('NO_AUTH');
    const wrong = await client('bamboo:guess');
    expect(await attempt(() => wrong.create(`${paths.control}/publishers/evil`, Buffer.from('{"zmq":"tcp://127.0.0.1:2"}'), 'ephemeral'))).to.equal('NO_AUTH');
    expect(await admin.children(`${paths.control}/publishers`)).to.have.length(1);
  });

  it('reports a record it cannot secure (owned by another identity): an error line naming it, /status and a metric', async () => {
    const paths = { rules: uniquePath('/rules'), control: uniquePath('/bamboo-ts') };
    const old = await client();
    await old.mkdirp(paths.rules);
    await old.create(`${paths.rules}/${queryEscape('/open')}`, V2('path_beg -i /open'));
    const stranger = await client('someone-else:pw');
    const locked = `${paths.rules}/${queryEscape('/locked')}`;
    await stranger.create(locked, V2('path_beg -i /locked'));

    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const gauges: Array<[string, number]> = [];
    const api = await startApi(config(paths), {
      log: createLogger({ level: 'error', destination: sink }),
      metrics: { ...nullMetrics, gauge: (name, value) => gauges.push([name, value]) },
    });
    const status = await waitFor(async () => {
      const s = await aclStatus(api);
      return s.state === 'unsecured' ? s : null;
    }, 'the unsecured record to be reported');
    expect(status!.unsecured).to.deep.equal([locked]);
    expect(status!.unsecuredCount).to.equal(1);
    expect(gauges).to.deep.include(['zookeeper.acl.unsecured', 1]);
    expect(lines.some((l) => l.level === 50 && l.path === locked)).to.equal(true);
    // The rest was secured all the same; no marker, so the next start checks (and reports) again.
    const anon = await client();
    expect(await attempt(() => anon.set(`${paths.rules}/${queryEscape('/open')}`, V2('always_true')))).to.equal('NO_AUTH');
    const admin = await client(DIGEST);
    expect(await admin.get(`${paths.control}/acl-secured`)).to.equal(null);
  });
});
