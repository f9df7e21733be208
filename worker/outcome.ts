/**
 * The reconcile's contract types: what it reads (DesiredState), what HAProxy runs (RunningModel),
 * how it ends (ApplyOutcome) and what it leaves out (QuarantinedApp). docs/worker.md describes them.
 */
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import type { TemplateData } from '../common/core/model.js';
import type { Origin } from '../common/core/render.js';
import type { StoredRecord } from '../common/adapters/zookeeper/rules.js';
import type { WorkerQuarantine } from '../common/adapters/zookeeper/registrations.js';
import type { SlotTable } from '../common/core/slots.js';

/**
 * How a reconcile ended. `runtime`: only servers changed, applied through HAProxy's Runtime API
 * without a reload (and written to OutputPath). Consumers should treat unknown kinds as "applied".
 */
export type OutcomeKind = 'noop' | 'runtime' | 'reloaded' | 'invalid' | 'reload-failed' | 'write-failed';

export const OUTCOME_KINDS: readonly OutcomeKind[] = ['noop', 'runtime', 'reloaded', 'invalid', 'reload-failed', 'write-failed'];

/**
 * An app left out of the config (its rule, or all of it) because its fragment broke validation,
 * the port policy refused a port it binds, HAProxy refused it at reload, or validation timed out
 * with it changed since the last good config.
 */
export type QuarantinedApp = WorkerQuarantine;

export interface ApplyOutcome {
  outcome: OutcomeKind;
  /** One line: why (logged, counted, and shown in the status record). */
  reason: string;
  /** What prompted the reconcile (diagnostics only: never used to decide anything). */
  triggers: string[];
  /** When it ended (ms epoch) and how long it took. */
  at: number;
  ms: number;
  /** sha256 of the config HAProxy runs after this reconcile; null when unknown. */
  configHash: string | null;
  /** sha256 of the config rendered by this reconcile; null when nothing was rendered. */
  candidateHash: string | null;
  /** The snapshot version read (-1: none read). */
  snapshotVersion: number;
  /** Apps left out of the rendered config (sorted by id). */
  quarantined: QuarantinedApp[];
  /** Time spent per stage (ms): read, build, render, validate, wait, install, reload, cleanup, runtime. */
  stages: Partial<Record<Stage, number>>;
  /** `runtime`: servers changed (and of those, put into drain). */
  servers?: { changed: number; drained: number };
}

/** Why a reload waits (shown in /status as `reloadWait`). */
export interface ReloadWait {
  /**
   * `interval`: Worker.MinReloadIntervalMs; `retry`: backoff after a failed reload; `rate`:
   * Worker.MaxReloadsPerMinute; `generations`: Worker.MaxOldGenerations old HAProxy generations still run.
   */
  reason: 'interval' | 'retry' | 'rate' | 'generations';
  /** Since when this reason holds the reload (ms epoch). */
  since: number;
  /** When it is expected to end (ms epoch); null when it depends on old generations exiting. */
  until: number | null;
}

export type Stage = 'read' | 'build' | 'render' | 'validate' | 'wait' | 'install' | 'reload' | 'cleanup' | 'runtime';

/** The stage timings of one reconcile (or of one runtime pass while a reload waits). */
export class StageTimes {
  readonly ms: Partial<Record<Stage, number>> = {};

  /** Runs one stage and adds its duration to this reconcile's timings. */
  async timed<T>(stage: Stage, fn: () => Promise<T> | T): Promise<T> {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.ms[stage] = Math.round(((this.ms[stage] ?? 0) + performance.now() - t) * 10) / 10;
    }
  }
}

/** The outcomes recorded: the last ones, a count per kind, and each one's log line and metric. */
export class OutcomeRecord {
  last: ApplyOutcome | null = null;
  /** The last outcome that was not a noop (what the last apply attempt did). */
  lastApply: ApplyOutcome | null = null;
  reconciles = 0;
  readonly counts: Record<OutcomeKind, number> = { noop: 0, runtime: 0, reloaded: 0, invalid: 0, 'reload-failed': 0, 'write-failed': 0 };
  readonly history: ApplyOutcome[] = [];

  constructor(private readonly historySize: number, private readonly log: Logger, private readonly metrics: Metrics) {}

