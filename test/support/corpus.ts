/**
 * A generated corpus of malformed requests for the api, and a raw HTTP/1.1 sender for it.
 *
 * The corpus is deterministic (a seeded PRNG: the same seed gives byte-identical requests), so a
 * failure names a request that can be replayed. Every request is well framed HTTP/1.1 (a request line,
 * headers, a body of exactly Content-Length bytes): what is malformed is its content, as a careless or
 * hostile client would send it: bad JSON, wrong types, huge bodies, control characters and HAProxy
 * directive injection in ACLs, path traversal and odd ids, unknown fields, wrong methods, missing or
 * wrong auth. Each request carries the error codes (from common/core/errors.ts) it may be answered with.
 *
 * Requests go out over a raw TCP socket, byte for byte: fetch and http.request normalise `/../` or
 * refuse raw bytes that a hostile client can send anyway.
 */
import { connect } from 'node:net';
import type { ErrorCode } from '../../common/core/errors.js';

export type CorpusCategory =
  | 'bad-json'
  | 'wrong-types'
  | 'huge-body'
  | 'control-chars'
  | 'injection'
  | 'odd-ids'
  | 'unknown-fields'
  | 'wrong-method'
  | 'auth';

export interface CorpusRequest {
  /** `<category>#<n>: <what>`, for failure messages. */
  name: string;
  category: CorpusCategory;
  method: string;
  /** The request target exactly as sent (may hold `..`, percent-escapes or raw UTF-8). */
  target: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** The codes an answer may carry; every one of them is a 4xx in ERROR_CODES. */
  codes: ErrorCode[];
}

export interface CorpusOptions {
  seed: number;
  /** The api's bearer token (Bamboo.AuthToken): requests that are not about auth carry it. */
  token: string;
  /** Bamboo.MaxBodyBytes of the api under test (huge bodies are sized from it). */
  maxBodyBytes: number;
  /** App ids that exist (their records must survive every request). */
  existingIds: string[];
  /** Requests per category (default 120: 9 categories, 1,080 requests). */
  perCategory?: number;
}

/** mulberry32: a tiny, well-distributed 32-bit PRNG; deterministic for a seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Characters that must never reach haproxy.cfg inside one line. */
const LINE_BREAKERS = ['\n', '\r', '\r\n', '\u0000', '\u2028', '\u2029', '\u0085', '\u000b', '\u000c', '\t', '\u007f', '\u001b'];

/** Directives a newline in an ACL would inject (Bamboo pasted ACL text into the config unchecked). */
const INJECTED = [
  ' backend evil',
  'backend evil\n  server evil 203.0.113.9:80',
  ' server evil 203.0.113.9:80',
  'frontend takeover\n  bind :80',
  ' http-request redirect location http://evil.example',
  'global\n  lua-load /tmp/evil.lua',
  ' use_backend evil if TRUE',
  'listen stats\n  stats enable',
  ' acl x always_true\n use_backend evil if x',
];

const GOOD_ACLS = ['path_beg -i /corpus', 'hdr(host) -i corpus.example.com', 'hdr_beg(host) -i corpus.', 'path_reg ^/corpus/[a-z]+$'];

