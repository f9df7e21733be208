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
 *   than `ShrinkGuardPercent` % of them (shrinkReason below, a pure function).
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
import { isRunning } from '../common/core/template-data.js';
import { type Zk } from '../common/adapters/zookeeper/zk.js';
import { ZkBadVersionError, ZkNodeExistsError, ZkNoNodeError } from '../common/adapters/zookeeper/zk-errors.js';

export interface Counts {
  apps: number;
  tasks: number;
}

export interface ShrinkPolicy {
  /** Marathon.ShrinkGuardPercent */
  percent: number;
  /** Marathon.ShrinkGuardMinDrop */
  minDrop: number;
  /** Marathon.ShrinkGuardHoldMs */
  holdMs: number;
}

/** Why an answer is held: it is empty, or it drops too many apps, or too many tasks. */
export type ShrinkReason = 'empty' | 'apps' | 'tasks';

export interface HeldAnswer {
  /** The answer's identity: the hash the snapshot would get (sha256 of its apps). */
  id: string;
  reason: ShrinkReason;
  /** The reference it was compared with, and its own counts. */
  before: Counts;
  after: Counts;
  /** When the streak of suspicious answers began (ms epoch). */
  since: number;
  /** When a copy last fetched this answer. */
  seenAt: number;
  /** When the latest answer of the streak applies by itself (since + ShrinkGuardHoldMs). */
  appliesAt: number;
  /** The api copy that fetched it last. */
  copy: string;
  /** Set by an operator's confirm (POST /api/marathon/held/confirm). */
  confirmed: { at: number; copy: string } | null;
}

export interface GuardRecord {
  held: HeldAnswer | null;
  /** The largest counts stored lately, and when they were raised or reset. */
  peak: (Counts & { at: number }) | null;
}

/** How a held answer ended: a later answer was normal, it stayed long enough, or it was confirmed. */
export type HeldEnd = 'recovered' | 'expired' | 'confirmed';

export type Decision =
  | { action: 'apply'; ended: HeldEnd | null; resetPeak: boolean }
  | { action: 'hold'; held: HeldAnswer };

/**
 * Apps and tasks of a `/v2/apps` answer. Only tasks that can take traffic count: running (the
 * template's rule) and not reported unhealthy by any health check result, so an answer that keeps
 * every task but marks them all killed or failing (every server disabled) is a shrink too.
 */
export function countAnswer(apps: readonly unknown[]): Counts {
  let tasks = 0;
  for (const a of apps) {
    const list = (a as { tasks?: unknown } | null)?.tasks;
    if (!Array.isArray(list)) continue;
    for (const t of list) if (servesTraffic(t)) tasks++;
  }
  return { apps: apps.length, tasks };
}

function servesTraffic(task: unknown): boolean {
  if (typeof task !== 'object' || task === null) return false;
  const t = task as Record<string, unknown>;
  if (!isRunning(t)) return false;
  const results = t.healthCheckResults;
  return !(Array.isArray(results) && results.some((r) => typeof r === 'object' && r !== null && (r as { alive?: unknown }).alive === false));
}

/** Why `answer` is a suspicious shrink of `reference`, or null when it is not. Pure. */
export function shrinkReason(reference: Counts, answer: Counts, policy: Pick<ShrinkPolicy, 'percent' | 'minDrop'>): ShrinkReason | null {
  if (reference.apps > 0 && answer.apps === 0) return 'empty';
  const drops = (before: number, after: number) => {
    const d = before - after;
    return d > 0 && d >= policy.minDrop && d * 100 > policy.percent * before;
  };
  if (drops(reference.apps, answer.apps)) return 'apps';
  if (drops(reference.tasks, answer.tasks)) return 'tasks';
  return null;
}

/**
 * What to do with an answer, given the guard record, the stored snapshot's counts (null: none stored
 * yet) and the time. Pure: the caller writes the held answer, or stores the answer and settles.
 */
