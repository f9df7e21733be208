/**
 * A read cache of every service record, so `GET /api/services` with 1,000 rules costs one ZooKeeper
 * round trip instead of 1,000 (Bamboo read them one by one on every request).
 *
 * Freshness: each read first fetches the stat of the rules parent node (one cheap `exists`). Every
 * create and delete changes its child version, and every write through RuleStore (and through
 * Bamboo, which did the same) sets its data, changing its data version; when both are as cached, the
 * cached records are served. A write by this copy invalidates at once (read-your-writes). A raw
 * change of one record's data that does not touch the parent (no Bamboo or bamboo-ts writer does
 * that) is picked up within `maxAgeMs`.
 */
import type { Logger } from '../common/log.js';
import type { ServiceRecord } from '../common/model.js';
import type { RuleStore, StoredRecord } from '../common/rules.js';
import type { Zk } from '../common/zk.js';
import { monotonicNow } from '../common/pacing.js';

export interface RulesView {
  /** Every record by app id, sorted by id. */
  records: ReadonlyMap<string, StoredRecord>;
  /** The same as Bamboo's `GET /api/services` object `{id: {Id, Acl, Config}}`. */
  services: Record<string, ServiceRecord>;
  /** Znode version per app id. */
  versions: Record<string, number>;
  /** Pre-serialised bodies of `GET /api/services` and `GET /api/services?versions=1`. */
  json: string;
  jsonWithVersions: string;
  /** Changes whenever the content may have changed (cache key for derived data). */
  stamp: string;
  /** When it was loaded (monotonic ms: only its age is used). */
  loadedAt: number;
}

export class RulesCache {
  private view: RulesView | null = null;
  private viewGen = -1;
  private gen = 0;
  private loading: { gen: number; stamp: string; promise: Promise<RulesView> } | null = null;
  private loads = 0;

  constructor(
    private readonly zk: Zk,
    private readonly store: RuleStore,
    private readonly log: Logger,
    private readonly maxAgeMs = 5000,
  ) {}

  /** Forgets the cached records (call after every local write). */
  invalidate(): void {
    this.gen++;
  }

  /** The current records; throws ZkUnavailableError when ZooKeeper cannot be asked. */
  async get(): Promise<RulesView> {
    const st = await this.zk.exists(this.store.basePath);
    const stamp = st ? `${st.version}.${st.cversion ?? -1}` : 'none';
    const v = this.view;
    if (v && this.viewGen === this.gen && v.stamp.startsWith(`${stamp}/`) && monotonicNow() - v.loadedAt < this.maxAgeMs) return v;
    if (this.loading && this.loading.gen === this.gen && this.loading.stamp === stamp) return this.loading.promise;
    const gen = this.gen;
    const promise = this.load(stamp, gen).finally(() => {
      if (this.loading?.promise === promise) this.loading = null;
    });
    this.loading = { gen, stamp, promise };
    return promise;
  }

  private async load(stamp: string, gen: number): Promise<RulesView> {
    const records = await this.store.list();
    const services: Record<string, ServiceRecord> = {};
    const withVersions: Record<string, ServiceRecord & { Version: number }> = {};
    const versions: Record<string, number> = {};
    for (const [id, r] of records) {
      services[id] = r.record;
      withVersions[id] = { ...r.record, Version: r.version };
      versions[id] = r.version;
    }
    const view: RulesView = {
      records,
      services,
      versions,
      json: JSON.stringify(services),
      jsonWithVersions: JSON.stringify(withVersions),
      stamp: `${stamp}/${++this.loads}`,
      loadedAt: monotonicNow(),
    };
    if (gen === this.gen) {
      this.view = view;
      this.viewGen = gen;
    }
    this.log.debug({ rules: records.size }, 'rules loaded');
    return view;
  }
}
