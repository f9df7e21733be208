import { expect } from 'chai';
import { runWorker, type WorkerHandle } from '../../worker/main.js';
import { httpGet, startBackend, type Backend } from '../../harness/http.js';
import { waitFor, type Started } from '../../harness/process.js';
import { startWrk, stopWrk } from '../support/wrk.js';
import { FakeApi, marathonApp, testLogger, testSetup, workerConfig } from '../worker-fixtures.js';

describe('reloads under HTTP load (wrk, managed HAProxy)', function () {
  this.timeout(120000);
  let api: FakeApi | null = null;
  let worker: WorkerHandle | null = null;
  let app: Backend | null = null;
  const loads: Started[] = [];
  afterEach(async () => {
    for (const l of loads.splice(0)) await l.stop('SIGKILL');
    await worker?.close();
    await api?.close();
    await app?.close();
  });

  it('drops no request, keep-alive or Connection: close, across 50 reloads', async () => {
    const s = await testSetup();
    api = await new FakeApi(s).start();
    app = await startBackend('steady');
    await api.setApps([marathonApp('/steady', [{ port: app.port }]), marathonApp('/churn', [{ port: app.port }])]);
    // 50 reloads as fast as they go: the storm bounds (test/faults/reload-storm.test.ts) are off here.
    worker = await runWorker(
      workerConfig(s, { 'Worker.MinReloadIntervalMs': 0, 'Worker.MaxReloadsPerMinute': 0, 'Worker.MaxOldGenerations': 0 }),
      testLogger('worker'),
      {},
    );
    const url = `http://127.0.0.1:${s.httpPort}/steady/x`;
    await waitFor(async () => (await httpGet(url).catch(() => null))?.status === 200, 'traffic through HAProxy');

    const keepAlive = startWrk(url, ['-c8'], 4);
    const close = startWrk(url, ['-c4', '-H', 'Connection: close'], 4);
    loads.push(keepAlive, close);
    await new Promise((r) => setTimeout(r, 500));

    const w = worker;
    const before = w.reconciler.counts.reloaded;
    for (let i = 1; i <= 50; i++) {
      await api.setRule('/churn', `path_beg -i /churn-${i}`);
      await waitFor(() => w.reconciler.counts.reloaded >= before + i, `reload ${i}`, 20000, 5);
    }
    await new Promise((r) => setTimeout(r, 500));
    const [ka, cl] = await Promise.all([stopWrk(keepAlive), stopWrk(close)]);
    if (process.env.WORKER_TEST_LOG) console.log(ka.output, cl.output);

    expect(w.reconciler.counts.reloaded - before).to.equal(50);
    expect(w.reconciler.counts['reload-failed']).to.equal(0);
    for (const [name, r] of [['keep-alive', ka], ['Connection: close', cl]] as const) {
      expect(r.requests, `${name}: ${r.output}`).to.be.greaterThan(100);
      expect(r.socketErrors + r.non2xx, `${name}: ${r.output}`).to.equal(0);
    }
  });
});
