/**
 * HAProxy's output in managed mode, turned into log lines.
 *
 * After every reload the old worker writes one `[WARNING] (pid) : Proxy X stopped (...)` line per
 * proxy (and `Stopping proxy/frontend/backend X ...` lines when it waits for connections): at 1,000
 * apps that is about 4,000 lines per reload, at 10,000 ten times more. Those lines go to debug, and
 * each old worker's are summarised in one info line with the count, written when the master reports
 * that worker gone or when its lines stop coming for a moment.
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

export class HAProxyOutputLog {
  private readonly groups = new Map<number, Group>();

  /** `quietMs`: a worker's summary is written this long after its last shutdown line at the latest. */
  constructor(
    private readonly log: Logger,
    private readonly quietMs = 2000,
  ) {}

  /** One whole line of HAProxy's output. */
  line(raw: string): void {
    const line = raw.trimEnd();
    if (!line.trim()) return;
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
      this.log.debug({ line }, 'haproxy proxy stopped');
      return;
    }
    const exited = WORKER_EXITED.exec(line);
    if (exited) this.flush(Number(exited[1]));
    if (line.includes('[ALERT]')) this.log.warn({ line }, 'haproxy alert');
    else if (line.includes('[WARNING]')) this.log.info({ line }, 'haproxy warning');
    else this.log.debug({ line }, 'haproxy output');
  }

  /** Writes the summary of an old worker's shutdown lines (if any). */
  flush(pid: number): void {
    const g = this.groups.get(pid);
    if (!g) return;
    clearTimeout(g.timer);
    this.groups.delete(pid);
    this.log.info({ pid, proxies: g.proxies.size, lines: g.lines }, 'haproxy worker stopped its proxies');
  }

  /** Writes every pending summary. */
  close(): void {
    for (const pid of [...this.groups.keys()]) this.flush(pid);
  }
}
