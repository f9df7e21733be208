/**
 * Pacing, stated once: latest wins, single flight, debounce, minimum interval between starts,
 * backoff on failure, and a sliding-window rate bound. Used by the api's Marathon intake
 * (api/intake.ts) and the worker's reconcile loop (worker/reconciler.ts).
 *
 * Every rule here runs on a monotonic clock (`performance.now()` and Node's timers, which libuv
 * measures on the same monotonic time): a step of the wall clock (NTP's first sync, a VM resume, a
 * manual fix) changes no wait. `Date.now()` is for timestamps shown to people, stored, or compared
 * across processes, never for an interval, a deadline or a backoff. The clock is injectable so the
 * rules are tested on a fake one (test/support/fake-clock.ts), without real sleeps.
 */

/** A timer that can be cancelled (idempotent). */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic timeline (never steps back; unaffected by wall-clock changes). */
  now(): number;
  /** Calls `fn` once, `ms` from now on the same timeline. `unref`: does not keep the process alive. */
  after(ms: number, fn: () => void, opts?: { unref?: boolean }): Timer;
}

/** The real clock: `performance.now()` and `setTimeout` (both monotonic). */
export const monotonicClock: Clock = {
  now: () => performance.now(),
  after(ms, fn, opts) {
    const t = setTimeout(fn, Math.max(0, ms));
    if (opts?.unref) t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** Monotonic milliseconds, for durations, deadlines and timeouts outside a pacer. */
export function monotonicNow(): number {
  return performance.now();
}

/**
 * Sleeps on a clock that can be woken early: `wake()` ends every sleep in progress (close, or a
 * reason to look again). Resolves true when the full time passed, false when woken.
 */
export class Sleeper {
  private readonly wakers = new Set<() => void>();
  constructor(private readonly clock: Clock = monotonicClock) {}

  sleep(ms: number): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const end = (full: boolean) => {
        timer.cancel();
        this.wakers.delete(wake);
        resolve(full);
      };
      const wake = () => end(false);
      const timer = this.clock.after(ms, () => end(true));
      this.wakers.add(wake);
    });
  }

  /** Ends every sleep in progress. */
  wake(): void {
    for (const w of [...this.wakers]) w();
  }
}

/**
 * Exponential backoff: the first failure waits `initialMs`, each further consecutive one twice as
 * long, capped at `maxMs`; a success (`reset`) starts over.
 */
export class Backoff {
  private n = 0;
  constructor(
    readonly initialMs: number,
    readonly maxMs: number,
  ) {}

  /** Consecutive failures counted since the last reset. */
  get failures(): number {
    return this.n;
  }

  /** Counts one failure; returns the delay before the next attempt. */
  fail(): number {
    const delay = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.n, 40));
    this.n++;
    return delay;
  }

  reset(): void {
    this.n = 0;
  }
}

/**
 * At most `max` events in any `windowMs` (a sliding window); `max <= 0`: no bound. The caller asks
 * `nextAt()` before an event and calls `note()` when it happens.
 */
export class RateWindow {
  private readonly times: number[] = [];
  constructor(
    readonly max: number,
    readonly windowMs: number,
    private readonly clock: Clock = monotonicClock,
  ) {}

  /** Records an event now. */
  note(): void {
    this.times.push(this.clock.now());
    this.prune();
  }

  /** Events within the last window. */
  count(): number {
    this.prune();
    return this.times.length;
  }

  /** The earliest time (on the clock) another event is within the bound; -Infinity: now. */
  nextAt(): number {
    this.prune();
    if (this.max <= 0 || this.times.length < this.max) return -Infinity;
    return this.times[this.times.length - this.max] + this.windowMs;
  }

  private prune(): void {
    const from = this.clock.now() - this.windowMs;
    while (this.times.length > 0 && this.times[0] <= from) this.times.shift();
  }
}

