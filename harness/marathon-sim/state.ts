/**
 * The simulated Marathon's state: apps, tasks and deployments, and the controls that change them.
 * Every control publishes exactly the events real Marathon publishes for that change, in the order
 * the real captures show (harness/fixtures/marathon/sse/real-marathon-1.6_gestalt-dcos_app-lifecycle.txt
 * for create and destroy). The HTTP side (server.ts) only reads this state and forwards the events.
 *
 * Controls run synchronously (all their events are published before they return), except
 * rollingRestart, which spreads its steps over time so a consumer can be observed mid-deployment.
 */
import { randomUUID } from 'node:crypto';
import { assignServicePorts, hostPortSlots, normalizeDefinition, withDefaultPorts } from './definition.js';
import * as ev from './events.js';
import { appsFromFixture } from './fixtures.js';
import { healthOfResults, isMarathonSideCheck, nextHealthResults } from './health.js';
import { lightPlanEvent, planJson, rootGroup, stepJson } from './plans.js';
import {
  canonicalAppId,
  conditionOf,
  instanceIdOf,
  parentGroupId,
  taskIdPrefix,
  TERMINAL_STATES,
  type AppRecord,
  type Counts,
  type DeploymentAction,
  type DeploymentRecord,
  type TaskRecord,
} from './records.js';
import type { AppDefinition, JsonObject, SimEvent, TaskSpec, TaskState, TaskView } from './types.js';
import { eraOf, type Era } from './version.js';

/** Options of the state; the clock and id source are injectable so tests can pin them. */
export interface StateOptions {
  /** Reported Marathon version; drives every version-dependent shape. */
  version: string;
  clock?: () => Date;
  uuid?: () => string;
  /** Host used for invented tasks (default 127.0.0.1). */
  defaultHost?: string;
  /** First host port handed to invented tasks (default 31000, Mesos' usual range). */
  firstHostPort?: number;
  /** First service port Marathon allocates (default 10000, Marathon's local_port_min). */
  firstServicePort?: number;
}

/** Options shared by the controls that start tasks. */
export interface LaunchOptions {
  /** Explicit endpoints for the new tasks, in order; missing entries are invented. */
  tasks?: TaskSpec[];
  /** Health of new tasks when the app has health checks (default true). */
  healthy?: boolean;
  /** Readiness of new tasks when the app has readiness checks (default true). */
  ready?: boolean;
  /** Keep the deployment open after its tasks started; finish it with finishDeployment(). */
  hold?: boolean;
}

/** Options of rollingRestart. */
export interface RollingRestartOptions {
  /** Endpoints for the replacement tasks, one per old task, in order. */
  tasks?: TaskSpec[];
  /** Pause between the steps (start new, kill old) so consumers can react; default 20 ms. */
  stepDelayMs?: number;
  /** Awaited before each old task is killed, e.g. to wait until HAProxy routes to the replacement. */
  beforeKill?: (old: TaskView, replacement: TaskView) => Promise<void> | void;
  healthy?: boolean;
  ready?: boolean;
}

const COUNT_KEYS = ['tasksStaged', 'tasksRunning', 'tasksHealthy', 'tasksUnhealthy'] as const;
const EMBEDDED_KEYS = new Set<string>([...COUNT_KEYS, 'tasks', 'deployments', 'readinessCheckResults', 'lastTaskFailure', 'taskStats']);

function isIPv4(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
}

/** Thrown by controls given an unknown app or task id (a test bug, so it should be loud). */
export class SimulatorError extends Error {
  constructor(message: string) {
    super(`marathon-sim: ${message}`);
    this.name = 'SimulatorError';
  }
}

/** Apps, tasks and deployments of one simulated Marathon cluster, plus its event bus. */
export class SimState {
  readonly era: Era;
  private readonly clock: () => Date;
  private readonly uuid: () => string;
  private readonly defaultHost: string;
  private nextHostPort: number;
  private nextServicePort: number;
  private readonly apps = new Map<string, AppRecord>();
  private readonly deployments = new Map<string, DeploymentRecord>();
  private readonly listeners = new Set<(e: SimEvent) => void>();
  private readonly agents = new Map<string, string>();
  private readonly sleepers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  private rootVersion: string;
  /** Bumped by cancelPending(); a rolling restart started in an older generation stops. */
  private generation = 0;

