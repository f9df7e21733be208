/**
 * Which changes between the config HAProxy runs and a new one the Runtime API can apply: the
 * decision is made on the rendered text, so it holds for any template. A change is a runtime change
 * only when the two files have the same lines except `server` lines of `backend`/`listen` sections,
 * and each such pair names the same server and differs only in what `set server` can change: the
 * address and port, the check port (`port N`), the weight (`weight N`) and whether it is `disabled`.
 * With `dynamic` (HAProxy.DynamicServers), server lines added to a backend are runtime changes too
 * when HAProxy 2.6 can `add server` them (common/core/dynamic-servers.ts): a backend grown beyond
 * its slots. Anything else (a new app, a rule, a template or settings edit, a server removed) changes
 * other lines and takes the reload path. Pure: the admin socket is common/adapters/haproxy/haproxy-runtime.ts.
 */
import { addContext, addServerOptions, CLI_WORD, dynamicBalance } from './dynamic-servers.js';

// ------------------------------------------------------------------------------------------------
// Server lines and the difference between two configs
// ------------------------------------------------------------------------------------------------

/** What a `server` line says, split into what the Runtime API can change and the rest. */
export interface ServerSpec {
  name: string;
  /** The address as written (an IP or a host name) and its port (null: no port written). */
  host: string;
  port: number | null;
  disabled: boolean;
  /** `weight N` (null: not written, HAProxy's default 1). */
  weight: number | null;
  /** `port N`: the health check port (null: not written). */
  checkPort: number | null;
  /** `check` is on the line. */
  check: boolean;
  /** Every other word, in order: must be equal for a runtime change. */
  rest: string;
}

/** One server whose line differs between the running config and the new one. */
export interface ServerChange {
  /** The backend or listen section. */
  backend: string;
  server: string;
  /** The running config's line; null: the server is new (`add server`). */
  from: ServerSpec | null;
  to: ServerSpec;
  /** A new server's `add server` options (default-server words in force, then the line's; see dynamic-servers.ts). */
  add?: string[];
}

export type ConfigDiff = { runtime: true; changes: ServerChange[] } | { runtime: false; reason: string };

const SERVER_LINE = /^\s+server\s+(\S+)\s+(\S+)(.*)$/;
const SECTION = /^(backend|listen|frontend|defaults|global|peers|resolvers|userlist|program|cache|ring|http-errors|mailers)\b\s*(\S*)/;

function positiveInt(s: string | undefined): number | null {
  return s !== undefined && /^\d{1,5}$/.test(s) ? Number(s) : null;
}

/** Splits `host:port`, `[v6]:port` or a bare host. */
function splitAddress(addr: string): { host: string; port: number | null } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr);
  if (v6) return { host: v6[1], port: positiveInt(v6[2]) };
  const i = addr.lastIndexOf(':');
  if (i < 0) return { host: addr, port: null };
  const port = positiveInt(addr.slice(i + 1));
  return port === null ? { host: addr, port: null } : { host: addr.slice(0, i), port };
}

/** Parses one `server` line; null when it is not one. */
export function parseServerLine(line: string): ServerSpec | null {
  const m = SERVER_LINE.exec(line);
  if (!m) return null;
  const words = m[3].trim() === '' ? [] : m[3].trim().split(/\s+/);
  const rest: string[] = [];
  let disabled = false;
  let weight: number | null = null;
  let checkPort: number | null = null;
  let check = false;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === 'disabled') disabled = true;
    else if (w === 'weight' && positiveInt(words[i + 1]) !== null) weight = positiveInt(words[++i]);
    else if (w === 'port' && positiveInt(words[i + 1]) !== null) checkPort = positiveInt(words[++i]);
    else {
      if (w === 'check') check = true;
      rest.push(w);
    }
  }
  const { host, port } = splitAddress(m[2]);
  return { name: m[1], host, port, disabled, weight, checkPort, check, rest: rest.join(' ') };
}

