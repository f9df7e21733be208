/**
 * Builders for the events Marathon publishes, each returning the object with Marathon's key order
 * (taken from the real captures in harness/fixtures/marathon/events; the comment on each names
 * the file). Pure: the caller passes the timestamp.
 */
import type { JsonObject } from './types.js';
import type { Era } from './version.js';

/** Fields of a status_update_event (status_update_event__TASK_RUNNING__real-marathon-1.6_gestalt-dcos.json). */
export interface StatusUpdate {
  slaveId: string;
  taskId: string;
  taskStatus: string;
  message: string;
  appId: string;
  host: string;
  ipAddresses: unknown;
  ports: unknown;
  version: string;
}

/** status_update_event; `ipAddresses` only from 0.14 (the 0.11 RAML stream has none). */
export function statusUpdateEvent(u: StatusUpdate, era: Era, timestamp: string): JsonObject {
  return {
    slaveId: u.slaveId,
    taskId: u.taskId,
    taskStatus: u.taskStatus,
    message: u.message,
    appId: u.appId,
    host: u.host,
    ...(era.taskIpAddresses ? { ipAddresses: u.ipAddresses ?? [] } : {}),
    ports: u.ports,
    version: u.version,
    eventType: 'status_update_event',
    timestamp,
  };
}

/** instance_changed_event, 1.4+ (instance_changed_event__Running__real-marathon-1.6_gestalt-dcos.json). */
export function instanceChangedEvent(
  i: { instanceId: string; condition: string; runSpecId: string; agentId: string; host: string; runSpecVersion: string },
  timestamp: string,
): JsonObject {
  return {
    instanceId: i.instanceId,
    condition: i.condition,
    runSpecId: i.runSpecId,
    agentId: i.agentId,
    host: i.host,
    runSpecVersion: i.runSpecVersion,
    timestamp,
    eventType: 'instance_changed_event',
  };
}

/**
 * health_status_changed_event: `instanceId` from 1.4, `taskId` before
 * (health_status_changed_event__real-marathon-1.4_issue-5434.json).
 */
export function healthStatusChangedEvent(
  h: { appId: string; taskId: string; instanceId: string; version: string; alive: boolean },
  era: Era,
  timestamp: string,
): JsonObject {
  return {
    appId: h.appId,
    ...(era.instances ? { instanceId: h.instanceId } : { taskId: h.taskId }),
    version: h.version,
    alive: h.alive,
    eventType: 'health_status_changed_event',
    timestamp,
  };
}

/** instance_health_changed_event, 1.4+ (instance_health_changed_event__marathon-1.4-changelog.json). */
export function instanceHealthChangedEvent(
  h: { instanceId: string; runSpecId: string; healthy: boolean; runSpecVersion: string },
  timestamp: string,
): JsonObject {
  return {
    instanceId: h.instanceId,
    runSpecId: h.runSpecId,
    healthy: h.healthy,
    runSpecVersion: h.runSpecVersion,
    timestamp,
    eventType: 'instance_health_changed_event',
  };
}

/** failed_health_check_event (failed_health_check_event__real-marathon-1.4_issue-5434.json). */
export function failedHealthCheckEvent(
  f: { appId: string; taskId: string; instanceId: string; healthCheck: unknown },
  era: Era,
  timestamp: string,
): JsonObject {
  return {
    appId: f.appId,
    ...(era.instances ? { instanceId: f.instanceId } : { taskId: f.taskId }),
    healthCheck: f.healthCheck,
    eventType: 'failed_health_check_event',
    timestamp,
  };
}

/** deployment_info, deployment_step_success, deployment_step_failure: plan + currentStep. */
export function deploymentStepEvent(
  eventType: 'deployment_info' | 'deployment_step_success' | 'deployment_step_failure',
  plan: JsonObject,
  currentStep: JsonObject,
  timestamp: string,
): JsonObject {
  return { plan, currentStep, eventType, timestamp };
}

/** deployment_success (deployment_success__StopApplication__real-marathon-1.6_gestalt-dcos.json). */
export function deploymentSuccessEvent(id: string, plan: JsonObject, timestamp: string): JsonObject {
  return { id, plan, eventType: 'deployment_success', timestamp };
}

/** deployment_failed: 1.x carries the plan and an optional reason (Events.scala; no real sample). */
export function deploymentFailedEvent(id: string, plan: JsonObject, reason: string | undefined, timestamp: string): JsonObject {
  return { id, plan, ...(reason !== undefined ? { reason } : {}), eventType: 'deployment_failed', timestamp };
}

/** group_change_success (group_change_success__real-marathon-1.6_async-worker.json). */
export function groupChangeSuccessEvent(groupId: string, version: string, timestamp: string): JsonObject {
  return { groupId, version, eventType: 'group_change_success', timestamp };
}

/** api_post_event (api_post_event__real-marathon-1.6_gestalt-dcos.json). */
export function apiPostEvent(clientIp: string, uri: string, appDefinition: JsonObject, timestamp: string): JsonObject {
  return { clientIp, uri, appDefinition, eventType: 'api_post_event', timestamp };
}

/** app_terminated_event (app_terminated_event__real-marathon-1.6_gestalt-dcos.json). */
export function appTerminatedEvent(appId: string, timestamp: string): JsonObject {
  return { appId, eventType: 'app_terminated_event', timestamp };
}

/**
 * event_stream_attached / event_stream_detached. Real Marathon sends `remoteAddress`; the docs'
 * clientIp/callbackUrl shape is wrong (event_stream_attached__real-marathon-1.6_async-worker.json).
 */
export function streamEvent(
  eventType: 'event_stream_attached' | 'event_stream_detached',
  remoteAddress: string,
  timestamp: string,
): JsonObject {
  return { remoteAddress, eventType, timestamp };
}

/** subscribe_event / unsubscribe_event, also the body of the /v2/eventSubscriptions answers (0.8.1 VCR). */
export function subscriptionEvent(
  eventType: 'subscribe_event' | 'unsubscribe_event',
  clientIp: string,
  callbackUrl: string,
  timestamp: string,
): JsonObject {
  return { clientIp, callbackUrl, eventType, timestamp };
}