  constructor(opts: StateOptions) {
    this.era = eraOf(opts.version);
    this.clock = opts.clock ?? (() => new Date());
    this.uuid = opts.uuid ?? randomUUID;
    this.defaultHost = opts.defaultHost ?? '127.0.0.1';
    this.nextHostPort = opts.firstHostPort ?? 31000;
    this.nextServicePort = opts.firstServicePort ?? 10000;
    this.rootVersion = this.now();
  }

  // ---- event bus ------------------------------------------------------------------------------

  /** Registers a listener for every event; returns the function that removes it. */
  onEvent(listener: (e: SimEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Publishes one event. An object is serialised once, so the SSE data line and the callback body
   * are the same bytes; a string is sent verbatim and must be one line, as Marathon's always are.
   */
  publish(eventType: string, payload: JsonObject | string): SimEvent {
    const data = typeof payload === 'string' ? payload : JSON.stringify(payload);
    if (/[\r\n]/.test(data)) throw new SimulatorError('raw event JSON must be one line (Marathon writes one data: line per event)');
    const event: SimEvent = { eventType, data };
    // A heavy plan (1.6) also goes out light to the streams that ask for it.
    if (typeof payload !== 'string' && this.era.heavyPlans && this.era.planFormatParam) event.light = lightPlanEvent(payload);
    for (const l of [...this.listeners]) l(event);
    return event;
  }

  private publishObject(payload: JsonObject): void {
    this.publish(String(payload['eventType']), payload);
  }

  // ---- queries --------------------------------------------------------------------------------

  /** All apps in insertion order (Marathon lists apps in group order, not sorted). */
  listApps(): AppRecord[] {
    return [...this.apps.values()];
  }

  /** The app with this id; "nginx", "/nginx" and "//nginx" are the same app. */
  findApp(appId: string): AppRecord | undefined {
    return this.apps.get(canonicalAppId(appId));
  }

  /** The first task with this id (hand-written fixtures reuse ids across apps). */
  findTask(taskId: string): { app: AppRecord; task: TaskRecord } | undefined {
    for (const app of this.apps.values()) {
      const task = app.tasks.find((t) => t.id === taskId);
      if (task) return { app, task };
    }
    return undefined;
  }

  /** Ids of the open deployments that affect the app. */
  deploymentIdsOf(appId: string): string[] {
    const id = canonicalAppId(appId);
    return [...this.deployments.values()].filter((d) => d.affectedApps.some((a) => canonicalAppId(a) === id)).map((d) => d.id);
  }

  listDeployments(): DeploymentRecord[] {
    return [...this.deployments.values()];
  }

  /** A task's simulator-side view (host, ports, state, health). */
  view(task: TaskRecord): TaskView {
    const ports = Array.isArray(task.json['ports']) ? (task.json['ports'] as unknown[]).map(Number) : [];
    return {
      id: task.id,
      appId: task.appId,
      host: String(task.json['host'] ?? ''),
      ports,
      state: task.state,
      healthy: task.health,
      ready: task.ready,
    };
  }

  // ---- seeding ---------------------------------------------------------------------------------

  /**
   * Replaces the state with the apps of a fixture (any shape appsFromFixture accepts). Fields are
   * kept verbatim, including ones Marathon never sends, so replays are faithful; embedded counts,
   * deployments and lastTaskFailure are kept too. Publishes no events: this is seeding, not a change.
   */
  loadFixture(json: unknown, opts: { merge?: boolean } = {}): void {
    const apps = appsFromFixture(json);
    if (!opts.merge) {
      this.apps.clear();
      this.deployments.clear();
    }
    for (const raw of apps) {
      if (typeof raw['id'] !== 'string') throw new SimulatorError('fixture app without a string "id"');
      const def: JsonObject = {};
      for (const [k, v] of Object.entries(raw)) if (!EMBEDDED_KEYS.has(k)) def[k] = structuredClone(v);
      const appId = raw['id'];
      const app: AppRecord = { def, tasks: [] };
      const override: Partial<Counts> = {};
      for (const k of COUNT_KEYS) if (typeof raw[k] === 'number') override[k] = raw[k];
      if (Object.keys(override).length > 0) app.countsOverride = override;
      if ('lastTaskFailure' in raw) app.lastTaskFailure = structuredClone(raw['lastTaskFailure']);
      for (const t of Array.isArray(raw['tasks']) ? (raw['tasks'] as JsonObject[]) : []) {
        const id = String(t['id']);
        const state = (typeof t['state'] === 'string' ? t['state'] : t['startedAt'] === null ? 'TASK_STAGING' : 'TASK_RUNNING') as TaskState;
        const health = healthOfResults(t['healthCheckResults']);
        app.tasks.push({ id, appId, instanceId: instanceIdOf(id), state, health, ready: undefined, json: structuredClone(t) });
      }
      for (const d of Array.isArray(raw['deployments']) ? (raw['deployments'] as JsonObject[]) : []) {
        const id = String(d['id']);
        const existing = this.deployments.get(id);
        if (existing) existing.affectedApps.push(appId);
        else {
          const version = String(raw['version'] ?? this.now());
          const steps = [[{ action: 'ScaleApplication', app: appId }]];
          const plan = planJson(
            { id, steps, version, original: rootGroup([], this.era, version), target: rootGroup([def], this.era, version) },
            this.era,
          );
          this.deployments.set(id, { id, version, affectedApps: [appId], steps, current: 0, plan });
        }
      }
      this.apps.set(canonicalAppId(appId), app);
    }
  }

  // ---- controls: apps ---------------------------------------------------------------------------

  /**
   * Creates an app the way `POST /v2/apps` does: deployment_info, group_change_success,
   * api_post_event, then per task instance Created / TASK_RUNNING / Running (+ health events when the
   * app has health checks), step successes and deployment_success. Throws if the app exists.
   */
  deployApp(input: AppDefinition, opts: LaunchOptions & { clientIp?: string; uri?: string } = {}): { deploymentId: string; appId: string; taskIds: string[] } {
    if (typeof input.id !== 'string' || input.id.replace(/\//g, '') === '') throw new SimulatorError('an app definition needs an id');
    const appId = canonicalAppId(input.id);
    if (this.apps.has(appId)) throw new SimulatorError(`An app with id [${appId}] already exists.`);
    const version = this.now();
    const original = this.allDefs();
    const given: JsonObject = { ...input };
    if (given['instances'] === undefined && opts.tasks) given['instances'] = opts.tasks.length;
    const def = normalizeDefinition(assignServicePorts(withDefaultPorts(given, this.era), () => this.nextServicePort++), version);
    const app: AppRecord = { def, tasks: [] };
    this.apps.set(appId, app);
    const instances = Number(def['instances']);
    const steps: DeploymentAction[][] = [[{ action: 'StartApplication', app: appId }]];
    if (instances > 0) steps.push([{ action: 'ScaleApplication', app: appId }]);
    const d = this.beginDeployment([appId], steps, original, this.allDefs(), version);
    this.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(appId), version, this.now()));
    this.publishObject(ev.apiPostEvent(opts.clientIp ?? '127.0.0.1', opts.uri ?? '/v2/apps', def, this.now()));
    const taskIds: string[] = [];
    if (instances > 0) {
      this.stepSuccess(d);
      this.stepInfo(d);
      for (let i = 0; i < instances; i++) taskIds.push(this.launchTask(app, opts.tasks?.[i], opts).id);
    }
    if (!opts.hold) this.finishDeployment(d.id);
    return { deploymentId: d.id, appId, taskIds };
  }

  /**
   * Changes the instance count like `PUT /v2/apps/{id}` with `{"instances": n}`: a ScaleApplication
   * deployment that starts new tasks or kills the youngest ones (Marathon's default killSelection).
   */
  scaleApp(appId: string, instances: number, opts: LaunchOptions & { clientIp?: string } = {}): { deploymentId: string; taskIds: string[] } {
    const app = this.mustApp(appId);
    const id = canonicalAppId(String(app.def['id']));
    const version = this.now();
    const original = this.allDefs();
    this.bumpVersion(app, version, 'scaling');
    app.def['instances'] = instances;
    const d = this.beginDeployment([id], [[{ action: 'ScaleApplication', app: id }]], original, this.allDefs(), version);
    this.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    this.publishObject(ev.apiPostEvent(opts.clientIp ?? '127.0.0.1', `/v2/apps${id}`, app.def, this.now()));
    const taskIds: string[] = [];
    const diff = instances - app.tasks.length;
    for (let i = 0; i < diff; i++) taskIds.push(this.launchTask(app, opts.tasks?.[i], opts).id);
    if (diff < 0) {
      // YOUNGEST_FIRST: latest stagedAt first; tasks staged in the same millisecond by list position.
      const victims = app.tasks
        .map((t, i) => ({ t, i }))
        .sort((a, b) => String(b.t.json['stagedAt'] ?? '').localeCompare(String(a.t.json['stagedAt'] ?? '')) || b.i - a.i)
        .slice(0, -diff)
        .map((x) => x.t);
      for (const t of victims) this.beginKill(app, t);
      for (const t of victims) this.completeKill(app, t);
    }
    if (!opts.hold) this.finishDeployment(d.id);
    return { deploymentId: d.id, taskIds };
  }

  /**
   * Replaces an app's labels like `PUT /v2/apps/{id}` with `{"labels": {...}}`: a configuration change
   * (new version and lastConfigChangeAt), api_post_event and group_change_success, and a deployment that
   * finishes at once. Marathon would also replace the tasks (RestartApplication); here they keep
   * running, so what is seen is the labels' effect alone.
   */
  setLabels(appId: string, labels: Record<string, string>): { deploymentId: string } {
    const app = this.mustApp(appId);
    const id = canonicalAppId(String(app.def['id']));
    const version = this.now();
    const original = this.allDefs();
    this.bumpVersion(app, version, 'config');
    app.def['labels'] = { ...labels };
    const d = this.beginDeployment([id], [[{ action: 'RestartApplication', app: id }]], original, this.allDefs(), version);
    this.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    this.publishObject(ev.apiPostEvent('127.0.0.1', `/v2/apps${id}`, app.def, this.now()));
    this.finishDeployment(d.id);
    return { deploymentId: d.id };
  }

  /**
   * Deletes an app like `DELETE /v2/apps/{id}`: deployment_info (StopApplication), TASK_KILLING per
   * task, group_change_success, TASK_KILLED per task, step success, deployment_success and
   * app_terminated_event (the order of the real 1.6 capture).
   */
  destroyApp(appId: string): { deploymentId: string } {
    const app = this.mustApp(appId);
    const id = canonicalAppId(String(app.def['id']));
    const version = this.now();
    const original = this.allDefs();
    const target = original.filter((def) => canonicalAppId(String(def['id'])) !== id);
    const d = this.beginDeployment([id], [[{ action: 'StopApplication', app: id }]], original, target, version);
    this.stepInfo(d);
    const tasks = [...app.tasks];
    for (const t of tasks) this.beginKill(app, t);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    for (const t of tasks) this.completeKill(app, t);
    this.apps.delete(id);
    // Deployments still open on the app die with it.
    for (const other of this.deployments.values()) {
      if (other.id !== d.id && other.affectedApps.some((a) => canonicalAppId(a) === id)) this.deployments.delete(other.id);
    }
    this.finishDeployment(d.id);
    this.publishObject(ev.appTerminatedEvent(id, this.now()));
    return { deploymentId: d.id };
  }

  /**
   * A rolling restart (`POST /v2/apps/{id}/restart`): a RestartApplication deployment that, for each
   * old task, starts a replacement, then kills the old task (TASK_KILLING, pause, TASK_KILLED). The
   * returned `done` settles when the deployment succeeded; steps are spaced by stepDelayMs.
   */
  rollingRestart(appId: string, opts: RollingRestartOptions = {}): { deploymentId: string; done: Promise<void> } {
    const app = this.mustApp(appId);
    const id = canonicalAppId(String(app.def['id']));
    const version = this.now();
    const original = this.allDefs();
    this.bumpVersion(app, version, 'config');
    const d = this.beginDeployment([id], [[{ action: 'RestartApplication', app: id }]], original, this.allDefs(), version);
    this.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    const olds = [...app.tasks];
    const delay = opts.stepDelayMs ?? 20;
    const generation = this.generation;
    const cancelled = (): boolean => generation !== this.generation || this.findApp(id) !== app;
    const run = async (): Promise<void> => {
      for (const [i, old] of olds.entries()) {
        await this.sleep(delay);
        if (cancelled()) return;
        const fresh = this.launchTask(app, opts.tasks?.[i], opts);
        await this.sleep(delay);
        if (cancelled()) return;
        if (opts.beforeKill) await opts.beforeKill(this.view(old), this.view(fresh));
        if (cancelled()) return;
        if (!app.tasks.includes(old)) continue;
        this.beginKill(app, old);
        await this.sleep(delay);
        if (cancelled()) return;
        if (app.tasks.includes(old)) this.completeKill(app, old);
      }
      if (!cancelled() && this.deployments.has(d.id)) this.finishDeployment(d.id);
    };
    const done = run().catch((err: unknown) => {
      if (!cancelled() && this.deployments.has(d.id)) this.failDeployment(d.id, String(err));
      throw err;
    });
    return { deploymentId: d.id, done };
  }

  // ---- controls: tasks --------------------------------------------------------------------------

  /**
   * Kills a task: TASK_KILLING then TASK_KILLED. With `scale`, a ScaleApplication deployment lowers
   * the instance count (`DELETE .../tasks/{id}?scale=true`); without it Marathon launches a
   * replacement (at `replacement` when given), as its scheduler restores the instance count.
   */
  killTask(taskId: string, opts: { scale?: boolean; replacement?: TaskSpec } = {}): { deploymentId?: string; replacementTaskId?: string } {
    const { app, task } = this.mustTask(taskId);
    if (!opts.scale) {
      this.beginKill(app, task);
      this.completeKill(app, task);
      return { replacementTaskId: this.launchTask(app, opts.replacement, {}).id };
    }
    const id = canonicalAppId(String(app.def['id']));
    const version = this.now();
    const original = this.allDefs();
    this.bumpVersion(app, version, 'scaling');
    app.def['instances'] = Math.max(0, Number(app.def['instances'] ?? 1) - 1);
    const d = this.beginDeployment([id], [[{ action: 'ScaleApplication', app: id }]], original, this.allDefs(), version);
    this.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    this.beginKill(app, task);
    this.completeKill(app, task);
    this.finishDeployment(d.id);
    return { deploymentId: d.id };
  }

  /** Adds a task outside any deployment (e.g. a task Marathon learnt about on reconciliation). */
  addTask(appId: string, spec: TaskSpec & { silent?: boolean }): string {
    const app = this.mustApp(appId);
    return this.launchTask(app, spec, { healthy: spec.healthy, ready: spec.ready }, !spec.silent).id;
  }

  /**
   * Removes a task abruptly. Publishes TASK_KILLED (+ Killed instance event) unless `silent`, which
   * models a lost event: the state changes but nobody is told, so only a resync can notice.
   */
  removeTask(taskId: string, opts: { silent?: boolean } = {}): void {
    const { app, task } = this.mustTask(taskId);
    if (opts.silent) {
      this.dropTask(app, task);
      return;
    }
    this.completeKill(app, task);
  }

  /**
   * Sets a task's Mesos state and publishes status_update_event (+ instance_changed_event on 1.4+).
   * Terminal states expunge the task (no replacement; use killTask for that); TASK_FAILED also
   * records the app's lastTaskFailure.
   */
  setTaskState(taskId: string, state: TaskState, opts: { message?: string } = {}): void {
    const { app, task } = this.mustTask(taskId);
    this.changeState(app, task, state, opts.message ?? '');
  }

  /**
   * Records one health check outcome for every health check of the task's app. Like Marathon,
   * health_status_changed_event (Marathon-side checks) and instance_health_changed_event (1.4+) are
   * published only when the aggregate health changes; each failure also publishes
   * failed_health_check_event. Throws if the app has no health checks (Marathon has no results then).
   */
  setTaskHealth(taskId: string, alive: boolean, opts: { cause?: string } = {}): void {
    const { app, task } = this.mustTask(taskId);
    this.applyHealth(app, task, alive, true, opts.cause);
  }

  /** Sets a task's readiness (visible in readinessCheckResults with embed=apps.readiness; Marathon has no readiness event). */
  setTaskReady(taskId: string, ready: boolean): void {
    const { app, task } = this.mustTask(taskId);
    task.ready = ready;
    this.touch(app);
  }

  // ---- controls: deployments --------------------------------------------------------------------

  /** Opens a deployment on an app without changing it (deployment_info + group_change_success). */
  startDeployment(appId: string, opts: { action?: string } = {}): { deploymentId: string } {
    const app = this.mustApp(appId);
    const id = canonicalAppId(String(app.def['id']));
    const version = this.now();
    const d = this.beginDeployment([id], [[{ action: opts.action ?? 'ScaleApplication', app: id }]], this.allDefs(), this.allDefs(), version);
    this.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    return { deploymentId: d.id };
  }

  /** Completes an open deployment: a step success per remaining step (with deployment_info before each next step), then deployment_success. */
  finishDeployment(deploymentId: string): void {
    const d = this.mustDeployment(deploymentId);
    this.stepSuccess(d);
    while (d.current < d.steps.length) {
      this.stepInfo(d);
      this.stepSuccess(d);
    }
    this.deployments.delete(d.id);
    this.publishObject(ev.deploymentSuccessEvent(d.id, d.plan, this.now()));
  }

  /** Fails an open deployment: deployment_step_failure for the current step, then deployment_failed. */
  failDeployment(deploymentId: string, reason?: string): void {
    const d = this.mustDeployment(deploymentId);
    this.publishObject(ev.deploymentStepEvent('deployment_step_failure', d.plan, this.currentStepJson(d), this.now()));
    this.deployments.delete(d.id);
    this.publishObject(ev.deploymentFailedEvent(d.id, d.plan, reason, this.now()));
  }

  /** Stops pending rolling restarts (their `done` resolves); later controls work as before. */
  cancelPending(): void {
    this.generation++;
    for (const s of [...this.sleepers]) {
      clearTimeout(s.timer);
      s.wake();
    }
    this.sleepers.clear();
  }

  // ---- internals --------------------------------------------------------------------------------

  private now(): string {
    return this.clock().toISOString();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const sleeper = {
        timer: setTimeout(() => {
          this.sleepers.delete(sleeper);
          resolve();
        }, ms),
        wake: resolve,
      };
      this.sleepers.add(sleeper);
    });
  }

