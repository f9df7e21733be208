/**
 * The desired state in ZooKeeper: the Marathon snapshot the api tier wrote and every service record.
 *
 * Every read returns the full desired state, but re-reads only what changed since the last one:
 * - the snapshot when its pointer changed (one small `get` per read), unless a hint's delta turns the
 *   held snapshot into exactly that one: the pointer names the version, hash and delta digest the api
 *   stored, and a delta that does not match all of them is dropped (a hint is never trusted);
 * - the rules through a list-and-watch cache (RuleCache below), so a one-rule change costs one
 *   ZooKeeper read, not one per rule.
 * Any failure throws, so the reconciler never renders from a partial read: a lost ZooKeeper means
 * "keep the config in force", never "no apps".
 */
import type { Logger } from '../common/log.js';
import { parseRecord, type RuleStore, type StoredRecord } from '../common/rules.js';
import { splitParsed, type ControlStore, type MarathonSnapshot, type SnapshotPointer } from '../common/snapshot.js';
import { applyDelta, deltaDigest, type SnapshotDelta, type ParsedApps } from '../common/snapshot-delta.js';
import { queryUnescape, type Zk } from '../common/zk.js';
import { NoSnapshotError, type DesiredState, type DesiredStateSource } from './outcome.js';
import { monotonicNow } from '../common/pacing.js';

/**
 * Every service record, kept current with ZooKeeper watches.
 *
 * Each rule znode is read with a data watch; a watch that fires marks that rule dirty. A read asks for
 * the rules parent's stat first: every RuleStore write (and Bamboo's) sets the parent's data after
 * writing the rule, and a creation or deletion changes its children version. ZooKeeper delivers a
 * session's watch events in order with its replies, so once the parent shows a new version, the events
 * of every rule write before it have been seen: re-reading the dirty rules (and listing the children
 * when the children version moved) gives the complete current set. The cache starts over with a full
 * listing after any disconnection, and at least every `relistMs`, which also bounds how long a hand
 * edit that bypasses the parent can go unseen.
 *
 * A children watch on the parent sees records created or deleted by writers that leave the parent's
 * data alone (Bamboo's own create is a plain child create; so is zkCli's).
 *
 * A watch that fires (on a rule, or on the parent) also calls `onChange`: the worker treats it as a
 * trigger, so rule changes converge even when every hint is lost, and a hint that outran a lagging
 * ZooKeeper follower is followed by another read once the follower catches up.
 */
export class RuleCache {
  private readonly records = new Map<string, StoredRecord>();
  /** Node names with a data watch registered in this session. */
  private readonly armed = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly watchers = new Map<string, () => void>();
  private parentArmed = false;
  private readonly parentWatcher = () => {
    this.parentArmed = false;
    this.onChange?.();
  };
  /**
   * A children watch on the rules parent: a record created or deleted by a writer that does not touch
   * the parent's data (Bamboo's create, zkCli) is seen at once, not at the next re-list.
   */
  private childrenArmed = false;
  private readonly childrenWatcher = () => {
    this.childrenArmed = false;
    this.onChange?.();
  };
  private parentVersion = -1;
  private parentCversion = -1;
  private valid = false;
  private listedAt = -Infinity;
  private sorted: Map<string, StoredRecord> | null = null;
  /** Full listings and single-rule reads so far (diagnostics and tests). */
  listings = 0;
  ruleReads = 0;

  constructor(
    private readonly zk: Zk,
    private readonly store: RuleStore,
    private readonly relistMs: number,
    private readonly log?: Logger,
    /** Called when a watch fires (a rule or the rules parent changed). */
    private readonly onChange?: () => void,
  ) {
    zk.on('disconnected', () => (this.valid = false));
    // A new session has none of the old session's watches.
    zk.on('expired', () => {
      this.armed.clear();
      this.parentArmed = false;
      this.childrenArmed = false;
    });
  }

  private watcherFor(name: string): () => void {
    let w = this.watchers.get(name);
    if (!w) {
      w = () => {
        this.armed.delete(name);
        this.dirty.add(name);
        this.onChange?.();
      };
      this.watchers.set(name, w);
    }
    return w;
  }

  /** Lists the rules parent's children, arming the children watch when it is not armed. */
  private async listChildren(base: string): Promise<string[]> {
    const watch = !this.childrenArmed;
    // Marked before the call, as for rule watches: a watch firing during the reply unmarks it.
    if (watch) this.childrenArmed = true;
    try {
      return await this.zk.children(base, watch ? this.childrenWatcher : undefined);
    } catch (err) {
      if (watch) this.childrenArmed = false;
      throw err;
    }
  }

