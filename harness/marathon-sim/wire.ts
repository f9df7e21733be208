/**
 * Pure functions from the simulator's records to Marathon's JSON: apps, tasks, counts, embed
 * parameters, filters, groups and deployment plans. No clock, no randomness, no I/O: the state
 * passes timestamps and ids in, so the same records always render the same bytes.
 */
import type { JsonObject, TaskState } from './types.js';
import type { Era } from './version.js';

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

/** What `embed=` asks for (Marathon's AppInfo.Embed). */
export type Embed = 'tasks' | 'deployments' | 'readiness' | 'counts' | 'lastTaskFailure' | 'taskStats';

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

/**
 * Resolves `embed` query values. Marathon accepts the `app.`, `apps.` and `group.apps.` prefixes and
 * ignores unknown values; `tasks` also implies `deployments`, `failures` means tasks + lastTaskFailure
 * (InfoEmbedResolver, fact 8).
 */
export function parseEmbed(values: readonly string[]): Set<Embed> {
  const out = new Set<Embed>();
  for (const raw of values) {
    const m = /^(?:group\.apps|apps|app)\.(.+)$/.exec(raw.trim());
    if (!m) continue;
    switch (m[1]) {
      case 'tasks':
        out.add('tasks').add('deployments');
        break;
      case 'failures':
        out.add('tasks').add('lastTaskFailure').add('deployments');
        break;
      case 'deployments':
      case 'readiness':
      case 'counts':
      case 'lastTaskFailure':
      case 'taskStats':
        out.add(m[1]);
        break;
      default:
        break;
    }
  }
  return out;
}

function asArray(value: unknown): JsonObject[] | undefined {
  return Array.isArray(value) ? (value as JsonObject[]) : undefined;
}

function asObject(value: unknown): JsonObject | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

/** Port mappings wherever the era put them: `container.portMappings` (1.5+) or `container.docker.portMappings`. */
export function portMappingsOf(def: JsonObject): JsonObject[] | undefined {
  const container = asObject(def['container']);
  if (!container) return undefined;
  return asArray(container['portMappings']) ?? asArray(asObject(container['docker'])?.['portMappings']);
}

/**
 * Whether tasks get their own network namespace: Docker BRIDGE/USER (<= 1.4) or a non-host entry in
 * `networks` (1.5+). Then port mappings, not port definitions, describe the ports.
 */
export function usesContainerNetworking(def: JsonObject): boolean {
  const docker = asObject(asObject(def['container'])?.['docker']);
  const network = docker?.['network'];
  if (network === 'BRIDGE' || network === 'USER') return true;
  const networks = asArray(def['networks']);
  return !!networks?.some((n) => n['mode'] !== undefined && n['mode'] !== 'host');
}

function isBridge(def: JsonObject): boolean {
  const docker = asObject(asObject(def['container'])?.['docker']);
  if (docker?.['network'] === 'BRIDGE') return true;
  return !!asArray(def['networks'])?.some((n) => n['mode'] === 'container/bridge');
}

/** The app's service ports (what `/v2/tasks` reports as `servicePorts` and HAProxy binds). */
export function servicePortsOf(def: JsonObject): number[] {
  const mappings = portMappingsOf(def);
  if (mappings && mappings.length > 0 && usesContainerNetworking(def)) {
    return mappings.map((m) => Number(m['servicePort'] ?? 0));
  }
  const defs = asArray(def['portDefinitions']);
  if (defs && defs.length > 0) return defs.map((p) => Number(p['port'] ?? 0));
  if (Array.isArray(def['ports']) && def['ports'].length > 0) return (def['ports'] as unknown[]).map(Number);
  return mappings ? mappings.map((m) => Number(m['servicePort'] ?? 0)) : [];
}

/**
 * Host ports a new task needs, one entry per port: the fixed host port, or 0 for "pick one".
 * Bridge mappings always take a host port; container (overlay) mappings only when they name one;
 * IP-per-task apps (`ipAddress` set) take none; an app that declares no ports at all gets Marathon's
 * default of one port.
 */