  /** Copies of every definition: plans are snapshots, later changes to an app must not alter them. */
  private allDefs(): JsonObject[] {
    return [...this.apps.values()].map((a) => structuredClone(a.def));
  }

  private mustApp(appId: string): AppRecord {
    const app = this.findApp(appId);
    if (!app) throw new SimulatorError(`App '${canonicalAppId(appId)}' does not exist`);
    return app;
  }

  private mustTask(taskId: string): { app: AppRecord; task: TaskRecord } {
    const found = this.findTask(taskId);
    if (!found) throw new SimulatorError(`Task '${taskId}' does not exist`);
    return found;
  }

  private mustDeployment(id: string): DeploymentRecord {
    const d = this.deployments.get(id);
    if (!d) throw new SimulatorError(`Deployment '${id}' does not exist`);
    return d;
  }

  /** A task change makes computed counts authoritative again (see AppRecord.countsOverride). */
  private touch(app: AppRecord): void {
    delete app.countsOverride;
  }

  private bumpVersion(app: AppRecord, version: string, kind: 'scaling' | 'config'): void {
    const info = (app.def['versionInfo'] ?? {}) as JsonObject;
    app.def['version'] = version;
    app.def['versionInfo'] = {
      lastScalingAt: version,
      lastConfigChangeAt: kind === 'config' ? version : (info['lastConfigChangeAt'] ?? version),
    };
  }

