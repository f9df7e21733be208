/**
 * Secures what Bamboo keeps in ZooKeeper when a digest is configured (issue 15, F10).
 *
 * Every node this project creates carries the digest ACL (common/adapters/zookeeper/zk.ts). Nodes it did not create do
 * not: the rules an older Bamboo (Go) wrote under `Bamboo.Zookeeper.Path` have ZooKeeper's default
 * `world:anyone` ACL with every permission, so with a digest configured anyone could still add or
 * rewrite rules. At start-up (and after each reconnect until it has succeeded once) an api copy walks
 * the rules path and the control path, parents before children, and gives every node whose ACL differs
 * the one it creates nodes with: the digest identity with all permissions, and nothing for anyone
 * else. Not world-readable: the snapshot holds Marathon's env values, and every Bamboo process reads
 * with the digest. Securing a parent first means nobody without the digest can add a child behind the
 * walk.
 *
 * A node this session may not change (its ACL names another identity without ADMIN for ours) is
 * reported loudly: one error log line per node, `zookeeperAcl` in GET /status, and the StatsD gauge
 * `zookeeper.acl.unsecured`. A walk that secured everything leaves a marker
 * (`<control>/acl-secured`, naming the paths and the identity), so the next start costs three reads;
 * another identity or other paths walk again. Nodes created later are secured by creation: only the
 * digest may create children of a secured parent.
 */
import type { Logger } from '../common/log.js';
import type { Metrics } from '../common/adapters/statsd/metrics.js';
import { type Zk } from '../common/adapters/zookeeper/zk.js';
import { isNoAuth, ZkNoNodeError } from '../common/adapters/zookeeper/zk-errors.js';
import { ControlPaths, childPath } from '../common/adapters/zookeeper/zk-paths.js';

/** Largest number of unsecured paths listed (and logged one by one); the count is always complete. */
const LISTED = 20;
/** ZooKeeper requests in flight during a walk. */
const PARALLEL = 32;

export interface AclStatus {
  /** off: no digest configured (every node is world-writable by design); pending: not walked yet. */
  state: 'off' | 'pending' | 'secured' | 'unsecured' | 'failed';
  /** Nodes whose ACL this start changed, and nodes checked. */
  secured: number;
  checked: number;
  /** Nodes that could not be secured (first LISTED), and how many. */
  unsecured: string[];
  unsecuredCount: number;
  /** The walk was skipped: the marker says an earlier one secured everything. */
  fromMarker: boolean;
  error: string | null;
  at: number | null;
}

interface Marker {
  rules: string;
  control: string;
  acl: string[];
  at: number;
}

export class AclGuard {
  private current: AclStatus;
  private running: Promise<AclStatus> | null = null;

  constructor(
    private readonly zk: Zk,
    private readonly paths: { rules: string; control: string },
    private readonly enabled: boolean,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.current = { state: enabled ? 'pending' : 'off', secured: 0, checked: 0, unsecured: [], unsecuredCount: 0, fromMarker: false, error: null, at: null };
  }

  get markerPath(): string {
    return new ControlPaths(this.paths.control).aclMarker;
  }

  status(): AclStatus {
    return { ...this.current, unsecured: [...this.current.unsecured] };
  }

  /** True once a walk (or the marker) found everything secured. */
  get done(): boolean {
    return this.current.state === 'secured';
  }

  /** Walks once (concurrent calls share the walk). Never throws: a failure is in the status. */
  run(): Promise<AclStatus> {
    if (!this.enabled) return Promise.resolve(this.status());
    this.running ??= this.walkAll().finally(() => (this.running = null));
    return this.running;
  }

