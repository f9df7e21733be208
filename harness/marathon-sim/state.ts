/**
 * The controls of the simulated Marathon: the changes to its apps, tasks and deployments (held by
 * store.ts). Every control publishes exactly the events real Marathon publishes for that change, in
 * the order the real captures show (harness/fixtures/marathon/sse/real-marathon-1.6_gestalt-dcos_app-lifecycle.txt
 * for create and destroy); a task's own events come from tasks.ts, a deployment's from deployments.ts.
 * The HTTP side (server.ts) only reads the state and forwards the events.
 *
 * Controls run synchronously (all their events are published before they return), except
 * rollingRestart, which spreads its steps over time so a consumer can be observed mid-deployment.
 */
import { assignServicePorts, normalizeDefinition, withDefaultPorts } from './definition.js';
import * as ev from './events.js';
import { canonicalAppId, parentGroupId, touch, type AppRecord, type DeploymentAction } from './records.js';
import { SimStore, type StateOptions } from './store.js';
import { TaskLifecycle } from './tasks.js';
import {
  SimulatorError,
  type AppDefinition,
  type JsonObject,
  type LaunchOptions,
  type RollingRestartOptions,
  type TaskSpec,
  type TaskState,
} from './types.js';

/** One simulated Marathon cluster: its store (store.ts) and the controls that change it. */
export class SimState extends SimStore {
  private readonly lifecycle: TaskLifecycle;
  private nextServicePort: number;
  private readonly sleepers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  /** Bumped by cancelPending(); a rolling restart started in an older generation stops. */
  private generation = 0;

