/**
 * A Marathon simulator: an HTTP server speaking Marathon's exact wire format (REST, `/v2/events`
 * server-sent events, HTTP callback subscriptions), with controls that change its apps and tasks
 * and publish the events real Marathon publishes, plus fault injection. Used by the tests and by
 * `bamboo demo`. The evidence for every format detail is harness/fixtures/marathon/README.md.
 *
 * ```ts
 * const sim = new MarathonSimulator({ heartbeatMs: 200 });
 * const url = await sim.start();
 * sim.deployApp({ id: '/web', instances: 2 }, { tasks: [{ host: '127.0.0.1', ports: [8081] }, { host: '127.0.0.1', ports: [8082] }] });
 * ...
 * await sim.stop();
 * ```
 */
import { randomUUID } from 'node:crypto';
import { CallbackDispatcher, type CallbackStats } from './callbacks.js';
import { Faults } from './faults.js';
import { SimServer } from './server.js';
import { SimState } from './state.js';
import type { AppDefinition, JsonObject, LaunchOptions, RequestRecord, RollingRestartOptions, SimEvent, TaskSpec, TaskState, TaskView } from './types.js';
import { atLeast } from './version.js';
import { parseEmbed, renderApp } from './wire.js';

export { appsFromFixture, fixturesDir, listFixtureFiles, readJsonFixture, repoRoot } from './fixtures.js';
export { sseFrame, SSE_HEARTBEAT } from './streams.js';
export { SimulatorError } from './types.js';
export type { CallbackStats } from './callbacks.js';
export type { Faults } from './faults.js';
export type { AppDefinition, JsonObject, LaunchOptions, RequestRecord, RollingRestartOptions, SimEvent, TaskSpec, TaskState, TaskView } from './types.js';

/** Options of {@link MarathonSimulator}. */
export interface MarathonSimulatorOptions {
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** Port to bind; 0 (default) picks a free one. A restart after stop() reuses the port first bound. */
  port?: number;
  /** Require HTTP basic auth on everything but /ping (401 `{"message":...}` otherwise). */
  auth?: { user: string; password: string };
  /** Reported Marathon version, which selects the wire shapes of that era; default '1.6.322'. */
  version?: string;
  /** SSE framing: 'event' (0.11+, `event:` + `data:` lines) or 'data-only' (0.9/0.10). Default by version. */
  eventFraming?: 'event' | 'data-only';
  /** Heartbeat period of /v2/events (a bare CRLF); default 10000 like Jetty. */
  heartbeatMs?: number;
  /**
   * Serve /v2/eventSubscriptions and POST events to callback URLs. Real Marathon removed them in 1.5;
   * the simulator keeps them for every version unless this is false (then they answer 404).
   */
  subscriptions?: boolean;
  /** Timeout of each callback POST; default 2000 ms. */
  callbackTimeoutMs?: number;
  /** What /v2/leader and /v2/info report as leader; default this simulator's host:port. */
  leader?: string;
  /**
   * Serve the same apps as another simulator (an HA Marathon pair): state changes made through
   * either are seen and published by both. Faults, auth, subscriptions and request logs stay separate.
   */
  shareStateWith?: MarathonSimulator;
  /** Clock for every timestamp; default the wall clock. */
  clock?: () => Date;
  /** First host port of invented tasks (default 31000) and first service port (default 10000). */
  firstHostPort?: number;
  firstServicePort?: number;
}

/**
 * One simulated Marathon. Controls (deployApp, scaleApp, killTask, ...) change the state and publish
 * the matching events synchronously; they work before start() too (events then reach only onEvent
 * listeners). Controls given an unknown app or task id throw SimulatorError.
 */
export class MarathonSimulator {
  /** Fault switches; flip them at any time. */
  readonly faults: Faults;
  /** Every HTTP request received, in arrival order (tests count /v2/apps fetches with it). */
  readonly requests: RequestRecord[] = [];
  /** The app/task/deployment state (shared with shareStateWith's simulator). */
  readonly state: SimState;
  /** Base URL once started, e.g. http://127.0.0.1:34567; "" before. */
  url = '';

  private readonly opts: MarathonSimulatorOptions;
  private readonly callbacks: CallbackDispatcher;
  private readonly listeners = new Set<(e: SimEvent) => void>();
  private readonly ownsState: boolean;
  private readonly frameworkId = `${randomUUID()}-0000`;
  private server: SimServer | undefined;
  private starting: Promise<string> | undefined;
  private stopping: Promise<void> | undefined;
  private boundPort: number | undefined;

