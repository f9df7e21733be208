/**
 * One timer that fires at the earliest time asked for, on the loop's monotonic clock: the worker's
 * `retry` trigger and its quarantine recheck.
 */
import type { Clock, Timer } from '../common/pacing.js';

/** One timer that fires at the earliest time asked for (monotonic ms); a later ask waits for it. */
export class EarliestTimer {
  private timer: Timer | null = null;
  private due = 0;

  constructor(private readonly clock: Clock, private readonly fire: () => void) {}

  at(at: number): void {
    if (this.timer && this.due <= at) return;
    this.timer?.cancel();
    this.due = at;
    this.timer = this.clock.after(Math.max(0, at - this.clock.now()), () => {
      this.timer = null;
      this.fire();
    }, { unref: true });
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}
