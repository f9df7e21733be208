/**
 * `GET /api/workers`: the fleet, each worker with whether it has applied the current snapshot and
 * rules, whether it still reports (`state`), and the workers gone within the retention (api/fleet.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { ControlStore } from '../../common/adapters/zookeeper/snapshot.js';
import type { WorkerStatus } from '../../common/adapters/zookeeper/registrations.js';
import type { FleetView } from '../fleet.js';
import type { RulesView } from '../rules-cache.js';

export interface WorkersDeps {
  control: Pick<ControlStore, 'snapshotVersion'>;
  fleet: { read(): Promise<FleetView> };
  rulesCache: { get(): Promise<Pick<RulesView, 'versions'>> };
  /** Echoed in the answer so clients can say what stale and gone mean. */
  staleAfterMs: number;
  goneRetentionMs: number;
}

export async function workersRoutes(app: FastifyInstance, deps: WorkersDeps): Promise<void> {
  const { control, fleet, rulesCache } = deps;
  app.get('/api/workers', async (_req, reply) => {
    const [view, snapshotVersion, rules] = await Promise.all([fleet.read(), control.snapshotVersion(), rulesCache.get()]);
    const out = view.present
      .filter((p): p is typeof p & { status: WorkerStatus } => p.status !== null)
      .map(({ status: w, state, lastSeen }) => {
        const quarantined = new Set(w.quarantined ?? []);
        const applied = w.rulesApplied ?? {};
        const ids = new Set([...Object.keys(rules.versions), ...Object.keys(applied)]);
        const staleRules = [...ids].filter((id) => !quarantined.has(id) && applied[id] !== rules.versions[id]).sort();
        const snapshotUpToDate = w.snapshotVersion === snapshotVersion;
        return { ...w, state, lastSeen, snapshotUpToDate, rulesUpToDate: staleRules.length === 0, staleRules, upToDate: snapshotUpToDate && staleRules.length === 0 };
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const gone = [...view.gone].sort((a, b) => b.lastSeen - a.lastSeen || (a.name < b.name ? -1 : 1));
    return reply.header('Cache-Control', 'no-cache').send({
      snapshotVersion,
      rules: Object.keys(rules.versions).length,
      workers: out,
      gone,
      counts: view.counts,
      staleAfterMs: deps.staleAfterMs,
      goneRetentionMs: deps.goneRetentionMs,
    });
  });
}
