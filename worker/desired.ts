/**
 * The desired state in ZooKeeper: the Marathon snapshot the api tier wrote and every service record.
 *
 * The snapshot is re-read only when its version changed (one cheap `exists` per reconcile); the rules
 * are listed in full every time. Any failure throws, so the reconciler never renders from a partial
 * read: a lost ZooKeeper means "keep the config in force", never "no apps".
 */
import type { RuleStore } from '../common/rules.js';
import type { ControlStore, MarathonSnapshot } from '../common/snapshot.js';
import { NoSnapshotError, type DesiredState, type DesiredStateSource } from './reconciler.js';

export class ZkDesiredState implements DesiredStateSource {
  private cached: MarathonSnapshot | null = null;
  /** Full snapshot reads so far (diagnostics and tests). */
  snapshotReads = 0;

  constructor(
    private readonly control: ControlStore,
    private readonly rules: RuleStore,
  ) {}

  async read(): Promise<DesiredState> {
    const [version, rules] = await Promise.all([this.control.snapshotVersion(), this.rules.list()]);
    if (version < 0) throw new NoSnapshotError('no snapshot');
    if (!this.cached || this.cached.version !== version) {
      const snap = await this.control.readSnapshot();
      if (!snap) throw new NoSnapshotError('no snapshot');
      if (!Array.isArray(snap.apps)) throw new Error('the stored snapshot is not an array of apps');
      this.snapshotReads++;
      this.cached = snap;
    }
    return { snapshotVersion: this.cached.version, apps: this.cached.apps, rules };
  }
}
