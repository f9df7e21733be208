/**
 * The simulated Marathon's open deployments: each one's plan (built once, so every event of the
 * deployment agrees), the step it is at, and the deployment events its steps publish. The controls
 * in state.ts decide which deployment a change opens and when it finishes.
 */
import * as ev from './events.js';
import { planJson, rootGroup, stepJson } from './plans.js';
import { canonicalAppId, type DeploymentAction, type DeploymentRecord } from './records.js';
import { SimulatorError, type JsonObject, type StateContext } from './types.js';

/** Open deployments in creation order, and the root group version the next plan starts from. */
export class Deployments {
  private readonly open = new Map<string, DeploymentRecord>();
  private rootVersion: string;

  constructor(private readonly ctx: StateContext) {
    this.rootVersion = ctx.now();
  }

  list(): DeploymentRecord[] {
    return [...this.open.values()];
  }

  has(id: string): boolean {
    return this.open.has(id);
  }

  /** Ids of the open deployments that affect the app. */
  idsOf(appId: string): string[] {
    const id = canonicalAppId(appId);
    return this.list().filter((d) => d.affectedApps.some((a) => canonicalAppId(a) === id)).map((d) => d.id);
  }

  /** Forgets every deployment, without events (seeding). */
  clear(): void {
    this.open.clear();
  }

  /**
   * Records a deployment a fixture lists as open on an app, or adds the app to it when another app
   * listed it already. Publishes nothing.
   */
  seed(id: string, appId: string, def: JsonObject, appVersion: unknown): void {
    const existing = this.open.get(id);
    if (existing) existing.affectedApps.push(appId);
    else {
      const version = String(appVersion ?? this.ctx.now());
      const steps = [[{ action: 'ScaleApplication', app: appId }]];
      const plan = planJson(
        { id, steps, version, original: rootGroup([], this.ctx.era, version), target: rootGroup([def], this.ctx.era, version) },
        this.ctx.era,
      );
      this.open.set(id, { id, version, affectedApps: [appId], steps, current: 0, plan });
    }
  }

  /** Registers a deployment; `original` and `target` are the app definitions before and after the change. */
  begin(appIds: string[], steps: DeploymentAction[][], original: JsonObject[], target: JsonObject[], version: string): DeploymentRecord {
    const id = this.ctx.uuid();
    const plan = planJson(
      { id, steps, version, original: rootGroup(original, this.ctx.era, this.rootVersion), target: rootGroup(target, this.ctx.era, version) },
      this.ctx.era,
    );
    this.rootVersion = version;
    const d: DeploymentRecord = { id, version, affectedApps: appIds, steps, current: 0, plan };
    this.open.set(id, d);
    return d;
  }

  /** Closes, without events, the deployments other than `except` still open on an app that is gone. */
  dropAffecting(appId: string, except: string): void {
    for (const other of this.open.values()) {
      if (other.id !== except && other.affectedApps.some((a) => canonicalAppId(a) === appId)) this.open.delete(other.id);
    }
  }

  stepInfo(d: DeploymentRecord): void {
    this.ctx.publish(ev.deploymentStepEvent('deployment_info', d.plan, this.currentStepJson(d), this.ctx.now()));
  }

  stepSuccess(d: DeploymentRecord): void {
    this.ctx.publish(ev.deploymentStepEvent('deployment_step_success', d.plan, this.currentStepJson(d), this.ctx.now()));
    d.current++;
  }

  /** Completes an open deployment: a step success per remaining step (with deployment_info before each next step), then deployment_success. */
  finish(deploymentId: string): void {
    const d = this.mustDeployment(deploymentId);
    this.stepSuccess(d);
    while (d.current < d.steps.length) {
      this.stepInfo(d);
      this.stepSuccess(d);
    }
    this.open.delete(d.id);
    this.ctx.publish(ev.deploymentSuccessEvent(d.id, d.plan, this.ctx.now()));
  }

  /** Fails an open deployment: deployment_step_failure for the current step, then deployment_failed. */
  fail(deploymentId: string, reason?: string): void {
    const d = this.mustDeployment(deploymentId);
    this.ctx.publish(ev.deploymentStepEvent('deployment_step_failure', d.plan, this.currentStepJson(d), this.ctx.now()));
    this.open.delete(d.id);
    this.ctx.publish(ev.deploymentFailedEvent(d.id, d.plan, reason, this.ctx.now()));
  }

  private mustDeployment(id: string): DeploymentRecord {
    const d = this.open.get(id);
    if (!d) throw new SimulatorError(`Deployment '${id}' does not exist`);
    return d;
  }

  private currentStepJson(d: DeploymentRecord): JsonObject {
    return stepJson(d.steps[Math.min(d.current, d.steps.length - 1)] ?? [], this.ctx.era);
  }
}
