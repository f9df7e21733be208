/**
 * HAProxy's Runtime API (the admin socket) for task churn: what changed between the config HAProxy
 * runs and a new one, whether that change can be applied without a reload, and applying it.
 *
 * The decision is made on the rendered text, so it holds for any template: a change is a runtime
 * change only when the two files have the same lines except `server` lines of `backend`/`listen`
 * sections, and each such pair names the same server and differs only in what `set server` can
 * change: the address and port, the check port (`port N`), the weight (`weight N`) and whether it is
 * `disabled`. Anything else (a new app, a rule, a template or settings edit, more tasks than slots)
 * changes other lines and takes the reload path. Applying exactly the textual difference keeps
 * HAProxy's state equal to haproxy.cfg, which is verified afterwards with `show servers state`.
 *
 * Why slots and `set server` rather than `add server`/`del server`: HAProxy 2.6's dynamic servers
 * do not inherit `default-server` settings (`init-addr`, `inter`, ...), need their health checks
 * enabled one by one (`enable health`), can be deleted only once in maintenance with no connection
 * left, and cost about 16 times more per change (docs/bamboo-baseline.md: ~8,000/s against ~133,000/s for
 * batched `set server`). Slots are plain config servers: checks, `ssl` and every default apply, and
 * a reload or restart rebuilds exactly the same servers from the file.
 *
 * Server state across reloads: before a reload the worker saves `show servers state` to the
 * `server-state-file`, keeping only servers whose line is the same in the running and the new config
 * (HAProxy would otherwise restore a freed slot's old port, weight or maintenance over the new file);
 * after a runtime change the changed servers' lines are dropped from that file, so a restart of
 * HAProxy also comes up on the file.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { cliCommand } from './haproxy.js';
import { monotonicNow } from './pacing.js';

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
  from: ServerSpec;
  to: ServerSpec;
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
export function diffConfigs(running: string, next: string): ConfigDiff {
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
    const { kind, section } = sectionAt(a, la);
    if (kind !== 'backend' && kind !== 'listen') return fail(() => `a line outside any backend changed (${where()})`);
    const from = parseServerLine(x);
    const to = parseServerLine(y);
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

// ------------------------------------------------------------------------------------------------
// Server state (`show servers state`) and the server-state-file
// ------------------------------------------------------------------------------------------------

/** One server as `show servers state` reports it. */
export interface ServerState {
  backend: string;
  server: string;
  addr: string;
  port: number;
  opState: number;
  adminState: number;
  weight: number;
  checkPort: number;
}

/** Admin-state bits (HAProxy's SRV_ADMF_*). */
export const ADMIN = { FMAINT: 0x01, IMAINT: 0x02, CMAINT: 0x04, FDRAIN: 0x08, IDRAIN: 0x10, RMAINT: 0x20 } as const;
const MAINT = ADMIN.FMAINT | ADMIN.IMAINT | ADMIN.RMAINT;
const DRAIN = ADMIN.FDRAIN | ADMIN.IDRAIN;

/** The server is in maintenance (forced, inherited or resolution), whatever the config said. */
export function inMaintenance(s: ServerState): boolean {
  return (s.adminState & MAINT) !== 0;
}

/** The server takes no new requests: maintenance or drain. */
export function outOfRotation(s: ServerState): boolean {
  return (s.adminState & (MAINT | DRAIN)) !== 0;
}

/**
 * Parses `show servers state` output (one or several, concatenated), by the column names of its
 * header line, so column order changes between versions do not matter.
 */
export function parseServersState(text: string): Map<string, ServerState> {
  const out = new Map<string, ServerState>();
  let cols: string[] | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('# be_id')) {
      cols = line.slice(2).split(/\s+/);
      continue;
    }
    if (!cols || line === '' || line.startsWith('#') || !/^\d+\s/.test(line)) continue;
    const f = line.split(/\s+/);
    const get = (name: string) => f[cols!.indexOf(name)];
    const s: ServerState = {
      backend: get('be_name'),
      server: get('srv_name'),
      addr: get('srv_addr'),
      port: Number(get('srv_port')),
      opState: Number(get('srv_op_state')),
      adminState: Number(get('srv_admin_state')),
      weight: Number(get('srv_uweight')),
      checkPort: Number(get('srv_check_port')),
    };
    if (s.backend && s.server) out.set(`${s.backend}/${s.server}`, s);
  }
  return out;
}

