/**
 * The port policy: which listening ports an app may make HAProxy bind (F2, F3 of the reliability
 * review). Ports belong to the edge, not to tenants.
 *
 * The policy reads the rendered haproxy.cfg, not the template data, so it holds for any template:
 * every `bind` line (and `stats socket` on a TCP address) is found, and the renderer's line origins
 * say whether an app's `{% app %}` block produced it (an app's listener: `BAMBOO_TCP_PORT`, an extra
 * service port, whatever a custom template makes of Marathon data) or the template itself did (the
 * edge: the HTTP frontend, the stats page, anything else the operator's template binds). An app's
 * port is refused when it
 *
 * - is bound by the edge, or is one of the ports the edge is configured to own (HAProxy.HttpBind,
 *   HAProxy.StatsBind) even if the template does not render it;
 * - lies outside the allowed range (HAProxy.TcpPortRange);
 * - is bound twice by the app itself, or is claimed by another app. Between two apps the one that
 *   held the port in the config HAProxy runs keeps it; otherwise the first by app id. So an app
 *   deployed later cannot knock an app off the port it serves on;
 * - cannot be read (a bind address with no port the policy understands).
 *
 * Ports are compared regardless of address: a wildcard bind overlaps every address, and tenants do
 * not choose addresses in the default template anyway. `haproxy -c` does not bind, so validation
 * cannot catch any of this; the worker applies the policy before validating.
 *
 * Pure: no clock, no I/O.
 */
import type { Origin } from './render.js';

/** An inclusive range of ports. */
export interface PortRange {
  min: number;
  max: number;
}

/** One listening address of a `bind` (or `stats socket`) line. */
interface Span {
  lo: number;
  hi: number;
}

/** A `bind` line of a rendered config. */
export interface BindLine {
  /** 1-based line number in the rendered text. */
  line: number;
  /** The proxy (section) the line is in, e.g. `::db::pg-cluster-tcp`; "" in `global` or before any section. */
  proxy: string;
  /** `frontend`, `listen`, `peers`, `global`, ... */
  sectionKind: string;
  /** The ports the line binds (empty for UNIX sockets and file descriptors). */
  ports: Span[];
  /** The address as written, when its port could not be read (else null). */
  unreadable: string | null;
}

/** An app refused by the policy, with the port and a one-line reason. */
export interface PortRefusal {
  appId: string;
  port: number;
  reason: string;
}

const SECTIONS = new Set([
  'global', 'defaults', 'frontend', 'backend', 'listen', 'peers', 'resolvers', 'userlist', 'mailers',
  'program', 'http-errors', 'ring', 'cache', 'fcgi-app', 'crt-store', 'traces',
]);

/** Address families without a port. */
const PORTLESS = /^(unix|abns|abnsz|fd|sockpair)@/i;
/** Address families with a port, whose prefix is dropped before reading it. */
const FAMILY = /^(ipv4|ipv6|tcp|tcp4|tcp6|udp|udp4|udp6|quic4|quic6|rhttp)@/i;

/** Parses `10000-65535` (or a single port) into a range; null when it is not one. */
export function parsePortRange(text: string): PortRange | null {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5}))?\s*$/.exec(text);
  if (!m) return null;
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : Number(m[2]);
  if (min < 1 || max > 65535 || min > max) return null;
  return { min, max };
}

/**
 * The ports of one bind address list (`127.0.0.1:80,[::]:81`, `*:10000-10100`, `ipv4@:80`).
 * Throws nothing: an address whose port cannot be read is returned in `unreadable`.
 */