export function hostPortSlots(def: JsonObject): number[] {
  const mappings = portMappingsOf(def);
  if (usesContainerNetworking(def) && mappings) {
    const bridge = isBridge(def);
    return mappings
      .filter((m) => bridge || m['hostPort'] !== undefined)
      .map((m) => Number(m['hostPort'] ?? 0));
  }
  if (asObject(def['ipAddress'])) return [];
  const requirePorts = def['requirePorts'] === true;
  const defs = asArray(def['portDefinitions']);
  if (defs) return defs.map((p) => (requirePorts ? Number(p['port'] ?? 0) : 0));
  if (Array.isArray(def['ports'])) return (def['ports'] as unknown[]).map((p) => (requirePorts ? Number(p) : 0));
  return [0];
}

/**
 * Marathon gives an app that declares no ports one port: `ports: [0]` up to 0.x, `ports` and
 * `portDefinitions` in 1.0-1.4, `portDefinitions` only from 1.5 (fact 6). Apps with container
 * networking or IP-per-task describe their ports elsewhere and are returned unchanged.
 */
export function withDefaultPorts(def: JsonObject, era: Era): JsonObject {
  if ('ports' in def || 'portDefinitions' in def || usesContainerNetworking(def) || asObject(def['ipAddress'])) return def;
  return {
    ...def,
    ...(era.legacyPorts ? { ports: [0] } : {}),
    ...(era.portDefinitions ? { portDefinitions: [{ port: 0, protocol: 'tcp', name: 'default', labels: {} }] } : {}),
  };
}

/**
 * Fills the service ports a definition leaves at 0 (or omits in a port mapping), the way Marathon
 * allocates them from its local port range. Returns a new definition; `ports`, `portDefinitions` and
 * port mappings stay consistent index by index.
 */
export function assignServicePorts(def: JsonObject, next: () => number): JsonObject {
  const out: JsonObject = structuredClone(def);
  const mappings = portMappingsOf(out);
  const portDefs = asArray(out['portDefinitions']);
  const ports = Array.isArray(out['ports']) ? (out['ports'] as number[]) : undefined;
  const count = Math.max(mappings?.length ?? 0, portDefs?.length ?? 0, ports?.length ?? 0);
  const chosen: number[] = [];
  for (let i = 0; i < count; i++) {
    const given = [mappings?.[i]?.['servicePort'], portDefs?.[i]?.['port'], ports?.[i]].find(
      (p) => typeof p === 'number' && p !== 0,
    ) as number | undefined;
    chosen.push(given ?? next());
  }
  mappings?.forEach((m, i) => {
    m['servicePort'] = chosen[i];
  });
  portDefs?.forEach((p, i) => {
    p['port'] = chosen[i];
  });
  if (ports) out['ports'] = ports.map((_, i) => chosen[i] as number);
  return out;
}

/**
 * A definition as Marathon returns it after a POST: absolute id first, the defaults every era
 * reports, and `version`/`versionInfo`. Networking keys stay in the shape given (see AppDefinition).
 */
export function normalizeDefinition(def: JsonObject, version: string): JsonObject {
  const { id, ...rest } = def;
  const defaults: JsonObject = {
    cmd: null,
    args: null,
    user: null,
    env: {},
    instances: 1,
    cpus: 1,
    mem: 128,
    disk: 0,
    executor: '',
    constraints: [],
    uris: [],
    backoffSeconds: 1,
    backoffFactor: 1.15,
    maxLaunchDelaySeconds: 3600,
    healthChecks: [],
    dependencies: [],
    upgradeStrategy: { minimumHealthCapacity: 1, maximumOverCapacity: 1 },
    labels: {},
    requirePorts: false,
  };
  if (rest['container'] !== undefined) delete defaults['cmd'];
  const out: JsonObject = { id: canonicalAppId(String(id)), ...rest };
  for (const [key, value] of Object.entries(defaults)) if (!(key in out)) out[key] = value;
  out['version'] = version;
  out['versionInfo'] = { lastScalingAt: version, lastConfigChangeAt: version };
  return out;
}