  constructor(opts: MarathonSimulatorOptions = {}) {
    this.opts = opts;
    this.ownsState = !opts.shareStateWith;
    this.state =
      opts.shareStateWith?.state ??
      new SimState({
        version: opts.version ?? '1.6.322',
        clock: opts.clock,
        firstHostPort: opts.firstHostPort,
        firstServicePort: opts.firstServicePort,
        defaultHost: '127.0.0.1',
      });
    this.callbacks = new CallbackDispatcher(opts.callbackTimeoutMs ?? 2000);
    this.faults = new Faults({
      stallChanged: (stalled) => this.server?.stallChanged(stalled),
      dropStreams: () => this.server?.dropStreams(),
    });
  }

  /** The reported Marathon version. */
  get version(): string {
    return this.state.era.version;
  }

  /** Binds the port and resolves the base URL. Calling it while running returns the same URL. */
  async start(): Promise<string> {
    if (this.stopping) await this.stopping;
    if (this.server) return this.starting ?? this.url;
    const era = this.state.era;
    const server = new SimServer({
      state: this.state,
      era,
      faults: this.faults,
      requests: this.requests,
      callbacks: this.callbacks,
      onDispatch: (e) => {
        for (const l of [...this.listeners]) l(e);
      },
      framing: this.opts.eventFraming ?? (era.eventLines ? 'event' : 'data-only'),
      heartbeatMs: this.opts.heartbeatMs ?? 10_000,
      auth: this.opts.auth,
      subscriptions: this.opts.subscriptions !== false,
      leader: this.opts.leader,
      frameworkId: this.frameworkId,
      clock: this.opts.clock ?? (() => new Date()),
    });
    this.server = server;
    this.callbacks.open();
    const host = this.opts.host ?? '127.0.0.1';
    this.starting = server.listen(host, this.boundPort ?? this.opts.port ?? 0).then(
      (port) => {
        this.boundPort = port;
        this.url = `http://${host}:${port}`;
        this.starting = undefined;
        return this.url;
      },
      async (err: unknown) => {
        // Unhook the failed server from the state before reporting (e.g. EADDRINUSE on a fixed port).
        await server.close();
        this.server = undefined;
        this.starting = undefined;
        throw err;
      },
    );
    return this.starting;
  }

