/**
 * The reconcile loop: paces triggers, reads the desired state, and runs the stages (plan:
 * worker/planner.ts, apply: worker/applier.ts, reload slot: worker/reload-slot.ts); it decides
 * retries and quarantine from their results (an apply's: worker/apply-decisions.ts) and records one
 * ApplyOutcome per reconcile. Pacing, outcomes and the Runtime API path are described in docs/worker.md.
 */
import { EventEmitter } from 'node:events';
import { Backoff, LatestWins, monotonicClock, type Clock } from '../common/pacing.js';
import { slotTable } from '../common/core/template-data.js';
import { Applier, type ApplierOptions, type RuntimeOptions } from './applier.js';
import { ApplyDecisions } from './apply-decisions.js';
import { ConfigFiles, WriteError } from './config-files.js';
import { EarliestTimer } from './earliest-timer.js';
import {
  NoSnapshotError,
  OutcomeRecord,
  StageTimes,
  type ApplyOutcome,
  type DesiredState,
  type DesiredStateSource,
  type OutcomeKind,
  type QuarantinedApp,
  type ReconcilerStatus,
  type RunningModel,
} from './outcome.js';
import { Planner, type PlannerOptions } from './planner.js';
import { QuarantineMemory } from './quarantine.js';
import { ReloadSlot, type ReloadSlotOptions } from './reload-slot.js';

/** The stages' options (each documented where it is used), and the loop's own. */
export type ReconcilerOptions = Omit<PlannerOptions, 'files' | 'memory'> &
  Omit<ApplierOptions, 'files' | 'runtime'> &
  Omit<ReloadSlotOptions, 'clock'> & {
    outputPath: string;
    source: DesiredStateSource;
    debounceMs: number;
    /** The config HAProxy already runs (managed mode started it on the existing file). */
    initial?: { hash: string; text: string } | null;
    /** Backoff of retries after a failed reload or read (default 500 ms doubling to 30 s). */
    retryInitialMs?: number;
    retryMaxMs?: number;
    /** Outcomes kept in `history`. */
    historySize?: number;
    /** The monotonic clock of the loop's pacing, retries and reload slot (tests inject a fake one). */
    clock?: Clock;
    /**
     * The Runtime API (HAProxy.RuntimeApi): server-only changes are applied through this admin socket
     * without a reload. Null or absent: every change reloads.
     */
    runtime?: RuntimeOptions | null;
  };

export class Reconciler extends EventEmitter {
  private readonly o: ReconcilerOptions;
  private readonly clock: Clock;
  private readonly files: ConfigFiles;
  private readonly planner: Planner;
  private readonly applier: Applier;
  private readonly slot: ReloadSlot;
  /** The apply stage's results turned into the running model, quarantine, retries and outcomes. */
  private readonly apply: ApplyDecisions;
  private readonly memory: QuarantineMemory;
  /** The loop's pacing: one reconcile at a time, latest wins, debounce, minimum update interval. */
  private readonly pacer: LatestWins;
  private readonly outcomes: OutcomeRecord;
  private runningModel: RunningModel | null = null;
  private lastReadSnapshotVersion = -1;
  private hintedSnapshotVersion = -1;
  private closed = false;
  private readonly readBackoff: Backoff;
  /** A candidate that cannot be written is tried again soon: space freed should not wait for the resync. */
  private readonly writeBackoff: Backoff;
  /** The `retry` trigger after a failed read, write or reload. */
  private readonly retryTimer: EarliestTimer;
  /** Wakes the loop when a remembered reload quarantine is due to be tried again. */
  private readonly recheckTimer: EarliestTimer;

