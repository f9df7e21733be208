/**
 * marathon-lb's routing labels (`HAPROXY_GROUP`, `HAPROXY_{n}_VHOST`, ...) read strictly.
 *
 * Label values come from anyone who can deploy an app, and a rule's `Config` from anyone with a write
 * credential: nothing here is trusted. Every value is checked against a narrow form (host names per
 * RFC 1123, path prefixes of safe characters, numbers in range, words from an allow-list), so what the
 * parsed settings hold can be written into haproxy.cfg as is. A value that fails is left out for that
 * app with a problem saying why (never the value itself, which may be long or hold secrets).
 *
 * The meanings follow marathon-lb where it defines them; docs/labels.md lists every difference.
 * Pure: no clock, no I/O.
 */

/** One service port's routing settings, as the template data carries them (`app.Routing.ports[n]`). */
export interface PortRouting {
  /** The service port index `n`. */
  index: number;
  /** Host names (lower case) requests must name in their Host header; empty: no host routing. */
  vhosts: string[];
  /** Path prefixes (HAProxy `path_beg`); empty: every path. */
  paths: string[];
  /** `HAPROXY_{n}_ENABLED`; false: the port is not routed at all. */
  enabled: boolean;
  /**
   * `http` or `tcp`: HAPROXY_{n}_MODE, else `http` for a port with a virtual host, else Bamboo's
   * default (port 0 is routed over HTTP, the other ports are TCP listeners).
   */
  mode: 'http' | 'tcp';
  /**
   * The mode of a listener of the port's own (HAPROXY_{n}_PORT), as marathon-lb picks it:
   * HAPROXY_{n}_MODE, else `http` with a virtual host, else `tcp`.
   */
  listenerMode: 'http' | 'tcp';
  /** `HAPROXY_{n}_PORT`: the port of a listener of its own; 0: none asked for. */
  port: number;
  /** A load-balancing algorithm from BALANCE_ALGORITHMS; "" for the template's default. */
  balance: string;
  sticky: boolean;
  redirectToHttps: boolean;
  /** A certificate name (never a path) from the worker's certificate directory; "" for none. */
  sslCert: string;
  /** Order of the HTTP routing rules: higher first (marathon-lb's HAPROXY_{n}_BACKEND_WEIGHT). */
  backendWeight: number;
  /** Index of the task port health checks target; -1: the health check's own port index. */
  healthcheckPortIndex: number;
}

/** A label (or rule Config key) left out, and why. */
export interface RoutingProblem {
  key: string;
  reason: string;
}

/** Load-balancing algorithms a label may ask for (HAProxy 2.6 `balance` words that take no argument). */
export const BALANCE_ALGORITHMS: readonly string[] = ['first', 'leastconn', 'random', 'roundrobin', 'source', 'static-rr', 'uri'];

/** Service ports beyond this index are not read (marathon-lb has no bound; a label cannot create ports). */
export const MAX_PORT_INDEX = 63;
const MAX_VHOSTS = 32;
const MAX_PATHS = 16;
const MAX_PATH_LENGTH = 256;
const MAX_GROUPS = 16;
export const MAX_BACKEND_WEIGHT = 1000;

const PER_PORT = ['VHOST', 'PATH', 'ENABLED', 'MODE', 'PORT', 'BALANCE', 'STICKY', 'REDIRECT_TO_HTTPS', 'SSL_CERT', 'BACKEND_WEIGHT', 'BACKEND_HEALTHCHECK_PORT_INDEX'] as const;
type PerPortKey = (typeof PER_PORT)[number];
const PER_PORT_SET = new Set<string>(PER_PORT);
const KEY = /^HAPROXY_(\d{1,3})_([A-Z_]+)$/;