export interface LatestWinsOptions {
  /**
   * One run. `reasons`: the requests it covers (sorted). `take()` marks the moment later requests no
   * longer need another run (e.g. when the HTTP request is sent): it returns the requests made since
   * the run started, which ride on this run. A rejection goes to `onError`; the pacer goes on.
   */
  run: (reasons: string[], take: () => string[]) => Promise<void>;
  /** Wait before a follow-up run (see `debounceAfter`). */
  debounceMs: number;
  /** Least time between the starts of two runs. */
  minIntervalMs: number;
  /**
   * When a request finding nothing running or pending counts as the leading edge of a burst and
   * starts without the debounce (still no sooner than `minIntervalMs` after the last start):
   * `ended`, the last run ended `debounceMs` ago or more; `started`, the last run started
   * `minIntervalMs` ago or more.
   */
  idleWhen: 'ended' | 'started';
  /**
   * A request made while a run is in flight waits `debounceMs` after itself (`request`) or after
   * the end of that run (`end`). A request made while nothing runs waits after itself.
   */
  debounceAfter: 'request' | 'end';
  clock?: Clock;
  onError?: (err: Error) => void;
}

/**
 * Latest wins, single flight: at most one run in flight and one pending, whatever the request rate.
 * Requests coalesce into the pending run (their reasons are kept); the last run always starts after
 * the last request (or takes it with `take()`).
 */
export class LatestWins {
  private readonly clock: Clock;
  private readonly pending = new Set<string>();
  private firstPendingAt = 0;
  private leading = false;
  private pendingDuringRun = false;
  private inFlight = false;
  private timer: Timer | null = null;
  private lastStartAt = -Infinity;
  private lastEndAt = -Infinity;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly o: LatestWinsOptions) {
    this.clock = o.clock ?? monotonicClock;
  }

  /** A run is in flight. */
  get running(): boolean {
    return this.inFlight;
  }

  /** Requests are waiting for a run (not yet taken by one). */
  get hasPending(): boolean {
    return this.pending.size > 0;
  }

  /** A run is in flight or pending. */
  get busy(): boolean {
    return this.inFlight || this.pending.size > 0;
  }

  /** When the pending run is due (clock time), or null when none is pending or one is in flight. */
  get dueAt(): number | null {
    return this.pending.size > 0 && !this.inFlight ? this.startAt() : null;
  }

  /** Asks for a run. Cheap, never throws, never runs anything synchronously. */
  request(reason: string): void {
    if (this.closed) return;
    if (this.pending.size === 0) {
      const now = this.clock.now();
      this.firstPendingAt = now;
      this.pendingDuringRun = this.inFlight;
      this.leading = !this.inFlight && this.quiet(now);
    }
    this.pending.add(reason);
    if (!this.inFlight && !this.timer) this.schedule();
  }

  /** Requests made since the last run started (or the last take), cleared: they ride on the current run. */
  take(): string[] {
    const reasons = [...this.pending].sort();
    this.pending.clear();
    return reasons;
  }

  /** Resolves once nothing runs or is pending. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Drops pending requests, starts nothing more, and waits for the run in flight. Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    this.pending.clear();
    this.timer?.cancel();
    this.timer = null;
    return this.whenIdle();
  }

  private quiet(now: number): boolean {
    return this.o.idleWhen === 'ended'
      ? now - this.lastEndAt >= this.o.debounceMs
      : now - this.lastStartAt >= this.o.minIntervalMs;
  }

  private startAt(): number {
    const byInterval = this.lastStartAt + this.o.minIntervalMs;
    if (this.leading) return Math.max(this.firstPendingAt, byInterval);
    const from = this.o.debounceAfter === 'end' && this.pendingDuringRun ? this.lastEndAt : this.firstPendingAt;
    return Math.max(from + this.o.debounceMs, byInterval);
  }

  private schedule(): void {
    const wait = this.startAt() - this.clock.now();
    if (wait <= 0) {
      this.begin();
      return;
    }
    this.timer = this.clock.after(wait, () => {
      this.timer = null;
      this.begin();
    });
  }

  private begin(): void {
    if (this.closed || this.inFlight || this.pending.size === 0) {
      this.settle();
      return;
    }
    this.inFlight = true;
    this.lastStartAt = this.clock.now();
    this.leading = false;
    // Started from a microtask so a request() never runs the caller's code inside it; requests made
    // until then ride on this run.
    void Promise.resolve()
      .then(() => this.o.run(this.take(), () => this.take()))
      .catch((err: unknown) => this.o.onError?.(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        this.inFlight = false;
        this.lastEndAt = this.clock.now();
        if (this.pending.size > 0 && !this.closed) this.schedule();
        else this.settle();
      });
  }

  private settle(): void {
    if (this.busy) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
