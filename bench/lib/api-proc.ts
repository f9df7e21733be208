/**
 * `bamboo api` as operators run it: its own process (bin/bamboo.js: the build when it is current,
 * the sources through tsx otherwise), configured by Bamboo's environment variables, on 127.0.0.1
 * and free ports.
 */
import { join } from 'node:path';
import { freePort } from '../../harness/ports.js';
import { startProcess, type Started } from '../../harness/process.js';
import { httpGet } from '../../harness/http.js';
import { ROOT } from './machine.js';
import { until } from './stats.js';

export interface ApiProcess {
  url: string;
  zmq: string;
  proc: Started;
  stop(): Promise<void>;
}

export async function startApiProcess(opts: {
  zk: string;
  zkPath: string;
  controlPath: string;
  marathon: string;
  stream: boolean;
  logFile: string;
  env?: Record<string, string>;
}): Promise<ApiProcess> {
  const port = await freePort();
  const zmqPort = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const zmq = `tcp://127.0.0.1:${zmqPort}`;
  const proc = startProcess(process.execPath, [join(ROOT, 'bin', 'bamboo.js'), 'api', '--bind', `127.0.0.1:${port}`, '--log', opts.logFile], {
    cwd: ROOT,
    env: {
      ...process.env,
      MARATHON_ENDPOINT: opts.marathon,
      MARATHON_USE_EVENT_STREAM: String(opts.stream),
      BAMBOO_ENDPOINT: url,
      BAMBOO_ZK_HOST: opts.zk,
      BAMBOO_ZK_PATH: opts.zkPath,
      BAMBOO_ZK_CONTROL_PATH: opts.controlPath,
      BAMBOO_ZMQ_BIND: zmq,
      BAMBOO_LOG_LEVEL: 'warn',
      STATSD_ENABLED: 'false',
      // The benchmarks create 1,000 rules one after another as fast as the api answers: no write limit.
      BAMBOO_WRITE_RATE_PER_MINUTE: '0',
      ...opts.env,
    },
  });
  try {
    await until(async () => (await httpGet(`${url}/status`)).status === 200, `bamboo api on ${url} (${opts.logFile})`, 30000, 50);
  } catch (err) {
    await proc.stop('SIGKILL');
    throw new Error(`${(err as Error).message}: ${proc.output().slice(-1000)}`);
  }
  return { url, zmq, proc, stop: () => proc.stop('SIGTERM', 8000) };
}
