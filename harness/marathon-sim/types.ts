/**
 * Shared types of the Marathon simulator: the wire objects (kept loose on purpose, because real
 * Marathon payloads differ by version and fixtures carry fields we do not model), the two narrowings
 * that read them, the inputs of the simulator's controls, the error they throw, and what the parts
 * of the state share.
 */
import type { Era } from './version.js';

/** A JSON object as it travels on the wire. Values stay `unknown` so fixture fields pass through untouched. */
export type JsonObject = Record<string, unknown>;

/** The value as a list of objects when it is an array; undefined otherwise. */
export function asArray(value: unknown): JsonObject[] | undefined {
  return Array.isArray(value) ? (value as JsonObject[]) : undefined;
}

/** The value as an object when it is a non-array object; undefined otherwise (null included). */
export function asObject(value: unknown): JsonObject | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

/**
 * A Marathon app definition (the body of `POST /v2/apps`, or an app of `GET /v2/apps` without the
 * embedded parts). Only `id` is required; every other Marathon field is accepted as given, in any
 * era's shape (`ports`, `portDefinitions`, `container.docker.portMappings`, `container.portMappings`
 * + `networks`, `ipAddress`, ...), so tests choose the shape they want Bamboo to parse.
 */
export interface AppDefinition {
  id: string;
  instances?: number;
  cmd?: string | null;
  env?: Record<string, unknown>;
  labels?: Record<string, string>;
  ports?: number[];
  portDefinitions?: Array<{ port: number; protocol?: string; name?: string; labels?: Record<string, string> }>;
  healthChecks?: JsonObject[];
  readinessChecks?: JsonObject[];
  [key: string]: unknown;
}

/** Mesos task states the simulator knows (Marathon passes Mesos' names through). */
export type TaskState =
  | 'TASK_STAGING'
  | 'TASK_STARTING'
  | 'TASK_RUNNING'
  | 'TASK_KILLING'
  | 'TASK_KILLED'
  | 'TASK_FINISHED'
  | 'TASK_FAILED'
  | 'TASK_LOST'
  | 'TASK_ERROR'
  | 'TASK_UNREACHABLE'
  | 'TASK_GONE'
  | 'TASK_GONE_BY_OPERATOR'
  | 'TASK_DROPPED'
  | 'TASK_UNKNOWN';

/** Where a task runs. Tests that run real backends pass their own host/ports here. */
export interface TaskSpec {
  host: string;
  /** Host ports, one per app port (what HAProxy must connect to). */
  ports: number[];
  /** Defaults to `[{ipAddress: host, protocol: 'IPv4'}]` when host is an IPv4 address. */
  ipAddresses?: Array<{ ipAddress: string; protocol?: string }>;
  /** Initial state; default TASK_RUNNING. */
  state?: TaskState;
  /** Health check outcome (only meaningful when the app has health checks); default true. */
  healthy?: boolean;
  /** Readiness outcome (shown with embed=apps.readiness when the app has readiness checks). */
  ready?: boolean;
  /** Mesos agent id; default one stable fake id per host. */
  slaveId?: string;
}

/** What the simulator keeps per task; returned by {@link MarathonSimulator.tasks}. */
export interface TaskView {
  id: string;
  appId: string;
  host: string;
  ports: number[];
  state: TaskState;
  /** Aggregate health: undefined when there is no health check result. */
  healthy: boolean | undefined;
  ready: boolean | undefined;
}

/** One event as the simulator sends it: the `event:` name and the exact `data:` bytes. */
export interface SimEvent {
  eventType: string;
  /** One-line JSON, byte-identical in the SSE `data:` line and in the callback POST body. */
  data: string;
  /**
   * The same event in the light plan format (no `plan.original`/`plan.target`), for the streams that
   * asked for it with `?plan-format=light` (1.6; fact 2). Absent when the event carries no heavy plan.
   */
  light?: string;
}

/** One logged HTTP request (tests count fetches with it). */
export interface RequestRecord {
  method: string;
  /** Path as received, without the query string (double slashes kept). */
  path: string;
  /** Raw query string without the leading `?` ("" when none). */
  query: string;
  /** Epoch milliseconds when the request arrived. */
  at: number;
  headers: Record<string, string | string[] | undefined>;
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

/** Thrown by controls given an unknown app or task id (a test bug, so it should be loud). */
export class SimulatorError extends Error {
  constructor(message: string) {
    super(`marathon-sim: ${message}`);
    this.name = 'SimulatorError';
  }
}

/** What the parts of the state (tasks.ts, deployments.ts) share with it: the era, the clock and id source, the event bus. */
export interface StateContext {
  era: Era;
  /** The current time as Marathon writes it (ISO 8601). */
  now(): string;
  uuid(): string;
  /** Publishes one event object (its `eventType` names it) to every listener. */
  publish(payload: JsonObject): void;
}
