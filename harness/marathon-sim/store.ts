/**
 * What one simulated Marathon cluster holds and how it is read: its apps and tasks, its open
 * deployments, its event bus, and seeding from fixtures (which publishes nothing). The controls that
 * change it, and the events each publishes, are SimState's (state.ts), built on this.
 */
import { randomUUID } from 'node:crypto';
import { Deployments } from './deployments.js';
import { appsFromFixture } from './fixtures.js';
import { healthOfResults } from './health.js';
import { lightPlanEvent } from './plans.js';
import { canonicalAppId, instanceIdOf, type AppRecord, type Counts, type DeploymentRecord, type TaskRecord } from './records.js';
import { SimulatorError, type JsonObject, type SimEvent, type StateContext, type TaskState, type TaskView } from './types.js';
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

const COUNT_KEYS = ['tasksStaged', 'tasksRunning', 'tasksHealthy', 'tasksUnhealthy'] as const;
const EMBEDDED_KEYS = new Set<string>([...COUNT_KEYS, 'tasks', 'deployments', 'readinessCheckResults', 'lastTaskFailure', 'taskStats']);

/** Apps, tasks and deployments of one simulated Marathon cluster, plus its event bus. */
export class SimStore {
  readonly era: Era;
  /** The clock, id source and event bus, as the state's parts (tasks, deployments) use them. */
  protected readonly context: StateContext;
  protected readonly apps = new Map<string, AppRecord>();
  protected readonly deployments: Deployments;
  private readonly listeners = new Set<(e: SimEvent) => void>();

  constructor(opts: StateOptions) {
    this.era = eraOf(opts.version);
    const clock = opts.clock ?? (() => new Date());
    this.context = {
      era: this.era,
      now: () => clock().toISOString(),
      uuid: opts.uuid ?? randomUUID,
      publish: (payload) => this.publishObject(payload),
    };
    this.deployments = new Deployments(this.context);
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
    let event: SimEvent;
    if (typeof payload === 'string') {
      if (/[\r\n]/.test(payload)) throw new SimulatorError('raw event JSON must be one line (Marathon writes one data: line per event)');
      event = { eventType, data: payload };
    } else {
      // Serialised on first read (JSON.stringify never writes a raw line break): the payload is not
      // changed after publishing (app definitions are replaced, never edited: see allDefs).
      let data: string | undefined;
      event = { eventType } as SimEvent;
      Object.defineProperty(event, 'data', { enumerable: true, get: () => (data ??= JSON.stringify(payload)) });
    }
    // A heavy plan (1.6) also goes out light to the streams that ask for it.
    if (typeof payload !== 'string' && this.era.heavyPlans && this.era.planFormatParam) event.light = lightPlanEvent(payload);
    for (const l of [...this.listeners]) l(event);
    return event;
  }

  protected publishObject(payload: JsonObject): void {
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
    return this.deployments.idsOf(appId);
  }

  listDeployments(): DeploymentRecord[] {
    return this.deployments.list();
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
        this.deployments.seed(String(d['id']), appId, def, raw['version']);
      }
      this.apps.set(canonicalAppId(appId), app);
    }
  }

  // ---- helpers of the controls -------------------------------------------------------------------

  protected now(): string {
    return this.context.now();
  }

  /** Copies of every definition: plans are snapshots, later changes to an app must not alter them. */
  /**
   * Every app definition as it is now (a deployment's original or target). Definitions are replaced,
   * never changed in place (see bumpVersion), so the objects themselves serve as the snapshot: no
   * copy of 10,000 definitions per deployment.
   */
  protected allDefs(): JsonObject[] {
    return [...this.apps.values()].map((a) => a.def);
  }

  protected mustApp(appId: string): AppRecord {
    const app = this.findApp(appId);
    if (!app) throw new SimulatorError(`App '${canonicalAppId(appId)}' does not exist`);
    return app;
  }

  protected mustTask(taskId: string): { app: AppRecord; task: TaskRecord } {
    const found = this.findTask(taskId);
    if (!found) throw new SimulatorError(`Task '${taskId}' does not exist`);
    return found;
  }

  protected bumpVersion(app: AppRecord, version: string, kind: 'scaling' | 'config'): void {
    const info = (app.def['versionInfo'] ?? {}) as JsonObject;
    // A new object: earlier snapshots (allDefs) and published events keep the old one.
    app.def = {
      ...app.def,
      version,
      versionInfo: {
        lastScalingAt: version,
        lastConfigChangeAt: kind === 'config' ? version : (info['lastConfigChangeAt'] ?? version),
      },
    };
  }
}
