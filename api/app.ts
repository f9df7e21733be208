/**
 * The REST API (fastify), built apart from listen: `buildApp(deps)` returns a ready-to-listen server
 * whose adapters are injected, so tests drive it with `app.inject` or real HTTP alike. This file is
 * the edge every request crosses (limits, timeouts, UTF-8 bodies, who sent it, coded errors, 405s);
 * the routes are plugins in api/routes/, one per resource, each given only the deps it uses.
 * Routes, fields and errors are in docs/api.md.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from '../common/config.js';
import type { HintPublisher } from '../common/adapters/zeromq/bus.js';
import { ApiError } from '../common/core/errors.js';
import { parseAllowedDomains } from '../common/core/labels.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import type { RuleStore } from '../common/adapters/zookeeper/rules.js';
import type { ControlStore } from '../common/adapters/zookeeper/snapshot.js';
import type { PublisherRecord } from '../common/adapters/zookeeper/registrations.js';
import type { Zk } from '../common/adapters/zookeeper/zk.js';
import { AuditLog } from './audit.js';
import { ClientAddress } from './client-address.js';
import { ANONYMOUS, Authenticator, CALLBACK_PATH, WriteLimiter, callbackFields, decodeBody } from './edge.js';
import { createGuards } from './guards.js';
import { poisonedKey } from './records.js';
import { clientErrorHandler, sendError, toApiError } from './http-errors.js';
import { RuleChecker } from './rule-check.js';
import { auditRoutes } from './routes/audit.js';
import { metricsRoutes } from './routes/metrics.js';
import type { AclStatus } from './zk-acl.js';
import { healthRoutes } from './routes/health.js';
import { RulesCache } from './rules-cache.js';
import { routingView } from './routing-view.js';
import { marathonRoutes, type MarathonDeps } from './routes/marathon.js';
import { sharedFor } from './quarantine-view.js';
import { servicesRoutes } from './routes/services.js';
import { stateRoutes } from './routes/state.js';
import { statusRoutes, type StatusDeps } from './routes/status.js';
import { uiRoutes } from './routes/ui.js';
import { workersRoutes } from './routes/workers.js';
import { FleetMonitor } from './fleet.js';
import { FleetStore } from '../common/adapters/zookeeper/fleet.js';
import type { SnapshotCache } from './snapshot-cache.js';

/** What the API needs from the Marathon intake. */
export type IntakeLike = MarathonDeps['intake'] & StatusDeps['intake'];

export interface AppDeps {
  cfg: Readonly<Pick<Config, 'Bamboo' | 'Marathon' | 'HAProxy' | 'Fleet' | 'Audit'> & Partial<Pick<Config, 'Labels'>>>;
  log: Logger;
  zk: Zk;
  rules: RuleStore;
  control: ControlStore;
  snapshots: SnapshotCache;
  intake: IntakeLike;
  publisher: HintPublisher;
  metrics: Metrics;
  /** This copy's registration in ZooKeeper (shown in /status). */
  registration?: () => PublisherRecord | null;
  /** Whether Bamboo's ZooKeeper nodes carry the digest ACL (shown in /status as `zookeeperAcl`). */
  acls?: () => AclStatus;
  /** Shared with other components when given; created otherwise. */
  rulesCache?: RulesCache;
  /** Clock for template data (health grace periods); default Date.now. */
  now?: () => number;
  /** Monotonic clock in ms for the write rate limit; default performance.now. */
  monotonicNow?: () => number;
  /** HAProxy's check of rules before they are stored (Bamboo.RuleCheck); created from cfg otherwise. */
  ruleCheck?: RuleChecker;
  /** The fleet view (api/fleet.ts); created from cfg otherwise (without its periodic check). */
  fleet?: FleetMonitor;
  /** The audit trail of rule writes; created from cfg otherwise (closed with the app). */
  audit?: AuditLog;
}

