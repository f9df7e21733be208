/**
 * Liquid filters that give templates what Bamboo's Go template functions gave (`hasKey`,
 * `getService`, `Split`, `Contains`, `Join`, `Replace`, `ToUpper`, `ToLower`, `ToInt`), in Liquid's
 * idiom, plus a few helpers for writing valid HAProxy text. Every filter is pure and never throws on
 * odd input: it returns nil, false or "" instead, so a template decides what to do.
 *
 * Liquid's built-in `split`, `join`, `replace`, `upcase`, `downcase` and the `contains` operator
 * already cover most of Bamboo's functions; docs/templates.md has the full table.
 */
import { firstNonPrintable } from './acl.js';
import type { AppData, HealthCheckData, ServiceRecord } from './model.js';
import { redirectToHttps, sslCert } from './tls-labels.js';

function isRecord(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

/** `Services | has_key: app.Id` (Bamboo: `hasKey $services $app.Id`). True when the map has that own key. */
export function hasKey(map: unknown, key: unknown): boolean {
  return isRecord(map) && typeof key === 'string' && Object.prototype.hasOwnProperty.call(map, key);
}

/** `Services | get_service: app.Id` (Bamboo: `getService $services $app.Id`): the record, or nil. */
export function getService(map: unknown, key: unknown): ServiceRecord | null {
  return hasKey(map, key) ? ((map as Record<string, unknown>)[key as string] as ServiceRecord) : null;
}

/**
 * `app.Env | get: "BAMBOO_TCP_PORT"`: the map's own value for that key, or nil. Unlike
 * `app.Env.BAMBOO_TCP_PORT` outside an `if`, a missing key is not an error (templates run with
 * strict variables), and it costs no exception inside an `if` either.
 */
export function get(map: unknown, key: unknown): unknown {
  return hasKey(map, key) ? (map as Record<string, unknown>)[key as string] : null;
}

/**
 * `"8080" | to_int` (Bamboo: `ToInt`, Go's strconv.Atoi): the integer, or nil when the value is not
 * a whole decimal number (Go returned an error there). Surrounding blanks are ignored.
 */
export function toInt(value: unknown): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null;
  if (typeof value !== 'string') return null;
  const s = value.trim();
  if (!/^[+-]?\d{1,15}$/.test(s)) return null;
  return Number.parseInt(s, 10);
}

/**
 * `app.Id | contains: "api"` (Bamboo: `Contains`): substring test for strings, membership for
 * arrays, own key for maps. The Liquid operator (`{% if a contains b %}`) does the same inside tags;
 * the filter is for `assign`.
 */
export function contains(value: unknown, needle: unknown): boolean {
  if (typeof value === 'string') return value.includes(String(needle ?? ''));
  if (Array.isArray(value)) return value.some((v) => v === needle);
  if (isRecord(value)) return hasKey(value, needle);
  return false;
}

/**
 * `task.Id | haproxy_name`: the text with every character HAProxy does not accept in a proxy,
 * server or ACL name (anything but letters, digits, `-`, `_`, `.` and `:`) replaced by `_`.
 */
export function haproxyName(value: unknown): string {
  const s = value === null || value === undefined ? '' : String(value);
  const out = s.replace(/[^A-Za-z0-9_.:-]/g, '_');
  return out === '' ? '_' : out;
}

const SAFE_WORD = /^[A-Za-z0-9_./:~%?&=+@,;!*()-]+$/;

/**
 * `app.HealthCheckPath | haproxy_quote`: one HAProxy config word. Text made only of safe characters
 * is returned as is; anything else is wrapped in single quotes (no escapes or `$` expansion inside;
 * an embedded `'` becomes `'\''`). Control characters cannot be represented on a config line and
 * are removed.
 */