/**
 * Keeps the version line, the header and the server lines `keep` accepts of a `show servers state`
 * dump (the server-state-file format).
 */
export function filterServerState(dump: string, keep: (key: string) => boolean): string {
  const out: string[] = [];
  let header = false;
  for (const raw of dump.split('\n')) {
    const line = raw.trimEnd();
    if (line === '') continue;
    if (/^\d+$/.test(line) && out.length === 0) {
      out.push(line);
      continue;
    }
    if (line.startsWith('# be_id')) {
      if (!header) out.push(line);
      header = true;
      continue;
    }
    const f = line.split(/\s+/);
    if (f.length > 4 && /^\d+$/.test(f[0]) && keep(`${f[1]}/${f[3]}`)) out.push(line);
  }
  if (out.length === 0 || !/^\d+$/.test(out[0])) out.unshift('1');
  return out.join('\n') + '\n';
}

/**
 * A server-state-file without the lines of the given servers (`backend/server` keys); every other
 * line is kept byte for byte. For a file written by filterServerState it equals
 * `filterServerState(text, (key) => !keys.includes(key))`, but it only looks at the lines that
 * mention a dropped server's backend (found by searching for its name), so its cost grows with the
 * servers dropped, not with the file (tens of thousands of servers at 10,000 apps).
 */
export function dropServerStateLines(text: string, keys: readonly string[]): string {
  if (keys.length === 0) return text;
  const drop = new Set(keys);
  // A key is `backend/server`; try every split, so a name containing a slash is still found.
  const backends = new Set<string>();
  for (const key of keys) for (let p = key.indexOf('/'); p > 0; p = key.indexOf('/', p + 1)) backends.add(key.slice(0, p));
  const cuts: Array<[number, number]> = [];
  for (const backend of backends) {
    for (let at = text.indexOf(backend); at >= 0; at = text.indexOf(backend, at + 1)) {
      const before = at === 0 ? 0x0a : text.charCodeAt(at - 1);
      const after = text.charCodeAt(at + backend.length);
      if ((before !== 0x20 && before !== 0x09) || (after !== 0x20 && after !== 0x09)) continue;
      const start = text.lastIndexOf('\n', at) + 1;
      const nl = text.indexOf('\n', at);
      const end = nl < 0 ? text.length : nl + 1;
      const f = text.slice(start, end).trimEnd().split(/\s+/);
      if (f.length > 4 && /^\d+$/.test(f[0]) && drop.has(`${f[1]}/${f[3]}`)) cuts.push([start, end]);
      at = end - 1;
    }
  }
  if (cuts.length === 0) return text;
  cuts.sort((x, y) => x[0] - y[0]);
  let out = '';
  let from = 0;
  for (const [start, end] of cuts) {
    if (start < from) continue;
    out += text.slice(from, start);
    from = end;
  }
  return out + text.slice(from);
}

/** A server-state-file that restores nothing (HAProxy warns about a missing or empty one). */
export const EMPTY_SERVER_STATE = '1\n';

// ------------------------------------------------------------------------------------------------
// The admin socket
// ------------------------------------------------------------------------------------------------

/** HAProxy's CLI reads one line per request into a buffer (tune.bufsize, 16 KiB by default). */
const MAX_LINE = 8000;

/** Answers of `set server` that mean it worked (2.6 wording); anything else is an error. */
const OK_ANSWER = /changed from|no need to change|health check port updated|by 'stats socket command'|^$/;

export class RuntimeError extends Error {
  override name = 'RuntimeError';
}

/**
 * A client of HAProxy's admin socket. Commands are batched with `;` on as few connections as fit
 * the CLI's line limit; every call is serialised, so a drain finishing in the background cannot
 * interleave with an apply.
 */
