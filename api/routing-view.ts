/**
 * Each app's routing as the workers decide it (common/core/routing.ts), for `GET /api/services?routing=1`:
 * built from this copy's snapshot and rules with the same Labels.AllowedDomains, cached per snapshot,
 * rules and second (health does not matter here, but the build is shared code with `/api/state`).
 */
import type { AllowedDomains } from '../common/core/labels.js';
import { hostOwners, type AppRouting } from '../common/core/routing.js';
import { buildTemplateData } from '../common/core/template-data.js';
import { TemplateDataMemo } from '../common/core/template-memo.js';
import type { RulesView } from './rules-cache.js';
import type { SnapshotCache } from './snapshot-cache.js';

export interface RoutingView {
  /** App id -> its routing; null when no snapshot is stored yet. */
  get(): Promise<ReadonlyMap<string, AppRouting> | null>;
}

export function routingView(deps: {
  snapshots: Pick<SnapshotCache, 'current'>;
  rulesCache: { get(): Promise<Pick<RulesView, 'services' | 'stamp'>> };
  allowedDomains: AllowedDomains;
  now: () => number;
}): RoutingView {
  const memo = new TemplateDataMemo();
  let cache: { key: string; routing: Map<string, AppRouting> } | null = null;
  return {
    async get() {
      const snap = deps.snapshots.current();
      if (!snap) return null;
      const view = await deps.rulesCache.get();
      const key = `${snap.version}|${snap.hash}|${view.stamp}`;
      if (cache?.key !== key) {
        // The previous build's hosts keep their owners, as the workers keep those of the config in force.
        const incumbents = cache ? hostOwners([...cache.routing].map(([Id, Routing]) => ({ Id, Routing }))) : undefined;
        const { data } = buildTemplateData({ apps: snap.apps, services: view.services, now: deps.now(), memo, routing: { allowedDomains: deps.allowedDomains, incumbents } });
        cache = { key, routing: new Map(data.Apps.map((a) => [a.Id, a.Routing])) };
      }
      return cache.routing;
    },
  };
}
