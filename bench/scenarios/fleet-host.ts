/**
 * Hosts N workers (`runWorker`) in one process for the fan-out scenario: 50 node processes on a
 * 2-core machine would measure process scheduling more than Bamboo's design. Each worker is a full
 * worker (its own ZooKeeper session, ZeroMQ subscription, renderer, status record) in command mode
 * with render-only commands (`HAProxy.ReloadCommand` and `HAProxy.ReloadValidationCommand` = `true`)
 * and its own output path. Prints `READY` once every worker has started; SIGTERM closes them all and
 * prints `PEAK <VmHWM MB>`.
 *
 *   node --import tsx bench/scenarios/fleet-host.ts '<json spec>'
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../common/config-load.js';
import { silentLogger } from '../../common/log.js';
import { runWorker, type WorkerHandle } from '../../worker/main.js';

interface Spec {
  count: number;
  zk: string;
  zkPath: string;
  controlPath: string;
  dir: string;
  prefix: string;
}

function peakMB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as Spec;
  const log = silentLogger();
  const handles: WorkerHandle[] = [];
  const start = async (i: number) => {
    const cfg = loadConfig({
      env: {},
      overrides: {
        'Bamboo.Zookeeper.Host': spec.zk,
        'Bamboo.Zookeeper.Path': spec.zkPath,
        'Bamboo.Zookeeper.ControlPath': spec.controlPath,
        'HAProxy.OutputPath': join(spec.dir, `w${i}`, 'haproxy.cfg'),
        'HAProxy.ReloadCommand': 'true',
        'HAProxy.ReloadValidationCommand': 'true',
        'HAProxy.HttpBind': '127.0.0.1:80',
        'HAProxy.BindOptions': 'noreuseport',
        'Worker.Name': `${spec.prefix}-${i}`,
        'Log.Level': 'warn',
      },
    });
    handles.push(await runWorker(cfg, log, {}));
  };
  for (let i = 0; i < spec.count; i += 10) {
    await Promise.all(Array.from({ length: Math.min(10, spec.count - i) }, (_, j) => start(i + j)));
  }
  process.stdout.write(`READY ${handles.length}\n`);
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    void Promise.all(handles.map((h) => h.close().catch(() => undefined))).then(() => {
      process.stdout.write(`PEAK ${peakMB()}\n`);
      process.exit(0);
    });
  });
}

main().catch((err: Error) => {
  process.stderr.write(`fleet host failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
