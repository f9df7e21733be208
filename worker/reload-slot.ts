/**
 * When a reload may run: the minimum reload interval, the backoff after a failed reload, the
 * per-minute budget and the old HAProxy generations still finishing their connections
 * (docs/worker.md, "Reload storms"). The loop asks before each reload and notes each one.
 */
import type { HAProxyProcess } from '../common/adapters/haproxy/process.js';
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import { RateWindow, Sleeper, type Clock } from '../common/pacing.js';
import type { ReloadWait } from './outcome.js';

/** How often the old generations are counted while a reload waits for them. */
const OLD_GENERATIONS_POLL_MS = 250;

export interface ReloadSlotOptions {
  /** Worker.MinReloadIntervalMs: least time between two reloads. */
  minReloadIntervalMs: number;
  /** Worker.MinUpdateIntervalMs: least time between two runtime passes while a reload is held. */
  minUpdateIntervalMs: number;
  /** Worker.MaxReloadsPerMinute: reloads in any 60 s (0: no bound). */
  maxReloadsPerMinute?: number;
  /**
   * Worker.MaxOldGenerations: a reload waits while this many old HAProxy generations still finish
   * their connections (0: no bound; only where `haproxy.oldWorkers` can count them).
   */
  maxOldGenerations?: number;
  /** Worker.OldGenerationsWaitMs: the longest a reload waits for old generations to exit; then it goes ahead. */
  oldGenerationsWaitMs?: number;
  haproxy: HAProxyProcess;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
}

/** What the loop lends the slot while a storm bound holds the reload. */
export interface HeldHooks {
  /** Triggers are waiting. */
  hasPending(): boolean;
  /** Takes the waiting triggers. */
  take(): string[];
  /** The Runtime API may apply a server-only change now. */
  runtimeUsable(): boolean;
  /** Applies what the Runtime API can apply on its own (never throws). */
  runHeld(triggers: string[]): Promise<void>;
}

export class ReloadSlot {
  /** Why the reload in progress waits, and since and until when (ms epoch); null: not waiting. */
  wait: ReloadWait | null = null;
  /** Reloads held back by the storm bounds (rate or old generations), and the old generations last counted. */
  deferred = 0;
  oldGenerations: number | null = null;

  private readonly sleeper: Sleeper;
  private readonly rate: RateWindow;
  private lastReloadAt = -Infinity;
  private retryNotBefore = -Infinity;
  /** A storm bound holds a reload: a trigger wakes the wait (server changes are applied meanwhile). */
  private wakeOnTrigger = false;
  private closed = false;

  constructor(private readonly o: ReloadSlotOptions) {
    this.sleeper = new Sleeper(o.clock);
    this.rate = new RateWindow(o.maxReloadsPerMinute ?? 0, 60_000, o.clock);
  }

  /** A reload was attempted now: every attempt counts (a failed reload may have started a generation too). */
  noteReload(): void {
    this.lastReloadAt = this.o.clock.now();
    this.rate.note();
  }

  /** No reload before `at` (monotonic ms): the backoff after a failed reload. */
  holdUntil(at: number): void {
    this.retryNotBefore = at;
  }

  clearHold(): void {
    this.retryNotBefore = -Infinity;
  }

  /** A trigger arrived: wakes a wait held by a storm bound, so its server changes go through at once. */
  triggered(): void {
    if (this.wakeOnTrigger) this.sleeper.wake();
  }

  /** Ends any wait at once; later waits return immediately. */
  close(): void {
    this.closed = true;
    this.sleeper.wake();
  }

  /**
   * Waits until a reload may run: the minimum reload interval, the backoff after a failed reload and
   * the per-minute budget first, then the old generations bound (checked right before the reload,
   * counted every OLD_GENERATIONS_POLL_MS, for at most `oldGenerationsWaitMs`: HAProxy's own
   * hard-stop-after ends old generations in time with the shipped template; with a template that
   * lets them live forever the reload goes ahead rather than freezing every update). Wakes early on
   * close. While a storm bound (rate, generations) holds the reload, new triggers are taken at once
   * (no sooner than `minUpdateIntervalMs` apart) and a change confined to servers is applied through
   * the Runtime API meanwhile (`runHeld`). Resolves whether it waited and the triggers it took.
   */
  async acquire(hooks: HeldHooks): Promise<{ waited: boolean; taken: string[] }> {
    const clock = this.o.clock;
    const began = clock.now();
    const reasons = new Set<ReloadWait['reason']>();
    const taken: string[] = [];
    let lastPass = -Infinity;
    let generationsSince: number | null = null;
    /** Sleeps up to `ms`, or runs a runtime pass for triggers that came while a storm bound holds the reload. */
    const pause = async (ms: number, reason: ReloadWait['reason']) => {
      const held = (reason === 'rate' || reason === 'generations') && hooks.runtimeUsable();
      if (held && hooks.hasPending()) {
        const due = lastPass + this.o.minUpdateIntervalMs - clock.now();
        if (due <= 0) {
          lastPass = clock.now();
          const triggers = hooks.take();
          taken.push(...triggers);
          await hooks.runHeld(triggers);
          return;
        }
        ms = Math.min(ms, due);
      }
      this.wakeOnTrigger = held;
      try {
        await this.sleeper.sleep(ms);
      } finally {
        this.wakeOnTrigger = false;
      }
    };
    const hold = (reason: ReloadWait['reason'], untilMs: number | null) => {
      if (this.wait?.reason !== reason) this.wait = { reason, since: Date.now(), until: null };
      this.wait.until = untilMs === null ? null : Date.now() + untilMs;
      if (!reasons.has(reason)) {
        reasons.add(reason);
        if (reason === 'rate' || reason === 'generations') {
          this.deferred++;
          this.o.log.info({ reason, reloadsLastMinute: this.rate.count(), oldGenerations: this.oldGenerations }, 'reload deferred');
        }
      }
    };
    try {
      while (!this.closed) {
        const now = clock.now();
        const slots: Array<[ReloadWait['reason'], number]> = [
          ['interval', this.lastReloadAt + this.o.minReloadIntervalMs],
          ['retry', this.retryNotBefore],
          ['rate', this.rate.nextAt()],
        ];
        const [reason, until] = slots.reduce((a, b) => (b[1] > a[1] ? b : a));
        if (until > now) {
          hold(reason, until - now);
          await pause(until - now, reason);
          continue;
        }
        const max = this.o.maxOldGenerations ?? 0;
        if (max <= 0 || !this.o.haproxy.oldWorkers) break;
        const old = await this.o.haproxy.oldWorkers();
        this.oldGenerations = old === null ? null : old.length;
        if (old !== null) this.o.metrics.gauge('haproxy.old_generations', old.length);
        if (old === null || old.length < max) break;
        generationsSince ??= now;
        const bound = this.o.oldGenerationsWaitMs ?? 60000;
        if (now - generationsSince >= bound) {
          this.o.log.warn({ oldGenerations: old.length, max, waitedMs: Math.round(now - generationsSince) }, 'old haproxy generations did not exit in time; reloading anyway');
          break;
        }
        hold('generations', null);
        await pause(Math.min(OLD_GENERATIONS_POLL_MS, bound - (now - generationsSince)), 'generations');
      }
    } finally {
      this.wait = null;
    }
    const waitedMs = clock.now() - began;
    for (const reason of reasons) this.o.metrics.reloadDeferred(reason, waitedMs);
    return { waited: reasons.size > 0, taken: [...new Set(taken)].sort() };
  }
}
