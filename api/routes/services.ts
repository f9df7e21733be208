/**
 * `/api/services`: the service records (an app's ACL rule and Config). Reads come from the rules
 * cache; every write passes HAProxy's rule check, then ZooKeeper's version check, then is published.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HintPublisher } from '../../common/adapters/zeromq/bus.js';
import { ApiError } from '../../common/core/errors.js';
import type { Logger } from '../../common/log.js';
import type { Metrics } from '../../common/adapters/statsd/metrics.js';
import type { ServiceRecord } from '../../common/core/model.js';
import { RuleConflictError, RuleNotFoundError, type RuleStore, type StoredRecord } from '../../common/adapters/zookeeper/rules.js';
import type { WorkerStatus } from '../../common/adapters/zookeeper/registrations.js';
import { writeOrigin, type AuditLog } from '../audit.js';
import { type ClientAddress } from '../client-address.js';
import type { Guards } from '../guards.js';
import { quarantineOf, type AppQuarantine } from '../quarantine-view.js';
import { FLAG, ID_PARAMS_SCHEMA, SERVICE_BODY_SCHEMA, etag, idFromParam, isFlag, parseIfMatch, recordFromBody, unknownFields, type ServiceBody } from '../records.js';
import type { RuleChecker } from '../rule-check.js';
import type { RoutingView } from '../routing-view.js';
import type { RulesCache } from '../rules-cache.js';

export interface ServicesDeps {
  rules: RuleStore;
  rulesCache: Pick<RulesCache, 'get' | 'invalidate'>;
  ruleCheck: Pick<RuleChecker, 'assertAccepted'>;
  publisher: Pick<HintPublisher, 'publish'>;
  metrics: Pick<Metrics, 'ruleChanged' | 'published'>;
  guards: Pick<Guards, 'authWrite'>;
  /** Every write carries its audit entry in its own transaction (api/audit.ts). */
  audit: Pick<AuditLog, 'get' | 'note' | 'ensure' | 'written'>;
  address: Pick<ClientAddress, 'of'>;
  log: Logger;
  /** The workers' status records, for the quarantine `GET /api/services/:id` shows (absent: not shown). */
  workers?: () => Promise<WorkerStatus[]>;
  /** Each app's routing, for `?routing=1` (absent: the flag adds nothing). */
  routing?: RoutingView;
}

