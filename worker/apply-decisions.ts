/**
 * What the loop does with an apply's result (worker/applier.ts): the new running model, the apps a
 * failed reload blames put in quarantine, the retry and its hold on the reload slot, the outcome and
 * its reason. The loop (worker/reconciler.ts) owns the running model, the retry timer and the outcome
 * record; it lends them through ReconcileLoop.
 */
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import type { Logger } from '../common/log.js';
import { Backoff } from '../common/pacing.js';
import { slotTable } from '../common/core/template-data.js';
import type { Applier, RuntimeOptions } from './applier.js';
import type { ConfigFiles } from './config-files.js';
import { describeChange, type ApplyOutcome, type OutcomeKind, type QuarantinedApp, type RunningModel, type StageTimes } from './outcome.js';
import type { ApplyPlan, RuntimePlan } from './plan.js';
import type { Planner } from './planner.js';
import { rulesFileText } from './last-good.js';
import type { QuarantineMemory } from './quarantine.js';
import type { ReloadSlot } from './reload-slot.js';

/** What the apply decisions use of the loop. */
export interface ReconcileLoop {
  running(): RunningModel | null;
  setRunning(model: RunningModel): void;
  /** Asks for a `retry` trigger in `delay` ms; `forReload`: no reload before then either. Returns `delay`. */
  scheduleRetry(delay: number, forReload: boolean): number;
  outcome(
    kind: OutcomeKind,
    reason: string,
    triggers: string[],
    startedAt: number,
    stages: StageTimes,
    extra: { candidateHash: string | null; snapshotVersion: number; quarantined: QuarantinedApp[] },
  ): ApplyOutcome;
}

/** The loop's options these decisions read (ReconcilerOptions documents them). */
export interface ApplyDecisionOptions {
  log: Logger;
  metrics: Metrics;
  outputPath: string;
  retryInitialMs?: number;
  retryMaxMs?: number;
  runtime?: RuntimeOptions | null;
}

export class ApplyDecisions {
  /** Failed reloads in a row (and runtime changes left unwritten): the retry's backoff. */
  private readonly reloadBackoff: Backoff;

  constructor(
    private readonly o: ApplyDecisionOptions,
    private readonly stages: { applier: Applier; planner: Planner; files: ConfigFiles; slot: ReloadSlot; memory: QuarantineMemory },
    private readonly loop: ReconcileLoop,
  ) {
    this.reloadBackoff = new Backoff(o.retryInitialMs ?? 500, o.retryMaxMs ?? 30000);
  }

