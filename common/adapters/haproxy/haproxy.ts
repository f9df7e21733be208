/**
 * Managed mode (HAProxy.ReloadCommand empty): the worker runs HAProxy itself. This starts `haproxy -W
 * -db -dR -f <cfg> -p <pidfile> -S <master socket>`, keeps the master PID from spawn, reloads
 * hitlessly with SIGUSR2 (the master re-executes itself and hands the listening sockets to the new
 * worker), confirms each reload on the master CLI (`show proc`: a new worker PID, or a failed-reload
 * count), and restarts HAProxy if it dies. `-dR` (no SO_REUSEPORT) makes a second HAProxy on the same
 * port fail loudly instead of silently splitting traffic; reloads do not need SO_REUSEPORT because
 * the sockets are passed on. Command mode and the interface both implement: process.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { HAProxyOutputLog, LineSplitter, type OutputCounts } from './haproxy-log.js';
import { haproxyEnv } from './haproxy-sandbox.js';
import { killGroup, MAX_OUTPUT } from './commands.js';
import { alive, cliCommand, masterStatus, settledMasterStatus, sleep } from './master-cli.js';
import type { HAProxyProcess, HAProxyState, ReloadResult } from './process.js';
import type { Logger } from '../../log.js';
import { Backoff, monotonicNow } from '../../pacing.js';
import { alertSummary, parseShowProc, type ProcInfo } from '../../core/reload-alerts.js';

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
    // HAProxy's output is summarised, not relayed line by line (common/adapters/haproxy/haproxy-log.ts). The output of
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
