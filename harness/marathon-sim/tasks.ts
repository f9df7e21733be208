/**
 * A task's life in the simulated Marathon: launch (given or invented endpoints), health check
 * outcomes, Mesos state changes and kills, each publishing the events Marathon publishes for it
 * (status_update_event, and from 1.4 the instance events). The controls in state.ts decide when.
 */
import { hostPortSlots } from './definition.js';
import * as ev from './events.js';
import { isMarathonSideCheck, nextHealthResults } from './health.js';
import { conditionOf, taskIdPrefix, TERMINAL_STATES, touch, type AppRecord, type TaskRecord } from './records.js';
import { SimulatorError, type JsonObject, type StateContext, type TaskSpec, type TaskState } from './types.js';

function isIPv4(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
}

/** Starts, checks, changes and kills tasks; owns the invented host ports and agent ids. */
export class TaskLifecycle {
  private readonly agents = new Map<string, string>();
  private nextHostPort: number;

  constructor(
    private readonly ctx: StateContext,
    private readonly defaultHost: string,
    firstHostPort: number,
  ) {
    this.nextHostPort = firstHostPort;
  }

  /** Creates a task (invented endpoints unless `spec`) and publishes its start events. */
  launchTask(app: AppRecord, spec: TaskSpec | undefined, opts: { healthy?: boolean; ready?: boolean }, emit = true): TaskRecord {
    const appId = String(app.def['id']);
    const uuid = this.ctx.uuid();
    const prefix = taskIdPrefix(appId);
    const id = `${prefix}.${uuid}`;
    const host = spec?.host ?? this.defaultHost;
    const ports = spec?.ports ?? hostPortSlots(app.def).map((p) => (p !== 0 ? p : this.nextHostPort++));
    const state = spec?.state ?? 'TASK_RUNNING';
    const now = this.ctx.now();
    const startedAt = state === 'TASK_STAGING' || state === 'TASK_STARTING' ? null : now;
    const ipAddresses = spec?.ipAddresses
      ? spec.ipAddresses.map((a) => ({ ipAddress: a.ipAddress, protocol: a.protocol ?? 'IPv4' }))
      : isIPv4(host)
        ? [{ ipAddress: host, protocol: 'IPv4' }]
        : [];
    const slaveId = spec?.slaveId ?? this.agentFor(host);
    const version = String(app.def['version'] ?? now);
    const era = this.ctx.era;
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
    touch(app);
    if (emit) {
      if (era.instances) this.ctx.publish(this.instanceEvent(app, task, 'Created'));
      this.publishStatus(app, task, state, '');
    }
    const healthy = spec?.healthy ?? opts.healthy ?? true;
    if (this.healthChecks(app).length > 0 && state === 'TASK_RUNNING') this.applyHealth(app, task, healthy, emit);
    return task;
  }

  private healthChecks(app: AppRecord): JsonObject[] {
    return Array.isArray(app.def['healthChecks']) ? (app.def['healthChecks'] as JsonObject[]) : [];
  }

  /**
   * Records one outcome of every health check of the task's app; with `emit`, publishes the events
   * setTaskHealth describes. Throws SimulatorError if the app has no health checks.
   */
  applyHealth(app: AppRecord, task: TaskRecord, alive: boolean, emit: boolean, cause?: string): void {
    const checks = this.healthChecks(app);
    if (checks.length === 0) throw new SimulatorError(`App '${String(app.def['id'])}' has no health checks, so its tasks have no health`);
    const now = this.ctx.now();
    const ids = { taskId: task.id, instanceId: task.instanceId };
    // The default cause is what Marathon reports for a closed port (real 1.5 captures).
    const why = cause ?? 'ConnectException: Connection refused';
    task.json['healthCheckResults'] = nextHealthResults(checks, task.json['healthCheckResults'], alive, ids, this.ctx.era, now, why);
    const previous = task.health;
    task.health = alive;
    touch(app);
    if (!emit) return;
    // Before 1.4 Marathon ran every check itself; from 1.4 Mesos-side checks only produce instance events (fact 4).
    const marathonSide = !this.ctx.era.instances || checks.some(isMarathonSideCheck);
    const appId = String(app.def['id']);
    const version = String(task.json['version'] ?? app.def['version'] ?? now);
    if (!alive && marathonSide) {
      this.ctx.publish(ev.failedHealthCheckEvent({ appId, taskId: task.id, instanceId: task.instanceId, healthCheck: checks[0] }, this.ctx.era, this.ctx.now()));
    }
    if (previous === alive) return;
    if (marathonSide) {
      this.ctx.publish(ev.healthStatusChangedEvent({ appId, taskId: task.id, instanceId: task.instanceId, version, alive }, this.ctx.era, this.ctx.now()));
    }
    if (this.ctx.era.instances) {
      this.ctx.publish(ev.instanceHealthChangedEvent({ instanceId: task.instanceId, runSpecId: appId, healthy: alive, runSpecVersion: version }, this.ctx.now()));
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
      this.ctx.now(),
    );
  }

  private publishStatus(app: AppRecord, task: TaskRecord, state: TaskState, message: string): void {
    const host = String(task.json['host'] ?? '');
    this.ctx.publish(
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
        this.ctx.era,
        this.ctx.now(),
      ),
    );
    if (this.ctx.era.instances) this.ctx.publish(this.instanceEvent(app, task, conditionOf(state)));
  }

  /** Sets a task's Mesos state and publishes it; terminal states expunge the task, TASK_FAILED records lastTaskFailure. */
  changeState(app: AppRecord, task: TaskRecord, state: TaskState, message: string): void {
    task.state = state;
    if (this.ctx.era.taskState || 'state' in task.json) task.json['state'] = state;
    if (state === 'TASK_RUNNING' && task.json['startedAt'] === null) task.json['startedAt'] = this.ctx.now();
    touch(app);
    if (TERMINAL_STATES.has(state)) this.dropTask(app, task);
    if (state === 'TASK_FAILED') {
      app.lastTaskFailure = {
        appId: String(app.def['id']),
        host: String(task.json['host'] ?? ''),
        message,
        state,
        taskId: task.id,
        timestamp: this.ctx.now(),
        version: String(task.json['version'] ?? app.def['version'] ?? ''),
        ...(this.ctx.era.taskSlaveId ? { slaveId: String(task.json['slaveId'] ?? '') } : {}),
      };
    }
    this.publishStatus(app, task, state, message);
  }

  beginKill(app: AppRecord, task: TaskRecord): void {
    this.changeState(app, task, 'TASK_KILLING', '');
  }

  /** The message is the one Mesos reports for a Docker task killed by SIGKILL (real 1.6 capture). */
  completeKill(app: AppRecord, task: TaskRecord): void {
    this.changeState(app, task, 'TASK_KILLED', 'Container exited with status 137');
  }

  /** Removes the task from its app, without an event. */
  dropTask(app: AppRecord, task: TaskRecord): void {
    const i = app.tasks.indexOf(task);
    if (i >= 0) app.tasks.splice(i, 1);
    touch(app);
  }

  private agentFor(host: string): string {
    let id = this.agents.get(host);
    if (!id) {
      id = `${this.ctx.uuid()}-S${this.agents.size}`;
      this.agents.set(host, id);
    }
    return id;
  }
}