  private agentFor(host: string): string {
    let id = this.agents.get(host);
    if (!id) {
      id = `${this.uuid()}-S${this.agents.size}`;
      this.agents.set(host, id);
    }
    return id;
  }

  /** Registers a deployment; `original` and `target` are the app definitions before and after the change. */
  private beginDeployment(appIds: string[], steps: DeploymentAction[][], original: JsonObject[], target: JsonObject[], version: string): DeploymentRecord {
    const id = this.uuid();
    const plan = planJson(
      { id, steps, version, original: rootGroup(original, this.era, this.rootVersion), target: rootGroup(target, this.era, version) },
      this.era,
    );
    this.rootVersion = version;
    const d: DeploymentRecord = { id, version, affectedApps: appIds, steps, current: 0, plan };
    this.deployments.set(id, d);
    return d;
  }

  private currentStepJson(d: DeploymentRecord): JsonObject {
    return stepJson(d.steps[Math.min(d.current, d.steps.length - 1)] ?? [], this.era);
  }

  private stepInfo(d: DeploymentRecord): void {
    this.publishObject(ev.deploymentStepEvent('deployment_info', d.plan, this.currentStepJson(d), this.now()));
  }

  private stepSuccess(d: DeploymentRecord): void {
    this.publishObject(ev.deploymentStepEvent('deployment_step_success', d.plan, this.currentStepJson(d), this.now()));
    d.current++;
  }

