/** wrk load for tests: paced, bounded, stopped with SIGINT (wrk then prints its summary). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, startProcess, type Started } from '../../harness/process.js';
import { tempDir } from '../../harness/tmp.js';

export interface WrkResult {
  requests: number;
  /** connect + read + write + timeout errors. */
  socketErrors: number;
  non2xx: number;
  output: string;
}

/** Parses wrk's summary: requests, socket errors and non-2xx answers. */
export function parseWrk(output: string): WrkResult {
  const requests = Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  return { requests, socketErrors, non2xx, output };
}

/**
 * wrk for at most `maxSeconds`, each connection pausing `pauseMs` between requests (wrk's Lua
 * `delay()`), so the load is steady but leaves CPU to HAProxy and the worker on a small machine.
 */
export function startWrk(url: string, extra: string[], pauseMs: number, maxSeconds = 120): Started {
  const script = join(tempDir('bamboo-wrk-'), 'pace.lua');
  writeFileSync(script, `function delay()\n  return ${pauseMs}\nend\n`);
  return startProcess('wrk', ['-t1', `-d${maxSeconds}s`, '--timeout', '5s', '-s', script, ...extra, url]);
}

export async function stopWrk(w: Started): Promise<WrkResult> {
  try {
    process.kill(w.pid, 'SIGINT');
  } catch {
    /* already finished */
  }
  await Promise.race([w.exited, sleep(10000)]);
  return parseWrk(w.output());
}
