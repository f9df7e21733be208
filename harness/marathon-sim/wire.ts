/**
 * Pure functions from the simulator's records to the JSON of Marathon's read endpoints: apps with
 * their embedded parts, tasks and counts, and the `embed`, `label` and `id` query parameters. No
 * clock, no randomness, no I/O: the same records always render the same bytes.
 */
import type { AppRecord, Counts, TaskRecord } from './records.js';
import { asArray, type JsonObject } from './types.js';

/** What `embed=` asks for (Marathon's AppInfo.Embed). */
export type Embed = 'tasks' | 'deployments' | 'readiness' | 'counts' | 'lastTaskFailure' | 'taskStats';

/**
 * Resolves `embed` query values. Marathon accepts the `app.`, `apps.` and `group.apps.` prefixes and
 * ignores unknown values; `tasks` also implies `deployments`, `failures` means tasks + lastTaskFailure
 * (InfoEmbedResolver, fact 8).
 */
export function parseEmbed(values: readonly string[]): Set<Embed> {
  const out = new Set<Embed>();
  for (const raw of values) {
    const m = /^(?:group\.apps|apps|app)\.(.+)$/.exec(raw.trim());
    if (!m) continue;
    switch (m[1]) {
      case 'tasks':
        out.add('tasks').add('deployments');
        break;
      case 'failures':
        out.add('tasks').add('lastTaskFailure').add('deployments');
        break;
      case 'deployments':
      case 'readiness':
      case 'counts':
      case 'lastTaskFailure':
      case 'taskStats':
        out.add(m[1]);
        break;
      default:
        break;
    }
  }
  return out;
}

/** Counters the way Marathon's TaskCounts computes them. */
export function countTasks(tasks: readonly TaskRecord[]): Counts {
  const counts: Counts = { tasksStaged: 0, tasksRunning: 0, tasksHealthy: 0, tasksUnhealthy: 0 };
  for (const t of tasks) {
    if (t.state === 'TASK_STAGING' || t.state === 'TASK_STARTING') counts.tasksStaged++;
    if (t.state === 'TASK_RUNNING') counts.tasksRunning++;
    if (t.health === true) counts.tasksHealthy++;
    if (t.health === false) counts.tasksUnhealthy++;
  }
  return counts;
}

/** Task JSON for `/v2/apps` (no servicePorts) or `/v2/tasks` (with servicePorts appended). */
export function renderTask(task: TaskRecord, servicePorts?: number[]): JsonObject {
  return servicePorts ? { ...task.json, servicePorts } : { ...task.json };
}

/** Readiness results for embed=apps.readiness: tasks of an app with readiness checks that have an outcome. */
export function readinessResults(app: AppRecord): JsonObject[] {
  const checks = asArray(app.def['readinessChecks']);
  if (!checks || checks.length === 0) return [];
  const name = String(checks[0]?.['name'] ?? 'readinessCheck');
  return app.tasks
    .filter((t) => t.ready !== undefined)
    .map((t) => ({
      name,
      taskId: t.id,
      ready: t.ready,
      lastResponse: t.ready
        ? { status: 200, contentType: 'text/plain', body: 'ready' }
        : { status: 503, contentType: 'text/plain', body: 'not ready' },
    }));
}

/** One app of `/v2/apps` or `/v2/apps/{id}` with the requested embedded parts, in Marathon's key order. */
export function renderApp(app: AppRecord, embed: ReadonlySet<Embed>, deploymentIds: readonly string[]): JsonObject {
  const out: JsonObject = { ...app.def };
  if (embed.has('counts')) Object.assign(out, countTasks(app.tasks), app.countsOverride ?? {});
  if (embed.has('deployments')) out['deployments'] = deploymentIds.map((id) => ({ id }));
  if (embed.has('readiness')) out['readinessCheckResults'] = readinessResults(app);
  if (embed.has('tasks')) out['tasks'] = app.tasks.map((t) => renderTask(t));
  if (embed.has('lastTaskFailure') && app.lastTaskFailure !== undefined) out['lastTaskFailure'] = app.lastTaskFailure;
  return out;
}

/**
 * Marathon's label selector (`?label=`): comma-separated terms, all must hold: `key`, `key==v`,
 * `key!=v`, `key in (a, b)`, `key notin (a, b)`.
 */
export function matchesLabelSelector(labels: Record<string, unknown>, selector: string): boolean {
  const terms = selector.match(/[^,(]+(?:\([^)]*\))?/g) ?? [];
  return terms.every((raw) => {
    const term = raw.trim();
    if (term === '') return true;
    let m = /^(.+?)\s*(==|!=)\s*(.*)$/.exec(term);
    if (m) {
      const value = labels[(m[1] as string).trim()];
      return m[2] === '==' ? value === (m[3] as string).trim() : value !== (m[3] as string).trim();
    }
    m = /^(.+?)\s+(in|notin)\s*\((.*)\)$/.exec(term);
    if (m) {
      const value = labels[(m[1] as string).trim()];
      const set = (m[3] as string).split(',').map((s) => s.trim());
      const inSet = typeof value === 'string' && set.includes(value);
      return m[2] === 'in' ? inSet : !inSet;
    }
    return Object.prototype.hasOwnProperty.call(labels, term);
  });
}

/** Marathon's `?id=` filter on /v2/apps: case-insensitive substring of the app id. */
export function matchesIdFilter(appId: string, filter: string): boolean {
  return appId.toLowerCase().includes(filter.toLowerCase());
}