  /** Creates a task (invented endpoints unless `spec`) and publishes its start events. */
  private launchTask(app: AppRecord, spec: TaskSpec | undefined, opts: { healthy?: boolean; ready?: boolean }, emit = true): TaskRecord {
    const appId = String(app.def['id']);
    const uuid = this.uuid();
    const prefix = taskIdPrefix(appId);
    const id = `${prefix}.${uuid}`;
    const host = spec?.host ?? this.defaultHost;
    const ports = spec?.ports ?? hostPortSlots(app.def).map((p) => (p !== 0 ? p : this.nextHostPort++));
    const state = spec?.state ?? 'TASK_RUNNING';
    const now = this.now();
    const startedAt = state === 'TASK_STAGING' || state === 'TASK_STARTING' ? null : now;
    const ipAddresses = spec?.ipAddresses
      ? spec.ipAddresses.map((a) => ({ ipAddress: a.ipAddress, protocol: a.protocol ?? 'IPv4' }))
      : isIPv4(host)
        ? [{ ipAddress: host, protocol: 'IPv4' }]
        : [];
    const slaveId = spec?.slaveId ?? this.agentFor(host);
    const version = String(app.def['version'] ?? now);
    const era = this.era;
    // Key order follows the captures of each era: 1.5 (state present) and 0.15.
    const json: JsonObject = era.taskState
      ? { ipAddresses, stagedAt: now, state, ports, startedAt, version, id, appId, slaveId, host }
      : {
          id,
          host,
          ...(era.taskIpAddresses ? { ipAddresses } : {}),
          ports,
          startedAt,
          stagedAt: now,
          version,
          ...(era.taskSlaveId ? { slaveId } : {}),
          appId,
        };
    const hasReadiness = Array.isArray(app.def['readinessChecks']) && (app.def['readinessChecks'] as unknown[]).length > 0;
    const task: TaskRecord = {
      id,
      appId,
      instanceId: `${prefix}.marathon-${uuid}`,
      state,
      health: undefined,
      ready: spec?.ready ?? opts.ready ?? (hasReadiness ? true : undefined),
      json,
    };
    app.tasks.push(task);
    this.touch(app);
    if (emit) {
      if (era.instances) this.publishObject(this.instanceEvent(app, task, 'Created'));
      this.publishStatus(app, task, state, '');
    }
    const healthy = spec?.healthy ?? opts.healthy ?? true;
    if (this.healthChecks(app).length > 0 && state === 'TASK_RUNNING') this.applyHealth(app, task, healthy, emit);
    return task;
  }

