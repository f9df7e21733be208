/**
 * HAProxy process adapter: runs the validation, reload and cleanup commands with timeouts, and
 * (in managed mode) runs HAProxy itself in master-worker mode.
 *
 * Two ways to reload, chosen by `HAProxy.ReloadCommand`:
 * - command mode (Bamboo's): the configured shell command is run with `sh -c`; HAProxy's lifecycle
 *   belongs to whoever installed that command (systemd, a container entrypoint, ...).
 * - managed mode (ReloadCommand empty): this module starts `haproxy -W -db -dR -f <cfg> -p <pidfile>
 *   -S <master socket>`, keeps the master PID from spawn, reloads hitlessly with SIGUSR2 (the master
 *   re-executes itself and hands the listening sockets to the new worker), confirms each reload on the
 *   master CLI (`show proc`: a new worker PID, or a failed-reload count), and restarts HAProxy if it
 *   dies. `-dR` (no SO_REUSEPORT) makes a second HAProxy on the same port fail loudly instead of
 *   silently splitting traffic; reloads do not need SO_REUSEPORT because the sockets are passed on.
 *
 * Every command runs in its own process group and is killed as a group (SIGKILL) when it outlives its
 * timeout, so a hung command (or one of its children) cannot stall updates.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { HAProxyOutputLog, LineSplitter, type OutputCounts } from './haproxy-log.js';
import { haproxyEnv, limitedArgv, limitHit, limitReason, sampleUsage, type UsageSample, type ValidationLimits } from './haproxy-sandbox.js';
import type { Logger } from './log.js';
import { Backoff, monotonicNow } from './pacing.js';
import { alertLines } from './reload-alerts.js';

// ------------------------------------------------------------------------------------------------
// Commands with timeouts
// ------------------------------------------------------------------------------------------------

export interface CommandResult {
  /** Exit code 0 within the timeout. */
  ok: boolean;
  code: number | null;
  signal: string | null;
  /** The command outlived its timeout and was killed with its process group. */
  timedOut: boolean;
  /** stdout + stderr, interleaved, at most the last 64 KiB. */
  output: string;
  ms: number;
  /** With `sampleUsage`: what the process used, sampled from /proc while it ran. */
  usage?: UsageSample;
}

export interface RunOptions {
  timeoutMs: number;
  cwd?: string;
  /** Default: PATH only (haproxyEnv()); never the worker's own environment, which holds its secrets. */
  env?: NodeJS.ProcessEnv;
  /** Sample the process's peak memory and CPU time from /proc while it runs. */
  sampleUsage?: boolean;
}

const MAX_OUTPUT = 64 * 1024;

/** Quotes a string for POSIX sh: `it's` -> `'it'\''s'`. */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs a program (no shell) in its own process group. Never rejects: a spawn failure or a timeout
 * comes back as `ok: false`. On timeout the whole group gets SIGKILL.
 */
export function runFile(file: string, args: readonly string[], opts: RunOptions): Promise<CommandResult> {
  const started = monotonicNow();
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? haproxyEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      resolve({ ok: false, code: null, signal: null, timedOut: false, output: (err as Error).message, ms: monotonicNow() - started });
      return;
    }
    let output = '';
    let timedOut = false;
    let settled = false;
    const sampler = opts.sampleUsage ? sampleUsage(child.pid) : null;
    const keep = (b: Buffer) => {
      output += b.toString();
      if (output.length > MAX_OUTPUT * 2) output = output.slice(-MAX_OUTPUT);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const finish = (code: number | null, signal: string | null, extra = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A daemon started by the command may keep the pipes open: stop reading them.
      child.stdout?.destroy();
      child.stderr?.destroy();
      const out = (output + extra).slice(-MAX_OUTPUT);
      const usage = sampler?.stop();
      resolve({ ok: !timedOut && code === 0, code, signal, timedOut, output: out, ms: monotonicNow() - started, ...(usage ? { usage } : {}) });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
      // If even SIGKILL does not produce an exit event, give up waiting.
      setTimeout(() => finish(null, 'SIGKILL', `\n(timed out after ${opts.timeoutMs} ms)`), 2000).unref();
    }, opts.timeoutMs);
    child.on('error', (err) => finish(null, null, err.message));
    child.on('exit', (code, signal) => {
      // Let buffered output arrive, but do not wait for grandchildren holding the pipes.
      const grace = setTimeout(() => finish(code, signal, timedOut ? `\n(timed out after ${opts.timeoutMs} ms)` : ''), 50);
      child.on('close', () => {
        clearTimeout(grace);
        finish(code, signal, timedOut ? `\n(timed out after ${opts.timeoutMs} ms)` : '');
      });
    });
  });
}

