/**
 * What a rules-level quarantine routes by. An app whose rule fails on this worker keeps the service
 * record it had in the last config this worker applied (its "last good rule"), so the hostname it
 * was routed by keeps answering; only an app that never had a good rule here (or whose last good
 * rule fails too, or is the failing one: a template or HAProxy that changed) falls back to the
 * template's default rule. The planner decides, the template data carries the result; this module
 * holds the pure parts and the `since` stamps (when each quarantine began on this worker).
 */
import { readFileSync } from 'node:fs';
import { jsonEqual } from '../common/core/app-equality.js';
import type { ServiceRecord, TemplateData } from '../common/core/model.js';
import { buildTemplateData } from '../common/core/template-data.js';
import type { QuarantinedApp, RunningModel } from './outcome.js';

/** A service record in force on this worker, with its rule (znode) version. */
export interface GoodRule {
  record: ServiceRecord;
  version: number;
}

/**
 * The service records of the config this worker runs, by app id: the running model's template data
 * (a substituted last good rule included, so it stays the last good one). Null when the worker does
 * not know them (no model yet, or a config found on disk at start): see `parseRulesFile`.
 */
export function rulesInForce(running: RunningModel | null): Map<string, GoodRule> | null {
  if (!running?.data) return null;
  const out = new Map<string, GoodRule>();
  for (const [id, record] of Object.entries(running.data.Services)) {
    const version = running.rulesApplied[id];
    if (typeof version === 'number') out.set(id, { record, version });
  }
  return out;
}

/**
 * The rules in force as the text kept beside the last good config (`<OutputPath>.last-good-rules`),
 * so a restarted worker still knows each app's last good rule: `{"v":1,"rules":{id:{version,record}}}`.
 */
export function rulesFileText(data: TemplateData, rulesApplied: Record<string, number>): string {
  const rules: Record<string, GoodRule> = {};
  for (const id of Object.keys(data.Services).sort()) {
    const version = rulesApplied[id];
    if (typeof version === 'number') rules[id] = { version, record: data.Services[id] };
  }
  return `${JSON.stringify({ v: 1, rules })}\n`;
}

/**
 * Reads what `rulesFileText` wrote. The records pass the same checks as the desired state's
 * (`clean`: template data's service validation), since they reach haproxy.cfg again; anything
 * malformed is left out (the app then falls back to the default rule). Never throws.
 */
export function parseRulesFile(text: string, clean: (records: Record<string, unknown>) => Record<string, ServiceRecord>): Map<string, GoodRule> {
  const out = new Map<string, GoodRule>();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return out;
  }
  const rules = (parsed as { v?: unknown; rules?: unknown } | null)?.rules;
  if ((parsed as { v?: unknown }).v !== 1 || typeof rules !== 'object' || rules === null) return out;
  const records: Record<string, unknown> = {};
  const versions = new Map<string, number>();
  for (const [id, entry] of Object.entries(rules as Record<string, unknown>)) {
    const e = entry as { version?: unknown; record?: unknown } | null;
    if (!e || !Number.isInteger(e.version) || (e.version as number) < 0) continue;
    records[id] = e.record;
    versions.set(id, e.version as number);
  }
  for (const [id, record] of Object.entries(clean(records))) {
    const version = versions.get(id);
    if (version !== undefined) out.set(id, { record, version });
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
 * The rules kept beside the last good config at `path` (ConfigFiles.lastGoodRulesPath), checked as
 * the desired state's records are; empty when the file is missing or unreadable.
 */
export function readRulesAtStart(path: string, now: number): Map<string, GoodRule> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return new Map();
  }
  return parseRulesFile(text, (records) => buildTemplateData({ apps: [], services: records as Record<string, ServiceRecord>, now }).data.Services);
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
