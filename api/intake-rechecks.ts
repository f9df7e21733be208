/**
 * When the intake fetches again by itself: a retry after a failed fetch (with backoff), and the checks
 * of an answer the shrink guard holds.
 */
import { Backoff, type Clock, type Timer } from '../common/pacing.js';

export class FetchRechecks {
  private readonly retry: Backoff;
  private retryTimer: Timer | null = null;
  private heldTimer: Timer | null = null;
  /** A fetch at the appliesAt of a held answer seen in ZooKeeper (whichever copy held it). */
  private appliesTimer: Timer | null = null;
  /** Delay of the next check of a held answer: from emptyConfirmMs, doubling to the retry cap. */
  private heldCheckMs: number;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly o: { emptyConfirmMs: number; retryMinMs: number; retryMaxMs: number },
    /** Requests a fetch (MarathonIntake.requestFetch). */
    private readonly request: (reason: string) => void,
  ) {
    this.retry = new Backoff(o.retryMinMs, o.retryMaxMs);
    this.heldCheckMs = o.emptyConfirmMs;
  }

  /** A retry after a failure, unless one is waiting already. */
  retryLater(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retry.fail();
    this.retryTimer = this.clock.after(delay, () => {
      this.retryTimer = null;
      this.request('retry');
    }, { unref: true });
  }

  /** A fetch succeeded: the backoff starts over, and a retry still waiting would only load Marathon again. */
  healed(): void {
    this.retry.reset();
    this.retryTimer?.cancel();
    this.retryTimer = null;
  }

  /**
   * This copy holds an answer: a check soon at first (a glitch is over in a second), then less and
   * less often, and at `appliesAt` (ms epoch) at the latest.
   */
  checkHeld(appliesAt: number): void {
    if (!this.heldTimer && !this.closed) {
      this.heldTimer = this.fetchLater(Math.min(this.heldCheckMs, appliesAt - Date.now()), () => (this.heldTimer = null));
      this.heldCheckMs = Math.min(this.heldCheckMs * 2, Math.max(this.o.retryMaxMs, this.o.emptyConfirmMs));
    }
  }

  /** An answer passed the shrink guard: the next held answer is checked soon again. */
  admitted(): void {
    this.heldCheckMs = this.o.emptyConfirmMs;
  }

  /** A held answer (any copy's) applies at `appliesAt`: a fetch then. */
  heldSeen(appliesAt: number): void {
    this.appliesTimer?.cancel();
    // appliesAt is wall-clock time shared by every copy (stored in ZooKeeper): only the delay is taken from it.
    this.appliesTimer = this.closed ? null : this.fetchLater(appliesAt - Date.now(), () => (this.appliesTimer = null));
  }

  /** A fetch `ms` from now (at least emptyConfirmMs) that checks a held answer; `fired` runs first. */
  private fetchLater(ms: number, fired: () => void): Timer {
    return this.clock.after(Math.max(this.o.emptyConfirmMs, ms), () => {
      fired();
      this.request('held-check');
    }, { unref: true });
  }

  close(): void {
    this.closed = true;
    for (const t of [this.retryTimer, this.heldTimer, this.appliesTimer]) t?.cancel();
    this.retryTimer = this.heldTimer = this.appliesTimer = null;
  }
}