export function decide(input: {
  record: GuardRecord;
  stored: Counts | null;
  answer: Counts;
  id: () => string;
  now: number;
  policy: ShrinkPolicy;
  copy: string;
}): Decision {
  const { record, stored, answer, now, policy } = input;
  const held = record.held;
  const ended = (how: HeldEnd): HeldEnd | null => (held ? how : null);
  // Nothing to protect yet, or nothing served would go away: apply.
  if (!stored || (answer.apps >= stored.apps && answer.tasks >= stored.tasks)) {
    return { action: 'apply', ended: ended('recovered'), resetPeak: false };
  }
  let reference: Counts = stored;
  const peak = record.peak;
  if (peak && peak.at + policy.holdMs > now) reference = { apps: Math.max(stored.apps, peak.apps), tasks: Math.max(stored.tasks, peak.tasks) };
  // An operator accepted the held counts: they are the reference now (later small changes apply).
  if (held?.confirmed) {
    if (!shrinkReason(held.after, answer, policy)) return { action: 'apply', ended: 'confirmed', resetPeak: true };
  }
  const reason = shrinkReason(reference, answer, policy);
  if (!reason) return { action: 'apply', ended: ended('recovered'), resetPeak: false };
  // A streak of suspicious answers continues the hold; a confirmed answer shrinking further starts anew.
  const streak = held !== null && held.confirmed === null;
  const since = streak ? held.since : now;
  if (streak && now >= since + policy.holdMs) return { action: 'apply', ended: 'expired', resetPeak: true };
  const id = input.id();
  return {
    action: 'hold',
    held: { id, reason, before: reference, after: answer, since, seenAt: now, appliesAt: since + policy.holdMs, copy: input.copy, confirmed: null },
  };
}

/** The record after an answer was stored: no held answer; the peak raised, renewed or reset. Pure. */
export function settledRecord(record: GuardRecord, stored: Counts, now: number, holdMs: number, resetPeak: boolean): GuardRecord {
  const peak = record.peak;
  let next: GuardRecord['peak'];
  if (resetPeak || !peak || peak.at + holdMs <= now) next = { ...stored, at: now };
  else if (stored.apps > peak.apps || stored.tasks > peak.tasks) next = { apps: Math.max(stored.apps, peak.apps), tasks: Math.max(stored.tasks, peak.tasks), at: now };
  else next = peak;
  // An expired peak equal to what is stored need not be written again: it changes no decision.
  if (!resetPeak && record.held === null && peak && next !== peak && peak.apps === stored.apps && peak.tasks === stored.tasks) next = peak;
  return { held: null, peak: next };
}

// --- where the record lives ------------------------------------------------------------------

/** Storage of the guard record: ZooKeeper for the api, memory for a single process (tests). */
export interface GuardRecordStore {
  /** The record and its version (-1 when there is none); `onChange` fires once when it changes. */
  read(onChange?: () => void): Promise<{ record: GuardRecord; version: number }>;
  /** Writes the record if its version is still `version` (-1: create): its new version, or null on a conflict. */
  write(record: GuardRecord, version: number): Promise<number | null>;
}

const EMPTY: GuardRecord = { held: null, peak: null };

function parseRecord(data: Buffer): GuardRecord {
  try {
    const r = JSON.parse(data.toString()) as Partial<GuardRecord>;
    return { held: r.held ?? null, peak: r.peak ?? null };
  } catch {
    return EMPTY; // a damaged record is replaced by the next write
  }
}

/** The record in the znode `path` (one small JSON document). */
export function zkGuardStore(zk: Zk, path: string): GuardRecordStore {
  return {
    async read(onChange) {
      const node = await zk.get(path, onChange);
      if (!node) {
        if (onChange) await zk.exists(path, onChange);
        return { record: EMPTY, version: -1 };
      }
      return { record: parseRecord(node.data), version: node.stat.version };
    },
    async write(record, version) {
      const data = Buffer.from(JSON.stringify(record));
      try {
        if (version >= 0) return await zk.set(path, data, version);
        try {
          await zk.create(path, data);
        } catch (err) {
          if (!(err instanceof ZkNoNodeError)) throw err;
          await zk.mkdirp(path.slice(0, path.lastIndexOf('/')));
          await zk.create(path, data);
        }
        return 0;
      } catch (err) {
        if (err instanceof ZkBadVersionError || err instanceof ZkNodeExistsError || (version >= 0 && err instanceof ZkNoNodeError)) return null;
        throw err;
      }
    },
  };
}

/** A record in memory: one process only (the intake's default when no store is given). */
export function memoryGuardStore(): GuardRecordStore {
  let record = EMPTY;
  let version = -1;
  return {
    async read() {
      return { record, version };
    },
    async write(r, v) {
      if (v !== version) return null;
      record = r;
      return ++version;
    },
  };
}

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
  private record: GuardRecord = EMPTY;
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
