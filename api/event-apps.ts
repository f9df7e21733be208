/**
 * Which Marathon events can change routing, and which apps an event names, so the intake can fetch
 * those apps (`GET /v2/apps/{id}`) instead of the whole list. An event is untrusted: it only chooses
 * what to ask Marathon, never what is stored, and an event that names no valid app id (or more than a
 * few) asks for the whole list.
 */
import { validAppId } from '../common/core/marathon-api.js';

/** Events whose top-level `appId` (or `runSpecId`, Marathon 1.4+) is the one app they concern. */
const ONE_APP_EVENTS = new Set([
  'status_update_event',
  'health_status_changed_event',
  'instance_health_changed_event',
  'instance_changed_event',
  'unhealthy_task_kill_event',
  'unhealthy_instance_kill_event',
  'add_health_check_event',
  'remove_health_check_event',
  'app_terminated_event',
]);

/** Marathon event types that can change what HAProxy should route to: the one-app events and these. */
const ROUTING_EVENTS = new Set([
  ...ONE_APP_EVENTS,
  'unknown_instance_terminated_event',
  'api_post_event',
  'group_change_success',
  'event_stream_attached',
]);

/** True for events after which the routing may differ (every `deployment_*` event counts). */
export function isRoutingEvent(type: string): boolean {
  return ROUTING_EVENTS.has(type) || type.startsWith('deployment_');
}

/** Deployment events: the apps are the `app` of each action of `currentStep` or of `plan.steps`. */
const DEPLOYMENT_EVENTS = new Set(['deployment_info', 'deployment_success', 'deployment_failed', 'deployment_step_success', 'deployment_step_failure']);

/** Most apps one event may name; a deployment of more is fetched whole. */
const MAX_NAMED = 50;

/** Bigger event payloads (a heavy deployment plan) are not parsed for their apps: the whole list is fetched. */
export const MAX_PARSED_EVENT_BYTES = 256 * 1024;

/** True for events whose app can come from their top-level `appId`/`runSpecId` alone (callbacks). */
export function namesOneApp(type: string): boolean {
  return ONE_APP_EVENTS.has(type);
}

/** The app a one-app event names by its top-level id, or null (fetch the whole list). */
export function oneAppNamed(type: string, appId: unknown): string[] | null {
  return ONE_APP_EVENTS.has(type) && validAppId(appId) ? [appId] : null;
}

function stepApps(step: unknown, out: Set<string>): boolean {
  const actions = step && typeof step === 'object' ? (step as { actions?: unknown }).actions : undefined;
  if (!Array.isArray(actions)) return false;
  for (const a of actions) {
    const app = a && typeof a === 'object' ? (a as { app?: unknown }).app : undefined;
    if (!validAppId(app)) return false;
    out.add(app);
  }
  return true;
}

/**
 * The apps an event names, from its parsed payload, or null when it names none the intake can rely
 * on: then the whole list is fetched. `api_post_event` names its `appDefinition.id`; deployment events
 * the apps of their current step (or of every step of the plan). `group_change_success` names none
 * and needs none (`[]`): Marathon changes apps through a deployment, whose events name them (or, when
 * too big to read, fetch the whole list).
 */
export function appsNamed(type: string, payload: unknown): string[] | null {
  if (type === 'group_change_success') return [];
  if (!payload || typeof payload !== 'object') return null;
  const p = payload as Record<string, unknown>;
  if (ONE_APP_EVENTS.has(type)) return oneAppNamed(type, p.appId ?? p.runSpecId);
  if (type === 'api_post_event') {
    const def = p.appDefinition;
    const id = def && typeof def === 'object' ? (def as { id?: unknown }).id : undefined;
    return validAppId(id) ? [id] : null;
  }
  if (DEPLOYMENT_EVENTS.has(type)) {
    const out = new Set<string>();
    if (p.currentStep !== undefined) {
      if (!stepApps(p.currentStep, out)) return null;
    } else {
      const steps = p.plan && typeof p.plan === 'object' ? (p.plan as { steps?: unknown }).steps : undefined;
      if (!Array.isArray(steps) || steps.length === 0) return null;
      for (const s of steps) if (!stepApps(s, out)) return null;
    }
    return out.size > 0 && out.size <= MAX_NAMED ? [...out] : null;
  }
  return null;
}