  async read(): Promise<Map<string, StoredRecord>> {
    const base = this.store.basePath;
    const watchParent = !this.parentArmed;
    const parent = await this.zk.get(base, watchParent ? this.parentWatcher : undefined);
    if (parent && watchParent) this.parentArmed = true;
    const st = parent?.stat;
    if (!st) {
      this.records.clear();
      this.sorted = null;
      this.valid = false;
      return new Map();
    }
    const cversion = st.cversion ?? -1;
    const fresh = this.valid && cversion >= 0 && monotonicNow() - this.listedAt < this.relistMs;
    if (fresh && st.version === this.parentVersion && cversion === this.parentCversion && this.dirty.size === 0 && this.sorted && this.childrenArmed) {
      return this.sorted;
    }
    // Taken before reading, so events that arrive meanwhile are handled by the next read.
    const toRead = new Set(this.dirty);
    this.dirty.clear();
    let names: string[] | null = null;
    if (!fresh) {
      names = await this.listChildren(base);
      for (const n of names) toRead.add(n);
      this.records.clear();
      this.listings++;
      this.listedAt = monotonicNow();
    } else if (cversion !== this.parentCversion || !this.childrenArmed) {
      names = await this.listChildren(base);
      const present = new Set(names);
      for (const n of names) if (!this.records.has(n)) toRead.add(n);
      for (const n of [...this.records.keys()]) if (!present.has(n)) this.records.delete(n);
    }
    try {
      await Promise.all(
        [...toRead].map(async (name) => {
          let id: string;
          try {
            id = queryUnescape(name);
          } catch {
            return; // not a name Bamboo would write; skipped as RuleStore.list does
          }
          // Watch only once per session; a rule re-read for other reasons keeps its pending watch.
          const watch = this.armed.has(name) ? undefined : this.watcherFor(name);
          // Marked before the read: a watch firing between the reply and this code unmarks it, so the
          // next read re-arms it (marking after the await lost such writes until the next re-list).
          if (watch) this.armed.add(name);
          let node;
          try {
            node = await this.zk.get(`${base}/${name}`, watch);
          } catch (err) {
            if (watch) this.armed.delete(name);
            throw err;
          }
          this.ruleReads++;
          if (!node) {
            this.records.delete(name);
            if (watch) this.armed.delete(name);
            return;
          }
          const { record, format } = parseRecord(id, node.data);
          this.records.set(name, { record, version: node.stat.version, format });
        }),
      );
    } catch (err) {
      // Unknown which rules were read: start over next time.
      this.valid = false;
      throw err;
    }
    this.parentVersion = st.version;
    this.parentCversion = cversion;
    this.valid = true;
    const byId = [...this.records.values()].sort((a, b) => (a.record.Id < b.record.Id ? -1 : a.record.Id > b.record.Id ? 1 : 0));
    this.sorted = new Map(byId.map((r) => [r.record.Id, r]));
    this.log?.trace({ rules: this.sorted.size, read: toRead.size, listed: names !== null }, 'rules read');
    return this.sorted;
  }
}

export class ZkDesiredState implements DesiredStateSource {
  private snapshot: MarathonSnapshot | null = null;
  /** The apps of the last snapshot read with their texts: the next read parses only apps that changed. */
  private parsed: ParsedApps | null = null;
  /**
   * The last hint's delta, not yet confirmed by ZooKeeper: one slot, latest wins, so a stream of forged
   * hints holds one object and costs nothing but the reads the reconciler paces anyway.
   */
  private pending: SnapshotDelta | null = null;
  private readonly rules: RuleCache;
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
    /** Called when a rules watch fires (see RuleCache). */
    onRulesChanged?: () => void,
  ) {
    this.rules = new RuleCache(zk, store, relistMs, log, onRulesChanged);
  }

  get ruleCache(): RuleCache {
    return this.rules;
  }

  /**
   * Keeps a hint's delta (common/snapshot-delta.ts) for the next read, which applies it only if
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
        const snap = await this.control.readSnapshot(this.parsed);
        if (!snap) throw new NoSnapshotError('no snapshot');
        if (!Array.isArray(snap.apps)) throw new Error('the stored snapshot is not an array of apps');
        this.snapshotReads++;
        ({ snapshot: this.snapshot, parsed: this.parsed } = splitParsed(snap));
      }
    } else if (this.pending && this.pending.version <= pointer.version) {
      // A delta for the version held (or older) has nothing to add: a replay, or forged.
      this.confirmDelta(pointer);
    }
    return { snapshotVersion: this.snapshot!.version, apps: this.snapshot!.apps, rules };
  }
}