/** One RFC 1123 label: letters, digits and `-`, neither first nor last a `-`. */
const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** A path prefix: `/` then URL path characters HAProxy reads as one plain word (no quotes, `#`, `\`, `$`, braces, spaces). */
const PATH = /^\/[A-Za-z0-9._~!*+,;=:@%/-]*$/;
/** A certificate name: a file name in the certificate directory, never a path. */
const CERT_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const GROUP = /^[A-Za-z0-9._-]{1,63}$/;
const TRUE = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE = new Set(['false', 'f', 'no', 'n', '0']);

/** A host name per RFC 1123 (lower-cased), or null. marathon-lb matches hosts exactly: no wildcards. */
export function parseHost(raw: string): string | null {
  const h = raw.trim().toLowerCase();
  if (h.length === 0 || h.length > 253) return null;
  const labels = h.split('.');
  return labels.every((l) => HOST_LABEL.test(l)) ? h : null;
}

/** A safe path prefix, or null. */
export function parsePath(raw: string): string | null {
  return raw.length <= MAX_PATH_LENGTH && PATH.test(raw) && !raw.includes('//') ? raw : null;
}

function parseBool(raw: string): boolean | null {
  const v = raw.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  return null;
}

function parseInt10(raw: string, min: number, max: number): number | null {
  const v = raw.trim();
  if (!/^-?\d{1,6}$/.test(v)) return null;
  const n = Number(v);
  return n >= min && n <= max ? n : null;
}

/** `HAPROXY_GROUP`: comma-separated group names; null when any is not a name. */
export function parseGroups(raw: string): string[] | null {
  const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0 || parts.length > MAX_GROUPS || !parts.every((g) => GROUP.test(g))) return null;
  return [...new Set(parts)].sort();
}

/** The defaults of a port no label speaks about (Bamboo's behaviour: HTTP, routed by the default rule). */
export function defaultPortRouting(index: number): PortRouting {
  return {
    // Port 0 is the app's HTTP backend and the others TCP listeners, as in Bamboo's template.
    index, vhosts: [], paths: [], enabled: true, mode: index === 0 ? 'http' : 'tcp', listenerMode: 'tcp', port: 0, balance: '', sticky: false,
    redirectToHttps: false, sslCert: '', backendWeight: 0, healthcheckPortIndex: -1,
  };
}

/**
 * Checks one per-port value and writes it into `into`. Returns a reason when the value is refused
 * (then `into` is left as it was).
 */
function applyPortKey(into: PortRouting, key: PerPortKey, raw: string): string | null {
  switch (key) {
    case 'VHOST': {
      const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (parts.length === 0) return 'is empty';
      if (parts.length > MAX_VHOSTS) return `names more than ${MAX_VHOSTS} hosts`;
      const hosts: string[] = [];
      for (const p of parts) {
        const h = parseHost(p);
        if (h === null) return 'is not a comma-separated list of host names (RFC 1123: letters, digits, "-" and ".", no wildcards)';
        if (!hosts.includes(h)) hosts.push(h);
      }
      into.vhosts = hosts;
      return null;
    }
    case 'PATH': {
      const parts = raw.split(' ').filter((s) => s !== '');
      if (parts.length === 0) return 'is empty';
      if (parts.length > MAX_PATHS) return `names more than ${MAX_PATHS} paths`;
      if (!parts.every((p) => parsePath(p) !== null)) {
        return `is not a space-separated list of path prefixes (each starts with "/", at most ${MAX_PATH_LENGTH} characters of letters, digits and . _ ~ ! * + , ; = : @ % / -)`;
      }
      into.paths = [...new Set(parts)];
      // As marathon-lb: a path rule is tried before host-only rules unless a weight says otherwise.
      if (into.backendWeight === 0) into.backendWeight = 1;
      return null;
    }
    case 'ENABLED':
    case 'STICKY':
    case 'REDIRECT_TO_HTTPS': {
      const b = parseBool(raw);
      if (b === null) return 'is not true or false';
      if (key === 'ENABLED') into.enabled = b;
      else if (key === 'STICKY') into.sticky = b;
      else into.redirectToHttps = b;
      return null;
    }
    case 'MODE': {
      const m = raw.trim().toLowerCase();
      if (m !== 'http' && m !== 'tcp') return 'is not http or tcp';
      into.mode = m;
      return null;
    }
    case 'PORT': {
      const p = parseInt10(raw, 1, 65535);
      if (p === null) return 'is not a port number (1-65535)';
      into.port = p;
      return null;
    }
    case 'BALANCE': {
      const b = raw.trim().toLowerCase();
      if (!BALANCE_ALGORITHMS.includes(b)) return `is not one of ${BALANCE_ALGORITHMS.join(', ')}`;
      into.balance = b;
      return null;
    }
    case 'SSL_CERT': {
      const c = raw.trim();
      if (!CERT_NAME.test(c) || c === '.' || c === '..') return 'is not a certificate name (1-128 letters, digits, ".", "_", "-"; a name in the certificate directory, never a path)';
      into.sslCert = c;
      return null;
    }
    case 'BACKEND_WEIGHT': {
      const w = parseInt10(raw, -MAX_BACKEND_WEIGHT, MAX_BACKEND_WEIGHT);
      if (w === null) return `is not a whole number from -${MAX_BACKEND_WEIGHT} to ${MAX_BACKEND_WEIGHT}`;
      into.backendWeight = w;
      return null;
    }
    case 'BACKEND_HEALTHCHECK_PORT_INDEX': {
      const i = parseInt10(raw, 0, MAX_PORT_INDEX);
      if (i === null) return `is not a port index (0-${MAX_PORT_INDEX})`;
      into.healthcheckPortIndex = i;
      return null;
    }
  }
}

/** Is this key one of the routing keys (`HAPROXY_GROUP` or `HAPROXY_{n}_<setting>`)? */
export function isRoutingKey(key: string): boolean {
  if (key === 'HAPROXY_GROUP') return true;
  const m = KEY.exec(key);
  return m !== null && PER_PORT_SET.has(m[2]);
}

/** What one source (an app's labels, or a rule's Config) says about routing. */
export interface RoutingSettings {
  /** `HAPROXY_GROUP`, sorted; null when the source does not say. */
  groups: string[] | null;
  /** Port index -> the keys given for it, already checked (only valid values). */
  ports: Map<number, Array<[PerPortKey, string]>>;
  problems: RoutingProblem[];
}

/**
 * Reads the routing keys of a string map (labels, or a rule's Config). `portCount` bounds the port
 * indexes read: a key for a port the app does not have is a problem, not a setting. Keys that are not
 * routing keys are ignored (labels carry much else).
 */
export function readRoutingSettings(source: Readonly<Record<string, string>>, portCount: number): RoutingSettings {
  const out: RoutingSettings = { groups: null, ports: new Map(), problems: [] };
  for (const key of Object.keys(source).sort()) {
    const raw = source[key];
    if (key === 'HAPROXY_GROUP') {
      const g = parseGroups(raw);
      if (g === null) out.problems.push({ key, reason: `is not a comma-separated list of at most ${MAX_GROUPS} group names (letters, digits, ".", "_", "-")` });
      else out.groups = g;
      continue;
    }
    const m = KEY.exec(key);
    if (!m || !PER_PORT_SET.has(m[2])) continue;
    const n = Number(m[1]);
    if (n > MAX_PORT_INDEX || n >= Math.max(1, portCount)) {
      out.problems.push({ key, reason: `names service port ${n}, which the app does not have` });
      continue;
    }
    const probe = defaultPortRouting(n);
    const reason = applyPortKey(probe, m[2] as PerPortKey, raw);
    if (reason !== null) {
      out.problems.push({ key, reason });
      continue;
    }
    let list = out.ports.get(n);
    if (!list) out.ports.set(n, (list = []));
    list.push([m[2] as PerPortKey, raw]);
  }
  return out;
}

/**
 * One port's settings: defaults, then the keys of each source in order (a later source wins per key).
 * BACKEND_WEIGHT is applied after PATH so an explicit weight is never overridden by PATH's default.
 */
export function portRouting(index: number, sources: ReadonlyArray<RoutingSettings>): PortRouting {
  const p = defaultPortRouting(index);
  const entries: Array<[PerPortKey, string]> = [];
  for (const s of sources) for (const e of s.ports.get(index) ?? []) entries.push(e);
  // Later sources override earlier ones per key; weight last so PATH's implicit weight does not win.
  const last = new Map<PerPortKey, string>();
  for (const [k, v] of entries) last.set(k, v);
  for (const [k, v] of last) if (k !== 'BACKEND_WEIGHT') applyPortKey(p, k, v);
  const w = last.get('BACKEND_WEIGHT');
  if (w !== undefined) applyPortKey(p, 'BACKEND_WEIGHT', w);
  // As marathon-lb: without a MODE, a port with a virtual host is HTTP.
  if (!last.has('MODE') && p.vhosts.length > 0) p.mode = 'http';
  p.listenerMode = last.has('MODE') || p.vhosts.length > 0 ? p.mode : 'tcp';
  return p;
}

/**
 * The first routing key of a rule's Config that is not acceptable, with the reason; null when all
 * are. The api refuses such a rule (BAMBOO_INVALID_LABEL) so that what it stores renders as written.
 * Port indexes are bounded by MAX_PORT_INDEX only: the api does not know the app's ports.
 */
export function firstConfigProblem(config: Readonly<Record<string, string>>): RoutingProblem | null {
  const s = readRoutingSettings(config, MAX_PORT_INDEX + 1);
  return s.problems[0] ?? null;
}

// ---------------------------------------------------------------------------------------------
// Groups and allowed domains
// ---------------------------------------------------------------------------------------------

/**
 * `Worker.Groups` (comma-separated) -> the groups, sorted; [] means every app. `*` stands for every
 * app, as marathon-lb's `--group '*'`. Throws an Error naming the bad entry.
 */
export function parseWorkerGroups(text: string): string[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const g of parts) if (g !== '*' && !GROUP.test(g)) throw new Error(`${JSON.stringify(g.slice(0, 64))} is not a group name (letters, digits, ".", "_", "-", or *)`);
  return [...new Set(parts)].sort();
}

/**
 * Does a worker serving `workerGroups` render an app in `appGroups`? No worker groups, or `*`: every
 * app. Otherwise the app must name one of them; an app without HAPROXY_GROUP is served only by
 * workers with no groups or `*` (as marathon-lb serves it only with `--group '*'`).
 */
export function servesGroups(workerGroups: readonly string[], appGroups: readonly string[]): boolean {
  if (workerGroups.length === 0 || workerGroups.includes('*')) return true;
  return appGroups.some((g) => workerGroups.includes(g));
}

/** Group -> allowed host suffixes; empty: no restriction. */
export type AllowedDomains = Readonly<Record<string, readonly string[]>>;

/**
 * `Labels.AllowedDomains`: a JSON object of group -> list of domains, e.g.
 * `{"external":["shop.example.com",".team-a.example.com"]}`. A domain with a leading `.` allows every
 * host under it; without, that host alone. Throws an Error naming the bad entry.
 */
export function parseAllowedDomains(text: string): AllowedDomains {
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('must be a JSON object of group -> list of domains, like {"external":["shop.example.com",".team-a.example.com"]}');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('must be a JSON object of group -> list of domains, like {"external":["shop.example.com",".team-a.example.com"]}');
  }
  const out: Record<string, string[]> = {};
  for (const [group, list] of Object.entries(value as Record<string, unknown>)) {
    if (!GROUP.test(group)) throw new Error(`${JSON.stringify(group.slice(0, 64))} is not a group name (letters, digits, ".", "_", "-")`);
    if (!Array.isArray(list)) throw new Error(`the domains of group ${group} must be a list`);
    out[group] = list.map((d) => {
      const s = typeof d === 'string' ? d.trim().toLowerCase() : '';
      const bare = s.startsWith('.') ? s.slice(1) : s;
      if (parseHost(bare) === null) throw new Error(`${JSON.stringify(String(d).slice(0, 64))} in group ${group} is not a domain (a host name, or .domain for every host under it)`);
      return s;
    });
  }
  return out;
}

/**
 * May an app in `groups` claim `host`? Always when no domains are configured. Otherwise one of its
 * groups must list the host, or a `.suffix` it ends with; an app in no listed group may claim none.
 */
export function hostAllowed(allowed: AllowedDomains, groups: readonly string[], host: string): boolean {
  const keys = Object.keys(allowed);
  if (keys.length === 0) return true;
  for (const g of groups) {
    const list = Object.prototype.hasOwnProperty.call(allowed, g) ? allowed[g] : undefined;
    if (!list) continue;
    for (const d of list) {
      if (d.startsWith('.') ? host.endsWith(d) : host === d) return true;
    }
  }
  return false;
}
