/**
 * `bamboo demo`: the whole system on this machine, driven like production, on 127.0.0.1 only.
 *
 * It starts ZooKeeper (Debian's package; or uses --zk), the Marathon simulator with sample apps backed
 * by real local HTTP servers (one of them, /demo/shop/web, routed by its marathon-lb label
 * HAPROXY_0_VHOST; one TCP app using BAMBOO_TCP_PORT), two api copies and one worker with a managed HAProxy, each api and the worker as its own `bamboo` child process. With the `openssl`
 * command at hand, HTTPS is on: a throwaway CA, a default certificate and one for the app
 * /demo/secure, which also asks (by label) for its plain HTTP to be redirected. Ctrl-C (or
 * --exit-after) stops everything it started, by the PIDs it got when starting them.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MarathonSimulator, type MarathonSimulatorOptions } from '../harness/marathon-sim/index.js';
import { startBackend, httpGet, type Backend } from '../harness/http.js';
import { freePort } from '../harness/ports.js';
import { startProcess, waitFor, type Started } from '../harness/process.js';
import { withMemoryFlags } from './node-options.js';
import { tempDir } from '../harness/tmp.js';
import { TestCa, opensslAvailable } from '../harness/tls.js';
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
  /** HTTPS with a generated CA (default: on when the `openssl` command is there). */
  https?: boolean;
}

/** The demo's HTTPS side: the host with its own certificate, the port, and the CA to trust. */
export interface DemoHttps {
  port: number;
  /** Host name of /demo/secure's certificate (resolve it to 127.0.0.1: `curl --resolve`). */
  host: string;
  /** The demo CA's certificate (`curl --cacert`). */
  caPath: string;
  /** HAProxy.CertDir of the worker: add, renew or remove certificates here. */
  certDir: string;
  ca: TestCa;
}