export function generateCorpus(opts: CorpusOptions): CorpusRequest[] {
  const rnd = prng(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const word = (n = int(3, 10)) => Array.from({ length: n }, () => String.fromCharCode(97 + int(0, 25))).join('');
  const per = opts.perCategory ?? 120;
  const auth = { Authorization: `Bearer ${opts.token}` };
  const json = { 'Content-Type': 'application/json' };
  const out: CorpusRequest[] = [];
  const counts = new Map<CorpusCategory, number>();

  const add = (category: CorpusCategory, what: string, method: string, target: string, headers: Record<string, string>, body: string | Buffer | undefined, codes: ErrorCode[]) => {
    const n = (counts.get(category) ?? 0) + 1;
    counts.set(category, n);
    out.push({
      name: `${category}#${n}: ${what}`,
      category,
      method,
      target,
      headers,
      body: body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'),
      codes,
    });
  };
  /** A write target: POST to the collection (id in the body) or PUT to an id (new or existing). */
  const writeTarget = (): { method: string; target: string; id: string } => {
    const id = rnd() < 0.3 && opts.existingIds.length ? pick(opts.existingIds) : `/corpus/${word()}`;
    return rnd() < 0.4 ? { method: 'POST', target: '/api/services', id } : { method: 'PUT', target: `/api/services/${id}`, id };
  };
  const record = (id: string, fields: Record<string, unknown>) => JSON.stringify({ id, ...fields });

  // --- bad JSON: not parsable at all -----------------------------------------------------------
  const brokenJson = [
    (id: string) => `{"id":"${id}","acl":"path_beg -i /a"`,
    (id: string) => `{"id":"${id}","acl":"path_beg -i /a",}`,
    (id: string) => `{'id':'${id}','acl':'path_beg -i /a'}`,
    (id: string) => `{id:"${id}",acl:"x"}`,
    (id: string) => `{"id":"${id}","acl":NaN}`,
    (id: string) => `{"id":"${id}" "acl":"x"}`,
    (id: string) => `{"id":"${id}","acl":"x"} trailing`,
    (id: string) => `{"id":"${id}","acl":"x" // comment\n}`,
    (id: string) => `{"id":"${id}","acl":"\\x41"}`,
    (id: string) => `{"id":"${id}","acl":"\\u12"}`,
    () => '{"id":"/a","acl":"unterminated',
    () => '[{"id":"/a"',
    () => 'id=/a&acl=path_beg',
    () => '<xml><id>/a</id></xml>',
    () => 'undefined',
    () => '{{}}',
    () => '\u00ef\u00bb\u00bf{"id":"/a"}',
    () => '{"id":"/a","acl":"x"}}',
  ];
  for (let i = 0; i < per; i++) {
    const t = writeTarget();
    if (i % 9 === 8) {
      // Binary garbage (never valid UTF-8 JSON; refused as bad UTF-8 before it is parsed).
      const bytes = Buffer.from(Array.from({ length: int(1, 200) }, () => int(0, 255)));
      bytes[0] = 0xff;
      add('bad-json', 'binary garbage', t.method, t.target, { ...auth, 'Content-Type': pick(['application/json', 'application/octet-stream', 'text/plain']) }, bytes, ['BAMBOO_BAD_JSON', 'BAMBOO_INVALID_ENCODING']);
      continue;
    }
    const body = pick(brokenJson)(t.id);
    add('bad-json', `unparsable ${JSON.stringify(body.slice(0, 30))}`, t.method, t.target, { ...auth, 'Content-Type': pick(['application/json', 'application/x-www-form-urlencoded', 'text/plain']) }, body, ['BAMBOO_BAD_JSON']);
  }

  // --- wrong types: valid JSON, wrong shape ------------------------------------------------------
  const wrongValues: unknown[] = [42, -1, 3.5, true, false, null, [], ['path_beg /a'], {}, { acl: 'x' }, 1e308];
  const wrongBodies: Array<[string, (id: string) => string, ErrorCode[]]> = [
    ['acl of a wrong type', (id) => record(id, { acl: pick(wrongValues) }), ['BAMBOO_INVALID_BODY']],
    ['id of a wrong type', () => JSON.stringify({ id: pick(wrongValues), acl: pick(GOOD_ACLS) }), ['BAMBOO_INVALID_BODY', 'BAMBOO_INVALID_APP_ID']],
    ['config of a wrong type', (id) => record(id, { acl: pick(GOOD_ACLS), config: pick([42, 'x', true, ['a'], null]) }), ['BAMBOO_INVALID_CONFIG', 'BAMBOO_INVALID_BODY']],
    ['a Config value of a wrong type', (id) => record(id, { acl: pick(GOOD_ACLS), config: { [pick(['Weight', 'Mode', 'Note'])]: pick(wrongValues) } }), ['BAMBOO_INVALID_CONFIG']],
    ['a body that is not an object', () => JSON.stringify(pick([[1, 2], 'path_beg /a', 7, true, [{ id: '/a', acl: 'x' }]])), ['BAMBOO_INVALID_BODY']],
    ['a body that is null', () => 'null', ['BAMBOO_BAD_JSON', 'BAMBOO_INVALID_BODY']],
    ['acl and Config.Acl that differ', (id) => record(id, { acl: 'path_beg -i /a', config: { Acl: 'path_beg -i /b' } }), ['BAMBOO_INVALID_BODY']],
    ['the same field twice in two cases with different values', (id) => `{"id":"${id}","acl":"path_beg -i /a","ACL":"path_beg -i /b"}`, ['BAMBOO_INVALID_BODY']],
    ['too many Config keys', (id) => record(id, { acl: 'path_beg -i /a', config: Object.fromEntries(Array.from({ length: 65 + int(0, 50) }, (_, k) => [`K${k}`, 'v'])) }), ['BAMBOO_INVALID_CONFIG']],
    ['an empty ACL', (id) => record(id, { acl: pick(['', ' ', '   ', '\u00a0'.trim()]) }), ['BAMBOO_INVALID_ACL']],
    ['no ACL at all', (id) => record(id, {}), ['BAMBOO_INVALID_ACL']],
  ];
  for (let i = 0; i < per; i++) {
    const t = writeTarget();
    const [what, body, codes] = pick(wrongBodies);
    // POST needs the id in the body; a POST body without one is missing a field, also INVALID_BODY.
    add('wrong-types', what, t.method, t.target, { ...auth, ...json }, body(t.id), t.method === 'POST' && what === 'id of a wrong type' ? ['BAMBOO_INVALID_BODY', 'BAMBOO_INVALID_APP_ID'] : codes);
  }

  // --- huge bodies -------------------------------------------------------------------------------
  // (Marathon callbacks may be 256 times Bamboo.MaxBodyBytes, 16 MiB here: a body that large, refused
  // while it is still being written, ends in a reset rather than a readable 413 over a raw socket, so
  // test/integration/api.test.ts checks the callback limit with a small MaxBodyBytes instead.)
  for (let i = 0; i < per; i++) {
    const t = writeTarget();
    const over = opts.maxBodyBytes + int(1, opts.maxBodyBytes * 3);
    const kind = i % 4;
    if (kind === 0) {
      const pad = 'x'.repeat(over);
      add('huge-body', `${over}-byte ACL`, t.method, t.target, { ...auth, ...json }, record(t.id, { acl: pad }), ['BAMBOO_BODY_TOO_LARGE']);
    } else if (kind === 1) {
      const config = Object.fromEntries(Array.from({ length: 40 }, (_, k) => [`K${k}`, 'v'.repeat(Math.ceil(over / 40))]));
      add('huge-body', `${over}-byte Config`, t.method, t.target, { ...auth, ...json }, record(t.id, { acl: 'path_beg -i /a', config }), ['BAMBOO_BODY_TOO_LARGE']);
    } else if (i % 8 === 7) {
      // Headers beyond Node's 16 KiB limit: refused before any route runs.
      add('huge-body', 'a 20 KiB Cookie header', t.method, t.target, { ...auth, ...json, Cookie: `c=${'k'.repeat(20000 + int(0, 5000))}` }, record(t.id, { acl: pick(GOOD_ACLS) }), ['BAMBOO_HEADERS_TOO_LARGE']);
    } else {
      // Too long for validation though small enough for the body limit: a 1,025..4,000-character ACL.
      add('huge-body', 'an ACL over 1,024 characters', t.method, t.target, { ...auth, ...json }, record(t.id, { acl: `path_beg -i /${'a'.repeat(int(1025, 4000))}` }), ['BAMBOO_INVALID_ACL']);
    }
  }

  // --- control characters: in the ACL, a Config value, the id ------------------------------------
  for (let i = 0; i < per; i++) {
    const t = writeTarget();
    const c = pick(LINE_BREAKERS);
    const acl = pick(GOOD_ACLS);
    const at = int(0, acl.length);
    const dirty = acl.slice(0, at) + c + acl.slice(at);
    const where = i % 4;
    if (where <= 1) {
      add('control-chars', `ACL with U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`, t.method, t.target, { ...auth, ...json }, record(t.id, { acl: dirty }), ['BAMBOO_INVALID_ACL']);
    } else if (where === 2) {
      add('control-chars', `Config value with U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`, t.method, t.target, { ...auth, ...json }, record(t.id, { acl, config: { Note: dirty } }), ['BAMBOO_INVALID_CONFIG']);
    } else {
      const id = `/corpus/${word()}${c}${word()}`;
      add('control-chars', `id with U+${c.charCodeAt(0).toString(16).padStart(4, '0')} in the body`, 'POST', '/api/services', { ...auth, ...json }, JSON.stringify({ id, acl }), ['BAMBOO_INVALID_APP_ID']);
    }
  }

  // --- HAProxy directive injection ---------------------------------------------------------------
  for (let i = 0; i < per; i++) {
    const t = writeTarget();
    const inj = pick(INJECTED);
    const sep = pick(['\n', '\r\n', '\r', '\u2028', '\n\n', '\n ']);
    const acl = `${pick(GOOD_ACLS)}${sep}${inj}`;
    if (i % 3 === 2) {
      add('injection', `Config value injecting ${JSON.stringify(inj.trim().slice(0, 20))}`, t.method, t.target, { ...auth, ...json }, record(t.id, { acl: 'path_beg -i /a', config: { [pick(['Note', 'Mode', 'Weight'])]: `v${sep}${inj}` } }), ['BAMBOO_INVALID_CONFIG']);
    } else if (i % 7 === 6) {
      // The injection in Config.Acl instead of the top-level field.
      add('injection', `Config.Acl injecting ${JSON.stringify(inj.trim().slice(0, 20))}`, t.method, t.target, { ...auth, ...json }, record(t.id, { config: { Acl: acl } }), ['BAMBOO_INVALID_ACL', 'BAMBOO_INVALID_CONFIG']);
    } else {
      add('injection', `ACL injecting ${JSON.stringify(inj.trim().slice(0, 20))}`, t.method, t.target, { ...auth, ...json }, record(t.id, { acl }), ['BAMBOO_INVALID_ACL']);
    }
  }

  // --- path traversal and odd ids ----------------------------------------------------------------
  const oddIds: Array<[string, ErrorCode[]]> = [
    ['/api/services/../../etc/passwd', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services/..', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/../../etc/passwd', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services/%2e%2e/%2e%2e/etc/passwd', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services/%2Fcorpus%2F..%2Fx', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/./x', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services///corpus', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus//x', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/x/', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services/%2F', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/a%20b', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/a+b', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/%C3%BC', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/\u00fc\u4e2d', ['BAMBOO_BAD_REQUEST']],
    ['/api/services//corpus/%E2%80%A8x', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/%00', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/%0Abackend%20evil', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/%0D%0A', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/%', ['BAMBOO_INVALID_APP_ID', 'BAMBOO_INVALID_PARAMETER']],
    ['/api/services//corpus/%zz', ['BAMBOO_INVALID_APP_ID', 'BAMBOO_INVALID_PARAMETER']],
    ['/api/services//corpus/%E2%80', ['BAMBOO_INVALID_APP_ID', 'BAMBOO_INVALID_PARAMETER']],
    ['/api/services//corpus/a;b', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/a:b', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/a\\b', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/$(id)', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/`id`', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/"x"', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/x\'y', ['BAMBOO_INVALID_APP_ID']],
    ['/api/services//corpus/<script>', ['BAMBOO_INVALID_APP_ID']],
    [`/api/services//corpus/${'a'.repeat(600)}`, ['BAMBOO_INVALID_APP_ID']],
    [`/api/services//corpus/${'b'.repeat(5000)}`, ['BAMBOO_INVALID_APP_ID', 'BAMBOO_INVALID_PARAMETER']],
    // Not even valid HTTP: raw spaces, tabs and non-ASCII bytes in the request target.
    ['/api/services//corpus/a b', ['BAMBOO_BAD_REQUEST']],
    ['/api/services//corpus/a\tb', ['BAMBOO_BAD_REQUEST']],
    ['/api/../api/services', ['BAMBOO_NOT_FOUND']],
    ['/api/./services', ['BAMBOO_NOT_FOUND']],
    ['//api/services', ['BAMBOO_NOT_FOUND']],
    ['/api//services', ['BAMBOO_NOT_FOUND']],
    ['/api/services/../../../../package.json', ['BAMBOO_INVALID_APP_ID']],
    ['/ui/../../package.json', ['BAMBOO_NOT_FOUND']],
    ['/ui/%2e%2e/%2e%2e/package.json', ['BAMBOO_NOT_FOUND']],
    ['/ui/..%2F..%2Fpackage.json', ['BAMBOO_NOT_FOUND']],
    ['/ui/%2Fetc%2Fpasswd', ['BAMBOO_NOT_FOUND']],
    ['/ui//etc/passwd', ['BAMBOO_NOT_FOUND']],
    ['/../../etc/passwd', ['BAMBOO_NOT_FOUND']],
    ['/%2e%2e/%2e%2e/etc/passwd', ['BAMBOO_NOT_FOUND']],
  ];
  for (let i = 0; i < per; i++) {
    const [target, codes] = oddIds[i % oddIds.length];
    const onServices = target.startsWith('/api/services/');
    const verbs = onServices ? ['GET', 'PUT', 'DELETE'] : ['GET', 'PUT', 'DELETE', 'POST'];
    const method = verbs[Math.floor(i / oddIds.length) % verbs.length];
    const body = method === 'PUT' || method === 'POST' ? JSON.stringify({ acl: pick(GOOD_ACLS) }) : undefined;
    // Off the services routes a write method is either a 405 (a known route) or a 404.
    const allowed: ErrorCode[] = onServices ? codes : [...codes, 'BAMBOO_METHOD_NOT_ALLOWED'];
    add('odd-ids', `${method} ${target.slice(0, 60)}`, method, target, { ...auth, ...(body ? json : {}) }, body, allowed);
  }

  // --- unknown fields ----------------------------------------------------------------------------
  // Unknown fields are ignored (named in a Warning header), as Go's decoder ignored them for Bamboo;
  // the names of prototype poisoning are refused at any depth, and Config keys must be identifiers.
  const unknown = ['__proto__', 'constructor', 'prototype'];
  const config = ['alc', 'extra', 'Id ', 'acl\u0000', '__proto__', 'servers', 'backend', 'Acls', 'identifier', 'version', 'Config2', ''];
  for (let i = 0; i < per; i++) {
    const t = writeTarget();
    const k = pick(unknown);
    if (i % 4 === 3) {
      // An unknown nested field name that is not a Config key.
      const c = pick(config);
      add('unknown-fields', `Config key ${JSON.stringify(c)}`, t.method, t.target, { ...auth, ...json }, record(t.id, { acl: pick(GOOD_ACLS), config: { [`${pick([' ', '-', '1', '.', '_', '$'])}${c}${pick([' ', '\n', '$', '/', ''])}`]: 'v' } }), ['BAMBOO_INVALID_CONFIG', 'BAMBOO_INVALID_BODY']);
      continue;
    }
    // Top level, or nested in config.
    const value = JSON.stringify(pick(['x', 1, true, null, {}, []]));
    const body = i % 4 === 2
      ? `{"id":${JSON.stringify(t.id)},"acl":${JSON.stringify(pick(GOOD_ACLS))},"config":{${JSON.stringify(k)}:${value}}}`
      : `{"id":${JSON.stringify(t.id)},"acl":${JSON.stringify(pick(GOOD_ACLS))},${JSON.stringify(k)}:${value}}`;
    add('unknown-fields', `poisoning field ${JSON.stringify(k)}`, t.method, t.target, { ...auth, ...json }, body, ['BAMBOO_INVALID_BODY']);
  }

  // --- wrong methods -----------------------------------------------------------------------------
  const routes: Array<[string, string[]]> = [
    ['/api/services', ['PUT', 'DELETE', 'PATCH', 'OPTIONS']],
    ['/api/services//corpus/x', ['POST', 'PATCH', 'OPTIONS']],
    ['/api/state', ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']],
    ['/api/workers', ['POST', 'PUT', 'DELETE', 'PATCH']],
    ['/status', ['POST', 'PUT', 'DELETE', 'PATCH']],
    ['/api/marathon/event_callback', ['GET', 'PUT', 'DELETE', 'PATCH']],
    ['/', ['POST', 'PUT', 'DELETE', 'PATCH']],
    ['/ui/app.js', ['POST', 'PUT', 'DELETE']],
  ];
  const exotic = ['PROPFIND', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'SEARCH', 'PURGE', 'REPORT', 'MKACTIVITY', 'TRACE'];
  for (let i = 0; i < per; i++) {
    const [target, methods] = routes[i % routes.length];
    const method = i % 5 === 4 ? pick(exotic) : pick(methods);
    const withBody = method !== 'TRACE' && rnd() < 0.5;
    const body = withBody ? record(`/corpus/${word()}`, { acl: pick(GOOD_ACLS) }) : undefined;
    add('wrong-method', `${method} ${target}`, method, target, { ...auth, ...(body ? json : {}) }, body, ['BAMBOO_METHOD_NOT_ALLOWED', 'BAMBOO_NOT_FOUND']);
  }

  // --- missing or wrong auth ---------------------------------------------------------------------
  const badAuth = (): Record<string, string> => {
    switch (int(0, 9)) {
      case 0:
        return {};
      case 1:
        return { Authorization: 'Bearer wrong-token' };
      case 2:
        return { Authorization: `Bearer ${opts.token}x` };
      case 3:
        return { Authorization: `Bearer ${opts.token.slice(0, -1)}` };
      case 4:
        return { Authorization: `Basic ${Buffer.from(`admin:${opts.token}`).toString('base64')}` };
      case 5:
        return { Authorization: 'Bearer' };
      case 6:
        return { Authorization: `Token ${opts.token}` };
      case 7:
        return { Authorization: `Bearer ${opts.token} ${opts.token}` };
      case 8:
        return { Authorization: `Bearer ${opts.token.toUpperCase()}` };
      default:
        return { Authorization: '' };
    }
  };
  for (let i = 0; i < per; i++) {
    const h = badAuth();
    const what = h.Authorization === undefined ? 'no Authorization' : `Authorization ${JSON.stringify(h.Authorization.slice(0, 12))}...`;
    const kind = i % 5;
    if (kind === 0 || kind === 1) {
      // A perfectly good write, refused for its credentials alone.
      const t = writeTarget();
      add('auth', `${what} on a good ${t.method}`, t.method, t.target, { ...h, ...json }, record(t.id, { acl: pick(GOOD_ACLS) }), ['BAMBOO_UNAUTHORIZED']);
    } else if (kind === 2) {
      const id = opts.existingIds.length ? pick(opts.existingIds) : `/corpus/${word()}`;
      add('auth', `${what} on DELETE of ${id}`, 'DELETE', `/api/services/${id}`, h, undefined, ['BAMBOO_UNAUTHORIZED']);
    } else if (kind === 3) {
      // Unredacted state needs the token; a wrong one is refused rather than silently redacted.
      const hh = h.Authorization === undefined ? {} : h;
      add('auth', `${what} on GET /api/state?unredacted=1`, 'GET', '/api/state?unredacted=1', hh, undefined, ['BAMBOO_UNAUTHORIZED']);
    } else {
      // A bad body behind bad credentials: auth is checked first, so the body is never read.
      const t = writeTarget();
      add('auth', `${what} with an injected ACL`, t.method, t.target, { ...h, ...json }, record(t.id, { acl: `path_beg /a\n${pick(INJECTED)}` }), ['BAMBOO_UNAUTHORIZED']);
    }
  }
  return out;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends one request over a fresh TCP connection, byte for byte, and reads the answer until the server
 * closes (`Connection: close`). Rejects on a connection error or after `timeoutMs`.
 */
export function sendRaw(port: number, req: Pick<CorpusRequest, 'method' | 'target' | 'headers' | 'body'>, timeoutMs = 10000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer to ${req.method} ${req.target.slice(0, 80)} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => {
      const headers: Record<string, string> = { Host: `127.0.0.1:${port}`, Connection: 'close', ...req.headers };
      if (req.body) headers['Content-Length'] = String(req.body.length);
      const head = `${req.method} ${req.target} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
      sock.write(Buffer.concat([Buffer.from(head, 'utf8'), req.body ?? Buffer.alloc(0)]));
    });
    sock.on('data', (b) => chunks.push(b));
    // The server may answer (413) and close before the whole body was written: keep what came back.
    sock.on('error', (err) => {
      if (chunks.length === 0) {
        clearTimeout(timer);
        reject(err);
      }
    });
    sock.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      const split = raw.indexOf('\r\n\r\n');
      const head = raw.subarray(0, split < 0 ? raw.length : split).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!m || split < 0) {
        reject(new Error(`no HTTP answer to ${req.method} ${req.target.slice(0, 80)}: ${JSON.stringify(head.slice(0, 200))}`));
        return;
      }
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      let body: Buffer = raw.subarray(split + 4);
      if (/chunked/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
      resolve({ status: Number(m[1]), headers, body: body.toString('utf8') });
    });
  });
}

/** Decodes a chunked body (sizes count bytes, so this works on the raw bytes). */
function dechunk(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let rest = raw;
  for (;;) {
    const nl = rest.indexOf('\r\n');
    if (nl < 0) break;
    const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
    if (!size) break;
    parts.push(rest.subarray(nl + 2, nl + 2 + size));
    rest = rest.subarray(nl + 2 + size + 2);
  }
  return Buffer.concat(parts);
}
