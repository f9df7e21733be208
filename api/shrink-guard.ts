/**
 * Shrink guard: a Marathon answer that would take many routes off the edge at once is held back.
 *
 * A Marathon restored with the wrong state, a new empty Marathon behind the same name, or a proxy
 * answering for it gives a 2xx `/v2/apps` answer that is well-formed but (nearly) empty; stored, it
 * would take every backend out of haproxy.cfg on every host. So an answer is compared with a
 * reference before it is stored:
 * - the reference is the stored snapshot's app and task counts, raised to the largest counts stored
 *   within the last `Marathon.ShrinkGuardHoldMs` (the "peak"), so a shrink cut into small steps is
 *   measured against where it started, not against the previous step;
 * - an answer is suspicious when it has fewer apps (or tasks) than the stored snapshot and either is
 *   empty while the reference had apps, or drops at least `ShrinkGuardMinDrop` apps (tasks) and more
 *   than `ShrinkGuardPercent` % of them (shrinkReason in api/shrink-policy.ts, pure).
 * A suspicious answer is held: nothing is stored or published, the previous snapshot keeps being
 * served. It applies when Marathon has kept answering suspiciously for `ShrinkGuardHoldMs` since the
 * first such answer (a streak: the held answer is replaced by the latest one, with a new identity),
 * or as soon as an operator confirms the held answer by its identity (the hash the snapshot would
 * get); a normal answer in between ends the streak and the held answer is dropped.
 *
 * The held answer (identity, counts, since, confirmation) and the peak live in one ZooKeeper record,
 * `<ControlPath>/shrink-guard`, written conditionally on its znode version and watched by every api
 * copy. So /status shows the same held answer on every copy, a confirm can land on any copy (it marks
 * the record; whichever copy fetches next applies it), and the hold keeps running across copies and
 * restarts. The answer itself is not stored there: the copy applying it fetches it again.
 */
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import type { GuardRecordStore } from './shrink-guard-store.js';
import { decide, EMPTY_RECORD, settledRecord, type Counts, type Decision, type GuardRecord, type HeldAnswer, type ShrinkPolicy } from './shrink-policy.js';

/** 409: there is no held answer to confirm. */
export class NothingHeldError extends Error {
  override name = 'NothingHeldError';
}

/** 409: the held answer is not the one the confirm named (it changed, or was confirmed already). */
export class HeldChangedError extends Error {
  override name = 'HeldChangedError';
  constructor(message: string, readonly current: HeldAnswer) {
    super(message);
  }
}

export interface ShrinkGuardOptions {
  store: GuardRecordStore;
  policy: ShrinkPolicy;
  /** This api copy's id (recorded as who fetched or confirmed). */
  copy: string;
  log: Logger;
  metrics: Metrics;
  /** Fires when a change of the record is noticed (a watch in ZooKeeper). */
  subscribe?: (refresh: () => void) => () => void;
  now?: () => number;
}

/**
 * The guard's state: the record as last read (kept fresh by a watch), and the writes. Every method
 * that writes re-reads and decides again on a conflict (another copy wrote first).
 */
export class ShrinkGuard {
  private record: GuardRecord = EMPTY_RECORD;
  private version = -1;
  private loaded = false;
  private closed = false;
  private unsubscribe: (() => void) | null = null;
  /** A settle that could not be written (ZooKeeper away): written before the next decision. */
  private unsettled: { stored: Counts; resetPeak: boolean } | null = null;
  private readonly now: () => number;
  private readonly onWatch = () => void this.refresh().catch(() => undefined);
  private heldListener: ((held: HeldAnswer) => void) | null = null;

  constructor(private readonly opts: ShrinkGuardOptions) {
    this.now = opts.now ?? Date.now;
  }

  get policy(): ShrinkPolicy {
    return this.opts.policy;
  }

  start(): void {
    this.unsubscribe = this.opts.subscribe?.(this.onWatch) ?? null;
    this.onWatch();
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
  }

  /**
   * `fn` is called when a read finds a held answer with a new `appliesAt` (typically held by another
   * copy), so this copy can fetch then too: the time-based apply does not depend on the copy that held
   * the answer still running.
   */
  onHeldSeen(fn: (held: HeldAnswer) => void): void {
    this.heldListener = fn;
  }

  /** The held answer as last read (any copy's), or null. */
  held(): HeldAnswer | null {
    return this.record.held;
  }

  /** Takes a record this copy wrote (unless a read meanwhile brought a newer one); false on a conflict. */
  private wrote(record: GuardRecord, version: number | null): boolean {
    if (version === null) return false;
    if (version > this.version) {
      this.record = record;
      this.version = version;
    }
    return true;
  }

