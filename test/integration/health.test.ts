/**
 * Health for schedulers, seen as Marathon or a container runtime sees it: liveness (`/healthz`) stays
 * 200 through a ZooKeeper outage, so no copy is killed for what a restart cannot fix; readiness
 * (`/readyz`) and, on the api, `/status` say 503 while ZooKeeper is away; a worker whose HAProxy is not
 * serving is not ready. Real ZooKeeper (through a partition relay), HAProxy and ZeroMQ.
 */
import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import { runApi, type RunningApi } from '../../api/main.js';
import { loadConfig } from '../../common/config-load.js';
import { silentLogger } from '../../common/log.js';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import { jsonCall, type JsonResponse } from '../../harness/http.js';
import { waitFor } from '../../harness/process.js';
import { partition, sharedZooKeeper, uniquePath, type Partition } from '../../harness/zookeeper.js';
import { FakeApi, marathonApp, testLogger, testSetup, workerConfig } from '../worker-fixtures.js';

const log = silentLogger();
const get = (url: string): Promise<JsonResponse> => jsonCall('GET', url);

describe('health for schedulers: /healthz (liveness) apart from /readyz (readiness)', function () {
  this.timeout(90000);
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function relay(): Promise<Partition> {
    const p = await partition((await sharedZooKeeper()).connectionString);
    cleanups.push(() => p.close());
    return p;
  }

  /** Asserts liveness answers 200 with its tiny body. */
  async function live(base: string): Promise<void> {
    const r = await get(`${base}/healthz`);
    expect(r.status, `${base}/healthz`).to.equal(200);
    expect(r.json).to.deep.equal({ live: true });
  }

  it('api: a ZooKeeper outage makes /readyz and /status 503 while /healthz stays 200, and readiness comes back by itself', async () => {
    const p = await relay();
    const cfg = loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': p.connectionString,
        'Bamboo.Zookeeper.Path': uniquePath('/rules'),
        'Bamboo.Zookeeper.ControlPath': uniquePath('/control'),
        'Bamboo.Zookeeper.SessionTimeoutMs': 4000,
        'ZeroMQ.PublishBind': 'tcp://127.0.0.1:*',
        // Marathon is unreachable on purpose: readiness is about ZooKeeper, liveness about nothing.
        'Marathon.Endpoint': 'http://127.0.0.1:9',
        'Marathon.ResyncIntervalMs': 0,
        'Bamboo.Endpoint': 'http://127.0.0.1:9',
      },
    });
    const api: RunningApi = await runApi(cfg, log, { bind: '127.0.0.1:0', intake: { subscriptionCheckMs: 60000 } });
    cleanups.push(() => api.close());

    await waitFor(async () => (await get(`${api.url}/readyz`)).status === 200, 'the api to be ready', 30000, 50);
    expect((await get(`${api.url}/readyz`)).json).to.deep.equal({ ready: true });
    await live(api.url);

    p.cut();
    const notReady = await waitFor(async () => {
      const r = await get(`${api.url}/readyz`);
      return r.status === 503 ? r : null;
    }, 'the api to stop being ready once ZooKeeper is cut off', 30000, 50);
    expect(notReady!.json.ready).to.equal(false);
    expect(notReady!.json.reasons).to.have.length(1);
    expect(notReady!.json.reasons[0]).to.match(/^zookeeper /);
    expect((await get(`${api.url}/status`)).status).to.equal(503);
    // Liveness never depends on ZooKeeper: a scheduler that restarts on it leaves this copy alone.
    for (let i = 0; i < 5; i++) await live(api.url);
    // The methods the route allows are named in a 405, like every other route.
    const post = await jsonCall('POST', `${api.url}/healthz`, {});
    expect(post.status).to.equal(405);
    expect(post.json.code).to.equal('BAMBOO_METHOD_NOT_ALLOWED');

    p.heal();
    await waitFor(async () => (await get(`${api.url}/readyz`)).status === 200, 'readiness back once ZooKeeper is reachable', 40000, 100);
    expect((await get(`${api.url}/status`)).status).to.equal(200);
  });

  it('worker: a ZooKeeper outage makes /readyz 503 while /healthz stays 200 and HAProxy keeps serving (/status 200)', async () => {
    const s = await testSetup();
    const api = await new FakeApi(s).start();
    cleanups.push(() => api.close());
    await api.setApps([marathonApp('/health/web', [{ port: 31999 }])]);
    const p = await relay();
    const w: WorkerHandle = await runWorker(workerConfig(s, { 'Bamboo.Zookeeper.Host': p.connectionString }), testLogger('worker'), { bind: '127.0.0.1:0', retryInitialMs: 200 });
    cleanups.push(() => w.close());
    const base = `http://127.0.0.1:${w.port}`;

    await waitFor(async () => (await get(`${base}/readyz`)).status === 200, 'the worker to be ready (HAProxy serving its config)', 30000, 50);
    expect((await get(`${base}/readyz`)).json).to.deep.equal({ ready: true });
    await live(base);

    p.cut();
    const notReady = await waitFor(async () => {
      const r = await get(`${base}/readyz`);
      return r.status === 503 ? r : null;
    }, 'the worker to stop being ready once ZooKeeper is cut off', 30000, 50);
    expect(notReady!.json.reasons).to.have.length(1);
    expect(notReady!.json.reasons[0]).to.match(/^zookeeper /);
    for (let i = 0; i < 5; i++) await live(base);
    // The detailed view: the host still serves its last good config, and says what is degraded.
    const status = await get(`${base}/status`);
    expect(status.status).to.equal(200);
    expect(status.json.healthy).to.equal(true);
    expect(status.json.degraded).to.include('zookeeper unavailable');

    p.heal();
    await waitFor(async () => (await get(`${base}/readyz`)).status === 200, 'readiness back once ZooKeeper is reachable', 40000, 100);
  });

  it('worker: an HAProxy that cannot serve (its port taken) is not ready but alive, and is ready once it serves', async () => {
    const s = await testSetup();
    const api = await new FakeApi(s).start();
    cleanups.push(() => api.close());
    await api.setApps([marathonApp('/health/web', [{ port: 31999 }])]);
    // Someone else holds HAProxy's HTTP port: every start of the managed HAProxy fails.
    const squatter: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.listen(s.httpPort, '127.0.0.1', () => resolve());
    });
    let squatting = true;
    const release = () => (squatting ? new Promise<void>((r) => squatter.close(() => r())) : Promise.resolve()).then(() => (squatting = false));
    cleanups.push(release);
    const w: WorkerHandle = await runWorker(workerConfig(s), testLogger('worker'), { bind: '127.0.0.1:0', retryInitialMs: 200, retryMaxMs: 1000 });
    cleanups.push(() => w.close());
    const base = `http://127.0.0.1:${w.port}`;

    await waitFor(() => w.reconciler.counts['reload-failed'] >= 1, 'a failed start of HAProxy', 30000, 50);
    const r = await get(`${base}/readyz`);
    expect(r.status).to.equal(503);
    expect(r.json.reasons).to.deep.equal(['haproxy not running']);
    await live(base);
    expect((await get(`${base}/status`)).status).to.equal(503);

    await release();
    await waitFor(async () => (await get(`${base}/readyz`)).status === 200, 'readiness once HAProxy could bind and serve', 40000, 100);
    await live(base);
  });
});
