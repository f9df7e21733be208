/**
 * Quarantine that outlives one reconcile. Validation failures are found again on every reconcile
 * (and remembered by config hash), but two failures cannot be found cheaply again:
 *
 * - a reload the master refused (`cannot bind socket`): finding it again means another failed reload;
 * - a validation that timed out (`path_beg -f /dev/zero`): finding it again costs
 *   HAProxy.CommandTimeoutMs on every reconcile, during which nothing else applies.
 *
 * So the worker remembers what it quarantined for them, per app, together with a key of what the
 * app was when it was quarantined: its service record for a rule, its data without tasks and slots
 * for an app (so task churn keeps it out, while a new deployment of it, or an edited rule, is tried
 * again).
 * A worker restart forgets it. QuarantineMemory keeps the map; the rest are pure helpers.
 */
import { jsonEqual } from '../common/core/app-equality.js';
import type { AppData, ServiceRecord, TemplateData } from '../common/core/model.js';
import type { Clock } from '../common/pacing.js';
import type { Origin } from '../common/core/render.js';
import type { QuarantinedApp } from './outcome.js';

/** What an app's remembered quarantine depends on: it is lifted when this changes. */
export function quarantineKey(level: 'rules' | 'app', app: AppData | undefined, service: ServiceRecord | undefined): string | null {
  if (!app) return null;
  if (level === 'rules') return service ? JSON.stringify(service) : null;
  // The app's listeners come from its Marathon data; its rule is not part of the key, so an app
  // whose rule is also quarantined keeps the same key.
  const { Tasks: _tasks, Slots: _slots, ...rest } = app;
  return JSON.stringify(rest);
}

/** The apps of the template data by id. */
export function appsById(data: TemplateData): Map<string, AppData> {
  return new Map(data.Apps.map((a) => [a.Id, a]));
}

/**
 * What changed between the last good config's template data and the candidate's: the apps whose
 * rule (service record) differs or is new, and the apps whose data (tasks and slots aside) differs
 * or that are new. Sorted by id. Null when there is no last good data to compare with (a config
 * found on disk at start): then nothing can be told apart.
 */
export function changedSinceLastGood(candidate: TemplateData, lastGood: TemplateData | null): { rules: string[]; apps: string[] } | null {
  if (!lastGood) return null;
  const before = appsById(lastGood);
  const rules: string[] = [];
  const apps: string[] = [];
  for (const app of candidate.Apps) {
    const id = app.Id;
    const service = Object.prototype.hasOwnProperty.call(candidate.Services, id) ? candidate.Services[id] : undefined;
    const was = Object.prototype.hasOwnProperty.call(lastGood.Services, id) ? lastGood.Services[id] : undefined;
    if (service && !jsonEqual(service, was)) rules.push(id);
    const old = before.get(id);
    if (!old || quarantineKey('app', app, undefined) !== quarantineKey('app', old, undefined)) apps.push(id);
  }
  const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return { rules: rules.sort(byId), apps: apps.sort(byId) };
}

/**
 * The same question when the last good config is known only as text (a config found on disk at
 * start): an app counts as changed when a line of its fragments (server lines aside: task churn) is
 * not in the running text. Its rule counts as changed when, in addition, the rule's text is nowhere
 * in the running text. Sorted by id.
 */
export function changedAgainstText(
  candidate: { text: string; origins: readonly Origin[] },
  data: TemplateData,
  runningText: string,
): { rules: string[]; apps: string[] } {
  const running = new Set(runningText.split('\n').map((l) => l.trim()));
  const lines = candidate.text.split('\n');
  const changed = new Set<string>();
  for (const o of candidate.origins) {
    if (changed.has(o.appId)) continue;
    for (let i = o.startLine; i <= o.endLine; i++) {
      const line = (lines[i - 1] ?? '').trim();
      if (line === '' || line.startsWith('server ')) continue;
      if (!running.has(line)) {
        changed.add(o.appId);
        break;
      }
    }
  }
  const apps = [...changed].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const rules = apps.filter((id) => {
    const acl = Object.prototype.hasOwnProperty.call(data.Services, id) ? data.Services[id].Acl : '';
    return typeof acl === 'string' && acl.trim() !== '' && !runningText.includes(acl.trim());
  });
  return { rules, apps };
}

/** A quarantine kept across reconciles; `until`: a reload quarantine is tried again then. */
interface Remembered {
  q: QuarantinedApp;
  /** quarantineKey of the app when it was quarantined: a change lifts the quarantine. */
  key: string;
  /** When a reload quarantine is tried again (monotonic ms, the reconciler's clock). */
  until?: number;
  /** Reload failures in a row blamed on the app with this key. */
  strikes?: number;
}

/** The quarantine kept across reconciles (refused reloads, validation timeouts), with the key that lifts it. */
export class QuarantineMemory {
  private readonly entries = new Map<string, Remembered>();

  /** `due(at)`: a reload quarantine is to be tried again at `at` (monotonic ms); the loop wakes then. */
  constructor(private readonly clock: Clock, private readonly due: (at: number) => void) {}

  /**
   * The remembered quarantine that still applies to `full`: entries whose app changed are dropped;
   * a reload quarantine whose hold ran out is tried again (kept, to count its strikes).
   */
  inForce(full: TemplateData): Map<string, QuarantinedApp> {
    const out = new Map<string, QuarantinedApp>();
    if (this.entries.size === 0) return out;
    const apps = appsById(full);
    const now = this.clock.now();
    let next = Infinity;
    for (const [id, r] of this.entries) {
      if (quarantineKey(r.q.level, apps.get(id), full.Services[id]) !== r.key) this.entries.delete(id);
      else if (r.until === undefined || now < r.until) {
        out.set(id, r.q);
        if (r.until !== undefined) next = Math.min(next, r.until);
      }
    }
    if (next < Infinity) this.due(next);
    return out;
  }

  /**
   * Keeps these quarantined apps out of later reconciles while they stay as they are in `data`.
   * With `hold` (reload failures: the cause may be outside the app, e.g. a port another process held
   * for a while), only for that long, doubling with every repeated failure up to 16 times.
   */
  remember(data: TemplateData, qs: readonly QuarantinedApp[], hold?: number): void {
    const apps = appsById(data);
    const now = this.clock.now();
    for (const q of qs) {
      const key = quarantineKey(q.level, apps.get(q.appId), data.Services[q.appId]);
      if (key === null) continue;
      if (hold === undefined) {
        this.entries.set(q.appId, { q, key });
        continue;
      }
      const before = this.entries.get(q.appId);
      const strikes = before && before.key === key && before.strikes !== undefined ? before.strikes + 1 : 1;
      const until = now + hold * 2 ** Math.min(strikes - 1, 4);
      this.entries.set(q.appId, { q, key, until, strikes });
      this.due(until);
    }
  }

  /** After a successful reload: reload quarantines tried again and now in force are forgotten (their strikes with them). */
  forgetRetried(inForce: readonly QuarantinedApp[]): void {
    for (const [id, r] of this.entries) if (r.until !== undefined && !inForce.some((q) => q.appId === id)) this.entries.delete(id);
  }
}
