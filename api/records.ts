/**
 * A service record as the API reads it from a request: the body schema, the id in the URL, If-Match,
 * and the checks every value passes before it may be stored (docs/api.md).
 */
import { validateAcl, validateAppId, firstNonPrintable, firstInvalidUnicode, invalidUnicodeMessage, MAX_ACL_LENGTH } from '../common/core/acl.js';
import { ApiError } from '../common/core/errors.js';
import type { ServiceRecord } from '../common/core/model.js';
import { firstConfigProblem, isRoutingKey } from '../common/core/labels.js';

/** Longest `Config` value, same bound as an ACL: values may be pasted into haproxy.cfg by templates. */
const MAX_CONFIG_VALUE = MAX_ACL_LENGTH;
const MAX_CONFIG_KEYS = 64;
const CONFIG_KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

export const SERVICE_BODY_SCHEMA = {
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

/**
 * The first key named like prototype poisoning anywhere in parsed JSON, or null: unknown fields are
 * ignored (as Go's decoder ignored them), these names never, as fastify's own JSON parser refuses them.
 */
export function poisonedKey(value: unknown, depth = 0): string | null {
  if (value === null || typeof value !== 'object' || depth > 32) return null;
  for (const [k, v] of Object.entries(value)) {
    if (POISON_KEYS.has(k)) return k;
    const inner = poisonedKey(v, depth + 1);
    if (inner !== null) return inner;
  }
  return null;
}

/** The body's top-level fields that are not id, acl or config (any case). */
export function unknownFields(body: ServiceBody | undefined): string[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return [];
  return Object.keys(body).filter((k) => !KNOWN_FIELDS.has(k.toLowerCase())).sort();
}

export const ID_PARAMS_SCHEMA = {
  type: 'object',
  properties: { '*': { type: 'string', maxLength: 4096 } },
} as const;

/** A query flag: `1` or `true` is on. */
export const FLAG = { type: 'string', enum: ['0', '1', 'true', 'false', ''] } as const;

export interface ServiceBody {
  [key: string]: unknown;
}

export function isFlag(v: unknown): boolean {
  return v === '1' || v === 'true';
}

/** `If-Match` -> a znode version, `'any'` for `*`, or undefined when absent. */
export function parseIfMatch(header: string | undefined): number | 'any' | undefined {
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

export function etag(version: number): string {
  return `"${version}"`;
}

/** The id from the URL: `/api/services//group/app` and `/api/services/%2Fgroup%2Fapp` both give `/group/app`. */
export function idFromParam(raw: string | undefined): string {
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
export function recordFromBody(body: ServiceBody | undefined, urlId: string | null): ServiceRecord {
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
  // marathon-lb's routing keys (HAPROXY_0_VHOST, ...) are checked as strictly as labels (docs/labels.md).
  const labelProblem = firstConfigProblem(config);
  if (labelProblem) {
    throw new ApiError('BAMBOO_INVALID_LABEL', `Config.${labelProblem.key} ${labelProblem.reason}`, { key: labelProblem.key });
  }
  const routes = Object.keys(config).some((k) => isRoutingKey(k));
  const acl = acls.length > 0 ? acls[0] : config.Acl ?? (routes ? '' : undefined);
  if (acl === undefined) {
    throw new ApiError('BAMBOO_INVALID_ACL', 'the body has no "acl"; give the HAProxy ACL for the app, e.g. {"acl":"hdr(host) -i app.example.com"}', { reason: 'ACL_MISSING' });
  }
  if (acls.length > 0 && config.Acl !== undefined && config.Acl !== acl) {
    throw new ApiError('BAMBOO_INVALID_BODY', '"acl" and "Config.Acl" differ; send one of them (or the same value in both)');
  }
  // A rule may route by its Config's routing keys alone: its ACL may then be empty.
  const v = acl.trim() === '' && routes ? null : validateAcl(acl);
  if (v && !v.ok) throw new ApiError('BAMBOO_INVALID_ACL', v.message, { reason: v.code });
  config.Acl = acl;
  return { Id: id, Acl: acl, Config: config };
}
