/** `GET /api/workers`: the fleet, each worker with whether it has applied the current snapshot and rules. */
import type { FastifyInstance } from 'fastify';
import type { ControlStore, WorkerStatus } from '../../common/adapters/zookeeper/snapshot.js';
import type { RulesView } from '../rules-cache.js';

export interface WorkersDeps {
  control: Pick<ControlStore, 'workers' | 'snapshotVersion'>;
  rulesCache: { get(): Promise<Pick<RulesView, 'versions'>> };
}

export async function workersRoutes(app: FastifyInstance, deps: WorkersDeps): Promise<void> {
  const { control, rulesCache } = deps;
  app.get('/api/workers', async (_req, reply) => {
    const [workers, snapshotVersion, view] = await Promise.all([control.workers(), control.snapshotVersion(), rulesCache.get()]);
    const out = workers
      .map((w: WorkerStatus) => {
        const quarantined = new Set(w.quarantined ?? []);
        const applied = w.rulesApplied ?? {};
        const ids = new Set([...Object.keys(view.versions), ...Object.keys(applied)]);
        const staleRules = [...ids].filter((id) => !quarantined.has(id) && applied[id] !== view.versions[id]).sort();
        const snapshotUpToDate = w.snapshotVersion === snapshotVersion;
        return { ...w, snapshotUpToDate, rulesUpToDate: staleRules.length === 0, staleRules, upToDate: snapshotUpToDate && staleRules.length === 0 };
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return reply.header('Cache-Control', 'no-cache').send({ snapshotVersion, rules: Object.keys(view.versions).length, workers: out });
  });
}
