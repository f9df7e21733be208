/**
 * Reading one Marathon app and its tasks, whatever the version (0.7 to 1.10): ports, addressing,
 * health checks, and the rules for `Alive` and `Ready` (docs/templates.md, "Alive, Ready and unknown
 * health"). Untrusted input: every field is checked before it is used. Used by template-data.ts.
 */
import type { HealthCheckData, MarathonApp } from './model.js';
/** Marathon's default `gracePeriodSeconds`, in ms. */
export const DEFAULT_GRACE_MS = 300_000;
/** Bamboo's readiness rules: a check without a timeout gets 10 s; one with a timeout gets 5 s more. */
export const READINESS_DEFAULT_TIMEOUT_MS = 10_000;
export const READINESS_SAFETY_MARGIN_MS = 5_000;

/** States in which a task may receive traffic. Everything else (staging, killing, terminal) gets none. */
export const RUNNING = 'TASK_RUNNING';

export const HTTP_LIKE = new Set(['HTTP', 'HTTPS', 'MESOS_HTTP', 'MESOS_HTTPS']);

/** A host name, an IPv4 address or a bare IPv6 address. */
export const HOST = /^[A-Za-z0-9._:-]{1,253}$/;

export type Json = Record<string, unknown>;

export function isObject(x: unknown): x is Json {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

export function isPort(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x > 0 && x < 65536;
}

/** A port list where anything that is not a port becomes 0, so indexes stay aligned. */
export function portList(x: unknown): number[] {
  if (!Array.isArray(x)) return [];
  return x.map((p) => (isPort(p) ? p : 0));
}

export function byString<T>(key: (t: T) => string): (a: T, b: T) => number {
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
export function stringMap(x: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isObject(x)) return out;
  for (const key of Object.keys(x).sort()) {
    const v = x[key];
    if (typeof v === 'string') out[key] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[key] = String(v);
  }
  return out;
}

export function objects(x: unknown): Json[] {
  return Array.isArray(x) ? x.filter(isObject) : [];
}

export interface Addressing {
  /** Container ports to use with the task's IP, for IP-per-task apps; undefined for host/bridge. */
  containerPorts?: number[];
}

export function portMappings(app: MarathonApp): Json[] {
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
export function addressing(app: MarathonApp): Addressing {
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

export function servicePorts(app: MarathonApp): number[] {
  if (Array.isArray(app.ports) && app.ports.length > 0) return portList(app.ports);
  const defs = objects(app.portDefinitions);
  if (defs.length > 0) return defs.map((d) => (isPort(d.port) ? d.port : 0));
  const mappings = portMappings(app);
  if (mappings.length > 0) return mappings.map((m) => (isPort(m.servicePort) ? m.servicePort : 0));
  return [];
}

export function healthChecks(raw: Json[]): HealthCheckData[] {
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

export type Health = 'alive' | 'dead' | 'unknown';

/**
 * The only way an app's data depends on the time: `now - started >= windowMs` tests. Each test made
 * is logged (started, window, answer), so a memoised app can be reused exactly when every test it
 * made answers the same at the new `now`.
 */
export interface Clock {
  now: number;
  /** Flat triples: started, windowMs, 1 (elapsed) or 0. */
  log: number[];
}

export function elapsed(clock: Clock, started: number, windowMs: number): boolean {
  const yes = clock.now - started >= windowMs;
  clock.log.push(started, windowMs, yes ? 1 : 0);
  return yes;
}

export function sameAnswers(log: readonly number[], now: number): boolean {
  for (let k = 0; k < log.length; k += 3) if ((now - log[k] >= log[k + 1]) !== (log[k + 2] === 1)) return false;
  return true;
}

/**
 * Bamboo: a task is alive when it has a result for every health check and all say alive. Fixed here:
 * a missing result is "unknown", not "dead" (Marathon omits results until the first check runs, may
 * never report MESOS_* checks, and forgets them after a leader change). Unknown becomes alive once
 * the task has been running longer than the checks' grace period. Any result saying not-alive wins.
 */
export function health(task: Json, checks: Json[], clock: Clock, defaultGraceMs: number): Health {
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
export function ready(task: Json, taskId: string, running: boolean, app: MarathonApp, clock: Clock): boolean {
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

export function firstTaskIp(task: Json): string {
  for (const a of objects(task.ipAddresses)) {
    if (typeof a.ipAddress === 'string' && a.ipAddress !== '') return a.ipAddress;
  }
  return '';
}
