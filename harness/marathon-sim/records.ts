/**
 * How the simulator stores apps, tasks and deployments (the records every other module reads), the
 * ids Marathon derives from an app id, and what a Mesos task state means to Marathon. Pure.
 */
import type { JsonObject, TaskState } from './types.js';

/** A task as the simulator stores it. `json` holds the wire fields (verbatim for fixture tasks). */
export interface TaskRecord {
  id: string;
  /** The owning app's id exactly as the app record spells it. */
  appId: string;
  /** 1.4+ instance id (`<app>.marathon-<uuid>`), used by health and instance events. */
  instanceId: string;
  state: TaskState;
  /** Aggregate health; undefined when no health check result exists. */
  health: boolean | undefined;
  ready: boolean | undefined;
  json: JsonObject;
}

/** The four task counters Marathon adds to every app. */
export interface Counts {
  tasksStaged: number;
  tasksRunning: number;
  tasksHealthy: number;
  tasksUnhealthy: number;
}

/** An app as the simulator stores it: the definition plus its tasks. */
export interface AppRecord {
  /** The wire definition (no tasks, counts or deployments), `id` first. */
  def: JsonObject;
  tasks: TaskRecord[];
  /**
   * Counters copied from a fixture. A fixture may report counts without embedding tasks, or counts
   * that disagree with its tasks (F5's negative test); replaying it must serve what it said. Any task
   * change on the app drops the override, from then on counts are computed.
   */
  countsOverride?: Partial<Counts>;
  /** Kept verbatim from a fixture (which may say null), or set by a TASK_FAILED. */
  lastTaskFailure?: unknown;
}

/** One action of a deployment step. */
export interface DeploymentAction {
  action: string;
  app: string;
}

/** A deployment as the simulator stores it. */
export interface DeploymentRecord {
  id: string;
  version: string;
  affectedApps: string[];
  steps: DeploymentAction[][];
  /** Index of the step in progress. */
  current: number;
  /** The plan JSON as events carry it (built once so every event of the deployment agrees). */
  plan: JsonObject;
}

/** Task states after which Marathon expunges the task from its lists. */
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set<TaskState>([
  'TASK_KILLED',
  'TASK_FINISHED',
  'TASK_FAILED',
  'TASK_ERROR',
  'TASK_GONE',
  'TASK_GONE_BY_OPERATOR',
  'TASK_DROPPED',
]);

/** Marathon 1.4+ instance condition for a Mesos task state (the `condition` of instance_changed_event). */
export function conditionOf(state: TaskState): string {
  const map: Record<TaskState, string> = {
    TASK_STAGING: 'Staging',
    TASK_STARTING: 'Starting',
    TASK_RUNNING: 'Running',
    TASK_KILLING: 'Killing',
    TASK_KILLED: 'Killed',
    TASK_FINISHED: 'Finished',
    TASK_FAILED: 'Failed',
    TASK_LOST: 'Unreachable',
    TASK_ERROR: 'Error',
    TASK_UNREACHABLE: 'Unreachable',
    TASK_GONE: 'Gone',
    TASK_GONE_BY_OPERATOR: 'GoneByOperator',
    TASK_DROPPED: 'Dropped',
    TASK_UNKNOWN: 'Unknown',
  };
  return map[state];
}

/** Marathon normalises app ids to absolute paths: "nginx" and "//nginx" both mean "/nginx". */
export function canonicalAppId(id: string): string {
  const trimmed = id.replace(/^\/+/, '').replace(/\/+$/, '');
  return `/${trimmed}`;
}

/** Task ids start with the app id without its leading slash, `/` replaced by `_` (fact 7). */
export function taskIdPrefix(appId: string): string {
  return canonicalAppId(appId).slice(1).replace(/\//g, '_');
}

/**
 * The 1.4+ instance id for a task id: `<prefix>.<uuid>[.<incarnation>]` becomes
 * `<prefix>.marathon-<uuid>`. Ids of other shapes (hand-written fixtures) are their own instance id.
 */
export function instanceIdOf(taskId: string): string {
  const m = /^(.*)\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\.\d+)?$/i.exec(taskId);
  return m ? `${m[1]}.marathon-${m[2]}` : taskId;
}

/** Parent group of an app or group id ("/a/b/c" -> "/a/b", "/x" -> "/"). */
export function parentGroupId(id: string): string {
  const canonical = canonicalAppId(id);
  const cut = canonical.lastIndexOf('/');
  return cut <= 0 ? '/' : canonical.slice(0, cut);
}

/** A task change makes computed counts authoritative again (see AppRecord.countsOverride). */
export function touch(app: AppRecord): void {
  delete app.countsOverride;
}
