/**
 * Which apps a failed config is blamed on, without I/O: the apps whose fragments a validation's or a
 * refused reload's alerts point at, and when the alerts name none (a validation timeout, a refusal
 * not attributable to an app) the rules, then the apps, changed since the last good config. The
 * planner (worker/planner.ts) calls these and stamps the result; docs/ARCHITECTURE.md (Quarantine)
 * describes the levels.
 */
import type { ValidationResult } from '../common/adapters/haproxy/commands.js';
import type { TemplateData } from '../common/core/model.js';
import { alertSummary, reloadCulprits } from '../common/core/reload-alerts.js';
import { appsAtLines, type Origin } from '../common/core/render.js';
import { escalate, rulesQuarantine, type GoodRule } from './last-good.js';
import type { QuarantinedApp, RunningModel } from './outcome.js';
import type { ApplyPlan } from './plan.js';
import { changedAgainstText, changedSinceLastGood } from './quarantine.js';

/**
 * After a validation that names lines: the apps whose fragments the errors point at lose their rules
 * first (to the last good rule, then the default one), then (if their fragment still breaks the
 * config) their place in it. Updates `quarantine`; false when it quarantined nothing more.
 */
export function quarantineCulprits(
  culprits: readonly string[],
  result: ValidationResult,
  origins: readonly Origin[],
  data: TemplateData,
  versionOf: (appId: string) => number | undefined,
  quarantine: Map<string, QuarantinedApp>,
  good: ReadonlyMap<string, GoodRule>,
): boolean {
  let progress = false;
  for (const appId of culprits) {
    const error = (result.limitReason ? `${result.limitReason}: ` : '') + alertsFor(result.output, origins, appId);
    const current = quarantine.get(appId);
    const next = current
      ? escalate(current, error)
      : Object.prototype.hasOwnProperty.call(data.Services, appId)
        ? rulesQuarantine(appId, error, { record: data.Services[appId], version: versionOf(appId) }, good)
        : { appId, level: 'app' as const, error };
    if (next) {
      quarantine.set(appId, next);
      progress = true;
    }
  }
  return progress;
}

/**
 * After a refused reload: the apps HAProxy's alerts blame (through the line origins). When the
 * alerts blame no app nor the edge and the same kind of failure `repeated`, the rules and apps
 * changed since the last good config instead. Empty: nothing to quarantine. Not yet stamped.
 */
export function reloadBlame(
  plan: ApplyPlan,
  previous: RunningModel | null,
  output: string,
  repeated: boolean,
  outputPath: string,
  goodRules: () => ReadonlyMap<string, GoodRule>,
): QuarantinedApp[] {
  const { culprits, edge } = reloadCulprits(output, outputPath, plan.text, plan.origins);
  const qs: QuarantinedApp[] = culprits.map((c) => ({ appId: c.appId, level: 'app' as const, error: `reload failed: ${c.alert}` }));
  if (qs.length > 0 || edge || !repeated || !previous) return qs;
  const changed = changedSince(previous, plan.data, plan);
  const error = (what: string) => `reload failed (not attributable to an app) with this ${what} changed since the last good config`;
  const apps = new Set(changed.apps);
  const good = goodRules();
  const rules = changed.rules
    .filter((id) => !apps.has(id))
    .map((appId) => rulesQuarantine(appId, error('rule'), { record: plan.data.Services[appId], version: plan.rulesApplied[appId] }, good));
  return [...changed.apps.map((appId) => ({ appId, level: 'app' as const, error: error('app') })), ...rules].sort((a, b) => (a.appId < b.appId ? -1 : 1));
}

/**
 * After a validation timeout (or the CPU-time limit) that names no line: the rules changed since the
 * last good config or, when none did, the apps changed since then.
 */
export function timeoutBlame(
  lastGood: Pick<RunningModel, 'data' | 'text'>,
  data: TemplateData,
  rendered: { text: string; origins: Origin[] },
  cause: string,
  versionOf: (appId: string) => number | undefined,
  good: ReadonlyMap<string, GoodRule>,
): QuarantinedApp[] {
  const changed = changedSince(lastGood, data, rendered);
  const error = (what: string) => `${cause} with this ${what} changed since the last good config`;
  if (changed.rules.length) {
    return changed.rules.map((appId) => rulesQuarantine(appId, error('rule'), { record: data.Services[appId], version: versionOf(appId) }, good));
  }
  return changed.apps.map((appId) => ({ appId, level: 'app' as const, error: error('app') }));
}

/**
 * What changed between the config in force and a candidate: by template data, or by text when the
 * config in force was found on disk at start (see worker/quarantine.ts).
 */
function changedSince(lastGood: Pick<RunningModel, 'data' | 'text'>, data: TemplateData, rendered: { text: string; origins: Origin[] }): { rules: string[]; apps: string[] } {
  return changedSinceLastGood(data, lastGood.data) ?? changedAgainstText(rendered, data, lastGood.text);
}

/** The validator's alert lines that point into one app's fragments, as one line. */
function alertsFor(output: string, origins: readonly Origin[], appId: string): string {
  const mine = output
    .split('\n')
    .filter((line) => {
      if (!line.includes('[ALERT]')) return false;
      const lines = [...line.matchAll(/\[[^\]\s]+:(\d+)\]/g)].map((m) => Number(m[1]));
      return appsAtLines(origins, lines).includes(appId);
    })
    .join('\n');
  return alertSummary(mine || output, 2).slice(0, 500);
}