export async function servicesRoutes(app: FastifyInstance, deps: ServicesDeps): Promise<void> {
  const { rules, rulesCache, ruleCheck, publisher, metrics, guards, audit, address, log } = deps;
  // Runs before schema validation, so an empty body gets its own clear answer.
  const requireBody = async (req: FastifyRequest) => {
    if (req.body === undefined || req.body === null) {
      throw new ApiError('BAMBOO_BAD_JSON', 'the request body is empty; send a JSON object like {"id":"/group/app","acl":"path_beg -i /app"}');
    }
  };

  async function afterWrite(appId: string, version: number | null, action: string, credential: string): Promise<void> {
    rulesCache.invalidate();
    audit.written();
    metrics.ruleChanged(credential, action);
    log.info({ appId, version, action, credential }, 'rule changed');
    await publisher.publish('rules', { appId });
    metrics.published('rules');
  }

  function sendRecord(reply: FastifyReply, stored: StoredRecord, status: number, quarantine: AppQuarantine[] = []): FastifyReply {
    // Bamboo's record as it is; `quarantine` only when a worker quarantines the app.
    const body = quarantine.length > 0 ? { ...stored.record, quarantine } : stored.record;
    return reply.code(status).header('ETag', etag(stored.version)).type('application/json; charset=utf-8').send(JSON.stringify(body));
  }

  function conflict(err: RuleConflictError, code: 'BAMBOO_SERVICE_EXISTS' | 'BAMBOO_VERSION_CONFLICT', message: string): ApiError {
    return new ApiError(code, message, { current: err.current?.record ?? null, version: err.current?.version ?? null }, err.current ? { ETag: etag(err.current.version) } : {});
  }

  app.get('/api/services', { schema: { querystring: { type: 'object', properties: { versions: FLAG, routing: FLAG } } } }, async (req, reply) => {
    const q = req.query as { versions?: string; routing?: string };
    const view = await rulesCache.get();
    if (isFlag(q.routing) && deps.routing) {
      // Opt-in, so Bamboo's shape stays as it was for every other client (docs/api.md).
      const routing = await deps.routing.get();
      const body: Record<string, unknown> = {};
      for (const [id, stored] of view.records) {
        const r = routing?.get(id);
        body[id] = {
          ...stored.record,
          ...(isFlag(q.versions) ? { Version: stored.version } : {}),
          Routing: r ? { source: r.source, conflicts: r.conflicts, problems: r.problems } : null,
        };
      }
      return reply.type('application/json; charset=utf-8').send(JSON.stringify(body));
    }
    return reply.type('application/json; charset=utf-8').send(isFlag(q.versions) ? view.jsonWithVersions : view.json);
  });

  app.get('/api/services/*', { schema: { params: ID_PARAMS_SCHEMA } }, async (req, reply) => {
    const id = idFromParam((req.params as Record<string, string>)['*']);
    const stored = await rules.get(id);
    if (!stored) throw new ApiError('BAMBOO_SERVICE_NOT_FOUND', `no service record for ${id}; create it with POST /api/services or PUT /api/services/${id}`);
    // The record is the answer; the workers' quarantine is shown when it can be read.
    const workers = await Promise.resolve(deps.workers).then((read) => read?.()).catch((err: unknown) => {
      log.warn({ err, appId: id }, 'worker status records unreadable; answering the record without its quarantine');
      return [];
    });
    return sendRecord(reply, stored, 200, quarantineOf(id, workers ?? []));
  });

  /**
   * Creates or replaces a record, as POST and PUT both do (Bamboo's POST set a rule whether or not
   * the app had one). `If-None-Match: *` makes it create-only, `If-Match` replace-only at that version
   * (`*`: any version); a conflict is a 409 with the current value.
   */
  async function writeRecord(req: FastifyRequest, reply: FastifyReply, record: ServiceRecord): Promise<FastifyReply> {
    const id = record.Id;
    const ifMatch = parseIfMatch(req.headers['if-match'] as string | undefined);
    const ifNoneMatch = (req.headers['if-none-match'] as string | undefined)?.trim();
    const origin = await writeOrigin(req, audit, address, id, record);
    // Acknowledged means HAProxy accepts it (DESIGN.md invariant 7): a rejected rule is never stored.
    // A rule routing by its Config alone has no ACL to check; its routing keys were checked already.
    if (record.Acl !== '') await ruleCheck.assertAccepted(record.Acl);
    await audit.ensure();
    const note = audit.note(origin);
    let stored: StoredRecord;
    let created: boolean;
    try {
      if (ifNoneMatch === '*') {
        stored = await rules.create(record, note);
        created = true;
      } else if (ifMatch === 'any') {
        const current = await rules.get(id);
        if (!current) throw new RuleConflictError(`no rule for ${id}`, null);
        ({ stored, created } = await rules.put(record, current.version, note));
      } else {
        ({ stored, created } = await rules.put(record, ifMatch, note));
      }
    } catch (err) {
      if (err instanceof RuleConflictError) {
        if (ifNoneMatch === '*') throw conflict(err, 'BAMBOO_SERVICE_EXISTS', `a service record for ${id} exists already (If-None-Match: *); replace it with If-Match: "${err.current?.version ?? 0}" or without a condition`);
        throw conflict(
          err,
          'BAMBOO_VERSION_CONFLICT',
          err.current
            ? `the service record for ${id} is at version ${err.current.version}, not the one in If-Match; read it again (its current value is in "current"), merge, and retry with If-Match: "${err.current.version}"`
            : `there is no service record for ${id} any more; create it without If-Match`,
        );
      }
      throw err;
    }
    await afterWrite(id, stored.version, created ? 'created' : 'replaced', req.credential);
    if (created) reply.header('Location', `/api/services/${id}`);
    const ignored = unknownFields(req.body as ServiceBody | undefined);
    // RFC 7234's miscellaneous persistent warning: the write happened, but these fields were not read.
    if (ignored.length > 0) reply.header('Warning', `299 bamboo "unknown fields ignored: ${ignored.map((k) => k.slice(0, 40).replace(/[^\x20-\x7e]|"/g, '?')).join(', ')}"`);
    return sendRecord(reply, stored, created ? 201 : 200);
  }

  app.post('/api/services', { onRequest: guards.authWrite, preValidation: requireBody, schema: { body: SERVICE_BODY_SCHEMA } }, async (req, reply) => {
    return writeRecord(req, reply, recordFromBody(req.body as ServiceBody | undefined, null));
  });

  app.put('/api/services/*', { onRequest: guards.authWrite, preValidation: requireBody, schema: { params: ID_PARAMS_SCHEMA, body: SERVICE_BODY_SCHEMA } }, async (req, reply) => {
    const id = idFromParam((req.params as Record<string, string>)['*']);
    return writeRecord(req, reply, recordFromBody(req.body as ServiceBody | undefined, id));
  });

  app.delete('/api/services/*', { onRequest: guards.authWrite, schema: { params: ID_PARAMS_SCHEMA } }, async (req, reply) => {
    const id = idFromParam((req.params as Record<string, string>)['*']);
    const ifMatch = parseIfMatch(req.headers['if-match'] as string | undefined);
    const origin = await writeOrigin(req, audit, address, id, null);
    await audit.ensure();
    try {
      await rules.delete(id, ifMatch === 'any' ? undefined : ifMatch, audit.note(origin));
    } catch (err) {
      if (err instanceof RuleNotFoundError) throw new ApiError('BAMBOO_SERVICE_NOT_FOUND', `no service record for ${id}; nothing to delete`);
      if (err instanceof RuleConflictError) {
        throw conflict(err, 'BAMBOO_VERSION_CONFLICT', `the service record for ${id} changed since the version in If-Match; read it again before deleting`);
      }
      throw err;
    }
    await afterWrite(id, null, 'deleted', req.credential);
    return reply.code(204).send();
  });
}