export function addressPorts(spec: string): { ports: Span[]; unreadable: string | null } {
  const ports: Span[] = [];
  let unreadable: string | null = null;
  const unquoted = spec.replace(/^(["'])(.*)\1$/, '$2');
  for (const raw of unquoted.split(',')) {
    const addr = raw.trim();
    if (addr === '') continue;
    if (PORTLESS.test(addr) || addr.startsWith('/')) continue;
    const bare = addr.replace(FAMILY, '');
    const colon = bare.lastIndexOf(':');
    const port = colon >= 0 ? bare.slice(colon + 1) : '';
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(port);
    if (!m) {
      unreadable ??= addr;
      continue;
    }
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo > 65535 || hi > 65535 || lo > hi) {
      unreadable ??= addr;
      continue;
    }
    ports.push({ lo, hi });
  }
  return { ports, unreadable };
}

/** The ports of HAProxy.HttpBind / HAProxy.StatsBind style settings (empty values give none). */
export function settingPorts(values: readonly string[]): number[] {
  const out = new Set<number>();
  for (const v of values) {
    if (typeof v !== 'string' || v.trim() === '') continue;
    const first = v.trim().split(/\s+/)[0];
    for (const s of addressPorts(first).ports) for (let p = s.lo; p <= s.hi; p++) out.add(p);
  }
  return [...out].sort((a, b) => a - b);
}

/** Keywords whose lines the policy reads: `bind`, `stats socket`, and section headers. */
const KEYWORDS = ['bind', 'stats socket', ...SECTIONS];
/** First character -> the keywords starting with it. */
const BY_FIRST = new Map<number, string[]>();
for (const k of KEYWORDS) BY_FIRST.set(k.charCodeAt(0), [...(BY_FIRST.get(k.charCodeAt(0)) ?? []), k]);

/** The keyword of interest the line starts with at `i` (followed by a blank or the line's end). */
function keywordAt(text: string, i: number, end: number): string | undefined {
  const candidates = BY_FIRST.get(text.charCodeAt(i));
  if (!candidates) return undefined;
  for (const k of candidates) {
    const after = i + k.length;
    if (after <= end && text.startsWith(k, i) && (after === end || text.charCodeAt(after) === 0x20 || text.charCodeAt(after) === 0x09)) return k;
  }
  return undefined;
}

/**
 * Every `bind` line of a rendered config (and `stats socket` lines on a TCP address), with the
 * proxy it belongs to. One pass over the text; only lines starting with a keyword of interest are
 * looked at further (a config at 10,000 apps has 250,000 lines and 9 MB).
 */
export function bindLines(text: string): BindLine[] {
  const out: BindLine[] = [];
  let proxy = '';
  let sectionKind = '';
  let line = 0;
  for (let start = 0; start < text.length; ) {
    line++;
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    let i = start;
    while (i < end && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09)) i++;
    const keyword = i < end ? keywordAt(text, i, end) : undefined;
    if (keyword !== undefined) {
      const words = text.slice(i, end).trim().split(/[ \t]+/);
      if (SECTIONS.has(keyword)) {
        sectionKind = keyword;
        proxy = words[1] ?? '';
      } else {
        const first = (keyword === 'bind' ? words[1] : words[2]) ?? '';
        // A `stats socket` on a path is a UNIX socket; only a TCP one binds a port.
        const tcpSocket = /^(ipv4|ipv6|tcp|tcp4|tcp6)@/i.test(first) || /:\d+$/.test(first);
        if (keyword === 'bind' || tcpSocket) {
          const { ports, unreadable } = addressPorts(first);
          out.push({ line, proxy, sectionKind, ports, unreadable: first === '' ? '(none)' : unreadable });
        }
      }
    }
    start = end + 1;
  }
  return out;
}

/**
 * Line -> the app whose block produced it (undefined: the template's own line). Origins are sorted
 * once, so a lookup is a binary search (appsAtLines checks the order on every call, which made one
 * policy check quadratic at 10,000 apps).
 */
function lineOwner(origins: readonly Origin[]): (line: number) => string | undefined {
  const sorted = origins.every((o, i) => i === 0 || origins[i - 1].startLine <= o.startLine) ? origins : [...origins].sort((a, b) => a.startLine - b.startLine);
  return (line) => {
    let lo = 0;
    let hi = sorted.length - 1;
    let idx = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid].startLine <= line) {
        idx = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return idx >= 0 && line <= sorted[idx].endLine ? sorted[idx].appId : undefined;
  };
}

/** Who binds a port in a running config: the proxy, and the app when the origins are known. */
export interface Holder {
  proxy: string;
  appId: string | null;
}

/**
 * Port -> holder of every port an app binds in a config HAProxy runs. Without origins (a config
 * found on disk at start) the app is unknown and only the proxy name is kept: the candidate's app
 * whose listener has the same proxy name is taken to be the holder.
 */
export function heldPorts(text: string, origins: readonly Origin[]): Map<number, Holder> {
  const out = new Map<number, Holder>();
  const owner = lineOwner(origins);
  for (const b of bindLines(text)) {
    const appId = origins.length ? owner(b.line) ?? null : null;
    if (origins.length && appId === null) continue;
    for (const s of b.ports) {
      if (s.hi - s.lo > 1024) continue;
      for (let p = s.lo; p <= s.hi; p++) if (!out.has(p)) out.set(p, { proxy: b.proxy, appId });
    }
  }
  return out;
}

export interface PortPolicyInput {
  /** The rendered candidate config and its line origins. */
  text: string;
  origins: readonly Origin[];
  /** Ports apps may bind (HAProxy.TcpPortRange). */
  range: PortRange;
  /** Ports the edge owns whether or not the template binds them (HAProxy.HttpBind, HttpsBind, StatsBind). */
  reserved?: readonly number[];
  /** Who binds each app port in the config HAProxy runs (see heldPorts), or a function giving it when needed; absent: nobody. */
  held?: ReadonlyMap<number, Holder> | (() => ReadonlyMap<number, Holder>);
}

