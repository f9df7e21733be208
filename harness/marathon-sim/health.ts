/**
 * Health check results as Marathon reports them on a task: the aggregate of a task's results, which
 * checks Marathon runs itself, and the results after one more check outcome. Pure: the state passes
 * the timestamp in.
 */
import { asArray, type JsonObject } from './types.js';
import type { Era } from './version.js';

/** Aggregate health of wire health check results: all alive, any dead, or none. */
export function healthOfResults(results: unknown): boolean | undefined {
  const list = asArray(results);
  if (!list || list.length === 0) return undefined;
  return list.every((r) => r['alive'] === true);
}

/** Health check protocols Marathon itself runs; 1.4+ still reports them with health_status_changed_event (fact 4). */
export function isMarathonSideCheck(check: JsonObject): boolean {
  return ['HTTP', 'HTTPS', 'TCP'].includes(String(check['protocol'] ?? 'HTTP'));
}

/**
 * The task's `healthCheckResults` after one more check outcome, one entry per health check, keeping
 * first/last success and failure times from the previous results (key order of the 1.5 captures;
 * `instanceId` from 1.4, `taskId` before).
 */
export function nextHealthResults(
  checks: readonly JsonObject[],
  previous: unknown,
  alive: boolean,
  ids: { taskId: string; instanceId: string },
  era: Era,
  now: string,
  cause: string,
): JsonObject[] {
  const prev = Array.isArray(previous) ? (previous as JsonObject[]) : [];
  return checks.map((_, i) => {
    const p = prev[i] ?? {};
    const entry: JsonObject = alive
      ? {
          alive: true,
          consecutiveFailures: 0,
          firstSuccess: p['firstSuccess'] ?? now,
          lastFailure: p['lastFailure'] ?? null,
          lastSuccess: now,
        }
      : {
          alive: false,
          consecutiveFailures: Number(p['consecutiveFailures'] ?? 0) + 1,
          firstSuccess: p['firstSuccess'] ?? null,
          lastFailure: now,
          lastSuccess: p['lastSuccess'] ?? null,
        };
    if (era.lastFailureCause) entry['lastFailureCause'] = alive ? (p['lastFailureCause'] ?? null) : cause;
    if (era.instances) entry['instanceId'] = ids.instanceId;
    else entry['taskId'] = ids.taskId;
    return entry;
  });
}
