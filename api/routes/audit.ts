/**
 * `GET /api/audit`: the audit trail of rule writes (api/audit.ts), newest first, filtered and paged;
 * `GET /api/audit/:id`: one entry. Both tell who did what from where, so they need a credential once
 * any is configured. A revert is not a route here: it is a normal rule write carrying
 * `Bamboo-Revert-Of` (api/routes/services.ts), so it passes every check a write passes.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../common/core/errors.js';
import { AUDIT_ID, type AuditLog, type AuditQuery } from '../audit.js';
import type { Guards } from '../guards.js';
import { idFromParam } from '../records.js';

export interface AuditDeps {
  audit: Pick<AuditLog, 'list' | 'get'>;
  guards: Pick<Guards, 'authRead'>;
}

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;

const QUERY_SCHEMA = {
  type: 'object',
  properties: {
    app: { type: 'string', maxLength: 4096 },
    credential: { type: 'string', maxLength: 64 },
    since: { type: 'string', maxLength: 40 },
    until: { type: 'string', maxLength: 40 },
    limit: { type: 'string', maxLength: 10 },
    cursor: { type: 'string', maxLength: 120 },
  },
} as const;

/** `since`/`until`: ms since the epoch, or an ISO 8601 date-time (`2026-12-07T12:00:00Z`). */
function instant(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const t = /^\d{1,15}$/.test(raw) ? Number(raw) : /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN;
  if (!Number.isFinite(t)) throw new ApiError('BAMBOO_INVALID_PARAMETER', `${name} must be milliseconds since the epoch or an ISO 8601 time like 2026-12-07T12:00:00Z, got ${JSON.stringify(raw.slice(0, 40))}`);
  return t;
}

export function parseAuditQuery(q: Record<string, string | undefined>): AuditQuery {
  const out: AuditQuery = { limit: DEFAULT_LIMIT };
  if (q.app) out.app = idFromParam(q.app);
  if (q.credential) out.credential = q.credential;
  out.since = instant('since', q.since);
  out.until = instant('until', q.until);
  if (q.limit !== undefined && q.limit !== '') {
    const n = /^\d+$/.test(q.limit) ? Number(q.limit) : NaN;
    if (!(n >= 1 && n <= MAX_LIMIT)) throw new ApiError('BAMBOO_INVALID_PARAMETER', `limit must be a whole number from 1 to ${MAX_LIMIT}, got ${JSON.stringify(q.limit)}`);
    out.limit = n;
  }
  if (q.cursor !== undefined && q.cursor !== '') {
    if (!AUDIT_ID.test(q.cursor)) throw new ApiError('BAMBOO_INVALID_PARAMETER', 'cursor must be the "next" value of the previous page');
    out.cursor = q.cursor;
  }
  return out;
}

export async function auditRoutes(app: FastifyInstance, deps: AuditDeps): Promise<void> {
  const { audit, guards } = deps;
  app.get('/api/audit', { onRequest: guards.authRead, schema: { querystring: QUERY_SCHEMA } }, async (req, reply) => {
    const page = await audit.list(parseAuditQuery(req.query as Record<string, string | undefined>));
    return reply.header('Cache-Control', 'no-store').send(page);
  });

  // A wildcard, not `:id`: the edge's 405s know routes by path prefix (api/app.ts).
  app.get('/api/audit/*', { onRequest: guards.authRead, schema: { params: { type: 'object', properties: { '*': { type: 'string', maxLength: 120 } } } } }, async (req, reply) => {
    const id = (req.params as Record<string, string>)['*'];
    const entry = AUDIT_ID.test(id) ? await audit.get(id) : null;
    if (!entry) throw new ApiError('BAMBOO_AUDIT_NOT_FOUND', `no audit entry ${JSON.stringify(id.slice(0, 120))} (unknown, or pruned by Audit.MaxEntries / Audit.MaxAgeHours); list them with GET /api/audit`);
    return reply.header('Cache-Control', 'no-store').send(entry);
  });
}
