/**
 * One async pass at a time, for watch-driven re-reads: a call while a pass runs does not start a
 * second one alongside it, it makes exactly one more pass run after it (however many calls came),
 * so the last pass always starts after the last call. A pass can ask for another with `again()`
 * (e.g. it raced a change it could not watch). A failed pass is reported and ends that round; the
 * next call (a watch, a reconnect) starts a new one.
 */
export class CoalescedRunner {
  private running: Promise<void> | null = null;
  private pending = false;

  constructor(
    private readonly pass: () => Promise<void>,
    private readonly onError: (err: Error) => void,
    /** No pass starts once this is true. */
    private readonly stopped: () => boolean = () => false,
  ) {}

  /** Runs a pass now, or one more after the running one; resolves when no pass is running. */
  run(): Promise<void> {
    if (this.stopped()) return Promise.resolve();
    if (this.running) {
      this.pending = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.pending = false;
        try {
          await this.pass();
        } catch (err) {
          this.onError(err instanceof Error ? err : new Error(String(err)));
        }
      } while (this.pending && !this.stopped());
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** From inside a pass: run one more after this one. */
  again(): void {
    this.pending = true;
  }

  /** Resolves when the pass in progress (if any) is over. */
  settled(): Promise<void> {
    return this.running ?? Promise.resolve();
  }
}
