/**
 * The desired state in ZooKeeper: the Marathon snapshot the api tier wrote and every service record.
 *
 * Every read returns the full desired state, but re-reads only what changed since the last one:
 * - the snapshot when its pointer changed (one small `get` per read), unless a hint's delta turns the
 *   held snapshot into exactly that one: the pointer names the version, hash and delta digest the api
 *   stored, and a delta that does not match all of them is dropped (a hint is never trusted);
 * - the rules through the rule mirror (common/adapters/zookeeper/rules-mirror.ts), so a one-rule change costs one
 *   ZooKeeper read, not one per rule.
 * Any failure throws, so the reconciler never renders from a partial read: a lost ZooKeeper means
 * "keep the config in force", never "no apps".
 */
import type { Logger } from '../common/log.js';
import type { RuleStore } from '../common/adapters/zookeeper/rules.js';
import { RuleMirror } from '../common/adapters/zookeeper/rules-mirror.js';
import type { ControlStore, SnapshotPointer } from '../common/adapters/zookeeper/snapshot.js';
import type { MarathonSnapshot } from '../common/adapters/zookeeper/snapshot-format.js';
import { SnapshotLoader } from '../common/adapters/zookeeper/snapshot-read.js';
import { applyDelta, deltaDigest, type SnapshotDelta } from '../common/core/snapshot-delta.js';
import type { Zk } from '../common/adapters/zookeeper/zk.js';
import { NoSnapshotError, type DesiredState, type DesiredStateSource } from './outcome.js';

export class ZkDesiredState implements DesiredStateSource {
  private snapshot: MarathonSnapshot | null = null;
  /** Full reads parse only the apps that changed since the last one. */
  private readonly loader: SnapshotLoader;
  /**
   * The last hint's delta, not yet confirmed by ZooKeeper: one slot, latest wins, so a stream of forged
   * hints holds one object and costs nothing but the reads the reconciler paces anyway.
   */
  private pending: SnapshotDelta | null = null;
  private readonly rules: RuleMirror;
  /**
   * Full snapshot reads so far, hint deltas applied instead, and hint deltas ignored: not confirmed by
   * ZooKeeper's pointer (forged), malformed, not newer than the snapshot held (a replay, or the snapshot
   * was read before its hint came), or replaced by a later hint before a read (diagnostics and tests).
   */
  snapshotReads = 0;
  deltasApplied = 0;
  deltasIgnored = 0;

  constructor(
    zk: Zk,
    private readonly control: ControlStore,
    store: RuleStore,
    relistMs = 30000,
    private readonly log?: Logger,
    /** Called when a rules watch fires (see RuleMirror). */
    onRulesChanged?: () => void,
  ) {
    this.rules = new RuleMirror(zk, store, relistMs, log, onRulesChanged);
    this.loader = new SnapshotLoader(control);
  }

  get ruleCache(): RuleMirror {
    return this.rules;
  }

  /**
   * Keeps a hint's delta (common/core/snapshot-delta.ts) for the next read, which applies it only if
   * ZooKeeper confirms it (see read). Returns whether it was kept: false for anything not shaped like a
   * delta or not newer than the snapshot held. Never applies anything by itself.
   */
  offerDelta(delta: SnapshotDelta): boolean {
    if (!this.acceptable(delta)) {
      this.ignore(delta, 'malformed or not newer than the snapshot held');
      return false;
    }
    if (this.pending) this.ignore(this.pending, 'replaced by a later hint before a read');
    this.pending = delta;
    return true;
  }

  private acceptable(delta: SnapshotDelta): boolean {
    const d = delta as Partial<SnapshotDelta> | null;
    if (
      !d ||
      typeof d !== 'object' ||
      !Number.isSafeInteger(d.base) ||
      !Number.isSafeInteger(d.version) ||
      typeof d.hash !== 'string' ||
      typeof d.baseHash !== 'string' ||
      !Array.isArray(d.upsert) ||
      !Array.isArray(d.remove) ||
      (d.order !== undefined && !Array.isArray(d.order))
    ) {
      return false;
    }
    return !this.snapshot || delta.version > this.snapshot.version;
  }

  private ignore(delta: SnapshotDelta, why: string): void {
    this.deltasIgnored++;
    const d = delta as Partial<SnapshotDelta> | null;
    this.log?.debug({ why, base: d?.base, version: d?.version, held: this.snapshot?.version ?? -1 }, 'hint delta ignored');
  }

  /**
   * The pending delta applied to the held snapshot, when ZooKeeper's pointer confirms it: the pointer
   * is at the delta's version and hash, it stores the digest of exactly this delta, and the delta starts
   * from the content held. A delta for a version ZooKeeper does not show yet stays pending (this
   * session's server may lag behind the api that wrote it; the reconciler reads again when a hint
   * announced a newer version than it read); any other is dropped, counted and logged.
   */
  private confirmDelta(pointer: SnapshotPointer): MarathonSnapshot | null {
    const d = this.pending;
    const held = this.snapshot;
    if (!d || d.version > pointer.version) return null;
    this.pending = null;
    const confirmed =
      held !== null &&
      d.version === pointer.version &&
      d.hash === pointer.hash &&
      d.base === held.version &&
      d.baseHash === held.hash &&
      pointer.delta !== undefined &&
      deltaDigest(d) === pointer.delta;
    const apps = confirmed ? applyDelta(held.apps, d) : null;
    if (!apps) {
      this.ignore(d, `not confirmed by zookeeper (snapshot version ${pointer.version})`);
      return null;
    }
    this.deltasApplied++;
    return { version: pointer.version, hash: pointer.hash, fetchedAt: pointer.fetchedAt, apps };
  }

  async read(): Promise<DesiredState> {
    const [pointer, rules] = await Promise.all([this.control.snapshotPointer(), this.rules.read()]);
    if (!pointer) throw new NoSnapshotError('no snapshot');
    const held = this.snapshot;
    if (!held || held.version !== pointer.version || held.hash !== pointer.hash) {
      const fromDelta = this.confirmDelta(pointer);
      if (fromDelta) this.snapshot = fromDelta;
      else {
        const snap = await this.loader.read();
        if (!snap) throw new NoSnapshotError('no snapshot');
        if (!Array.isArray(snap.apps)) throw new Error('the stored snapshot is not an array of apps');
        this.snapshotReads++;
        this.snapshot = snap;
      }
    } else if (this.pending && this.pending.version <= pointer.version) {
      // A delta for the version held (or older) has nothing to add: a replay, or forged.
      this.confirmDelta(pointer);
    }
    return { snapshotVersion: this.snapshot!.version, apps: this.snapshot!.apps, rules };
  }
}
