/**
 * Marathon apps + service records -> template data, in Bamboo's shape.
 *
 * A pure, deterministic function: no I/O, no clock (`now` is passed in), no randomness; apps, tasks,
 * map keys and warnings are sorted, so equal inputs give deep-equal (and JSON byte-equal) outputs.
 *
 * It accepts every Marathon response shape from 0.7 to 1.10 (0.x `ports`, 1.x `portDefinitions`,
 * Docker bridge `portMappings` under `container.docker` or `container`, IP-per-task `ipAddress` and
 * 1.5+ `networks`, every health-check protocol) and never throws on a bad app: a malformed app or
 * task is skipped with a warning naming it, and the rest of the snapshot goes through.
 *
 * Rules for `Alive` and `Ready` follow Bamboo's `services/marathon` with its traps fixed; they are
 * described for template authors in docs/templates.md ("Alive, Ready and unknown health").
 */
import { firstNonPrintable, printable, validateAcl, validateAppId } from './acl.js';
import { deepFreeze, jsonEqual } from './app-equality.js';
import { servesGroups, type AllowedDomains } from './labels.js';
import { labelRouting, resolveHosts, withRule, type AppRouting } from './routing.js';
import { assignSlots, DEFAULT_SLOT_HEADROOM_PERCENT, type SlotTable } from './slots.js';
import type {
  AppData,
  HealthCheckData,
  MarathonApp,
  MarathonHealthCheck,
  MarathonTask,
  ServiceRecord,
  TaskData,
  TemplateData,
  Warning,
} from './model.js';

export interface BuildTemplateDataInput {
  /** The raw `apps` array of a Marathon /v2/apps response (any version); entries are not trusted. */
  apps: unknown[];
  /** Service records keyed by app id, as the api stores them. Entries are not trusted either. */
  services: Record<string, ServiceRecord>;
  /** The current time in ms since the epoch, passed in so the function stays pure. */
  now: number;
  /**
   * Grace period (ms) for a health check that does not state `gracePeriodSeconds`; Marathon's own
   * default is 300 s. See docs/templates.md for how it is used.
   */
  graceMs?: number;
  /**
   * Server slots (see common/core/slots.ts): `previous` is the slot table of the config HAProxy runs, so
   * tasks keep their slots; `headroomPercent` sizes new backends (HAProxy.ServerSlotHeadroom).
   * Without `previous`, tasks fill slots 1..n in task id order.
   */
  slots?: { previous?: SlotTable | null; headroomPercent?: number };
  /**
   * A per-app memo kept by the caller across builds (see TemplateDataMemo): an app equal to one of
   * the previous build, with the same slots and on the same side of every time threshold, is not
   * built again. The result is the same as without it (deep-equal, JSON byte-equal); its app data
   * is frozen and shared with earlier builds, so treat it as read-only.
   */
  memo?: TemplateDataMemo;
  /**
   * Routing from labels (docs/labels.md): `allowedDomains` (Labels.AllowedDomains) confines the hosts
   * each group's labels may claim; `groups` (Worker.Groups) keeps only the apps a worker serves
   * (empty or absent: every app). Host ownership is decided over every app before the group filter,
   * so every worker and the api agree on who owns a host.
   */
  routing?: {
    allowedDomains?: AllowedDomains;
    groups?: readonly string[];
    /**
     * Host -> the app that holds it in the config in force (`hostOwners` of the previous build): it
     * keeps the host against later claims by labels, whatever their times, as the port policy keeps
     * a port with its holder.
     */
    incumbents?: ReadonlyMap<string, string>;
  };
}

export interface BuildTemplateDataResult {
  data: TemplateData;
  warnings: Warning[];
}

/** Marathon's default `gracePeriodSeconds`, in ms. */
export const DEFAULT_GRACE_MS = 300_000;
/** Bamboo's readiness rules: a check without a timeout gets 10 s; one with a timeout gets 5 s more. */
export const READINESS_DEFAULT_TIMEOUT_MS = 10_000;
export const READINESS_SAFETY_MARGIN_MS = 5_000;

/** States in which a task may receive traffic. Everything else (staging, killing, terminal) gets none. */
const RUNNING = 'TASK_RUNNING';

const HTTP_LIKE = new Set(['HTTP', 'HTTPS', 'MESOS_HTTP', 'MESOS_HTTPS']);

