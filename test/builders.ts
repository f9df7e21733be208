/**
 * Builders for Marathon apps and tasks in tests, one readable line per case:
 *
 *   app('/web', withTasks(task('web.1', onHost('10.0.0.1', 31000), healthy())), withHealthCheck('HTTP', '/health'))
 *
 * They produce raw Marathon JSON (what /v2/apps?embed=apps.tasks returns, 1.x shape by default), so
 * tests go through buildTemplateData exactly as production data does.
 */
import { dirname, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type {
  HAProxySettings,
  MarathonApp,
  MarathonHealthCheck,
  MarathonPortMapping,
  MarathonTask,
  ServiceRecord,
} from '../common/core/model.js';
import { fixturesDir } from '../harness/marathon-sim/fixtures.js';

/** The clock every test uses: tasks start an hour before it unless a test says otherwise. */
export const NOW = Date.parse('2024-01-01T00:00:00.000Z');

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export type AppOption = (app: MarathonApp) => void;
export type TaskOption = (task: MarathonTask) => void;

/** A Marathon app with the given id; options fill in the rest. */
export function app(id: string, ...options: AppOption[]): MarathonApp {
  const a: MarathonApp = { id, env: {}, labels: {}, healthChecks: [], deployments: [], tasks: [], version: '2023-12-01T00:00:00.000Z' };
  for (const option of options) option(a);
  return a;
}

/** A running task on 10.0.0.1:31000, started an hour before NOW, with no health results. */
export function task(id: string, ...options: TaskOption[]): MarathonTask {
  const t: MarathonTask = {
    id,
    host: '10.0.0.1',
    ports: [31000],
    state: 'TASK_RUNNING',
    startedAt: iso(NOW - 3_600_000),
    stagedAt: iso(NOW - 3_601_000),
  };
  for (const option of options) option(t);
  return t;
}

// --- app options -------------------------------------------------------------------------------

export const withTasks = (...tasks: MarathonTask[]): AppOption => (a) => {
  a.tasks = [...(a.tasks ?? []), ...tasks];
};

export const withHealthCheck = (protocol = 'HTTP', path?: string, extra: Partial<MarathonHealthCheck> = {}): AppOption => (a) => {
  const hc: MarathonHealthCheck = { protocol, portIndex: 0, gracePeriodSeconds: 300, intervalSeconds: 10, ...extra };
  if (path !== undefined) hc.path = path;
  a.healthChecks = [...(a.healthChecks ?? []), hc];
};

export const withEnv = (env: Record<string, unknown>): AppOption => (a) => {
  a.env = { ...(a.env ?? {}), ...env };
};

export const withLabels = (labels: Record<string, unknown>): AppOption => (a) => {
  a.labels = { ...(a.labels ?? {}), ...labels };
};

/** Marathon 0.x service ports. */
export const withPorts = (...ports: number[]): AppOption => (a) => {
  a.ports = ports;
};

/** Marathon 1.x host networking. */
export const withPortDefinitions = (...ports: number[]): AppOption => (a) => {
  a.portDefinitions = ports.map((port) => ({ port, protocol: 'tcp' }));
};

/** Docker bridge networking before 1.5 (`container.docker.portMappings`). */
export const withDockerBridge = (...mappings: MarathonPortMapping[]): AppOption => (a) => {
  a.container = { type: 'DOCKER', docker: { network: 'BRIDGE', portMappings: mappings } };
};

/** Marathon 1.5+ networking: `networks` plus `container.portMappings`. */
export const withNetwork = (mode: 'host' | 'container/bridge' | 'container', ...mappings: MarathonPortMapping[]): AppOption => (a) => {
  a.networks = [{ mode, ...(mode === 'container' ? { name: 'dcos' } : {}) }];
  if (mappings.length > 0) a.container = { type: 'DOCKER', portMappings: mappings };
};

/** IP-per-task, Marathon 0.14-1.4 (`ipAddress.discovery.ports`). */
export const withIpPerTask = (...containerPorts: number[]): AppOption => (a) => {
  a.ipAddress = { discovery: { ports: containerPorts.map((number, i) => ({ number, name: `p${i}`, protocol: 'tcp' })) } };
};

export const withDeployment = (id = 'deployment-1'): AppOption => (a) => {
  a.deployments = [...(a.deployments ?? []), { id }];
};

export const withReadinessCheck = (path = '/ready', timeoutSeconds = 10): AppOption => (a) => {
  a.readinessChecks = [{ name: 'readiness', path, portName: 'http', timeoutSeconds, intervalSeconds: 30 }];
};

export const withReadinessResult = (taskId: string, ready: boolean): AppOption => (a) => {
  a.readinessCheckResults = [...(a.readinessCheckResults ?? []), { name: 'readiness', taskId, ready }];
};

export const withVersion = (version: string): AppOption => (a) => {
  a.version = version;
};

// --- task options ------------------------------------------------------------------------------

export const onHost = (host: string, ...ports: number[]): TaskOption => (t) => {
  t.host = host;
  if (ports.length > 0) t.ports = ports;
};

export const withTaskIp = (ip: string): TaskOption => (t) => {
  t.ipAddresses = [{ ipAddress: ip, protocol: 'IPv4' }];
};

export const inState = (state: string | undefined): TaskOption => (t) => {
  if (state === undefined) delete t.state;
  else t.state = state;
};

export const startedAgo = (ms: number): TaskOption => (t) => {
  t.startedAt = iso(NOW - ms);
};

export const notStarted = (): TaskOption => (t) => {
  t.startedAt = null;
};

/** `n` health check results, all alive. */
export const healthy = (n = 1): TaskOption => (t) => {
  t.healthCheckResults = Array.from({ length: n }, () => ({ alive: true, consecutiveFailures: 0, taskId: t.id }));
};

/** One health check result saying not alive. */
export const unhealthy = (): TaskOption => (t) => {
  t.healthCheckResults = [{ alive: false, consecutiveFailures: 3, taskId: t.id, lastFailureCause: 'ConnectException: Connection refused' }];
};

// --- other inputs ------------------------------------------------------------------------------

export function service(id: string, acl: string, config: Record<string, string> = {}): ServiceRecord {
  return { Id: id, Acl: acl, Config: config };
}

export function services(...records: ServiceRecord[]): Record<string, ServiceRecord> {
  return Object.fromEntries(records.map((r) => [r.Id, r]));
}

export function settings(overrides: Partial<HAProxySettings> = {}): HAProxySettings {
  return {
    HttpBind: '*:80',
    StatsBind: '127.0.0.1:8081',
    StatsUser: 'operator',
    StatsPassword: 'change-me',
    AdminSocket: '/run/haproxy/admin.sock',
    BindOptions: 'noreuseport',
    PrometheusExporter: 'true',
    ...overrides,
  };
}

// --- files -------------------------------------------------------------------------------------

/** The repository root: the nearest directory above this file holding package.json. */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above test/');
    dir = up;
  }
  return dir;
})();

/** The Marathon fixtures, inside the repository (harness/fixtures/marathon). */
export const FIXTURES = fixturesDir();

export const DEFAULT_TEMPLATE_PATH = resolve(REPO_ROOT, 'templates/haproxy.cfg.liquid');

export function defaultTemplate(): string {
  return readFileSync(DEFAULT_TEMPLATE_PATH, 'utf8');
}

/** The apps of a fixture file, whatever its shape (`{"apps"}`, bare array, `{"app"}`, groups). */
export function fixtureApps(relativePath: string): unknown[] {
  const doc = JSON.parse(readFileSync(resolve(FIXTURES, relativePath), 'utf8')) as unknown;
  const out: unknown[] = [];
  const walk = (g: Record<string, unknown>) => {
    if (Array.isArray(g.apps)) out.push(...g.apps);
    if (Array.isArray(g.groups)) for (const sub of g.groups) walk(sub as Record<string, unknown>);
  };
  if (Array.isArray(doc)) return doc;
  const o = doc as Record<string, unknown>;
  if (o.app && typeof o.app === 'object') return [o.app];
  if (Array.isArray(o.apps) || Array.isArray(o.groups)) {
    walk(o);
    return out;
  }
  return [o];
}