  private healthChecks(app: AppRecord): JsonObject[] {
    return Array.isArray(app.def['healthChecks']) ? (app.def['healthChecks'] as JsonObject[]) : [];
  }

  private applyHealth(app: AppRecord, task: TaskRecord, alive: boolean, emit: boolean, cause?: string): void {
    const checks = this.healthChecks(app);
    if (checks.length === 0) throw new SimulatorError(`App '${String(app.def['id'])}' has no health checks, so its tasks have no health`);
    const now = this.now();
    const ids = { taskId: task.id, instanceId: task.instanceId };
    // The default cause is what Marathon reports for a closed port (real 1.5 captures).
    const why = cause ?? 'ConnectException: Connection refused';
    task.json['healthCheckResults'] = nextHealthResults(checks, task.json['healthCheckResults'], alive, ids, this.era, now, why);
    const previous = task.health;
    task.health = alive;
    this.touch(app);
    if (!emit) return;
    // Before 1.4 Marathon ran every check itself; from 1.4 Mesos-side checks only produce instance events (fact 4).
    const marathonSide = !this.era.instances || checks.some(isMarathonSideCheck);
    const appId = String(app.def['id']);
    const version = String(task.json['version'] ?? app.def['version'] ?? now);
    if (!alive && marathonSide) {
      this.publishObject(ev.failedHealthCheckEvent({ appId, taskId: task.id, instanceId: task.instanceId, healthCheck: checks[0] }, this.era, this.now()));
    }
    if (previous === alive) return;
    if (marathonSide) {
      this.publishObject(ev.healthStatusChangedEvent({ appId, taskId: task.id, instanceId: task.instanceId, version, alive }, this.era, this.now()));
    }
    if (this.era.instances) {
      this.publishObject(ev.instanceHealthChangedEvent({ instanceId: task.instanceId, runSpecId: appId, healthy: alive, runSpecVersion: version }, this.now()));
    }
  }

