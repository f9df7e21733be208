/**
 * Coded API errors: every error the REST API can answer has a stable code, an HTTP status and a
 * one-line doc. The body is always `{"code":"BAMBOO_...","message":"..."}` (plus, for some codes, a
 * few documented extra fields such as `current`). Clients should branch on `code`, never on the
 * message, which says in words what was wrong and how to fix it. docs/api.md lists the same table.
 */

export interface ErrorSpec {
  status: number;
  /** One line: when this error is answered. */
  doc: string;
}

export const ERROR_CODES = {
  BAMBOO_BAD_REQUEST: { status: 400, doc: 'The request is not valid HTTP (e.g. raw spaces, control characters or non-ASCII bytes in the URL); percent-encode the URL.' },
  BAMBOO_BAD_JSON: { status: 400, doc: 'The request body is not valid JSON (or is empty where a body is required).' },
  BAMBOO_INVALID_BODY: { status: 400, doc: 'The body has the wrong shape: a missing field, or a value of the wrong type.' },
  BAMBOO_INVALID_APP_ID: { status: 400, doc: 'The app id is not a valid Marathon app id (`/group/app`, letters, digits, `-`, `.`, `_`).' },
  BAMBOO_INVALID_ACL: { status: 400, doc: 'The ACL is empty, too long, not one printable line (control characters), not valid Unicode, or reaches outside the request (files, environment, process state); `reason` says which (`ACL_*`).' },
  BAMBOO_ACL_REJECTED_BY_HAPROXY: { status: 400, doc: 'HAProxy itself rejects the rule (`haproxy -c` on a probe config holding it, as the workers will read it): the message and `haproxy` carry HAProxy\'s reasons, e.g. `unknown fetch method \'hdrr\'`. Nothing was stored.' },
  BAMBOO_INVALID_CONFIG: { status: 400, doc: 'A `Config` key or value is not acceptable (keys are identifiers, values are short printable strings of valid Unicode).' },
  BAMBOO_INVALID_LABEL: { status: 400, doc: 'A marathon-lb routing key in `Config` (`HAPROXY_GROUP`, `HAPROXY_{n}_VHOST`, `_PATH`, `_PORT`, `_SSL_CERT`, ...) has a value Bamboo does not accept (docs/labels.md); `key` names it. Nothing was stored.' },
  BAMBOO_INVALID_PARAMETER: { status: 400, doc: 'A query parameter or header (such as `If-Match`) has a value the API does not understand.' },
  BAMBOO_INVALID_ENCODING: { status: 400, doc: 'The body is not valid UTF-8; a lenient decoder would have stored U+FFFD in place of the bad bytes.' },
  BAMBOO_UNAUTHORIZED: { status: 401, doc: 'The request needs `Authorization: Bearer <token>` (one of `Bamboo.AuthTokens`, or `Bamboo.AuthToken`) and it was missing or wrong.' },
  BAMBOO_FORBIDDEN: { status: 403, doc: 'Refused whatever the bearer token: unredacted `/api/state` when no token is configured, or a Marathon callback without the `Bamboo.CallbackSecret` in its URL.' },
  BAMBOO_NOT_FOUND: { status: 404, doc: 'No such route.' },
  BAMBOO_SERVICE_NOT_FOUND: { status: 404, doc: 'No service record (rule) exists for this app id.' },
  BAMBOO_AUDIT_NOT_FOUND: { status: 404, doc: 'No audit entry has this id (never written, or pruned by `Audit.MaxEntries` / `Audit.MaxAgeHours`).' },
  BAMBOO_METHOD_NOT_ALLOWED: { status: 405, doc: 'The route exists but not with this method; the `Allow` header lists the methods it has.' },
  BAMBOO_SERVICE_EXISTS: { status: 409, doc: 'A create-only write (`If-None-Match: *`) of a service record that already exists; the body carries `current`.' },
  BAMBOO_VERSION_CONFLICT: { status: 409, doc: 'The record changed since the version given in `If-Match`; the body carries `current` and `version`.' },
  BAMBOO_NOTHING_HELD: { status: 409, doc: 'A confirm of a held Marathon answer while none is held (it applied, or Marathon recovered); see `marathon.held` in `GET /status`.' },
  BAMBOO_HELD_CHANGED: { status: 409, doc: 'A confirm named another answer than the one held now (Marathon\'s answer changed since it was read); the body carries `held`. Check it and confirm its `id`.' },
  BAMBOO_BODY_TOO_LARGE: { status: 413, doc: 'The body is larger than `Bamboo.MaxBodyBytes` (256 times that for Marathon callbacks, whose deployment events list every app; those are scanned as they arrive, never held).' },
  BAMBOO_UNSUPPORTED_MEDIA_TYPE: { status: 415, doc: 'The body is in a format the API cannot read; send JSON.' },
  BAMBOO_RATE_LIMITED: { status: 429, doc: 'Too many rule writes from this credential (anonymous: this client address); `Retry-After` says how many seconds to wait. Limits: `Bamboo.WriteRateBurst`, `Bamboo.WriteRatePerMinute`.' },
  BAMBOO_HEADERS_TOO_LARGE: { status: 431, doc: 'The request headers are larger than the server accepts (16 KiB); send fewer or shorter headers.' },
  BAMBOO_INTERNAL: { status: 500, doc: 'An unexpected error; the api logged it. Retry, and report it if it persists.' },
  BAMBOO_ZK_UNAVAILABLE: { status: 503, doc: 'ZooKeeper is unreachable or timed out. Nothing was changed, unless the connection broke while a write was on its way (the message says so): then read the record back or retry with If-Match. See `GET /status`.' },
  BAMBOO_RULE_CHECK_UNAVAILABLE: { status: 503, doc: 'The rule could not be checked with HAProxy (not installed or not runnable on the api host, timed out, or too many checks waiting); nothing was stored. Retry later; `haproxy` in `GET /status` says why (`Bamboo.RuleCheck`).' },
  BAMBOO_SNAPSHOT_UNAVAILABLE: { status: 503, doc: 'No Marathon snapshot has been fetched or stored yet; see `marathon` in `GET /status`.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error the API answers as `{code, message, ...extra}` with the code's status. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra documented fields merged into the body (e.g. `current`, `version`). */
    readonly extra: Record<string, unknown> = {},
    /** Extra response headers (e.g. `Allow`, `WWW-Authenticate`). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = ERROR_CODES[code].status;
  }

  body(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.extra };
  }
}

/** The markdown table of every code (docs/api.md carries a copy; a test keeps them equal). */
export function errorCodesTable(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, spec]) => `| \`${code}\` | ${spec.status} | ${spec.doc.replace(/\|/g, '\\|')} |`);
  return ['| Code | Status | When |', '|---|---|---|', ...rows].join('\n');
}
