/**
 * What a rules-level quarantine routes by. An app whose rule fails on this worker keeps the service
 * record it had in the last config this worker applied (its "last good rule"), so the hostname it
 * was routed by keeps answering; only an app that never had a good rule here (or whose last good
 * rule fails too, or is the failing one: a template or HAProxy that changed) falls back to the
 * template's default rule. The planner decides, the template data carries the result; this module
 * holds the pure parts and the `since` stamps (when each quarantine began on this worker).
 */
import { jsonEqual } from '../common/app-equality.js';
import type { ServiceRecord, TemplateData } from '../common/model.js';
import type { QuarantinedApp, RunningModel } from './outcome.js';

/** A service record in force on this worker, with its rule (znode) version. */
export interface GoodRule {
  record: ServiceRecord;
  version: number;
}

/**
 * The service records of the config this worker runs, by app id: the running model's template data
 * (a substituted last good rule included, so it stays the last good one), or, for a config found on
 * disk at start, what the worker saved beside it (`RunningModel.rulesInForce`). Empty without either.
 */
export function rulesInForce(running: RunningModel | null): Map<string, GoodRule> {
  const out = new Map<string, GoodRule>();
  if (!running) return out;
  const services = running.data?.Services ?? running.rulesInForce ?? {};
  for (const [id, record] of Object.entries(services)) {
    const version = running.rulesApplied[id];
    if (typeof version === 'number') out.set(id, { record, version });
  }
  return out;
}

/**
 * A rules-level quarantine of `appId`: by its last good rule when this worker ran one that differs
 * from the failing `record`, else by the default rule. `ruleVersion`: the failing rule's version.
 */
export function rulesQuarantine(
  appId: string,
  error: string,
  failing: { record: ServiceRecord | undefined; version: number | undefined },
  good: ReadonlyMap<string, GoodRule>,
): QuarantinedApp {
  const last = good.get(appId);
  const q: QuarantinedApp = { appId, level: 'rules', error, fallback: 'default' };
  if (failing.version !== undefined) q.ruleVersion = failing.version;
  if (last && !jsonEqual(last.record, failing.record)) {
    q.fallback = 'last-good';
    q.lastGoodVersion = last.version;
  }
  return q;
}

/**
 * The next step for an app whose fragment still breaks the config with `current` in force: from the
 * last good rule to the default rule, then the app left out. Null when there is no step left.
 */
export function escalate(current: QuarantinedApp, error: string): QuarantinedApp | null {
  if (current.level === 'rules' && current.fallback === 'last-good') {
    const { lastGoodVersion: _dropped, ...rest } = current;
    return { ...rest, fallback: 'default', error: `${error} (the last good rule v${current.lastGoodVersion} failed too)` };
  }
  if (current.level === 'rules') return { appId: current.appId, level: 'app', error, ...(current.ruleVersion !== undefined ? { ruleVersion: current.ruleVersion } : {}) };
  return null;
}

/**
 * A remembered quarantine checked against the rules in force now: a `last-good` fallback whose rule
 * this worker no longer runs becomes `default`.
 */
export function recheck(q: QuarantinedApp, good: ReadonlyMap<string, GoodRule>): QuarantinedApp {
  if (q.level !== 'rules' || q.fallback !== 'last-good') return q;
  const last = good.get(q.appId);
  if (last && last.version === q.lastGoodVersion) return q;
  const { lastGoodVersion: _dropped, ...rest } = q;
  return { ...rest, fallback: 'default' };
}

/**
 * The template data without quarantined rules and apps; a `last-good` rule quarantine puts the last
 * good service record in place of the failing one.
 */
export function withFallbacks(data: TemplateData, quarantine: ReadonlyMap<string, QuarantinedApp>, good: ReadonlyMap<string, GoodRule>): TemplateData {
  const services: Record<string, ServiceRecord> = {};
  for (const [id, rec] of Object.entries(data.Services)) {
    const q = quarantine.get(id);
    if (!q) services[id] = rec;
    else if (q.level === 'rules' && q.fallback === 'last-good') {
      const last = good.get(id);
      if (last) services[id] = last.record;
    }
  }
  const apps = data.Apps.filter((a) => quarantine.get(a.Id)?.level !== 'app');
  return { Apps: apps, Services: services };
}

/**
 * When each quarantine began on this worker (wall clock, for people): kept while the app stays
 * quarantined at the same level for the same failing rule version; a new version starts again.
 */
export class QuarantineSince {
  private seen = new Map<string, number>();

  /**
   * Stamps `since` on each entry. `complete`: the list is every quarantine now (a plan's), so entries
   * not in it are forgotten; a partial list (the apps a refused reload blames) forgets nothing.
   */
  stamp(list: QuarantinedApp[], now: number, complete: boolean): QuarantinedApp[] {
    const next = complete ? new Map<string, number>() : this.seen;
    const out = list.map((q) => {
      const key = `${q.appId}\n${q.ruleVersion ?? q.level}`;
      const since = this.seen.get(key) ?? q.since ?? now;
      next.set(key, since);
      return q.since === since ? q : { ...q, since };
    });
    this.seen = next;
    return out;
  }
}
