/**
 * `bamboo demo`: the whole system on this machine, driven like production, on 127.0.0.1 only.
 *
 * It starts ZooKeeper (Debian's package; or uses --zk), the Marathon simulator with sample apps backed
 * by real local HTTP servers (and one TCP app using BAMBOO_TCP_PORT), two api copies and one worker
 * with a managed HAProxy, each api and the worker as its own `bamboo` child process. Ctrl-C (or
 * --exit-after) stops everything it started, by the PIDs it got when starting them.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MarathonSimulator, type MarathonSimulatorOptions } from '../harness/marathon-sim/index.js';
import { startBackend, httpGet, type Backend } from '../harness/http.js';
import { freePort } from '../harness/ports.js';
import { startProcess, waitFor, type Started } from '../harness/process.js';
import { tempDir } from '../harness/tmp.js';
import { startZooKeeper, type ZkServer } from '../harness/zookeeper.js';

export interface DemoOptions {
  httpPort?: number;
  uiPort?: number;
  zk?: string;
  exitAfterSec?: number;
  logLevel?: string;
  /** Where to print the banner (default stdout). */
  out?: (line: string) => void;
  /** Extra environment for every bamboo process, applied last (fault tests: auth, digest, StatsD, timeouts). */
  env?: Record<string, string>;
  /** Options of the Marathon simulator (fault tests: basic auth, `shareStateWith` for an HA pair). */
  marathon?: MarathonSimulatorOptions;
  /** More Marathon endpoints, listed after the simulator's own in `MARATHON_ENDPOINT` (failover tests). */
  moreMarathonEndpoints?: string[];
}

export interface RunningDemo {
  uiUrl: string;
  uiUrls: string[];
  haproxyUrl: string;
  tcpPort: number;
  sim: MarathonSimulator;
  backends: Record<string, Backend[]>;
  apis: Started[];
  worker: Started;
  dir: string;
  zkConnection: string;
  /** The ZooKeeper paths the processes use (`Bamboo.Zookeeper.Path` and `.ControlPath`). */
  zkPaths: { rules: string; control: string };
  workerStatusUrl: string;
  /** Stops the worker (SIGTERM, or SIGKILL to simulate a crash) and starts a new one on the same files. */
  restartWorker(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

const BIN = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'bamboo.js');

function binPath(): string {
  // From dist/cli/demo.js the repo root is two levels up; from cli/demo.ts (tsx) one.
  const fromSource = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'bin', 'bamboo.js');
  return import.meta.url.includes('/dist/') ? BIN : fromSource;
}