/** Runs a shell command line with `sh -c` (see runFile). */
export function runCommand(command: string, opts: RunOptions): Promise<CommandResult> {
  return runFile('/bin/sh', ['-c', command], opts);
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------------

export interface ValidationResult {
  ok: boolean;
  /** The validator's output (HAProxy's [ALERT] lines on failure). */
  output: string;
  timedOut: boolean;
  ms: number;
  /** Line numbers of the validated file that HAProxy's alerts point at (sorted, unique). */
  lines: number[];
  /** A resource limit (HAProxy.ValidationCpuSeconds / ValidationMemoryMB) stopped it; null otherwise. */
  limit?: 'cpu' | 'memory' | null;
  /** With `limit`: one line saying which limit. */
  limitReason?: string;
  /** Peak memory and CPU time sampled while it ran (when limits are set). */
  usage?: UsageSample;
}

export interface ValidatorOptions {
  /** HAProxy.Binary, for the built-in `haproxy -c -f <file>`. */
  binary: string;
  /** HAProxy.ReloadValidationCommand; `{{.}}` or `{}` is replaced by the shell-quoted file path. */
  command?: string;
  timeoutMs: number;
  /** Environment of the validator (default: PATH only). */
  env?: NodeJS.ProcessEnv;
  /** CPU-time and memory limits of the validator (and of a custom command's children). */
  limits?: ValidationLimits;
}

/** The validation command line for a custom ReloadValidationCommand. */
export function validationCommandLine(template: string, path: string): string {
  const quoted = shellQuote(path);
  return template.replace(/\{\{\s*\.\s*\}\}/g, quoted).replace(/\{\}/g, quoted);
}

/**
 * Validates a config file; never rejects (a hung validator is a failed validation). With `limits`,
 * the validator runs under them and a validation they stop says so in `limit` and `limitReason`.
 */
export async function validateConfig(path: string, opts: ValidatorOptions): Promise<ValidationResult> {
  const [file, args] = opts.command ? ['/bin/sh', ['-c', validationCommandLine(opts.command, path)]] : [opts.binary, ['-c', '-f', path]];
  const argv = limitedArgv(file, args, opts.limits);
  const r = await runFile(argv.file, argv.args, { timeoutMs: opts.timeoutMs, env: opts.env, sampleUsage: !!opts.limits });
  const limit = opts.limits && r.usage ? limitHit(r, opts.limits, r.usage) : null;
  return {
    ok: r.ok,
    output: r.output,
    timedOut: r.timedOut,
    ms: r.ms,
    lines: r.ok ? [] : alertLines(r.output, path),
    limit,
    ...(limit && opts.limits ? { limitReason: limitReason(limit, opts.limits) } : {}),
    ...(r.usage ? { usage: r.usage } : {}),
  };
}

/** The `[ALERT]` lines of an output (or its last lines when there are none), for logs and reasons. */
export function alertSummary(output: string, max = 5): string {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const alerts = lines.filter((l) => l.includes('[ALERT]') && !/Error\(s\) found|Fatal errors found/.test(l));
  const pick = (alerts.length ? alerts : lines.slice(-max)).slice(0, max);
  return pick.map((l) => l.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*(config\s*:\s*)?/, '')).join(' | ');
}

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

