/**
 * The apply stage: puts a planned config in force, by a reload or through HAProxy's Runtime API,
 * and keeps the server-state file in step. It returns what happened and never schedules anything:
 * the loop (worker/reconciler.ts, through worker/apply-decisions.ts) decides retries, quarantine and the
 * running model from the result.
 */
import { readFile } from 'node:fs/promises';
import { type HAProxyProcess, type ReloadResult } from '../common/adapters/haproxy/process.js';
import { runCommand } from '../common/adapters/haproxy/commands.js';
import { Drainer, resolveHost, type RuntimeApi } from '../common/adapters/haproxy/haproxy-runtime.js';
import { dropServerStateLines, EMPTY_SERVER_STATE, filterServerState, planRuntime, verifyRuntime } from '../common/core/server-state.js';
import { serverLines, type ServerChange } from '../common/core/config-diff.js';
import type { Logger } from '../common/log.js';
import type { ConfigFiles } from './config-files.js';
import type { RunningModel, StageTimes } from './outcome.js';

/** A server line the config puts in maintenance. */
const DISABLED = /\sdisabled(\s|$)/;

export interface RuntimeOptions {
  /** The admin socket (also used to save server state before a reload). */
  api: RuntimeApi;
  /** False: every change reloads; the socket only saves server state. */
  enabled: boolean;
  drainTimeoutMs: number;
}

export interface ApplierOptions {
  files: ConfigFiles;
  haproxy: HAProxyProcess;
  runtime: RuntimeOptions | null;
  /** HAProxy's server-state-file (saved before each reload); empty: none. */
  serverStateFile?: string;
  /** HAProxy.ReloadCleanupCommand (empty: none). */
  cleanupCommand?: string;
  /** Environment of the cleanup command (default: PATH only). */
  commandEnv?: NodeJS.ProcessEnv;
  commandTimeoutMs: number;
  log: Logger;
}

/**
 * A runtime change's result. `failed`: HAProxy's state may not match (fall back to a reload);
 * `unwritten`: HAProxy runs the new servers but OutputPath could not be written.
 */
export type RuntimeResult =
  | { kind: 'applied'; changed: number; drained: number; backends: number }
  | { kind: 'failed'; reason: string }
  | { kind: 'unwritten'; reason: string };

export class Applier {
  /** Servers leaving rotation through the Runtime API, waiting to be put in maintenance. */
  readonly drainer: Drainer | null = null;
  /** Runtime changes that failed or did not verify and fell back to a reload. */
  runtimeFallbacks = 0;
  /** Servers added with `add server` by runtime changes that verified. */
  serversAdded = 0;
  /** The last runtime failure (null: none since start). */
  lastRuntimeError: { at: number; reason: string } | null = null;
  /**
   * HAProxy's server state may differ from the running text (a runtime change failed half-way): the
   * next reload saves no server state, so the new file is the whole truth.
   */
  private serverStateUntrusted = false;
  /** The server lines of the last config whose state was saved (the next reload's running config). */
  private savedLines: { text: string; lines: Map<string, string> } | null = null;

  constructor(private readonly o: ApplierOptions) {
    if (o.runtime?.enabled) {
      this.drainer = new Drainer(o.runtime.api, o.runtime.drainTimeoutMs, (err) => o.log.warn({ err }, 'could not finish draining a server'));
    }
  }

  /** Renames the validated file over OutputPath (WriteError when it cannot), saves the server state and reloads. */
  async reload(plan: { tempPath: string; text: string }, previous: RunningModel | null, stages: StageTimes): Promise<ReloadResult> {
    await stages.timed('install', () => this.o.files.install(plan.tempPath));
    await stages.timed('reload', () => this.saveServerState(previous, plan.text));
    const reload = await stages.timed('reload', () => this.o.haproxy.reload());
    if (reload.ok) {
      // The new process starts from the file (and the filtered server state): nothing is draining.
      this.serverStateUntrusted = false;
      this.drainer?.clear();
    }
    return reload;
  }

  /**
   * After a refused reload: keeps the candidate as `.last-failed` and puts the previous file back,
   * so a restart of HAProxy comes up on it.
   */
  async afterFailedReload(text: string, previous: RunningModel | null, reload: ReloadResult): Promise<void> {
    await this.o.files.keepLastFailed(text, `reload failed: ${reload.reason}\n${reload.output}`);
    if (!previous) return;
    await this.o.files.writeAtomic(this.o.files.outputPath, previous.text).catch((err: Error) =>
      this.o.log.error({ err }, 'could not restore the last good config'),
    );
  }

  /** After a reload the loop has recorded: `.last-good`, then the cleanup command. */
  async afterReload(text: string, stages: StageTimes): Promise<void> {
    await this.o.files.keepLastGood(text);
    await stages.timed('cleanup', () => this.cleanup());
  }