function tcpEcho(port: number): Promise<TcpServer> {
  return new Promise((resolve) => {
    const srv = createTcpServer((sock) => {
      sock.on('data', (d) => sock.write(d));
      sock.on('error', () => undefined);
    });
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

/** Starts everything and returns handles (tests drive the demo through this). */
export async function startDemo(opts: DemoOptions = {}): Promise<RunningDemo> {
  const dir = tempDir('bamboo-demo-');
  const started: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
    started.length = 0;
  };
  try {
    let zk: ZkServer | null = null;
    let zkConnection = opts.zk ?? '';
    if (!zkConnection) {
      zk = await startZooKeeper({ dir: join(dir, 'zookeeper') });
      zkConnection = zk.connectionString;
      started.push(() => zk!.stop());
    }

    // Real local backends for the sample apps.
    const backends: Record<string, Backend[]> = {
      '/demo/web': [await startBackend('web-1'), await startBackend('web-2')],
      '/demo/shop/api': [await startBackend('shop-api-1'), await startBackend('shop-api-2')],
    };
    for (const list of Object.values(backends)) for (const b of list) started.push(() => b.close());
    const echoPort = await freePort();
    const echo = await tcpEcho(echoPort);
    started.push(() => new Promise<void>((r) => echo.close(() => r())));
    const tcpPort = await freePort();

    const sim = new MarathonSimulator({ heartbeatMs: 10000, ...opts.marathon });
    await sim.start();
    started.push(() => sim.stop());
    const healthCheck = { protocol: 'HTTP', path: '/', portIndex: 0, gracePeriodSeconds: 5, intervalSeconds: 10, timeoutSeconds: 5, maxConsecutiveFailures: 3 };
    sim.deployApp(
      { id: '/demo/web', cmd: 'python3 -m http.server $PORT0', instances: 2, cpus: 0.1, mem: 64, portDefinitions: [{ port: 10001, protocol: 'tcp', name: 'http' }], healthChecks: [healthCheck] },
      { tasks: backends['/demo/web'].map((b) => ({ host: '127.0.0.1', ports: [b.port] })) },
    );
    sim.deployApp(
      { id: '/demo/shop/api', cmd: 'shop-api', instances: 2, cpus: 0.1, mem: 64, portDefinitions: [{ port: 10002, protocol: 'tcp', name: 'http' }], healthChecks: [healthCheck], labels: { team: 'shop' } },
      { tasks: backends['/demo/shop/api'].map((b) => ({ host: '127.0.0.1', ports: [b.port] })) },
    );
    sim.deployApp(
      { id: '/demo/echo', cmd: 'echo-server', instances: 1, cpus: 0.1, mem: 32, portDefinitions: [{ port: 10003, protocol: 'tcp' }], env: { BAMBOO_TCP_PORT: String(tcpPort) } },
      { tasks: [{ host: '127.0.0.1', ports: [echoPort] }] },
    );

    const suffix = randomBytes(3).toString('hex');
    const zkPaths = {
      rules: opts.zk ? `/bamboo-demo-${suffix}/state` : '/marathon-haproxy/state',
      control: opts.zk ? `/bamboo-demo-${suffix}/control` : '/bamboo-ts',
    };
    const common: Record<string, string> = {
      MARATHON_ENDPOINT: [sim.url, ...(opts.moreMarathonEndpoints ?? [])].join(','),
      MARATHON_USE_EVENT_STREAM: 'true',
      BAMBOO_ZK_HOST: zkConnection,
      BAMBOO_ZK_PATH: zkPaths.rules,
      BAMBOO_ZK_CONTROL_PATH: zkPaths.control,
      BAMBOO_LOG_LEVEL: opts.logLevel ?? 'warn',
      STATSD_ENABLED: 'false',
    };
    const bin = binPath();
    const apis: Started[] = [];
    const uiUrls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const port = i === 0 && opts.uiPort ? opts.uiPort : await freePort();
      const zmqPort = await freePort();
      const proc = startProcess(process.execPath, [bin, 'api', '--bind', `127.0.0.1:${port}`, '--log', join(dir, `api-${i + 1}.log`)], {
        env: { ...process.env, ...common, BAMBOO_ZMQ_BIND: `tcp://127.0.0.1:${zmqPort}`, BAMBOO_ENDPOINT: `http://127.0.0.1:${port}`, ...opts.env },
      });
      started.push(() => proc.stop('SIGTERM', 5000));
      apis.push(proc);
      uiUrls.push(`http://127.0.0.1:${port}/`);
    }

    const httpPort = opts.httpPort ?? (await freePort());
    const workerPort = await freePort();
    const spawnWorker = () =>
      startProcess(process.execPath, [bin, 'worker', '--bind', `127.0.0.1:${workerPort}`, '--log', join(dir, 'worker.log')], {
        env: {
          ...process.env,
          ...common,
          HAPROXY_OUTPUT_PATH: join(dir, 'haproxy', 'haproxy.cfg'),
          HAPROXY_HTTP_BIND: `127.0.0.1:${httpPort}`,
          HAPROXY_BIND_OPTIONS: 'noreuseport',
          HAPROXY_RELOAD_CMD: '',
          BAMBOO_WORKER_NAME: 'demo-worker',
          ...opts.env,
        },
      });
    let worker = spawnWorker();
    started.push(() => worker.stop('SIGTERM', 8000));

    for (const [i, url] of uiUrls.entries()) {
      await waitFor(async () => (await httpGet(`${url}status`)).status === 200, `api ${i + 1} at ${url} (log: ${join(dir, `api-${i + 1}.log`)}; ${apis[i].output().slice(-500)})`, 30000, 100);
    }
    const haproxyUrl = `http://127.0.0.1:${httpPort}/`;
    await waitFor(
      async () => (await httpGet(`${haproxyUrl}demo/web/`)).status === 200,
      `HAProxy to route /demo/web (worker log: ${join(dir, 'worker.log')}; ${worker.output().slice(-500)})`,
      30000,
      100,
    );

    const running: RunningDemo = {
      uiUrl: uiUrls[0],
      uiUrls,
      haproxyUrl,
      tcpPort,
      sim,
      backends,
      apis,
      worker,
      dir,
      zkConnection,
      zkPaths,
      workerStatusUrl: `http://127.0.0.1:${workerPort}/status`,
      async restartWorker(signal: NodeJS.Signals = 'SIGTERM') {
        await worker.stop(signal, 8000);
        worker = spawnWorker();
        running.worker = worker;
      },
      stop: stopAll,
    };
    return running;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The `bamboo demo` command: start, print the banner, wait for Ctrl-C (or --exit-after). */
export async function runDemo(opts: DemoOptions = {}): Promise<void> {
  const out = opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
  out('Starting the demo: ZooKeeper, Marathon simulator, 2 api copies, 1 worker with HAProxy ...');
  const demo = await startDemo(opts);
  const h = demo.haproxyUrl.replace(/\/$/, '');
  const ui = demo.uiUrl.replace(/\/$/, '');
  out(`UI: ${demo.uiUrl}`);
  out(`HAProxy: ${demo.haproxyUrl}`);
  out('');
  out('Try:');
  out(`  curl ${h}/demo/web/                      # routed by path: the default rule of app /demo/web`);
  out(`  curl ${h}/demo/shop/api/orders           # a nested app id`);
  out(`  curl -X PUT -d '{"acl":"hdr(host) -i shop.demo.local"}' ${ui}/api/services//demo/shop/api`);
  out(`  curl -H 'Host: shop.demo.local' ${h}/orders    # now routed by host`);
  out(`  curl -X DELETE ${ui}/api/services//demo/shop/api   # back to the default rule`);
  out(`  echo hello | socat - TCP:127.0.0.1:${demo.tcpPort}   # the TCP app (BAMBOO_TCP_PORT)`);
  out(`  curl ${ui}/api/workers                   # what the worker runs`);
  out('');
  out(`Logs and haproxy.cfg: ${demo.dir}. Press Ctrl-C to stop everything.`);

  await new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve();
    };
    process.once('SIGINT', finish);
    process.once('SIGTERM', finish);
    if (opts.exitAfterSec) setTimeout(finish, opts.exitAfterSec * 1000).unref();
  });
  out('Stopping ...');
  await demo.stop();
  out('Stopped.');
  process.exit(0);
}