// ------------------------------------------------------------------------------------------------
// The HAProxy process
// ------------------------------------------------------------------------------------------------

export interface ReloadResult {
  ok: boolean;
  /** One line: what happened (for logs and the status record). */
  reason: string;
  ms: number;
  output: string;
}

export interface HAProxyState {
  mode: 'managed' | 'command';
  /** Managed mode: the master is running. Command mode: always null (unknown). */
  running: boolean | null;
  masterPid: number | null;
  workerPids: number[];
  /** Managed mode: unexpected exits that were restarted. */
  restarts: number;
  /** Managed mode: lines HAProxy wrote, and log lines (info or above) written for them (common/haproxy-log.ts). */
  output?: OutputCounts;
}

/** What the worker needs from HAProxy; one implementation per mode. */
export interface HAProxyProcess {
  readonly mode: 'managed' | 'command';
  /**
   * Managed mode: starts HAProxy on the config file if it exists and HAProxy is not running yet (or
   * adopts a master left running by a previous worker). Resolves `{ ok: false }` when it cannot start;
   * never rejects. Command mode: nothing to do.
   */
  start(): Promise<{ ok: boolean; reason: string; adopted: boolean }>;
  /** Makes HAProxy load the config file now. Never rejects; a failure (or timeout) is `ok: false`. */
  reload(): Promise<ReloadResult>;
  state(): HAProxyState;
  /**
   * Managed mode: the pids of old HAProxy workers (generations replaced by a reload, still finishing
   * their connections), oldest first; null when the master does not answer. Absent in command mode.
   */
  oldWorkers?(): Promise<number[] | null>;
  /**
   * Stops watching HAProxy. Managed mode stops it (soft stop, then SIGTERM, then SIGKILL) unless
   * `keep` is set; command mode never stops anything. Idempotent.
   */
  close(opts?: { keep?: boolean }): Promise<void>;
}

/** Bamboo's mode: `HAProxy.ReloadCommand` run with `sh -c` and a timeout. */
export class CommandHAProxy implements HAProxyProcess {
  readonly mode = 'command' as const;
  constructor(
    private readonly command: string,
    private readonly timeoutMs: number,
    private readonly log: Logger,
    /** Environment of the reload command (default: PATH only). */
    private readonly env?: NodeJS.ProcessEnv,
  ) {}

  async start(): Promise<{ ok: boolean; reason: string; adopted: boolean }> {
    return { ok: true, reason: 'command mode: HAProxy is started by the reload command', adopted: false };
  }

  async reload(): Promise<ReloadResult> {
    const r = await runCommand(this.command, { timeoutMs: this.timeoutMs, env: this.env });
    if (r.ok) return { ok: true, reason: 'reload command succeeded', ms: r.ms, output: r.output };
    const why = r.timedOut
      ? `reload command timed out after ${this.timeoutMs} ms and was killed`
      : `reload command failed (${r.signal ? `signal ${r.signal}` : `exit ${r.code}`})`;
    this.log.warn({ output: r.output.slice(-2000) }, 'reload command failed');
    return { ok: false, reason: why, ms: r.ms, output: r.output };
  }

  state(): HAProxyState {
    return { mode: 'command', running: null, masterPid: null, workerPids: [], restarts: 0 };
  }

  async close(): Promise<void> {
    /* command mode leaves HAProxy serving */
  }
}

export interface ManagedOptions {
  binary: string;
  configPath: string;
  pidFile: string;
  /** Path of the master CLI socket (`-S`). */
  masterSocket: string;
  /** Bound for starts and reload confirmations. */
  timeoutMs: number;
  log: Logger;
  /** Extra command-line arguments (default `['-dR']`). */
  extraArgs?: string[];
  /** HAProxy's environment (default: PATH only; never the worker's, which holds its secrets). */
  env?: NodeJS.ProcessEnv;
  /**
   * Backoff before restarting a master that died. The first restart after a master that ran for a
   * while is immediate (no HAProxy is serving meanwhile); a master that dies again within
   * `crashLoopMs` of its start, or a start that fails, waits this long, doubling per consecutive
   * failure up to 30 s (default 500 ms).
   */
  restartDelayMs?: number;
  /** A master that dies sooner than this after its start counts as a failed start (default 10 s). */
  crashLoopMs?: number;
  /** How often an adopted master (not our child: no exit event) is checked (default 200 ms). */
  adoptedPollMs?: number;
  /** Soft-stop grace on close before SIGTERM (default 5 s). */
  stopGraceMs?: number;
}