export interface RunningDemo {
  uiUrl: string;
  uiUrls: string[];
  haproxyUrl: string;
  tcpPort: number;
  /** Null when HTTPS is off (no `openssl` command, or `https: false`). */
  https: DemoHttps | null;
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

/** The host /demo/shop/web claims with its label `HAPROXY_0_VHOST`. */
export const LABEL_HOST = 'shop.demo.local';
/** The host the printed `curl` lines give /demo/shop/api by an api rule. */
export const RULE_HOST = 'api.demo.local';

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
      '/demo/shop/web': [await startBackend('shop-web-1')],
    };
    for (const list of Object.values(backends)) for (const b of list) started.push(() => b.close());
    // HTTPS: certificates made now, by a CA that lives as long as the demo.
    let https: DemoHttps | null = null;
    if (opts.https !== false && opensslAvailable()) {
      const certDir = join(dir, 'certs');
      mkdirSync(join(dir, 'ca'), { recursive: true });
      mkdirSync(certDir, { recursive: true });
      const ca = TestCa.create(join(dir, 'ca'), 'Bamboo demo CA');
      writeBundle(certDir, 'edge', ca.issue(['edge.demo.local']).bundle);
      writeBundle(certDir, 'secure', ca.issue(['secure.demo.local']).bundle);
      https = { port: await freePort(), host: 'secure.demo.local', caPath: ca.certPath, certDir, ca };
      backends['/demo/secure'] = [await startBackend('secure-1')];
      started.push(() => backends['/demo/secure'][0].close());
    }
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
    // Routed by host from its marathon-lb label, as a marathon-lb user's app would be (docs/labels.md).
    sim.deployApp(
      { id: '/demo/shop/web', cmd: 'shop-web', instances: 1, cpus: 0.1, mem: 32, portDefinitions: [{ port: 10005, protocol: 'tcp', name: 'http' }], labels: { team: 'shop', HAPROXY_0_VHOST: LABEL_HOST } },
      { tasks: backends['/demo/shop/web'].map((b) => ({ host: '127.0.0.1', ports: [b.port] })) },
    );
    sim.deployApp(
      { id: '/demo/echo', cmd: 'echo-server', instances: 1, cpus: 0.1, mem: 32, portDefinitions: [{ port: 10003, protocol: 'tcp' }], env: { BAMBOO_TCP_PORT: String(tcpPort) } },
      { tasks: [{ host: '127.0.0.1', ports: [echoPort] }] },
    );
    if (https) {
      sim.deployApp(
        { id: '/demo/secure', cmd: 'secure', instances: 1, cpus: 0.1, mem: 32, portDefinitions: [{ port: 10004, protocol: 'tcp', name: 'http' }], labels: { HAPROXY_0_REDIRECT_TO_HTTPS: 'true' } },
        { tasks: [{ host: '127.0.0.1', ports: [backends['/demo/secure'][0].port] }] },
      );
    }

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
      // The heap flags production runs with (cli/node-options.ts); opts.env may replace them.
      NODE_OPTIONS: withMemoryFlags(process.env.NODE_OPTIONS),
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
          ...(https
            ? { HAPROXY_HTTPS_BIND: `127.0.0.1:${https.port}`, HAPROXY_CERT_DIR: https.certDir, HAPROXY_DEFAULT_CERT: 'edge', HAPROXY_HSTS_MAX_AGE: '300' }
            : {}),
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

    await waitFor(
      async () => (await httpGet(haproxyUrl, { host: LABEL_HOST })).body.startsWith('shop-web'),
      `HAProxy to route ${LABEL_HOST} by the label of /demo/shop/web (worker log: ${join(dir, 'worker.log')})`,
      30000,
      100,
    );

    if (https) {
      const h = https;
      await waitFor(
        async () => (await httpsStatus(h, '/demo/secure/')) === 200,
        `HAProxy to serve /demo/secure over HTTPS (worker log: ${join(dir, 'worker.log')})`,
        30000,
        100,
      );
    }

    const running: RunningDemo = {
      uiUrl: uiUrls[0],
      uiUrls,
      haproxyUrl,
      tcpPort,
      https,
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

function writeBundle(dir: string, name: string, bundle: string): void {
  writeFileSync(join(dir, `${name}.pem`), bundle, { mode: 0o600 });
}

/** Status of one HTTPS GET to the demo's secure host (0: no answer). */
function httpsStatus(h: DemoHttps, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: h.port, servername: h.host, headers: { host: h.host }, path, ca: h.ca.cert, agent: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The lines `bamboo demo` prints: URLs and `curl` lines that try each way of routing. */
export function demoBanner(demo: RunningDemo): string[] {
  const h = demo.haproxyUrl.replace(/\/$/, '');
  const ui = demo.uiUrl.replace(/\/$/, '');
  const httpPort = new URL(demo.haproxyUrl).port;
  const lines = [
    `UI: ${demo.uiUrl}`,
    `HAProxy: ${demo.haproxyUrl}`,
    ...(demo.https ? [`HTTPS: https://${demo.https.host}:${demo.https.port}/ (certificates in ${demo.https.certDir})`] : []),
    '',
    'Try:',
    `  curl ${h}/demo/web/                      # routed by path: the default rule of app /demo/web`,
    `  curl ${h}/demo/shop/api/orders           # a nested app id`,
    `  curl --resolve ${LABEL_HOST}:${httpPort}:127.0.0.1 http://${LABEL_HOST}:${httpPort}/   # routed by host from the label HAPROXY_0_VHOST of app /demo/shop/web`,
    `  curl -X PUT -d '{"acl":"hdr(host) -i ${RULE_HOST}"}' ${ui}/api/services//demo/shop/api   # an api rule for app /demo/shop/api`,
    `  curl -H 'Host: ${RULE_HOST}' ${h}/orders    # now routed by host, by the api rule`,
    `  curl -X DELETE ${ui}/api/services//demo/shop/api   # back to the default rule`,
  ];
  if (demo.https) {
    const { host, port, caPath } = demo.https;
    lines.push(
      `  curl --resolve ${host}:${port}:127.0.0.1 --cacert ${caPath} https://${host}:${port}/demo/secure/   # HTTPS, the certificate of ${host} by SNI`,
      `  curl -si --resolve ${host}:${httpPort}:127.0.0.1 http://${host}:${httpPort}/demo/secure/ | head -3   # its label redirects HTTP to HTTPS`,
      `  openssl s_client -connect 127.0.0.1:${port} -servername other.demo.local </dev/null 2>/dev/null | grep subject=   # an unknown name gets the default certificate`,
    );
  } else {
    lines.push('  (HTTPS skipped: no openssl command to make the demo certificates)');
  }
  lines.push(
    `  echo hello | socat - TCP:127.0.0.1:${demo.tcpPort}   # the TCP app (BAMBOO_TCP_PORT)`,
    `  curl ${ui}/api/workers                   # what the worker runs`,
    '',
    `Logs and haproxy.cfg: ${demo.dir}. Press Ctrl-C to stop everything.`,
  );
  return lines;
}

/** The `bamboo demo` command: start, print the banner, wait for Ctrl-C (or --exit-after). */
export async function runDemo(opts: DemoOptions = {}): Promise<void> {
  const out = opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
  out('Starting the demo: ZooKeeper, Marathon simulator, 2 api copies, 1 worker with HAProxy ...');
  const demo = await startDemo(opts);
  for (const line of demoBanner(demo)) out(line);

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
