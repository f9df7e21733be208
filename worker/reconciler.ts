/**
 * The reconcile loop: desired state (Marathon snapshot + rules) -> template data -> haproxy.cfg ->
 * validate -> install -> reload, converging HAProxy on whatever ZooKeeper holds now.
 *
 * Level-triggered: every trigger (hint, gap, new publisher, reconnect, timer, retry) is only a reason
 * to look; a reconcile always reads the full desired state and never branches on what changed. One
 * reconcile runs at a time; triggers that arrive meanwhile collapse into one pending slot (latest
 * wins). Three separately named settings pace it:
 * - `debounceMs` (Worker.DebounceMs, "wait before update"): a trigger that finds the worker idle (no
 *   reconcile running, none ended within the last `debounceMs`) starts a reconcile at once, so a
 *   lone hint costs no wait; triggers that arrive while one runs, or soon after, wait this long
 *   after the first of them, so the rest of a burst is read once, after it;
 * - `minUpdateIntervalMs` (Worker.MinUpdateIntervalMs, "update rate"): least time between the starts
 *   of two reconciles;
 * - `minReloadIntervalMs` (Worker.MinReloadIntervalMs, "minimum reload interval"): least time between
 *   two reloads. A reconcile that is ready to reload too early waits; if newer triggers arrived while
 *   it waited it starts over with a fresh read, so the reload carries the latest state.
 * - `maxReloadsPerMinute` and `maxOldGenerations` (Worker.MaxReloadsPerMinute, Worker.MaxOldGenerations)
 *   bound reload storms: the reload waits for a free place in the last minute's budget, and (managed
 *   mode) until fewer old HAProxy generations are still finishing their connections, for at most
 *   `oldGenerationsWaitMs`. The wait is visible in `reloadWait` (status) and in metrics.
 * The loop's pacing is common/pacing.ts (LatestWins, Backoff, RateWindow) on a monotonic clock: a
 * wall-clock step changes no wait.
 *
 * Each reconcile ends in exactly one ApplyOutcome (`noop | runtime | reloaded | invalid | reload-failed |
 * write-failed`) with a one-line reason. A config that fails validation never reaches OutputPath; a
 * failed read of the desired state is a `noop` (the last good config keeps serving, nothing is emptied);
 * a failed reload restores the last good file and is retried with exponential backoff; a candidate
 * that cannot be written or installed (disk full, read-only) is `write-failed`, its temp file removed,
 * and retried after a short backoff.
 *
 * The reconciler keeps the model HAProxy runs (`running`: text, template data, origins, hash, server
 * slots). When a new config differs from it only in server lines the Runtime API can change (task
 * churn: a task started, killed, moved, or its health flipped), the change is applied over the admin
 * socket without a reload (`runtime`), verified with `show servers state`, and written to
 * OutputPath as well; a failed or unverified runtime change falls back to validate + reload, never
 * to a silent divergence. Tasks keep their slots from one config to the next (`slots` of the
 * running model are an input of the template data), so a scale changes what server lines say, not
 * which lines exist.
 */
