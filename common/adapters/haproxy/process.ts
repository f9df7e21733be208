/**
 * What the worker needs from HAProxy, one implementation per mode (chosen by `HAProxy.ReloadCommand`):
 * - command mode (Bamboo's): the configured shell command is run with `sh -c`; HAProxy's lifecycle
 *   belongs to whoever installed that command (systemd, a container entrypoint, ...). Here.
 * - managed mode (ReloadCommand empty): the worker runs HAProxy itself (haproxy.ts).
 */
import type { Logger } from '../../log.js';
import type { OutputCounts } from './haproxy-log.js';
import { runCommand } from './commands.js';

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
  /** Managed mode: lines HAProxy wrote, and log lines (info or above) written for them (haproxy-log.ts). */
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
