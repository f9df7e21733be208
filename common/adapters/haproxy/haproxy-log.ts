/**
 * HAProxy's output in managed mode, turned into log lines: summarised, never relayed line by line.
 *
 * After every reload the old worker writes one `[WARNING] (pid) : Proxy X stopped (...)` line per
 * proxy (and `Stopping proxy/frontend/backend X ...` lines when it waits for connections): at 1,000
 * apps that is about 4,000 lines per reload, at 10,000 ten times more, and the new worker's health
 * checks can add a `Server X is DOWN` line per server. None of it is relayed line by line:
 * - each old worker's shutdown lines are counted and summarised in one info line, written when the
 *   master reports that worker gone or when its lines stop coming for a moment;
 * - every other line is relayed at its level (`[ALERT]` at warn, `[WARNING]` at info, the rest at
 *   debug) up to a budget per burst of output (a burst ends after a quiet moment, or after
 *   `maxWindowMs`); past the budget they are counted, and one line per burst says how many of each
 *   kind were left out.
 * `counts` adds up the lines HAProxy wrote and the lines written at info or above because of them
 * (the worker's /status shows them; the benchmarks divide them by the reloads).
 */
import type { Logger } from '../../log.js';

/** A per-proxy shutdown line of an old worker; group 1 is the worker's pid, group 2 the proxy. */
const STOP_LINE = /^\[WARNING\]\s*\((\d+)\)\s*:\s*(?:Proxy (\S+) stopped|Stopping (?:proxy|frontend|backend) (\S+))/;
/** The master's line once an old (or the current) worker has exited. */
const WORKER_EXITED = /:\s*(?:Former|Current) worker \(?(\d+)\)? exited/;

interface Group {
  lines: number;
  proxies: Set<string>;
  timer: NodeJS.Timeout;
}

/** Splits a stream's chunks into whole lines (a line may arrive in two chunks). */
export class LineSplitter {
  private rest = '';
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: string): void {
    const parts = (this.rest + chunk).split('\n');
    this.rest = parts.pop() ?? '';
    // A line longer than 64 KiB without a newline is passed on as it is.
    if (this.rest.length > 65536) {
      parts.push(this.rest);
      this.rest = '';
    }
    for (const p of parts) this.onLine(p);
  }
  end(): void {
    if (this.rest) this.onLine(this.rest);
    this.rest = '';
  }
}

/** Lines HAProxy wrote, and log lines (info or above) written because of them. */
export interface OutputCounts {
  lines: number;
  logged: number;
}

export interface OutputLogOptions {
  /** A summary is written this long after the last line of its kind at the latest (default 2 s). */
  quietMs?: number;
  /** Lines relayed one by one per burst of output (default 20). */
  maxLinesPerWindow?: number;
  /** A burst that never goes quiet is summarised at least this often (default 10 s). */
  maxWindowMs?: number;
  /** Counters to add to (shared across restarts of the master). */
  counts?: OutputCounts;
}

interface Window {
  relayed: number;
  left: { alerts: number; warnings: number; other: number };
  startedAt: number;
  timer: NodeJS.Timeout;
}

export class HAProxyOutputLog {
  readonly counts: OutputCounts;
  private readonly groups = new Map<number, Group>();
  private window: Window | null = null;
  private readonly quietMs: number;
  private readonly maxLines: number;
  private readonly maxWindowMs: number;

  constructor(
    private readonly log: Logger,
    opts: OutputLogOptions = {},
  ) {
    this.quietMs = opts.quietMs ?? 2000;
    this.maxLines = opts.maxLinesPerWindow ?? 20;
    this.maxWindowMs = opts.maxWindowMs ?? 10000;
    this.counts = opts.counts ?? { lines: 0, logged: 0 };
  }

  /** One whole line of HAProxy's output. */
  line(raw: string): void {
    const line = raw.trimEnd();
    if (!line.trim()) return;
    this.counts.lines++;
    const stop = STOP_LINE.exec(line);
    if (stop) {
      const pid = Number(stop[1]);
      let g = this.groups.get(pid);
      if (!g) {
        g = { lines: 0, proxies: new Set(), timer: setTimeout(() => this.flush(pid), this.quietMs) };
        this.groups.set(pid, g);
      }
      g.lines++;
      g.proxies.add(stop[2] ?? stop[3]);
      g.timer.refresh();
      g.timer.unref();
      return;
    }
    const exited = WORKER_EXITED.exec(line);
    if (exited) this.flush(Number(exited[1]));
    const kind = line.includes('[ALERT]') ? 'alerts' : line.includes('[WARNING]') ? 'warnings' : 'other';
    const w = this.openWindow();
    if (w.relayed >= this.maxLines) {
      w.left[kind]++;
      return;
    }
    w.relayed++;
    if (kind === 'alerts') this.info('warn', { line }, 'haproxy alert');
    else if (kind === 'warnings') this.info('info', { line }, 'haproxy warning');
    else this.log.debug({ line }, 'haproxy output');
  }

  /** Writes the summary of an old worker's shutdown lines (if any). */
  flush(pid: number): void {
    const g = this.groups.get(pid);
    if (!g) return;
    clearTimeout(g.timer);
    this.groups.delete(pid);
    this.info('info', { pid, proxies: g.proxies.size, lines: g.lines }, 'haproxy worker stopped its proxies');
  }

  /** Writes every pending summary. */
  close(): void {
    for (const pid of [...this.groups.keys()]) this.flush(pid);
    this.closeWindow();
  }

  private info(level: 'info' | 'warn', fields: Record<string, unknown>, msg: string): void {
    this.counts.logged++;
    this.log[level](fields, msg);
  }

  /** The burst this line belongs to (a new one after a quiet moment or a long burst). */
  private openWindow(): Window {
    // A monotonic clock: a wall-clock step must not end or prolong a burst.
    const now = performance.now();
    if (this.window && now - this.window.startedAt >= this.maxWindowMs) this.closeWindow();
    if (!this.window) {
      const timer = setTimeout(() => this.closeWindow(), this.quietMs);
      timer.unref();
      this.window = { relayed: 0, left: { alerts: 0, warnings: 0, other: 0 }, startedAt: now, timer };
    } else {
      this.window.timer.refresh();
    }
    return this.window;
  }

  /** Ends the burst: one line counting what was left out (alerts make it a warning). */
  private closeWindow(): void {
    const w = this.window;
    if (!w) return;
    clearTimeout(w.timer);
    this.window = null;
    const { alerts, warnings, other } = w.left;
    if (alerts + warnings + other === 0) return;
    this.info(alerts > 0 ? 'warn' : 'info', { alerts, warnings, other, relayed: w.relayed }, 'haproxy output summarised');
  }
}
