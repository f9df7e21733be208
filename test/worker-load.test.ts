import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runWorker, type WorkerHandle } from '../worker/main.js';
import { httpGet, startBackend, type Backend } from './support/http.js';
import { startProcess, waitFor, type Started } from './support/process.js';
import { tempDir } from './support/tmp.js';
import { FakeApi, marathonApp, testLogger, testSetup, workerConfig } from './worker-fixtures.js';

export interface WrkResult {
  requests: number;
  socketErrors: number;
  non2xx: number;
  output: string;
}

/** Parses wrk's summary: requests, socket errors (connect/read/write/timeout) and non-2xx answers. */
export function parseWrk(output: string): WrkResult {
  const requests = Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  return { requests, socketErrors, non2xx, output };
}

/**
 * wrk for up to 120 s, stopped with SIGINT (it then prints its summary). Each connection pauses
 * `pauseMs` between requests (wrk's Lua `delay()`), so the load is steady but leaves CPU for the
 * worker and HAProxy on a small shared machine.
 */
function startWrk(url: string, extra: string[], pauseMs: number): Started {
  const script = join(tempDir('bamboo-wrk-'), 'pace.lua');
  writeFileSync(script, `function delay()\n  return ${pauseMs}\nend\n`);
  return startProcess('wrk', ['-t1', '-d120s', '--timeout', '5s', '-s', script, ...extra, url]);
}

async function stopWrk(w: Started): Promise<WrkResult> {
  process.kill(w.pid, 'SIGINT');
  await Promise.race([w.exited, new Promise((r) => setTimeout(r, 10000))]);
  return parseWrk(w.output());
}

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
    worker = await runWorker(workerConfig(s, { 'Worker.MinReloadIntervalMs': 0 }), testLogger('worker'), {});
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