/** Counters the way Marathon's TaskCounts computes them. */
export function countTasks(tasks: readonly TaskRecord[]): Counts {
  const counts: Counts = { tasksStaged: 0, tasksRunning: 0, tasksHealthy: 0, tasksUnhealthy: 0 };
  for (const t of tasks) {
    if (t.state === 'TASK_STAGING' || t.state === 'TASK_STARTING') counts.tasksStaged++;
    if (t.state === 'TASK_RUNNING') counts.tasksRunning++;
    if (t.health === true) counts.tasksHealthy++;
    if (t.health === false) counts.tasksUnhealthy++;
  }
  return counts;
}

/** Aggregate health of wire health check results: all alive, any dead, or none. */
export function healthOfResults(results: unknown): boolean | undefined {
  const list = asArray(results);
  if (!list || list.length === 0) return undefined;
  return list.every((r) => r['alive'] === true);
}

/** Task JSON for `/v2/apps` (no servicePorts) or `/v2/tasks` (with servicePorts appended). */
export function renderTask(task: TaskRecord, servicePorts?: number[]): JsonObject {
  return servicePorts ? { ...task.json, servicePorts } : { ...task.json };
}

/** Readiness results for embed=apps.readiness: tasks of an app with readiness checks that have an outcome. */
export function readinessResults(app: AppRecord): JsonObject[] {
  const checks = asArray(app.def['readinessChecks']);
  if (!checks || checks.length === 0) return [];
  const name = String(checks[0]?.['name'] ?? 'readinessCheck');
  return app.tasks
    .filter((t) => t.ready !== undefined)
    .map((t) => ({
      name,
      taskId: t.id,
      ready: t.ready,
      lastResponse: t.ready
        ? { status: 200, contentType: 'text/plain', body: 'ready' }
        : { status: 503, contentType: 'text/plain', body: 'not ready' },
    }));
}

/** One app of `/v2/apps` or `/v2/apps/{id}` with the requested embedded parts, in Marathon's key order. */
export function renderApp(app: AppRecord, embed: ReadonlySet<Embed>, deploymentIds: readonly string[]): JsonObject {
  const out: JsonObject = { ...app.def };
  if (embed.has('counts')) Object.assign(out, countTasks(app.tasks), app.countsOverride ?? {});
  if (embed.has('deployments')) out['deployments'] = deploymentIds.map((id) => ({ id }));
  if (embed.has('readiness')) out['readinessCheckResults'] = readinessResults(app);
  if (embed.has('tasks')) out['tasks'] = app.tasks.map((t) => renderTask(t));
  if (embed.has('lastTaskFailure') && app.lastTaskFailure !== undefined) out['lastTaskFailure'] = app.lastTaskFailure;
  return out;
}

/**
 * Marathon's label selector (`?label=`): comma-separated terms, all must hold: `key`, `key==v`,
 * `key!=v`, `key in (a, b)`, `key notin (a, b)`.
 */
export function matchesLabelSelector(labels: Record<string, unknown>, selector: string): boolean {
  const terms = selector.match(/[^,(]+(?:\([^)]*\))?/g) ?? [];
  return terms.every((raw) => {
    const term = raw.trim();
    if (term === '') return true;
    let m = /^(.+?)\s*(==|!=)\s*(.*)$/.exec(term);
    if (m) {
      const value = labels[(m[1] as string).trim()];
      return m[2] === '==' ? value === (m[3] as string).trim() : value !== (m[3] as string).trim();
    }
    m = /^(.+?)\s+(in|notin)\s*\((.*)\)$/.exec(term);
    if (m) {
      const value = labels[(m[1] as string).trim()];
      const set = (m[3] as string).split(',').map((s) => s.trim());
      const inSet = typeof value === 'string' && set.includes(value);
      return m[2] === 'in' ? inSet : !inSet;
    }
    return Object.prototype.hasOwnProperty.call(labels, term);
  });
}

/** Marathon's `?id=` filter on /v2/apps: case-insensitive substring of the app id. */
export function matchesIdFilter(appId: string, filter: string): boolean {
  return appId.toLowerCase().includes(filter.toLowerCase());
}

/**
 * The root group containing `defs`, nested the way Marathon nests groups by id path (the
 * `original`/`target` of a heavy deployment plan).
 */
