import { expect } from 'chai';
import Fastify from 'fastify';
import { buildApp, type AppDeps } from '../../api/app.js';
import { sharedFor } from '../../api/quarantine-view.js';
import { servicesRoutes, type ServicesDeps } from '../../api/routes/services.js';
import { workersRoutes, type WorkersDeps } from '../../api/routes/workers.js';
import { loadConfig } from '../../common/config-load.js';
import { silentLogger } from '../../common/log.js';
import { nullMetrics } from '../../common/adapters/statsd/metrics.js';
import type { WorkerStatus } from '../../common/adapters/zookeeper/registrations.js';

// The api's routes are plugins, one per resource; the edge in api/app.ts learns them as they are
// registered. These run in-process (app.inject): no request here reaches ZooKeeper, Marathon or HAProxy.
describe('api routes (in-process)', () => {
  function edgeOnly(): ReturnType<typeof buildApp> {
    const cfg = loadConfig({ env: {} });
    // Only the edge answers these requests (404, 405): no handler runs, so no adapter is called.
    const unused = {} as never;
    const deps: AppDeps = { cfg, log: silentLogger(), metrics: nullMetrics, zk: unused, rules: unused, control: unused, snapshots: unused, intake: unused, publisher: unused, ruleCheck: unused };
    return buildApp(deps);
  }

  it('answers a wrong method with 405 and the methods the route at that path takes, and an unknown path with 404', async () => {
    const app = edgeOnly();
    const cases: Array<[method: 'GET' | 'PUT' | 'PATCH' | 'DELETE', path: string, allow: string | null]> = [
      ['PUT', '/', 'GET, HEAD'],
      ['DELETE', '/ui/app.js', 'GET, HEAD'],
      ['PATCH', '/status', 'GET, HEAD'],
      ['PUT', '/api/state?unredacted=1', 'GET, HEAD'],
      ['DELETE', '/api/workers', 'GET, HEAD'],
      ['PATCH', '/api/services', 'GET, HEAD, POST'],
      ['PATCH', '/api/services/group/app', 'GET, HEAD, PUT, DELETE'],
      ['PATCH', '/api/services/', 'GET, HEAD, PUT, DELETE'],
      ['GET', '/api/marathon/event_callback', 'POST'],
      ['GET', '/api/marathon/held/confirm', 'POST'],
      ['DELETE', '/api/audit', 'GET, HEAD'],
      ['PUT', '/api/audit/1765100000000-0000000042', 'GET, HEAD'],
      ['GET', '/api/nothing', null],
      ['GET', '/statusx', null],
      ['GET', '/ui', null],
    ];
    try {
      for (const [method, url, allow] of cases) {
        const r = await app.inject({ method, url });
        const path = url.split('?')[0];
        if (allow === null) {
          expect(r.statusCode, `${method} ${url}`).to.equal(404);
          expect(r.json(), `${method} ${url}`).to.deep.equal({ code: 'BAMBOO_NOT_FOUND', message: `no route ${method} ${path}; the API lives under /api (see docs/api.md)` });
        } else {
          expect(r.statusCode, `${method} ${url}`).to.equal(405);
          expect(r.headers.allow, `${method} ${url}`).to.equal(allow);
          expect(r.json(), `${method} ${url}`).to.deep.equal({ code: 'BAMBOO_METHOD_NOT_ALLOWED', message: `${method} is not allowed on ${path}; use ${allow}` });
        }
      }
    } finally {
      await app.close();
    }
  });

  it('runs the workers plugin alone with only its deps, and marks a worker behind on a rule or the snapshot', async () => {
    const worker = (name: string, snapshotVersion: number, rulesApplied: Record<string, number>, quarantined: string[] = []): WorkerStatus => ({
      name, host: name, snapshotVersion, configHash: 'h', rulesApplied, lastOutcome: 'reloaded', lastReason: '', lastOutcomeAt: 1, lastAppliedAt: 1, quarantined, startedAt: 1, mode: 'master',
    });
    const present = (status: WorkerStatus) => ({ state: 'live' as const, lastSeen: 1, status });
    const deps: WorkersDeps = {
      control: { snapshotVersion: async () => 7 },
      fleet: {
        read: async () => ({
          present: [present(worker('b', 7, { '/a': 2 })), present(worker('a', 6, { '/a': 3, '/gone': 1 })), present(worker('c', 7, { '/a': 3 }, ['/b']))],
          gone: [],
          counts: { live: 3, stale: 0, gone: 0 },
        }),
      },
      rulesCache: { get: async () => ({ versions: { '/a': 3, '/b': 1 } }) },
      staleAfterMs: 60000,
      goneRetentionMs: 86400000,
    };
    const app = Fastify();
    await app.register(workersRoutes, deps);
    try {
      const body = (await app.inject({ method: 'GET', url: '/api/workers' })).json() as { snapshotVersion: number; rules: number; workers: Array<WorkerStatus & { upToDate: boolean; snapshotUpToDate: boolean; staleRules: string[] }> };
      expect(body.snapshotVersion).to.equal(7);
      expect(body.rules).to.equal(2);
      expect(body.workers.map((w) => [w.name, w.snapshotUpToDate, w.staleRules, w.upToDate])).to.deep.equal([
        ['a', false, ['/b', '/gone'], false],
        ['b', true, ['/a', '/b'], false],
        ['c', true, [], true],
      ]);
    } finally {
      await app.close();
    }
  });

  it('adds to one record the quarantine of each worker that quarantines its app, and keeps the record alone otherwise', async () => {
    const record = { Id: '/shop', Acl: 'hdr(host) -i shop.example.com', Config: { Acl: 'hdr(host) -i shop.example.com' } };
    const base = { host: 'h', snapshotVersion: 1, configHash: 'h', rulesApplied: {}, lastOutcome: 'reloaded', lastReason: '', lastOutcomeAt: 1, lastAppliedAt: 1, startedAt: 1, mode: 'managed' };
    let workers: () => Promise<WorkerStatus[]> = async () => [
      { ...base, name: 'lb-2', quarantined: ['/shop'], quarantine: [{ appId: '/shop', level: 'rules', error: "unknown converter 'x'", fallback: 'last-good', lastGoodVersion: 2, ruleVersion: 3, since: 1000 }] },
      // An older worker: the id only.
      { ...base, name: 'lb-1', quarantined: ['/other', '/shop'] },
      { ...base, name: 'lb-3', quarantined: ['/other'], quarantine: [{ appId: '/other', level: 'app', error: 'port policy: ...' }] },
    ];
    const deps = {
      rules: { get: async (id: string) => (id === '/shop' ? { record, version: 3, format: 2 } : null) },
      log: silentLogger(),
      guards: { authWrite: async () => undefined },
      workers: () => workers(),
    } as unknown as ServicesDeps;
    const app = Fastify();
    await app.register(servicesRoutes, deps);
    try {
      const r = await app.inject({ method: 'GET', url: '/api/services//shop' });
      expect(r.statusCode).to.equal(200);
      expect(r.headers.etag).to.equal('"3"');
      expect(r.json()).to.deep.equal({
        ...record,
        quarantine: [
          { worker: 'lb-1', level: 'rules', error: "quarantined (no details in this worker's status record)" },
          { worker: 'lb-2', level: 'rules', error: "unknown converter 'x'", fallback: 'last-good', lastGoodVersion: 2, ruleVersion: 3, since: 1000 },
        ],
      });
      // No worker quarantines it: Bamboo's record, byte for byte.
      workers = async () => [{ ...base, name: 'lb-1', quarantined: [] }];
      expect((await app.inject({ method: 'GET', url: '/api/services//shop' })).body).to.equal(JSON.stringify(record));
      // The workers' records unreadable: the record is still the answer.
      workers = async () => {
        throw new Error('ZooKeeper unavailable');
      };
      const alone = await app.inject({ method: 'GET', url: '/api/services//shop' });
      expect([alone.statusCode, alone.body]).to.deep.equal([200, JSON.stringify(record)]);
    } finally {
      await app.close();
    }
  });

  it('reads the workers\' records for single-record reads at most once a second, and never keeps a failed read', async () => {
    let t = 0;
    let reads = 0;
    let fail = false;
    const read = sharedFor(1000, async () => {
      reads++;
      if (fail) throw new Error('ZooKeeper unavailable');
      return reads;
    }, () => t);
    expect(await Promise.all([read(), read(), read()])).to.deep.equal([1, 1, 1]);
    t = 999;
    expect(await read()).to.equal(1);
    t = 1000;
    expect(await read()).to.equal(2);
    t = 2000;
    fail = true;
    let failed = 0;
    await read().catch(() => failed++);
    fail = false;
    expect(await read()).to.equal(4);
    expect([failed, reads]).to.deep.equal([1, 4]);
  });
});