  /** Reads the record again (and re-arms the watch). Throws the store's errors. */
  async refresh(): Promise<void> {
    if (this.closed) return;
    const { record, version } = await this.opts.store.read(this.onWatch);
    if (this.loaded && version < this.version && version !== -1) return;
    const was = this.record.held;
    this.record = record;
    this.version = version;
    this.loaded = true;
    if ((was !== null) !== (record.held !== null)) this.opts.metrics.answerHeld(record.held !== null);
    if (record.held && record.held.appliesAt !== was?.appliesAt) this.heldListener?.(record.held);
  }

  /**
   * Decides about a fetched answer and, when it is held, records it (so every copy sees it and the
   * hold counts from its first sighting on any copy). `id` computes the answer's identity (only
   * called when it is held). On repeated write conflicts the answer is held anyway: holding is the
   * safe side. Throws when the record cannot be read (the caller keeps the previous snapshot).
   */
  async admit(stored: Counts | null, answer: Counts, id: () => string): Promise<Decision> {
    if (!this.loaded) await this.refresh();
    if (this.unsettled) await this.writeSettled(this.unsettled.stored, this.unsettled.resetPeak).catch(() => undefined);
    let memo: string | null = null;
    const ident = () => (memo ??= id());
    let d: Decision = { action: 'apply', ended: null, resetPeak: false };
    for (let attempt = 0; attempt < 3; attempt++) {
      d = decide({ record: this.record, stored, answer, id: ident, now: this.now(), policy: this.opts.policy, copy: this.opts.copy });
      if (d.action === 'apply') return d;
      const prev = this.record.held;
      const next: GuardRecord = { ...this.record, held: d.held };
      // The same answer seen again within a second needs no write (several copies, bursts of events).
      if (prev && prev.id === d.held.id && prev.since === d.held.since && d.held.seenAt - prev.seenAt < 1000) return { action: 'hold', held: prev };
      if (this.wrote(next, await this.opts.store.write(next, this.version))) {
        if (!prev) this.opts.metrics.answerHeld(true);
        return d;
      }
      await this.refresh();
    }
    return d;
  }

  /**
   * After an answer was applied (stored, or equal to what is stored): drops the held answer and
   * raises or resets the peak. `how` (from the decision) is logged and counted. A failed write is
   * kept and retried before the next decision; until then the old record stays in force (safe side).
   */
  async settle(stored: Counts, decision: Extract<Decision, { action: 'apply' }>): Promise<void> {
    const held = this.record.held;
    if (decision.ended && held) {
      this.opts.metrics.heldAnswerEnded(decision.ended);
      this.opts.log.info({ how: decision.ended, heldId: held.id, since: held.since, apps: stored.apps, tasks: stored.tasks }, 'held marathon answer ended');
    }
    try {
      await this.writeSettled(stored, decision.resetPeak);
    } catch (err) {
      this.unsettled = { stored, resetPeak: decision.resetPeak };
      this.opts.log.warn({ err }, 'cannot update the shrink guard record; retrying on the next fetch');
    }
  }

  private async writeSettled(stored: Counts, resetPeak: boolean): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const next = settledRecord(this.record, stored, this.now(), this.opts.policy.holdMs, resetPeak);
      if (next.held === this.record.held && next.peak === this.record.peak) {
        this.unsettled = null;
        return;
      }
      const wasHeld = this.record.held !== null;
      if (this.wrote(next, await this.opts.store.write(next, this.version))) {
        if (wasHeld) this.opts.metrics.answerHeld(false);
        this.unsettled = null;
        return;
      }
      await this.refresh();
    }
    this.unsettled = { stored, resetPeak };
  }

  /**
   * An operator's confirm of the held answer `id`: marks it confirmed in the record, read fresh, so it
   * works on any copy. Throws NothingHeldError, HeldChangedError (carrying the answer held now), or the
   * store's errors. Returns the confirmed answer.
   */
  async confirm(id: string): Promise<HeldAnswer> {
    for (let attempt = 0; attempt < 3; attempt++) {
      await this.refresh();
      const held = this.record.held;
      if (!held) throw new NothingHeldError('no Marathon answer is held');
      if (held.id !== id) throw new HeldChangedError('the held Marathon answer is not the one named', held);
      if (held.confirmed) return held;
      const confirmed: HeldAnswer = { ...held, confirmed: { at: this.now(), copy: this.opts.copy } };
      const next = { ...this.record, held: confirmed };
      if (this.wrote(next, await this.opts.store.write(next, this.version))) {
        this.opts.log.warn({ heldId: id, apps: held.after.apps, tasks: held.after.tasks, appsBefore: held.before.apps }, 'held marathon answer confirmed by an operator');
        return confirmed;
      }
    }
    throw new Error('the shrink guard record kept changing; retry');
  }
}
