/**
 * Types shared by the pure core: what Marathon sends (loose, every field optional because every
 * Marathon version from 0.7 to 1.10 sends a different subset), the service records (ACL rules) the
 * api stores, and the template data that templates see.
 *
 * The template data keeps Bamboo's field names and meanings (Go's `services/marathon` App and Task
 * structs) so a Bamboo template ports line by line; docs/templates.md describes every field.
 */

import type { AppRouting } from './routing.js';

// ---------------------------------------------------------------------------------------------
// Marathon input (GET /v2/apps?embed=apps.tasks&embed=apps.deployments&embed=apps.readiness)
// ---------------------------------------------------------------------------------------------

/** One health check of an app definition. */
export interface MarathonHealthCheck {
  /** HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP (absent means HTTP in old Marathon). */
  protocol?: string;
  path?: string;
  portIndex?: number;
  /** Fixed port instead of portIndex (Marathon 1.x); not used for routing. */
  port?: number;
  gracePeriodSeconds?: number;
  intervalSeconds?: number;
  timeoutSeconds?: number;
  maxConsecutiveFailures?: number;
  delaySeconds?: number;
  ignoreHttp1xx?: boolean;
  command?: unknown;
}

/** One entry of a task's `healthCheckResults`. */
export interface MarathonHealthCheckResult {
  alive?: boolean;
  consecutiveFailures?: number;
  firstSuccess?: string | null;
  lastSuccess?: string | null;
  lastFailure?: string | null;
  lastFailureCause?: string | null;
  /** Marathon <= 1.3. */
  taskId?: string;
  /** Marathon >= 1.4. */
  instanceId?: string;
}

export interface MarathonIpAddress {
  ipAddress?: string;
  protocol?: string;
}

export interface MarathonTask {
  id?: string;
  appId?: string;
  host?: string;
  ports?: number[];
  servicePorts?: number[];
  /** Marathon 1.1+; absent before. */
  state?: string;
  startedAt?: string | null;
  stagedAt?: string | null;
  version?: string;
  slaveId?: string;
  /** Marathon 0.14+. */
  ipAddresses?: MarathonIpAddress[];
  healthCheckResults?: MarathonHealthCheckResult[];
  [key: string]: unknown;
}

export interface MarathonPortMapping {
  containerPort?: number;
  hostPort?: number;
  servicePort?: number;
  protocol?: string;
  name?: string;
  labels?: Record<string, unknown>;
}

export interface MarathonPortDefinition {
  port?: number;
  protocol?: string;
  name?: string;
  labels?: Record<string, unknown>;
}

export interface MarathonContainer {
  type?: string;
  /** Marathon < 1.5: `docker.network` (HOST | BRIDGE | USER) and `docker.portMappings`. */
  docker?: { network?: string; portMappings?: MarathonPortMapping[] | null; [key: string]: unknown } | null;
  /** Marathon 1.5+. */
  portMappings?: MarathonPortMapping[] | null;
  [key: string]: unknown;
}

export interface MarathonReadinessCheck {
  name?: string;
  path?: string;
  portName?: string;
  timeoutSeconds?: number;
  intervalSeconds?: number;
}

export interface MarathonReadinessCheckResult {
  name?: string;
  taskId?: string;
  ready?: boolean;
}

