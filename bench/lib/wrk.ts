/**
 * wrk (Debian's 4.1) as the HTTP load generator: a C program, so the load does not compete with the
 * measured node processes' event loops. Results come from a Lua `done()` hook printing JSON, not from
 * scraping the text report.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { round } from './stats.js';

const DONE_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"durationUs":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latencyUs":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`;

export interface WrkOptions {
  url: string;
  threads?: number;
  connections?: number;
  /** Fixed duration; or leave it long and call stop() (SIGINT: wrk stops and reports). */
  durationS: number;
  headers?: Record<string, string>;
  /** Extra Lua (e.g. a `request` function); the `done` hook is appended. */
  lua?: string;
  /** Directory for the script file. */
  dir: string;
  /** wrk's request timeout (default 2 s: a request slower than that counts as a timeout error). */
  timeoutS?: number;
}

export interface WrkResult {
  requests: number;
  durationS: number;
  requestsPerSecond: number;
  /** Responses with a status >= 400 (wrk's "Non-2xx or 3xx"). */
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** non2xx + every socket error: requests that did not get a good answer. */
  failed: number;
  latencyMs: { min: number; mean: number; p50: number; p90: number; p99: number; max: number };
}

export interface RunningWrk {
  /** Stops a long run early (SIGINT) and resolves the result. */
  stop(): Promise<WrkResult>;
  done: Promise<WrkResult>;
}

let scripts = 0;

export function startWrk(o: WrkOptions): RunningWrk {
  const script = join(o.dir, `wrk-${process.pid}-${scripts++}.lua`);
  writeFileSync(script, `${o.lua ?? ''}\n${DONE_LUA}`);
  const args = ['-t', String(o.threads ?? 2), '-c', String(o.connections ?? 16), '-d', `${o.durationS}s`, '--timeout', `${o.timeoutS ?? 2}s`, '-s', script];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(o.url);
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<WrkResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
      if (!line) return reject(new Error(`wrk exited ${code} without a result: ${out.slice(-1000)}`));
      const j = JSON.parse(line.slice(8)) as {
        requests: number;
        durationUs: number;
        errors: { connect: number; read: number; write: number; status: number; timeout: number };
        latencyUs: { min: number; mean: number; p50: number; p90: number; p99: number; max: number };
      };
      const secs = j.durationUs / 1e6;
      const e = j.errors;
      const ms = (us: number) => round(us / 1000, 2);
      resolve({
        requests: j.requests,
        durationS: round(secs, 2),
        requestsPerSecond: Math.round(j.requests / secs),
        non2xx: e.status,
        socketErrors: { connect: e.connect, read: e.read, write: e.write, timeout: e.timeout },
        failed: e.status + e.connect + e.read + e.write + e.timeout,
        latencyMs: { min: ms(j.latencyUs.min), mean: ms(j.latencyUs.mean), p50: ms(j.latencyUs.p50), p90: ms(j.latencyUs.p90), p99: ms(j.latencyUs.p99), max: ms(j.latencyUs.max) },
      });
    });
  });
  return {
    done,
    stop() {
      if (child.exitCode === null && child.pid) {
        try {
          process.kill(child.pid, 'SIGINT');
        } catch {
          /* already gone */
        }
      }
      return done;
    },
  };
}

export function runWrk(o: WrkOptions): Promise<WrkResult> {
  return startWrk(o).done;
}
