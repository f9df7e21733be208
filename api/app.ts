/**
 * The REST API (fastify), built apart from listen: `buildApp(deps)` returns a ready-to-listen server
 * whose adapters are injected, so tests drive it with `app.inject` or real HTTP alike.
 *
 * Bamboo's routes and field names (`Id`, `Acl`, `Config`; lower-case input accepted, in fact any
 * case, as Go's JSON decoder did) with its bugs fixed: PUT honours the id in the URL, an unknown id
 * is a 404, a create is a 201. Everything else a client can rely on is in docs/api.md: the error
 * codes (common/errors.ts), ETag / If-Match, `?versions=1`, the redaction of `/api/state`, auth.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { extname, join } from 'node:path';
import { Readable } from 'node:stream';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { validateAcl, validateAppId, firstNonPrintable, firstInvalidUnicode, invalidUnicodeMessage, MAX_ACL_LENGTH } from '../common/acl.js';
import { PROJECT_ROOT, type Config } from '../common/config.js';
import type { HintPublisher } from '../common/bus.js';
import { ApiError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/metrics.js';
import type { ServiceRecord, TemplateData } from '../common/model.js';
import { RuleConflictError, RuleNotFoundError, type RuleStore, type StoredRecord } from '../common/rules.js';
import type { ControlStore, PublisherRecord, WorkerStatus } from '../common/snapshot.js';
import { buildTemplateData } from '../common/template-data.js';
import { ZkUnavailableError, type Zk } from '../common/zk.js';
import { ANONYMOUS, Authenticator, WriteLimiter, decodeBody, redactCallbackUrl, sameSecret, scanCallbackBody } from './edge.js';
import type { IntakeStatus } from './intake.js';
import { RuleChecker } from './rule-check.js';
import { metricsRoutes } from './routes/metrics.js';
import type { AclStatus } from './zk-acl.js';
import { RulesCache } from './rules-cache.js';
import { HeldChangedError, NothingHeldError, type HeldAnswer } from './shrink-guard.js';
import type { SnapshotCache } from './snapshot-cache.js';

/** What the API needs from the Marathon intake. */
export interface IntakeLike {
  onEvent(type: string): void;
  status(): IntakeStatus;
  /** Confirms the held Marathon answer `id`; throws NothingHeldError or HeldChangedError. */
  confirmHeld(id: string): Promise<HeldAnswer>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Who sent the request: the name of the credential its bearer token matched (a name from
     * Bamboo.AuthTokens, or `default` for Bamboo.AuthToken), or `anonymous`. Writes are attributed
     * to it (the rule-change log line carries it as `credential`).
     */
    credential: string;
  }
}

export interface AppDeps {
  cfg: Readonly<Pick<Config, 'Bamboo' | 'Marathon' | 'HAProxy'>>;
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
}

/** Longest `Config` value, same bound as an ACL: values may be pasted into haproxy.cfg by templates. */
const MAX_CONFIG_VALUE = MAX_ACL_LENGTH;
const MAX_CONFIG_KEYS = 64;
const CONFIG_KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const REDACTED = '***';

const SERVICE_BODY_SCHEMA = {
  type: 'object',
  // Go's encoding/json matched field names case-insensitively; so do we: id, Id, ID, acl, Acl, ACL...
  patternProperties: {
    '^[iI][dD]$': { type: 'string' },
    '^[aA][cC][lL]$': { type: 'string' },
    '^[cC][oO][nN][fF][iI][gG]$': {
      type: 'object',
      maxProperties: MAX_CONFIG_KEYS,
      additionalProperties: { type: 'string' },
    },
  },
  // Other fields are ignored, as Go's decoder ignored them, and named in a Warning header.
  maxProperties: 64,
} as const;

const KNOWN_FIELDS = new Set(['id', 'acl', 'config']);

const POISON_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** The first key of a prototype-poisoning name anywhere in parsed JSON, or null. */
function poisonedKey(value: unknown, depth = 0): string | null {
  if (value === null || typeof value !== 'object' || depth > 32) return null;
  for (const [k, v] of Object.entries(value)) {
    if (POISON_KEYS.has(k)) return k;
    const inner = poisonedKey(v, depth + 1);
    if (inner !== null) return inner;
  }
  return null;
}