export interface MarathonApp {
  id?: string;
  /** Marathon 0.x - 1.4 service ports. */
  ports?: number[];
  /** Marathon 1.0+ (host networking). */
  portDefinitions?: MarathonPortDefinition[];
  container?: MarathonContainer | null;
  /** Marathon 0.14 - 1.4 IP-per-task; `null` when not used. */
  ipAddress?: { discovery?: { ports?: Array<{ number?: number; name?: string; protocol?: string }> }; networkName?: string } | null;
  /** Marathon 1.5+: `host`, `container/bridge` or `container` (IP-per-task on a virtual network). */
  networks?: Array<{ mode?: string; name?: string }>;
  env?: Record<string, unknown>;
  labels?: Record<string, unknown>;
  healthChecks?: MarathonHealthCheck[];
  readinessChecks?: MarathonReadinessCheck[];
  readinessCheckResults?: MarathonReadinessCheckResult[];
  deployments?: Array<{ id?: string }>;
  tasks?: MarathonTask[];
  version?: string;
  [key: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// Service records (ACL rules), Bamboo's `service.Service`
// ---------------------------------------------------------------------------------------------

/** One rule per app, keyed by app id. `Acl` is pasted into haproxy.cfg, so it is validated first. */
export interface ServiceRecord {
  Id: string;
  Acl: string;
  Config: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Template data (what templates and `/api/state` see), Bamboo's shape
// ---------------------------------------------------------------------------------------------

export interface HealthCheckData {
  /** Marathon's protocol, upper case, as sent (HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, ...). */
  Protocol: string;
  /** The HTTP path ("" for non-HTTP checks). */
  Path: string;
  /** Index into the task's `Ports` of the port the check targets. */
  PortIndex: number;
}

export interface TaskData {
  /** Marathon's task id (unique, stable for the task's life): use it to name servers. */
  Id: string;
  /** Where to send traffic: the agent host, or the task's own IP for IP-per-task apps. */
  Host: string;
  /** `Ports[0]`. */
  Port: number;
  /** Host ports (container ports for IP-per-task apps), in Marathon's port order. */
  Ports: number[];
  /** Passes its health checks (see docs/templates.md for unknown health). */
  Alive: boolean;
  /** Running and, during a deployment, ready (readiness checks). */
  Ready: boolean;
  /** Marathon's task state (`TASK_RUNNING`, ...); "" when Marathon (< 1.1) does not send it. */
  State: string;
}

export interface AppData {
  /** Absolute app id, `/group/app`. */
  Id: string;
  /** Id with every `/` replaced by `::` (`::group::app`), safe in HAProxy names. */
  EscapedId: string;
  /** DNS-friendly id: groups reversed and joined by `-` (`/group/app` -> `app-group`). */
  MesosDnsId: string;
  /** `Id` split on `/` (the first element is "" for the leading slash, as in Bamboo). */
  SplitId: string[];
  /** Path of the first HTTP-like health check (HTTP, HTTPS, MESOS_HTTP, MESOS_HTTPS), or "". */
  HealthCheckPath: string;
  /** `HTTP` or `HTTPS` for that check (MESOS_ prefix removed), or "". */
  HealthCheckProtocol: string;
  HealthChecks: HealthCheckData[];
  /** Path of the first readiness check, or "". */
  ReadinessCheckPath: string;
  /** `ServicePorts[0]`, or 0. */
  ServicePort: number;
  ServicePorts: number[];
  /** String-valued env vars only; secret references (object values) are left out. */
  Env: Record<string, string>;
  Labels: Record<string, string>;
  /** Sorted by `Id`. */
  Tasks: TaskData[];
  /**
   * The app's server slots (new, not in Bamboo): a stable place per task, so task churn changes
   * what a server line says but not which lines exist, and the worker can apply it through the
   * Runtime API without a reload. Render one `server` line per slot, named after `Index`; a slot
   * without a task is a `disabled` placeholder. See docs/templates.md ("Server slots").
   */
  Slots: SlotData[];
  /**
   * New: where the app's routing comes from (`rule` | `labels` | `default`), its HAPROXY_GROUP, its
   * per-port settings from marathon-lb's labels or the rule's Config, host conflicts it lost and
   * labels left out. See docs/labels.md and docs/templates.md ("Routing").
   */
  Routing: AppRouting;
}

/** One server slot of an app. */
export interface SlotData {
  /** 1-based, stable: name the server after it (`slot-{{ slot.Index }}`). */
  Index: number;
  /** The task in this slot (one of the app's `Tasks`), or nil when the slot is free. */
  Task: TaskData | null;
}

export interface TemplateData {
  /** Sorted by `Id`. */
  Apps: AppData[];
  /** Valid service records keyed by app id (keys sorted). */
  Services: Record<string, ServiceRecord>;
}

/** Something skipped or assumed while building template data; never fatal. */
export interface Warning {
  /** Stable code, e.g. `app_invalid`, `acl_invalid`. */
  code: string;
  /** The app (or service) concerned, when there is one. */
  appId?: string;
  message: string;
}

/** HAProxy settings visible to templates as `HAProxy`. */
export interface HAProxySettings {
  /** Address of the HTTP frontend, e.g. `*:80` or `127.0.0.1:8080`. */
  HttpBind: string;
  /** Address of the stats page; the page exists only when StatsBind, StatsUser and StatsPassword are set. */
  StatsBind: string;
  StatsUser: string;
  StatsPassword: string;
  /** Path of the admin Runtime API socket (`stats socket`). */
  AdminSocket: string;
  /** Appended to every `bind` line, e.g. `noreuseport`. */
  BindOptions: string;
  /**
   * Where HAProxy keeps server state across reloads (`server-state-file`); empty: no state file.
   * Optional for callers that predate it (treated as empty).
   */
  ServerStateFile?: string;
  /**
   * `true`: the default template serves HAProxy's Prometheus exporter on the stats listener at
   * `/metrics` (HAProxy.PrometheusExporter). Optional for callers that predate it (treated as off).
   */
  PrometheusExporter?: string;
  /**
   * Address of the HTTPS listener (HAProxy.HttpsBind), a second `bind` of the HTTP frontend; empty:
   * no HTTPS. Optional for callers that predate it (treated as empty).
   */
  HttpsBind?: string;
  /** The crt-list the worker keeps (the certificates of HAProxy.CertDir, the default first); paths only, never key material. */
  CrtList?: string;
  /** HSTS max-age in seconds as text (HAProxy.HstsMaxAge); empty: no HSTS header. */
  HstsMaxAge?: string;
}
