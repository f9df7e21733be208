import { expect } from 'chai';
import Fastify from 'fastify';
import { buildApp, type AppDeps } from '../../api/app.js';
import { workersRoutes, type WorkersDeps } from '../../api/routes/workers.js';
import { loadConfig } from '../../common/config.js';
import { silentLogger } from '../../common/log.js';
import { nullMetrics } from '../../common/metrics.js';
import type { WorkerStatus } from '../../common/snapshot.js';

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

  it('runs the workers plugin alone with only its two deps, and marks a worker behind on a rule or the snapshot', async () => {
    const worker = (name: string, snapshotVersion: number, rulesApplied: Record<string, number>, quarantined: string[] = []): WorkerStatus => ({
      name, host: name, snapshotVersion, configHash: 'h', rulesApplied, lastOutcome: 'reloaded', lastReason: '', lastOutcomeAt: 1, lastAppliedAt: 1, quarantined, startedAt: 1, mode: 'master',
    });
    const deps: WorkersDeps = {
      control: {
        workers: async () => [worker('b', 7, { '/a': 2 }), worker('a', 6, { '/a': 3, '/gone': 1 }), worker('c', 7, { '/a': 3 }, ['/b'])],
        snapshotVersion: async () => 7,
      },
      rulesCache: { get: async () => ({ versions: { '/a': 3, '/b': 1 } }) },
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
});