/** The body's top-level fields that are not id, acl or config (any case). */
function unknownFields(body: ServiceBody | undefined): string[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return [];
  return Object.keys(body).filter((k) => !KNOWN_FIELDS.has(k.toLowerCase())).sort();
}

const ID_PARAMS_SCHEMA = {
  type: 'object',
  properties: { '*': { type: 'string', maxLength: 4096 } },
} as const;

const FLAG = { type: 'string', enum: ['0', '1', 'true', 'false', ''] } as const;

interface ServiceBody {
  [key: string]: unknown;
}

/** Routes and their methods, for 405 answers (fastify only knows "no route" = 404). */
const CALLBACK_PATH = '/api/marathon/event_callback';
const HELD_CONFIRM_PATH = '/api/marathon/held/confirm';

const HELD_CONFIRM_SCHEMA = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 128 } },
  required: ['id'],
} as const;

const ROUTES: Array<{ match: (path: string) => boolean; methods: string[] }> = [
  { match: (p) => p === '/', methods: ['GET', 'HEAD'] },
  { match: (p) => p.startsWith('/ui/'), methods: ['GET', 'HEAD'] },
  { match: (p) => p === '/status', methods: ['GET', 'HEAD'] },
  { match: (p) => p === '/metrics', methods: ['GET', 'HEAD'] },
  { match: (p) => p === '/api/state', methods: ['GET', 'HEAD'] },
  { match: (p) => p === '/api/workers', methods: ['GET', 'HEAD'] },
  { match: (p) => p === '/api/services', methods: ['GET', 'HEAD', 'POST'] },
  { match: (p) => p.startsWith('/api/services/'), methods: ['GET', 'HEAD', 'PUT', 'DELETE'] },
  { match: (p) => p === CALLBACK_PATH, methods: ['POST'] },
  { match: (p) => p === HELD_CONFIRM_PATH, methods: ['POST'] },
];

/**
 * Marathon callbacks may be this many times `Bamboo.MaxBodyBytes`: a deployment event carries the
 * whole plan (every app before and after), about 450 kB at 1,000 apps.
 */
export const CALLBACK_BODY_FACTOR = 256;

/**
 * The `eventType` member of a JSON object's top level, found by scanning (strings skipped, nesting
 * counted) instead of parsing the whole body; null when there is none. A nested `eventType` (an app
 * label, say) is not the event's.
 */
export function topLevelEventType(text: string): string | null {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let end = text.indexOf('"', i + 1);
      while (end > 0 && isEscaped(text, end)) end = text.indexOf('"', end + 1);
      if (end < 0) return null;
      if (depth === 1 && end - i - 1 === 9 && text.startsWith('eventType', i + 1)) {
        const m = /^\s*:\s*("(?:[^"\\]|\\.){0,200}")/.exec(text.slice(end + 1, end + 420));
        if (m) {
          try {
            return JSON.parse(m[1]) as string;
          } catch {
            return null;
          }
        }
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return null;
}

/** True when the quote at `at` is escaped (preceded by an odd number of backslashes). */
function isEscaped(text: string, at: number): boolean {
  let n = 0;
  for (let k = at - 1; k >= 0 && text.charCodeAt(k) === 0x5c; k--) n++;
  return n % 2 === 1;
}

function isFlag(v: unknown): boolean {
  return v === '1' || v === 'true';
}

/** `If-Match` -> a znode version, `'any'` for `*`, or undefined when absent. */
function parseIfMatch(header: string | undefined): number | 'any' | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const h = header.trim();
  if (h === '*') return 'any';
  const m = /^(?:W\/)?"?(\d{1,10})"?$/.exec(h);
  if (!m) {
    throw new ApiError(
      'BAMBOO_INVALID_PARAMETER',
      `If-Match must be the ETag of a read, such as "3" (with the quotes), or *; got ${JSON.stringify(h.slice(0, 40))}`,
    );
  }
  return Number(m[1]);
}

function etag(version: number): string {
  return `"${version}"`;
}

/** The id from the URL: `/api/services//group/app` and `/api/services/%2Fgroup%2Fapp` both give `/group/app`. */
function idFromParam(raw: string | undefined): string {
  let id = raw ?? '';
  if (/%[0-9A-Fa-f]{2}/.test(id)) {
    try {
      id = decodeURIComponent(id);
    } catch {
      throw new ApiError('BAMBOO_INVALID_APP_ID', 'the app id in the URL has a malformed percent-escape');
    }
  }
  // Marathon resolves a relative id against the root group: `app1` is `/app1`.
  if (id !== '' && !id.startsWith('/')) id = `/${id}`;
  checkAppId(id);
  return id;
}

