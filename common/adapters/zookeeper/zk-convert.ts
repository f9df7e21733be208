/**
 * node-zookeeper-client's values in the ZooKeeper adapter's terms: stats with numbers for its 64-bit
 * fields, and ACLs, made from a digest credential and listed as `scheme:id:permissions`.
 */
import { createHash } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';

const { ACL, Id, Permission } = zookeeper;

export type ZkAcl = InstanceType<typeof ACL>;

export interface ZkStat {
  version: number;
  /** Modification time (ms epoch). */
  mtime: number;
  /** Version of the children list (changes when a child is created or removed). */
  cversion?: number;
  /** ZooKeeper transaction ids of the node's creation and last change: one order for every write. */
  czxid?: number;
  mzxid?: number;
}

function long(v: Buffer | number | undefined): number | undefined {
  return v === undefined ? undefined : Buffer.isBuffer(v) ? Number(v.readBigInt64BE(0)) : Number(v);
}

export function toStat(stat: { version: number; mtime: Buffer | number; cversion?: number; czxid?: Buffer | number; mzxid?: Buffer | number }): ZkStat {
  return { version: stat.version, mtime: long(stat.mtime)!, cversion: stat.cversion, czxid: long(stat.czxid), mzxid: long(stat.mzxid) };
}

/** The ACL nodes are created with: all rights for the digest's `user:password`, or for anyone without one. */
export function aclsFor(digest: string | undefined): ZkAcl[] {
  if (digest) {
    const [user] = digest.split(':');
    const hash = createHash('sha1').update(digest).digest('base64');
    return [new ACL(Permission.ALL, new Id('digest', `${user}:${hash}`))];
  }
  return [new ACL(Permission.ALL, new Id('world', 'anyone'))];
}

/** ACLs as `scheme:id:permissions` entries, sorted. */
export function aclStrings(acls: readonly ZkAcl[]): string[] {
  // The library's objects carry `permission` (its typings say `perms`).
  return acls.map((a) => `${a.id.scheme}:${a.id.id}:${(a as unknown as { permission?: number }).permission ?? a.perms}`).sort();
}
