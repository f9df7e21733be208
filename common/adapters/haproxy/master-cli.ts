/**
 * HAProxy's master process from the outside: its CLI (a UNIX socket answering one command per
 * connection), whether a PID is alive, and whether it is an HAProxy master running our config (so a
 * restarted worker adopts its own HAProxy and never another one).
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { monotonicNow } from '../../pacing.js';

/** Sends one command to a UNIX-socket CLI and returns the whole answer. */
export function cliCommand(socketPath: string, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let out = '';
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      sock.destroy();
      if (err) reject(err);
      else resolve(out);
    };
    sock.setTimeout(timeoutMs, () => finish(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`)));
    sock.on('connect', () => sock.end(command + '\n'));
    sock.on('data', (b) => (out += b.toString()));
    sock.on('end', () => finish());
    sock.on('close', () => finish());
    sock.on('error', (err) => finish(err));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The process exists (signal 0 reaches it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * What /proc says `pid` is: an HAProxy master running on `configPath` (`ours`), something else
 * (`other`), no longer running (`gone`, zombies included), or `unsure`. A master re-executes itself on
 * every reload, and while the kernel swaps its image its command line reads empty for a few
 * milliseconds (measured: 2% of reads taken while reloading every 100 ms); that is `unsure`, never
 * `other`, or a reload would look like the master vanished and a second HAProxy would be started.
 */
export function masterStatus(pid: number, configPath: string): 'ours' | 'other' | 'gone' | 'unsure' {
  let cmdline: string;
  let stat: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return alive(pid) ? 'unsure' : 'gone';
  }
  if (/^\d+ \(.*\) Z/.test(stat)) return 'gone';
  if (cmdline === '') return 'unsure';
  const argv = cmdline.split('\0');
  const f = argv.indexOf('-f');
  return argv.includes('-W') && f >= 0 && argv[f + 1] === configPath ? 'ours' : 'other';
}

/** Waits out an `unsure` moment (a re-exec in progress) for at most `ms`. */
export async function settledMasterStatus(pid: number, configPath: string, ms = 3000): Promise<'ours' | 'other' | 'gone'> {
  const deadline = monotonicNow() + ms;
  for (;;) {
    const s = masterStatus(pid, configPath);
    if (s !== 'unsure') return s;
    // Still unreadable after the bound: a process we cannot inspect is not one we may adopt.
    if (monotonicNow() >= deadline) return 'other';
    await sleep(5);
  }
}