  private async walkAll(): Promise<AclStatus> {
    const own = this.zk.ownAcl;
    const tally = { secured: 0, checked: 0, unsecured: [] as string[], count: 0 };
    try {
      if (await this.markerHolds(own)) {
        this.current = { state: 'secured', secured: 0, checked: 3, unsecured: [], unsecuredCount: 0, fromMarker: true, error: null, at: Date.now() };
        this.metrics.gauge('zookeeper.acl.unsecured', 0);
        this.log.debug({ marker: this.markerPath }, 'zookeeper acls already secured');
        return this.status();
      }
      for (const root of [this.paths.rules, this.paths.control]) await this.walk(root, own, tally);
      if (tally.count === 0) {
        const marker: Marker = { rules: this.paths.rules, control: this.paths.control, acl: own, at: Date.now() };
        const data = Buffer.from(JSON.stringify(marker));
        await this.zk.set(this.markerPath, data).catch(async (err) => {
          if (!(err instanceof ZkNoNodeError)) throw err;
          await this.zk.mkdirp(this.paths.control);
          await this.zk.create(this.markerPath, data);
        });
      }
      this.current = {
        state: tally.count === 0 ? 'secured' : 'unsecured',
        secured: tally.secured,
        checked: tally.checked,
        unsecured: tally.unsecured,
        unsecuredCount: tally.count,
        fromMarker: false,
        error: null,
        at: Date.now(),
      };
      this.metrics.gauge('zookeeper.acl.unsecured', tally.count);
      if (tally.count > 0) {
        this.log.error(
          { unsecured: tally.count, listed: tally.unsecured },
          'zookeeper nodes left writable by others: their ACL names another identity; set their ACL by hand (see docs/deployment.md)',
        );
      } else if (tally.secured > 0) {
        this.log.warn({ secured: tally.secured, checked: tally.checked }, 'secured zookeeper nodes created without the digest acl (an older bamboo)');
      } else this.log.info({ checked: tally.checked }, 'zookeeper acls checked');
    } catch (err) {
      this.current = { ...this.current, state: 'failed', error: (err as Error).message, at: Date.now() };
      this.log.warn({ err }, 'could not check zookeeper acls; trying again on the next reconnect');
    }
    return this.status();
  }

  private async markerHolds(own: string[]): Promise<boolean> {
    const [node, rulesAcl, controlAcl] = await Promise.all([this.zk.get(this.markerPath), this.zk.acl(this.paths.rules), this.zk.acl(this.paths.control)]);
    if (!node || !rulesAcl || !controlAcl) return false;
    const same = (a: string[]) => a.length === own.length && a.every((x, i) => x === own[i]);
    try {
      const m = JSON.parse(node.data.toString()) as Partial<Marker>;
      return m.rules === this.paths.rules && m.control === this.paths.control && Array.isArray(m.acl) && same(m.acl) && same(rulesAcl.acl) && same(controlAcl.acl);
    } catch {
      return false;
    }
  }

  /** Breadth first: a node is secured before its children are listed. */
  private async walk(root: string, own: string[], tally: { secured: number; checked: number; unsecured: string[]; count: number }): Promise<void> {
    let level = [root];
    while (level.length > 0) {
      const next: string[] = [];
      for (let i = 0; i < level.length; i += PARALLEL) {
        await Promise.all(
          level.slice(i, i + PARALLEL).map(async (path) => {
            const unsecured = (acl: string[] | null) => {
              tally.count++;
              if (tally.unsecured.length < LISTED) {
                tally.unsecured.push(path);
                this.log.error({ path, acl }, 'cannot secure a zookeeper node: its acl belongs to another identity');
              }
            };
            let got: Awaited<ReturnType<Zk['acl']>>;
            try {
              got = await this.zk.acl(path);
            } catch (err) {
              if (!isNoAuth(err)) throw err;
              return unsecured(null);
            }
            if (!got) return; // gone meanwhile (an ephemeral, an old chunk)
            tally.checked++;
            const ok = got.acl.length === own.length && got.acl.every((x, j) => x === own[j]);
            if (!ok) {
              try {
                // Any ACL version: another api copy walking at the same time sets the same ACL.
                await this.zk.setOwnAcl(path);
                tally.secured++;
              } catch (err) {
                if (err instanceof ZkNoNodeError) return;
                if (!isNoAuth(err)) throw err;
                unsecured(got.acl);
                // Its children may still be listable and securable.
              }
            }
            const children = await this.zk.children(path).catch((err) => {
              if (isNoAuth(err)) return [];
              throw err;
            });
            for (const c of children) next.push(childPath(path, c));
          }),
        );
      }
      level = next;
    }
  }
}
