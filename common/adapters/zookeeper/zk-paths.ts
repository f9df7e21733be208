/**
 * Every ZooKeeper path Bamboo uses, named once. The layout (and what each node holds) is described in
 * docs/ARCHITECTURE.md; code builds paths only through these functions.
 */

/** `parent/name` (the root `/` has no trailing slash to double). */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** The service records under `Bamboo.Zookeeper.Path`: one znode per app, named by Go's QueryEscape. */
export class RulePaths {
  constructor(readonly base: string) {}

  /** The record of one app id. */
  rule(id: string): string {
    return this.node(queryEscape(id));
  }
  /** A child of the base by its (escaped) node name, as listed. */
  node(name: string): string {
    return childPath(this.base, name);
  }
}

/** Bamboo's own nodes under `Bamboo.Zookeeper.ControlPath`. */
export class ControlPaths {
  constructor(readonly root: string) {}

  /** The snapshot pointer; its znode version is the snapshot version. */
  get snapshot(): string {
    return childPath(this.root, 'snapshot');
  }
  get chunks(): string {
    return childPath(this.root, 'snapshot-chunks');
  }
  /** Chunk `i` of the snapshot with content hash `hash`. */
  chunk(hash: string, i: number): string {
    return childPath(this.chunks, `${hash}-${i}`);
  }
  get publishers(): string {
    return childPath(this.root, 'publishers');
  }
  publisher(id: string): string {
    return childPath(this.publishers, id);
  }
  get workers(): string {
    return childPath(this.root, 'workers');
  }
  /** A worker's ephemeral status record; the name is escaped as app ids are (Go's QueryEscape). */
  worker(name: string): string {
    return childPath(this.workers, queryEscape(name));
  }
  /** Persistent last-seen records of workers (common/adapters/zookeeper/fleet.ts), kept after they stop. */
  get workersSeen(): string {
    return childPath(this.root, 'workers-seen');
  }
  workerSeen(name: string): string {
    return childPath(this.workersSeen, queryEscape(name));
  }
  /** The event stream leader election: ephemeral sequential `lock-` children. */
  get leader(): string {
    return childPath(this.root, 'stream-leader');
  }
  /** The Marathon answer held back by the shrink guard, shared by every api copy. */
  get shrinkGuard(): string {
    return childPath(this.root, 'shrink-guard');
  }
  /**
   * The audit trail of rule writes (api/audit.ts): persistent sequential children named
   * `<at ms>-<credential>-<app key>-<10-digit sequence>`, written in the same transaction as the rule
   * change they record.
   */
  get audit(): string {
    return childPath(this.root, 'audit');
  }
  /** What a new audit entry is created as (ZooKeeper appends the sequence number). */
  auditEntryPrefix(at: number, who: string, appKey: string): string {
    return childPath(this.audit, `${Math.max(0, Math.floor(at))}-${who}-${appKey}-`);
  }
  auditEntry(name: string): string {
    return childPath(this.audit, name);
  }
  /** Written once the digest ACL was put on every Bamboo node (api/zk-acl.ts). */
  get aclMarker(): string {
    return childPath(this.root, 'acl-secured');
  }
}

/** Go's url.QueryEscape, which Bamboo used for znode names: `/a/b c` -> `%2Fa%2Fb+c`. */
export function queryEscape(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Go's url.QueryUnescape; throws on a malformed escape. */
export function queryUnescape(s: string): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(s)) throw new Error(`malformed escape in ${JSON.stringify(s)}`);
  return decodeURIComponent(s.replace(/\+/g, ' '));
}