  add(o: ApplyOutcome): void {
    this.reconciles++;
    this.counts[o.outcome]++;
    this.last = o;
    if (o.outcome !== 'noop') this.lastApply = o;
    this.history.push(o);
    if (this.history.length > this.historySize) this.history.shift();
    this.metrics.reconcile(o.outcome, o.ms);
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
      if (o.reason === 'unchanged') this.log.debug(fields, 'reconciled');
      else this.log.info(fields, 'reconciled');
    }
    else if (o.outcome === 'reloaded' || o.outcome === 'runtime') this.log.info(o.servers ? { ...fields, servers: o.servers } : fields, 'reconciled');
    else this.log.warn(fields, 'reconciled');
  }
}

/** Everything a reconcile reads: one Marathon snapshot and every service record. */
export interface DesiredState {
  snapshotVersion: number;
  /** The raw `apps` array of Marathon's /v2/apps. */
  apps: unknown[];
  rules: Map<string, StoredRecord>;
}

/** Where the desired state comes from. `read` throws when it is unavailable (never returns partial data). */
export interface DesiredStateSource {
  read(): Promise<DesiredState>;
}

export class NoSnapshotError extends Error {
  override name = 'NoSnapshotError';
}

/** What HAProxy runs, as far as this worker knows. */
export interface RunningModel {
  hash: string;
  text: string;
  /** The template data rendered (null when the file was found on disk at start). */
  data: TemplateData | null;
  origins: Origin[];
  snapshotVersion: number;
  /** App id -> rule (znode) version of each rule in force. */
  rulesApplied: Record<string, number>;
  quarantined: QuarantinedApp[];
  /** The server slot of every task (null when the model came from the file on disk). */
  slots: SlotTable | null;
  appliedAt: number;
  /** How the model was applied last: a reload (or start), or the Runtime API. */
  via: 'reload' | 'runtime';
  /**
   * False after a failed reload: HAProxy may run either config, so the next reconcile reloads even
   * when the rendered text equals `text`.
   */
  confirmed: boolean;
}

/** The reconciler's state as /status and the fleet record show it; a copy taken when asked. */
export interface ReconcilerStatus {
  /** The model HAProxy runs (null until the first successful apply, unless given at start). */
  running: RunningModel | null;
  last: ApplyOutcome | null;
  /** The last outcome that was not a noop (what the last apply attempt did). */
  lastApply: ApplyOutcome | null;
  reconciles: number;
  counts: Record<OutcomeKind, number>;
  /** True while a reconcile runs or one is pending. */
  busy: boolean;
  /** The snapshot version of the last successful read (-1: none yet). */
  lastReadSnapshotVersion: number;
  /**
   * The reload storm bounds: the reload waiting now and why (null: none), reloads held back by the
   * rate or generations bound since start, old HAProxy generations last counted (null: unknown).
   */
  reloads: { wait: ReloadWait | null; deferred: number; oldGenerations: number | null };
  /** Runtime API changes that fell back to a reload, the last failure, servers draining. */
  runtime: { fallbacks: number; lastError: { at: number; reason: string } | null; draining: number; serversAdded: number };
}

/** Why a new config applies, for the outcome's reason: what changed since the model HAProxy ran. */
export function describeChange(previous: RunningModel | null, plan: { snapshotVersion: number; rulesApplied: Record<string, number> }): string {
  if (!previous || previous.data === null) return 'first config since start';
  if (!previous.confirmed) return 'retrying after a failed reload';
  const parts: string[] = [];
  if (previous.snapshotVersion !== plan.snapshotVersion) parts.push(`snapshot ${previous.snapshotVersion} -> ${plan.snapshotVersion}`);
  const ids = new Set([...Object.keys(previous.rulesApplied), ...Object.keys(plan.rulesApplied)]);
  const changed = [...ids].filter((id) => previous.rulesApplied[id] !== plan.rulesApplied[id]).sort();
  if (changed.length) parts.push(`rules changed: ${changed.slice(0, 5).join(', ')}${changed.length > 5 ? ` and ${changed.length - 5} more` : ''}`);
  return parts.length ? `config changed (${parts.join('; ')})` : 'config changed (health or time-dependent state)';
}
