import { LatestWins } from './pacing.js';

/**
 * One async pass at a time, for watch-driven re-reads: a call while a pass runs does not start a
 * second one alongside it, it makes exactly one more pass run after it (however many calls came),
 * so the last pass always starts after the last call. A pass can ask for another with `again()`
 * (e.g. it raced a change it could not watch). A failed pass is reported and ends that round; the
 * next call (a watch, a reconnect) starts a new one.
 *
 * It is common/pacing.ts's LatestWins with no debounce and no minimum interval.
 */
export class CoalescedRunner {
  private readonly pacer: LatestWins;

  constructor(
    pass: () => Promise<void>,
    onError: (err: Error) => void,
    /** No pass starts once this is true. */
    private readonly stopped: () => boolean = () => false,
  ) {
    this.pacer = new LatestWins({
      debounceMs: 0,
      minIntervalMs: 0,
      idleWhen: 'ended',
      debounceAfter: 'request',
      run: async () => {
        if (!this.stopped()) await pass();
      },
      onError,
    });
  }

  /** Runs a pass now, or one more after the running one; resolves when no pass is running. */
  run(): Promise<void> {
    if (this.stopped()) return Promise.resolve();
    this.pacer.request('run');
    return this.pacer.whenIdle();
  }

  /** From inside a pass: run one more after this one. */
  again(): void {
    this.pacer.request('again');
  }

  /** Resolves when the pass in progress (if any) is over. */
  settled(): Promise<void> {
    return this.pacer.whenIdle();
  }
}