/**
 * Compares the config HAProxy runs with a new one. `runtime: true` when the only differences are
 * server lines the Runtime API can change (see the module comment); otherwise the reason a reload
 * is needed, in a few words.
 *
 * The cost is proportional to what changed, not to the size of the config: the two texts are walked
 * in lockstep, line by line, but runs of equal text are skipped by comparing large slices (a memcmp),
 * and only the lines that differ are cut out and parsed. The section a differing line belongs to is
 * found by looking back to its section header. The answer is the one of a plain line-by-line walk
 * (same lines, same order of checks, same reasons).
 */
export function diffConfigs(running: string, next: string, opts: { dynamic?: boolean } = {}): ConfigDiff {
  if (running === next) return { runtime: true, changes: [] };
  const a = running;
  const b = next;
  const changes: ServerChange[] = [];
  // Line starts in `a` and `b` of the lines under comparison; both texts are equal before them,
  // except for server lines already accepted as changes.
  let i = 0;
  let j = 0;
  for (;;) {
    const k = commonRun(a, i, b, j);
    if (i + k === a.length && j + k === b.length) return { runtime: true, changes };
    // The first difference lies on the line that starts at the last newline of the equal run.
    const nl = k === 0 ? -1 : a.lastIndexOf('\n', i + k - 1);
    const la = nl >= i ? nl + 1 : i;
    const lb = j + (la - i);
    const ea = a.indexOf('\n', la);
    const eb = b.indexOf('\n', lb);
    const x = a.slice(la, ea < 0 ? a.length : ea);
    const y = b.slice(lb, eb < 0 ? b.length : eb);
    const fail = (reason: () => string): ConfigDiff => {
      const na = lineCount(a);
      const nb = lineCount(b);
      if (na !== nb) return { runtime: false, reason: `the config's structure changed (${na} -> ${nb} lines)` };
      return { runtime: false, reason: reason() };
    };
    const where = () => `line ${lineCount(a, la)}`;
    const from = parseServerLine(x);
    const to = parseServerLine(y);
    if (opts.dynamic && to && !from) {
      // Server lines where the running config has none: servers added to the section (a backend
      // grown beyond its slots), when HAProxy can add them at runtime.
      const added = addedServers(a, la, b, lb);
      // Its own reason: the line counts of the two files differ whenever servers are added.
      if ('reason' in added) return { runtime: false, reason: added.reason };
      changes.push(...added.changes);
      j = added.end;
      i = la;
      continue;
    }
    const { kind, section } = sectionAt(a, la);
    if (kind !== 'backend' && kind !== 'listen') return fail(() => `a line outside any backend changed (${where()})`);
    if (!from || !to) return fail(() => `a line other than a server changed in ${section} (${where()})`);
    if (from.name !== to.name) return fail(() => `server ${from.name} became ${to.name} in ${section}`);
    if (from.rest !== to.rest || from.check !== to.check) return fail(() => `options of ${section}/${to.name} changed`);
    if (to.port === null || from.port === null) return fail(() => `${section}/${to.name} has no port`);
    changes.push({ backend: section, server: to.name, from, to });
    if (ea < 0 || eb < 0) {
      // One text ends here: equal only if both do.
      if (ea < 0 && eb < 0) return { runtime: true, changes };
      return fail(() => 'unreachable: line counts differ');
    }
    i = ea + 1;
    j = eb + 1;
  }
}

/**
 * The run of server lines of `b` starting at `lb`, inserted where `a` has the (non-server) line at
 * `la`: each must be new in its section and addable at runtime. Returns the changes and where `b`'s
 * run ends, or why a reload is needed.
 */
