/**
 * The rule mirror: every service record, kept current with ZooKeeper watches; the one place the api
 * (GET /api/services, /api/state, /api/workers) and the worker read the rules from.
 *
 * Freshness contract: a read returns the records as this session's ZooKeeper server showed them at some
 * point after the read was called: every write of this process that completed before the call, and
 * every other writer's change that server had applied by then (ZooKeeper reads are ordered per session,
 * not linearizable: a lagging follower shows another copy's write a little later, as any read would).
 * How:
 * - Each rule znode is read with a data watch; a watch that fires marks that rule dirty. A read asks
 *   for the rules parent's stat first: every RuleStore write (and Bamboo's) sets the parent's data in
 *   the same transaction, and a creation or deletion changes its children version. ZooKeeper delivers
 *   a session's watch events in order with its replies, so once the parent shows a new version, the
 *   events of every rule write before it have been seen: re-reading the dirty rules (and listing the
 *   children when the children version moved) gives the complete current set.
 * - A children watch on the parent sees records created or deleted by writers that leave the parent's
 *   data alone (Bamboo's own create is a plain child create; so is zkCli's).
 * - Reads run one at a time; a read called while one runs waits for the next one, which starts after
 *   it, so no caller gets an answer that began before its call (read-your-writes across requests).
 *   `invalidate()` after a local write also makes the next read list the children again.
 * - The mirror starts over with a full listing after any disconnection, after a failed read, and at
 *   least every `relistMs`, which also bounds how long a hand edit that bypasses the watches can go
 *   unseen.
 * A read that cannot ask ZooKeeper throws (ZkUnavailableError): never a partial set (an absent rules
 * parent is an empty one).
 *
 * A watch that fires (on a rule, or on the parent) also calls `onChange`: the worker treats it as a
 * trigger, so rule changes converge even when every hint is lost, and a hint that outran a lagging
 * ZooKeeper follower is followed by another read once the follower catches up.
 */
import type { Logger } from '../../log.js';
import { monotonicNow } from '../../pacing.js';
import { parseRecord, type RuleStore, type StoredRecord } from './rules.js';
import { type Zk } from './zk.js';
import { queryUnescape } from './zk-paths.js';

export class RuleMirror {
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
  ) {}

  /** Follows the session from the first read on (before it, nothing is cached or watched). */
  private followSession(): void {
    if (this.following) return;
    this.following = true;
    this.zk.on('disconnected', () => (this.valid = false));
    // A new session has none of the old session's watches.
    this.zk.on('expired', () => {
      this.armed.clear();
      this.parentArmed = false;
      this.childrenArmed = false;
    });
  }

  private following = false;

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

  /** Makes the next read list the children again (call after a local write). */
  invalidate(): void {
    this.recheck = true;
  }

  private recheck = false;
  private running: Promise<Map<string, StoredRecord>> | null = null;
  private queued: Promise<Map<string, StoredRecord>> | null = null;

  /** Every record by app id, sorted by id (see the freshness contract above). */
  read(): Promise<Map<string, StoredRecord>> {
    if (!this.running) return this.start();
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.start();
      });
    return this.queued;
  }

  private start(): Promise<Map<string, StoredRecord>> {
    const p = this.readOnce().finally(() => {
      if (this.running === p) this.running = null;
    });
    this.running = p;
    return p;
  }

  private async readOnce(): Promise<Map<string, StoredRecord>> {
    this.followSession();
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
    const recheck = this.recheck;
    this.recheck = false;
    if (fresh && !recheck && st.version === this.parentVersion && cversion === this.parentCversion && this.dirty.size === 0 && this.sorted && this.childrenArmed) {
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
    } else if (recheck || cversion !== this.parentCversion || !this.childrenArmed) {
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
            node = await this.zk.get(this.store.paths.node(name), watch);
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