function checkAppId(id: string): void {
  const v = validateAppId(id);
  if (!v.ok) {
    throw new ApiError('BAMBOO_INVALID_APP_ID', `${v.message}; a Marathon app id looks like /group/app`, { reason: v.code });
  }
}

/** Picks a field whatever its case (the schema already allowed only the three known names). */
function field(body: ServiceBody, lower: string): unknown[] {
  return Object.keys(body)
    .filter((k) => k.toLowerCase() === lower)
    .map((k) => body[k]);
}

/**
 * Turns a validated body into a service record: the id (from the URL for PUT), the ACL (top-level,
 * or `Config.Acl`), the other `Config` keys. Every value is checked: one printable line, bounded.
 */
function recordFromBody(body: ServiceBody | undefined, urlId: string | null): ServiceRecord {
  if (body === undefined || body === null) {
    throw new ApiError('BAMBOO_BAD_JSON', 'the request body is empty; send a JSON object like {"id":"/group/app","acl":"path_beg -i /app"}');
  }
  const ids = field(body, 'id') as string[];
  const acls = field(body, 'acl') as string[];
  const configs = field(body, 'config') as Array<Record<string, string>>;
  for (const [name, values] of [['id', ids], ['acl', acls], ['config', configs]] as const) {
    if (values.length > 1 && new Set(values.map((v) => JSON.stringify(v))).size > 1) {
      throw new ApiError('BAMBOO_INVALID_BODY', `the body has several "${name}" fields (in different letter cases) with different values; send one`);
    }
  }
  let id: string;
  if (urlId !== null) {
    id = urlId; // PUT: the URL names the record (Bamboo used the body's id; that was a bug)
  } else {
    if (ids.length === 0) throw new ApiError('BAMBOO_INVALID_BODY', 'the body has no "id"; send {"id":"/group/app","acl":"..."}');
    id = ids[0];
    // As Bamboo (and Marathon) did: a relative id is taken from the root, `app1` is `/app1`.
    if (id !== '' && !id.startsWith('/')) id = `/${id}`;
    checkAppId(id);
  }
  const config: Record<string, string> = {};
  const given = configs[0] ?? {};
  for (const [k, v] of Object.entries(given)) {
    if (!CONFIG_KEY.test(k)) {
      throw new ApiError('BAMBOO_INVALID_CONFIG', `Config key ${JSON.stringify(k.slice(0, 70))} is not allowed: keys start with a letter and use letters, digits, "_", "-" and "." (at most 64)`);
    }
    if (v.length > MAX_CONFIG_VALUE) {
      throw new ApiError('BAMBOO_INVALID_CONFIG', `Config.${k} is ${v.length} characters long; at most ${MAX_CONFIG_VALUE} are allowed`);
    }
    const bad = firstNonPrintable(v);
    if (bad >= 0) {
      throw new ApiError('BAMBOO_INVALID_CONFIG', `Config.${k} contains a control character (U+${v.charCodeAt(bad).toString(16).toUpperCase().padStart(4, '0')}) at position ${bad}; values must be one printable line`);
    }
    const broken = firstInvalidUnicode(v);
    if (broken >= 0) throw new ApiError('BAMBOO_INVALID_CONFIG', invalidUnicodeMessage(`Config.${k}`, v, broken));
    config[k] = v;
  }
  const configAcl = Object.entries(config).find(([k]) => k.toLowerCase() === 'acl');
  if (configAcl && configAcl[0] !== 'Acl') {
    delete config[configAcl[0]];
    config.Acl = configAcl[1];
  }
  const acl = acls.length > 0 ? acls[0] : config.Acl;
  if (acl === undefined) {
    throw new ApiError('BAMBOO_INVALID_ACL', 'the body has no "acl"; give the HAProxy ACL for the app, e.g. {"acl":"hdr(host) -i app.example.com"}', { reason: 'ACL_MISSING' });
  }
  if (acls.length > 0 && config.Acl !== undefined && config.Acl !== acl) {
    throw new ApiError('BAMBOO_INVALID_BODY', '"acl" and "Config.Acl" differ; send one of them (or the same value in both)');
  }
  const v = validateAcl(acl);
  if (!v.ok) throw new ApiError('BAMBOO_INVALID_ACL', v.message, { reason: v.code });
  config.Acl = acl;
  return { Id: id, Acl: acl, Config: config };
}