export class RuntimeApi {
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 2000,
  ) {}

  /** Runs `fn` after every earlier call finished. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => undefined);
    return next;
  }

  /** Sends commands in `;`-joined batches; resolves with the raw answers. Rejects when the socket fails. */
  async send(commands: readonly string[]): Promise<string> {
    let answer = '';
    let line = '';
    const flush = async () => {
      if (line === '') return;
      answer += await cliCommand(this.socketPath, line, this.timeoutMs);
      line = '';
    };
    for (const c of commands) {
      if (line !== '' && line.length + c.length + 2 > MAX_LINE) await flush();
      line = line === '' ? c : `${line}; ${c}`;
    }
    await flush();
    return answer;
  }

  /** Sends `set server` commands; rejects with the first answer that is not a success. */
  async setServers(commands: readonly string[]): Promise<void> {
    if (commands.length === 0) return;
    const answer = await this.send(commands);
    for (const raw of answer.split('\n')) {
      const line = raw.trim();
      if (!OK_ANSWER.test(line)) throw new RuntimeError(`haproxy answered "${line.slice(0, 200)}"`);
    }
  }

  /** `show servers state` of the given backends (all backends when none are given). */
  async serversState(backends?: readonly string[]): Promise<{ states: Map<string, ServerState>; raw: string }> {
    const raw = backends && backends.length > 0
      ? await this.send(backends.map((b) => `show servers state ${b}`))
      : await cliCommand(this.socketPath, 'show servers state', this.timeoutMs * 5);
    const bad = /^(Can't find backend\.|Unknown command.*|Permission denied.*)$/m.exec(raw);
    if (bad) throw new RuntimeError(`haproxy answered "${bad[0]}"`);
    return { states: parseServersState(raw), raw };
  }

  /** Current sessions per server (`show stat <backend> 4 -1`, column `scur`), keyed `backend/server`. */
  async currentSessions(backends: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (backends.length === 0) return out;
    const raw = await this.send(backends.map((b) => `show stat ${b} 4 -1`));
    let cols: string[] = [];
    for (const line of raw.split('\n')) {
      if (line.startsWith('# ')) {
        cols = line.slice(2).split(',');
        continue;
      }
      if (!line.includes(',') || cols.length === 0) continue;
      const f = line.split(',');
      const scur = Number(f[cols.indexOf('scur')]);
      out.set(`${f[cols.indexOf('pxname')]}/${f[cols.indexOf('svname')]}`, Number.isFinite(scur) ? scur : 0);
    }
    return out;
  }
}

// ------------------------------------------------------------------------------------------------
// Applying a difference
// ------------------------------------------------------------------------------------------------

export interface RuntimePlan {
  /** Commands to send, in order. */
  commands: string[];
  /** `backend/server` keys leaving rotation: drained now, put in maintenance later. */
  drains: string[];
  /** `backend/server` keys entering or staying in rotation. */
  enabled: string[];
  /** What each changed server must look like afterwards. */
  /** `rotation`: true must be in rotation, false out of it, undefined either (left as it was). */
  expect: Map<string, { rotation: boolean | undefined; addr?: string; port?: number; checkPort?: number; weight?: number }>;
}

