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
  // One pass over the definitions (not one per group): each app under its parent group, each group
  // under the group above it. Same shape and order as nesting by id path group by group.
  const appsOf = new Map<string, JsonObject[]>();
  const childrenOf = new Map<string, Set<string>>();
  for (const d of defs) {
    const parent = parentGroupId(String(d['id']));
    const list = appsOf.get(parent);
    if (list) list.push(d);
    else appsOf.set(parent, [d]);
    const parts = canonicalAppId(String(d['id'])).slice(1).split('/');
    let group = '/';
    for (let i = 0; i < parts.length - 1; i++) {
      const child = group === '/' ? `/${parts[i]}` : `${group}/${parts[i]}`;
      let set = childrenOf.get(group);
      if (!set) childrenOf.set(group, (set = new Set()));
      set.add(child);
      group = child;
    }
  }
  const build = (groupId: string): JsonObject => ({
    id: groupId,
    apps: appsOf.get(groupId) ?? [],
    ...(era.groupPods ? { pods: [] } : {}),
    groups: [...(childrenOf.get(groupId) ?? [])].sort().map(build),
    dependencies: [],
    version,
  });
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