  constructor(opts: ReconcilerOptions) {
    super();
    this.o = opts;
    const clock = (this.clock = opts.clock ?? monotonicClock);
    const log = opts.log;
    this.files = new ConfigFiles(opts.outputPath, log);
    this.outcomes = new OutcomeRecord(opts.historySize ?? 50, log, opts.metrics);
    this.retryTimer = new EarliestTimer(clock, () => this.trigger('retry'));
    this.recheckTimer = new EarliestTimer(clock, () => this.trigger('retry'));
    this.memory = new QuarantineMemory(clock, (at) => {
      if (!this.closed) this.recheckTimer.at(at);
    });
    this.planner = new Planner({ ...opts, files: this.files, memory: this.memory, log });
    this.applier = new Applier({ ...opts, runtime: opts.runtime ?? null, files: this.files });
    this.slot = new ReloadSlot({ ...opts, clock });
    this.apply = new ApplyDecisions(opts, { applier: this.applier, planner: this.planner, files: this.files, slot: this.slot, memory: this.memory }, {
      running: () => this.runningModel,
      setRunning: (model) => (this.runningModel = model),
      scheduleRetry: (delay, forReload) => this.scheduleRetry(delay, forReload),
      outcome: (...args) => this.outcome(...args),
    });
    this.readBackoff = new Backoff(opts.retryInitialMs ?? 500, opts.retryMaxMs ?? 30000);
    this.writeBackoff = new Backoff(opts.retryInitialMs ?? 500, Math.min(5000, opts.retryMaxMs ?? 30000));
    this.pacer = new LatestWins({
      debounceMs: opts.debounceMs,
      minIntervalMs: opts.minUpdateIntervalMs,
      // Idle = no reconcile ended within the debounce; a trigger during one waits after itself.
      idleWhen: 'ended',
      debounceAfter: 'request',
      clock,
      run: (triggers, take) => this.runOnce(triggers, take),
      // runOnce turns a failing stage into an outcome; this is what is left (an outcome listener that threw).
      onError: (err) => log.error({ err }, 'reconcile loop failed unexpectedly'),
    });
    if (opts.initial) {
      this.runningModel = {
        hash: opts.initial.hash, text: opts.initial.text, data: null, origins: [], snapshotVersion: -1, rulesApplied: {},
        quarantined: [], slots: null, appliedAt: Date.now(), via: 'reload', confirmed: true,
      };
    }
  }

  /** The model HAProxy runs (null until the first successful apply, unless given at start). */
  get running(): RunningModel | null {
    return this.runningModel;
  }
  get last(): ApplyOutcome | null {
    return this.outcomes.last;
  }
  /** The last outcome that was not a noop. */
  get lastApply(): ApplyOutcome | null {
    return this.outcomes.lastApply;
  }
  get counts(): Readonly<Record<OutcomeKind, number>> {
    return this.outcomes.counts;
  }
  /** The last outcomes (ReconcilerOptions.historySize), oldest first. */
  get history(): readonly ApplyOutcome[] {
    return this.outcomes.history;
  }
  /** True while a reconcile runs or one is pending. */
  get busy(): boolean {
    return this.pacer.busy;
  }

  /** A copy of the state /status shows. */
  status(): ReconcilerStatus {
    return {
      running: this.runningModel,
      last: this.outcomes.last,
      lastApply: this.outcomes.lastApply,
      reconciles: this.outcomes.reconciles,
      counts: { ...this.outcomes.counts },
      busy: this.pacer.busy,
      lastReadSnapshotVersion: this.lastReadSnapshotVersion,
      reloads: { wait: this.slot.wait, deferred: this.slot.deferred, oldGenerations: this.slot.oldGenerations },
      runtime: { fallbacks: this.applier.runtimeFallbacks, lastError: this.applier.lastRuntimeError, draining: this.applier.drainer?.size ?? 0, serversAdded: this.applier.serversAdded },
    };
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
    this.slot.triggered();
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
    this.retryTimer.cancel();
    this.recheckTimer.cancel();
    const inFlight = this.pacer.close();
    this.slot.close();
    await inFlight;
    this.applier.drainer?.close();
  }

