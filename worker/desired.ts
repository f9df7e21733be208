/**
 * The desired state in ZooKeeper: the Marathon snapshot the api tier wrote and every service record.
 *
 * Every reconcile asks ZooKeeper for the current versions (two cheap `exists` calls) and re-reads only
 * what changed: the snapshot when its version changed, the rules when their parent node's data
 * version (every RuleStore write, and Bamboo's, touches it) or children version changed. The rules are
 * also listed in full at least every `relistMs`, which bounds how long a hand edit that bypasses the
 * parent (e.g. zkCli `set` on one rule) can go unseen. The result is always the full desired state;
 * any failure throws, so the reconciler never renders from a partial read: a lost ZooKeeper means
 * "keep the config in force", never "no apps".
 */
import type { RuleStore, StoredRecord } from '../common/rules.js';
import type { ControlStore, MarathonSnapshot } from '../common/snapshot.js';
import type { Zk } from '../common/zk.js';
import { NoSnapshotError, type DesiredState, type DesiredStateSource } from './reconciler.js';

export class ZkDesiredState implements DesiredStateSource {
  private snapshot: MarathonSnapshot | null = null;
  private rulesCache: { version: number; cversion: number; at: number; rules: Map<string, StoredRecord> } | null = null;
  /** Full reads so far (diagnostics and tests). */
  snapshotReads = 0;
  ruleListings = 0;

  constructor(
    private readonly zk: Zk,
    private readonly control: ControlStore,
    private readonly rules: RuleStore,
    private readonly relistMs = 30000,
  ) {}

  async read(): Promise<DesiredState> {
    const [version, rules] = await Promise.all([this.control.snapshotVersion(), this.readRules()]);
    if (version < 0) throw new NoSnapshotError('no snapshot');
    if (!this.snapshot || this.snapshot.version !== version) {
      const snap = await this.control.readSnapshot();
      if (!snap) throw new NoSnapshotError('no snapshot');
      if (!Array.isArray(snap.apps)) throw new Error('the stored snapshot is not an array of apps');
      this.snapshotReads++;
      this.snapshot = snap;
    }
    return { snapshotVersion: this.snapshot.version, apps: this.snapshot.apps, rules };
  }

  private async readRules(): Promise<Map<string, StoredRecord>> {
    const st = await this.zk.exists(this.rules.basePath);
    if (!st) return new Map();
    const c = this.rulesCache;
    const cversion = st.cversion ?? -1;
    if (c && c.version === st.version && c.cversion === cversion && cversion >= 0 && Date.now() - c.at < this.relistMs) return c.rules;
    // Listed after reading the versions: a write racing with the listing changes the versions again,
    // so the next read lists once more.
    const rules = await this.rules.list();
    this.ruleListings++;
    this.rulesCache = { version: st.version, cversion, at: Date.now(), rules };
    return rules;
  }
}