import { EventEmitter } from 'node:events';
import { open, readFile, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { alertSummary, runCommand, sha256, type HAProxyProcess, type ValidationResult } from '../common/haproxy.js';
import {
  diffConfigs,
  Drainer,
  dropServerStateLines,
  EMPTY_SERVER_STATE,
  filterServerState,
  planRuntime,
  serverLines,
  verifyRuntime,
  type RuntimeApi,
  type ServerChange,
} from '../common/haproxy-runtime.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/metrics.js';
import { Backoff, LatestWins, monotonicClock, RateWindow, Sleeper, type Clock, type Timer } from '../common/pacing.js';
import type { HAProxySettings, ServiceRecord, TemplateData, Warning } from '../common/model.js';
import { heldPorts, portRefusals, settingPorts, type Holder, type PortRange } from '../common/port-policy.js';
import { reloadCulprits } from '../common/reload-alerts.js';
import { appsAtLines, TemplateError, type Origin, type Renderer } from '../common/render.js';
import { buildTemplateData, slotTable, TemplateDataMemo } from '../common/template-data.js';
import type { ApplyOutcome, DesiredState, DesiredStateSource, OutcomeKind, QuarantinedApp, ReloadWait, RunningModel, Stage } from './outcome.js';
import { NoSnapshotError } from './outcome.js';
import { appsById, changedAgainstText, changedSinceLastGood, quarantineKey } from './quarantine.js';

/** How often the old generations are counted while a reload waits for them. */
const OLD_GENERATIONS_POLL_MS = 250;

export interface ReconcilerOptions {
  outputPath: string;
  renderer: Renderer;
  settings: HAProxySettings;
  source: DesiredStateSource;
  haproxy: HAProxyProcess;
  /** Validates a candidate file (built-in `haproxy -c` or ReloadValidationCommand). */
  validate: (path: string) => Promise<ValidationResult>;
  /** HAProxy.ReloadCleanupCommand (empty: none). */
  cleanupCommand?: string;
  /** Environment of the cleanup command (default: PATH only). */
  commandEnv?: NodeJS.ProcessEnv;
  commandTimeoutMs: number;
  debounceMs: number;
  minUpdateIntervalMs: number;
  minReloadIntervalMs: number;
  log: Logger;
  metrics: Metrics;
  /** The config HAProxy already runs (managed mode started it on the existing file). */
  initial?: { hash: string; text: string } | null;
  /** Backoff of retries after a failed reload or read (default 500 ms doubling to 30 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Outcomes kept in `history`. */
  historySize?: number;
  /** Worker.MaxReloadsPerMinute: reloads in any 60 s (0: no bound). */
  maxReloadsPerMinute?: number;
  /**
   * Worker.MaxOldGenerations: a reload waits while this many old HAProxy generations still finish
   * their connections (0: no bound; only where `haproxy.oldWorkers` can count them).
   */
  maxOldGenerations?: number;
  /** Worker.OldGenerationsWaitMs: the longest a reload waits for old generations to exit; then it goes ahead. */
  oldGenerationsWaitMs?: number;
  /** The monotonic clock of the loop's pacing, retries and reload slot (tests inject a fake one). */
  clock?: Clock;
  /**
   * The Runtime API (HAProxy.RuntimeApi): server-only changes are applied through this admin socket
   * without a reload. Null or absent: every change reloads.
   */
  runtime?: {
    /** The admin socket (also used to save server state before a reload). */
    api: RuntimeApi;
    /** False: every change reloads; the socket only saves server state. */
    enabled: boolean;
    drainTimeoutMs: number;
  } | null;
  /** HAProxy's server-state-file (saved before each reload); empty: none. */
  serverStateFile?: string;
  /** HAProxy.ServerSlotHeadroom (percent). */
  slotHeadroomPercent?: number;
  /** HAProxy.TcpPortRange: ports apps may bind (default: any; the edge's ports and clashes are refused regardless). */
  tcpPortRange?: PortRange;
}

type Plan =
  | {
      kind: 'unchanged';
      hash: string;
      data: TemplateData;
      origins: Origin[];
      quarantined: QuarantinedApp[];
      rulesApplied: Record<string, number>;
      snapshotVersion: number;
    }
  | { kind: 'invalid'; reason: string; hash: string | null; quarantined: QuarantinedApp[]; snapshotVersion: number }
  | {
      kind: 'apply';
      tempPath: string;
      text: string;
      hash: string;
      data: TemplateData;
      origins: Origin[];
      quarantined: QuarantinedApp[];
      rulesApplied: Record<string, number>;
      snapshotVersion: number;
      warnings: Warning[];
      /** Why the Runtime API could not apply it (null: not considered). */
      notRuntime: string | null;
    }
  | {
      kind: 'runtime';
      text: string;
      hash: string;
      data: TemplateData;
      origins: Origin[];
      quarantined: QuarantinedApp[];
      rulesApplied: Record<string, number>;
      snapshotVersion: number;
      changes: ServerChange[];
    };

/** The most quarantine rounds (render + validate) one reconcile tries before giving up. */
const MAX_QUARANTINE_ROUNDS = 6;
/** Validation failures remembered by config hash (a known-bad config is not validated again). */
const INVALID_CACHE_SIZE = 16;

/** A quarantine kept across reconciles; `until`: a reload quarantine is tried again then. */
interface Remembered {
  q: QuarantinedApp;
  /** quarantineKey of the app when it was quarantined: a change lifts the quarantine. */
  key: string;
  /** When a reload quarantine is tried again (monotonic ms, the reconciler's clock). */
  until?: number;
  /** Reload failures in a row blamed on the app with this key. */
  strikes?: number;
}

/** A file next to OutputPath could not be written or renamed (ENOSPC, EROFS, EACCES, ...). */
export class WriteError extends Error {
  override name = 'WriteError';
  readonly code: string | undefined;
  constructor(readonly path: string, cause: Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    super(`cannot write ${path}: ${code ?? cause.message}`);
    this.code = code;
  }
}

export class Reconciler extends EventEmitter {
  /** The model HAProxy runs (null until the first successful apply, unless given at start). */
  running: RunningModel | null = null;
  last: ApplyOutcome | null = null;
  /** The last outcome that was not a noop (what the last apply attempt did). */
  lastApply: ApplyOutcome | null = null;
  readonly history: ApplyOutcome[] = [];
  readonly counts: Record<OutcomeKind, number> = { noop: 0, runtime: 0, reloaded: 0, invalid: 0, 'reload-failed': 0, 'write-failed': 0 };
  /** Runtime changes that failed or did not verify and fell back to a reload. */
  runtimeFallbacks = 0;
  /** The last runtime failure (null: none since start). */
  lastRuntimeError: { at: number; reason: string } | null = null;
  /** Servers leaving rotation through the Runtime API, waiting to be put in maintenance. */
  readonly drainer: Drainer | null = null;
  reconciles = 0;
  lastAppliedAt = 0;
  /** The snapshot version of the last successful read (-1: none yet). */
  lastReadSnapshotVersion = -1;

  /** Why the reload of the reconcile in progress waits, and since and until when (ms epoch); null: not waiting. */
  reloadWait: ReloadWait | null = null;
  /** Reloads held back by the storm bounds (rate or old generations), and the old generations last counted. */
  reloadsDeferred = 0;
  oldGenerations: number | null = null;

  private readonly o: ReconcilerOptions;
  private readonly clock: Clock;
  /** The loop's pacing: one reconcile at a time, latest wins, debounce, minimum update interval. */
  private readonly pacer: LatestWins;
  private readonly sleeper: Sleeper;
  private readonly reloadRate: RateWindow;
  private closed = false;
  /** A storm bound holds a reload: a trigger wakes the wait (server changes are applied meanwhile). */
  private wakeOnTrigger = false;
  private lastReloadAt = -Infinity;
  private readonly reloadBackoff: Backoff;
  private readonly readBackoff: Backoff;
  /** A candidate that cannot be written is tried again soon: space freed should not wait for the resync. */
  private readonly writeBackoff: Backoff;
  private retryNotBefore = -Infinity;
  private retryTimer: Timer | null = null;
  private retryAt = 0;
  private tempSeq = 0;
  private readonly invalidCache = new Map<string, ValidationResult>();
  /** Per-app template data of the last build: a one-app change rebuilds one app (snapshots are never mutated). */
  private readonly dataMemo = new TemplateDataMemo();
  private hintedSnapshotVersion = -1;
  /** Stage timings of the reconcile in progress. */
  private stages: Partial<Record<Stage, number>> = {};
  /**
   * HAProxy's server state may differ from `running.text` (a runtime change failed half-way): the
   * next reload saves no server state, so the new file is the whole truth.
   */
  private serverStateUntrusted = false;
  /** Quarantine kept across reconciles (refused reloads, validation timeouts), with the key that lifts it. */
  private readonly remembered = new Map<string, Remembered>();
  /** Wakes the loop when a remembered reload quarantine is due to be tried again. */
  private recheckTimer: Timer | null = null;
  private recheckAt = 0;
  /** Ports apps bind in the running config, by its hash (the port policy's incumbents). */
  private heldCache: { hash: string; held: Map<number, Holder> } | null = null;
  /** Ports of HAProxy.HttpBind and HAProxy.StatsBind: the edge's whether or not the template binds them. */
  private readonly edgePorts: number[];

  constructor(opts: ReconcilerOptions) {
    super();
    this.o = opts;
    this.clock = opts.clock ?? monotonicClock;
    this.sleeper = new Sleeper(this.clock);
    this.reloadRate = new RateWindow(opts.maxReloadsPerMinute ?? 0, 60_000, this.clock);
    this.reloadBackoff = new Backoff(opts.retryInitialMs ?? 500, opts.retryMaxMs ?? 30000);
    this.readBackoff = new Backoff(opts.retryInitialMs ?? 500, opts.retryMaxMs ?? 30000);
    this.writeBackoff = new Backoff(opts.retryInitialMs ?? 500, Math.min(5000, opts.retryMaxMs ?? 30000));
    this.pacer = new LatestWins({
      debounceMs: opts.debounceMs,
      minIntervalMs: opts.minUpdateIntervalMs,
      // Idle = no reconcile ended within the debounce; a trigger during one waits after itself.
      idleWhen: 'ended',
      debounceAfter: 'request',
      clock: this.clock,
      run: (triggers, take) => this.runOnce(triggers, take),
      // runOnce turns a failing stage into an outcome; this is what is left (an outcome listener that threw).
      onError: (err) => opts.log.error({ err: err.stack }, 'reconcile loop failed unexpectedly'),
    });
    this.edgePorts = settingPorts([opts.settings.HttpBind, opts.settings.StatsBind]);
    if (opts.runtime?.enabled) {
      this.drainer = new Drainer(opts.runtime.api, opts.runtime.drainTimeoutMs, (err) =>
        opts.log.warn({ err: err.message }, 'could not finish draining a server'),
      );
    }
    if (opts.initial) {
      this.running = {
        hash: opts.initial.hash,
        text: opts.initial.text,
        data: null,
        origins: [],
        snapshotVersion: -1,
        rulesApplied: {},
        quarantined: [],
        slots: null,
        appliedAt: Date.now(),
        via: 'reload',
        confirmed: true,
      };
    }
  }

  get outputPath(): string {
    return this.o.outputPath;
  }
  get lastGoodPath(): string {
    return `${this.o.outputPath}.last-good`;
  }
  get lastFailedPath(): string {
    return `${this.o.outputPath}.last-failed`;
  }

  /** True while a reconcile runs or one is pending. */
  get busy(): boolean {
    return this.pacer.busy;
  }

  /**
   * Asks for a reconcile. Cheap and never throws; triggers coalesce. `reason` is only recorded
   * (e.g. `hint:rules`, `gap`, `publisher`, `reconnect`, `resync`, `retry`, `startup`).
   */
  trigger(reason: string): void {
    if (this.closed) return;
    // Leading edge: nothing ran lately, so this is the start of a quiet period's first burst and
    // waiting would only add latency. A burst's later triggers find the reconcile running and wait.
    this.pacer.request(reason);
    if (this.wakeOnTrigger) this.sleeper.wake();
  }

  /**
   * A hint said the api wrote snapshot `version`. If a reconcile then reads an older one (a lagging
   * ZooKeeper follower), it asks for another read soon.
   */
  noteHintedSnapshot(version: number): void {
    if (version > this.hintedSnapshotVersion) this.hintedSnapshotVersion = version;
  }

  /** Resolves once no reconcile is running or pending. */
  whenIdle(): Promise<void> {
    return this.pacer.whenIdle();
  }

  /** Stops scheduling; waits for the reconcile in flight (bounded by the command timeouts). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.retryTimer?.cancel();
    this.retryTimer = null;
    this.recheckTimer?.cancel();
    this.recheckTimer = null;
    const inFlight = this.pacer.close();
    this.sleeper.wake();
    await inFlight;
    this.drainer?.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Scheduling
  // ---------------------------------------------------------------------------------------------

  /** One reconcile, run by the pacer (never two at once). */
  private async runOnce(triggers: string[], take: () => string[]): Promise<void> {
    if (this.closed) return;
    const startedAt = this.clock.now();
    let outcome: ApplyOutcome;
    try {
      outcome = await this.reconcileOnce(triggers, startedAt, take);
      this.writeBackoff.reset();
    } catch (err) {
      if (err instanceof WriteError) {
        outcome = this.writeFailed(err, triggers, startedAt);
      } else {
        // A bug in a stage must not stop the loop: count it as a noop that changed nothing.
        this.o.log.error({ err: (err as Error).stack }, 'reconcile failed unexpectedly');
        outcome = this.outcome('noop', `internal error: ${(err as Error).message}`, triggers, startedAt, {
          candidateHash: null,
          snapshotVersion: -1,
          quarantined: this.running?.quarantined ?? [],
        });
      }
    }
    this.record(outcome);
  }

  /**
   * The candidate could not be written or installed (disk full, read-only directory): HAProxy keeps
   * the config in force, the temp file is gone, and the same state is tried again soon (doubling
   * from the retry backoff up to 5 s: space freed should not wait for the resync timer).
   */
  private writeFailed(err: WriteError, triggers: string[], startedAt: number): ApplyOutcome {
    const delay = this.scheduleRetry(this.writeBackoff.fail(), false);
    return this.outcome('write-failed', `${err.message}; keeping the config in force (retry in ${delay} ms)`, triggers, startedAt, {
      candidateHash: null,
      snapshotVersion: this.lastReadSnapshotVersion,
      quarantined: this.running?.quarantined ?? [],
    });
  }

  /** Asks for a `retry` trigger in `delay` ms; `forReload`: no reload before then either. */
  private scheduleRetry(delay: number, forReload: boolean): number {
    const at = this.clock.now() + delay;
    if (forReload) this.retryNotBefore = at;
    // One retry timer: the earliest asked for wins (a retry reads and reconciles everything anyway).
    if (this.retryTimer && this.retryAt <= at) return delay;
    this.retryTimer?.cancel();
    this.retryAt = at;
    this.retryTimer = this.clock.after(delay, () => {
      this.retryTimer = null;
      this.trigger('retry');
    }, { unref: true });
    return delay;
  }

  private record(o: ApplyOutcome): void {
    this.reconciles++;
    this.counts[o.outcome]++;
    this.last = o;
    if (o.outcome !== 'noop') this.lastApply = o;
    this.history.push(o);
    if (this.history.length > (this.o.historySize ?? 50)) this.history.shift();
    this.o.metrics.reconcile(o.outcome, o.ms);
    const fields = {
      outcome: o.outcome,
      reason: o.reason,
      triggers: o.triggers,
      ms: o.ms,
      stages: o.stages,
      snapshotVersion: o.snapshotVersion,
      configHash: o.configHash?.slice(0, 12) ?? null,
      quarantined: o.quarantined.map((q) => q.appId),
    };
    if (o.outcome === 'noop') {
      if (o.reason === 'unchanged') this.o.log.debug(fields, 'reconciled');
      else this.o.log.info(fields, 'reconciled');
    }
    else if (o.outcome === 'reloaded' || o.outcome === 'runtime') this.o.log.info(o.servers ? { ...fields, servers: o.servers } : fields, 'reconciled');
    else this.o.log.warn(fields, 'reconciled');
    this.emit('outcome', o);
  }

  private outcome(
    kind: OutcomeKind,
    reason: string,
    triggers: string[],
    startedAt: number,
    extra: { candidateHash: string | null; snapshotVersion: number; quarantined: QuarantinedApp[] },
  ): ApplyOutcome {
    return {
      outcome: kind,
      reason,
      triggers,
      // A timestamp people read and the fleet view compares: wall clock. The duration: monotonic.
      at: Date.now(),
      ms: Math.round(this.clock.now() - startedAt),
      configHash: this.running?.confirmed ? this.running.hash : null,
      ...extra,
      stages: { ...this.stages },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // One reconcile
  // ---------------------------------------------------------------------------------------------

  /** Runs one stage and adds its duration to the reconcile's stage timings. */
  private async timed<T>(stage: Stage, fn: () => Promise<T> | T): Promise<T> {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.stages[stage] = Math.round(((this.stages[stage] ?? 0) + performance.now() - t) * 10) / 10;
    }
  }

  private async reconcileOnce(initialTriggers: string[], startedAt: number, take: () => string[]): Promise<ApplyOutcome> {
    let triggers = initialTriggers;
    this.stages = {};
    for (;;) {
      // Stage 1: read the full desired state.
      let desired: DesiredState;
      try {
        desired = await this.timed('read', () => this.o.source.read());
      } catch (err) {
        const delay = this.scheduleRetry(this.readBackoff.fail(), false);
        const why = err instanceof NoSnapshotError ? 'no Marathon snapshot in ZooKeeper yet' : `desired state unavailable: ${(err as Error).message}`;
        return this.outcome('noop', `${why}; keeping the config in force (retry in ${delay} ms)`, triggers, startedAt, {
          candidateHash: null,
          snapshotVersion: -1,
          quarantined: this.running?.quarantined ?? [],
        });
      }
      this.readBackoff.reset();
      this.lastReadSnapshotVersion = desired.snapshotVersion;
      if (desired.snapshotVersion < this.hintedSnapshotVersion) {
        // A hint announced a newer snapshot than this read saw (a lagging ZooKeeper follower): read
        // again shortly, once; the next hint or heartbeat asks again if it is still missing.
        this.hintedSnapshotVersion = -1;
        this.scheduleRetry(this.readBackoff.initialMs, false);
      }

      // Stages 2-4: build, render, compare, validate (and quarantine); or a runtime change.
      let plan = await this.plan(desired, this.runtimeUsable());
      let runtimeFailure: string | null = null;
      if (plan.kind === 'runtime') {
        const r = await this.applyByRuntime(plan, triggers, startedAt);
        if (r.outcome) return r.outcome;
        // Never a silent divergence: validate the same desired state and reload.
        runtimeFailure = r.reason;
        plan = await this.plan(desired, false);
      }
      if (plan.kind === 'runtime') throw new Error('runtime plan without the Runtime API');
      const extra = { candidateHash: plan.hash, snapshotVersion: plan.snapshotVersion, quarantined: plan.quarantined };
      if (plan.kind === 'unchanged') {
        // HAProxy runs exactly this text, so this state is what it runs: a snapshot or rule change that
        // renders the same config still counts as applied (the fleet view compares these versions).
        const r = this.running!;
        this.running = {
          ...r, data: plan.data, origins: plan.origins, snapshotVersion: plan.snapshotVersion, rulesApplied: plan.rulesApplied,
          quarantined: plan.quarantined, slots: slotTable(plan.data),
        };
        this.o.metrics.quarantined(plan.quarantined.length);
        return this.outcome('noop', 'unchanged', triggers, startedAt, extra);
      }
      if (plan.kind === 'invalid') return this.outcome('invalid', plan.reason, triggers, startedAt, extra);

      // Stage 5: wait for the reload slot (minimum reload interval, backoff after a failed reload,
      // reloads per minute, old generations).
      const slot = await this.timed('wait', () => this.reloadSlot(take));
      if (this.closed) {
        await removeQuietly(plan.tempPath);
        return this.outcome('noop', 'shutting down before the reload slot', triggers, startedAt, extra);
      }
      if (slot.taken.length > 0 || (slot.waited && this.pacer.hasPending)) {
        // Newer triggers arrived while waiting (and servers may have changed at runtime meanwhile):
        // start over so the reload carries the latest state.
        await removeQuietly(plan.tempPath);
        triggers = [...new Set([...triggers, ...slot.taken, ...take()])].sort();
        continue;
      }

      // Stages 6-8: install, reload, clean up.
      return this.applyByReload(runtimeFailure ? { ...plan, notRuntime: `runtime change failed: ${runtimeFailure}` } : plan, triggers, startedAt);
    }
  }

  /**
   * Waits until a reload may run: the minimum reload interval, the backoff after a failed reload and
   * the per-minute budget first, then the old generations bound (checked right before the reload,
   * counted every OLD_GENERATIONS_POLL_MS, for at most `oldGenerationsWaitMs`: HAProxy's own
   * hard-stop-after ends old generations in time with the shipped template; with a template that
   * lets them live forever the reload goes ahead rather than freezing every update). Wakes early on
   * close. While a storm bound (rate, generations) holds the reload, new triggers are taken at once
   * (no sooner than `minUpdateIntervalMs` apart) and a change confined to servers is applied through
   * the Runtime API meanwhile (`runtimeWhileHeld`). Resolves whether it waited and the triggers it took.
   */
  private async reloadSlot(take: () => string[]): Promise<{ waited: boolean; taken: string[] }> {
    const began = this.clock.now();
    const reasons = new Set<ReloadWait['reason']>();
    const taken: string[] = [];
    let lastPass = -Infinity;
    let generationsSince: number | null = null;
    /** Sleeps up to `ms`, or runs a runtime pass for triggers that came while a storm bound holds the reload. */
    const pause = async (ms: number, reason: ReloadWait['reason']) => {
      const held = (reason === 'rate' || reason === 'generations') && this.runtimeUsable();
      if (held && this.pacer.hasPending) {
        const due = lastPass + this.o.minUpdateIntervalMs - this.clock.now();
        if (due <= 0) {
          lastPass = this.clock.now();
          const triggers = take();
          taken.push(...triggers);
          await this.runtimeWhileHeld(triggers);
          return;
        }
        ms = Math.min(ms, due);
      }
      this.wakeOnTrigger = held;
      try {
        await this.sleeper.sleep(ms);
      } finally {
        this.wakeOnTrigger = false;
      }
    };
    const hold = (reason: ReloadWait['reason'], untilMs: number | null) => {
      if (this.reloadWait?.reason !== reason) this.reloadWait = { reason, since: Date.now(), until: null };
      this.reloadWait.until = untilMs === null ? null : Date.now() + untilMs;
      if (!reasons.has(reason)) {
        reasons.add(reason);
        if (reason === 'rate' || reason === 'generations') {
          this.reloadsDeferred++;
          this.o.log.info({ reason, reloadsLastMinute: this.reloadRate.count(), oldGenerations: this.oldGenerations }, 'reload deferred');
        }
      }
    };
    try {
      while (!this.closed) {
        const now = this.clock.now();
        const slots: Array<[ReloadWait['reason'], number]> = [
          ['interval', this.lastReloadAt + this.o.minReloadIntervalMs],
          ['retry', this.retryNotBefore],
          ['rate', this.reloadRate.nextAt()],
        ];
        const [reason, until] = slots.reduce((a, b) => (b[1] > a[1] ? b : a));
        if (until > now) {
          hold(reason, until - now);
          await pause(until - now, reason);
          continue;
        }
        const max = this.o.maxOldGenerations ?? 0;
        if (max <= 0 || !this.o.haproxy.oldWorkers) break;
        const old = await this.o.haproxy.oldWorkers();
        this.oldGenerations = old === null ? null : old.length;
        if (old !== null) this.o.metrics.gauge('haproxy.old_generations', old.length);
        if (old === null || old.length < max) break;
        generationsSince ??= now;
        const bound = this.o.oldGenerationsWaitMs ?? 60000;
        if (now - generationsSince >= bound) {
          this.o.log.warn({ oldGenerations: old.length, max, waitedMs: Math.round(now - generationsSince) }, 'old haproxy generations did not exit in time; reloading anyway');
          break;
        }
        hold('generations', null);
        await pause(Math.min(OLD_GENERATIONS_POLL_MS, bound - (now - generationsSince)), 'generations');
      }
    } finally {
      this.reloadWait = null;
    }
    const waitedMs = this.clock.now() - began;
    for (const reason of reasons) this.o.metrics.reloadDeferred(reason, waitedMs);
    return { waited: reasons.size > 0, taken: [...new Set(taken)].sort() };
  }

  /**
   * While a storm bound holds a reload: applies what the Runtime API can apply on its own. The desired
   * state is read and rendered with the rules in force (a rule change is what needs the reload), the
   * newest apps and tasks, and the quarantine in force; when that differs from the running config only
   * in servers, it is applied (and recorded) as a `runtime` outcome. Anything else waits for the reload.
   */
  private async runtimeWhileHeld(triggers: string[]): Promise<void> {
    const r = this.running;
    if (!this.runtimeUsable() || !r?.data) return;
    const saved = this.stages;
    this.stages = {};
    const startedAt = this.clock.now();
    try {
      let desired: DesiredState;
      try {
        desired = await this.timed('read', () => this.o.source.read());
      } catch {
        return; // the held reconcile reads again when the wait ends
      }
      const slots = { previous: r.slots, headroomPercent: this.o.slotHeadroomPercent };
      const { data: full } = await this.timed('build', () => buildTemplateData({ apps: desired.apps, services: r.data!.Services, now: Date.now(), slots, memo: this.dataMemo }));
      const quarantine = new Map(r.quarantined.map((q) => [q.appId, q]));
      const data = quarantine.size === 0 ? full : withoutQuarantined(full, quarantine);
      const rendered = await this.timed('render', () => this.o.renderer.render(data, this.o.settings));
      const hash = await sha256(rendered.text);
      if (hash === r.hash) return;
      const diff = await this.timed('runtime', () => diffConfigs(r.text, rendered.text));
      if (!diff.runtime) return;
      const plan: Extract<Plan, { kind: 'runtime' }> = {
        kind: 'runtime', text: rendered.text, hash, data, origins: rendered.origins, quarantined: r.quarantined,
        rulesApplied: r.rulesApplied, snapshotVersion: desired.snapshotVersion, changes: diff.changes,
      };
      const applied = await this.applyByRuntime(plan, [...triggers, 'reload-held'], startedAt);
      if (applied.outcome) this.record(applied.outcome);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'runtime change while a reload waits failed; the reload will carry it');
    } finally {
      this.stages = saved;
    }
  }

  /** The Runtime API may apply the next change: it is on, and HAProxy is known to run `running.text`. */
  private runtimeUsable(): boolean {
    return !!this.o.runtime?.enabled && this.running !== null && this.running.confirmed;
  }

  /**
   * Builds the template data (tasks keep the slots they have in the running model), renders,
   * compares; with `allowRuntime`, a change confined to servers is returned as a `runtime` plan
   * before any validation. Otherwise validates, quarantining apps that break the config.
   */
  private async plan(desired: DesiredState, allowRuntime: boolean): Promise<Plan> {
    const services: Record<string, ServiceRecord> = {};
    for (const [id, stored] of desired.rules) services[id] = stored.record;
    const slots = { previous: this.running?.slots ?? null, headroomPercent: this.o.slotHeadroomPercent };
    const { data: full, warnings } = await this.timed('build', () => buildTemplateData({ apps: desired.apps, services, now: Date.now(), slots, memo: this.dataMemo }));
    if (warnings.length) this.o.log.debug({ warnings: warnings.slice(0, 20), count: warnings.length }, 'template data warnings');

    // Apps quarantined by an earlier reconcile for a refused reload or a validation timeout stay
    // out while they are unchanged (worker/quarantine.ts).
    const quarantine = this.rememberedQuarantine(full);
    /** Quarantined here for a validation timeout: remembered once a config without them validates. */
    const suspects = new Map<string, QuarantinedApp>();
    let timeoutStage = 0;
    const snapshotVersion = desired.snapshotVersion;
    let lastHash: string | null = null;
    for (let round = 0; round < MAX_QUARANTINE_ROUNDS; round++) {
      let data: TemplateData;
      let rendered: { text: string; origins: Origin[] };
      try {
        // Renders, then quarantines apps whose listeners the port policy refuses (and renders again).
        ({ data, rendered } = await this.timed('render', () => this.renderAllowed(full, quarantine)));
      } catch (err) {
        const msg = err instanceof TemplateError ? err.message : `render failed: ${(err as Error).message}`;
        const quarantined = [...quarantine.values()].sort((a, b) => (a.appId < b.appId ? -1 : 1));
        return { kind: 'invalid', reason: `template failed: ${msg}`, hash: null, quarantined, snapshotVersion };
      }
      const quarantined = [...quarantine.values()].sort((a, b) => (a.appId < b.appId ? -1 : 1));
      const hash = await this.timed('render', () => sha256(rendered.text));
      lastHash = hash;
      if (this.running?.confirmed && hash === this.running.hash) {
        // Without the suspects of a validation timeout the config is the one in force (validated
        // before): the timeout was theirs.
        if (suspects.size > 0) this.remember(full, [...suspects.values()]);
        return { kind: 'unchanged', hash, data, origins: rendered.origins, quarantined, rulesApplied: rulesIn(data, desired), snapshotVersion };
      }
      // Only servers changed (task churn)? Then no validation: the Runtime API applies the
      // difference, which only touches addresses, ports, weights and states of existing servers.
      let notRuntime: string | null = null;
      if (allowRuntime && this.running) {
        const runningText = this.running.text;
        const diff = await this.timed('runtime', () => diffConfigs(runningText, rendered.text));
        if (diff.runtime) {
          // Only servers differ from the config in force: as above.
          if (suspects.size > 0) this.remember(full, [...suspects.values()]);
          return {
            kind: 'runtime', text: rendered.text, hash, data, origins: rendered.origins, quarantined,
            rulesApplied: rulesIn(data, desired), snapshotVersion, changes: diff.changes,
          };
        }
        notRuntime = diff.reason;
      }

      let result = this.invalidCache.get(hash);
      let tempPath: string | null = null;
      if (!result) {
        const text = rendered.text;
        tempPath = await this.timed('validate', () => this.writeTemp(text));
        const path = tempPath;
        // The validator never rejects by contract; should one do so, the candidate still goes.
        result = await this.timed('validate', () => this.o.validate(path)).catch(async (err: unknown) => {
          await removeQuietly(path);
          throw err;
        });
        if (!result.ok) {
          await removeQuietly(tempPath);
          tempPath = null;
          await this.keepLastFailed(rendered.text, `validation failed:\n${result.output}`);
          // A slow validation may be the machine's load, not the config: not remembered as invalid.
          if (!result.timedOut && result.limit !== 'cpu') this.rememberInvalid(hash, result);
        }
      }
      if (result.ok && tempPath) {
        // A config without the suspects of a validation timeout validated well within the timeout:
        // the timeout was theirs, not the machine's load, so they stay out until they change.
        if (suspects.size > 0 && result.ms < this.o.commandTimeoutMs / 2) this.remember(full, [...suspects.values()]);
        const rulesApplied = rulesIn(data, desired);
        return { kind: 'apply', tempPath, text: rendered.text, hash, data, origins: rendered.origins, quarantined, rulesApplied, snapshotVersion, warnings, notRuntime };
      }
      if (result.timedOut || (result.limit === 'cpu' && result.lines.length === 0)) {
        // A timeout (or the CPU-time limit, e.g. a pattern file that never ends) names no line. Leave
        // out what changed since the last good config (rules first, then apps) and validate again, so
        // one slow rule cannot stop every other update.
        const cause = result.timedOut ? `validation timed out after ${this.o.commandTimeoutMs} ms` : result.limitReason ?? 'validation stopped by the CPU-time limit';
        const more = await this.timeoutSuspects(data, rendered, timeoutStage++, cause);
        if (more.length === 0) {
          return { kind: 'invalid', reason: cause, hash, quarantined, snapshotVersion };
        }
        for (const q of more) {
          quarantine.set(q.appId, q);
          suspects.set(q.appId, q);
        }
        this.o.log.warn({ apps: more.map((q) => q.appId), level: more[0].level, round }, 'validation timed out; quarantining what changed since the last good config');
        continue;
      }
      if (result.limitReason && result.lines.length === 0) {
        return { kind: 'invalid', reason: result.limitReason, hash, quarantined, snapshotVersion };
      }

      // Quarantine: the apps whose fragments the errors point at lose their rules first, then
      // (if their fragment still breaks the config) their place in it.
      const culprits = appsAtLines(rendered.origins, result.lines);
      let progress = false;
      for (const appId of culprits) {
        const error = (result.limitReason ? `${result.limitReason}: ` : '') + alertsFor(result.output, rendered.origins, appId);
        const current = quarantine.get(appId);
        if (!current && Object.prototype.hasOwnProperty.call(data.Services, appId)) {
          quarantine.set(appId, { appId, level: 'rules', error });
          progress = true;
        } else if (!current || current.level === 'rules') {
          quarantine.set(appId, { appId, level: 'app', error });
          progress = true;
        }
      }
      if (!progress) {
        const where = culprits.length ? '' : ' (not attributable to an app)';
        return { kind: 'invalid', reason: `validation failed${where}: ${alertSummary(result.output)}`, hash, quarantined, snapshotVersion };
      }
      this.o.log.warn({ apps: culprits, round }, 'quarantining apps whose fragments fail validation');
    }
    return {
      kind: 'invalid',
      reason: `validation failed after ${MAX_QUARANTINE_ROUNDS} quarantine rounds`,
      hash: lastHash,
      quarantined: [...quarantine.values()],
      snapshotVersion,
    };
  }

  /**
   * Renders the data without the quarantined apps, then applies the port policy to the text: apps
   * binding a port the policy refuses are quarantined (left out entirely: the listener comes from
   * their Marathon data) and the rest rendered again. Each pass quarantines at least one more app.
   */
  private renderAllowed(full: TemplateData, quarantine: Map<string, QuarantinedApp>): { data: TemplateData; rendered: { text: string; origins: Origin[] } } {
    for (;;) {
      const data = quarantine.size === 0 ? full : withoutQuarantined(full, quarantine);
      const rendered = this.o.renderer.render(data, this.o.settings);
      const refused = portRefusals({
        text: rendered.text,
        origins: rendered.origins,
        range: this.o.tcpPortRange ?? { min: 1, max: 65535 },
        reserved: this.edgePorts,
        held: () => this.heldPorts(),
      }).filter((r) => quarantine.get(r.appId)?.level !== 'app');
      if (refused.length === 0) return { data, rendered };
      for (const r of refused) quarantine.set(r.appId, { appId: r.appId, level: 'app', error: `port policy: ${r.reason}` });
      this.o.log.warn({ apps: refused.map((r) => r.appId), reasons: refused.slice(0, 5).map((r) => r.reason) }, 'quarantining apps whose ports the port policy refuses');
    }
  }

  private heldPorts(): Map<number, Holder> {
    const r = this.running;
    if (!r) return new Map();
    if (this.heldCache?.hash !== r.hash) this.heldCache = { hash: r.hash, held: heldPorts(r.text, r.origins) };
    return this.heldCache.held;
  }

  /**
   * The remembered quarantine that still applies to `full`: entries whose app changed are dropped;
   * a reload quarantine whose hold ran out is tried again (kept, to count its strikes).
   */
  private rememberedQuarantine(full: TemplateData): Map<string, QuarantinedApp> {
    const out = new Map<string, QuarantinedApp>();
    if (this.remembered.size === 0) return out;
    const apps = appsById(full);
    const now = this.clock.now();
    let next = Infinity;
    for (const [id, r] of this.remembered) {
      if (quarantineKey(r.q.level, apps.get(id), full.Services[id]) !== r.key) this.remembered.delete(id);
      else if (r.until === undefined || now < r.until) {
        out.set(id, r.q);
        if (r.until !== undefined) next = Math.min(next, r.until);
      }
    }
    if (next < Infinity) this.wakeForQuarantine(next);
    return out;
  }

  /**
   * Keeps these quarantined apps out of later reconciles while they stay as they are in `data`.
   * With `hold` (reload failures: the cause may be outside the app, e.g. a port another process held
   * for a while), only for that long, doubling with every repeated failure up to 16 times.
   */
  private remember(data: TemplateData, qs: readonly QuarantinedApp[], hold?: number): void {
    const apps = appsById(data);
    const now = this.clock.now();
    for (const q of qs) {
      const key = quarantineKey(q.level, apps.get(q.appId), data.Services[q.appId]);
      if (key === null) continue;
      if (hold === undefined) {
        this.remembered.set(q.appId, { q, key });
        continue;
      }
      const before = this.remembered.get(q.appId);
      const strikes = before && before.key === key && before.strikes !== undefined ? before.strikes + 1 : 1;
      const until = now + hold * 2 ** Math.min(strikes - 1, 4);
      this.remembered.set(q.appId, { q, key, until, strikes });
      this.wakeForQuarantine(until);
    }
  }

  /**
   * What changed between the config in force and a candidate: by template data, or by text when the
   * config in force was found on disk at start (see worker/quarantine.ts).
   */
  private changedSince(lastGood: Pick<RunningModel, 'data' | 'text'>, data: TemplateData, rendered: { text: string; origins: Origin[] }): { rules: string[]; apps: string[] } {
    return changedSinceLastGood(data, lastGood.data) ?? changedAgainstText(rendered, data, lastGood.text);
  }

  private wakeForQuarantine(at: number): void {
    if (this.closed || (this.recheckTimer && this.recheckAt <= at)) return;
    this.recheckTimer?.cancel();
    this.recheckAt = at;
    this.recheckTimer = this.clock.after(Math.max(0, at - this.clock.now()), () => {
      this.recheckTimer = null;
      this.trigger('retry');
    }, { unref: true });
  }

  /**
   * After a validation timeout: the rules changed since the last good config or, when none did, the
   * apps changed since then. Nothing after two such rounds, or without any last good config.
   */
  private async timeoutSuspects(data: TemplateData, rendered: { text: string; origins: Origin[] }, stage: number, cause: string): Promise<QuarantinedApp[]> {
    if (stage >= 2) return [];
    // An adopted master's config is not known: the last good file is what this host last applied.
    const lastGood = this.running ?? (await readFile(this.lastGoodPath, 'utf8').then((text) => ({ data: null, text }), () => null));
    if (!lastGood) return [];
    const changed = this.changedSince(lastGood, data, rendered);
    const error = (what: string) => `${cause} with this ${what} changed since the last good config`;
    if (changed.rules.length) return changed.rules.map((appId) => ({ appId, level: 'rules' as const, error: error('rule') }));
    return changed.apps.map((appId) => ({ appId, level: 'app' as const, error: error('app') }));
  }

  /**
   * After a refused reload: the apps HAProxy's alerts blame (through the line origins), quarantined
   * and remembered. When the alerts blame no app nor the edge and the same kind of failure repeats,
   * the rules and apps changed since the last good config instead, so an unattributable failure
   * cannot stop every later change. Empty: nothing to quarantine (retry with backoff).
   */
  private blameFailedReload(plan: Extract<Plan, { kind: 'apply' }>, previous: RunningModel | null, output: string): QuarantinedApp[] {
    const { culprits, edge } = reloadCulprits(output, this.o.outputPath, plan.text, plan.origins);
    let qs: QuarantinedApp[] = culprits.map((c) => ({ appId: c.appId, level: 'app' as const, error: `reload failed: ${c.alert}` }));
    // The backoff counts the failures in a row that blamed nothing: this one is at least the second.
    if (qs.length === 0 && !edge && this.reloadBackoff.failures >= 1 && previous) {
      const changed = this.changedSince(previous, plan.data, plan);
      const error = (what: string) => `reload failed (not attributable to an app) with this ${what} changed since the last good config`;
      const apps = new Set(changed.apps);
      qs = [
        ...changed.apps.map((appId) => ({ appId, level: 'app' as const, error: error('app') })),
        ...changed.rules.filter((id) => !apps.has(id)).map((appId) => ({ appId, level: 'rules' as const, error: error('rule') })),
      ].sort((a, b) => (a.appId < b.appId ? -1 : 1));
    }
    this.remember(plan.data, qs, this.o.retryMaxMs ?? 30000);
    return qs;
  }

  /** Renames the validated file over OutputPath, reloads, runs the cleanup command. */
  private async applyByReload(plan: Extract<Plan, { kind: 'apply' }>, triggers: string[], startedAt: number): Promise<ApplyOutcome> {
    const previous = this.running;
    const extra = { candidateHash: plan.hash, snapshotVersion: plan.snapshotVersion, quarantined: plan.quarantined };
    await this.timed('install', () => this.install(plan.tempPath));
    await this.timed('reload', () => this.saveServerState(previous, plan.text));
    const reload = await this.timed('reload', () => this.o.haproxy.reload());
    this.lastReloadAt = this.clock.now();
    // Every attempt counts against the per-minute bound: a failed reload may have started a generation too.
    this.reloadRate.note();
    if (!reload.ok) {
      this.o.metrics.reloadFailed();
      await this.keepLastFailed(plan.text, `reload failed: ${reload.reason}\n${reload.output}`);
      // Put the last good file back so a restart of HAProxy comes up on it.
      if (previous) {
        await this.writeAtomic(this.o.outputPath, previous.text).catch((err: Error) =>
          this.o.log.error({ err: err.message }, 'could not restore the last good config'),
        );
        this.running = { ...previous, confirmed: false };
      }
      const blamed = this.blameFailedReload(plan, previous, reload.output);
      if (blamed.length > 0) {
        // The rest applies without the blamed apps after the first backoff step, not at once: a
        // master that just refused a config is still resuming its old workers' listeners.
        this.o.log.warn({ apps: blamed.map((q) => q.appId), errors: blamed.slice(0, 3).map((q) => q.error) }, 'quarantining apps that made the reload fail');
        const delay = this.scheduleRetry(this.reloadBackoff.initialMs, true);
        const list = blamed.map((q) => `${q.appId} (${q.level})`).join(', ');
        return this.outcome('reload-failed', `${reload.reason}; quarantined ${list}: ${blamed[0].error} (retry without them in ${delay} ms)`, triggers, startedAt, {
          ...extra,
          quarantined: [...extra.quarantined.filter((q) => !blamed.some((b) => b.appId === q.appId)), ...blamed].sort((a, b) => (a.appId < b.appId ? -1 : 1)),
        });
      }
      const delay = this.scheduleRetry(this.reloadBackoff.fail(), true);
      return this.outcome('reload-failed', `${reload.reason} (retry in ${delay} ms)`, triggers, startedAt, extra);
    }
    this.reloadBackoff.reset();
    this.retryNotBefore = -Infinity;
    // Reload quarantines tried again and now in force are forgotten (their strikes with them).
    for (const [id, r] of this.remembered) if (r.until !== undefined && !plan.quarantined.some((q) => q.appId === id)) this.remembered.delete(id);
    // The new process starts from the file (and the filtered server state): nothing is draining.
    this.serverStateUntrusted = false;
    this.drainer?.clear();
    this.running = {
      hash: plan.hash,
      text: plan.text,
      data: plan.data,
      origins: plan.origins,
      snapshotVersion: plan.snapshotVersion,
      rulesApplied: plan.rulesApplied,
      quarantined: plan.quarantined,
      slots: slotTable(plan.data),
      appliedAt: Date.now(),
      via: 'reload',
      confirmed: true,
    };
    this.lastAppliedAt = this.running.appliedAt;
    this.o.metrics.reloadDone(reload.ms);
    this.o.metrics.quarantined(plan.quarantined.length);
    await this.writeAtomic(this.lastGoodPath, plan.text).catch((err: Error) => this.o.log.warn({ err: err.message }, 'could not write the last good config'));
    await this.timed('cleanup', () => this.cleanup());
    let reason = describeChange(previous, plan);
    if (plan.quarantined.length) reason += `; quarantined ${plan.quarantined.map((q) => `${q.appId} (${q.level})`).join(', ')}`;
    if (plan.notRuntime && this.o.runtime?.enabled) reason += `; reload needed: ${plan.notRuntime}`;
    return this.outcome('reloaded', reason, triggers, startedAt, extra);
  }

  /**
   * Applies a server-only change through the Runtime API: sends the commands in batches, verifies
   * every changed server with `show servers state` (of the changed backends only), drops the
   * changed servers from the server-state-file (a restart on the new file must not restore their
   * old state), then writes the same config to OutputPath. Resolves `outcome: null` with the reason when anything failed or did not verify;
   * the caller then reloads.
   */
  private async applyByRuntime(
    plan: Extract<Plan, { kind: 'runtime' }>,
    triggers: string[],
    startedAt: number,
  ): Promise<{ outcome: ApplyOutcome } | { outcome: null; reason: string }> {
    const rt = this.o.runtime!;
    const previous = this.running!;
    const extra = { candidateHash: plan.hash, snapshotVersion: plan.snapshotVersion, quarantined: plan.quarantined };
    const keys = plan.changes.map((c) => `${c.backend}/${c.server}`);
    const backends = [...new Set(plan.changes.map((c) => c.backend))];
    let drains: string[] = [];
    try {
      await this.timed('runtime', async () => {
        const rp = await planRuntime(plan.changes);
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
      });
    } catch (err) {
      const reason = (err as Error).message;
      this.runtimeFallbacks++;
      this.lastRuntimeError = { at: Date.now(), reason };
      this.serverStateUntrusted = true;
      this.o.log.warn({ err: reason, servers: keys.length }, 'runtime change failed; reloading instead');
      return { outcome: null, reason };
    }
    // HAProxy now runs the new model: the file must say the same, so a reload or restart starts from it.
    try {
      await this.timed('install', async () => this.install(await this.writeTemp(plan.text)));
    } catch (err) {
      this.running = { ...this.runningFrom(plan, 'runtime'), confirmed: false };
      const delay = this.scheduleRetry(this.reloadBackoff.fail(), true);
      const reason = `servers changed through the Runtime API but ${this.o.outputPath} could not be written: ${(err as Error).message} (reload in ${delay} ms)`;
      return { outcome: this.outcome('reload-failed', reason, triggers, startedAt, extra) };
    }
    this.drainer?.add(drains);
    this.running = this.runningFrom(plan, 'runtime');
    this.lastAppliedAt = this.running.appliedAt;
    this.o.metrics.quarantined(plan.quarantined.length);
    await this.writeAtomic(this.lastGoodPath, plan.text).catch((err: Error) => this.o.log.warn({ err: err.message }, 'could not write the last good config'));
    const drained = drains.length ? `, ${drains.length} drained` : '';
    const what = `${keys.length} server${keys.length === 1 ? '' : 's'} in ${backends.length} backend${backends.length === 1 ? '' : 's'}${drained}`;
    const reason = `servers changed through the Runtime API (${what}); ${describeChange(previous, plan)}`;
    const o = this.outcome('runtime', reason, triggers, startedAt, extra);
    o.servers = { changed: keys.length, drained: drains.length };
    return { outcome: o };
  }

  private runningFrom(plan: Extract<Plan, { kind: 'runtime' | 'apply' }>, via: RunningModel['via']): RunningModel {
    return {
      hash: plan.hash,
      text: plan.text,
      data: plan.data,
      origins: plan.origins,
      snapshotVersion: plan.snapshotVersion,
      rulesApplied: plan.rulesApplied,
      quarantined: plan.quarantined,
      slots: slotTable(plan.data),
      appliedAt: Date.now(),
      via,
      confirmed: true,
    };
  }

  /**
   * Before a reload: saves HAProxy's server state (health, maintenance, drain, weight) to the
   * server-state-file, keeping only servers whose line is the same in the running and the new
   * config. HAProxy restores a saved server's port, weight and maintenance over the file, so a
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
        const before = serverLines(previous.text);
        const after = serverLines(nextText);
        content = filterServerState(raw, (key) => {
          const line = before.get(key);
          return line !== undefined && line === after.get(key);
        });
      } catch (err) {
        this.o.log.info({ err: (err as Error).message }, 'could not save server state before the reload; servers start from the config');
      }
    }
    await this.writeAtomic(path, content).catch((err: Error) => this.o.log.warn({ err: err.message, path }, 'could not write the server state file'));
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
    // Only the dropped servers' lines are looked at: the file holds every server (tens of
    // thousands at 10,000 apps), and a runtime change waits for this before installing its config.
    const next = dropServerStateLines(text, keys);
    if (next !== text) await this.writeAtomic(path, next);
  }

  private async cleanup(): Promise<void> {
    if (!this.o.cleanupCommand) return;
    const r = await runCommand(this.o.cleanupCommand, { timeoutMs: this.o.commandTimeoutMs, env: this.o.commandEnv });
    if (!r.ok) {
      this.o.log.warn({ timedOut: r.timedOut, code: r.code, output: r.output.slice(-1000) }, 'reload cleanup command failed');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Files
  // ---------------------------------------------------------------------------------------------

  private tempPathFor(): string {
    return `${this.o.outputPath}.tmp-${process.pid}-${++this.tempSeq}`;
  }

  /**
   * Writes a temp file next to OutputPath (same file system, so the rename is atomic), synced.
   * Throws WriteError (disk full, read-only, ...) after removing whatever part of it was written.
   */
  private async writeTemp(text: string): Promise<string> {
    const path = this.tempPathFor();
    try {
      const fh = await open(path, 'w', 0o640);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await removeQuietly(path);
      throw new WriteError(path, err as Error);
    }
    return path;
  }

  /** Renames the temp file over OutputPath; on failure removes it and throws WriteError. */
  private async install(tempPath: string): Promise<void> {
    try {
      await rename(tempPath, this.o.outputPath);
    } catch (err) {
      await removeQuietly(tempPath);
      throw new WriteError(this.o.outputPath, err as Error);
    }
    await syncDir(dirname(this.o.outputPath));
  }

  /** Temp file + rename; never leaves the temp file behind (throws WriteError). */
  private async writeAtomic(path: string, text: string): Promise<void> {
    const tmp = this.tempPathFor();
    try {
      await writeFile(tmp, text, { mode: 0o640 });
      await rename(tmp, path);
    } catch (err) {
      await removeQuietly(tmp);
      throw new WriteError(path, err as Error);
    }
  }

  private async keepLastFailed(text: string, why: string): Promise<void> {
    const header = why
      .split('\n')
      .filter((l) => l.trim())
      .slice(0, 40)
      .map((l) => `# ${l}`)
      .join('\n');
    await this.writeAtomic(this.lastFailedPath, `${header}\n${text}`).catch((err: Error) =>
      this.o.log.warn({ err: err.message }, 'could not write the last failed config'),
    );
  }

  private rememberInvalid(hash: string, result: ValidationResult): void {
    this.invalidCache.set(hash, result);
    if (this.invalidCache.size > INVALID_CACHE_SIZE) this.invalidCache.delete(this.invalidCache.keys().next().value as string);
  }
}

/** App id -> rule version of every service record the template data carries. */
function rulesIn(data: TemplateData, desired: DesiredState): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of Object.keys(data.Services)) {
    const stored = desired.rules.get(id);
    if (stored) out[id] = stored.version;
  }
  return out;
}