/** Methods in the order a 405's Allow header lists them. */
const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/**
 * The routes registered, by path, so that a known path with a wrong method is a 405 naming the
 * right ones (fastify itself only knows "no route", a 404). A path ending in `*` covers its prefix.
 */
class RouteTable {
  private readonly exact = new Map<string, Set<string>>();
  private readonly prefixes = new Map<string, Set<string>>();

  add(url: string, methods: string | string[]): void {
    const map = url.endsWith('*') ? this.prefixes : this.exact;
    const key = url.endsWith('*') ? url.slice(0, -1) : url;
    const set = map.get(key) ?? new Set<string>();
    for (const m of [methods].flat()) set.add(m);
    map.set(key, set);
  }

  /** The methods allowed on `path` (`GET, HEAD`), or null when no route has that path. */
  methodsOf(path: string): string | null {
    const set = this.exact.get(path) ?? [...this.prefixes].find(([prefix]) => path.startsWith(prefix))?.[1];
    if (!set) return null;
    return [...set].sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b)).join(', ');
  }
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const { cfg, log, zk, rules, control, snapshots, intake, publisher, metrics } = deps;
  const rulesCache = deps.rulesCache ?? new RulesCache(zk, rules, log);
  const auth = new Authenticator(cfg);
  const limiter = new WriteLimiter(cfg.Bamboo.WriteRateBurst, cfg.Bamboo.WriteRatePerMinute, deps.monotonicNow ?? (() => performance.now()));
  const guards = createGuards(auth, limiter);
  const ruleCheck = deps.ruleCheck
    ?? new RuleChecker({ mode: cfg.Bamboo.RuleCheck, binary: cfg.HAProxy.Binary, timeoutMs: cfg.Bamboo.RuleCheckTimeoutMs, log: log.child({ component: 'rule-check' }) });

  const audit = deps.audit
    ?? new AuditLog(zk, cfg.Bamboo.Zookeeper.ControlPath, { maxEntries: cfg.Audit.MaxEntries, maxAgeMs: cfg.Audit.MaxAgeHours * 3600000, now: deps.now, log: log.child({ component: 'audit' }) });
  const address = new ClientAddress(cfg.Bamboo.TrustedProxies);

  const app = Fastify({
    bodyLimit: cfg.Bamboo.MaxBodyBytes,
    routerOptions: { maxParamLength: 4096, ignoreDuplicateSlashes: false, ignoreTrailingSlash: false },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    return503OnClosing: true,
    // A slow client is cut: its headers within HttpHeadersTimeoutMs, its whole request (body too)
    // within HttpRequestTimeoutMs, checked every second (Node's default check is every 30 s); a
    // connection that sends nothing at all is closed after HttpRequestTimeoutMs of silence.
    requestTimeout: cfg.Bamboo.HttpRequestTimeoutMs,
    connectionTimeout: cfg.Bamboo.HttpRequestTimeoutMs,
    http: { headersTimeout: Math.min(cfg.Bamboo.HttpHeadersTimeoutMs, cfg.Bamboo.HttpRequestTimeoutMs), connectionsCheckingInterval: Math.min(1000, cfg.Bamboo.HttpHeadersTimeoutMs) },
    frameworkErrors: (error, _req, reply) => sendError(reply, toApiError(error), metrics),
    clientErrorHandler: clientErrorHandler(metrics, log),
  });

  // Bamboo's documented curl examples send JSON with curl's default form content type; Bamboo read
  // any body as JSON, and so do we (a body that is not JSON is a clear 400).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    let text: string;
    try {
      text = decodeBody(body as Buffer);
    } catch (err) {
      done(err as Error, undefined);
      return;
    }
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    if (req.routeOptions.url === CALLBACK_PATH) {
      // Only the event type is used, and deployment events list every app (hundreds of kB at 1,000
      // apps): read the type without parsing the rest.
      const t = text.trim();
      if (!t.startsWith('{') || !t.endsWith('}')) {
        done(new ApiError('BAMBOO_BAD_JSON', 'a Marathon event is a JSON object; this body is not one'), undefined);
        return;
      }
      done(null, callbackFields(t));
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      done(new ApiError('BAMBOO_BAD_JSON', `the request body is not valid JSON (${(err as Error).message}); send a JSON object`), undefined);
      return;
    }
    // Unknown fields are ignored (as Go's decoder did), but not the names of prototype poisoning:
    // refused at any depth, as fastify's own JSON parser refuses them.
    const poison = poisonedKey(parsed);
    if (poison !== null) {
      done(new ApiError('BAMBOO_INVALID_BODY', `the body has a field named ${JSON.stringify(poison)}, which is never accepted; remove it`), undefined);
      return;
    }
    done(null, parsed);
  });

  app.setErrorHandler((error, req, reply) => {
    const api = toApiError(error, req.method);
    // Only the unexpected is an error; a 503 while ZooKeeper is away is the designed degradation.
    if (api.code === 'BAMBOO_INTERNAL') log.error({ err: error, method: req.method, url: req.url, code: api.code }, 'request failed');
    else log.debug({ method: req.method, url: req.url, code: api.code }, 'request rejected');
    return sendError(reply, api, metrics);
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0];
    const methods = routes.methodsOf(path);
    if (methods) {
      return sendError(
        reply,
        new ApiError('BAMBOO_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path.slice(0, 200)}; use ${methods}`, {}, { Allow: methods }),
        metrics,
      );
    }
    return sendError(reply, new ApiError('BAMBOO_NOT_FOUND', `no route ${req.method} ${path.slice(0, 200)}; the API lives under /api (see docs/api.md)`), metrics);
  });

  app.register(metricsRoutes, { metrics });

  // Every request learns who sent it; only the routes that need a credential act on a bad one.
  app.decorateRequest('credential', ANONYMOUS);
  app.addHook('onRequest', async (req) => {
    const id = auth.identify(req.headers.authorization);
    req.credential = id.kind === 'valid' ? id.name : ANONYMOUS;
  });

  const routes = new RouteTable();
  app.addHook('onRoute', (r) => routes.add(r.url, r.method));
  app.register(uiRoutes);
  app.register(healthRoutes, { zk });
  app.register(statusRoutes, { bamboo: cfg.Bamboo, zk, intake, snapshots, publisher, ruleCheck, auth, limiter, registration: deps.registration, acls: deps.acls });
  const allowedDomains = parseAllowedDomains(deps.cfg.Labels?.AllowedDomains ?? '');
  const routing = routingView({ snapshots, rulesCache, allowedDomains, now: deps.now ?? Date.now });
  app.register(servicesRoutes, { rules, rulesCache, ruleCheck, publisher, metrics, guards, audit, address, log, routing, workers: sharedFor(1000, () => control.workers()) });
  app.register(auditRoutes, { audit, guards });
  app.addHook('onClose', async () => audit.close());
  // Slots sized as a worker with the same settings sizes them (no previous layout: task id order).
  const haproxy = deps.cfg.HAProxy;
  const slots = haproxy ? { headroomPercent: haproxy.ServerSlotHeadroom, dynamic: haproxy.RuntimeApi && haproxy.DynamicServers } : undefined;
  app.register(stateRoutes, { snapshots, rulesCache, auth, guards, log, now: deps.now ?? Date.now, allowedDomains, slots });
  const fleet = deps.fleet ?? new FleetMonitor(new FleetStore(zk, control.paths), { staleAfterMs: cfg.Fleet.StaleAfterMs, goneRetentionMs: cfg.Fleet.GoneRetentionMs }, metrics, log);
  app.register(workersRoutes, { control, fleet, rulesCache, staleAfterMs: cfg.Fleet.StaleAfterMs, goneRetentionMs: cfg.Fleet.GoneRetentionMs });
  app.register(marathonRoutes, { intake, guards, callbackSecret: cfg.Bamboo.CallbackSecret, maxBodyBytes: cfg.Bamboo.MaxBodyBytes });
  return app;
}