interface Claim {
  port: number;
  line: number;
  proxy: string;
}

/** More ports than this in one app bind line are refused outright rather than expanded. */
const MAX_SPAN = 1024;

/**
 * The apps the policy refuses in a rendered config, one entry per app (its first problem), sorted
 * by app id. An empty list means every app's ports are acceptable.
 */
export function portRefusals(input: PortPolicyInput): PortRefusal[] {
  const { range } = input;
  const edge = new Map<number, string>();
  const claims = new Map<string, Claim[]>();
  const refused = new Map<string, PortRefusal>();
  const refuse = (appId: string, port: number, reason: string) => {
    if (!refused.has(appId)) refused.set(appId, { appId, port, reason });
  };

  const owner = lineOwner(input.origins);
  for (const b of bindLines(input.text)) {
    const appId = owner(b.line);
    if (appId === undefined) {
      for (const s of b.ports) {
        const who = `the edge (${b.sectionKind}${b.proxy ? ` ${b.proxy}` : ''}, line ${b.line})`;
        for (let p = s.lo; p <= s.hi; p++) if (!edge.has(p)) edge.set(p, who);
      }
      continue;
    }
    if (b.unreadable !== null) {
      refuse(appId, 0, `bind address ${JSON.stringify(b.unreadable)} (line ${b.line}) has no port the port policy can read`);
      continue;
    }
    const mine = claims.get(appId) ?? [];
    claims.set(appId, mine);
    for (const s of b.ports) {
      if (s.hi - s.lo >= MAX_SPAN) {
        refuse(appId, s.lo, `ports ${s.lo}-${s.hi} (line ${b.line}) are more than ${MAX_SPAN} ports`);
        continue;
      }
      for (let p = s.lo; p <= s.hi; p++) mine.push({ port: p, line: b.line, proxy: b.proxy });
    }
  }

  for (const p of input.reserved ?? []) if (!edge.has(p)) edge.set(p, 'the edge (HAProxy.HttpBind, HttpsBind or StatsBind)');

  // Refusals that do not depend on other apps: the edge's ports, the range, a port bound twice.
  for (const [appId, mine] of claims) {
    const seen = new Set<number>();
    for (const c of mine) {
      const owner = edge.get(c.port);
      if (owner !== undefined) refuse(appId, c.port, `port ${c.port} belongs to ${owner}`);
      else if (c.port < range.min || c.port > range.max) {
        refuse(appId, c.port, `port ${c.port} is outside HAProxy.TcpPortRange ${range.min}-${range.max}`);
      } else if (seen.has(c.port)) refuse(appId, c.port, `port ${c.port} is bound twice by this app`);
      seen.add(c.port);
    }
  }

  // Between apps: a port held in the running config stays with its holder; the rest go to the
  // first app by id. An app gets all its ports or none (it is left out of the config entirely).
  // Who held a port matters only when two apps claim it.
  const claimants = new Map<number, number>();
  for (const [appId, mine] of claims) if (!refused.has(appId)) for (const p of new Set(mine.map((c) => c.port))) claimants.set(p, (claimants.get(p) ?? 0) + 1);
  const contested = [...claimants.values()].some((n) => n > 1);
  const held = !contested || !input.held ? new Map<number, Holder>() : typeof input.held === 'function' ? input.held() : input.held;
  const reservedFor = new Map<number, string>();
  for (const [appId, mine] of claims) {
    if (refused.has(appId)) continue;
    for (const c of mine) {
      const h = held.get(c.port);
      if (h && (h.appId === null ? h.proxy === c.proxy : h.appId === appId)) reservedFor.set(c.port, appId);
    }
  }
  const taken = new Map<number, string>();
  const ids = [...claims.keys()].filter((id) => !refused.has(id)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const appId of ids) {
    let conflict: PortRefusal | null = null;
    for (const c of claims.get(appId)!) {
      const holder = reservedFor.get(c.port);
      if (holder !== undefined && holder !== appId) {
        conflict = { appId, port: c.port, reason: `port ${c.port} is held by ${holder} (it had the port in the running config)` };
        break;
      }
      const first = taken.get(c.port);
      if (first !== undefined) {
        conflict = { appId, port: c.port, reason: `port ${c.port} is claimed by ${first} too (the first app by id keeps it)` };
        break;
      }
    }
    if (conflict) {
      refused.set(appId, conflict);
      continue;
    }
    for (const c of claims.get(appId)!) taken.set(c.port, appId);
  }
  return [...refused.values()].sort((a, b) => (a.appId < b.appId ? -1 : a.appId > b.appId ? 1 : 0));
}