/** One ajv error as a sentence naming the field. */
function describeValidation(err: FastifyError): ApiError {
  const first = err.validation?.[0];
  const ctx = err.validationContext ?? 'body';
  if (!first) return new ApiError('BAMBOO_INVALID_BODY', err.message);
  const path = first.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const where = path ? `${ctx === 'body' ? '' : ctx + ' '}"${path}"` : ctx === 'body' ? 'the body' : ctx;
  const params = first.params as Record<string, unknown>;
  let message: string;
  switch (first.keyword) {
    case 'additionalProperties':
      message = ctx === 'body' && !path
        ? `unknown field ${JSON.stringify(String(params.additionalProperty))}: a service record has "id", "acl" and "config"`
        : `${where} has an unknown field ${JSON.stringify(String(params.additionalProperty))}`;
      break;
    case 'type':
      message = !path && ctx === 'body'
        ? 'the body must be a JSON object like {"id":"/group/app","acl":"path_beg -i /app"}'
        : `${where} must be a ${String(params.type)}`;
      break;
    case 'enum':
      message = `${where} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      break;
    case 'maxProperties':
      message = `${where} has too many keys (at most ${String(params.limit)})`;
      break;
    case 'maxLength':
      message = `${where} is too long (at most ${String(params.limit)} characters)`;
      break;
    default:
      message = `${where} ${first.message ?? 'is invalid'}`;
  }
  if (ctx === 'querystring' || ctx === 'params' || ctx === 'headers') return new ApiError('BAMBOO_INVALID_PARAMETER', message);
  if (/^config(\.|$)/i.test(path)) return new ApiError('BAMBOO_INVALID_CONFIG', message);
  return new ApiError('BAMBOO_INVALID_BODY', message);
}

/** Any error -> the ApiError answered (`method`: the request's, to word ZooKeeper failures of writes). */
function toApiError(err: unknown, method = 'GET'): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ZkUnavailableError) {
    // A write whose connection broke after it was sent may have been applied: ZooKeeper cannot say.
    const write = method !== 'GET' && method !== 'HEAD';
    const outcome = write && err.inFlight
      ? 'the connection broke while the change was on its way, so it may have been applied: read the record back (GET, ETag) or retry with If-Match'
      : 'nothing was changed';
    return new ApiError('BAMBOO_ZK_UNAVAILABLE', `${err.message}; ${outcome}. Retry later; GET /status shows when ZooKeeper is back`);
  }
  const e = err as FastifyError;
  if (e?.validation) return describeValidation(e);
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('BAMBOO_BODY_TOO_LARGE', 'the request body is larger than Bamboo.MaxBodyBytes allows; a service record is a few hundred bytes');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('BAMBOO_UNSUPPORTED_MEDIA_TYPE', 'the body must be JSON (Content-Type: application/json)');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('BAMBOO_BAD_JSON', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError('BAMBOO_BAD_JSON', `the request body is not valid JSON (${e.message}); send a JSON object`);
    case 'FST_ERR_BAD_URL':
      return new ApiError('BAMBOO_INVALID_PARAMETER', 'the URL has a malformed percent-escape; encode "%" as %25');
    default:
      break;
  }
  if (e?.statusCode === 413) return new ApiError('BAMBOO_BODY_TOO_LARGE', 'the request body is too large');
  if (e?.statusCode === 415) return new ApiError('BAMBOO_UNSUPPORTED_MEDIA_TYPE', 'the body must be JSON');
  if (e?.statusCode === 400) return new ApiError('BAMBOO_INVALID_BODY', String(e.message ?? 'bad request'));
  return new ApiError('BAMBOO_INTERNAL', 'an unexpected error happened; it was logged. Retry, and report it if it persists');
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

function loadUi(): string {
  try {
    return readFileSync(join(PROJECT_ROOT, 'api', 'ui', 'index.html'), 'utf8');
  } catch {
    return '<!doctype html><title>Bamboo</title><p>The web UI file is missing; the REST API is under <a href="/api/services">/api/services</a>.</p>';
  }
}

/** Content types of the UI's static files; any other file in api/ui is not served. */
const UI_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The UI's static files (api/ui/*.js, *.css, *.svg), read once like index.html, keyed by file name. */
function loadUiFiles(): Map<string, { type: string; body: Buffer }> {
  const dir = join(PROJECT_ROOT, 'api', 'ui');
  const files = new Map<string, { type: string; body: Buffer }>();
  try {
    for (const name of readdirSync(dir)) {
      const type = UI_TYPES[extname(name)];
      if (type && /^[A-Za-z0-9_-]+\.[a-z]+$/.test(name)) files.set(name, { type, body: readFileSync(join(dir, name)) });
    }
  } catch {
    /* no UI directory: only the API is served */
  }
  return files;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const { cfg, log, zk, rules, control, snapshots, intake, publisher, metrics } = deps;
  const now = deps.now ?? Date.now;
  const rulesCache = deps.rulesCache ?? new RulesCache(zk, rules, log);
  const auth = new Authenticator(cfg);
  const limiter = new WriteLimiter(cfg.Bamboo.WriteRateBurst, cfg.Bamboo.WriteRatePerMinute, deps.monotonicNow ?? (() => performance.now()));
  const callbackSecret = cfg.Bamboo.CallbackSecret;
  const callbackLimit = cfg.Bamboo.MaxBodyBytes * CALLBACK_BODY_FACTOR;
  const ruleCheck = deps.ruleCheck
    ?? new RuleChecker({ mode: cfg.Bamboo.RuleCheck, binary: cfg.HAProxy.Binary, timeoutMs: cfg.Bamboo.RuleCheckTimeoutMs, log: log.child({ component: 'rule-check' }) });
  const ui = loadUi();

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
    frameworkErrors: (error, _req, reply) => sendError(reply, toApiError(error)),
    // A request Node's HTTP parser refuses (raw spaces or non-ASCII bytes in the URL, headers over
    // 16 KiB) never reaches a route; answer it in the same coded shape as every other error.
    clientErrorHandler: (err, socket) => {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ECONNRESET' || socket.destroyed) return;
      if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        socket.destroy(err); // nobody is waiting for an answer
        return;
      }
      const api =
        e.code === 'HPE_HEADER_OVERFLOW'
          ? new ApiError('BAMBOO_HEADERS_TOO_LARGE', 'the request headers are larger than 16 KiB; send fewer or shorter headers')
          : new ApiError('BAMBOO_BAD_REQUEST', `the request is not valid HTTP (${e.code ?? 'parse error'}); percent-encode spaces, control characters and non-ASCII bytes in the URL`);
      metrics.apiError(api.code);
      log.debug({ code: api.code, parser: e.code }, 'request rejected before routing');
      const body = JSON.stringify(api.body());
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${api.status} ${STATUS_CODES[api.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy(err);
    },
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
      done(null, { eventType: topLevelEventType(t) });
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

  function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
    metrics.apiError(err.code);
    for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
    return reply.code(err.status).type('application/json; charset=utf-8').send(JSON.stringify(err.body()));
  }

  app.setErrorHandler((error, req, reply) => {
    const api = toApiError(error, req.method);
    // Only the unexpected is an error; a 503 while ZooKeeper is away is the designed degradation.
    if (api.code === 'BAMBOO_INTERNAL') log.error({ err: (error as Error).message, method: req.method, url: req.url, code: api.code }, 'request failed');
    else log.debug({ method: req.method, url: req.url, code: api.code }, 'request rejected');
    return sendError(reply, api);
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0];
    const route = ROUTES.find((r) => r.match(path));
    if (route) {
      return sendError(
        reply,
        new ApiError('BAMBOO_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path.slice(0, 200)}; use ${route.methods.join(', ')}`, {}, { Allow: route.methods.join(', ') }),
      );
    }
    return sendError(reply, new ApiError('BAMBOO_NOT_FOUND', `no route ${req.method} ${path.slice(0, 200)}; the API lives under /api (see docs/api.md)`));
  });

  app.register(metricsRoutes, { metrics });

  // Every request learns who sent it; only the routes that need a credential act on a bad one.
  app.decorateRequest('credential', ANONYMOUS);
  app.addHook('onRequest', async (req) => {
    const id = auth.identify(req.headers.authorization);
    req.credential = id.kind === 'valid' ? id.name : ANONYMOUS;
  });

  function unauthorised(req: FastifyRequest): ApiError {
    const given = req.headers.authorization !== undefined;
    return new ApiError(
      'BAMBOO_UNAUTHORIZED',
      given ? 'the bearer token is not valid; send Authorization: Bearer <token> with a token of Bamboo.AuthTokens (or Bamboo.AuthToken)' : 'this request needs Authorization: Bearer <token> (a token of Bamboo.AuthTokens, or Bamboo.AuthToken)',
      {},
      { 'WWW-Authenticate': given ? 'Bearer realm="bamboo", error="invalid_token"' : 'Bearer realm="bamboo"' },
    );
  }

  /** Writes need a valid credential once any is configured (without any, see checkExposure). */
  function requireAuth(req: FastifyRequest): void {
    if (!auth.enabled || req.credential !== ANONYMOUS) return;
    throw unauthorised(req);
  }

  /** Secret values (unredacted state) need a valid credential, always: without any configured, nobody gets them. */
  function requireCredential(req: FastifyRequest): void {
    if (!auth.enabled) {
      throw new ApiError('BAMBOO_FORBIDDEN', 'unredacted values need a credential and none is configured; set Bamboo.AuthTokens (or Bamboo.AuthToken) and send it as a bearer token');
    }
    if (req.credential === ANONYMOUS) throw unauthorised(req);
  }

  /** One token bucket per credential name (anonymous: per client address). */
  function limitWrite(req: FastifyRequest): void {
    const key = req.credential === ANONYMOUS ? `${ANONYMOUS}@${req.ip}` : req.credential;
    const wait = limiter.take(key);
    if (wait === 0) return;
    throw new ApiError(
      'BAMBOO_RATE_LIMITED',
      `too many rule writes from ${req.credential === ANONYMOUS ? 'this client address' : `credential ${JSON.stringify(req.credential)}`}; retry in ${wait} s (Bamboo.WriteRateBurst, Bamboo.WriteRatePerMinute)`,
      { retryAfter: wait },
      { 'Retry-After': String(wait) },
    );
  }

  const authWrite = async (req: FastifyRequest) => {
    requireAuth(req);
    limitWrite(req);
  };
  // Runs before schema validation, so an empty body gets its own clear answer.
  const requireBody = async (req: FastifyRequest) => {
    if (req.body === undefined || req.body === null) {
      throw new ApiError('BAMBOO_BAD_JSON', 'the request body is empty; send a JSON object like {"id":"/group/app","acl":"path_beg -i /app"}');
    }
  };

  const requireHeldId = async (req: FastifyRequest) => {
    if (req.body === undefined || req.body === null) {
      throw new ApiError('BAMBOO_BAD_JSON', 'the request body is empty; send {"id":"<marathon.held.id from GET /status>"}');
    }
  };

  async function afterWrite(appId: string, version: number | null, action: string, credential: string): Promise<void> {
    rulesCache.invalidate();
    metrics.ruleChanged(credential, action);
    log.info({ appId, version, action, credential }, 'rule changed');
    await publisher.publish('rules', { appId });
    metrics.published('rules');
  }

  function sendRecord(reply: FastifyReply, stored: StoredRecord, status: number): FastifyReply {
    return reply.code(status).header('ETag', etag(stored.version)).type('application/json; charset=utf-8').send(JSON.stringify(stored.record));
  }

  function conflict(err: RuleConflictError, code: 'BAMBOO_SERVICE_EXISTS' | 'BAMBOO_VERSION_CONFLICT', message: string): ApiError {
    return new ApiError(code, message, { current: err.current?.record ?? null, version: err.current?.version ?? null }, err.current ? { ETag: etag(err.current.version) } : {});
  }

  // --- UI -----------------------------------------------------------------------------------
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-cache').send(ui));
  // The URL only selects a key of this map (never a path), so no request can read outside api/ui.
  const uiFiles = loadUiFiles();
  app.get('/ui/*', async (req, reply) => {
    const name = (req.params as Record<string, string>)['*'];
    const file = uiFiles.get(name);
    if (!file) throw new ApiError('BAMBOO_NOT_FOUND', `no UI file ${JSON.stringify(name.slice(0, 100))}; the UI is served at /`);
    return reply.type(file.type).header('Cache-Control', 'no-cache').header('X-Content-Type-Options', 'nosniff').send(file.body);
  });

  // --- status ---------------------------------------------------------------------------------
  app.get('/status', async (_req, reply) => {
    const m = intake.status();
    const zkUp = zk.connected;
    const snap = snapshots.current();
    const marathonOk = m.lastFetch ? m.lastFetch.ok : false;
    const haproxy = ruleCheck.status();
    const body = {
      // Rule writes are refused while HAProxy cannot check them: degraded, not down.
      status: !zkUp ? 'unavailable' : marathonOk && snap && haproxy.available !== false ? 'ok' : 'degraded',
      zookeeper: { connected: zkUp, state: zk.state },
      zookeeperAcl: deps.acls?.() ?? null,
      marathon: {
        mode: m.mode,
        lastFetch: m.lastFetch,
        lastGoodFetchAt: m.lastGoodFetchAt,
        fetches: m.fetches,
        failures: m.failures,
        suspiciousEmpty: m.suspiciousEmpty,
        held: m.held,
        eventsTotal: m.eventsTotal,
        events: m.events,
        callbackUrl: redactCallbackUrl(m.callbackUrl),
        subscriptions: m.subscriptions,
      },
      snapshot: snap ? { version: snap.version, hash: snap.hash, fetchedAt: snap.fetchedAt, apps: snap.apps.length } : null,
      publisher: {
        id: publisher.publisherId,
        address: deps.registration?.()?.zmq ?? publisher.boundAddress,
        bound: publisher.boundAddress,
        published: publisher.published,
        snapshotVersion: publisher.snapshotVersion,
      },
      auth: {
        credentials: auth.count,
        anonymousWrites: !auth.enabled,
        allowAnonymousWrites: cfg.Bamboo.AllowAnonymousWrites,
        callbackSecret: callbackSecret !== '',
        writeRate: limiter.enabled ? { burst: cfg.Bamboo.WriteRateBurst, perMinute: cfg.Bamboo.WriteRatePerMinute } : null,
      },
      streamLeader: m.stream
        ? { isLeader: m.stream.leader?.isLeader ?? false, leaderId: m.stream.leader?.leaderId ?? null, reading: m.stream.connected, endpoint: m.stream.endpoint, connects: m.stream.connects, events: m.stream.events, lastError: m.stream.lastError }
        : null,
      haproxy,
    };
    return reply.code(zkUp ? 200 : 503).header('Cache-Control', 'no-cache').send(body);
  });

  // --- services (rules) -----------------------------------------------------------------------
  app.get('/api/services', { schema: { querystring: { type: 'object', properties: { versions: FLAG } } } }, async (req, reply) => {
    const q = req.query as { versions?: string };
    const view = await rulesCache.get();
    return reply.type('application/json; charset=utf-8').send(isFlag(q.versions) ? view.jsonWithVersions : view.json);
  });

  app.get('/api/services/*', { schema: { params: ID_PARAMS_SCHEMA } }, async (req, reply) => {
    const id = idFromParam((req.params as Record<string, string>)['*']);
    const stored = await rules.get(id);
    if (!stored) throw new ApiError('BAMBOO_SERVICE_NOT_FOUND', `no service record for ${id}; create it with POST /api/services or PUT /api/services/${id}`);
    return sendRecord(reply, stored, 200);
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
    // Acknowledged means HAProxy accepts it (DESIGN.md invariant 7): a rejected rule is never stored.
    await ruleCheck.assertAccepted(record.Acl);
    let stored: StoredRecord;
    let created: boolean;
    try {
      if (ifNoneMatch === '*') {
        stored = await rules.create(record);
        created = true;
      } else if (ifMatch === 'any') {
        const current = await rules.get(id);
        if (!current) throw new RuleConflictError(`no rule for ${id}`, null);
        ({ stored, created } = await rules.put(record, current.version));
      } else {
        ({ stored, created } = await rules.put(record, ifMatch));
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

  app.post('/api/services', { onRequest: authWrite, preValidation: requireBody, schema: { body: SERVICE_BODY_SCHEMA } }, async (req, reply) => {
    return writeRecord(req, reply, recordFromBody(req.body as ServiceBody | undefined, null));
  });

  app.put('/api/services/*', { onRequest: authWrite, preValidation: requireBody, schema: { params: ID_PARAMS_SCHEMA, body: SERVICE_BODY_SCHEMA } }, async (req, reply) => {
    const id = idFromParam((req.params as Record<string, string>)['*']);
    return writeRecord(req, reply, recordFromBody(req.body as ServiceBody | undefined, id));
  });

  app.delete('/api/services/*', { onRequest: authWrite, schema: { params: ID_PARAMS_SCHEMA } }, async (req, reply) => {
    const id = idFromParam((req.params as Record<string, string>)['*']);
    const ifMatch = parseIfMatch(req.headers['if-match'] as string | undefined);
    try {
      await rules.delete(id, ifMatch === 'any' ? undefined : ifMatch);
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

  // --- state ----------------------------------------------------------------------------------
  let stateCache: { key: string; full: string; redacted: string } | null = null;
  app.get('/api/state', { schema: { querystring: { type: 'object', properties: { unredacted: FLAG } } } }, async (req, reply) => {
    const q = req.query as { unredacted?: string };
    // Values are shown only to a valid credential: ?unredacted=1 without one is a 401 (403 when none
    // is configured at all), a wrong token is a 401, not a silent redaction (docs/api.md).
    if (isFlag(q.unredacted) || (auth.enabled && req.headers.authorization !== undefined)) requireCredential(req);
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
      const { data, warnings } = buildTemplateData({ apps: snap.apps, services: view.services, now: t });
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

  // --- workers --------------------------------------------------------------------------------
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

  // --- Marathon callbacks ---------------------------------------------------------------------
  // A callback is refused before its body is read when the URL lacks the secret; its body is then
  // scanned as it arrives for the top-level event type and never held (EventTypeScanner), so a flood
  // of multi-megabyte callbacks costs a chunk each, and HttpRequestTimeoutMs cuts the slow ones.
  const callbackGuard = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!callbackSecret) return;
    const given = (req.query as Record<string, unknown>).secret;
    if (typeof given !== 'string' || !sameSecret(given, callbackSecret)) {
      reply.header('Connection', 'close');
      throw new ApiError('BAMBOO_FORBIDDEN', 'this Marathon callback URL lacks the callback secret (Bamboo.CallbackSecret); Marathon is given the right URL when the api subscribes');
    }
  };
  const callbackScan = async (req: FastifyRequest, reply: FastifyReply, payload: NodeJS.ReadableStream) => {
    const scanner = await scanCallbackBody(payload as import('node:stream').Readable, callbackLimit).catch((err: unknown) => {
      reply.header('Connection', 'close');
      throw err;
    });
    if (scanner.bytes === 0) return Readable.from([]);
    if (!scanner.isObject) throw new ApiError('BAMBOO_BAD_JSON', 'a Marathon event is a JSON object; this body is not one');
    const small = Readable.from([Buffer.from(JSON.stringify({ eventType: scanner.eventType }))]) as Readable & { receivedEncodedLength?: number };
    // fastify compares the bytes received with Content-Length: report those of the real body.
    small.receivedEncodedLength = scanner.bytes;
    return small;
  };

  app.post(CALLBACK_PATH, { bodyLimit: callbackLimit, onRequest: callbackGuard, preParsing: callbackScan }, async (req, reply) => {
    // The payload is never trusted: it only says "something happened"; the fetch reads the truth.
    const body = req.body as { eventType?: unknown } | undefined;
    const type = body && typeof body === 'object' && typeof body.eventType === 'string' ? body.eventType.slice(0, 100) : 'unknown';
    intake.onEvent(type);
    return reply.code(202).send({ accepted: true, eventType: type });
  });

  // --- the shrink guard's held answer ----------------------------------------------------------
  app.post(HELD_CONFIRM_PATH, { onRequest: authWrite, preValidation: requireHeldId, schema: { body: HELD_CONFIRM_SCHEMA } }, async (req, reply) => {
    const { id } = req.body as { id: string };
    try {
      const held = await intake.confirmHeld(id);
      return reply.code(202).send({ confirmed: true, held });
    } catch (err) {
      if (err instanceof NothingHeldError) {
        throw new ApiError('BAMBOO_NOTHING_HELD', 'no Marathon answer is held back now (it was applied, or Marathon answered normally again); nothing to confirm. GET /status shows marathon.held');
      }
      if (err instanceof HeldChangedError) {
        throw new ApiError(
          'BAMBOO_HELD_CHANGED',
          `the Marathon answer held now is ${err.current.id}, not the one named (Marathon's answer changed since it was read); check "held" and confirm its id`,
          { held: err.current },
        );
      }
      throw err;
    }
  });

  return app;
}