  constructor(opts: StateOptions) {
    super(opts);
    this.lifecycle = new TaskLifecycle(this.context, opts.defaultHost ?? '127.0.0.1', opts.firstHostPort ?? 31000);
    this.nextServicePort = opts.firstServicePort ?? 10000;
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
    const d = this.deployments.begin([appId], steps, original, this.allDefs(), version);
    this.deployments.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(appId), version, this.now()));
    this.publishObject(ev.apiPostEvent(opts.clientIp ?? '127.0.0.1', opts.uri ?? '/v2/apps', def, this.now()));
    const taskIds: string[] = [];
    if (instances > 0) {
      this.deployments.stepSuccess(d);
      this.deployments.stepInfo(d);
      for (let i = 0; i < instances; i++) taskIds.push(this.lifecycle.launchTask(app, opts.tasks?.[i], opts).id);
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
    app.def = { ...app.def, instances };
    const d = this.deployments.begin([id], [[{ action: 'ScaleApplication', app: id }]], original, this.allDefs(), version);
    this.deployments.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    this.publishObject(ev.apiPostEvent(opts.clientIp ?? '127.0.0.1', `/v2/apps${id}`, app.def, this.now()));
    const taskIds: string[] = [];
    const diff = instances - app.tasks.length;
    for (let i = 0; i < diff; i++) taskIds.push(this.lifecycle.launchTask(app, opts.tasks?.[i], opts).id);
    if (diff < 0) {
      // YOUNGEST_FIRST: latest stagedAt first; tasks staged in the same millisecond by list position.
      const victims = app.tasks
        .map((t, i) => ({ t, i }))
        .sort((a, b) => String(b.t.json['stagedAt'] ?? '').localeCompare(String(a.t.json['stagedAt'] ?? '')) || b.i - a.i)
        .slice(0, -diff)
        .map((x) => x.t);
      for (const t of victims) this.lifecycle.beginKill(app, t);
      for (const t of victims) this.lifecycle.completeKill(app, t);
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
    app.def = { ...app.def, labels: { ...labels } };
    const d = this.deployments.begin([id], [[{ action: 'RestartApplication', app: id }]], original, this.allDefs(), version);
    this.deployments.stepInfo(d);
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
    const d = this.deployments.begin([id], [[{ action: 'StopApplication', app: id }]], original, target, version);
    this.deployments.stepInfo(d);
    const tasks = [...app.tasks];
    for (const t of tasks) this.lifecycle.beginKill(app, t);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    for (const t of tasks) this.lifecycle.completeKill(app, t);
    this.apps.delete(id);
    // Deployments still open on the app die with it.
    this.deployments.dropAffecting(id, d.id);
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
    const d = this.deployments.begin([id], [[{ action: 'RestartApplication', app: id }]], original, this.allDefs(), version);
    this.deployments.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    const olds = [...app.tasks];
    const delay = opts.stepDelayMs ?? 20;
    const generation = this.generation;
    const cancelled = (): boolean => generation !== this.generation || this.findApp(id) !== app;
    const run = async (): Promise<void> => {
      for (const [i, old] of olds.entries()) {
        await this.sleep(delay);
        if (cancelled()) return;
        const fresh = this.lifecycle.launchTask(app, opts.tasks?.[i], opts);
        await this.sleep(delay);
        if (cancelled()) return;
        if (opts.beforeKill) await opts.beforeKill(this.view(old), this.view(fresh));
        if (cancelled()) return;
        if (!app.tasks.includes(old)) continue;
        this.lifecycle.beginKill(app, old);
        await this.sleep(delay);
        if (cancelled()) return;
        if (app.tasks.includes(old)) this.lifecycle.completeKill(app, old);
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
      this.lifecycle.beginKill(app, task);
      this.lifecycle.completeKill(app, task);
      return { replacementTaskId: this.lifecycle.launchTask(app, opts.replacement, {}).id };
    }
    const id = canonicalAppId(String(app.def['id']));
    const version = this.now();
    const original = this.allDefs();
    this.bumpVersion(app, version, 'scaling');
    app.def = { ...app.def, instances: Math.max(0, Number(app.def['instances'] ?? 1) - 1) };
    const d = this.deployments.begin([id], [[{ action: 'ScaleApplication', app: id }]], original, this.allDefs(), version);
    this.deployments.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    this.lifecycle.beginKill(app, task);
    this.lifecycle.completeKill(app, task);
    this.finishDeployment(d.id);
    return { deploymentId: d.id };
  }

  /** Adds a task outside any deployment (e.g. a task Marathon learnt about on reconciliation). */
  addTask(appId: string, spec: TaskSpec & { silent?: boolean }): string {
    const app = this.mustApp(appId);
    return this.lifecycle.launchTask(app, spec, { healthy: spec.healthy, ready: spec.ready }, !spec.silent).id;
  }

  /**
   * Removes a task abruptly. Publishes TASK_KILLED (+ Killed instance event) unless `silent`, which
   * models a lost event: the state changes but nobody is told, so only a resync can notice.
   */
  removeTask(taskId: string, opts: { silent?: boolean } = {}): void {
    const { app, task } = this.mustTask(taskId);
    if (opts.silent) {
      this.lifecycle.dropTask(app, task);
      return;
    }
    this.lifecycle.completeKill(app, task);
  }

  /**
   * Sets a task's Mesos state and publishes status_update_event (+ instance_changed_event on 1.4+).
   * Terminal states expunge the task (no replacement; use killTask for that); TASK_FAILED also
   * records the app's lastTaskFailure.
   */
  setTaskState(taskId: string, state: TaskState, opts: { message?: string } = {}): void {
    const { app, task } = this.mustTask(taskId);
    this.lifecycle.changeState(app, task, state, opts.message ?? '');
  }

  /**
   * Records one health check outcome for every health check of the task's app. Like Marathon,
   * health_status_changed_event (Marathon-side checks) and instance_health_changed_event (1.4+) are
   * published only when the aggregate health changes; each failure also publishes
   * failed_health_check_event. Throws if the app has no health checks (Marathon has no results then).
   */
  setTaskHealth(taskId: string, alive: boolean, opts: { cause?: string } = {}): void {
    const { app, task } = this.mustTask(taskId);
    this.lifecycle.applyHealth(app, task, alive, true, opts.cause);
  }

  /** Sets a task's readiness (visible in readinessCheckResults with embed=apps.readiness; Marathon has no readiness event). */
  setTaskReady(taskId: string, ready: boolean): void {
    const { app, task } = this.mustTask(taskId);
    task.ready = ready;
    touch(app);
  }

  // ---- controls: deployments --------------------------------------------------------------------

  /** Opens a deployment on an app without changing it (deployment_info + group_change_success). */
  startDeployment(appId: string, opts: { action?: string } = {}): { deploymentId: string } {
    const app = this.mustApp(appId);
    const id = canonicalAppId(String(app.def['id']));
    const version = this.now();
    const d = this.deployments.begin([id], [[{ action: opts.action ?? 'ScaleApplication', app: id }]], this.allDefs(), this.allDefs(), version);
    this.deployments.stepInfo(d);
    this.publishObject(ev.groupChangeSuccessEvent(parentGroupId(id), version, this.now()));
    return { deploymentId: d.id };
  }

  /** Completes an open deployment: a step success per remaining step (with deployment_info before each next step), then deployment_success. */
  finishDeployment(deploymentId: string): void {
    this.deployments.finish(deploymentId);
  }

  /** Fails an open deployment: deployment_step_failure for the current step, then deployment_failed. */
  failDeployment(deploymentId: string, reason?: string): void {
    this.deployments.fail(deploymentId, reason);
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
}