interface ProcInfo {
  masterPid: number;
  reloads: number;
  failed: number;
  /** Current workers (not the old ones still finishing connections). */
  workers: Array<{ pid: number; reloads: number }>;
  /** Old workers: generations replaced by a reload, still finishing their connections. */
  oldWorkers: Array<{ pid: number; reloads: number }>;
}

/** Parses the master CLI's `show proc` (HAProxy 2.6). */
export function parseShowProc(text: string): ProcInfo | null {
  let master: ProcInfo | null = null;
  let section = 'master';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      if (/^# workers/.test(line)) section = 'workers';
      else if (/^# old workers/.test(line)) section = 'old';
      else if (/^# programs/.test(line)) section = 'programs';
      continue;
    }
    const m = /^(\d+)\s+(\w+)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?/.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    if (m[2] === 'master') master = { masterPid: pid, reloads: Number(m[3]), failed: m[4] ? Number(m[4]) : 0, workers: [], oldWorkers: [] };
    else if (m[2] === 'worker' && section === 'workers' && master) master.workers.push({ pid, reloads: Number(m[3]) });
    else if (m[2] === 'worker' && section === 'old' && master) master.oldWorkers.push({ pid, reloads: Number(m[3]) });
  }
  return master;
}

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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
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
async function settledMasterStatus(pid: number, configPath: string, ms = 3000): Promise<'ours' | 'other' | 'gone'> {
  const deadline = monotonicNow() + ms;
  for (;;) {
    const s = masterStatus(pid, configPath);
    if (s !== 'unsure') return s;
    // Still unreadable after the bound: a process we cannot inspect is not one we may adopt.
    if (monotonicNow() >= deadline) return 'other';
    await sleep(5);
  }
}

/** Built-in mode: this process runs HAProxy in master-worker mode. */
export class ManagedHAProxy implements HAProxyProcess {
  readonly mode = 'managed' as const;
  private child: ChildProcess | null = null;
  private pid: number | null = null;
  /** A master found through the pidfile rather than spawned (no exit events: polled). */
  private adopted = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private consecutiveFailures = 0;
  private readonly restartBackoff: Backoff;
  /** When the running master was started or adopted (for crash-loop detection). */
  private startedAt = 0;
  private restarts = 0;
  private lastWorkers: number[] = [];
  private closed = false;
  /** Serialises start, reload, restart and close. */
  private lock: Promise<unknown> = Promise.resolve();
  /** Set once HAProxy ran successfully: only then is an unexpected exit restarted. */
  private everStarted = false;
  /** The master's output since the reload in progress began (null: no reload in progress). */
  private reloadOutput: string | null = null;
  /** HAProxy's output lines and the log lines written for them, across restarts. */
  private readonly outputCounts: OutputCounts = { lines: 0, logged: 0 };

  constructor(private readonly opts: ManagedOptions) {
    const initial = opts.restartDelayMs ?? 500;
    this.restartBackoff = new Backoff(initial, Math.min(30000, initial * 64));
  }

  private get args(): string[] {
    const o = this.opts;
    return ['-W', '-db', ...(o.extraArgs ?? ['-dR']), '-f', o.configPath, '-p', o.pidFile, '-S', `${o.masterSocket},mode,600`];
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => undefined);
    return next;
  }

  state(): HAProxyState {
    return {
      mode: 'managed', running: this.pid !== null && alive(this.pid), masterPid: this.pid, workerPids: [...this.lastWorkers], restarts: this.restarts,
      output: { ...this.outputCounts },
    };
  }

  start(): Promise<{ ok: boolean; reason: string; adopted: boolean }> {
    return this.serial(() => this.startLocked());
  }

  private async startLocked(): Promise<{ ok: boolean; reason: string; adopted: boolean }> {
    if (this.closed) return { ok: false, reason: 'closed', adopted: false };
    if (this.pid !== null && alive(this.pid)) return { ok: true, reason: 'already running', adopted: this.adopted };
    // A master left by a previous worker (e.g. killed with -9) keeps serving: adopt it rather than
    // start a second HAProxy on the same ports.
    const previous = await this.readPidFile();
    if (previous !== null && (await settledMasterStatus(previous, this.opts.configPath)) === 'ours') {
      this.pid = previous;
      this.adopted = true;
      this.everStarted = true;
      this.startedAt = monotonicNow();
      this.watchAdopted();
      await this.refreshWorkers();
      this.opts.log.info({ pid: previous }, 'adopted running haproxy master');
      return { ok: true, reason: `adopted running master ${previous}`, adopted: true };
    }
    if (!existsSync(this.opts.configPath)) return { ok: false, reason: 'no config file yet', adopted: false };
    return this.spawnMaster();
  }

  /**
   * The master's pid from the pidfile. A reloading master truncates and rewrites the file, so an empty
   * read is retried for a moment before it counts as "no pidfile".
   */
  private async readPidFile(): Promise<number | null> {
    for (let attempt = 0; ; attempt++) {
      let text: string;
      try {
        text = readFileSync(this.opts.pidFile, 'utf8').trim();
      } catch {
        return null;
      }
      const n = Number(text.split('\n')[0]);
      if (text !== '') return Number.isInteger(n) && n > 1 ? n : null;
      // A busy machine can take a while between the truncation and the write: up to 3 s.
      if (attempt >= 300) return null;
      await sleep(10);
    }
  }

  private async spawnMaster(): Promise<{ ok: boolean; reason: string; adopted: boolean }> {
    const started = monotonicNow();
    let child: ChildProcess;
    try {
      // Its own process group: a Ctrl-C to the worker's terminal does not stop HAProxy, and stop()
      // can signal master and workers together.
      child = spawn(this.opts.binary, this.args, { env: this.opts.env ?? haproxyEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      return { ok: false, reason: `cannot start haproxy: ${(err as Error).message}`, adopted: false };
    }
    let output = '';
    // HAProxy's output is summarised, not relayed line by line (common/haproxy-log.ts). The output of
    // a reload or start in progress is also kept whole, so a refused one can be blamed on an app.
    const outLog = new HAProxyOutputLog(this.opts.log, { counts: this.outputCounts });
    const splitters = [child.stdout, child.stderr].map((stream) => {
      const splitter = new LineSplitter((line) => outLog.line(line));
      stream?.on('data', (b: Buffer) => {
        const text = b.toString();
        output = (output + text).slice(-MAX_OUTPUT);
        if (this.reloadOutput !== null) this.reloadOutput = (this.reloadOutput + text).slice(-MAX_OUTPUT);
        splitter.push(text);
      });
      return splitter;
    });
    child.once('close', () => {
      for (const s of splitters) s.end();
      outLog.close();
    });
    // HAProxy ignores SIGPIPE, so it outlives these pipes if the worker dies.
    child.stdout?.on('error', () => undefined);
    child.stderr?.on('error', () => undefined);
    let exited = false;
    let drained = false;
    child.once('close', () => (drained = true));
    child.once('error', () => (exited = true));
    child.once('exit', (code, signal) => {
      exited = true;
      if (this.child !== child) return;
      this.child = null;
      this.pid = null;
      this.lastWorkers = [];
      this.onUnexpectedExit(`exit ${code ?? signal}`);
    });
    this.child = child;
    this.pid = child.pid ?? null;
    this.adopted = false;
    // Wait until the master answers with a worker, or exits.
    const deadline = started + this.opts.timeoutMs;
    while (monotonicNow() < deadline) {
      if (exited) break;
      const info = await this.showProc().catch(() => null);
      if (info && info.workers.length > 0) {
        this.lastWorkers = info.workers.map((w) => w.pid);
        this.everStarted = true;
        this.startedAt = monotonicNow();
        this.opts.log.info({ pid: this.pid, workers: this.lastWorkers, ms: monotonicNow() - started }, 'haproxy started');
        return { ok: true, reason: 'haproxy started', adopted: false };
      }
      await sleep(20);
    }
    // 'exit' can come before the pipes deliver the last alerts (the worker maps them to apps).
    for (let i = 0; exited && !drained && i < 50; i++) await sleep(10);
    if (!exited) {
      // Did not come up in time: stop it so the next attempt starts clean.
      this.child = null;
      this.pid = null;
      killGroup(child.pid);
    }
    const why = exited ? `haproxy exited on start: ${alertSummary(output)}` : `haproxy did not start within ${this.opts.timeoutMs} ms`;
    this.opts.log.error({ output: output.slice(-2000) }, 'haproxy failed to start');
    return { ok: false, reason: why, adopted: false };
  }

  private watchAdopted(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => {
      if (this.pid === null || !this.adopted) return;
      // `unsure` (the master re-executing itself on a reload) is left to the next poll.
      const status = masterStatus(this.pid, this.opts.configPath);
      if (status === 'gone' || status === 'other') {
        this.pid = null;
        this.adopted = false;
        this.lastWorkers = [];
        this.onUnexpectedExit('adopted master gone');
      }
    }, this.opts.adoptedPollMs ?? 200);
    this.pollTimer.unref();
  }

  private onUnexpectedExit(how: string): void {
    if (this.closed) return;
    this.opts.log.error({ how }, 'haproxy master exited unexpectedly');
    if (!this.everStarted || this.restartTimer) return;
    // A master that served for a while is replaced at once: every moment without one refuses
    // connections. One that keeps dying right after its start backs off instead of spinning.
    // (A failed start leaves startedAt at 0, so repeated failures keep backing off.)
    if (this.startedAt > 0 && monotonicNow() - this.startedAt >= (this.opts.crashLoopMs ?? 10000)) {
      this.consecutiveFailures = 0;
      this.restartBackoff.reset();
    }
    this.startedAt = 0;
    const delay = this.consecutiveFailures === 0 ? 0 : this.restartBackoff.fail();
    this.consecutiveFailures++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      void this.serial(async () => {
        if (this.closed || (this.pid !== null && alive(this.pid))) return;
        const r = await this.startLocked();
        if (r.ok) {
          this.restarts++;
          this.opts.log.warn({ pid: this.pid, delayMs: delay }, 'haproxy restarted');
        } else {
          this.onUnexpectedExit(r.reason);
        }
      });
    }, delay);
    this.restartTimer.unref();
  }

  private async showProc(): Promise<ProcInfo | null> {
    return parseShowProc(await cliCommand(this.opts.masterSocket, 'show proc', 1000));
  }

  private async refreshWorkers(): Promise<void> {
    const info = await this.showProc().catch(() => null);
    if (info) this.lastWorkers = info.workers.map((w) => w.pid);
  }

  reload(): Promise<ReloadResult> {
    return this.serial(() => this.reloadLocked());
  }

  async oldWorkers(): Promise<number[] | null> {
    if (this.pid === null) return null;
    const info = await this.showProc().catch(() => null);
    // Most reloads survived first: the oldest generation.
    return info ? [...info.oldWorkers].sort((a, b) => b.reloads - a.reloads).map((w) => w.pid) : null;
  }

  private async reloadLocked(): Promise<ReloadResult> {
    const started = monotonicNow();
    if (this.closed) return { ok: false, reason: 'closed', ms: 0, output: '' };
    if (this.pid === null || !alive(this.pid)) {
      this.reloadOutput = '';
      try {
        const r = await this.startLocked();
        return { ok: r.ok, reason: r.ok ? (r.adopted ? r.reason : 'haproxy started') : r.reason, ms: monotonicNow() - started, output: r.ok ? '' : this.reloadOutput };
      } finally {
        this.reloadOutput = null;
      }
    }
    const pid = this.pid;
    const before = await this.showProc().catch(() => null);
    if (!before) {
      return { ok: false, reason: 'master CLI not answering before reload', ms: monotonicNow() - started, output: '' };
    }
    const oldWorkers = new Set(before.workers.map((w) => w.pid));
    // The master's alerts about the new config (`cannot bind socket ... [file:line] for proxy X`) go
    // into a failed reload's output, so the worker can tell which app caused it.
    this.reloadOutput = '';
    try {
      return await this.signalReload(pid, before, oldWorkers, started);
    } finally {
      this.reloadOutput = null;
    }
  }

  private async signalReload(pid: number, before: ProcInfo, oldWorkers: Set<number>, started: number): Promise<ReloadResult> {
    try {
      process.kill(pid, 'SIGUSR2');
    } catch (err) {
      return { ok: false, reason: `cannot signal master ${pid}: ${(err as Error).message}`, ms: monotonicNow() - started, output: '' };
    }
    // The master re-executes itself: its CLI is away for a moment, then shows the reload counted and
    // either a new worker (success) or a failed-reload count (it keeps the old workers).
    const deadline = started + this.opts.timeoutMs;
    while (monotonicNow() < deadline) {
      await sleep(10);
      if (!alive(pid)) return { ok: false, reason: 'haproxy master exited during reload', ms: monotonicNow() - started, output: '' };
      const info = await this.showProc().catch(() => null);
      if (!info || info.reloads <= before.reloads) continue;
      const fresh = info.workers.filter((w) => !oldWorkers.has(w.pid));
      if (fresh.length > 0) {
        this.lastWorkers = info.workers.map((w) => w.pid);
        return { ok: true, reason: `new worker ${fresh.map((w) => w.pid).join(',')}`, ms: monotonicNow() - started, output: '' };
      }
      if (info.failed > 0) {
        // The alerts come before the master says "Loading failure!"; give the pipe a moment to deliver them.
        for (let i = 0; i < 20 && !/Loading failure/.test(this.reloadOutput ?? ''); i++) await sleep(10);
        return { ok: false, reason: 'haproxy rejected the new configuration (master kept the old workers)', ms: monotonicNow() - started, output: this.reloadOutput ?? '' };
      }
    }
    return { ok: false, reason: `reload not confirmed within ${this.opts.timeoutMs} ms`, ms: monotonicNow() - started, output: '' };
  }

  close(opts: { keep?: boolean } = {}): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.restartTimer = null;
    this.pollTimer = null;
    return this.serial(async () => {
      const pid = this.pid;
      const child = this.child;
      this.child = null;
      this.pid = null;
      if (pid === null) return;
      if (opts.keep) {
        this.opts.log.info({ pid }, 'leaving haproxy running');
        child?.stdout?.destroy();
        child?.stderr?.destroy();
        child?.unref();
        return;
      }
      const gone = child
        ? new Promise<void>((r) => {
            if (child.exitCode !== null || child.signalCode !== null) r();
            else child.once('exit', () => r());
          })
        : (async () => {
            const running = () => ['ours', 'unsure'].includes(masterStatus(pid, this.opts.configPath));
            while (running()) await sleep(50);
          })();
      const within = (ms: number) => Promise.race([gone.then(() => true), sleep(ms).then(() => false)]);
      // Soft stop: workers finish their connections (bounded by hard-stop-after) and the master exits.
      try {
        process.kill(pid, 'SIGUSR1');
      } catch {
        return;
      }
      if (await within(this.opts.stopGraceMs ?? 5000)) return;
      killGroup(pid, 'SIGTERM');
      if (await within(2000)) return;
      killGroup(pid, 'SIGKILL');
      await within(2000);
    });
  }
}