/** Resolves a host name to the address HAProxy's `init-addr libc` would pick; IPs are returned as is. */
export async function resolveHost(host: string, timeoutMs = 1000): Promise<string> {
  if (isIP(host)) return host;
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      lookup(host),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RuntimeError(`resolving ${host} timed out`)), timeoutMs);
      }),
    ]);
    return r.address;
  } catch (err) {
    throw new RuntimeError(`cannot resolve ${host}: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The commands for a set of server changes. A server entering rotation gets its address, port,
 * check port and weight, then `state ready`; one leaving rotation gets `state drain` (the caller
 * puts it in maintenance once its requests finished); a server that stays out of rotation is left
 * alone (its address is set when it enters rotation). Rejects when a host name does not resolve.
 */
export async function planRuntime(changes: readonly ServerChange[], resolve: (host: string) => Promise<string> = resolveHost): Promise<RuntimePlan> {
  const plan: RuntimePlan = { commands: [], drains: [], enabled: [], expect: new Map() };
  const resolved = new Map<string, Promise<string>>();
  for (const c of changes) {
    const key = `${c.backend}/${c.server}`;
    const { from, to } = c;
    if (to.disabled) {
      plan.expect.set(key, { rotation: false });
      if (!from.disabled) {
        plan.commands.push(`set server ${key} state drain`);
        plan.drains.push(key);
      }
      continue;
    }
    let addr = resolved.get(to.host);
    if (!addr) resolved.set(to.host, (addr = resolve(to.host)));
    const ip = await addr;
    // A server entering rotation, or given another address (a slot reused by another task), starts
    // afresh, as a reload would start it from the file. A server that only changed its weight or
    // check port keeps its state (an operator's maintenance, say).
    const fresh = from.disabled || from.host !== to.host || from.port !== to.port;
    if (fresh) plan.commands.push(`set server ${key} addr ${ip} port ${to.port}`);
    const checkPort = to.checkPort ?? (to.check ? to.port! : null);
    const fromCheckPort = from.checkPort ?? (from.check ? from.port : null);
    if (checkPort !== null && (fresh || checkPort !== fromCheckPort)) plan.commands.push(`set server ${key} check-port ${checkPort}`);
    const weight = to.weight ?? 1;
    if ((fresh && to.weight !== null) || weight !== (from.weight ?? 1)) plan.commands.push(`set server ${key} weight ${weight}`);
    if (fresh) plan.commands.push(`set server ${key} state ready`);
    plan.enabled.push(key);
    plan.expect.set(key, { rotation: fresh ? true : undefined, addr: ip, port: to.port!, checkPort: checkPort ?? undefined, weight: to.weight ?? undefined });
  }
  return plan;
}

/** Differences between what a plan expects and what HAProxy reports (empty: it matches). */
export function verifyRuntime(plan: RuntimePlan, states: ReadonlyMap<string, ServerState>): string[] {
  const problems: string[] = [];
  for (const [key, want] of plan.expect) {
    const s = states.get(key);
    if (!s) {
      problems.push(`${key} missing`);
      continue;
    }
    if (want.rotation === false) {
      if (!outOfRotation(s)) problems.push(`${key} still in rotation`);
      continue;
    }
    if (want.rotation && outOfRotation(s)) problems.push(`${key} out of rotation (admin state ${s.adminState})`);
    if (want.addr !== undefined && s.addr !== want.addr) problems.push(`${key} address ${s.addr}, not ${want.addr}`);
    if (want.port !== undefined && s.port !== want.port) problems.push(`${key} port ${s.port}, not ${want.port}`);
    if (want.checkPort !== undefined && s.checkPort !== want.checkPort) problems.push(`${key} check port ${s.checkPort}, not ${want.checkPort}`);
    if (want.weight !== undefined && s.weight !== want.weight) problems.push(`${key} weight ${s.weight}, not ${want.weight}`);
  }
  return problems;
}

/**
 * Servers leaving rotation: drained at once (no new requests), put in maintenance once their
 * requests in flight finished (`scur` 0 in `show stat`) or after `timeoutMs`. A server that enters
 * rotation again before that is forgotten (`cancel`); a reload forgets them all (`clear`).
 */
export class Drainer {
  private readonly pending = new Map<string, { backend: string; deadline: number }>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  /** Servers put in maintenance so far (for status and tests). */
  finished = 0;

  constructor(
    private readonly api: RuntimeApi,
    private readonly timeoutMs: number,
    private readonly onError: (err: Error) => void,
    private readonly pollMs = 100,
  ) {}

  /** Servers not in maintenance yet: waiting for their sessions, or with the command on its way. */
  get size(): number {
    return this.pending.size + this.inFlight;
  }

  private inFlight = 0;

  add(keys: readonly string[]): void {
    const deadline = monotonicNow() + this.timeoutMs;
    for (const key of keys) this.pending.set(key, { backend: key.slice(0, key.lastIndexOf('/')), deadline });
    this.schedule();
  }

  cancel(keys: Iterable<string>): void {
    for (const k of keys) this.pending.delete(k);
  }

  clear(): void {
    this.pending.clear();
  }

  close(): void {
    this.pending.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer || this.pending.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.tick();
    }, this.pollMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const backends = [...new Set([...this.pending.values()].map((p) => p.backend))];
      // Unknown sessions (socket away): wait for the deadline; the maint command reports the error.
      const sessions = await this.api.currentSessions(backends).catch(() => new Map<string, number>());
      const now = monotonicNow();
      const done = [...this.pending].filter(([k, p]) => now >= p.deadline || sessions.get(k) === 0).map(([k]) => k);
      if (done.length > 0) {
        await this.api.serial(async () => {
          // Re-checked under the lock: an apply may have put a server back into rotation meanwhile.
          const still = done.filter((k) => this.pending.has(k));
          for (const k of still) this.pending.delete(k);
          if (still.length === 0) return;
          this.inFlight += still.length;
          try {
            await this.api.setServers(still.map((k) => `set server ${k} state maint`)).then(
              () => (this.finished += still.length),
              (err: Error) => this.onError(err),
            );
          } finally {
            this.inFlight -= still.length;
          }
        });
      }
    } finally {
      this.ticking = false;
      this.schedule();
    }
  }
}