  /** One reconcile, run by the pacer (never two at once). */
  private async runOnce(triggers: string[], take: () => string[]): Promise<void> {
    if (this.closed) return;
    const startedAt = this.clock.now();
    const stages = new StageTimes();
    let outcome: ApplyOutcome;
    try {
      outcome = await this.reconcileOnce(triggers, startedAt, take, stages);
      this.writeBackoff.reset();
    } catch (err) {
      if (err instanceof WriteError) {
        // The candidate could not be written or installed (disk full, read-only): HAProxy keeps the
        // config in force, the temp file is gone, and the same state is tried again soon (doubling
        // up to 5 s: space freed should not wait for the resync timer).
        const delay = this.scheduleRetry(this.writeBackoff.fail(), false);
        outcome = this.outcome('write-failed', `${err.message}; keeping the config in force (retry in ${delay} ms)`, triggers, startedAt, stages, {
          candidateHash: null,
          snapshotVersion: this.lastReadSnapshotVersion,
          quarantined: this.runningModel?.quarantined ?? [],
        });
      } else {
        // A bug in a stage must not stop the loop: count it as a noop that changed nothing.
        this.o.log.error({ err }, 'reconcile failed unexpectedly');
        outcome = this.outcome('noop', `internal error: ${(err as Error).message}`, triggers, startedAt, stages, {
          candidateHash: null,
          snapshotVersion: -1,
          quarantined: this.runningModel?.quarantined ?? [],
        });
      }
    }
    this.record(outcome);
  }

  private record(o: ApplyOutcome): void {
    this.outcomes.add(o);
    this.emit('outcome', o);
  }

  /** Asks for a `retry` trigger in `delay` ms; `forReload`: no reload before then either. */
  private scheduleRetry(delay: number, forReload: boolean): number {
    const at = this.clock.now() + delay;
    if (forReload) this.slot.holdUntil(at);
    // One retry timer: the earliest asked for wins (a retry reads and reconciles everything anyway).
    this.retryTimer.at(at);
    return delay;
  }

  private outcome(
    kind: OutcomeKind,
    reason: string,
    triggers: string[],
    startedAt: number,
    stages: StageTimes,
    extra: { candidateHash: string | null; snapshotVersion: number; quarantined: QuarantinedApp[] },
  ): ApplyOutcome {
    return {
      outcome: kind,
      reason,
      triggers,
      // A timestamp people read and the fleet view compares: wall clock. The duration: monotonic.
      at: Date.now(),
      ms: Math.round(this.clock.now() - startedAt),
      configHash: this.runningModel?.confirmed ? this.runningModel.hash : null,
      ...extra,
      stages: { ...stages.ms },
    };
  }

