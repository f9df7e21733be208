/**
 * The api's views of the rules: `GET /api/services` bodies built once per change of the rule mirror
 * (common/adapters/zookeeper/rules-mirror.ts, whose header states the freshness contract), so a request with 1,000 rules
 * costs one ZooKeeper round trip (the parent's stat) instead of 1,000.
 */
import type { Logger } from '../common/log.js';
import type { ServiceRecord } from '../common/core/model.js';
import { monotonicNow } from '../common/pacing.js';
import { RuleMirror } from '../common/adapters/zookeeper/rules-mirror.js';
import type { RuleStore, StoredRecord } from '../common/adapters/zookeeper/rules.js';
import type { Zk } from '../common/adapters/zookeeper/zk.js';

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
  /** When it was built (monotonic ms: only its age is used). */
  loadedAt: number;
}

export class RulesCache {
  private readonly mirror: RuleMirror;
  private view: RulesView | null = null;
  private from: ReadonlyMap<string, StoredRecord> | null = null;
  private loads = 0;

  constructor(
    zk: Zk,
    store: RuleStore,
    private readonly log: Logger,
    /** The mirror's full re-list interval. */
    relistMs = 5000,
  ) {
    this.mirror = new RuleMirror(zk, store, relistMs, log);
  }

  /** Call after every local write: the next read lists the rules again (read-your-writes). */
  invalidate(): void {
    this.mirror.invalidate();
  }

  /** The current records; throws ZkUnavailableError when ZooKeeper cannot be asked. */
  async get(): Promise<RulesView> {
    const records = await this.mirror.read();
    if (this.view && this.from === records) return this.view;
    this.view = buildView(records, `${++this.loads}`);
    this.from = records;
    this.log.debug({ rules: records.size }, 'rules loaded');
    return this.view;
  }
}

function buildView(records: ReadonlyMap<string, StoredRecord>, stamp: string): RulesView {
  const services: Record<string, ServiceRecord> = {};
  const withVersions: Record<string, ServiceRecord & { Version: number }> = {};
  const versions: Record<string, number> = {};
  for (const [id, r] of records) {
    services[id] = r.record;
    withVersions[id] = { ...r.record, Version: r.version };
    versions[id] = r.version;
  }
  return { records, services, versions, json: JSON.stringify(services), jsonWithVersions: JSON.stringify(withVersions), stamp, loadedAt: monotonicNow() };
}
