/**
 * `GET /api/state`: the template data HAProxy is rendered from, with env and label values redacted
 * unless a valid credential asks. Renderings are cached per snapshot, rules and second.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../common/core/errors.js';
import type { Logger } from '../../common/log.js';
import type { TemplateData } from '../../common/core/model.js';
import { buildTemplateData } from '../../common/core/template-data.js';
import type { AllowedDomains } from '../../common/core/labels.js';
import { hostOwners } from '../../common/core/routing.js';
import { ANONYMOUS, type Authenticator } from '../edge.js';
import type { Guards } from '../guards.js';
import { FLAG, isFlag } from '../records.js';
import type { RulesCache } from '../rules-cache.js';
import type { SnapshotCache } from '../snapshot-cache.js';

const REDACTED = '***';

export interface StateDeps {
  snapshots: Pick<SnapshotCache, 'current'>;
  rulesCache: Pick<RulesCache, 'get'>;
  auth: Pick<Authenticator, 'enabled'>;
  guards: Pick<Guards, 'requireCredential'>;
  log: Logger;
  /** Clock for template data (health grace periods). */
  now: () => number;
  /** Labels.AllowedDomains, parsed: the same as the workers', so the routing shown is theirs. */
  allowedDomains?: AllowedDomains;
  /** Slot sizing as the workers' (HAProxy.ServerSlotHeadroom, HAProxy.DynamicServers with the Runtime API on). */
  slots?: { headroomPercent: number; dynamic: boolean };
}

export async function stateRoutes(app: FastifyInstance, deps: StateDeps): Promise<void> {
  const { snapshots, rulesCache, auth, guards, log, now, allowedDomains, slots } = deps;
  let stateCache: { key: string; full: string; redacted: string } | null = null;
  /** Host owners of the last build: they keep their hosts, as on the workers (docs/labels.md). */
  let owners: Map<string, string> | undefined;
  app.get('/api/state', { schema: { querystring: { type: 'object', properties: { unredacted: FLAG } } } }, async (req, reply) => {
    const q = req.query as { unredacted?: string };
    // Values are shown only to a valid credential: ?unredacted=1 without one is a 401 (403 when none
    // is configured at all), a wrong token is a 401, not a silent redaction (docs/api.md).
    if (isFlag(q.unredacted) || (auth.enabled && req.headers.authorization !== undefined)) guards.requireCredential(req);
    const full = req.credential !== ANONYMOUS;
    const snap = snapshots.current();
    if (!snap) {
      throw new ApiError('BAMBOO_SNAPSHOT_UNAVAILABLE', 'no Marathon snapshot is stored yet; GET /status shows the last fetch from Marathon and its error');
    }
    const view = await rulesCache.get();
    const t = now();
    // Health grace periods depend on the clock: the cached rendering lives one second at most.
    const key = `${snap.version}|${snap.hash}|${view.stamp}|${Math.floor(t / 1000)}`;
    if (!stateCache || stateCache.key !== key) {
      const { data, warnings } = buildTemplateData({ apps: snap.apps, services: view.services, now: t, slots, routing: { allowedDomains, incumbents: owners } });
      owners = hostOwners(data.Apps);
      if (warnings.length > 0) log.debug({ warnings: warnings.length }, 'template data warnings');
      stateCache = { key, full: JSON.stringify(data), redacted: JSON.stringify(redact(data)) };
    }
    return reply
      .header('X-Bamboo-Snapshot-Version', String(snap.version))
      .header('X-Bamboo-Redacted', full ? 'false' : 'true')
      .header('Cache-Control', 'no-cache')
      .type('application/json; charset=utf-8')
      .send(full ? stateCache.full : stateCache.redacted);
  });
}

function redact(data: TemplateData): TemplateData {
  return {
    ...data,
    Apps: data.Apps.map((a) => ({
      ...a,
      Env: Object.fromEntries(Object.keys(a.Env).map((k) => [k, REDACTED])),
      Labels: Object.fromEntries(Object.keys(a.Labels).map((k) => [k, REDACTED])),
    })),
  };
}