  /**
   * Reloads (worker/applier.ts) and decides from the result: running model, quarantine, retry. Null:
   * the master refused an unvalidated candidate that `haproxy -c` finds invalid (plan again).
   */
  async byReload(plan: ApplyPlan, triggers: string[], startedAt: number, stages: StageTimes): Promise<ApplyOutcome | null> {
    const previous = this.loop.running();
    const extra = { candidateHash: plan.hash, snapshotVersion: plan.snapshotVersion, quarantined: plan.quarantined };
    const reload = await this.stages.applier.reload(plan, previous, stages);
    this.stages.slot.noteReload();
    if (!reload.ok) {
      this.o.metrics.reloadFailed();
      await this.stages.applier.afterFailedReload(plan.text, previous, reload);
      if (previous) this.loop.setRunning({ ...previous, confirmed: false });
      if (plan.unvalidated && (await this.stages.planner.checkRefused(plan, stages))) {
        this.o.log.warn({ reason: reload.reason }, 'haproxy refused an invalid config; quarantining by its validation');
        return null;
      }
      // The backoff counts the failures in a row that blamed nothing: this one is at least the second.
      const blamed = this.stages.planner.blameFailedReload(plan, previous, reload.output, this.reloadBackoff.failures >= 1);
      this.stages.memory.remember(plan.data, blamed, this.o.retryMaxMs ?? 30000);
      if (blamed.length > 0) {
        // The rest applies without the blamed apps after the first backoff step, not at once: a
        // master that just refused a config is still resuming its old workers' listeners.
        this.o.log.warn({ apps: blamed.map((q) => q.appId), errors: blamed.slice(0, 3).map((q) => q.error) }, 'quarantining apps that made the reload fail');
        const delay = this.loop.scheduleRetry(this.reloadBackoff.initialMs, true);
        const list = blamed.map((q) => `${q.appId} (${q.level})`).join(', ');
        return this.loop.outcome('reload-failed', `${reload.reason}; quarantined ${list}: ${blamed[0].error} (retry without them in ${delay} ms)`, triggers, startedAt, stages, {
          ...extra,
          quarantined: [...extra.quarantined.filter((q) => !blamed.some((b) => b.appId === q.appId)), ...blamed].sort((a, b) => (a.appId < b.appId ? -1 : 1)),
        });
      }
      const delay = this.loop.scheduleRetry(this.reloadBackoff.fail(), true);
      return this.loop.outcome('reload-failed', `${reload.reason} (retry in ${delay} ms)`, triggers, startedAt, stages, extra);
    }
    this.reloadBackoff.reset();
    this.stages.slot.clearHold();
    this.stages.memory.forgetRetried(plan.quarantined);
    this.loop.setRunning(runningFrom(plan, 'reload'));
    await this.stages.files.keepLastGoodRules(rulesFileText(plan.data, plan.rulesApplied));
    this.o.metrics.reloadDone(reload.ms);
    this.o.metrics.quarantined(plan.quarantined.length);
    await this.stages.applier.afterReload(plan.text, stages);
    let reason = describeChange(previous, plan);
    if (plan.quarantined.length) reason += `; quarantined ${plan.quarantined.map((q) => `${q.appId} (${q.level})`).join(', ')}`;
    if (plan.notRuntime && this.o.runtime?.enabled) reason += `; reload needed: ${plan.notRuntime}`;
    return this.loop.outcome('reloaded', reason, triggers, startedAt, stages, extra);
  }

  /**
   * Applies a server-only change through the Runtime API (worker/applier.ts). Resolves `outcome: null`
   * with the reason when anything failed or did not verify; the caller then reloads.
   */
  async byRuntime(
    plan: RuntimePlan,
    triggers: string[],
    startedAt: number,
    stages: StageTimes,
  ): Promise<{ outcome: ApplyOutcome } | { outcome: null; reason: string }> {
    const previous = this.loop.running()!;
    const extra = { candidateHash: plan.hash, snapshotVersion: plan.snapshotVersion, quarantined: plan.quarantined };
    const r = await this.stages.applier.runtime(plan, stages);
    if (r.kind === 'failed') return { outcome: null, reason: r.reason };
    if (r.kind === 'unwritten') {
      this.loop.setRunning({ ...runningFrom(plan, 'runtime'), confirmed: false });
      const delay = this.loop.scheduleRetry(this.reloadBackoff.fail(), true);
      const reason = `servers changed through the Runtime API but ${this.o.outputPath} could not be written: ${r.reason} (reload in ${delay} ms)`;
      return { outcome: this.loop.outcome('reload-failed', reason, triggers, startedAt, stages, extra) };
    }
    this.loop.setRunning(runningFrom(plan, 'runtime'));
    this.o.metrics.quarantined(plan.quarantined.length);
    await this.stages.files.keepLastGood(plan.text);
    const drained = r.drained ? `, ${r.drained} drained` : '';
    const what = `${r.changed} server${r.changed === 1 ? '' : 's'} in ${r.backends} backend${r.backends === 1 ? '' : 's'}${drained}`;
    const reason = `servers changed through the Runtime API (${what}); ${describeChange(previous, plan)}`;
    const o = this.loop.outcome('runtime', reason, triggers, startedAt, stages, extra);
    o.servers = { changed: r.changed, drained: r.drained };
    return { outcome: o };
  }
}

function runningFrom(plan: ApplyPlan | RuntimePlan, via: RunningModel['via']): RunningModel {
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
