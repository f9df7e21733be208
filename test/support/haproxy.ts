/**
 * A real HAProxy (Debian's 2.6) for tests: started in master-worker mode on a config in a temp dir,
 * stopped by the PID spawn gave us. Bind lines in test configs must use 127.0.0.1, free ports and
 * `noreuseport` (two HAProxy on one port would silently split traffic on a shared machine).
 */
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startProcess, waitFor, type Started } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';

const pexec = promisify(execFile);
export const HAPROXY_BIN = process.env.HAPROXY_BIN || 'haproxy';

export interface HaproxyInstance {
  dir: string;
  cfgPath: string;
  proc: Started;
  stop(): Promise<void>;
}

/** Validates a config with `haproxy -c`; resolves { ok, output }. */
export async function haproxyCheck(cfgPath: string): Promise<{ ok: boolean; output: string }> {
  try {
    const r = await pexec(HAPROXY_BIN, ['-c', '-f', cfgPath], { timeout: 30000 });
    return { ok: true, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Starts HAProxy on the given config text and waits until waitPort (if given) accepts connections. */
export async function startHaproxy(cfgText: string, opts: { waitPort?: number } = {}): Promise<HaproxyInstance> {
  const dir = tempDir('bamboo-haproxy-');
  const cfgPath = join(dir, 'haproxy.cfg');
  writeFileSync(cfgPath, cfgText);
  const proc = startProcess(HAPROXY_BIN, ['-W', '-db', '-f', cfgPath], { cwd: dir });
  if (opts.waitPort) {
    await waitFor(() => portOpen(opts.waitPort!), `HAProxy on port ${opts.waitPort} (${proc.output().slice(-300)})`, 10000);
  }
  return { dir, cfgPath, proc, stop: () => proc.stop('SIGTERM', 3000) };
}