  /**
   * Closes every connection (event streams included), aborts callback POSTs and pending rolling
   * restarts. Idempotent; the state stays, so start() brings the same Marathon back on the same port.
   */
  async stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    const server = this.server;
    if (!server) return;
    this.stopping = (async () => {
      if (this.starting) await this.starting.catch(() => undefined);
      if (this.ownsState) this.state.cancelPending();
      this.callbacks.close();
      await server.close();
      this.server = undefined;
    })();
    try {
      await this.stopping;
    } finally {
      this.stopping = undefined;
    }
  }

  /** Listens to every event this simulator sends (the same bytes as its streams); returns the unsubscribe function. */
  onEvent(listener: (e: SimEvent) => void): () => void {
    this.listeners.add(listener);
    // Before start() there is no server to forward state events, so listen to the state directly then.
    const direct = this.state.onEvent((e) => {
      if (!this.server) listener(e);
    });
    return () => {
      this.listeners.delete(listener);
      direct();
    };
  }

  /** Callback delivery counters. */
  get callbackStats(): CallbackStats {
    return this.callbacks.stats;
  }

  /** Number of logged requests whose path starts with `pathPrefix` (e.g. '/v2/apps'). */
  countRequests(pathPrefix: string): number {
    return this.requests.filter((r) => r.path.startsWith(pathPrefix)).length;
  }

  // ---- state controls (see SimState for the events each one publishes) ---------------------------

  /** Seeds the apps from a fixture (`{"apps":[]}`, `{"app":{}}`, bare array, group tree or definition); no events. */
  loadFixture(json: unknown, opts: { merge?: boolean } = {}): void {
    this.state.loadFixture(json, opts);
  }

  /** Creates an app with its tasks (explicit endpoints in opts.tasks, else 127.0.0.1 and counter ports). */
  deployApp(def: AppDefinition, opts: LaunchOptions = {}): { deploymentId: string; appId: string; taskIds: string[] } {
    return this.state.deployApp(def, opts);
  }

  /** Scales an app up (new tasks at opts.tasks when given) or down (youngest tasks killed). */
  scaleApp(appId: string, instances: number, opts: LaunchOptions = {}): { deploymentId: string; taskIds: string[] } {
    return this.state.scaleApp(appId, instances, opts);
  }

  /** Replaces an app's labels (a configuration change whose deployment finishes at once; tasks keep running). */
  setLabels(appId: string, labels: Record<string, string>): { deploymentId: string } {
    return this.state.setLabels(appId, labels);
  }

  /** TASK_KILLING then TASK_KILLED; without `scale` a replacement task starts (at opts.replacement). */
  killTask(taskId: string, opts: { scale?: boolean; replacement?: TaskSpec } = {}): { deploymentId?: string; replacementTaskId?: string } {
    return this.state.killTask(taskId, opts);
  }

  /** Adds a task to an app outside a deployment; returns its id. */
  addTask(appId: string, spec: TaskSpec & { silent?: boolean }): string {
    return this.state.addTask(appId, spec);
  }

  /** Removes a task (TASK_KILLED events unless `silent`, which models a lost event). */
  removeTask(taskId: string, opts: { silent?: boolean } = {}): void {
    this.state.removeTask(taskId, opts);
  }

  /** One health check outcome; events only when the task's health flips (plus failed_health_check_event per failure). */
  setTaskHealth(taskId: string, alive: boolean, opts: { cause?: string } = {}): void {
    this.state.setTaskHealth(taskId, alive, opts);
  }

  /** Readiness shown under embed=apps.readiness. */
  setTaskReady(taskId: string, ready: boolean): void {
    this.state.setTaskReady(taskId, ready);
  }

  /** Mesos state change with status_update_event (+ instance_changed_event on 1.4+); terminal states expunge the task. */
  setTaskState(taskId: string, state: TaskState, opts: { message?: string } = {}): void {
    this.state.setTaskState(taskId, state, opts);
  }

  /** Opens a deployment on the app (listed under embed=apps.deployments until finished). */
  startDeployment(appId: string, opts: { action?: string } = {}): { deploymentId: string } {
    return this.state.startDeployment(appId, opts);
  }

  /** Finishes an open deployment (step successes, deployment_success). */
  finishDeployment(deploymentId: string): void {
    this.state.finishDeployment(deploymentId);
  }

  /** Fails an open deployment (deployment_step_failure, deployment_failed). */
  failDeployment(deploymentId: string, reason?: string): void {
    this.state.failDeployment(deploymentId, reason);
  }

  /** Rolling restart: per old task, start a replacement then kill the old one; `done` settles at deployment_success. */
  rollingRestart(appId: string, opts: RollingRestartOptions = {}): { deploymentId: string; done: Promise<void> } {
    return this.state.rollingRestart(appId, opts);
  }

  /** Deletes the app: kills its tasks, deployment events, app_terminated_event. */
  destroyApp(appId: string): { deploymentId: string } {
    return this.state.destroyApp(appId);
  }

  /**
   * Injects a raw event. An object is serialised with JSON.stringify; a string is sent byte for byte
   * (it must be one line). Goes to this simulator's streams, callbacks and onEvent listeners only.
   */
  emit(eventType: string, payload: JsonObject | string): SimEvent {
    const data = typeof payload === 'string' ? payload : JSON.stringify(payload);
    if (/[\r\n]/.test(data)) throw new TypeError('marathon-sim: raw event JSON must be one line (Marathon writes one data: line per event)');
    const event: SimEvent = { eventType, data };
    if (this.server) this.server.dispatch(event);
    else for (const l of [...this.listeners]) l(event);
    return event;
  }

  // ---- read helpers -----------------------------------------------------------------------------

  /** The tasks of an app (or of every app), as the simulator sees them. */
  tasks(appId?: string): TaskView[] {
    const apps = appId ? [this.state.findApp(appId)].filter((a) => a !== undefined) : this.state.listApps();
    return apps.flatMap((a) => a.tasks.map((t) => this.state.view(t)));
  }

  /** The app as GET /v2/apps/{id} would serve it, or undefined. */
  app(appId: string): JsonObject | undefined {
    const app = this.state.findApp(appId);
    if (!app) return undefined;
    const embed = parseEmbed(['app.tasks', 'app.counts', 'app.lastTaskFailure', 'app.readiness']);
    return renderApp(app, embed, this.state.deploymentIdsOf(appId));
  }

  /** True when the reported version is at least `min` (e.g. '1.4'). */
  versionAtLeast(min: string): boolean {
    return atLeast(this.version, min);
  }
}
