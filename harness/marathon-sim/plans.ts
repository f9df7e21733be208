/**
 * Deployments as Marathon serialises them: the root groups of a heavy plan, steps, plans (heavy or
 * light by era) and the entries of `GET /v2/deployments`. Pure.
 */
import { canonicalAppId, parentGroupId, type DeploymentAction, type DeploymentRecord } from './records.js';
import { asObject, type JsonObject } from './types.js';
import type { Era } from './version.js';

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