  private async reconcileOnce(initialTriggers: string[], startedAt: number, take: () => string[], stages: StageTimes): Promise<ApplyOutcome> {
    let triggers = initialTriggers;
    let refusedInvalid = 0;
    for (;;) {
      // Stage 1: read the full desired state.
      let desired: DesiredState;
      try {
        desired = await stages.timed('read', () => this.o.source.read());
      } catch (err) {
        const delay = this.scheduleRetry(this.readBackoff.fail(), false);
        const why = err instanceof NoSnapshotError ? 'no Marathon snapshot in ZooKeeper yet' : `desired state unavailable: ${(err as Error).message}`;
        return this.outcome('noop', `${why}; keeping the config in force (retry in ${delay} ms)`, triggers, startedAt, stages, {
          candidateHash: null,
          snapshotVersion: -1,
          quarantined: this.runningModel?.quarantined ?? [],
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
      let plan = await this.planner.plan(desired, this.runningModel, this.runtimeUsable(), stages);
      let runtimeFailure: string | null = null;
      if (plan.kind === 'runtime') {
        const r = await this.apply.byRuntime(plan, triggers, startedAt, stages);
        if (r.outcome) return r.outcome;
        // Never a silent divergence: validate the same desired state and reload.
        runtimeFailure = r.reason;
        plan = await this.planner.plan(desired, this.runningModel, false, stages);
      }
      if (plan.kind === 'runtime') throw new Error('runtime plan without the Runtime API');
      const extra = { candidateHash: plan.hash, snapshotVersion: plan.snapshotVersion, quarantined: plan.quarantined };
      if (plan.kind === 'unchanged') {
        // HAProxy runs exactly this text, so this state is what it runs: a snapshot or rule change that
        // renders the same config still counts as applied (the fleet view compares these versions).
        const r = this.runningModel!;
        this.runningModel = {
          ...r, data: plan.data, origins: plan.origins, snapshotVersion: plan.snapshotVersion, rulesApplied: plan.rulesApplied,
          quarantined: plan.quarantined, slots: slotTable(plan.data),
        };
        this.o.metrics.quarantined(plan.quarantined.length);
        return this.outcome('noop', 'unchanged', triggers, startedAt, stages, extra);
      }
      if (plan.kind === 'invalid') return this.outcome('invalid', plan.reason, triggers, startedAt, stages, extra);

      // Stage 5: wait for the reload slot (minimum reload interval, backoff after a failed reload,
      // reloads per minute, old generations).
      const slot = await stages.timed('wait', () =>
        this.slot.acquire({
          hasPending: () => this.pacer.hasPending,
          take,
          runtimeUsable: () => this.runtimeUsable(),
          runHeld: (held) => this.runtimeWhileHeld(held),
        }),
      );
      if (this.closed) {
        await this.files.discard(plan.tempPath);
        return this.outcome('noop', 'shutting down before the reload slot', triggers, startedAt, stages, extra);
      }
      if (slot.taken.length > 0 || (slot.waited && this.pacer.hasPending)) {
        // Newer triggers arrived while waiting (and servers may have changed at runtime meanwhile):
        // start over so the reload carries the latest state.
        await this.files.discard(plan.tempPath);
        triggers = [...new Set([...triggers, ...slot.taken, ...take()])].sort();
        continue;
      }

      // Stages 6-8: install, reload, clean up.
      const applied = runtimeFailure ? { ...plan, notRuntime: `runtime change failed: ${runtimeFailure}` } : plan;
      const done = await this.apply.byReload(applied, triggers, startedAt, stages);
      // Null: the master refused a candidate that was not validated first, and `haproxy -c` finds
      // it invalid: plan again, and the validation's quarantine rounds leave the culprit out.
      if (done) return done;
      if (++refusedInvalid > MAX_REFUSED_INVALID) throw new Error('the master kept refusing invalid candidates');
    }
  }

  /**
   * While a storm bound holds a reload: applies (and records as a `runtime` outcome) what the Runtime
   * API can apply on its own (Planner.heldRuntime). Anything else waits for the reload.
   */
  private async runtimeWhileHeld(triggers: string[]): Promise<void> {
    const r = this.runningModel;
    if (!this.runtimeUsable() || !r?.data) return;
    const stages = new StageTimes();
    const startedAt = this.clock.now();
    try {
      let desired: DesiredState;
      try {
        desired = await stages.timed('read', () => this.o.source.read());
      } catch {
        return; // the held reconcile reads again when the wait ends
      }
      const plan = await this.planner.heldRuntime(desired, { ...r, data: r.data }, stages);
      if (!plan) return;
      const applied = await this.apply.byRuntime(plan, [...triggers, 'reload-held'], startedAt, stages);
      if (applied.outcome) this.record(applied.outcome);
    } catch (err) {
      this.o.log.warn({ err }, 'runtime change while a reload waits failed; the reload will carry it');
    }
  }

  /** The Runtime API may apply the next change: it is on, and HAProxy is known to run `running.text`. */
  private runtimeUsable(): boolean {
    return !!this.o.runtime?.enabled && this.runningModel !== null && this.runningModel.confirmed;
  }
}

/** Refused invalid candidates one reconcile plans again before it gives up (each quarantines more). */
const MAX_REFUSED_INVALID = 6;
