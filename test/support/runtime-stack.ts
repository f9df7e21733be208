/**
 * The stack of the Runtime API tests (test/integration/runtime.test.ts, dynamic-servers.test.ts): a
 * fake api writing snapshots into real ZooKeeper, real HTTP backends, a worker with its managed
 * HAProxy 2.6, wrk load, and what HAProxy itself reports (master CLI, admin socket). Everything it
 * starts is stopped by the caller's `cleanups` (run them in reverse order after each test).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { haproxySettings } from '../../common/config-views.js';
import { parseShowProc } from '../../common/core/reload-alerts.js';
import { cliCommand } from '../../common/adapters/haproxy/master-cli.js';
import type { Metrics } from '../../common/adapters/statsd/metrics.js';
import { inMaintenance, outOfRotation, parseServersState, type ServerState } from '../../common/core/server-state.js';
import { parseServerLine, serverLines } from '../../common/core/config-diff.js';
import type { Logger } from '../../common/log.js';
import { managedPaths, runWorker, type WorkerHandle } from '../../worker/main.js';
import type { ApplyOutcome } from '../../worker/outcome.js';
import { startBackend, type Backend } from '../../harness/http.js';
import { waitFor, type Started } from '../../harness/process.js';
import { FakeApi, marathonApp, workerConfig, type TestSetup } from '../worker-fixtures.js';

export function runtimeStack(cleanups: Array<() => Promise<unknown>>, log: Logger) {
  async function fakeApi(s: TestSetup): Promise<FakeApi> {
    const api = await new FakeApi(s).start();
    cleanups.push(() => api.close());
    return api;
  }

  async function backends(n: number, prefix = 'task'): Promise<Backend[]> {
    const out = await Promise.all(Array.from({ length: n }, (_, i) => startBackend(`${prefix}-${i}`)));
    cleanups.push(() => Promise.all(out.map((b) => b.close())));
    return out;
  }

  async function worker(s: TestSetup, overrides: Record<string, string | number | boolean> = {}, metrics?: Metrics): Promise<WorkerHandle> {
    const w = await runWorker(
      workerConfig(s, { 'HAProxy.DrainTimeoutMs': 1000, 'Worker.MinReloadIntervalMs': 50, ...overrides }),
      log,
      { bind: '127.0.0.1:0', retryInitialMs: 200, metrics },
    );
    cleanups.push(() => w.close());
    return w;
  }

  function loads(): Started[] {
    const started: Started[] = [];
    cleanups.push(async () => {
      for (const l of started) await l.stop('SIGKILL');
    });
    return started;
  }

  /** The app's tasks on the given backends, with stable task ids (task-<backend index>). */
  function web(tasks: Backend[], extra: Record<string, unknown> = {}): Record<string, unknown> {
    return marathonApp('/web', tasks.map((b) => ({ port: b.port, id: `web.${b.name}` })), extra);
  }

  /** The master's reload count (`show proc` on the master CLI). */
  async function masterReloads(s: TestSetup): Promise<number> {
    const info = parseShowProc(await cliCommand(managedPaths(workerConfig(s)).masterSocket, 'show proc'));
    if (!info) throw new Error('no answer from the master CLI');
    return info.reloads;
  }

  function adminSocket(s: TestSetup): string {
    return haproxySettings(workerConfig(s) as never).AdminSocket;
  }

  async function serversState(s: TestSetup, backend: string, socket = adminSocket(s)): Promise<Map<string, ServerState>> {
    return parseServersState(await cliCommand(socket, `show servers state ${backend}`));
  }

  /** Resolves once the worker runs this snapshot version and is idle. */
  async function applied(w: WorkerHandle, version: number, label: string): Promise<void> {
    await waitFor(() => (w.reconciler.running?.snapshotVersion ?? -1) >= version && !w.reconciler.busy, label, 20000, 2);
  }

  function outcomes(w: WorkerHandle): ApplyOutcome[] {
    const seen: ApplyOutcome[] = [];
    w.reconciler.on('outcome', (o: ApplyOutcome) => seen.push(o));
    return seen;
  }

  /** HAProxy's servers agree with haproxy.cfg: enabled lines in rotation at their address, disabled ones in maintenance. */
  async function expectStateMatchesFile(s: TestSetup, backend: string, socket = adminSocket(s)): Promise<number> {
    const states = await serversState(s, backend, socket);
    const lines = [...serverLines(readFileSync(s.outputPath, 'utf8'))].filter(([k]) => k.startsWith(`${backend}/`));
    expect(lines.length).to.be.greaterThan(0);
    let enabled = 0;
    for (const [key, line] of lines) {
      const spec = parseServerLine(`    ${line}`)!;
      const st = states.get(key);
      expect(st, `${key} in show servers state`).to.not.equal(undefined);
      if (spec.disabled) {
        expect(inMaintenance(st!), `${key} (disabled in the file) is in maintenance`).to.equal(true);
      } else {
        enabled++;
        expect(outOfRotation(st!), `${key} (enabled in the file) is in rotation`).to.equal(false);
        expect(`${st!.addr}:${st!.port}`, key).to.equal(`${spec.host}:${spec.port}`);
      }
    }
    return enabled;
  }

  return { fakeApi, backends, worker, loads, web, masterReloads, adminSocket, serversState, applied, outcomes, expectStateMatchesFile };
}
