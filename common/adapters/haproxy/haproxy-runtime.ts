/**
 * HAProxy's Runtime API (the admin socket) for task churn: the client that applies a runtime change
 * (which changes qualify: common/core/config-diff.ts; the commands and what HAProxy must report
 * afterwards: common/core/server-state.ts), the resolver of host names, and the drainer that puts
 * servers leaving rotation into maintenance once their requests finished.
 *
 * Slots and `set server` first, `add server` when a backend outgrows them: a slot is a plain config
 * server (checks, `ssl` and every default apply, and a reload or restart rebuilds exactly the same
 * servers from the file), and `set server` costs about 16 times less per change
 * (docs/bamboo-baseline.md: ~133,000/s batched against ~8,000/s). HAProxy 2.6's dynamic servers take
 * no `default-server` settings, need their health checks enabled one by one (`enable health`) and
 * refuse some options and balance algorithms (common/core/dynamic-servers.ts says which); with
 * HAProxy.DynamicServers the worker adds them with the options the config would give them and
 * writes the same lines into the file, so a reload or restart builds them as plain servers. Servers
 * are never deleted at runtime: a task's server that goes away is drained into maintenance and kept
 * as a free slot until a reload re-sizes the backend.
 *
 * Server state across reloads: before a reload the worker saves `show servers state` to the
 * `server-state-file`, keeping only servers whose line is the same in the running and the new config
 * (HAProxy would otherwise restore a freed slot's old port, weight or maintenance over the new file);
 * after a runtime change the changed servers' lines are dropped from that file, so a restart of
 * HAProxy also comes up on the file.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseServersState, type ServerState } from '../../core/server-state.js';
import { cliCommand } from './master-cli.js';
import { monotonicNow } from '../../pacing.js';

// ------------------------------------------------------------------------------------------------
// The admin socket
// ------------------------------------------------------------------------------------------------

/** HAProxy's CLI reads one line per request into a buffer (tune.bufsize, 16 KiB by default). */
const MAX_LINE = 8000;

/** Answers of `set server`, `add server` and `enable health` that mean it worked (2.6 wording); anything else is an error. */
const OK_ANSWER = /changed from|no need to change|health check port updated|by 'stats socket command'|^New server registered\.$|^$/;

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

  /** Sends `set server` (and `add server`, `enable health`) commands; rejects with the first answer that is not a success. */
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
