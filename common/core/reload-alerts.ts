/**
 * Maps a failed reload's HAProxy alerts back to the apps whose fragments caused them (F3 of the
 * reliability review). `haproxy -c` does not bind sockets, so a config can validate and still be
 * refused by the master at reload, e.g.
 *
 *   [ALERT] (9892) : Binding [/etc/haproxy/haproxy.cfg:17] for proxy ::db::pg-cluster-tcp: cannot bind socket (Address already in use) for [127.0.0.1:31777]
 *
 * The alert names the file and line, the proxy, and often the address. Each is mapped with the
 * renderer's line origins: the line directly, the proxy through the line that declares it. Pure.
 */
import { appsAtLines, type Origin } from './render.js';

/**
 * The line numbers of `file` that `[ALERT]` lines point at, e.g.
 * `[ALERT] (1) : config : parsing [/etc/haproxy/haproxy.cfg:42] : unknown fetch method ...`.
 * Locations in other files (an included file) are ignored; so are alerts without a location.
 */
export function alertLines(output: string, file: string): number[] {
  const base = baseName(file);
  const lines = new Set<number>();
  for (const line of output.split('\n')) {
    if (!line.includes('[ALERT]')) continue;
    for (const m of line.matchAll(/\[([^\]\s]+):(\d+)\]/g)) {
      if (m[1] === file || baseName(m[1]) === base) lines.add(Number(m[2]));
    }
  }
  return [...lines].sort((a, b) => a - b);
}

/** The last segment of a POSIX path (node:path's basename, without importing node:path). */
function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** One app blamed for a failed reload, with the alert (one line) that blames it. */
export interface ReloadCulprit {
  appId: string;
  alert: string;
}

const SECTION = /^[ \t]*(frontend|backend|listen|peers)[ \t]+(\S+)/gm;

/** Proxy name -> the 1-based line that declares it, in a rendered config. */
function proxyLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let line = 1;
  let at = 0;
  SECTION.lastIndex = 0;
  for (let m = SECTION.exec(text); m !== null; m = SECTION.exec(text)) {
    for (let i = text.indexOf('\n', at); i >= 0 && i < m.index; i = text.indexOf('\n', i + 1)) line++;
    at = m.index;
    if (!out.has(m[2])) out.set(m[2], line);
  }
  return out;
}

function tidy(alert: string): string {
  return alert.trim().replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*(config\s*:\s*)?/, '').slice(0, 300);
}

/**
 * The apps a reload failure's output blames, sorted by app id. `file` is the config path HAProxy
 * loaded (OutputPath), `text` and `origins` the config installed there. Alerts that point at no app
 * blame nobody; `edge` tells whether one pointed at a line of the template's own (the edge's) part,
 * which no quarantine can fix.
 */
export function reloadCulprits(output: string, file: string, text: string, origins: readonly Origin[]): { culprits: ReloadCulprit[]; edge: boolean } {
  const found = new Map<string, string>();
  let edge = false;
  let proxies: Map<string, number> | null = null;
  for (const raw of output ? output.split('\n') : []) {
    if (!raw.includes('[ALERT]')) continue;
    const lines = alertLines(raw, file);
    for (const m of raw.matchAll(/\b(?:proxy|frontend|backend|listener)\s+'?([^\s']+)/g)) {
      proxies ??= proxyLines(text);
      const line = proxies.get(m[1].replace(/'?:?$/, ''));
      if (line !== undefined) lines.push(line);
    }
    for (const line of lines) {
      const ids = appsAtLines(origins, [line]);
      if (ids.length === 0) edge = true;
      for (const id of ids) if (!found.has(id)) found.set(id, tidy(raw));
    }
  }
  const culprits = [...found].map(([appId, alert]) => ({ appId, alert })).sort((a, b) => (a.appId < b.appId ? -1 : a.appId > b.appId ? 1 : 0));
  return { culprits, edge };
}

/** The `[ALERT]` lines of an output (or its last lines when there are none), for logs and reasons. */
export function alertSummary(output: string, max = 5): string {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const alerts = lines.filter((l) => l.includes('[ALERT]') && !/Error\(s\) found|Fatal errors found/.test(l));
  const pick = (alerts.length ? alerts : lines.slice(-max)).slice(0, max);
  return pick.map((l) => l.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*(config\s*:\s*)?/, '')).join(' | ');
}

/** What the master CLI's `show proc` says. */
export interface ProcInfo {
  masterPid: number;
  reloads: number;
  failed: number;
  /** Current workers (not the old ones still finishing connections). */
  workers: Array<{ pid: number; reloads: number }>;
  /** Old workers: generations replaced by a reload, still finishing their connections. */
  oldWorkers: Array<{ pid: number; reloads: number }>;
}

/** Parses the master CLI's `show proc` (HAProxy 2.6). */
export function parseShowProc(text: string): ProcInfo | null {
  let master: ProcInfo | null = null;
  let section = 'master';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      if (/^# workers/.test(line)) section = 'workers';
      else if (/^# old workers/.test(line)) section = 'old';
      else if (/^# programs/.test(line)) section = 'programs';
      continue;
    }
    const m = /^(\d+)\s+(\w+)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?/.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    if (m[2] === 'master') master = { masterPid: pid, reloads: Number(m[3]), failed: m[4] ? Number(m[4]) : 0, workers: [], oldWorkers: [] };
    else if (m[2] === 'worker' && section === 'workers' && master) master.workers.push({ pid, reloads: Number(m[3]) });
    else if (m[2] === 'worker' && section === 'old' && master) master.oldWorkers.push({ pid, reloads: Number(m[3]) });
  }
  return master;
}