/** Removes temp files a previous (killed) worker left next to OutputPath. */
export async function removeStaleTemps(outputPath: string): Promise<number> {
  const dir = dirname(outputPath);
  const prefix = `${basename(outputPath)}.tmp-`;
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) {
      await removeQuietly(join(dir, name));
      removed++;
    }
  }
  return removed;
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* not supported everywhere; the rename is atomic regardless */
  }
}

/** The template data without quarantined rules (level `rules`) and apps (level `app`). */
export function withoutQuarantined(data: TemplateData, quarantine: ReadonlyMap<string, QuarantinedApp>): TemplateData {
  const services: Record<string, ServiceRecord> = {};
  for (const [id, rec] of Object.entries(data.Services)) if (!quarantine.has(id)) services[id] = rec;
  const apps = data.Apps.filter((a) => quarantine.get(a.Id)?.level !== 'app');
  return { Apps: apps, Services: services };
}

/** The validator's alert lines that point into one app's fragments, as one line. */
function alertsFor(output: string, origins: readonly Origin[], appId: string): string {
  const mine = output
    .split('\n')
    .filter((line) => {
      if (!line.includes('[ALERT]')) return false;
      const lines = [...line.matchAll(/\[[^\]\s]+:(\d+)\]/g)].map((m) => Number(m[1]));
      return appsAtLines(origins, lines).includes(appId);
    })
    .join('\n');
  return alertSummary(mine || output, 2).slice(0, 500);
}

function describeChange(previous: RunningModel | null, plan: { snapshotVersion: number; rulesApplied: Record<string, number> }): string {
  if (!previous || previous.data === null) return 'first config since start';
  if (!previous.confirmed) return 'retrying after a failed reload';
  const parts: string[] = [];
  if (previous.snapshotVersion !== plan.snapshotVersion) parts.push(`snapshot ${previous.snapshotVersion} -> ${plan.snapshotVersion}`);
  const ids = new Set([...Object.keys(previous.rulesApplied), ...Object.keys(plan.rulesApplied)]);
  const changed = [...ids].filter((id) => previous.rulesApplied[id] !== plan.rulesApplied[id]).sort();
  if (changed.length) parts.push(`rules changed: ${changed.slice(0, 5).join(', ')}${changed.length > 5 ? ` and ${changed.length - 5} more` : ''}`);
  return parts.length ? `config changed (${parts.join('; ')})` : 'config changed (health or time-dependent state)';
}