export function rootGroup(defs: readonly JsonObject[], era: Era, version: string): JsonObject {
  const build = (groupId: string): JsonObject => {
    const apps = defs.filter((d) => parentGroupId(String(d['id'])) === groupId);
    const children = new Set<string>();
    for (const d of defs) {
      const id = canonicalAppId(String(d['id']));
      const prefix = groupId === '/' ? '/' : `${groupId}/`;
      if (!id.startsWith(prefix)) continue;
      const rest = id.slice(prefix.length).split('/');
      if (rest.length > 1) children.add(`${prefix}${rest[0]}`);
    }
    return {
      id: groupId,
      apps,
      ...(era.groupPods ? { pods: [] } : {}),
      groups: [...children].sort().map(build),
      dependencies: [],
      version,
    };
  };
  return build('/');
}

/** `plan.steps` / `currentStep` JSON; the action key is "type" before 1.1 (fact 3). */
export function stepJson(step: readonly DeploymentAction[], era: Era): JsonObject {
  return { actions: step.map((a) => ({ [era.actionKey]: a.action, app: a.app })) };
}

/** A deployment plan as events carry it: heavy (original/target) up to 1.6, light from 1.7 (fact 2). */
export function planJson(
  p: { id: string; steps: DeploymentAction[][]; version: string; original: JsonObject; target: JsonObject },
  era: Era,
): JsonObject {
  const steps = p.steps.map((s) => stepJson(s, era));
  return era.heavyPlans
    ? { id: p.id, original: p.original, target: p.target, steps, version: p.version }
    : { id: p.id, steps, version: p.version };
}

/**
 * A deployment event with a heavy plan as a stream that asked for `?plan-format=light` gets it (1.6,
 * fact 2): one-line JSON without `plan.original`/`plan.target`. Undefined for any other event.
 */
export function lightPlanEvent(payload: JsonObject): string | undefined {
  const plan = asObject(payload['plan']);
  if (!plan || !('original' in plan)) return undefined;
  const light = { ...plan };
  delete light['original'];
  delete light['target'];
  return JSON.stringify({ ...payload, plan: light });
}

/** One entry of `GET /v2/deployments` (1.x shape). */
export function deploymentJson(d: DeploymentRecord, era: Era): JsonObject {
  const current = d.steps[d.current] ?? [];
  return {
    id: d.id,
    version: d.version,
    affectedApps: d.affectedApps,
    ...(era.groupPods ? { affectedPods: [] } : {}),
    steps: d.steps.map((s) => stepJson(s, era)),
    currentActions: current.map((a) => ({ [era.actionKey]: a.action, app: a.app })),
    currentStep: Math.min(d.current + 1, d.steps.length),
    totalSteps: d.steps.length,
  };
}

/** Health check protocols Marathon itself runs; 1.4+ still reports them with health_status_changed_event (fact 4). */
export function isMarathonSideCheck(check: JsonObject): boolean {
  return ['HTTP', 'HTTPS', 'TCP'].includes(String(check['protocol'] ?? 'HTTP'));
}

/**
 * The task's `healthCheckResults` after one more check outcome, one entry per health check, keeping
 * first/last success and failure times from the previous results (key order of the 1.5 captures;
 * `instanceId` from 1.4, `taskId` before).
 */
export function nextHealthResults(
  checks: readonly JsonObject[],
  previous: unknown,
  alive: boolean,
  ids: { taskId: string; instanceId: string },
  era: Era,
  now: string,
  cause: string,
): JsonObject[] {
  const prev = Array.isArray(previous) ? (previous as JsonObject[]) : [];
  return checks.map((_, i) => {
    const p = prev[i] ?? {};
    const entry: JsonObject = alive
      ? {
          alive: true,
          consecutiveFailures: 0,
          firstSuccess: p['firstSuccess'] ?? now,
          lastFailure: p['lastFailure'] ?? null,
          lastSuccess: now,
        }
      : {
          alive: false,
          consecutiveFailures: Number(p['consecutiveFailures'] ?? 0) + 1,
          firstSuccess: p['firstSuccess'] ?? null,
          lastFailure: now,
          lastSuccess: p['lastSuccess'] ?? null,
        };
    if (era.lastFailureCause) entry['lastFailureCause'] = alive ? (p['lastFailureCause'] ?? null) : cause;
    if (era.instances) entry['instanceId'] = ids.instanceId;
    else entry['taskId'] = ids.taskId;
    return entry;
  });
}
