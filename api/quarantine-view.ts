/**
 * Where the workers quarantine one app: the `quarantine` field `GET /api/services/:id` adds next to
 * the record, read from the workers' status records (docs/api.md).
 */
import type { WorkerQuarantine, WorkerStatus } from '../common/adapters/zookeeper/registrations.js';

/** One worker's quarantine of the app: its name and what its status record says. */
export interface AppQuarantine extends Omit<WorkerQuarantine, 'appId'> {
  worker: string;
}

/**
 * The workers that quarantine `appId`, sorted by worker name. A worker whose record names the app
 * without details (an older worker, or beyond the record's bound) is listed with what is known.
 */
export function quarantineOf(appId: string, workers: readonly WorkerStatus[]): AppQuarantine[] {
  const out: AppQuarantine[] = [];
  for (const w of workers) {
    if (!(w.quarantined ?? []).includes(appId)) continue;
    const q = (w.quarantine ?? []).find((x) => x.appId === appId);
    const { appId: _id, ...rest } = q ?? { appId, level: 'rules' as const, error: 'quarantined (no details in this worker\'s status record)' };
    out.push({ worker: w.name, ...rest });
  }
  return out.sort((a, b) => (a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : 0));
}

/**
 * `read` shared by the calls within `ttlMs` (monotonic) of the one that started it, one read in
 * flight: so reading one record (deploy pipelines read theirs on every deploy) costs at most one
 * read of every worker's record per `ttlMs`, not one per request. A failed read is not kept.
 */
export function sharedFor<T>(ttlMs: number, read: () => Promise<T>, now: () => number = () => performance.now()): () => Promise<T> {
  let kept: { at: number; value: Promise<T> } | null = null;
  return () => {
    const t = now();
    if (kept && t - kept.at < ttlMs) return kept.value;
    const value = read();
    const entry = { at: t, value };
    kept = entry;
    value.catch(() => {
      if (kept === entry) kept = null;
    });
    return value;
  };
}
