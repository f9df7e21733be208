/**
 * The Etsy StatsD daemon (npm `statsd`) on free loopback ports, with its admin port readable so tests
 * can see the counters and timers a process really sent.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePorts } from '../../harness/ports.js';
import { startProcess, waitFor, type Started } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';

export interface StatsdServer {
  /** host:port for clients (UDP). */
  host: string;
  adminPort: number;
  proc: Started;
  /** Runs an admin command (`counters`, `timers`, `gauges`) and parses the reply. */
  admin(cmd: 'counters' | 'timers' | 'gauges'): Promise<Record<string, unknown>>;
  counters(): Promise<Record<string, number>>;
  timers(): Promise<Record<string, number[]>>;
  stop(): Promise<void>;
}

function adminCommand(port: number, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    let out = '';
    sock.setTimeout(2000, () => {
      sock.destroy();
      reject(new Error('statsd admin timeout'));
    });
    sock.on('connect', () => sock.write(cmd + '\n'));
    sock.on('data', (b) => {
      out += b.toString();
      if (out.includes('\nEND') || (cmd === 'health' && out.includes('\n'))) {
        sock.end();
        resolve(out);
      }
    });
    sock.on('error', reject);
  });
}

function parseAdmin(text: string): Record<string, unknown> {
  const body = text.slice(0, text.lastIndexOf('\nEND')).trim();
  if (!body) return {};
  // The daemon prints its objects with util.inspect; keys may be quoted with single quotes.
  const json = body
    .replace(/'((?:[^'\\]|\\.)*)'/g, (_m, s: string) => JSON.stringify(s.replace(/\\'/g, "'")))
    .replace(/([{,]\s*)([A-Za-z_$][\w$.\-]*)\s*:/g, '$1"$2":');
  return JSON.parse(json) as Record<string, unknown>;
}

export async function startStatsd(): Promise<StatsdServer> {
  const [port, adminPort] = await freePorts(2);
  const dir = tempDir('bamboo-statsd-');
  const cfgPath = join(dir, 'config.js');
  writeFileSync(
    cfgPath,
    `{ port: ${port}, address: "127.0.0.1", mgmt_port: ${adminPort}, mgmt_address: "127.0.0.1", backends: [], flushInterval: 3600000, deleteCounters: false }\n`,
  );
  const require = createRequire(import.meta.url);
  const statsdMain = require.resolve('statsd/stats.js');
  const proc = startProcess(process.execPath, [statsdMain, cfgPath], { cwd: dir });
  await waitFor(() => adminCommand(adminPort, 'health').then((r) => r.includes('up')), 'statsd admin port', 10000, 50);
  const server: StatsdServer = {
    host: `127.0.0.1:${port}`,
    adminPort,
    proc,
    admin: async (cmd) => parseAdmin(await adminCommand(adminPort, cmd)),
    counters: async () => (await server.admin('counters')) as Record<string, number>,
    timers: async () => (await server.admin('timers')) as Record<string, number[]>,
    stop: () => proc.stop('SIGTERM', 2000),
  };
  return server;
}