/** A host name, an IPv4 address or a bare IPv6 address. */
const HOST = /^[A-Za-z0-9._:-]{1,253}$/;

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

function isPort(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x > 0 && x < 65536;
}

/** A port list where anything that is not a port becomes 0, so indexes stay aligned. */
function portList(x: unknown): number[] {
  if (!Array.isArray(x)) return [];
  return x.map((p) => (isPort(p) ? p : 0));
}

function byString<T>(key: (t: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
}

/**
 * Parses Marathon's timestamps (`2018-04-09T23:50:31.569Z`; very old versions send
 * `2014-01-23T05:31+0000`). Returns NaN when absent or unreadable.
 */
export function parseMarathonTime(value: unknown): number {
  if (typeof value !== 'string' || value === '') return NaN;
  const normalised = value.replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  return Date.parse(normalised);
}

/** `/nested/group/app` -> `app-group-nested`, as mesos-dns names services. */
export function mesosDnsId(appId: string): string {
  return appId
    .split('/')
    .filter((s) => s !== '')
    .reverse()
    .join('-');
}

/** Marathon < 0.7 ids had no leading slash; Bamboo added one. */
export function normaliseAppId(raw: string): string {
  return '/' + raw.replace(/^\//, '');
}

/**
 * String-valued entries only, keys sorted. Numbers and booleans are turned into strings; objects
 * (Marathon secret references such as `{"secret": "db-password"}`), arrays and null are left out.
 */
function stringMap(x: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObject(x)) return out;
  for (const key of Object.keys(x).sort()) {
    const v = x[key];
    if (typeof v === 'string') out[key] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[key] = String(v);
  }
  return out;
}

function objects(x: unknown): Json[] {
  return Array.isArray(x) ? x.filter(isObject) : [];
}

interface Addressing {
  /** Container ports to use with the task's IP, for IP-per-task apps; undefined for host/bridge. */
  containerPorts?: number[];
}

function portMappings(app: MarathonApp): Json[] {
  const container = isObject(app.container) ? app.container : undefined;
  if (!container) return [];
  const top = objects(container.portMappings);
  if (top.length > 0) return top;
  return isObject(container.docker) ? objects(container.docker.portMappings) : [];
}

/**
 * How tasks of this app are reached. IP-per-task (0.14-1.4 `ipAddress` with discovery ports, or a
 * 1.5+ `networks` entry in `container` mode) uses the task's IP and the container ports; host and
 * bridge networking use the agent host and the host ports.
 */
function addressing(app: MarathonApp): Addressing {
  if (isObject(app.ipAddress)) {
    const discovery = isObject(app.ipAddress.discovery) ? app.ipAddress.discovery : undefined;
    const ports = objects(discovery?.ports).map((p) => (isPort(p.number) ? p.number : 0));
    if (ports.length > 0 && ports[0] > 0) return { containerPorts: ports };
    const mapped = portMappings(app).map((m) => (isPort(m.containerPort) ? m.containerPort : 0));
    if (mapped.length > 0 && mapped[0] > 0) return { containerPorts: mapped };
    return {};
  }
  const networks = objects(app.networks);
  if (networks.some((n) => n.mode === 'container')) {
    const mapped = portMappings(app).map((m) => (isPort(m.containerPort) ? m.containerPort : 0));
    if (mapped.length > 0 && mapped[0] > 0) return { containerPorts: mapped };
  }
  return {};
}

function servicePorts(app: MarathonApp): number[] {
  if (Array.isArray(app.ports) && app.ports.length > 0) return portList(app.ports);
  const defs = objects(app.portDefinitions);
  if (defs.length > 0) return defs.map((d) => (isPort(d.port) ? d.port : 0));
  const mappings = portMappings(app);
  if (mappings.length > 0) return mappings.map((m) => (isPort(m.servicePort) ? m.servicePort : 0));
  return [];
}

function healthChecks(raw: Json[]): HealthCheckData[] {
  return raw.map((hc) => {
    // Marathon's default protocol is HTTP and its default path "/"; responses normally carry both.
    const protocol = typeof hc.protocol === 'string' && hc.protocol !== '' ? hc.protocol.toUpperCase() : 'HTTP';
    const httpLike = HTTP_LIKE.has(protocol);
    const path = typeof hc.path === 'string' && hc.path !== '' ? hc.path : httpLike ? '/' : '';
    const portIndex = typeof hc.portIndex === 'number' && Number.isInteger(hc.portIndex) && hc.portIndex >= 0
      ? hc.portIndex
      : 0;
    return { Protocol: protocol, Path: path, PortIndex: portIndex };
  });
}

type Health = 'alive' | 'dead' | 'unknown';

/**
 * The only way an app's data depends on the time: `now - started >= windowMs` tests. Each test made
 * is logged (started, window, answer), so a memoised app can be reused exactly when every test it
 * made answers the same at the new `now`.
 */
interface Clock {
  now: number;
  /** Flat triples: started, windowMs, 1 (elapsed) or 0. */
  log: number[];
}

function elapsed(clock: Clock, started: number, windowMs: number): boolean {
  const yes = clock.now - started >= windowMs;
  clock.log.push(started, windowMs, yes ? 1 : 0);
  return yes;
}

function sameAnswers(log: readonly number[], now: number): boolean {
  for (let k = 0; k < log.length; k += 3) if ((now - log[k] >= log[k + 1]) !== (log[k + 2] === 1)) return false;
  return true;
}

/**
 * Bamboo: a task is alive when it has a result for every health check and all say alive. Fixed here:
 * a missing result is "unknown", not "dead" (Marathon omits results until the first check runs, may
 * never report MESOS_* checks, and forgets them after a leader change). Unknown becomes alive once
 * the task has been running longer than the checks' grace period. Any result saying not-alive wins.
 */
function health(task: Json, checks: Json[], clock: Clock, defaultGraceMs: number): Health {
  if (checks.length === 0) return 'alive';
  const results = objects(task.healthCheckResults);
  if (results.some((r) => r.alive === false)) return 'dead';
  const alive = results.filter((r) => r.alive === true).length;
  if (alive >= checks.length) return 'alive';
  let graceMs = 0;
  for (const hc of checks) {
    const g = typeof hc.gracePeriodSeconds === 'number' && Number.isFinite(hc.gracePeriodSeconds) && hc.gracePeriodSeconds >= 0
      ? hc.gracePeriodSeconds * 1000
      : defaultGraceMs;
    graceMs = Math.max(graceMs, g);
  }
  const started = parseMarathonTime(task.startedAt);
  if (Number.isFinite(started) && elapsed(clock, started, graceMs)) return 'alive';
  return 'unknown';
}

/**
 * Bamboo's readiness rules: only a running task can be ready; outside a deployment, or for an app
 * without readiness checks, it is; during a deployment its readiness result decides; without a result
 * a task started longer ago than the check timeout (+ margin) is an old task and stays ready.
 */
function ready(task: Json, taskId: string, running: boolean, app: MarathonApp, clock: Clock): boolean {
  if (!running) return false;
  if (!Array.isArray(app.deployments) || app.deployments.length === 0) return true;
  const checks = objects(app.readinessChecks);
  if (checks.length === 0) return true;
  for (const r of objects(app.readinessCheckResults)) {
    if (r.taskId === taskId) return r.ready === true;
  }
  const timeout = checks[0].timeoutSeconds;
  const windowMs = typeof timeout === 'number' && Number.isFinite(timeout) && timeout > 0
    ? timeout * 1000 + READINESS_SAFETY_MARGIN_MS
    : READINESS_DEFAULT_TIMEOUT_MS;
  const started = parseMarathonTime(task.startedAt);
  if (!Number.isFinite(started)) return false;
  return elapsed(clock, started, windowMs);
}

/**
 * Marathon < 1.1 sends no `state`; a task there is running once it has a start time (`startedAt`
 * is null while staging). Minimal data without either field (Bamboo's own test stub) is taken as
 * running, as Bamboo did.
 */
export function isRunning(task: Json): boolean {
  if (typeof task.state === 'string' && task.state !== '') return task.state === RUNNING;
  if (!('startedAt' in task)) return true;
  return typeof task.startedAt === 'string' && task.startedAt !== '';
}

function firstTaskIp(task: Json): string {
  for (const a of objects(task.ipAddresses)) {
    if (typeof a.ipAddress === 'string' && a.ipAddress !== '') return a.ipAddress;
  }
  return '';
}

function buildApp(raw: Json, index: number, clock: Clock, defaultGraceMs: number, warnings: Warning[], slots: SlotInput): AppData | undefined {
  const app = raw as MarathonApp;
  const labels = stringMap(app.labels);
  if (typeof app.id !== 'string') {
    warnings.push({ code: 'app_invalid', message: `skipped apps[${index}]: it has no string "id"` });
    return undefined;
  }
  const id = normaliseAppId(app.id);
  const idCheck = validateAppId(id);
  if (!idCheck.ok) {
    warnings.push({ code: 'app_invalid', appId: printable(app.id), message: `skipped app "${printable(app.id)}": ${idCheck.message}` });
    return undefined;
  }
  for (const field of ['tasks', 'healthChecks', 'readinessChecks', 'deployments', 'readinessCheckResults'] as const) {
    const v = raw[field];
    if (v !== undefined && v !== null && !Array.isArray(v)) {
      warnings.push({ code: 'app_invalid', appId: id, message: `skipped app ${id}: "${field}" is not an array` });
      return undefined;
    }
  }

  const rawChecks = objects(app.healthChecks);
  const checks = healthChecks(rawChecks);
  const firstHttp = checks.find((c) => HTTP_LIKE.has(c.Protocol));
  const readinessChecks = objects(app.readinessChecks);
  const ports = servicePorts(app);
  const { containerPorts } = addressing(app);

  const seen = new Set<string>();
  const tasks: Array<TaskData & { health: Health }> = [];
  const rawTasks = Array.isArray(app.tasks) ? app.tasks : [];
  for (const t of rawTasks as unknown[]) {
    if (!isObject(t) || typeof t.id !== 'string' || t.id === '') {
      warnings.push({ code: 'task_invalid', appId: id, message: `skipped a task of ${id} without a string "id"` });
      continue;
    }
    const task = t as MarathonTask & Json;
    const taskId = task.id as string;
    if (seen.has(taskId)) {
      warnings.push({ code: 'task_duplicate', appId: id, message: `skipped a second task ${printable(taskId)} of ${id}` });
      continue;
    }
    seen.add(taskId);
    const running = isRunning(task);
    let host = typeof task.host === 'string' ? task.host : '';
    let taskPorts = portList(task.ports);
    if (containerPorts) {
      const ip = firstTaskIp(task);
      if (ip !== '') {
        host = ip;
        taskPorts = containerPorts.slice();
      }
    }
    const port = taskPorts.length > 0 ? taskPorts[0] : 0;
    if (host !== '' && !HOST.test(host)) {
      // The host is written into haproxy.cfg as is; anything but a name or an address could inject text.
      warnings.push({ code: 'task_invalid', appId: id, message: `skipped task ${printable(taskId)} of ${id}: host "${printable(host)}" is not a host name or IP address` });
      continue;
    }
    if (host === '' || port === 0) {
      // Staging tasks have no address yet; only a running one without an address is worth a warning.
      if (running) {
        warnings.push({
          code: 'task_no_address',
          appId: id,
          message: `task ${printable(taskId)} of ${id} is running but has no host or port; it gets no traffic`,
        });
      }
      continue;
    }
    const h = running ? health(task, rawChecks, clock, defaultGraceMs) : 'dead';
    tasks.push({
      Id: taskId,
      Host: host,
      Port: port,
      Ports: taskPorts,
      Alive: h === 'alive',
      Ready: ready(task, taskId, running, app, clock),
      State: typeof task.state === 'string' ? task.state : '',
      health: h,
    });
  }
  tasks.sort(byString((t) => t.Id));

  // Unknown health must never empty a backend: when no task of the app is known to be alive but some
  // are merely unknown (e.g. right after a Marathon leader change, or MESOS_* checks that report
  // nothing), those stay in rotation and HAProxy's own health checks decide.
  if (!tasks.some((t) => t.health === 'alive') && tasks.some((t) => t.health === 'unknown')) {
    for (const t of tasks) if (t.health === 'unknown') t.Alive = true;
    warnings.push({
      code: 'health_unknown',
      appId: id,
      message: `no task of ${id} has a health check result yet; its tasks stay in rotation and HAProxy's checks decide`,
    });
  }

  const finalTasks = tasks.map(({ health: _h, ...task }) => task);
  const byTaskId = new Map(finalTasks.map((t) => [t.Id, t]));
  const layout = assignSlots(finalTasks.map((t) => t.Id), slots.previous?.[id], slots.headroomPercent);
  return {
    Id: id,
    EscapedId: id.replace(/\//g, '::'),
    MesosDnsId: mesosDnsId(id),
    SplitId: id.split('/'),
    HealthCheckPath: firstHttp ? firstHttp.Path : '',
    HealthCheckProtocol: firstHttp ? (firstHttp.Protocol.endsWith('HTTPS') ? 'HTTPS' : 'HTTP') : '',
    HealthChecks: checks,
    ReadinessCheckPath: readinessChecks.length > 0 && typeof readinessChecks[0].path === 'string' ? readinessChecks[0].path : '',
    ServicePort: ports.length > 0 ? ports[0] : 0,
    ServicePorts: ports,
    Env: stringMap(app.env),
    Labels: labels,
    Tasks: finalTasks,
    Slots: layout.map((taskId, i) => ({ Index: i + 1, Task: taskId === null ? null : byTaskId.get(taskId)! })),
    Routing: labelRouting(labels, Math.max(1, ports.length), configChangedAt(app), id),
  };
}

/** When the app's configuration last changed in Marathon (ms), 0 when it does not say: "earlier" in host conflicts. */
function configChangedAt(app: MarathonApp): number {
  const info = isObject(app.versionInfo) ? app.versionInfo : undefined;
  for (const t of [info?.lastConfigChangeAt, app.version]) {
    const ms = parseMarathonTime(t);
    if (Number.isFinite(ms) && ms > 0) return ms;
  }
  return 0;
}

/**
 * Each app's final routing: its rule over its labels, then host ownership across apps. An app whose
 * routing is what its labels alone gave keeps its (memoised, frozen) object; another gets a frozen
 * copy, itself kept by the memo while it stays equal, so the renderer's memo still sees the same object.
 */
function routeApps(apps: AppData[], services: Record<string, ServiceRecord>, allowed: AllowedDomains, incumbents: ReadonlyMap<string, string> | undefined, memo: TemplateDataMemo | undefined, warnings: Warning[]): AppData[] {
  const ruled = apps.map((a) => ({
    Id: a.Id,
    Routing: withRule(a.Routing, a.Labels, Object.prototype.hasOwnProperty.call(services, a.Id) ? services[a.Id] : undefined, Math.max(1, a.ServicePorts.length), a.Id),
  }));
  const changed = resolveHosts(ruled, allowed, incumbents);
  return apps.map((a, i) => {
    const routing = changed.get(a.Id) ?? ruled[i].Routing;
    for (const p of routing.problems) warnings.push({ code: 'label_invalid', appId: a.Id, message: `ignored ${p.key} of ${a.Id}: ${p.reason}` });
    for (const c of routing.conflicts) warnings.push({ code: 'host_conflict', appId: a.Id, message: `${a.Id} does not get ${c.reason}` });
    if (routing === a.Routing) return a;
    const key = JSON.stringify(routing);
    const kept = memo?.routed.get(a);
    if (kept && kept.key === key) return kept.out;
    const out = deepFreeze({ ...a, Routing: routing as AppRouting });
    memo?.routed.set(a, { key, out });
    return out;
  });
}

interface SlotInput {
  previous: SlotTable | null | undefined;
  headroomPercent: number;
}

/** The slot table of template data (what `slots.previous` takes on the next build). */
export function slotTable(data: TemplateData): SlotTable {
  const out: Record<string, Array<string | null>> = {};
  for (const app of data.Apps) {
    if (Array.isArray(app.Slots)) out[app.Id] = app.Slots.map((s) => s.Task?.Id ?? null);
  }
  return out;
}

/**
 * Validates service records: the id must be an app id, a non-empty ACL must pass validateAcl
 * (otherwise the record is left out, so its text never reaches haproxy.cfg), and Config values must
 * be printable one-line strings (others are dropped). An empty ACL is kept: templates then use their
 * default rule for the app.
 */
function buildServices(input: unknown, warnings: Warning[]): Record<string, ServiceRecord> {
  const out: Record<string, ServiceRecord> = {};
  if (!isObject(input)) return out;
  const entries: Array<[string, ServiceRecord]> = [];
  for (const key of Object.keys(input)) {
    const rec = input[key];
    if (!isObject(rec)) {
      warnings.push({ code: 'service_invalid', appId: printable(key), message: `skipped service record "${printable(key)}": not an object` });
      continue;
    }
    const rawId = typeof rec.Id === 'string' && rec.Id !== '' ? rec.Id : key;
    const id = normaliseAppId(rawId);
    const idCheck = validateAppId(id);
    if (!idCheck.ok) {
      warnings.push({ code: 'service_invalid', appId: printable(rawId), message: `skipped service record "${printable(rawId)}": ${idCheck.message}` });
      continue;
    }
    let acl = '';
    if (rec.Acl !== undefined && rec.Acl !== null) {
      if (typeof rec.Acl !== 'string') {
        warnings.push({ code: 'acl_invalid', appId: id, message: `left out the rule of ${id}: the ACL is not a string` });
        continue;
      }
      acl = rec.Acl.trim();
    }
    if (acl !== '') {
      const check = validateAcl(acl);
      if (!check.ok) {
        warnings.push({ code: 'acl_invalid', appId: id, message: `left out the rule of ${id}: ${check.message}` });
        continue;
      }
    }
    const config: Record<string, string> = {};
    if (isObject(rec.Config)) {
      for (const k of Object.keys(rec.Config).sort()) {
        const v = rec.Config[k];
        if (typeof v === 'string' && firstNonPrintable(v) < 0 && firstNonPrintable(k) < 0) config[k] = v;
        else warnings.push({ code: 'config_invalid', appId: id, message: `dropped Config key "${printable(k)}" of ${id}: values must be one printable line` });
      }
    }
    entries.push([id, { Id: id, Acl: acl, Config: config }]);
  }
  entries.sort(byString(([k]) => k));
  for (const [id, rec] of entries) {
    if (out[id]) {
      warnings.push({ code: 'service_duplicate', appId: id, message: `ignored a second service record for ${id}` });
      continue;
    }
    out[id] = rec;
  }
  return out;
}

/** What the memo keeps of one app: its raw input, everything else its data depended on, and the data. */
interface AppMemo {
  /** The raw app the data was built from (not copied: see TemplateDataMemo). */
  raw: Json;
  /** The normalised app id. */
  id: string;
  graceMs: number;
  headroomPercent: number;
  /** A copy of `slots.previous[id]` as it was. */
  previousSlots: Array<string | null> | undefined;
  /**
   * The slot layout built, when giving it back as `previous` builds it again (so the next build,
   * which passes this build's slot table, may reuse the entry); null otherwise.
   */
  stableLayout: Array<string | null> | null;
  /** The time tests the build made (see Clock). */
  clock: number[];
  app: AppData;
  warnings: Warning[];
  gen: number;
}

/**
 * A per-app memo for buildTemplateData, for a caller that builds again and again from snapshots
 * that differ in a few apps (the worker: a one-app change at 10,000 apps would otherwise rebuild
 * 10,000 apps). Keyed by the raw app's `id`; an entry is reused when the raw app is the same object
 * or deep-equal to the one it was built from, its previous slots are equal, the grace period and
 * headroom are the same, and every time test the build made (health grace periods, readiness
 * windows) gives the same answer at the new `now`. Entries of apps absent from a build are dropped.
 *
 * Raw apps are compared by value but kept by reference: a caller that changes a raw app object in
 * place after a build must not reuse the memo (the worker never does: each snapshot is parsed anew).
 */
export class TemplateDataMemo {
  private readonly entries = new Map<string, AppMemo>();
  private gen = 0;
  /** @internal An app's data with its final routing, when that differs from its labels' (see routeApps). */
  readonly routed = new WeakMap<AppData, { key: string; out: AppData }>();
  /** Apps of the last build taken from the memo, and built. */
  hits = 0;
  misses = 0;

  get size(): number {
    return this.entries.size;
  }

  /** @internal */
  begin(): number {
    this.hits = 0;
    this.misses = 0;
    return ++this.gen;
  }

  /** @internal The entry for `key` if it can stand for `raw` built with these inputs. */
  find(key: string, raw: Json, now: number, graceMs: number, slots: SlotInput): AppMemo | undefined {
    const e = this.entries.get(key);
    if (e === undefined || e.gen === this.gen) return undefined;
    if (e.graceMs !== graceMs || e.headroomPercent !== slots.headroomPercent) return undefined;
    const previous = slots.previous?.[e.id];
    if (!sameSlots(e.previousSlots, previous) && (e.stableLayout === null || !sameSlots(e.stableLayout, previous))) return undefined;
    if (!sameAnswers(e.clock, now)) return undefined;
    if (e.raw !== raw) {
      if (!jsonEqual(e.raw, raw)) return undefined;
      // Keep the newest object, so the previous snapshot can be collected.
      e.raw = raw;
    }
    e.gen = this.gen;
    this.hits++;
    return e;
  }

  /** @internal */
  store(key: string, e: Omit<AppMemo, 'gen'>): void {
    // A second app with the same key in one build does not replace the first one's entry.
    if (this.entries.get(key)?.gen !== this.gen) this.entries.set(key, { ...e, gen: this.gen });
    this.misses++;
  }

  /** @internal Drops the entries the current build did not use. */
  end(): void {
    for (const [k, e] of this.entries) if (e.gen !== this.gen) this.entries.delete(k);
  }
}

function sameSlots(a: readonly (string | null)[] | undefined, b: readonly (string | null)[] | undefined): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Builds the template data from one Marathon snapshot and the service records.
 *
 * Never throws for bad entries: a malformed app, task or service record is skipped and reported in
 * `warnings` (each names the app). Throws a TypeError only when `apps` itself is not an array, which
 * is a caller bug (the caller must reject an unreadable Marathon response before this point, so that
 * an error page never empties the config).
 */
export function buildTemplateData(input: BuildTemplateDataInput): BuildTemplateDataResult {
  if (!Array.isArray(input.apps)) throw new TypeError('buildTemplateData: "apps" must be an array');
  const now = input.now;
  const defaultGraceMs = typeof input.graceMs === 'number' && input.graceMs >= 0 ? input.graceMs : DEFAULT_GRACE_MS;
  const warnings: Warning[] = [];
  const slots: SlotInput = {
    previous: input.slots?.previous ?? null,
    headroomPercent: input.slots?.headroomPercent ?? DEFAULT_SLOT_HEADROOM_PERCENT,
  };
  const byId = new Map<string, AppData>();
  const memo = input.memo;
  memo?.begin();
  input.apps.forEach((raw, index) => {
    if (!isObject(raw)) {
      warnings.push({ code: 'app_invalid', message: `skipped apps[${index}]: not an object` });
      return;
    }
    let app: AppData | undefined;
    const key = memo && typeof raw.id === 'string' ? raw.id : undefined;
    // A second app with the same key is built afresh (its data is dropped as a duplicate anyway).
    const hit = key === undefined ? undefined : memo!.find(key, raw, now, defaultGraceMs, slots);
    if (hit) {
      for (const w of hit.warnings) warnings.push(w);
      app = hit.app;
    } else try {
      const clock: Clock = { now, log: [] };
      const own: Warning[] = key === undefined ? warnings : [];
      try {
        app = buildApp(raw, index, clock, defaultGraceMs, own, slots);
      } finally {
        if (own !== warnings) for (const w of own) warnings.push(w);
      }
      if (app && key !== undefined) {
        // Frozen: shared by later builds (and the renderer may then skip comparing it).
        deepFreeze(app);
        const prev = slots.previous?.[app.Id];
        const layout = app.Slots.map((x) => x.Task?.Id ?? null);
        const again = assignSlots(app.Tasks.map((t) => t.Id), layout, slots.headroomPercent);
        memo!.store(key, {
          raw, id: app.Id, graceMs: defaultGraceMs, headroomPercent: slots.headroomPercent,
          previousSlots: Array.isArray(prev) ? prev.slice() : undefined, stableLayout: sameSlots(again, layout) ? layout : null,
          clock: clock.log, app, warnings: own.map((w) => deepFreeze(w)),
        });
      }
    } catch (err) {
      // Defensive: the checks above should make this unreachable, but one app must never sink the rest.
      const name = typeof raw.id === 'string' ? printable(raw.id) : `apps[${index}]`;
      warnings.push({ code: 'app_invalid', appId: name, message: `skipped app ${name}: ${(err as Error).message}` });
      return;
    }
    if (!app) return;
    if (byId.has(app.Id)) {
      warnings.push({ code: 'app_duplicate', appId: app.Id, message: `ignored a second app with id ${app.Id}` });
      return;
    }
    byId.set(app.Id, app);
  });
  memo?.end();
  const services = buildServices(input.services, warnings);
  const routed = routeApps([...byId.values()].sort(byString((a) => a.Id)), services, input.routing?.allowedDomains ?? {}, input.routing?.incumbents, memo, warnings);
  const groups = input.routing?.groups ?? [];
  const apps = groups.length === 0 ? routed : routed.filter((a) => servesGroups(groups, a.Routing.groups));
  warnings.sort(byString((w) => `${w.appId ?? ''}\u0000${w.code}\u0000${w.message}`));
  return { data: { Apps: apps, Services: services }, warnings };
}