  /**
   * Applies a server-only change: sends the commands in batches, verifies every changed server with
   * `show servers state` (of the changed backends only), drops the changed servers from the
   * server-state-file (a restart on the new file must not restore their old state), then writes the
   * same config to OutputPath.
   */
  async runtime(plan: { text: string; changes: ServerChange[] }, stages: StageTimes): Promise<RuntimeResult> {
    const rt = this.o.runtime!;
    const keys = plan.changes.map((c) => `${c.backend}/${c.server}`);
    const backends = [...new Set(plan.changes.map((c) => c.backend))];
    let drains: string[] = [];
    try {
      await stages.timed('runtime', async () => {
        const rp = await planRuntime(plan.changes, resolveHost);
        this.drainer?.cancel(rp.enabled);
        await rt.api.serial(async () => {
          await rt.api.setServers(rp.commands);
          const { states } = await rt.api.serversState(backends);
          const problems = verifyRuntime(rp, states);
          if (problems.length > 0) {
            const more = problems.length > 3 ? ` and ${problems.length - 3} more` : '';
            throw new Error(`HAProxy's state does not match the config: ${problems.slice(0, 3).join('; ')}${more}`);
          }
        });
        // Before OutputPath says the new config (install, below), not before the commands: until
        // then a restart comes up on the old file, whose saved server state still fits it. Here it
        // is off the path to traffic.
        await this.dropServerState(keys);
        drains = rp.drains;
        this.serversAdded += rp.added.length;
      });
    } catch (err) {
      const reason = (err as Error).message;
      this.runtimeFallbacks++;
      this.lastRuntimeError = { at: Date.now(), reason };
      this.serverStateUntrusted = true;
      this.o.log.warn({ err: reason, servers: keys.length }, 'runtime change failed; reloading instead');
      return { kind: 'failed', reason };
    }
    // HAProxy now runs the new model: the file must say the same, so a reload or restart starts from it.
    try {
      await stages.timed('install', async () => this.o.files.install(await this.o.files.writeTemp(plan.text)));
    } catch (err) {
      return { kind: 'unwritten', reason: (err as Error).message };
    }
    this.drainer?.add(drains);
    return { kind: 'applied', changed: keys.length, drained: drains.length, backends: backends.length };
  }

  /**
   * Before a reload: saves HAProxy's server state (health, maintenance, drain, weight) to the
   * server-state-file, keeping only servers whose line is the same in the running and the new
   * config and not `disabled`. HAProxy restores a saved server's port, weight and maintenance over the file, so a
   * server that changed (a slot given to another task, freed, or re-enabled) must start from the
   * file. Without a trusted running state (unknown config, a failed runtime change, no socket) the
   * file restores nothing.
   */
  private async saveServerState(previous: RunningModel | null, nextText: string): Promise<void> {
    const path = this.o.serverStateFile;
    if (!path) return;
    let content = EMPTY_SERVER_STATE;
    if (this.o.runtime && previous?.confirmed && !this.serverStateUntrusted) {
      try {
        const { raw } = await this.o.runtime.api.serversState();
        // The running config's lines were the new config's at the last save (5 MB at 10,000 apps).
        const before = this.savedLines?.text === previous.text ? this.savedLines.lines : serverLines(previous.text);
        const after = serverLines(nextText);
        this.savedLines = { text: nextText, lines: after };
        // A server the config disables (a free slot, an unready task) starts in maintenance from the
        // file anyway: its saved state adds nothing but size (most servers, with spare slots).
        content = filterServerState(raw, (key) => {
          const line = before.get(key);
          return line !== undefined && line === after.get(key) && !DISABLED.test(line);
        });
      } catch (err) {
        this.o.log.info({ err }, 'could not save server state before the reload; servers start from the config');
      }
    }
    await this.o.files.writeAtomic(path, content).catch((err: Error) => this.o.log.warn({ err, path }, 'could not write the server state file'));
  }

  /** After a runtime change: the server-state-file must not restore these servers' old state. */
  private async dropServerState(keys: readonly string[]): Promise<void> {
    const path = this.o.serverStateFile;
    if (!path || keys.length === 0) return;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return;
    }
    // Only the dropped servers' lines are looked at: the file holds every server, and a runtime
    // change waits for this before installing its config.
    const next = dropServerStateLines(text, keys);
    if (next !== text) await this.o.files.writeAtomic(path, next);
  }

  private async cleanup(): Promise<void> {
    if (!this.o.cleanupCommand) return;
    const r = await runCommand(this.o.cleanupCommand, { timeoutMs: this.o.commandTimeoutMs, env: this.o.commandEnv });
    if (!r.ok) {
      this.o.log.warn({ timedOut: r.timedOut, code: r.code, output: r.output.slice(-1000) }, 'reload cleanup command failed');
    }
  }
}
