/**
 * HAProxy's server state as text: `show servers state` parsed, the server-state-file kept in step
 * with the config across reloads and runtime changes, and the commands that take a set of server
 * changes into HAProxy with what each server must look like afterwards. Pure: the resolver that
 * turns host names into addresses and the admin socket are the adapter's
 * (common/adapters/haproxy/haproxy-runtime.ts).
 */
import type { ServerChange } from './config-diff.js';

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

/** The backend and server name of a `show servers state` line (fields 2 and 4 of at least five, the first numeric). */
const STATE_KEY = /^\d+\s+(\S+)\s+\S+\s+(\S+)\s+\S/;

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
    if (out.length === 0 && /^\d+$/.test(line)) {
      out.push(line);
      continue;
    }
    if (line.startsWith('# be_id')) {
      if (!header) out.push(line);
      header = true;
      continue;
    }
    // A server line has at least five fields and a numeric first one; only fields 2 and 4 (backend,
    // server) are needed. One match instead of splitting every line into its 25 fields: a dump at
    // 10,000 apps has 30,000 lines, and this runs before every reload.
    const m = STATE_KEY.exec(line);
    if (m && keep(`${m[1]}/${m[2]}`)) out.push(line);
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

export interface RuntimePlan {
  /** Commands to send, in order. */
  commands: string[];
  /** `backend/server` keys leaving rotation: drained now, put in maintenance later. */
  drains: string[];
  /** `backend/server` keys entering or staying in rotation. */
  enabled: string[];
  /** `backend/server` keys added with `add server` (dynamic servers). */
  added: string[];
  /** What each changed server must look like afterwards. */
  /** `rotation`: true must be in rotation, false out of it, undefined either (left as it was). */
  expect: Map<string, { rotation: boolean | undefined; addr?: string; port?: number; checkPort?: number; weight?: number }>;
}

/**
 * The commands for a set of server changes. A server entering rotation gets its address, port,
 * check port and weight, then `state ready`; one leaving rotation gets `state drain` (the caller
 * puts it in maintenance once its requests finished); a server that stays out of rotation is left
 * alone (its address is set when it enters rotation). `resolve` turns a host name into the address
 * HAProxy would use (the adapter's resolveHost); the plan rejects when it does.
 */
export async function planRuntime(changes: readonly ServerChange[], resolve: (host: string) => Promise<string>): Promise<RuntimePlan> {
  const plan: RuntimePlan = { commands: [], drains: [], enabled: [], added: [], expect: new Map() };
  const resolved = new Map<string, Promise<string>>();
  for (const c of changes) {
    const key = `${c.backend}/${c.server}`;
    const { from, to } = c;
    if (from === null) {
      // A new server (HAProxy.DynamicServers): added in maintenance with the options the config
      // gives it, its health check enabled, then into rotation unless the config disables it.
      let addr = resolved.get(to.host);
      if (!addr) resolved.set(to.host, (addr = resolve(to.host)));
      const ip = await addr;
      const address = ip.includes(':') ? `[${ip}]:${to.port}` : `${ip}:${to.port}`;
      const options = c.add ?? [];
      plan.commands.push(['add server', key, address, ...options].join(' '));
      if (options.includes('check')) plan.commands.push(`enable health ${key}`);
      const checkPort = to.checkPort ?? undefined;
      if (to.disabled) {
        plan.expect.set(key, { rotation: false, addr: ip, port: to.port!, checkPort });
      } else {
        plan.commands.push(`set server ${key} state ready`);
        plan.enabled.push(key);
        plan.expect.set(key, { rotation: true, addr: ip, port: to.port!, checkPort, weight: to.weight ?? undefined });
      }
      plan.added.push(key);
      continue;
    }
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
      if (want.addr !== undefined && s.addr !== want.addr) problems.push(`${key} address ${s.addr}, not ${want.addr}`);
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