  private instanceEvent(app: AppRecord, task: TaskRecord, condition: string): JsonObject {
    const host = String(task.json['host'] ?? '');
    return ev.instanceChangedEvent(
      {
        instanceId: task.instanceId,
        condition,
        runSpecId: String(app.def['id']),
        agentId: String(task.json['slaveId'] ?? this.agentFor(host)),
        host,
        runSpecVersion: String(task.json['version'] ?? app.def['version'] ?? ''),
      },
      this.now(),
    );
  }

  private publishStatus(app: AppRecord, task: TaskRecord, state: TaskState, message: string): void {
    const host = String(task.json['host'] ?? '');
    this.publishObject(
      ev.statusUpdateEvent(
        {
          slaveId: String(task.json['slaveId'] ?? this.agentFor(host)),
          taskId: task.id,
          taskStatus: state,
          message,
          appId: String(app.def['id']),
          host,
          ipAddresses: task.json['ipAddresses'] ?? [],
          ports: task.json['ports'] ?? [],
          version: String(task.json['version'] ?? app.def['version'] ?? ''),
        },
        this.era,
        this.now(),
      ),
    );
    if (this.era.instances) this.publishObject(this.instanceEvent(app, task, conditionOf(state)));
  }

  private changeState(app: AppRecord, task: TaskRecord, state: TaskState, message: string): void {
    task.state = state;
    if (this.era.taskState || 'state' in task.json) task.json['state'] = state;
    if (state === 'TASK_RUNNING' && task.json['startedAt'] === null) task.json['startedAt'] = this.now();
    this.touch(app);
    if (TERMINAL_STATES.has(state)) this.dropTask(app, task);
    if (state === 'TASK_FAILED') {
      app.lastTaskFailure = {
        appId: String(app.def['id']),
        host: String(task.json['host'] ?? ''),
        message,
        state,
        taskId: task.id,
        timestamp: this.now(),
        version: String(task.json['version'] ?? app.def['version'] ?? ''),
        ...(this.era.taskSlaveId ? { slaveId: String(task.json['slaveId'] ?? '') } : {}),
      };
    }
    this.publishStatus(app, task, state, message);
  }

  private beginKill(app: AppRecord, task: TaskRecord): void {
    this.changeState(app, task, 'TASK_KILLING', '');
  }

  /** The message is the one Mesos reports for a Docker task killed by SIGKILL (real 1.6 capture). */
  private completeKill(app: AppRecord, task: TaskRecord): void {
    this.changeState(app, task, 'TASK_KILLED', 'Container exited with status 137');
  }

  private dropTask(app: AppRecord, task: TaskRecord): void {
    const i = app.tasks.indexOf(task);
    if (i >= 0) app.tasks.splice(i, 1);
    this.touch(app);
  }
}