function addedServers(a: string, la: number, b: string, lb: number): { changes: ServerChange[]; end: number } | { reason: string } {
  const { kind, section } = sectionAt(b, lb);
  if (kind !== 'backend' && kind !== 'listen') return { reason: 'a server line was added outside any backend' };
  if (!CLI_WORD.test(section)) return { reason: `servers were added to a section whose name the Runtime API cannot pass safely` };
  const ctx = addContext(b, lb);
  // The names the running section has (the same section: a and b are equal before la / lb).
  const taken = addContext(a, la)?.serverNames ?? new Set<string>();
  if (!ctx) return { reason: `servers were added to ${section}` };
  if (!dynamicBalance(ctx.balance)) return { reason: `servers were added to ${section}, whose balance ${ctx.balance} cannot take servers at runtime` };
  const changes: ServerChange[] = [];
  let p = lb;
  for (;;) {
    const e = b.indexOf('\n', p);
    const line = b.slice(p, e < 0 ? b.length : e);
    const to = parseServerLine(line);
    if (!to) break;
    // A name the running section already has: a server renamed or moved, not added.
    if (!CLI_WORD.test(to.name)) return { reason: `a server added to ${section} has a name the Runtime API cannot pass safely` };
    if (taken.has(to.name)) return { reason: `server ${to.name} of ${section} moved` };
    if (to.port === null) return { reason: `${section}/${to.name} has no port` };
    const words = line.trim().split(/\s+/).slice(3);
    const opts = addServerOptions(ctx.defaultServer, words);
    if ('error' in opts) return { reason: `${section}/${to.name} was added, but its ${opts.error}` };
    changes.push({ backend: section, server: to.name, from: null, to, add: opts.options });
    if (e < 0) return { changes, end: b.length };
    p = e + 1;
  }
  return { changes, end: p };
}

/** Length of the longest common run of `a` from `i` and `b` from `j`, found with big slice compares. */
function commonRun(a: string, i: number, b: string, j: number): number {
  const max = Math.min(a.length - i, b.length - j);
  let n = 0;
  let step = 256;
  // Gallop while whole slices are equal, then narrow down by halving.
  while (n + step <= max && a.slice(i + n, i + n + step) === b.slice(j + n, j + n + step)) {
    n += step;
    if (step < 1 << 20) step *= 2;
  }
  for (step >>= 1; step >= 16; step >>= 1) {
    if (n + step <= max && a.slice(i + n, i + n + step) === b.slice(j + n, j + n + step)) n += step;
  }
  while (n < max && a.charCodeAt(i + n) === b.charCodeAt(j + n)) n++;
  return n;
}

/** 1-based number of the line starting at `end` (or the number of lines of `text` when absent). */
function lineCount(text: string, end = text.length): number {
  let n = 1;
  for (let p = text.indexOf('\n'); p >= 0 && p < end; p = text.indexOf('\n', p + 1)) n++;
  return n;
}

/**
 * The section of the line starting at `lineStart`: the closest line before it that starts with
 * neither a blank nor `#` (what a forward walk would have taken as the last section header).
 */
function sectionAt(text: string, lineStart: number): { kind: string; section: string } {
  let end = lineStart - 1;
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    if (end > start) {
      const c = text.charCodeAt(start);
      if (c !== 0x20 && c !== 0x09 && c !== 0x23) {
        const m = SECTION.exec(text.slice(start, end));
        return { kind: m ? m[1] : '', section: m ? m[2] : '' };
      }
    }
    end = start - 1;
  }
  return { kind: '', section: '' };
}

/** Every server line of a config, keyed `backend/server` (for the server-state-file filter). */
export function serverLines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let kind = '';
  let section = '';
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const c = line.charCodeAt(0);
    if (c !== 0x20 && c !== 0x09 && c !== 0x23) {
      const m = SECTION.exec(line);
      kind = m ? m[1] : '';
      section = m ? m[2] : '';
      continue;
    }
    if (kind !== 'backend' && kind !== 'listen') continue;
    const m = SERVER_LINE.exec(line);
    if (m) out.set(`${section}/${m[1]}`, line.trim());
  }
  return out;
}