export function haproxyQuote(value: unknown): string {
  let s = value === null || value === undefined ? '' : String(value);
  if (firstNonPrintable(s) >= 0) {
    // eslint-disable-next-line no-control-regex
    s = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '');
  }
  if (s !== '' && SAFE_WORD.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `HAProxy.HttpBind | bind_host`: the address part of a bind spec, so that other listeners bind on
 * the same interface: `127.0.0.1:8080` -> `127.0.0.1`, `*:80` -> `*`, `:80` -> ``, `[::1]:80` ->
 * `[::1]`. Text without a port is returned unchanged.
 */
export function bindHost(value: unknown): string {
  const s = typeof value === 'string' ? value.trim() : '';
  const m = /^(.*):(\d+)$/.exec(s);
  return m ? m[1] : s;
}

/**
 * Words of `HAProxy.BindOptions` that HAProxy 2.6 only accepts in `global`, not on a `bind` line.
 * `noreuseport` is the one that matters: it stops two HAProxy instances on one port silently
 * splitting traffic (SO_REUSEPORT).
 */
export const GLOBAL_ONLY_BIND_OPTIONS = new Set(['noreuseport']);

/**
 * `HAProxy.BindOptions | bind_options`: the options to append to a `bind` line, with a leading
 * space, or "" when there are none. Global-only words (`noreuseport`) are left out; the default
 * template puts them in `global` (see `global_options`).
 */
export function bindOptions(value: unknown): string {
  const words = typeof value === 'string' ? value.split(/\s+/).filter((w) => w !== '' && !GLOBAL_ONLY_BIND_OPTIONS.has(w)) : [];
  return words.length > 0 ? ` ${words.join(' ')}` : '';
}

/** `HAProxy.BindOptions | global_options`: the global-only words of BindOptions, as an array. */
export function globalOptions(value: unknown): string[] {
  return typeof value === 'string' ? value.split(/\s+/).filter((w) => GLOBAL_ONLY_BIND_OPTIONS.has(w)) : [];
}

const HTTP_LIKE = new Set(['HTTP', 'HTTPS', 'MESOS_HTTP', 'MESOS_HTTPS']);
const TCP_LIKE = new Set(['TCP', 'MESOS_TCP']);

/**
 * `app | health_check`: the one health check HAProxy can mirror, or nil: the first HTTP-like check
 * (the one `HealthCheckPath` comes from), else the first TCP check. COMMAND checks cannot be
 * mirrored. Use its `PortIndex` to pick the port to check: `task.Ports[hc.PortIndex]`.
 */
export function healthCheck(app: unknown): HealthCheckData | null {
  if (!isRecord(app) || !Array.isArray(app.HealthChecks)) return null;
  const checks = (app as unknown as AppData).HealthChecks.filter(isRecord);
  return checks.find((c) => HTTP_LIKE.has(c.Protocol)) ?? checks.find((c) => TCP_LIKE.has(c.Protocol)) ?? null;
}

/**
 * `{% if app.Env.X | truthy %}` (Bamboo: `{{ if $app.Env.X }}`): Go text/template's truth, where
 * false, 0, nil and an empty string, list or map are false. Liquid alone treats `""`, `0` and `[]` as
 * true, so a ported `{{ if }}` on an env var set to "" would silently flip.
 */
export function truthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === '') return false;
  if (typeof value === 'number') return !Number.isNaN(value);
  if (Array.isArray(value)) return value.length > 0;
  if (isRecord(value)) return Object.keys(value).length > 0;
  return true;
}

/**
 * `Apps | http_order`: the order of the HTTP routing rules. Reverse id order (so `/group/app` is tried
 * before `/group`), then, stably, a higher `Routing.ports[0].backendWeight` first (marathon-lb's
 * HAPROXY_0_BACKEND_WEIGHT; a HAPROXY_0_PATH makes it 1, so path rules precede host-only rules).
 */
export function httpOrder(apps: unknown): unknown[] {
  if (!Array.isArray(apps)) return [];
  const weight = (a: unknown): number => {
    const w = isRecord(a) && isRecord(a.Routing) && Array.isArray(a.Routing.ports) && isRecord(a.Routing.ports[0]) ? a.Routing.ports[0].backendWeight : 0;
    return typeof w === 'number' && Number.isFinite(w) ? w : 0;
  };
  return apps.slice().reverse().map((a, i) => ({ a, i, w: weight(a) })).sort((x, y) => y.w - x.w || x.i - y.i).map((x) => x.a);
}

/** Every filter this module adds, by its Liquid name. */
export const BAMBOO_FILTERS: Record<string, (value: unknown, ...args: unknown[]) => unknown> = {
  has_key: hasKey,
  get_service: getService,
  get,
  to_int: toInt,
  contains,
  haproxy_name: haproxyName,
  haproxy_quote: haproxyQuote,
  bind_host: bindHost,
  bind_options: bindOptions,
  global_options: globalOptions,
  health_check: healthCheck,
  truthy,
  redirect_to_https: redirectToHttps,
  ssl_cert: sslCert,
  http_order: httpOrder,
};
